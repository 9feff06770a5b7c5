//! `<pool>`: a storage pool's definition, read strictly and written as libvirt 9.0 writes it.
//!
//! Only `type='dir'` pools are run; every other libvirt type is recognised and refused as
//! not supported, so a caller learns the difference between a typo and a missing backend.
//! `<capacity>`, `<allocation>` and `<available>` are accepted (they are in every dumped
//! pool) but not kept: they describe the file system, which [`PoolSizes`] reads at refresh.

use uuid::Uuid;

use super::{Result, perms::Perms, size::read_scaled};
use crate::{
    core::Error,
    model::{
        values::{self, xml_enum},
        writer::Writer,
        xml::{parse_document, root},
    },
};

xml_enum! {
    /// libvirt's pool types (`virStoragePoolType`).
    pub enum PoolType {
        Dir = "dir",
        Fs = "fs",
        Netfs = "netfs",
        Logical = "logical",
        Disk = "disk",
        Iscsi = "iscsi",
        IscsiDirect = "iscsi-direct",
        Scsi = "scsi",
        Mpath = "mpath",
        Rbd = "rbd",
        Sheepdog = "sheepdog",
        Gluster = "gluster",
        Zfs = "zfs",
        Vstorage = "vstorage",
    }
}

/// A pool's persistent definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolDef {
    pub pool_type: PoolType,
    pub name: String,
    pub uuid: Uuid,
    /// The directory, sanitised as libvirt does (no `//`, no trailing `/`).
    pub path: String,
    /// Wanted for the directory when the pool is built; the live definition shows the
    /// directory's actual ones instead.
    pub perms: Perms,
}

/// What the file system under a pool holds, from `statvfs` (libvirt's rule: allocation is
/// capacity minus the free blocks, reserved ones included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolSizes {
    pub capacity: u64,
    pub allocation: u64,
    pub available: u64,
}

/// Collapses repeated slashes and drops a trailing one (libvirt's `virFileSanitizePath`).
pub fn sanitize_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    if out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    out
}

impl PoolDef {
    /// Parses pool XML. A missing `<uuid>` gets a random one, as libvirt gives.
    pub fn parse(xml: &str) -> Result<PoolDef> {
        let doc = parse_document(xml)?;
        let mut p = root(&doc, "pool")?;
        let pool_type = p.req_attr_with("type", values::keyword::<PoolType>)?;
        if pool_type != PoolType::Dir {
            return Err(Error::NotSupported(format!(
                "storage pool type '{pool_type}' is not supported: virtbus runs 'dir' pools only"
            )));
        }
        let name = p
            .child_text_with("name", |t| {
                crate::model::names::check_name(t).map(|()| t.to_string())
            })?
            .ok_or_else(|| p.missing_child("name"))?;
        let uuid = p
            .child_text_with("uuid", values::uuid)?
            .unwrap_or_else(Uuid::new_v4);
        for sized in ["capacity", "allocation", "available"] {
            if let Some(e) = p.child(sized)? {
                read_scaled(e)?;
            }
        }
        if let Some(src) = p.child("source")? {
            // a dir pool has no source: libvirt writes an empty one
            src.finish()?;
        }
        let mut t = p.req_child("target")?;
        let path = t
            .child_text_with("path", values::abs_path)?
            .ok_or_else(|| t.missing_child("path"))?;
        let perms = match t.child("permissions")? {
            Some(e) => Perms::read(e)?,
            None => Perms::default(),
        };
        if let Some(label) = &perms.label {
            return Err(Error::NotSupported(format!(
                "/pool/target/permissions/label '{label}': this host has no SELinux labelling"
            )));
        }
        t.finish()?;
        p.finish()?;
        Ok(PoolDef {
            pool_type,
            name,
            uuid,
            path: sanitize_path(&path),
            perms,
        })
    }

    /// The XML libvirt shows: with the sizes of a running pool (zeros otherwise) and, when
    /// `live_perms` is given, the directory's real permissions.
    pub fn to_xml(&self, sizes: PoolSizes, live_perms: Option<&Perms>) -> String {
        let mut w = Writer::new(0);
        w.start("pool");
        w.attr("type", self.pool_type.as_str());
        w.leaf("name", &self.name);
        w.leaf("uuid", &self.uuid.to_string());
        for (name, v) in [
            ("capacity", sizes.capacity),
            ("allocation", sizes.allocation),
            ("available", sizes.available),
        ] {
            w.start(name);
            w.attr("unit", "bytes");
            w.end_with_text(&v.to_string());
        }
        w.empty_block("source");
        w.start("target");
        w.leaf("path", &self.path);
        live_perms.unwrap_or(&self.perms).write(&mut w);
        w.end();
        w.end();
        w.finish()
    }
}
