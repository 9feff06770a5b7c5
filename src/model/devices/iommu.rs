//! `<iommu>`: an emulated IOMMU, for guests that isolate their devices (or need x2APIC).

use crate::model::address::DeviceInfo;
use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

xml_enum! {
    pub enum IommuModel {
        Intel = "intel",
        Smmuv3 = "smmuv3",
        Virtio = "virtio",
    }
}

/// `<driver>`: the IOMMU's features; each left to the hypervisor when absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IommuDriver {
    pub intremap: Option<bool>,
    pub caching_mode: Option<bool>,
    pub eim: Option<bool>,
    pub iotlb: Option<bool>,
    pub aw_bits: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iommu {
    pub model: IommuModel,
    pub driver: Option<IommuDriver>,
    pub info: DeviceInfo,
}

impl Iommu {
    pub(crate) fn read(mut e: Elem) -> Result<Iommu, XmlError> {
        let model = e.req_attr_with("model", values::keyword::<IommuModel>)?;
        let driver = match e.child("driver")? {
            Some(mut d) => {
                let driver = IommuDriver {
                    intremap: d.attr_with("intremap", values::on_off)?,
                    caching_mode: d.attr_with("caching_mode", values::on_off)?,
                    eim: d.attr_with("eim", values::on_off)?,
                    iotlb: d.attr_with("iotlb", values::on_off)?,
                    aw_bits: d
                        .attr_with("aw_bits", |s| values::uint_in(s, 1, 255).map(|v| v as u8))?,
                };
                d.finish()?;
                Some(driver)
            }
            None => None,
        };
        let info = DeviceInfo::read(&mut e)?;
        e.finish()?;
        Ok(Iommu {
            model,
            driver,
            info,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("iommu");
        w.attr("model", self.model.as_str());
        if let Some(d) = &self.driver {
            w.start("driver");
            w.attr_opt("intremap", d.intremap.map(values::on_off_str));
            w.attr_opt("caching_mode", d.caching_mode.map(values::on_off_str));
            w.attr_opt("eim", d.eim.map(values::on_off_str));
            w.attr_opt("iotlb", d.iotlb.map(values::on_off_str));
            w.attr_num_opt("aw_bits", d.aw_bits);
            w.end();
        }
        self.info.write(w);
        w.end();
    }
}
