//! `<domaincheckpoint>`: a checkpoint's description, its per-disk bitmaps and the domain
//! definition it was taken of.
//!
//! The embedded `<domain>` is read with the domain's strict rules; its error paths start
//! with `/domaincheckpoint/domain/...`. Output is libvirt's canonical form (name,
//! description, parent, creationTime, disks, domain), so `checkpoint-dumpxml` reads alike.

use crate::model::devices::{DiskDevice, DiskFormat};
use crate::model::domain::{DomainDef, FormatOptions};
use crate::model::error::XmlError;
use crate::model::names;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml;

type Result<T> = std::result::Result<T, XmlError>;

xml_enum! {
    /// Whether a disk takes part in a checkpoint.
    pub enum CheckpointKind {
        No = "no",
        Bitmap = "bitmap",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointDisk {
    /// Target device (`vda`), or as given before alignment (target or source path).
    pub name: String,
    /// `None` only as parsed: alignment fills it in.
    pub checkpoint: Option<CheckpointKind>,
    /// The persistent dirty bitmap's name (defaults to the checkpoint's name).
    pub bitmap: Option<String>,
    /// Dirty bytes since the checkpoint, shown with `--size` only (never stored).
    pub size: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointDef {
    /// `None` when the creator left it to the driver (the creation time, as libvirt).
    pub name: Option<String>,
    pub description: Option<String>,
    pub parent: Option<String>,
    /// Unix seconds.
    pub creation_time: Option<i64>,
    pub disks: Vec<CheckpointDisk>,
    pub domain: Option<DomainDef>,
}

/// Output choices of `virDomainCheckpointGetXMLDesc`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointFormat {
    pub secure: bool,
    pub no_domain: bool,
    pub size: bool,
}

impl CheckpointDef {
    pub fn from_xml(xml: &str) -> Result<CheckpointDef> {
        Self::parse_within(xml, super::MAX_XML_BYTES)
    }

    /// [`CheckpointDef::from_xml`] for a stored file (the larger stored-XML limit).
    pub fn from_stored_xml(xml: &str) -> Result<CheckpointDef> {
        Self::parse_within(xml, super::MAX_STORED_XML_BYTES)
    }

    fn parse_within(xml: &str, limit: usize) -> Result<CheckpointDef> {
        let doc = xml::parse_document_within(xml, limit)?;
        let mut e = xml::root(&doc, "domaincheckpoint")?;
        let name = match e.child("name")? {
            None => None,
            Some(mut n) => {
                let name = n.text_with_raw(|t| names::check_name(t).map(|_| t.to_string()))?;
                n.finish()?;
                Some(name)
            }
        };
        let description = e.child_text("description")?;
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
        let mut disks = Vec::new();
        if let Some(mut d) = e.child("disks")? {
            d.each("disk", |mut disk| {
                let name = disk.req_attr_with("name", values::non_empty)?;
                let checkpoint = disk.attr_with("checkpoint", values::keyword::<CheckpointKind>)?;
                let bitmap = disk.attr_with("bitmap", values::non_empty)?;
                let size = disk.attr_with("size", |t| values::uint_in(t, 0, u64::MAX))?;
                disk.finish()?;
                disks.push(CheckpointDisk {
                    name,
                    checkpoint,
                    bitmap,
                    size,
                });
                Ok(())
            })?;
            d.finish()?;
        }
        let domain = e.child("domain")?.map(DomainDef::read).transpose()?;
        e.finish()?;
        Ok(CheckpointDef {
            name,
            description,
            parent,
            creation_time,
            disks,
            domain,
        })
    }

    /// Canonical XML, as libvirt formats it.
    pub fn to_xml(&self, f: CheckpointFormat) -> String {
        let mut w = Writer::new(0);
        w.start("domaincheckpoint");
        w.leaf_opt("name", self.name.as_deref());
        w.leaf_opt("description", self.description.as_deref());
        if let Some(p) = &self.parent {
            w.start("parent");
            w.leaf("name", p);
            w.end();
        }
        if let Some(t) = self.creation_time {
            w.leaf("creationTime", &t.to_string());
        }
        if !self.disks.is_empty() {
            w.start("disks");
            for d in &self.disks {
                w.start("disk");
                w.attr("name", &d.name);
                w.attr_opt("checkpoint", d.checkpoint.map(|c| c.as_str()));
                if let Some(b) = &d.bitmap {
                    w.attr("bitmap", b);
                    if f.size
                        && let Some(s) = d.size
                    {
                        w.attr("size", &s.to_string());
                    }
                }
                w.end();
            }
            w.end();
        }
        if let Some(d) = &self.domain
            && !f.no_domain
        {
            let opts = FormatOptions {
                id: None,
                secure: f.secure,
            };
            d.write(&mut w, "domain", None, &opts);
        }
        w.end();
        w.finish()
    }

    /// The disks that carry a bitmap, as (target, bitmap name).
    pub fn bitmaps(&self) -> Vec<(String, String)> {
        self.disks
            .iter()
            .filter(|d| d.checkpoint == Some(CheckpointKind::Bitmap))
            .filter_map(|d| d.bitmap.clone().map(|b| (d.name.clone(), b)))
            .collect()
    }

    /// libvirt's `virDomainCheckpointAlignDisks`: one entry per disk of `dom`, in its order,
    /// targets for paths; without `<disks>` every writable disk with a medium gets a bitmap,
    /// with `<disks>` the omitted ones get none; bitmap names default to the checkpoint's.
    pub fn align_disks(&mut self, dom: &DomainDef) -> std::result::Result<(), String> {
        let name = self.name.clone().unwrap_or_default();
        let domdisks = &dom.devices.disks;
        if self.disks.len() > domdisks.len() {
            return Err("too many disk checkpoint requests for domain".into());
        }
        if domdisks.is_empty() {
            return Err("domain must have at least one disk to perform checkpoints".into());
        }
        let default = if self.disks.is_empty() {
            CheckpointKind::Bitmap
        } else {
            CheckpointKind::No
        };
        let empty_or_ro = |d: &crate::model::devices::Disk| {
            d.readonly || d.source.as_ref().and_then(|s| s.path.as_ref()).is_none()
        };
        let mut given: Vec<(usize, CheckpointDisk)> = Vec::new();
        for cd in &self.disks {
            let Some(i) = domdisks.iter().position(|d| {
                d.target_dev == cd.name
                    || d.source.as_ref().and_then(|s| s.path.as_deref()) == Some(&cd.name)
            }) else {
                return Err(format!("no disk named '{}'", cd.name));
            };
            if given.iter().any(|(j, _)| *j == i) {
                return Err(format!("disk '{}' specified twice", cd.name));
            }
            let kind = cd.checkpoint.unwrap_or(CheckpointKind::Bitmap);
            if empty_or_ro(&domdisks[i]) && kind != CheckpointKind::No {
                return Err(format!("disk '{}' is empty or readonly", cd.name));
            }
            let mut cd = cd.clone();
            cd.name = domdisks[i].target_dev.clone();
            cd.checkpoint = Some(kind);
            given.push((i, cd));
        }
        let mut out = Vec::with_capacity(domdisks.len());
        for (i, d) in domdisks.iter().enumerate() {
            if let Some((_, cd)) = given.iter().find(|(j, _)| *j == i) {
                out.push(cd.clone());
                continue;
            }
            out.push(CheckpointDisk {
                name: d.target_dev.clone(),
                checkpoint: Some(if empty_or_ro(d) {
                    CheckpointKind::No
                } else {
                    default
                }),
                bitmap: None,
                size: None,
            });
        }
        for d in &mut out {
            if d.checkpoint == Some(CheckpointKind::Bitmap) && d.bitmap.is_none() {
                d.bitmap = Some(name.clone());
            }
        }
        self.disks = out;
        Ok(())
    }

    /// libvirt's default bitmap names for a redefinition without `<domain>`.
    pub fn assign_bitmap_names(&mut self) {
        let name = self.name.clone().unwrap_or_default();
        for d in &mut self.disks {
            if d.checkpoint.unwrap_or(CheckpointKind::Bitmap) == CheckpointKind::Bitmap
                && d.bitmap.is_none()
            {
                d.bitmap = Some(name.clone());
            }
        }
    }
}

/// Whether disk `d` can hold a persistent bitmap (a qcow2 hard disk), else libvirt's reason.
pub fn bitmap_capable(d: &crate::model::devices::Disk) -> std::result::Result<(), String> {
    let format = d.driver.as_ref().and_then(|x| x.format);
    if d.device == DiskDevice::Disk && format == Some(DiskFormat::Qcow2) {
        return Ok(());
    }
    Err(format!(
        "checkpoint for disk {} unsupported for storage type {}",
        d.target_dev,
        format.map_or("none", |f| f.as_str())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_canonical() {
        let x = "<domaincheckpoint>\n  <name>c1</name>\n  <description>d</description>\n  \
                 <parent>\n    <name>c0</name>\n  </parent>\n  <creationTime>5</creationTime>\n  \
                 <disks>\n    <disk name='vda' checkpoint='bitmap' bitmap='c1'/>\n    \
                 <disk name='vdb' checkpoint='no'/>\n  </disks>\n</domaincheckpoint>\n";
        let d = CheckpointDef::from_xml(x).unwrap();
        assert_eq!(d.to_xml(CheckpointFormat::default()), x);
        assert_eq!(d.bitmaps(), vec![("vda".into(), "c1".into())]);
    }

    #[test]
    fn unknown_content_is_refused_with_its_path() {
        let e = CheckpointDef::from_xml("<domaincheckpoint><bogus/></domaincheckpoint>")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/domaincheckpoint/bogus"), "{e}");
        let e = CheckpointDef::from_xml(
            "<domaincheckpoint><disks><disk name='vda' checkpoint='x'/></disks></domaincheckpoint>",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/domaincheckpoint/disks/disk"), "{e}");
    }
}
