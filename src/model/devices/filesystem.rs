//! `<filesystem>`: a host directory shared with the guest (9p or virtio-fs).

use crate::model::address::DeviceInfo;
use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

xml_enum! {
    pub enum FsType {
        Mount = "mount",
        Block = "block",
        File = "file",
        Template = "template",
        /// A tmpfs of `usage` KiB (containers).
        Ram = "ram",
        Bind = "bind",
    }
}

xml_enum! {
    /// How guest file ownership maps to the host (9p security model).
    pub enum FsAccessMode {
        Passthrough = "passthrough",
        Mapped = "mapped",
        Squash = "squash",
    }
}

xml_enum! {
    pub enum FsDriverType {
        Path = "path",
        Handle = "handle",
        Loop = "loop",
        Nbd = "nbd",
        Ploop = "ploop",
        Virtiofs = "virtiofs",
    }
}

xml_enum! {
    pub enum FsWrpolicy {
        Immediate = "immediate",
    }
}

xml_enum! {
    pub enum FsModel {
        Virtio = "virtio",
        VirtioTransitional = "virtio-transitional",
        VirtioNonTransitional = "virtio-non-transitional",
    }
}

xml_enum! {
    /// 9p's handling of files from several host devices under one export.
    pub enum FsMultidevs {
        Remap = "remap",
        Forbid = "forbid",
        Warn = "warn",
    }
}

xml_enum! {
    pub enum FsCacheMode {
        None = "none",
        Always = "always",
    }
}

xml_enum! {
    pub enum FsSandboxMode {
        Namespace = "namespace",
        Chroot = "chroot",
    }
}

/// `<binary>`: how to run the virtiofsd daemon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsBinary {
    pub path: Option<String>,
    pub xattr: Option<bool>,
    pub cache: Option<FsCacheMode>,
    pub sandbox: Option<FsSandboxMode>,
    pub lock_posix: Option<bool>,
    pub lock_flock: Option<bool>,
    pub thread_pool_size: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filesystem {
    pub fs_type: FsType,
    /// Filled in (passthrough) unless the daemon is external (`<source socket>`).
    pub accessmode: Option<FsAccessMode>,
    pub model: Option<FsModel>,
    pub multidevs: Option<FsMultidevs>,
    /// Modes of new files and directories (`mapped` 9p), kept as numbers.
    pub fmode: Option<u32>,
    pub dmode: Option<u32>,
    pub driver_type: Option<FsDriverType>,
    pub driver_format: Option<String>,
    pub wrpolicy: Option<FsWrpolicy>,
    /// virtio-fs queue size.
    pub queue: Option<u32>,
    pub binary: Option<FsBinary>,
    /// The host side: a path, or for virtio-fs the socket of a daemon run by someone else.
    pub source: Option<String>,
    pub socket: Option<String>,
    /// `type='ram'`: the tmpfs size in KiB.
    pub usage_kib: Option<u64>,
    /// The mount tag the guest uses.
    pub target: String,
    pub readonly: bool,
    /// Virtio options on `<driver>`.
    pub virtio: super::VirtioOptions,
    pub info: DeviceInfo,
}

impl Filesystem {
    pub fn is_virtiofs(&self) -> bool {
        self.driver_type == Some(FsDriverType::Virtiofs)
    }

