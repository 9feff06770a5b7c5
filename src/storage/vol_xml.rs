//! `<volume>`: a storage volume, read strictly and written as libvirt 9.0 writes it.
//!
//! One type serves both directions: what a caller asks `CreateVolume` for, and what a
//! pool's refresh found on disk. Everything read is written back, so a dumped volume
//! reads in again to the same value.

use super::{Result, perms::Perms, size::read_scaled};
use crate::{
    core::Error,
    model::{
        values::{self, xml_enum},
        writer::Writer,
        xml::{Elem, parse_document, root},
    },
};

xml_enum! {
    /// `<volume type>`.
    pub enum VolType {
        File = "file",
        Block = "block",
        Dir = "dir",
        Network = "network",
        Netdir = "netdir",
        Ploop = "ploop",
    }
}

xml_enum! {
    /// Formats of file volumes (libvirt's `virStorageFileFormat`).
    pub enum VolFormat {
        None = "none",
        Raw = "raw",
        Dir = "dir",
        Bochs = "bochs",
        Cloop = "cloop",
        Dmg = "dmg",
        Iso = "iso",
        Vpc = "vpc",
        Vdi = "vdi",
        Fat = "fat",
        Vhd = "vhd",
        Ploop = "ploop",
        Cow = "cow",
        Qcow = "qcow",
        Qcow2 = "qcow2",
        Qed = "qed",
        Vmdk = "vmdk",
    }
}

xml_enum! {
    /// `<features>` of a qcow2 image.
    pub enum VolFeature {
        LazyRefcounts = "lazy_refcounts",
        ExtendedL2 = "extended_l2",
    }
}

/// A file time: seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamp {
    pub sec: u64,
    pub nsec: u32,
}

impl Stamp {
    fn parse(t: &str) -> std::result::Result<Stamp, String> {
        let err = || "expected seconds with up to 9 decimals".to_string();
        let (s, frac) = t.split_once('.').unwrap_or((t, ""));
        if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let sec = s.parse::<u64>().map_err(|_| err())?;
        let nsec = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<9}").parse::<u32>().map_err(|_| err())?
        };
        Ok(Stamp { sec, nsec })
    }

    fn text(self) -> String {
        if self.nsec == 0 {
            self.sec.to_string()
        } else {
            format!("{}.{:09}", self.sec, self.nsec)
        }
    }
}

/// `<timestamps>`: libvirt writes access, modification, change and birth time (the last is
/// 0 on Linux).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timestamps {
    pub atime: Option<Stamp>,
    pub mtime: Option<Stamp>,
    pub ctime: Option<Stamp>,
    pub btime: Option<Stamp>,
}

/// `<target>` or `<backingStore>`: where the image is and what it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolTarget {
    pub path: Option<String>,
    pub format: Option<VolFormat>,
    pub perms: Perms,
    pub timestamps: Option<Timestamps>,
    /// qcow2's compatibility level, `0.10` or `1.1`.
    pub compat: Option<String>,
    /// Ask the file system not to copy on write (btrfs); never shown by libvirt's probe.
    pub nocow: bool,
    pub cluster_size: Option<u64>,
    /// `Some(empty)` is libvirt's `<features/>` (a qcow2 v3 image without any).
    pub features: Option<Vec<VolFeature>>,
}

/// A volume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolDef {
    pub vol_type: Option<VolType>,
    pub name: String,
    pub key: Option<String>,
    /// Required when creating, unless a backing store gives it.
    pub capacity: Option<u64>,
    pub allocation: Option<u64>,
    /// The file's size on disk, shown only.
    pub physical: Option<u64>,
    pub target: VolTarget,
    pub backing: Option<VolTarget>,
}

/// A volume name: a file name in the pool's directory.
pub fn check_vol_name(name: &str) -> std::result::Result<(), String> {
    crate::model::names::check_name(name)?;
    if name == "." || name == ".." {
        return Err(format!("'{name}' is not a file name"));
    }
    Ok(())
}

impl VolDef {
    pub fn parse(xml: &str) -> Result<VolDef> {
        let doc = parse_document(xml)?;
        let mut v = root(&doc, "volume")?;
        let vol_type = v.attr_with("type", values::keyword::<VolType>)?;
        let name = v
            .child_text_with("name", |t| check_vol_name(t).map(|()| t.to_string()))?
            .ok_or_else(|| v.missing_child("name"))?;
        let key = v.child_text("key")?;
        if let Some(s) = v.child("source")? {
            // extents belong to disk and logical pools
            s.finish()?;
        }
        let capacity = v.child("capacity")?.map(read_scaled).transpose()?;
        let allocation = v.child("allocation")?.map(read_scaled).transpose()?;
        let physical = v.child("physical")?.map(read_scaled).transpose()?;
        let target = match v.child("target")? {
            Some(t) => read_target(t, false)?,
            None => VolTarget::default(),
        };
        let backing = v
            .child("backingStore")?
            .map(|b| read_target(b, true))
            .transpose()?;
        v.finish()?;
        Ok(VolDef {
            vol_type,
            name,
            key,
            capacity,
            allocation,
            physical,
            target,
            backing,
        })
    }

