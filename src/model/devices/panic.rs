//! `<panic>`: a device through which the guest reports a kernel panic to the host.

use crate::model::address::DeviceInfo;
use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

xml_enum! {
    pub enum PanicModel {
        Isa = "isa",
        Pseries = "pseries",
        Hyperv = "hyperv",
        S390 = "s390",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panic {
    /// Left to the driver's default for the architecture when absent (ISA on x86).
    pub model: Option<PanicModel>,
    pub info: DeviceInfo,
}

impl Panic {
    pub(crate) fn read(mut e: Elem) -> Result<Panic, XmlError> {
        let model = e.attr_with("model", values::keyword::<PanicModel>)?;
        let info = DeviceInfo::read(&mut e)?;
        e.finish()?;
        Ok(Panic { model, info })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("panic");
        w.attr_opt("model", self.model.map(|m| m.as_str()));
        self.info.write(w);
        w.end();
    }
}
