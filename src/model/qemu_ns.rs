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

/// The rest of libvirt's QEMU namespace: `<qemu:capabilities>` (probed QEMU capabilities
/// added or taken away) and `<qemu:override>` (properties of a device's `-device` set or
/// removed). Both pass the definition's word over what QEMU was found to do, so they taint
/// the domain and take the same permission as `<qemu:commandline>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QemuTweaks {
    /// `<qemu:capabilities>`: names to add, names to delete (`None`: no element).
    pub capabilities: Option<QemuCapabilities>,
    /// `<qemu:override>` (`None`: no element).
    pub overrides: Option<Vec<DeviceOverride>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QemuCapabilities {
    pub add: Vec<String>,
    pub del: Vec<String>,
}

/// `<qemu:device alias=...><qemu:frontend>`: properties of one device's `-device`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceOverride {
    pub alias: String,
    /// `None`: no `<qemu:frontend>` element.
    pub frontend: Option<Vec<OverrideProperty>>,
}

/// How an overriding property's value is typed, as libvirt names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideType {
    String,
    Signed,
    Unsigned,
    Bool,
    Remove,
}

impl OverrideType {
    pub fn as_str(self) -> &'static str {
        match self {
            OverrideType::String => "string",
            OverrideType::Signed => "signed",
            OverrideType::Unsigned => "unsigned",
            OverrideType::Bool => "bool",
            OverrideType::Remove => "remove",
        }
    }
}

/// `<qemu:property name type value>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideProperty {
    pub name: String,
    pub kind: OverrideType,
    /// Absent only for `remove`.
    pub value: Option<String>,
}

impl QemuTweaks {
    pub fn is_empty(&self) -> bool {
        self.capabilities.is_none() && self.overrides.is_none()
    }

    /// Read `<qemu:capabilities>` and `<qemu:override>` of `<domain>`.
    pub(crate) fn read(domain: &mut Elem) -> Result<QemuTweaks, XmlError> {
        let capabilities = match domain.child_ns(QEMU_NS, "capabilities")? {
            None => None,
            Some(mut c) => {
                let mut caps = QemuCapabilities::default();
                c.each_ns(QEMU_NS, "add", |mut a| {
                    caps.add.push(a.req_attr_with("capability", cap_name)?);
                    a.finish()
                })?;
                c.each_ns(QEMU_NS, "del", |mut a| {
                    caps.del.push(a.req_attr_with("capability", cap_name)?);
                    a.finish()
                })?;
                c.finish()?;
                Some(caps)
            }
        };
        let overrides = match domain.child_ns(QEMU_NS, "override")? {
            None => None,
            Some(mut o) => {
                let mut list = Vec::new();
                o.each_ns(QEMU_NS, "device", |mut d| {
                    let alias = d.req_attr("alias")?.to_owned();
                    let frontend = match d.child_ns(QEMU_NS, "frontend")? {
                        None => None,
                        Some(mut f) => {
                            let mut props = Vec::new();
                            f.each_ns(QEMU_NS, "property", |p| {
                                props.push(read_property(p)?);
                                Ok(())
                            })?;
                            f.finish()?;
                            Some(props)
                        }
                    };
                    d.finish()?;
                    list.push(DeviceOverride { alias, frontend });
                    Ok(())
                })?;
                o.finish()?;
                Some(list)
            }
        };
        Ok(QemuTweaks {
            capabilities,
            overrides,
        })
    }

    /// Written after `<qemu:commandline>`, as libvirt orders them.
    pub(crate) fn write(&self, w: &mut Writer) {
        if let Some(c) = &self.capabilities {
            w.start("qemu:capabilities");
            for (tag, list) in [("qemu:add", &c.add), ("qemu:del", &c.del)] {
                for n in list {
                    w.start(tag);
                    w.attr("capability", n);
                    w.end();
                }
            }
            w.end();
        }
        if let Some(list) = &self.overrides {
            w.start("qemu:override");
            for d in list {
                w.start("qemu:device");
                w.attr("alias", &d.alias);
                if let Some(props) = &d.frontend {
                    w.start("qemu:frontend");
                    for p in props {
                        w.start("qemu:property");
                        w.attr("name", &p.name);
                        w.attr("type", p.kind.as_str());
                        w.attr_opt("value", p.value.as_deref());
                        w.end();
                    }
                    w.end();
                }
                w.end();
            }
            w.end();
        }
    }
}

fn cap_name(n: &str) -> Result<String, String> {
    if !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Ok(n.to_owned())
    } else {
        Err("a capability name is letters, digits, '-', '_' and '.'".into())
    }
}

