//! `<features>`: hypervisor features toggled for the guest.

use crate::model::error::XmlError;
use crate::model::values;
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

/// A feature element that may carry `state='on|off'`. `Present` is the
/// element without the attribute, which libvirt treats as on; it is kept
/// apart so documents round-trip as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureState {
    Present,
    On,
    Off,
}

impl FeatureState {
    /// Whether the feature ends up enabled.
    pub fn enabled(self) -> bool {
        !matches!(self, FeatureState::Off)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    pub acpi: bool,
    pub apic: bool,
    pub pae: bool,
    pub hap: Option<FeatureState>,
    pub vmport: Option<FeatureState>,
    pub smm: Option<FeatureState>,
}

impl Features {
    pub(crate) fn read(mut e: Elem) -> Result<Features> {
        let f = Features {
            acpi: e.flag("acpi")?,
            apic: e.flag("apic")?,
            pae: e.flag("pae")?,
            hap: read_state(&mut e, "hap")?,
            vmport: read_state(&mut e, "vmport")?,
            smm: read_state(&mut e, "smm")?,
        };
        e.finish()?;
        Ok(f)
    }

    /// Writes `<features>` unless nothing is set.
    pub(crate) fn write(&self, w: &mut Writer) {
        if *self == Features::default() {
            return;
        }
        w.start("features");
        w.flag("acpi", self.acpi);
        w.flag("apic", self.apic);
        w.flag("pae", self.pae);
        for (name, state) in [
            ("hap", self.hap),
            ("vmport", self.vmport),
            ("smm", self.smm),
        ] {
            match state {
                None => {}
                Some(FeatureState::Present) => w.flag(name, true),
                Some(s) => w.leaf_attr(name, "state", values::on_off_str(s.enabled())),
            }
        }
        w.end();
    }
}

fn read_state(e: &mut Elem, name: &str) -> Result<Option<FeatureState>> {
    match e.child(name)? {
        None => Ok(None),
        Some(mut c) => {
            let state = match c.attr_with("state", values::on_off)? {
                None => FeatureState::Present,
                Some(true) => FeatureState::On,
                Some(false) => FeatureState::Off,
            };
            c.finish()?;
            Ok(Some(state))
        }
    }
}
