//! TEMPORARY stand-in for the XML model being written in parallel; replaced wholesale.
pub mod state;

use std::fmt::Write;

pub const MAX_XML_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("XML document of {size} bytes is over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("unknown element {path}")]
    UnknownElement { path: String },
    #[error("missing {path}")]
    Missing { path: String },
    #[error("invalid value '{value}' at {path}: {reason}")]
    InvalidValue {
        path: String,
        value: String,
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DomainType {
    Test,
    Qemu,
    Kvm,
    Lxc,
}
impl DomainType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Test => "test",
            Self::Qemu => "qemu",
            Self::Kvm => "kvm",
            Self::Lxc => "lxc",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct FormatOptions {
    pub id: Option<i32>,
    pub secure: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DomainDef {
    pub domain_type: DomainType,
    pub name: String,
    pub uuid: uuid::Uuid,
    pub title: Option<String>,
    pub description: Option<String>,
    pub metadata: Option<String>,
    pub memory_kib: u64,
    pub current_memory_kib: Option<u64>,
    pub max_vcpus: u32,
    pub current_vcpus: Option<u32>,
    pub os_type: String,
    pub on_poweroff: Option<LifecycleAction>,
    pub on_reboot: Option<LifecycleAction>,
    pub on_crash: Option<LifecycleAction>,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleAction {
    Destroy,
    Restart,
    Preserve,
    RenameRestart,
    CoredumpDestroy,
    CoredumpRestart,
}

pub fn validate_name(kind: &str, name: &str) -> Result<(), XmlError> {
    let bad = |reason: &str| {
        Err(XmlError::InvalidValue {
            path: format!("/{kind}/name"),
            value: name.into(),
            reason: reason.into(),
        })
    };
    if name.is_empty() {
        return bad("must not be empty");
    }
    if name.contains('/') {
        return bad("must not contain '/'");
    }
    if name.chars().any(|c| c.is_control()) {
        return bad("must not contain control characters");
    }
    Ok(())
}

fn text(n: roxmltree::Node) -> String {
    n.text().unwrap_or("").trim().to_string()
}

impl DomainDef {
    pub fn from_xml(xml: &str) -> Result<Self, XmlError> {
        if xml.len() > MAX_XML_BYTES {
            return Err(XmlError::TooLarge {
                size: xml.len(),
                limit: MAX_XML_BYTES,
            });
        }
        let doc =
            roxmltree::Document::parse(xml).map_err(|e| XmlError::Malformed(e.to_string()))?;
        Self::from_node(doc.root_element(), xml)
    }
    fn from_node(root: roxmltree::Node, xml: &str) -> Result<Self, XmlError> {
        let t = match root.attribute("type") {
            Some("test") => DomainType::Test,
            Some("qemu") => DomainType::Qemu,
            Some("kvm") => DomainType::Kvm,
            Some("lxc") => DomainType::Lxc,
            other => {
                return Err(XmlError::InvalidValue {
                    path: "/domain/@type".into(),
                    value: other.unwrap_or("").into(),
                    reason: "expected test, qemu, kvm or lxc".into(),
                });
            }
        };
        let mut d = DomainDef {
            domain_type: t,
            name: String::new(),
            uuid: uuid::Uuid::new_v4(),
            title: None,
            description: None,
            metadata: None,
            memory_kib: 0,
            current_memory_kib: None,
            max_vcpus: 1,
            current_vcpus: None,
            os_type: "hvm".into(),
            on_poweroff: None,
            on_reboot: None,
            on_crash: None,
        };
        let mut have_name = false;
        for c in root.children().filter(|c| c.is_element()) {
            match c.tag_name().name() {
                "name" => {
                    d.name = text(c);
                    have_name = true;
                }
                "uuid" => {
                    d.uuid =
                        uuid::Uuid::parse_str(&text(c)).map_err(|e| XmlError::InvalidValue {
                            path: "/domain/uuid".into(),
                            value: text(c),
                            reason: e.to_string(),
                        })?
                }
                "title" => d.title = Some(text(c)),
                "description" => d.description = Some(text(c)),
                "metadata" => {
                    let r = c.range();
                    let inner = &xml[r];
                    let s = inner.find('>').map(|i| i + 1).unwrap_or(0);
                    let e = inner.rfind("</").unwrap_or(inner.len());
                    d.metadata = Some(inner[s.min(e)..e].to_string());
                }
                "memory" => {
                    d.memory_kib = text(c).parse().map_err(|_| XmlError::InvalidValue {
                        path: "/domain/memory".into(),
                        value: text(c),
                        reason: "not a number".into(),
                    })?
                }
                "currentMemory" => d.current_memory_kib = text(c).parse().ok(),
                "vcpu" => {
                    d.max_vcpus = text(c).parse().map_err(|_| XmlError::InvalidValue {
                        path: "/domain/vcpu".into(),
                        value: text(c),
                        reason: "not a number".into(),
                    })?;
                    d.current_vcpus = c.attribute("current").and_then(|v| v.parse().ok());
                }
                "os" => {}
                "devices" => {}
                other => {
                    return Err(XmlError::UnknownElement {
                        path: format!("/domain/{other}"),
                    });
                }
            }
        }
        if !have_name {
            return Err(XmlError::Missing {
                path: "/domain/name".into(),
            });
        }
        validate_name("domain", &d.name)?;
        if d.memory_kib == 0 {
            return Err(XmlError::InvalidValue {
                path: "/domain/memory".into(),
                value: "0".into(),
                reason: "must be positive".into(),
            });
        }
        Ok(d)
    }
    pub fn to_xml(&self, opts: &FormatOptions) -> String {
        let mut s = String::new();
        let _ = write!(s, "<domain type='{}'", self.domain_type.as_str());
        if let Some(id) = opts.id {
            let _ = write!(s, " id='{id}'");
        }
        let _ = write!(
            s,
            ">\n  <name>{}</name>\n  <uuid>{}</uuid>\n",
            self.name, self.uuid
        );
        if let Some(m) = &self.metadata {
            let _ = writeln!(s, "  <metadata>{m}</metadata>");
        }
        let _ = write!(
            s,
            "  <memory unit='KiB'>{}</memory>\n  <vcpu>{}</vcpu>\n  <os>\n    <type>{}</type>\n  </os>\n</domain>\n",
            self.memory_kib, self.max_vcpus, self.os_type
        );
        s
    }
    pub fn vcpus(&self) -> u32 {
        self.current_vcpus.unwrap_or(self.max_vcpus)
    }
    pub fn current_memory(&self) -> u64 {
        self.current_memory_kib.unwrap_or(self.memory_kib)
    }
    pub fn owner_uid(&self) -> Option<u32> {
        None
    }
    pub fn set_owner_uid(&mut self, _uid: Option<u32>) {}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemorySnapshotKind {
    No,
    Internal,
    External,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskSnapshotKind {
    No,
    Internal,
    External,
    Manual,
}
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotMemory {
    pub snapshot: MemorySnapshotKind,
    pub file: Option<String>,
}
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotDisk {
    pub name: String,
    pub snapshot: Option<DiskSnapshotKind>,
    pub driver_type: Option<String>,
    pub source_file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SnapshotDef {
    pub name: Option<String>,
    pub description: Option<String>,
    pub state: Option<String>,
    pub creation_time: Option<i64>,
    pub parent: Option<String>,
    pub memory: Option<SnapshotMemory>,
    pub disks: Vec<SnapshotDisk>,
    pub domain: Option<DomainDef>,
    pub inactive_domain: Option<DomainDef>,
    pub active: Option<bool>,
    pub cookie: Option<String>,
}

impl SnapshotDef {
    pub fn from_xml(xml: &str) -> Result<Self, XmlError> {
        if xml.len() > MAX_XML_BYTES {
            return Err(XmlError::TooLarge {
                size: xml.len(),
                limit: MAX_XML_BYTES,
            });
        }
        let doc =
            roxmltree::Document::parse(xml).map_err(|e| XmlError::Malformed(e.to_string()))?;
        let mut s = SnapshotDef::default();
        for c in doc.root_element().children().filter(|c| c.is_element()) {
            match c.tag_name().name() {
                "name" => {
                    let n = text(c);
                    validate_name("domainsnapshot", &n)?;
                    s.name = Some(n)
                }
                "description" => s.description = Some(text(c)),
                "state" => s.state = Some(text(c)),
                "creationTime" => s.creation_time = text(c).parse().ok(),
                "parent" => s.parent = c.children().find(|n| n.has_tag_name("name")).map(text),
                "memory" => {
                    s.memory = Some(SnapshotMemory {
                        snapshot: match c.attribute("snapshot") {
                            Some("internal") => MemorySnapshotKind::Internal,
                            Some("external") => MemorySnapshotKind::External,
                            _ => MemorySnapshotKind::No,
                        },
                        file: c.attribute("file").map(String::from),
                    })
                }
                "domain" => s.domain = Some(DomainDef::from_node(c, xml)?),
                "active" => s.active = Some(text(c) == "1"),
                other => {
                    return Err(XmlError::UnknownElement {
                        path: format!("/domainsnapshot/{other}"),
                    });
                }
            }
        }
        Ok(s)
    }
    pub fn to_xml(&self, opts: &FormatOptions) -> String {
        let mut s = String::from("<domainsnapshot>\n");
        if let Some(n) = &self.name {
            let _ = writeln!(s, "  <name>{n}</name>");
        }
        if let Some(n) = &self.description {
            let _ = writeln!(s, "  <description>{n}</description>");
        }
        if let Some(n) = &self.state {
            let _ = writeln!(s, "  <state>{n}</state>");
        }
        if let Some(p) = &self.parent {
            let _ = writeln!(s, "  <parent>\n    <name>{p}</name>\n  </parent>");
        }
        if let Some(t) = self.creation_time {
            let _ = writeln!(s, "  <creationTime>{t}</creationTime>");
        }
        if let Some(m) = &self.memory {
            let _ = writeln!(
                s,
                "  <memory snapshot='{}'/>",
                match m.snapshot {
                    MemorySnapshotKind::No => "no",
                    MemorySnapshotKind::Internal => "internal",
                    MemorySnapshotKind::External => "external",
                }
            );
        }
        if let Some(d) = &self.domain {
            s.push_str(&d.to_xml(opts));
        }
        if let Some(a) = self.active {
            let _ = writeln!(s, "  <active>{}</active>", a as u8);
        }
        s.push_str("</domainsnapshot>\n");
        s
    }
}