fn read_property(mut p: Elem) -> Result<OverrideProperty, XmlError> {
    let name = p.req_attr_with("name", |n| {
        if n == "id" {
            Err("property 'id' can't be overridden".to_owned())
        } else if n.is_empty() {
            Err("a property needs a name".to_owned())
        } else {
            Ok(n.to_owned())
        }
    })?;
    let kind = p.req_attr_with("type", |t| match t {
        "string" => Ok(OverrideType::String),
        "signed" => Ok(OverrideType::Signed),
        "unsigned" => Ok(OverrideType::Unsigned),
        "bool" => Ok(OverrideType::Bool),
        "remove" => Ok(OverrideType::Remove),
        _ => Err("one of string, signed, unsigned, bool, remove".to_owned()),
    })?;
    let value = p.attr_with("value", |v| {
        let ok = match kind {
            OverrideType::String => true,
            OverrideType::Signed => v.parse::<i64>().is_ok(),
            OverrideType::Unsigned => v.parse::<u64>().is_ok(),
            OverrideType::Bool => matches!(v, "true" | "false"),
            OverrideType::Remove => {
                return Err("a 'remove' property takes no value".to_owned());
            }
        };
        if ok {
            Ok(v.to_owned())
        } else {
            Err(format!("not a valid '{}' value", kind.as_str()))
        }
    })?;
    if value.is_none() && kind != OverrideType::Remove {
        return Err(p.missing_attr("value"));
    }
    p.finish()?;
    Ok(OverrideProperty { name, kind, value })
}

#[cfg(test)]
mod tests {
    use crate::model::DomainDef;

    fn domain(ns: &str) -> String {
        format!(
            "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\
             <name>q</name><memory>1024</memory><vcpu>1</vcpu><os><type>hvm</type></os>{ns}\
             </domain>"
        )
    }

    /// libvirt's `qemu-ns` test shapes: capabilities and device overrides, written back after
    /// `<qemu:commandline>` in libvirt's order, and read again unchanged.
    #[test]
    fn capabilities_and_overrides_round_trip() {
        let d = DomainDef::from_xml(&domain(
            "<qemu:override><qemu:device alias='ua-disk'><qemu:frontend>\
             <qemu:property name='prop1' type='string' value='propval1'/>\
             <qemu:property name='prop2' type='signed' value='-321'/>\
             <qemu:property name='prop3' type='unsigned' value='123'/>\
             <qemu:property name='prop4' type='bool' value='true'/>\
             <qemu:property name='prop6' type='remove'/>\
             </qemu:frontend></qemu:device><qemu:device alias='ua-bare'/></qemu:override>\
             <qemu:capabilities><qemu:add capability='blockdev'/>\
             <qemu:del capability='drive'/></qemu:capabilities>\
             <qemu:commandline><qemu:arg value='-x'/></qemu:commandline>",
        ))
        .expect("accepted");
        let out = d.to_xml(&Default::default());
        let want = "  <qemu:commandline>
    <qemu:arg value='-x'/>
  </qemu:commandline>
  <qemu:capabilities>
    <qemu:add capability='blockdev'/>
    <qemu:del capability='drive'/>
  </qemu:capabilities>
  <qemu:override>
    <qemu:device alias='ua-disk'>
      <qemu:frontend>
        <qemu:property name='prop1' type='string' value='propval1'/>
        <qemu:property name='prop2' type='signed' value='-321'/>
        <qemu:property name='prop3' type='unsigned' value='123'/>
        <qemu:property name='prop4' type='bool' value='true'/>
        <qemu:property name='prop6' type='remove'/>
      </qemu:frontend>
    </qemu:device>
    <qemu:device alias='ua-bare'/>
  </qemu:override>
</domain>
";
        assert!(out.ends_with(want), "{out}");
        let again = DomainDef::from_xml(&out).expect("again");
        assert_eq!(again.to_xml(&Default::default()), out);
    }

    #[test]
    fn bad_properties_are_refused_by_path() {
        for (ns, what) in [
            (
                "<qemu:property name='id' type='string' value='x'/>",
                "'id' can't be overridden",
            ),
            (
                "<qemu:property name='p' type='signed' value='1.5'/>",
                "signed",
            ),
            (
                "<qemu:property name='p' type='unsigned' value='-1'/>",
                "unsigned",
            ),
            ("<qemu:property name='p' type='bool' value='yes'/>", "bool"),
            (
                "<qemu:property name='p' type='remove' value='1'/>",
                "takes no value",
            ),
            ("<qemu:property name='p' type='string'/>", "value"),
            ("<qemu:property name='p' type='json' value='1'/>", "one of"),
            ("<qemu:bogus/>", "bogus"),
        ] {
            let xml = domain(&format!(
                "<qemu:override><qemu:device alias='a'><qemu:frontend>{ns}</qemu:frontend>\
                 </qemu:device></qemu:override>"
            ));
            let e = DomainDef::from_xml(&xml).expect_err(ns).to_string();
            assert!(e.contains(what), "{ns}: {e}");
        }
        let e = DomainDef::from_xml(&domain(
            "<qemu:capabilities><qemu:add/></qemu:capabilities>",
        ))
        .expect_err("no name")
        .to_string();
        assert!(e.contains("capability"), "{e}");
    }
}
