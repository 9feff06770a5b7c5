//! `<watchdog>`: emulated hardware watchdog and what to do when it fires.

use crate::model::address::DeviceInfo;
use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

xml_enum! {
    pub enum WatchdogModel {
        I6300esb = "i6300esb",
        Ib700 = "ib700",
        Diag288 = "diag288",
        Itco = "itco",
    }
}

xml_enum! {
    pub enum WatchdogAction {
        Reset = "reset",
        Shutdown = "shutdown",
        Poweroff = "poweroff",
        Pause = "pause",
        None = "none",
        Dump = "dump",
        InjectNmi = "inject-nmi",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watchdog {
    pub model: WatchdogModel,
    pub action: Option<WatchdogAction>,
    pub info: DeviceInfo,
}

impl Watchdog {
    pub(crate) fn read(mut e: Elem) -> Result<Watchdog, XmlError> {
        let model = e.req_attr_with("model", values::keyword::<WatchdogModel>)?;
        let action = e.attr_with("action", values::keyword::<WatchdogAction>)?;
        let info = DeviceInfo::read(&mut e)?;
        e.finish()?;
        Ok(Watchdog {
            model,
            action,
            info,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("watchdog");
        w.attr("model", self.model.as_str());
        w.attr_opt("action", self.action.map(|a| a.as_str()));
        self.info.write(w);
        w.end();
    }
}
