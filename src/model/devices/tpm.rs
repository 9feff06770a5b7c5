//! `<tpm>`: a TPM for the guest, backed by the host's TPM (`passthrough`) or by an emulator
//! (`swtpm`) the hypervisor driver runs per guest.

use crate::model::address::DeviceInfo;
use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

xml_enum! {
    /// The TPM's interface as the guest sees it.
    pub enum TpmModel {
        Tis = "tpm-tis",
        Crb = "tpm-crb",
        Spapr = "tpm-spapr",
        SpaprProxy = "spapr-tpm-proxy",
    }
}

xml_enum! {
    /// The TPM specification an emulated TPM follows.
    pub enum TpmVersion {
        V1_2 = "1.2",
        V2_0 = "2.0",
    }
}

xml_enum! {
    /// A PCR bank an emulated TPM 2.0 activates.
    pub enum PcrBank {
        Sha1 = "sha1",
        Sha256 = "sha256",
        Sha384 = "sha384",
        Sha512 = "sha512",
    }
}

/// An emulated TPM (`<backend type='emulator'>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TpmEmulator {
    /// `None` until the driver's defaults choose one.
    pub version: Option<TpmVersion>,
    /// Keep the state when a transient domain ends (`persistent_state='yes'`).
    pub persistent_state: bool,
    /// The libvirt secret that encrypts the state.
    pub encryption_secret: Option<uuid::Uuid>,
    /// `<active_pcr_banks>`: `None` leaves swtpm's default banks.
    pub active_pcr_banks: Option<Vec<PcrBank>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TpmBackend {
    /// The host's TPM character device (libvirt's default `/dev/tpm0`).
    Passthrough {
        device: String,
    },
    Emulator(TpmEmulator),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tpm {
    /// `None` until the driver's defaults choose one.
    pub model: Option<TpmModel>,
    pub backend: TpmBackend,
    pub info: DeviceInfo,
}

/// libvirt's default host TPM.
pub const DEFAULT_TPM_DEVICE: &str = "/dev/tpm0";

impl Tpm {
    pub(crate) fn read(mut e: Elem) -> Result<Tpm, XmlError> {
        let model = e.attr_with("model", values::keyword::<TpmModel>)?;
        let mut b = e.req_child("backend")?;
        let backend = match b.req_attr("type")? {
            "passthrough" => {
                let device = match b.child("device")? {
                    Some(mut d) => {
                        let p = d.attr_with("path", values::abs_path)?;
                        d.finish()?;
                        p
                    }
                    None => None,
                };
                TpmBackend::Passthrough {
                    device: device.unwrap_or_else(|| DEFAULT_TPM_DEVICE.to_owned()),
                }
            }
            "emulator" => {
                let version = b.attr_with("version", values::keyword::<TpmVersion>)?;
                let persistent_state = b
                    .attr_with("persistent_state", values::yes_no)?
                    .unwrap_or(false);
                let encryption_secret = match b.child("encryption")? {
                    Some(mut c) => {
                        let s = c.req_attr_with("secret", values::uuid)?;
                        c.finish()?;
                        Some(s)
                    }
                    None => None,
                };
                let active_pcr_banks = match b.child("active_pcr_banks")? {
                    Some(mut banks) => {
                        let mut v = Vec::new();
                        banks.each_child(|c| {
                            let bank = c.name().parse::<PcrBank>().map_err(|_| c.unknown())?;
                            c.finish()?;
                            if !v.contains(&bank) {
                                v.push(bank);
                            }
                            Ok(())
                        })?;
                        banks.finish()?;
                        // libvirt writes the banks in its own order
                        v.sort_by_key(|b| *b as u8);
                        // libvirt drops an empty list
                        (!v.is_empty()).then_some(v)
                    }
                    None => None,
                };
                TpmBackend::Emulator(TpmEmulator {
                    version,
                    persistent_state,
                    encryption_secret,
                    active_pcr_banks,
                })
            }
            other => {
                return Err(b.attr_invalid(
                    "type",
                    other,
                    values::one_of(&["passthrough", "emulator"]),
                ));
            }
        };
        b.finish()?;
        let info = DeviceInfo::read(&mut e)?;
        e.finish()?;
        Ok(Tpm {
            model,
            backend,
            info,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("tpm");
        w.attr_opt("model", self.model.map(|m| m.as_str()));
        w.start("backend");
        match &self.backend {
            TpmBackend::Passthrough { device } => {
                w.attr("type", "passthrough");
                w.leaf_attr("device", "path", device);
            }
            TpmBackend::Emulator(em) => {
                w.attr("type", "emulator");
                w.attr_opt("version", em.version.map(|v| v.as_str()));
                if em.persistent_state {
                    w.attr("persistent_state", "yes");
                }
                if let Some(s) = em.encryption_secret {
                    w.leaf_attr("encryption", "secret", &s.hyphenated().to_string());
                }
                if let Some(banks) = &em.active_pcr_banks {
                    w.start("active_pcr_banks");
                    for b in banks {
                        w.start(b.as_str());
                        w.end();
                    }
                    w.end();
                }
            }
        }
        w.end();
        self.info.write(w);
        w.end();
    }
}
