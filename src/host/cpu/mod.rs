//! CPU comparison and baselines as libvirt's CPU drivers compute them
//! (`virConnectCompareCPU`, `virConnectBaselineCPU` and their hypervisor variants): the x86
//! driver over libvirt's CPU map ([`map`], the same files [`super::cpumodels`] lists models
//! from), the host's CPU decoded from its CPUID bits ([`probe`]), `<cpu>` definitions parsed and
//! written as libvirt does ([`def`]). ARM baselines are the first CPU's model and ppc64 ones
//! need one model throughout, as libvirt's drivers have it; s390 has no baseline.

pub mod def;
pub mod map;
mod probe;
pub mod x86;

use std::path::Path;

pub use def::{CpuDef, CpuType};
pub use x86::{Comparison, HvModel};

/// libvirt's error kinds these calls answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Internal,
    NoSupport,
    InvalidArg,
    XmlError,
    ConfigUnsupported,
    OperationFailed,
    OperationUnsupported,
    CpuIncompatible,
}

impl Kind {
    /// `virErrorNumber`.
    pub fn number(self) -> i32 {
        match self {
            Self::Internal => 1,
            Self::NoSupport => 3,
            Self::InvalidArg => 8,
            Self::OperationFailed => 9,
            Self::XmlError => 27,
            Self::ConfigUnsupported => 67,
            Self::OperationUnsupported => 84,
            Self::CpuIncompatible => 91,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Self::Internal => "internal error",
            Self::NoSupport => "this function is not supported by the connection driver",
            Self::InvalidArg => "invalid argument",
            Self::OperationFailed => "operation failed",
            Self::XmlError => "XML error",
            Self::ConfigUnsupported => "unsupported configuration",
            Self::OperationUnsupported => "Operation not supported",
            Self::CpuIncompatible => "the CPU is incompatible with host CPU",
        }
    }
}

/// A refusal with libvirt's kind and wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct Error {
    pub kind: Kind,
    pub detail: Option<String>,
}

impl Error {
    pub fn new(kind: Kind, detail: impl Into<String>) -> Error {
        Error {
            kind,
            detail: Some(detail.into()),
        }
    }

    pub fn internal(detail: impl Into<String>) -> Error {
        Error::new(Kind::Internal, detail)
    }

    /// The message as libvirt words it: the kind's prefix, then the detail.
    pub fn message(&self) -> String {
        match &self.detail {
            Some(d) => format!("{}: {d}", self.kind.prefix()),
            None => self.kind.prefix().to_owned(),
        }
    }
}

/// `VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE`.
pub const COMPARE_FAIL_INCOMPATIBLE: u32 = 1;
/// `VIR_CONNECT_COMPARE_CPU_VALIDATE_XML`.
pub const COMPARE_VALIDATE_XML: u32 = 2;
/// `VIR_CONNECT_BASELINE_CPU_EXPAND_FEATURES`.
pub const BASELINE_EXPAND_FEATURES: u32 = 1;
/// `VIR_CONNECT_BASELINE_CPU_MIGRATABLE`.
pub const BASELINE_MIGRATABLE: u32 = 2;

/// Features libvirt's QEMU driver never hands on (`virQEMUCapsCPUFilterFeatures`).
const QEMU_DROPPED: &[&str] = &["cmt", "mbm_total", "mbm_local", "osxsave", "ospke"];

/// The x86 map and the host's CPU as libvirt shows it in the capabilities.
pub struct Cpus {
    pub map: map::Map,
    pub ppc64: map::Ppc64Map,
    pub host: CpuDef,
}

impl Cpus {
    /// Read the map under `dir` and decode this host's CPU with it.
    pub fn load(dir: &Path) -> Result<Cpus, Error> {
        let map = map::Map::load(dir)?;
        let data = probe::host_data(&map);
        let mut host = x86::decode(&map, &data, CpuType::Host, None, &[], false, false)?;
        host.kind = CpuType::Host;
        host.mode = None;
        host.arch = Some(std::env::consts::ARCH.to_owned());
        let ppc64 = map::Ppc64Map::load(dir)?;
        Ok(Cpus { map, ppc64, host })
    }

    /// `virCPUCompareXML` against `host` (the host's CPU unless given): the result, or with
    /// `fail` the incompatibility as an error.
    pub fn compare(
        &self,
        host: Option<&CpuDef>,
        xml: &str,
        fail: bool,
    ) -> Result<Comparison, Error> {
        let host = host.unwrap_or(&self.host);
        let cpu = def::parse(xml, None)?;
        if !matches!(std::env::consts::ARCH, "x86_64" | "x86") {
            return Err(Error::new(
                Kind::NoSupport,
                format!(
                    "'{}' architecture is not supported by CPU driver",
                    std::env::consts::ARCH
                ),
            ));
        }
        let (r, why) = x86::compare(&self.map, host, &cpu)?;
        if r == Comparison::Incompatible && fail {
            return Err(Error {
                kind: Kind::CpuIncompatible,
                detail: Some(why),
            });
        }
        Ok(r)
    }

    /// `virConnectBaselineCPU`: the XML of the baseline of the host CPUs `xmls`; `qemu` drops
    /// the features libvirt's QEMU driver never hands on (its test driver keeps them).
    pub fn baseline(&self, xmls: &[String], flags: u32, qemu: bool) -> Result<String, Error> {
        if xmls.is_empty() {
            return Err(Error::new(Kind::InvalidArg, "no CPUs given"));
        }
        let cpus = xmls
            .iter()
            .map(|x| def::parse(x, Some(CpuType::Host)))
            .collect::<Result<Vec<_>, _>>()?;
        let migratable = flags & BASELINE_MIGRATABLE != 0;
        let arch = cpus[0].arch.clone().unwrap_or_default();
        let mut cpu = match arch.as_str() {
            "x86_64" | "i686" => x86::baseline(&self.map, &cpus, None, None, migratable)?,
            "armv6l" | "armv7l" | "armv7b" | "aarch64" => {
                let mut c = CpuDef::guest();
                c.model = cpus[0].model.clone();
                c
            }
            "ppc64" | "ppc64le" => self.ppc64.baseline(&cpus)?,
            "s390" | "s390x" => {
                return Err(Error::new(
                    Kind::NoSupport,
                    format!("cannot compute baseline CPU of {arch} architecture"),
                ));
            }
            a => {
                return Err(Error::new(
                    Kind::NoSupport,
                    format!("'{a}' architecture is not supported by CPU driver"),
                ));
            }
        };
        let x86 = matches!(arch.as_str(), "x86_64" | "i686");
        if x86 && qemu {
            cpu.features
                .retain(|f| !QEMU_DROPPED.contains(&f.name.as_str()));
        }
        if flags & BASELINE_EXPAND_FEATURES != 0 {
            if x86 {
                x86::expand(&self.map, &mut cpu)?;
            } else {
                cpu.features.sort_by(|a, b| a.name.cmp(&b.name));
            }
        }
        Ok(cpu.format())
    }
}

#[cfg(test)]
mod tests;
