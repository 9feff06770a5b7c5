//! A `<cpu>` definition as libvirt's `virCPUDefParseXML` reads it (guest or host CPU, its
//! checks and error wording) and as `virCPUDefFormat` writes a guest CPU back.

use std::fmt::Write as _;

use super::{Error, Kind};

/// Whether the definition describes a host CPU (it has `<arch>`) or a guest's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuType {
    Host,
    Guest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Force,
    Require,
    Optional,
    Disable,
    Forbid,
}

impl Policy {
    const NAMES: [(&'static str, Policy); 5] = [
        ("force", Policy::Force),
        ("require", Policy::Require),
        ("optional", Policy::Optional),
        ("disable", Policy::Disable),
        ("forbid", Policy::Forbid),
    ];

    pub fn as_str(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("require", |(n, _)| *n)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureDef {
    pub name: String,
    /// `None` for a host CPU's features (libvirt's policy -1).
    pub policy: Option<Policy>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuDef {
    pub kind: CpuType,
    /// `custom`, `host-model`, `host-passthrough`, `maximum`; `None` on a host CPU.
    pub mode: Option<&'static str>,
    /// `match`: `exact`, `minimum`, `strict`.
    pub matching: &'static str,
    pub check: Option<&'static str>,
    pub fallback_forbid: bool,
    pub arch: Option<String>,
    pub model: Option<String>,
    pub vendor: Option<String>,
    pub features: Vec<FeatureDef>,
}

impl CpuDef {
    /// An empty guest CPU (`<cpu mode='custom' match='exact'>`).
    pub fn guest() -> CpuDef {
        CpuDef {
            kind: CpuType::Guest,
            mode: Some("custom"),
            matching: "exact",
            check: None,
            fallback_forbid: false,
            arch: None,
            model: None,
            vendor: None,
            features: Vec::new(),
        }
    }

    /// Set `name`'s policy, adding it when missing (`virCPUDefUpdateFeature`).
    pub fn update_feature(&mut self, name: &str, policy: Option<Policy>) {
        let policy = if self.kind == CpuType::Host {
            None
        } else {
            policy
        };
        match self.features.iter_mut().find(|f| f.name == name) {
            Some(f) => f.policy = policy,
            None => self.features.push(FeatureDef {
                name: name.to_owned(),
                policy,
            }),
        }
    }

    /// libvirt's formatting of a guest CPU with two-space indentation.
    pub fn format(&self) -> String {
        let mut s = String::from("<cpu");
        let custom = self.mode == Some("custom");
        if self.kind == CpuType::Guest && (!custom || self.model.is_some()) {
            let _ = write!(s, " mode='{}'", self.mode.unwrap_or("custom"));
            if custom {
                let _ = write!(s, " match='{}'", self.matching);
            }
            if let Some(c) = self.check {
                let _ = write!(s, " check='{c}'");
            }
        }
        let mut body = String::new();
        if self.kind == CpuType::Host
            && let Some(a) = &self.arch
        {
            let _ = writeln!(body, "  <arch>{a}</arch>");
        }
        let model_mode = custom || self.mode == Some("host-model") || self.mode.is_none();
        if model_mode {
            if let Some(m) = &self.model {
                if self.kind == CpuType::Guest {
                    let fb = if self.fallback_forbid {
                        "forbid"
                    } else {
                        "allow"
                    };
                    let _ = writeln!(body, "  <model fallback='{fb}'>{}</model>", esc(m));
                } else {
                    let _ = writeln!(body, "  <model>{}</model>", esc(m));
                }
            }
            if let Some(v) = &self.vendor {
                let _ = writeln!(body, "  <vendor>{}</vendor>", esc(v));
            }
        }
        for f in &self.features {
            match f.policy {
                Some(p) if self.kind == CpuType::Guest => {
                    let _ = writeln!(
                        body,
                        "  <feature policy='{}' name='{}'/>",
                        p.as_str(),
                        f.name
                    );
                }
                _ => {
                    let _ = writeln!(body, "  <feature name='{}'/>", f.name);
                }
            }
        }
        if body.is_empty() {
            s.push_str("/>\n");
        } else {
            s.push_str(">\n");
            s.push_str(&body);
            s.push_str("</cpu>\n");
        }
        s
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn xml_err(msg: impl Into<String>) -> Error {
    Error::new(Kind::XmlError, msg)
}

fn config(msg: impl Into<String>) -> Error {
    Error::new(Kind::ConfigUnsupported, msg)
}

/// The text of `node`'s first `tag` child (libvirt's `string(./tag[1])`); `None` when absent
/// or empty.
fn child_text(node: roxmltree::Node, tag: &str) -> Option<String> {
    let c = node.children().find(|c| c.has_tag_name(tag))?;
    let t: String = c
        .descendants()
        .filter(|d| d.is_text())
        .filter_map(|d| d.text())
        .collect();
    (!t.is_empty()).then_some(t)
}

fn uint_attr(
    node: roxmltree::Node,
    name: &str,
    required: bool,
    nonzero: bool,
) -> Result<Option<u32>, Error> {
    let el = node.tag_name().name();
    let Some(v) = node.attribute(name) else {
        if required {
            return Err(xml_err(format!(
                "Missing required attribute '{name}' in element '{el}'"
            )));
        }
        return Ok(None);
    };
    let n: u32 = v.parse().map_err(|_| {
        xml_err(format!(
            "Invalid value for attribute '{name}' in element '{el}': '{v}'. Expected non-negative integer value"
        ))
    })?;
    if nonzero && n == 0 {
        return Err(xml_err(format!(
            "Invalid value for attribute '{name}' in element '{el}': Zero is not permitted"
        )));
    }
    Ok(Some(n))
}

fn enum_attr(
    node: roxmltree::Node,
    name: &str,
    values: &[&'static str],
) -> Result<Option<&'static str>, Error> {
    let Some(v) = node.attribute(name) else {
        return Ok(None);
    };
    values
        .iter()
        .find(|x| **x == v)
        .copied()
        .map(Some)
        .ok_or_else(|| {
            xml_err(format!(
                "Invalid value for attribute '{name}' in element '{}': '{v}'.",
                node.tag_name().name()
            ))
        })
}

/// Parse one `<cpu>` document; `force` makes it a host or guest CPU whatever it says
/// (libvirt's `VIR_CPU_TYPE_AUTO` when `None`: host when it has `<arch>`).
pub fn parse(xml: &str, force: Option<CpuType>) -> Result<CpuDef, Error> {
    let doc = roxmltree::Document::parse(xml)
        .map_err(|e| xml_err(format!("(CPU_definition):{}: {e}", e.pos().row)))?;
    let cpu = doc.root_element();
    if !cpu.has_tag_name("cpu") {
        return Err(xml_err("XML does not contain expected 'cpu' element"));
    }
    let has = |tag: &str| cpu.children().any(|c| c.has_tag_name(tag));
    let kind = match force {
        Some(k) => k,
        None if has("arch") => {
            if cpu.attribute("match").is_some() {
                return Err(xml_err(
                    "'arch' element cannot be used inside 'cpu' element with 'match' attribute'",
                ));
            }
            CpuType::Host
        }
        None => CpuType::Guest,
    };
    let mode = match cpu.attribute("mode") {
        Some(_) if kind == CpuType::Host => {
            return Err(config("Attribute mode is only allowed for guest CPU"));
        }
        Some(m) => Some(
            ["custom", "host-model", "host-passthrough", "maximum"]
                .into_iter()
                .find(|x| *x == m)
                .ok_or_else(|| config(format!("Invalid mode attribute '{m}'")))?,
        ),
        None if kind == CpuType::Host => None,
        None => Some("custom"),
    };
    if let Some(v) = cpu.attribute("migratable") {
        if !["on", "off"].contains(&v) {
            return Err(xml_err(format!(
                "Invalid value for attribute 'migratable' in element 'cpu': '{v}'."
            )));
        }
        if !matches!(mode, Some("host-passthrough" | "maximum")) {
            return Err(config(
                "Attribute migratable is only allowed for 'host-passthrough' / 'maximum' CPU mode",
            ));
        }
    }
    let mut def = CpuDef {
        kind,
        mode,
        matching: "exact",
        check: None,
        fallback_forbid: false,
        arch: None,
        model: None,
        vendor: None,
        features: Vec::new(),
    };
    if kind == CpuType::Guest {
        if let Some(m) = enum_attr(cpu, "match", &["exact", "minimum", "strict"])? {
            def.matching = m;
        }
        def.check = enum_attr(cpu, "check", &["default", "none", "partial", "full"])?
            .filter(|c| *c != "default");
    }
    if kind == CpuType::Host {
        let arch = child_text(cpu, "arch").ok_or_else(|| xml_err("Missing CPU architecture"))?;
        if !crate::host::cpumodels::ARCHES.contains(&arch.as_str()) {
            return Err(config(format!("Unknown architecture {arch}")));
        }
        def.arch = Some(arch);
        if let Some(m) = cpu.children().find(|c| c.has_tag_name("microcode"))
            && let Some(v) = m.attribute("version")
            && v.parse::<u32>().is_err()
        {
            return Err(config("invalid microcode version"));
        }
        if let Some(sig) = cpu.children().find(|c| c.has_tag_name("signature")) {
            uint_attr(sig, "family", true, true)?;
            uint_attr(sig, "model", true, false)?;
            uint_attr(sig, "stepping", true, false)?;
        }
    }
    def.model = child_text(cpu, "model");
    if def.model.is_none() && kind == CpuType::Host {
        return Err(xml_err("Missing CPU model name"));
    }
    let model_node = cpu.children().find(|c| c.has_tag_name("model"));
    if kind == CpuType::Guest && !matches!(mode, Some("host-passthrough" | "maximum")) {
        if let Some(fb) = model_node.and_then(|m| m.attribute("fallback")) {
            match fb {
                "allow" => {}
                "forbid" => def.fallback_forbid = true,
                _ => return Err(config("Invalid fallback attribute")),
            }
        }
        if let Some(id) = model_node.and_then(|m| m.attribute("vendor_id")) {
            if id.len() != 12 {
                return Err(xml_err("vendor_id must be exactly 12 characters long"));
            }
            if id.contains(',') {
                return Err(xml_err("vendor id is invalid"));
            }
        }
    }
    def.vendor = child_text(cpu, "vendor");
    if def.vendor.is_some() && def.model.is_none() {
        return Err(xml_err("CPU vendor specified without CPU model"));
    }
    if let Some(t) = cpu.children().find(|c| c.has_tag_name("topology")) {
        uint_attr(t, "sockets", true, true)?;
        uint_attr(t, "dies", false, true)?;
        uint_attr(t, "cores", true, true)?;
        uint_attr(t, "threads", true, true)?;
    }
    let features: Vec<_> = cpu
        .children()
        .filter(|c| c.has_tag_name("feature"))
        .collect();
    if !features.is_empty() && def.model.is_none() && mode == Some("custom") {
        return Err(xml_err(
            "Non-empty feature list specified without CPU model",
        ));
    }
    for f in features {
        let policy = if kind == CpuType::Guest {
            match f.attribute("policy") {
                None => Some(Policy::Require),
                Some(p) => Some(
                    Policy::NAMES
                        .iter()
                        .find(|(n, _)| *n == p)
                        .map(|(_, p)| *p)
                        .ok_or_else(|| config("Invalid CPU feature policy"))?,
                ),
            }
        } else {
            None
        };
        let name = f
            .attribute("name")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| xml_err("Invalid CPU feature name"))?;
        if def.features.iter().any(|x| x.name == name) {
            return Err(xml_err(format!(
                "CPU feature '{name}' specified more than once"
            )));
        }
        def.features.push(FeatureDef {
            name: name.to_owned(),
            policy,
        });
    }
    let caches = cpu.children().filter(|c| c.has_tag_name("cache")).count();
    if caches > 1 {
        return Err(xml_err("at most one CPU cache element may be specified"));
    }
    Ok(def)
}
