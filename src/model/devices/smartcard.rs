//! `<smartcard>`: a smartcard in the guest's USB CCID reader (`<controller type='ccid'>`),
//! emulated from the host's NSS database or passed through from a remote reader over a
//! character device.

use super::chardev::{CharDevice, CharKind};
use crate::model::address::{AddressType, DeviceInfo};
use crate::model::error::XmlError;
use crate::model::values;
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

/// Where the card comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmartcardMode {
    /// `mode='host'`: QEMU emulates the cards of the host's NSS database.
    Host,
    /// `mode='host-certificates'`: a card made of three certificates from an NSS database
    /// (`None`: QEMU's default, `/etc/pki/nssdb`).
    HostCertificates {
        certificates: [String; 3],
        database: Option<String>,
    },
    /// `mode='passthrough' type=...`: a remote reader speaking the CCID passthrough protocol
    /// over a character device (`spicevmc`, `tcp`, `unix`, ...).
    Passthrough(Box<CharDevice>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smartcard {
    pub mode: SmartcardMode,
    pub info: DeviceInfo,
}

/// A card sits in a CCID slot: any other address is wrong.
fn check_address(path: &str, info: &DeviceInfo) -> Result<()> {
    match &info.address {
        Some(a) if a.kind != AddressType::Ccid => Err(XmlError::invalid(
            format!("{path}/address/@type"),
            a.kind.as_str(),
            "a smartcard takes only a 'ccid' address",
        )),
        _ => Ok(()),
    }
}

impl Smartcard {
    pub(crate) fn read(mut e: Elem) -> Result<Smartcard> {
        let mode = match e.req_attr("mode")? {
            "passthrough" => {
                let path = e.path();
                let c = CharDevice::read(e, CharKind::Smartcard)?;
                let info = c.info.clone();
                check_address(&path, &info)?;
                return Ok(Smartcard {
                    mode: SmartcardMode::Passthrough(Box::new(c)),
                    info,
                });
            }
            "host" => SmartcardMode::Host,
            "host-certificates" => {
                let mut certs = Vec::new();
                e.each("certificate", |mut c| {
                    certs.push(c.text_with(values::non_empty)?);
                    c.finish()
                })?;
                let certificates: [String; 3] = certs.try_into().map_err(|v: Vec<String>| {
                    XmlError::invalid(
                        format!("{}/certificate", e.path()),
                        &v.len().to_string(),
                        "host-certificates takes exactly three <certificate>s",
                    )
                })?;
                let database = e.child_text_with("database", values::abs_path)?;
                SmartcardMode::HostCertificates {
                    certificates,
                    database,
                }
            }
            other => {
                return Err(e.attr_invalid(
                    "mode",
                    other,
                    values::one_of(&["host", "host-certificates", "passthrough"]),
                ));
            }
        };
        let info = DeviceInfo::read(&mut e)?;
        check_address(&e.path(), &info)?;
        e.finish()?;
        Ok(Smartcard { mode, info })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        match &self.mode {
            SmartcardMode::Passthrough(c) => {
                let mut c = c.as_ref().clone();
                c.info = self.info.clone();
                c.write(w, CharKind::Smartcard);
                return;
            }
            SmartcardMode::Host => {
                w.start("smartcard");
                w.attr("mode", "host");
            }
            SmartcardMode::HostCertificates {
                certificates,
                database,
            } => {
                w.start("smartcard");
                w.attr("mode", "host-certificates");
                for c in certificates {
                    w.leaf("certificate", c);
                }
                w.leaf_opt("database", database.as_deref());
            }
        }
        self.info.write(w);
        w.end();
    }

    /// The CCID controller index and slot this card sits in (0, 0 when it names none).
    pub fn ccid_slot(&self) -> (u32, u32) {
        match &self.info.address {
            Some(a) => {
                let n = |k| a.get(k).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
                (n("controller"), n("slot"))
            }
            None => (0, 0),
        }
    }
}
