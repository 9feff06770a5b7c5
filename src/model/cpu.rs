//! `<cpu>`: the virtual CPU model and topology.

use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

xml_enum! {
    pub enum CpuMode {
        Custom = "custom",
        HostModel = "host-model",
        HostPassthrough = "host-passthrough",
        Maximum = "maximum",
    }
}

xml_enum! {
    pub enum CpuMatch {
        Minimum = "minimum",
        Exact = "exact",
        Strict = "strict",
    }
}

xml_enum! {
    pub enum CpuCheck {
        None = "none",
        Partial = "partial",
        Full = "full",
    }
}

xml_enum! {
    /// Whether the hypervisor may substitute a close model.
    pub enum CpuFallback {
        Allow = "allow",
        Forbid = "forbid",
    }
}

xml_enum! {
    pub enum FeaturePolicy {
        Force = "force",
        Require = "require",
        Optional = "optional",
        Disable = "disable",
        Forbid = "forbid",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuModel {
    pub name: String,
    pub fallback: Option<CpuFallback>,
}

/// Guest topology; the product must equal the maximum vCPU count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topology {
    pub sockets: u32,
    pub dies: Option<u32>,
    pub clusters: Option<u32>,
    pub cores: u32,
    pub threads: u32,
}

impl Topology {
    /// Product of all levels (saturating: hostile input must not overflow).
    pub fn vcpus(&self) -> u64 {
        [
            self.sockets,
            self.dies.unwrap_or(1),
            self.clusters.unwrap_or(1),
            self.cores,
            self.threads,
        ]
        .iter()
        .fold(1u64, |acc, &n| acc.saturating_mul(u64::from(n)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuFeature {
    pub policy: Option<FeaturePolicy>,
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cpu {
    pub mode: Option<CpuMode>,
    pub cpu_match: Option<CpuMatch>,
    pub check: Option<CpuCheck>,
    pub migratable: Option<bool>,
    pub model: Option<CpuModel>,
    pub vendor: Option<String>,
    pub topology: Option<Topology>,
    pub features: Vec<CpuFeature>,
    /// `<numa>`: the guest's NUMA cells.
    pub numa: Vec<crate::model::tuning::NumaCell>,
}

impl Cpu {
    pub(crate) fn read(mut e: Elem, max_vcpus: u32) -> Result<Cpu> {
        let mode = e.attr_with("mode", values::keyword::<CpuMode>)?;
        let cpu_match = e.attr_with("match", values::keyword::<CpuMatch>)?;
        let check = e.attr_with("check", values::keyword::<CpuCheck>)?;
        let migratable = e.attr_with("migratable", values::on_off)?;
        let model = match e.child("model")? {
            None => None,
            Some(mut m) => {
                let fallback = m.attr_with("fallback", values::keyword::<CpuFallback>)?;
                let name = m.text_with(values::token)?;
                m.finish()?;
                Some(CpuModel { name, fallback })
            }
        };
        let vendor = e.child_text_with("vendor", values::token)?;
        let topology = match e.child("topology")? {
            None => None,
            Some(mut t) => {
                let topo = Topology {
                    sockets: t.req_attr_with("sockets", values::u32_pos)?,
                    dies: t.attr_with("dies", values::u32_pos)?,
                    clusters: t.attr_with("clusters", values::u32_pos)?,
                    cores: t.req_attr_with("cores", values::u32_pos)?,
                    threads: t.req_attr_with("threads", values::u32_pos)?,
                };
                if topo.vcpus() != u64::from(max_vcpus) {
                    return Err(t.invalid(
                        &topo.vcpus().to_string(),
                        format!(
                            "topology gives {} vCPUs but <vcpu> is {max_vcpus}",
                            topo.vcpus()
                        ),
                    ));
                }
                t.finish()?;
                Some(topo)
            }
        };
        let mut features = Vec::new();
        e.each("feature", |mut f| {
            let policy = f.attr_with("policy", values::keyword::<FeaturePolicy>)?;
            let name = f.req_attr_with("name", values::token)?;
            f.finish()?;
            features.push(CpuFeature { policy, name });
            Ok(())
        })?;
        let numa = match e.child("numa")? {
            None => Vec::new(),
            Some(n) => crate::model::tuning::read_numa(n, max_vcpus)?,
        };
        e.finish()?;
        Ok(Cpu {
            numa,
            mode,
            cpu_match,
            check,
            migratable,
            model,
            vendor,
            topology,
            features,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("cpu");
        w.attr_opt("mode", self.mode.map(|m| m.as_str()));
        w.attr_opt("match", self.cpu_match.map(|m| m.as_str()));
        w.attr_opt("check", self.check.map(|c| c.as_str()));
        w.attr_opt("migratable", self.migratable.map(values::on_off_str));
        if let Some(m) = &self.model {
            w.start("model");
            w.attr_opt("fallback", m.fallback.map(|f| f.as_str()));
            w.end_with_text(&m.name);
        }
        w.leaf_opt("vendor", self.vendor.as_deref());
        if let Some(t) = &self.topology {
            w.start("topology");
            w.attr_num("sockets", t.sockets);
            w.attr_num_opt("dies", t.dies);
            w.attr_num_opt("clusters", t.clusters);
            w.attr_num("cores", t.cores);
            w.attr_num("threads", t.threads);
            w.end();
        }
        for f in &self.features {
            w.start("feature");
            w.attr_opt("policy", f.policy.map(|p| p.as_str()));
            w.attr("name", &f.name);
            w.end();
        }
        crate::model::tuning::write_numa(w, &self.numa);
        w.end();
    }
}
