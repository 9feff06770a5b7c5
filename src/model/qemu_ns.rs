//! libvirt's QEMU namespace (`xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'`):
//! `<qemu:commandline>` passes arguments and environment variables to QEMU unchecked. A domain
//! that uses it is tainted (nothing vouches for what QEMU then does), and defining one takes a
//! permission of its own.

use crate::model::error::XmlError;
use crate::model::writer::Writer;
use crate::model::xml::Elem;

/// The namespace's URI, as libvirt defines it.
pub const QEMU_NS: &str = "http://libvirt.org/schemas/domain/qemu/1.0";

/// `<qemu:commandline>`: extra arguments, and variables for QEMU's environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QemuCommandline {
    pub args: Vec<String>,
    /// Name and value (`None`: set to the empty string).
    pub env: Vec<(String, Option<String>)>,
}

impl QemuCommandline {
    pub(crate) fn read(mut e: Elem) -> Result<QemuCommandline, XmlError> {
        let mut out = QemuCommandline::default();
        e.each_ns(QEMU_NS, "arg", |mut a| {
            out.args.push(a.req_attr("value")?.to_owned());
            a.finish()
        })?;
        e.each_ns(QEMU_NS, "env", |mut v| {
            let name = v.req_attr_with("name", |n| {
                let ok = n
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if ok {
                    Ok(n.to_owned())
                } else {
                    Err(
                        "an environment variable name is letters, digits and '_', not \
                         starting with a digit"
                            .to_owned(),
                    )
                }
            })?;
            let value = v.attr_with("value", |s| Ok::<_, String>(s.to_owned()))?;
            out.env.push((name, value));
            v.finish()
        })?;
        e.finish()?;
        Ok(out)
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("qemu:commandline");
        for a in &self.args {
            w.start("qemu:arg");
            w.attr("value", a);
            w.end();
        }
        for (name, value) in &self.env {
            w.start("qemu:env");
            w.attr("name", name);
            w.attr_opt("value", value.as_deref());
            w.end();
        }
        w.end();
    }
}