    pub(crate) fn read(mut e: Elem) -> Result<Filesystem> {
        let fs_type = e
            .attr_with("type", values::keyword::<FsType>)?
            .unwrap_or(FsType::Mount);
        let accessmode = e.attr_with("accessmode", values::keyword::<FsAccessMode>)?;
        let model = e.attr_with("model", values::keyword::<FsModel>)?;
        let multidevs = e.attr_with("multidevs", values::keyword::<FsMultidevs>)?;
        let fmode = e.attr_with("fmode", file_mode)?;
        let dmode = e.attr_with("dmode", file_mode)?;
        let (mut driver_type, mut driver_format, mut wrpolicy, mut queue) =
            (None, None, None, None);
        let mut virtio = super::VirtioOptions::default();
        if let Some(mut d) = e.child("driver")? {
            driver_type = d.attr_with("type", values::keyword::<FsDriverType>)?;
            driver_format = d.attr_with("format", values::token)?;
            wrpolicy = d.attr_with("wrpolicy", values::keyword::<FsWrpolicy>)?;
            queue = d.attr_with("queue", values::u32_pos)?;
            virtio = super::VirtioOptions::read(&mut d)?;
            d.finish()?;
        }
        let virtiofs = driver_type == Some(FsDriverType::Virtiofs);
        let binary = match e.child("binary")? {
            None => None,
            Some(b) if !virtiofs => {
                return Err(b.invalid("", "<binary> is for driver type='virtiofs' only"));
            }
            Some(b) => Some(read_binary(b)?),
        };
        let mut src = e.req_child("source")?;
        let mut usage_kib = None;
        let (source, socket) = match fs_type {
            FsType::Ram => {
                let unit = src.attr_with("units", values::memory_unit)?.unwrap_or(1024);
                let n = src.req_attr_with("usage", |v| values::uint_in(v, 0, u64::MAX))?;
                let bytes = n
                    .checked_mul(unit)
                    .ok_or_else(|| src.attr_invalid("usage", &n.to_string(), "too large"))?;
                usage_kib = Some(bytes / 1024);
                (None, None)
            }
            FsType::Mount | FsType::Bind => {
                let socket = src.attr_with("socket", values::abs_path)?;
                let dir = if socket.is_some() {
                    None
                } else {
                    Some(src.req_attr_with("dir", values::abs_path)?)
                };
                (dir, socket)
            }
            FsType::Block => (Some(src.req_attr_with("dev", values::abs_path)?), None),
            FsType::File => (Some(src.req_attr_with("file", values::abs_path)?), None),
            FsType::Template => (Some(src.req_attr_with("name", values::non_empty)?), None),
        };
        src.finish()?;
        if socket.is_some() && !virtiofs {
            return Err(XmlError::invalid(
                format!("{}/source/@socket", e.path()),
                socket.as_deref().unwrap_or_default(),
                "a socket source needs <driver type='virtiofs'>",
            ));
        }
        let target = e.req_child("target").and_then(|mut t| {
            let v = t.req_attr_with("dir", values::non_empty)?;
            t.finish()?;
            Ok(v)
        })?;
        let readonly = e.flag("readonly")?;
        let info = DeviceInfo::read(&mut e)?;
        if virtiofs && accessmode.is_some_and(|a| a != FsAccessMode::Passthrough) {
            return Err(e.attr_invalid(
                "accessmode",
                accessmode.map(|a| a.as_str()).unwrap_or_default(),
                "virtiofs supports only 'passthrough'",
            ));
        }
        e.finish()?;
        Ok(Filesystem {
            fs_type,
            accessmode,
            model,
            multidevs,
            fmode,
            dmode,
            driver_type,
            driver_format,
            wrpolicy,
            queue,
            binary,
            source,
            socket,
            usage_kib,
            target,
            readonly,
            virtio,
            info,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("filesystem");
        w.attr("type", self.fs_type.as_str());
        w.attr_opt("accessmode", self.accessmode.map(|a| a.as_str()));
        w.attr_opt("model", self.model.map(|m| m.as_str()));
        w.attr_opt("multidevs", self.multidevs.map(|m| m.as_str()));
        w.attr_opt("fmode", self.fmode.map(|m| format!("{m:04o}")).as_deref());
        w.attr_opt("dmode", self.dmode.map(|m| format!("{m:04o}")).as_deref());
        if self.driver_type.is_some() || !self.virtio.is_empty() {
            w.start("driver");
            w.attr_opt("type", self.driver_type.map(|t| t.as_str()));
            w.attr_opt("format", self.driver_format.as_deref());
            w.attr_opt("wrpolicy", self.wrpolicy.map(|p| p.as_str()));
            w.attr_num_opt("queue", self.queue);
            self.virtio.write_attrs(w);
            w.end();
        }
        if let Some(b) = self
            .binary
            .as_ref()
            .filter(|b| self.is_virtiofs() && **b != FsBinary::default())
        {
            write_binary(w, b);
        }
        w.start("source");
        match (self.fs_type, &self.socket) {
            (_, Some(s)) => w.attr("socket", s),
            (FsType::Ram, None) => {
                w.attr_num("usage", self.usage_kib.unwrap_or(0));
                w.attr("units", "KiB");
            }
            (FsType::Mount | FsType::Bind, None) => w.attr_opt("dir", self.source.as_deref()),
            (FsType::Block, None) => w.attr_opt("dev", self.source.as_deref()),
            (FsType::File, None) => w.attr_opt("file", self.source.as_deref()),
            (FsType::Template, None) => w.attr_opt("name", self.source.as_deref()),
        }
        w.end();
        w.leaf_attr("target", "dir", &self.target);
        w.flag("readonly", self.readonly);
        self.info.write(w);
        w.end();
    }
}

/// `fmode`/`dmode`: octal permission bits.
fn file_mode(v: &str) -> std::result::Result<u32, String> {
    match u32::from_str_radix(v, 8) {
        Ok(m) if m <= 0o777 => Ok(m),
        _ => Err("expected octal permissions up to 0777".into()),
    }
}

fn read_binary(mut b: Elem) -> Result<FsBinary> {
    let mut out = FsBinary {
        path: b.attr_with("path", values::abs_path)?,
        xattr: b.attr_with("xattr", values::on_off)?,
        cache: b.child_attr_with("cache", "mode", values::keyword::<FsCacheMode>)?,
        sandbox: b.child_attr_with("sandbox", "mode", values::keyword::<FsSandboxMode>)?,
        thread_pool_size: None,
        ..FsBinary::default()
    };
    if let Some(mut l) = b.child("lock")? {
        out.lock_posix = l.attr_with("posix", values::on_off)?;
        out.lock_flock = l.attr_with("flock", values::on_off)?;
        l.finish()?;
    }
    out.thread_pool_size = b.child_attr_with("thread_pool", "size", values::u32_any)?;
    b.finish()?;
    Ok(out)
}

fn write_binary(w: &mut Writer, b: &FsBinary) {
    w.start("binary");
    w.attr_opt("path", b.path.as_deref());
    w.attr_opt("xattr", b.xattr.map(values::on_off_str));
    if let Some(c) = b.cache {
        w.leaf_attr("cache", "mode", c.as_str());
    }
    if let Some(s) = b.sandbox {
        w.leaf_attr("sandbox", "mode", s.as_str());
    }
    if b.lock_posix.is_some() || b.lock_flock.is_some() {
        w.start("lock");
        w.attr_opt("posix", b.lock_posix.map(values::on_off_str));
        w.attr_opt("flock", b.lock_flock.map(values::on_off_str));
        w.end();
    }
    if let Some(n) = b.thread_pool_size {
        w.start("thread_pool");
        w.attr_num("size", n);
        w.end();
    }
    w.end();
}
