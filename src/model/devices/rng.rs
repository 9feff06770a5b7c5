//! `<rng>`: paravirtual random number generator fed from the host.

use super::chardev::{CharDevice, CharKind};
use crate::model::address::DeviceInfo;
use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

xml_enum! {
    pub enum RngModel {
        Virtio = "virtio",
        VirtioTransitional = "virtio-transitional",
        VirtioNonTransitional = "virtio-non-transitional",
    }
}

/// Where the entropy comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RngBackend {
    /// `<backend model='random'>path</backend>`; the hypervisor's default
    /// device when the path is absent.
    Random(Option<String>),
    /// `<backend model='builtin'/>`: the hypervisor's own generator.
    Builtin,
    /// `<backend model='egd' type=...>`: an Entropy Gathering Daemon reached over a
    /// character device (a socket, usually).
    Egd(Box<CharDevice>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    pub model: RngModel,
    /// Rate limit: `bytes` per `period` milliseconds.
    pub rate_bytes: Option<u32>,
    pub rate_period: Option<u32>,
    pub backend: RngBackend,
    /// `<driver>` virtio options.
    pub virtio: super::VirtioOptions,
    pub info: DeviceInfo,
}

impl Rng {
    pub(crate) fn read(mut e: Elem) -> Result<Rng, XmlError> {
        let model = e.req_attr_with("model", values::keyword::<RngModel>)?;
        let (mut rate_bytes, mut rate_period) = (None, None);
        if let Some(mut r) = e.child("rate")? {
            rate_bytes = Some(r.req_attr_with("bytes", values::u32_pos)?);
            rate_period = r.attr_with("period", values::u32_pos)?;
            r.finish()?;
        }
        let mut b = e.req_child("backend")?;
        let backend = match b.req_attr("model")? {
            "egd" => RngBackend::Egd(Box::new(CharDevice::read(b, CharKind::RngBackend)?)),
            "random" => {
                let path = b.text_with(|t| {
                    if t.is_empty() {
                        Ok(None)
                    } else {
                        values::abs_path(t).map(Some)
                    }
                })?;
                b.finish()?;
                RngBackend::Random(path)
            }
            "builtin" => {
                b.finish()?;
                RngBackend::Builtin
            }
            other => {
                return Err(b.attr_invalid(
                    "model",
                    other,
                    values::one_of(&["random", "builtin", "egd"]),
                ));
            }
        };

        let virtio = super::VirtioOptions::read_child(&mut e)?;
        let info = DeviceInfo::read(&mut e)?;
        e.finish()?;
        Ok(Rng {
            model,
            rate_bytes,
            rate_period,
            backend,
            virtio,
            info,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("rng");
        w.attr("model", self.model.as_str());
        if let Some(bytes) = self.rate_bytes {
            w.start("rate");
            w.attr_num("bytes", bytes);
            w.attr_num_opt("period", self.rate_period);
            w.end();
        }
        match &self.backend {
            RngBackend::Egd(c) => c.write(w, CharKind::RngBackend),
            _ => w.start("backend"),
        }
        match &self.backend {
            RngBackend::Egd(_) => {}
            RngBackend::Random(path) => {
                w.attr("model", "random");
                match path {
                    Some(p) => w.end_with_text(p),
                    None => w.end(),
                }
            }
            RngBackend::Builtin => {
                w.attr("model", "builtin");
                w.end();
            }
        }
        self.virtio.write_driver(w);
        self.info.write(w);
        w.end();
    }
}