    pub fn to_xml(&self) -> String {
        let mut w = Writer::new(0);
        w.start("volume");
        w.attr("type", self.vol_type.unwrap_or(VolType::File).as_str());
        w.leaf("name", &self.name);
        w.leaf_opt("key", self.key.as_deref());
        for (name, v) in [
            ("capacity", self.capacity),
            ("allocation", self.allocation),
            ("physical", self.physical),
        ] {
            if let Some(v) = v {
                w.start(name);
                w.attr("unit", "bytes");
                w.end_with_text(&v.to_string());
            }
        }
        write_target(&mut w, "target", &self.target);
        if let Some(b) = &self.backing {
            write_target(&mut w, "backingStore", b);
        }
        w.end();
        w.finish()
    }
}

fn read_target(mut t: Elem, backing: bool) -> Result<VolTarget> {
    let path = t.child_text_with("path", values::abs_path)?;
    if backing && path.is_none() {
        return Err(t.missing_child("path").into());
    }
    let format = t.child_attr_with("format", "type", values::keyword::<VolFormat>)?;
    let perms = t
        .child("permissions")?
        .map(Perms::read)
        .transpose()?
        .unwrap_or_default();
    if let Some(label) = &perms.label {
        return Err(Error::NotSupported(format!(
            "{}/permissions/label '{label}': this host has no SELinux labelling",
            t.path()
        )));
    }
    let timestamps = t.child("timestamps")?.map(read_timestamps).transpose()?;
    let mut out = VolTarget {
        path,
        format,
        perms,
        timestamps,
        ..VolTarget::default()
    };
    if backing {
        t.finish()?;
        return Ok(out);
    }
    if t.child("encryption")?.is_some() {
        return Err(Error::NotSupported(format!(
            "{}/encryption: encrypted volumes are not supported",
            t.path()
        )));
    }
    out.compat = t.child_text_with("compat", |c| match c {
        "0.10" | "1.1" => Ok(c.to_string()),
        _ => Err("expected '0.10' or '1.1'".to_string()),
    })?;
    out.nocow = t.flag("nocow")?;
    out.cluster_size = t.child("clusterSize")?.map(read_scaled).transpose()?;
    if let Some(mut f) = t.child("features")? {
        let mut list = Vec::new();
        f.each_child(|c| {
            let feat = c.name().parse::<VolFeature>().map_err(|_| c.unknown())?;
            c.finish()?;
            list.push(feat);
            Ok(())
        })?;
        f.finish()?;
        // qcow2 features need v3, which libvirt then assumes
        if out.compat.is_none() {
            out.compat = Some("1.1".into());
        }
        out.features = Some(list);
    }
    t.finish()?;
    Ok(out)
}

fn read_timestamps(mut e: Elem) -> Result<Timestamps> {
    let ts = Timestamps {
        atime: e.child_text_with("atime", Stamp::parse)?,
        mtime: e.child_text_with("mtime", Stamp::parse)?,
        ctime: e.child_text_with("ctime", Stamp::parse)?,
        btime: e.child_text_with("btime", Stamp::parse)?,
    };
    e.finish()?;
    Ok(ts)
}

fn write_target(w: &mut Writer, name: &'static str, t: &VolTarget) {
    w.start(name);
    w.leaf_opt("path", t.path.as_deref());
    if let Some(f) = t.format {
        w.leaf_attr("format", "type", f.as_str());
    }
    t.perms.write(w);
    if let Some(ts) = &t.timestamps {
        w.start("timestamps");
        for (n, s) in [
            ("atime", ts.atime),
            ("mtime", ts.mtime),
            ("ctime", ts.ctime),
            ("btime", ts.btime),
        ] {
            if let Some(s) = s {
                w.leaf(n, &s.text());
            }
        }
        w.end();
    }
    w.leaf_opt("compat", t.compat.as_deref());
    w.flag("nocow", t.nocow);
    if let Some(c) = t.cluster_size {
        w.start("clusterSize");
        w.attr("unit", "B");
        w.end_with_text(&c.to_string());
    }
    if let Some(f) = &t.features {
        w.start("features");
        for x in f {
            w.flag(x.as_str(), true);
        }
        w.end();
    }
    w.end();
}
