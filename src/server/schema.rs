//! Interfaces read from the introspection XML a front end ships: the contract each call's
//! signature (and, in debug builds, each reply's) is checked against, served verbatim to
//! `Introspect`.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method {
    pub in_sig: String,
    pub out_sig: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub sig: String,
    pub writable: bool,
}

/// One interface: its members and the exact text of its `<interface>` element.
#[derive(Debug, Clone)]
pub struct Interface {
    pub name: String,
    pub methods: HashMap<String, Method>,
    pub properties: Vec<(String, Property)>,
    pub signals: Vec<String>,
    pub xml: String,
}

impl Interface {
    pub fn property(&self, name: &str) -> Option<&Property> {
        self.properties
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("interface XML does not parse: {0}")]
    Xml(#[from] roxmltree::Error),
    #[error("interface XML has no <interface> element")]
    NoInterface,
}

/// Parse one shipped document (a `<node>` with one `<interface>`).
pub fn parse(doc: &str) -> Result<Interface, SchemaError> {
    let parsed = roxmltree::Document::parse_with_options(
        doc,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )?;
    let iface = parsed
        .descendants()
        .find(|n| n.has_tag_name("interface"))
        .ok_or(SchemaError::NoInterface)?;
    let mut out = Interface {
        name: iface.attribute("name").unwrap_or_default().to_owned(),
        methods: HashMap::new(),
        properties: Vec::new(),
        signals: Vec::new(),
        xml: doc[iface.range()].to_owned(),
    };
    for member in iface.children().filter(|n| n.is_element()) {
        let name = member.attribute("name").unwrap_or_default().to_owned();
        match member.tag_name().name() {
            "method" => {
                let (mut in_sig, mut out_sig) = (String::new(), String::new());
                for arg in member.children().filter(|n| n.has_tag_name("arg")) {
                    let t = arg.attribute("type").unwrap_or_default();
                    match arg.attribute("direction") {
                        Some("out") => out_sig.push_str(t),
                        _ => in_sig.push_str(t),
                    }
                }
                out.methods.insert(name, Method { in_sig, out_sig });
            }
            "property" => out.properties.push((
                name,
                Property {
                    sig: member.attribute("type").unwrap_or_default().to_owned(),
                    writable: member.attribute("access") == Some("readwrite"),
                },
            )),
            "signal" => out.signals.push(name),
            _ => {}
        }
    }
    Ok(out)
}

/// The standard interfaces every object has, as `Introspect` shows them.
pub const STANDARD_XML: &str = r#"  <interface name="org.freedesktop.DBus.Peer">
    <method name="Ping"/>
    <method name="GetMachineId">
      <arg name="machine_uuid" type="s" direction="out"/>
    </method>
  </interface>
  <interface name="org.freedesktop.DBus.Introspectable">
    <method name="Introspect">
      <arg name="xml_data" type="s" direction="out"/>
    </method>
  </interface>
  <interface name="org.freedesktop.DBus.Properties">
    <method name="Get">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="property_name" type="s" direction="in"/>
      <arg name="value" type="v" direction="out"/>
    </method>
    <method name="GetAll">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="props" type="a{sv}" direction="out"/>
    </method>
    <method name="Set">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="property_name" type="s" direction="in"/>
      <arg name="value" type="v" direction="in"/>
    </method>
    <signal name="PropertiesChanged">
      <arg name="interface_name" type="s"/>
      <arg name="changed_properties" type="a{sv}"/>
      <arg name="invalidated_properties" type="as"/>
    </signal>
  </interface>
"#;

pub const OBJECT_MANAGER_XML: &str = r#"  <interface name="org.freedesktop.DBus.ObjectManager">
    <method name="GetManagedObjects">
      <arg name="object_paths_interfaces_and_properties" type="a{oa{sa{sv}}}" direction="out"/>
    </method>
    <signal name="InterfacesAdded">
      <arg name="object_path" type="o"/>
      <arg name="interfaces_and_properties" type="a{sa{sv}}"/>
    </signal>
    <signal name="InterfacesRemoved">
      <arg name="object_path" type="o"/>
      <arg name="interfaces" type="as"/>
    </signal>
  </interface>
"#;
