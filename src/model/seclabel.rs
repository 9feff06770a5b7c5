//! `<seclabel>`: the security labels of a domain, one per security model. libvirt's QEMU driver
//! always stacks its DAC model (the user and group QEMU runs as), so a running guest's XML
//! carries a `dynamic` DAC label even when no MAC security driver is active.

use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

xml_enum! {
    pub enum SecLabelType {
        Dynamic = "dynamic",
        Static = "static",
        None = "none",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecLabel {
    pub kind: SecLabelType,
    /// The security model (`dac`, `selinux`, `apparmor`, `none`); absent: the first one.
    pub model: Option<String>,
    pub relabel: Option<bool>,
    pub label: Option<String>,
    pub imagelabel: Option<String>,
    pub baselabel: Option<String>,
}

impl SecLabel {
    /// The DAC label of a process running as `uid`:`gid`, as libvirt writes it.
    pub fn dac(uid: u32, gid: u32) -> SecLabel {
        let label = format!("+{uid}:+{gid}");
        SecLabel {
            kind: SecLabelType::Dynamic,
            model: Some("dac".into()),
            relabel: Some(true),
            label: Some(label.clone()),
            imagelabel: Some(label),
            baselabel: None,
        }
    }

    pub(crate) fn read(mut e: Elem) -> Result<SecLabel, XmlError> {
        let kind = e
            .attr_with("type", values::keyword::<SecLabelType>)?
            .unwrap_or(SecLabelType::Dynamic);
        let model = e.attr_string("model");
        let relabel = e.attr_with("relabel", values::yes_no)?;
        let label = e.child_text("label")?;
        let imagelabel = e.child_text("imagelabel")?;
        let baselabel = e.child_text("baselabel")?;
        if kind == SecLabelType::None && relabel == Some(true) {
            return Err(e.attr_invalid("relabel", "yes", "a label of type 'none' cannot relabel"));
        }
        if kind == SecLabelType::Static && label.is_none() {
            return Err(e.missing_child("label"));
        }
        e.finish()?;
        Ok(SecLabel {
            kind,
            model,
            relabel,
            label,
            imagelabel,
            baselabel,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("seclabel");
        w.attr("type", self.kind.as_str());
        w.attr_opt("model", self.model.as_deref());
        w.attr_opt("relabel", self.relabel.map(values::yes_no_str));
        w.leaf_opt("label", self.label.as_deref());
        w.leaf_opt("imagelabel", self.imagelabel.as_deref());
        w.leaf_opt("baselabel", self.baselabel.as_deref());
        w.end();
    }
}
