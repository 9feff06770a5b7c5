//! `<memballoon>`: the balloon device used to resize guest memory.

use crate::model::address::DeviceInfo;
use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

xml_enum! {
    pub enum MemballoonModel {
        Virtio = "virtio",
        Xen = "xen",
        None = "none",
        VirtioTransitional = "virtio-transitional",
        VirtioNonTransitional = "virtio-non-transitional",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memballoon {
    pub model: MemballoonModel,
    pub autodeflate: Option<bool>,
    pub free_page_reporting: Option<bool>,
    /// Seconds between guest memory statistics updates (0 disables).
    pub stats_period: Option<u32>,
    pub info: DeviceInfo,
    /// `<driver>` virtio options.
    pub virtio: super::VirtioOptions,
}

impl Memballoon {
    pub(crate) fn read(mut e: Elem) -> Result<Memballoon, XmlError> {
        let model = e.req_attr_with("model", values::keyword::<MemballoonModel>)?;
        let autodeflate = e.attr_with("autodeflate", values::on_off)?;
        let free_page_reporting = e.attr_with("freePageReporting", values::on_off)?;
        let stats_period = e.child_attr_with("stats", "period", values::u32_any)?;
        let info = DeviceInfo::read(&mut e)?;
        let virtio = super::VirtioOptions::read_child(&mut e)?;
        e.finish()?;
        Ok(Memballoon {
            model,
            autodeflate,
            free_page_reporting,
            stats_period,
            info,
            virtio,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("memballoon");
        w.attr("model", self.model.as_str());
        w.attr_opt("autodeflate", self.autodeflate.map(values::on_off_str));
        w.attr_opt(
            "freePageReporting",
            self.free_page_reporting.map(values::on_off_str),
        );
        if let Some(p) = self.stats_period {
            w.start("stats");
            w.attr_num("period", p);
            w.end();
        }
        self.info.write(w);
        self.virtio.write_driver(w);
        w.end();
    }
}
