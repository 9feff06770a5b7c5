//! `<video>`: emulated display adapters.

use crate::model::address::DeviceInfo;
use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

xml_enum! {
    pub enum VideoType {
        Vga = "vga",
        Cirrus = "cirrus",
        Vmvga = "vmvga",
        Xen = "xen",
        Vbox = "vbox",
        Qxl = "qxl",
        Virtio = "virtio",
        Gop = "gop",
        Bochs = "bochs",
        Ramfb = "ramfb",
        None = "none",
    }
}

/// `<model>`; memory sizes are in KiB as libvirt writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoModel {
    pub model_type: VideoType,
    pub ram: Option<u32>,
    pub vram: Option<u32>,
    pub vram64: Option<u32>,
    pub vgamem: Option<u32>,
    pub heads: Option<u32>,
    pub primary: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Video {
    /// Left to the hypervisor driver's default when absent.
    pub model: Option<VideoModel>,
    pub info: DeviceInfo,
}

impl VideoModel {
    /// A model of type `t` with no sizes set.
    pub fn of(t: VideoType) -> VideoModel {
        VideoModel {
            model_type: t,
            ram: None,
            vram: None,
            vram64: None,
            vgamem: None,
            heads: None,
            primary: None,
        }
    }
}

impl Video {
    pub(crate) fn read(mut e: Elem) -> Result<Video, XmlError> {
        let model = match e.child("model")? {
            None => None,
            Some(mut m) => {
                let vm = VideoModel {
                    model_type: m.req_attr_with("type", values::keyword::<VideoType>)?,
                    ram: m.attr_with("ram", values::u32_any)?,
                    vram: m.attr_with("vram", values::u32_any)?,
                    vram64: m.attr_with("vram64", values::u32_any)?,
                    vgamem: m.attr_with("vgamem", values::u32_any)?,
                    heads: m.attr_with("heads", values::u32_pos)?,
                    primary: m.attr_with("primary", values::yes_no)?,
                };
                m.finish()?;
                Some(vm)
            }
        };
        let info = DeviceInfo::read(&mut e)?;
        e.finish()?;
        Ok(Video { model, info })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("video");
        if let Some(m) = &self.model {
            w.start("model");
            w.attr("type", m.model_type.as_str());
            w.attr_num_opt("ram", m.ram);
            w.attr_num_opt("vram", m.vram);
            w.attr_num_opt("vram64", m.vram64);
            w.attr_num_opt("vgamem", m.vgamem);
            w.attr_num_opt("heads", m.heads);
            w.attr_opt("primary", m.primary.map(values::yes_no_str));
            w.end();
        }
        self.info.write(w);
        w.end();
    }
}
