//! `<vsock>`: a virtio socket between host and guest, addressed by the guest's context id.

use crate::model::address::DeviceInfo;
use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

xml_enum! {
    pub enum VsockModel {
        Virtio = "virtio",
        VirtioTransitional = "virtio-transitional",
        VirtioNonTransitional = "virtio-non-transitional",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vsock {
    pub model: Option<VsockModel>,
    /// `<cid auto>`: whether the driver picks a free context id at start.
    pub cid_auto: Option<bool>,
    /// `<cid address>`: the guest's context id (3 and above; 0-2 are reserved).
    pub cid: Option<u32>,
    pub info: DeviceInfo,
}

impl Vsock {
    pub(crate) fn read(mut e: Elem) -> Result<Vsock, XmlError> {
        let model = e.attr_with("model", values::keyword::<VsockModel>)?;
        let (mut cid_auto, mut cid) = (None, None);
        if let Some(mut c) = e.child("cid")? {
            cid_auto = c.attr_with("auto", values::yes_no)?;
            cid = c.attr_with("address", |s| {
                values::uint_in(s, 3, u64::from(u32::MAX) - 1).map(|v| v as u32)
            })?;
            c.finish()?;
        }
        let info = DeviceInfo::read(&mut e)?;
        e.finish()?;
        Ok(Vsock {
            model,
            cid_auto,
            cid,
            info,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("vsock");
        w.attr_opt("model", self.model.map(|m| m.as_str()));
        if self.cid_auto.is_some() || self.cid.is_some() {
            w.start("cid");
            w.attr_opt("auto", self.cid_auto.map(values::yes_no_str));
            w.attr_num_opt("address", self.cid);
            w.end();
        }
        self.info.write(w);
        w.end();
    }
}
