//! `<domainsnapshot>`: a snapshot's description and captured domain.
//!
//! Embedded `<domain>`/`<inactiveDomain>` elements are full definitions
//! read with the same strict rules; their error paths start with
//! `/domainsnapshot/domain/...`.

use crate::model::devices::{DiskDevice, DiskFormat, DiskType};
use crate::model::domain::{DomainDef, FormatOptions};
use crate::model::error::XmlError;
use crate::model::metadata;
use crate::model::names;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::{self, Elem};

type Result<T> = std::result::Result<T, XmlError>;

xml_enum! {
    /// How guest memory is captured.
    pub enum MemorySnapshotKind {
        No = "no",
        Internal = "internal",
        External = "external",
    }
}

xml_enum! {
    /// How one disk is captured (also `<disk snapshot=...>` in a domain).
    pub enum DiskSnapshotKind {
        No = "no",
        Internal = "internal",
        External = "external",
        Manual = "manual",
    }
}

/// Domain states a snapshot may record, in libvirt's spelling.
pub const SNAPSHOT_STATES: &[&str] = &[
    "nostate",
    "running",
    "blocked",
    "paused",
    "shutdown",
    "shutoff",
    "crashed",
    "pmsuspended",
    "disk-snapshot",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotMemory {
    pub snapshot: MemorySnapshotKind,
    /// Where external memory state is saved; only with `External`.
    pub file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotDisk {
    /// Target device (`vda`) or source path of the domain disk.
    pub name: String,
    /// `External` when absent but a new source is given, as libvirt infers.
    pub snapshot: Option<DiskSnapshotKind>,
    pub disk_type: Option<DiskType>,
    /// Format of the new overlay image.
    pub driver_type: Option<DiskFormat>,
    /// Path of the new overlay image.
    pub source: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotDef {
    /// `None` when the creator left it to the driver (which uses the
    /// creation time, like libvirt).
    pub name: Option<String>,
    pub description: Option<String>,
    /// Domain state captured (one of [`SNAPSHOT_STATES`]).
    pub state: Option<String>,
    /// Unix seconds.
    pub creation_time: Option<i64>,
    pub parent: Option<String>,
    pub memory: Option<SnapshotMemory>,
    pub disks: Vec<SnapshotDisk>,
    pub domain: Option<DomainDef>,
    /// libvirt's short form `<domain><uuid>..</uuid></domain>`, written
    /// when a snapshot records which domain it belongs to but not its
    /// definition. Ignored on output when `domain` is set.
    pub domain_uuid: Option<uuid::Uuid>,
    pub inactive_domain: Option<DomainDef>,
    /// Whether this is the domain's current snapshot.
    pub active: Option<bool>,
    /// Verbatim content of `<cookie>` (hypervisor driver data).
    pub cookie: Option<String>,
}

impl SnapshotDef {
    pub fn from_xml(xml: &str) -> Result<SnapshotDef> {
        Self::parse_within(xml, super::MAX_XML_BYTES)
    }

    /// [`SnapshotDef::from_xml`] for a stored file, read with the larger
    /// [`super::MAX_STORED_XML_BYTES`] limit.
    pub fn from_stored_xml(xml: &str) -> Result<SnapshotDef> {
        Self::parse_within(xml, super::MAX_STORED_XML_BYTES)
    }

    fn parse_within(xml: &str, limit: usize) -> Result<SnapshotDef> {
        let doc = xml::parse_document_within(xml, limit)?;
        let mut e = xml::root(&doc, "domainsnapshot")?;
        let name = match e.child("name")? {
            None => None,
            Some(mut n) => {
                let name = n.text_with_raw(|t| names::check_name(t).map(|_| t.to_string()))?;
                n.finish()?;
                Some(name)
            }
        };
        let description = e.child_text("description")?;
        let state = e.child_text_with("state", |s| {
            if SNAPSHOT_STATES.contains(&s) {
                Ok(s.to_string())
            } else {
                Err(values::one_of(SNAPSHOT_STATES))
            }
        })?;
        let parent = match e.child("parent")? {
            None => None,
            Some(mut p) => {
                let mut n = p.req_child("name")?;
                let name = n.text_with_raw(|t| names::check_name(t).map(|_| t.to_string()))?;
                n.finish()?;
                p.finish()?;
                Some(name)
            }
        };
        let creation_time =
            e.child_text_with("creationTime", |t| values::int_in(t, 0, i64::MAX))?;
        let memory = e.child("memory")?.map(read_memory).transpose()?;
        let mut disks = Vec::new();
        if let Some(mut d) = e.child("disks")? {
            d.each("disk", |disk| {
                disks.push(read_disk(disk)?);
                Ok(())
            })?;
            d.finish()?;
        }
        let (mut domain, mut domain_uuid) = (None, None);
        if let Some(mut d) = e.child("domain")? {
            let node = d.node();
            let short_form = !node.has_attribute("type")
                && node
                    .children()
                    .filter(|c| c.is_element())
                    .all(|c| c.has_tag_name("uuid"));
            if short_form {
                let mut uuid = d.req_child("uuid")?;
                domain_uuid = Some(uuid.text_with(values::uuid)?);
                uuid.finish()?;
                d.finish()?;
            } else {
                domain = Some(DomainDef::read(d)?);
            }
        }
        let inactive_domain = e
            .child("inactiveDomain")?
            .map(DomainDef::read)
            .transpose()?;
        let cookie = e
            .child("cookie")?
            .map(metadata::read_verbatim)
            .transpose()?;
        let active = e.child_text_with("active", |t| match t {
            "0" => Ok(false),
            "1" => Ok(true),
            _ => Err(values::one_of(&["0", "1"])),
        })?;
        e.finish()?;
        Ok(SnapshotDef {
            name,
            description,
            state,
            creation_time,
            parent,
            memory,
            disks,
            domain,
            domain_uuid,
            inactive_domain,
            active,
            cookie,
        })
    }

    /// Checks a snapshot built or edited in code against the parser's
    /// rules by writing it out and reading it back.
    pub fn validate(&self) -> Result<()> {
        let opts = FormatOptions {
            id: None,
            secure: true,
        };
        SnapshotDef::from_xml(&self.to_xml(&opts)).map(|_| ())
    }

    /// Canonical XML. `opts.secure` applies to the embedded domains;
    /// `opts.id` is not used (snapshots record definitions, not runs).
    pub fn to_xml(&self, opts: &FormatOptions) -> String {
        let mut w = Writer::new(0);
        w.start("domainsnapshot");
        w.leaf_opt("name", self.name.as_deref());
        w.leaf_opt("description", self.description.as_deref());
        w.leaf_opt("state", self.state.as_deref());
        if let Some(p) = &self.parent {
            w.start("parent");
            w.leaf("name", p);
            w.end();
        }
        if let Some(t) = self.creation_time {
            w.leaf("creationTime", &t.to_string());
        }
        if let Some(m) = &self.memory {
            w.start("memory");
            w.attr("snapshot", m.snapshot.as_str());
            w.attr_opt("file", m.file.as_deref());
            w.end();
        }
        if !self.disks.is_empty() {
            w.start("disks");
            for d in &self.disks {
                write_disk(&mut w, d);
            }
            w.end();
        }
        if let Some(d) = &self.domain {
            d.write(&mut w, "domain", None, opts);
        } else if let Some(u) = self.domain_uuid {
            w.start("domain");
            w.leaf("uuid", &u.hyphenated().to_string());
            w.end();
        }
        if let Some(d) = &self.inactive_domain {
            d.write(&mut w, "inactiveDomain", None, opts);
        }
        if let Some(c) = &self.cookie {
            w.start("cookie");
            w.end_with_raw(c);
        }
        if let Some(a) = self.active {
            w.leaf("active", if a { "1" } else { "0" });
        }
        w.end();
        w.finish()
    }
}

fn read_memory(mut m: Elem) -> Result<SnapshotMemory> {
    let kind = m.attr_with("snapshot", values::keyword::<MemorySnapshotKind>)?;
    let file = m.attr_with("file", values::abs_path)?;
    let snapshot = match (kind, &file) {
        (None, Some(_)) | (Some(MemorySnapshotKind::External), Some(_)) => {
            MemorySnapshotKind::External
        }
        (Some(MemorySnapshotKind::External), None) => {
            return Err(m.missing_attr("file"));
        }
        (Some(k), Some(f)) => {
            return Err(m.attr_invalid(
                "file",
                f,
                format!("a memory file needs snapshot='external', not '{k}'"),
            ));
        }
        (Some(k), None) => k,
        (None, None) => return Err(m.missing_attr("snapshot")),
    };
    m.finish()?;
    Ok(SnapshotMemory { snapshot, file })
}

fn read_disk(mut d: Elem) -> Result<SnapshotDisk> {
    let name = d.req_attr_with("name", values::non_empty)?;
    let snapshot = d.attr_with("snapshot", values::keyword::<DiskSnapshotKind>)?;
    let disk_type = d.attr_with("type", values::keyword::<DiskType>)?;
    let driver_type = d.child_attr_with("driver", "type", values::keyword::<DiskFormat>)?;
    let source = match d.child("source")? {
        None => None,
        Some(mut s) => {
            let attr = match disk_type.unwrap_or(DiskType::File) {
                DiskType::File => "file",
                DiskType::Block => "dev",
                DiskType::Network => {
                    return Err(s.invalid("", "network snapshot targets are not supported"));
                }
                DiskType::Volume => {
                    return Err(s.invalid("", "storage volume snapshot targets are not supported"));
                }
            };
            let path = s.attr_with(attr, values::abs_path)?;
            s.finish()?;
            path
        }
    };
    let has_overlay = source.is_some() || driver_type.is_some() || disk_type.is_some();
    let snapshot = match snapshot {
        None if has_overlay => Some(DiskSnapshotKind::External),
        Some(k) if has_overlay && k != DiskSnapshotKind::External => {
            return Err(d.attr_invalid(
                "snapshot",
                k.as_str(),
                "a new source, driver or type needs snapshot='external'",
            ));
        }
        other => other,
    };
    d.finish()?;
    Ok(SnapshotDisk {
        name,
        snapshot,
        disk_type,
        driver_type,
        source,
    })
}

fn write_disk(w: &mut Writer, d: &SnapshotDisk) {
    w.start("disk");
    w.attr("name", &d.name);
    w.attr_opt("snapshot", d.snapshot.map(|s| s.as_str()));
    w.attr_opt("type", d.disk_type.map(|t| t.as_str()));
    if let Some(f) = d.driver_type {
        w.leaf_attr("driver", "type", f.as_str());
    }
    if let Some(s) = &d.source {
        let attr = crate::model::devices::source_attr(d.disk_type.unwrap_or(DiskType::File));
        w.leaf_attr("source", attr, s);
    }
    w.end();
}

/// How a snapshot stores the guest: decides what revert and delete can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotKind {
    /// Disks (and memory, when the guest was active) inside the disk images.
    Internal,
    /// New overlay images for the disks, no memory.
    DiskOnly,
    /// Memory saved to a file and disks in overlays.
    External,
}

impl SnapshotKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Internal => "internal",
            Self::DiskOnly => "disk-only",
            Self::External => "external",
        }
    }
}

/// How a snapshot stores the guest, read from its definition.
pub fn snapshot_kind(def: &SnapshotDef) -> SnapshotKind {
    if def
        .memory
        .as_ref()
        .is_some_and(|m| m.snapshot == MemorySnapshotKind::External)
    {
        SnapshotKind::External
    } else if def.state.as_deref() == Some("disk-snapshot")
        || def
            .disks
            .iter()
            .any(|d| d.snapshot == Some(DiskSnapshotKind::External))
    {
        SnapshotKind::DiskOnly
    } else {
        SnapshotKind::Internal
    }
}

/// Every image a definition's hard disks use, with whether it is the disk's top image (the
/// one written to) rather than a backing file below it.
pub fn disk_images(def: &DomainDef) -> Vec<(String, bool)> {
    def.devices
        .disks
        .iter()
        .filter(|d| d.device == DiskDevice::Disk)
        .flat_map(|d| {
            d.image_chain()
                .into_iter()
                .enumerate()
                .map(|(i, p)| (p, i == 0))
        })
        .collect()
}
