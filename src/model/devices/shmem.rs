//! `<shmem>`: host memory shared with the guest (and other guests) through an ivshmem device.

use crate::model::address::DeviceInfo;
use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

xml_enum! {
    pub enum ShmemModel {
        Ivshmem = "ivshmem",
        IvshmemPlain = "ivshmem-plain",
        IvshmemDoorbell = "ivshmem-doorbell",
    }
}

xml_enum! {
    pub enum ShmemRole {
        Master = "master",
        Peer = "peer",
    }
}

/// `<server path>`: the ivshmem server a doorbell device talks to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShmemServer {
    pub path: Option<String>,
}

/// `<msi vectors ioeventfd>` of a doorbell device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShmemMsi {
    pub vectors: Option<u32>,
    pub ioeventfd: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shmem {
    /// The shared object's name, `/dev/shm/<name>` on the host.
    pub name: String,
    pub role: Option<ShmemRole>,
    pub model: Option<ShmemModel>,
    /// Bytes; written in MiB, as libvirt does.
    pub size: Option<u64>,
    pub server: Option<ShmemServer>,
    pub msi: Option<ShmemMsi>,
    pub info: DeviceInfo,
}

impl Shmem {
    pub(crate) fn read(mut e: Elem) -> Result<Shmem, XmlError> {
        let name = e.req_attr_with("name", |s| {
            if s.is_empty() || s.contains('/') || s == "." || s == ".." {
                Err("expected a name without '/'".to_string())
            } else {
                Ok(s.to_owned())
            }
        })?;
        let role = e.attr_with("role", values::keyword::<ShmemRole>)?;
        let model = e.child_attr_with("model", "type", values::keyword::<ShmemModel>)?;
        let size = match e.child("size")? {
            Some(mut s) => {
                let unit = s.attr_with("unit", values::memory_unit)?.unwrap_or(1);
                let bytes = s.text_with(|t| {
                    let n = values::uint_in(t, 1, u64::MAX)?;
                    n.checked_mul(unit)
                        .filter(|b| b.is_power_of_two() && *b >= 1 << 20)
                        .ok_or_else(|| "expected a power of two of at least 1 MiB".to_string())
                })?;
                s.finish()?;
                Some(bytes)
            }
            None => None,
        };
        let server = match e.child("server")? {
            Some(mut s) => {
                let path = s.attr_with("path", values::abs_path)?;
                s.finish()?;
                Some(ShmemServer { path })
            }
            None => None,
        };
        let msi = match e.child("msi")? {
            Some(mut m) => {
                let msi = ShmemMsi {
                    vectors: m.attr_with("vectors", values::u32_pos)?,
                    ioeventfd: m.attr_with("ioeventfd", values::on_off)?,
                };
                m.finish()?;
                Some(msi)
            }
            None => None,
        };
        let info = DeviceInfo::read(&mut e)?;
        e.finish()?;
        Ok(Shmem {
            name,
            role,
            model,
            size,
            server,
            msi,
            info,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("shmem");
        w.attr("name", &self.name);
        w.attr_opt("role", self.role.map(|r| r.as_str()));
        if let Some(m) = self.model {
            w.leaf_attr("model", "type", m.as_str());
        }
        if let Some(bytes) = self.size {
            w.start("size");
            w.attr("unit", "M");
            w.end_with_text(&(bytes >> 20).to_string());
        }
        if let Some(s) = &self.server {
            w.start("server");
            w.attr_opt("path", s.path.as_deref());
            w.end();
        }
        if let Some(m) = &self.msi {
            w.start("msi");
            w.attr_num_opt("vectors", m.vectors);
            w.attr_opt("ioeventfd", m.ioeventfd.map(values::on_off_str));
            w.end();
        }
        self.info.write(w);
        w.end();
    }
}
