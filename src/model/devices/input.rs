//! `<input>`: pointing devices and keyboards.

use crate::model::address::DeviceInfo;
use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

xml_enum! {
    pub enum InputType {
        Mouse = "mouse",
        Keyboard = "keyboard",
        Tablet = "tablet",
    }
}

xml_enum! {
    pub enum InputBus {
        Ps2 = "ps2",
        Usb = "usb",
        Xen = "xen",
        Virtio = "virtio",
        None = "none",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub input_type: InputType,
    pub bus: Option<InputBus>,
    /// `<driver>` virtio options (virtio inputs).
    pub virtio: super::VirtioOptions,
    pub info: DeviceInfo,
}

impl Input {
    pub(crate) fn read(mut e: Elem) -> Result<Input, XmlError> {
        let input_type = e.req_attr_with("type", values::keyword::<InputType>)?;
        let bus = e.attr_with("bus", values::keyword::<InputBus>)?;
        let virtio = super::VirtioOptions::read_child(&mut e)?;
        let info = DeviceInfo::read(&mut e)?;
        e.finish()?;
        Ok(Input {
            input_type,
            bus,
            virtio,
            info,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("input");
        w.attr("type", self.input_type.as_str());
        w.attr_opt("bus", self.bus.map(|b| b.as_str()));
        self.virtio.write_driver(w);
        self.info.write(w);
        w.end();
    }
}
