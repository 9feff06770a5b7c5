//! A container's `<filesystem>`s, as libvirt's LXC driver takes them: `mount`/`bind` (a host
//! directory bound at the target), `ram` (a tmpfs), `block` (a host block device mounted at
//! the target) and `file` (a raw image the controller attaches to a loop device, then mounted
//! as a block device; `<driver type='loop' format='raw'>` or no driver). `<readonly/>` holds
//! for each. qcow2 images through `<driver type='nbd'>` need qemu-nbd and the kernel's nbd
//! module: refused by name (see [`NBD`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::plan::{Mount, MountKind, PlanError};
use crate::model::{
    DomainDef,
    devices::{Filesystem, FsDriverType, FsType},
};

/// Why `<driver type='nbd'>` is refused: it is not implemented, as this machine's kernel has
/// no nbd module to run (and test) it with.
pub const NBD: &str = "<driver type='nbd'> (qcow2 images through qemu-nbd) is not supported \
                       by this LXC driver: it needs the kernel's nbd module";

/// A block device to mount: a host device, or a raw image to attach to a loop device first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockSource {
    pub path: PathBuf,
    /// A raw image file (the controller replaces it with its loop device).
    pub image: bool,
}

/// What the definition's filesystems make: the root (a host directory, or a block source
/// mounted on `root` first), whether it is read-only, and the mounts below it.
pub struct Layout {
    pub root: PathBuf,
    pub root_block: Option<BlockSource>,
    pub root_readonly: bool,
    pub mounts: Vec<Mount>,
}

fn unsupported(m: String) -> PlanError {
    PlanError::NotSupported(m)
}

fn invalid(m: String) -> PlanError {
    PlanError::Invalid(m)
}

/// Refuse what no start could do, naming the filesystem (define and start).
pub fn check(def: &DomainDef) -> Result<(), PlanError> {
    let mut roots = 0;
    for (i, f) in def.devices.filesystems.iter().enumerate() {
        let at = format!(
            "domain '{}': <filesystem> {} (target '{}')",
            def.name,
            i + 1,
            f.target
        );
        match f.fs_type {
            FsType::Mount | FsType::Bind | FsType::Ram | FsType::Block | FsType::File => {}
            t => {
                return Err(unsupported(format!(
                    "{at}: type '{}' is not supported by the LXC driver (mount, bind, ram, \
                     block and file are)",
                    t.as_str()
                )));
            }
        }
        if f.socket.is_some() || f.binary.is_some() {
            return Err(unsupported(format!(
                "{at}: <binary> and socket sources are for virtual machines"
            )));
        }
        check_driver(f, &at)?;
        if !f.target.starts_with('/') {
            return Err(invalid(format!(
                "{at}: the target must be an absolute path"
            )));
        }
        if f.target.split('/').any(|c| c == "..") {
            return Err(invalid(format!("{at}: the target must not contain '..'")));
        }
        if f.target == "/" {
            roots += 1;
            if f.fs_type == FsType::Ram {
                return Err(unsupported(format!(
                    "{at}: a RAM filesystem cannot be the root"
                )));
            }
        }
    }
    if roots > 1 {
        return Err(invalid(format!(
            "domain '{}': more than one <filesystem> has target '/'",
            def.name
        )));
    }
    Ok(())
}

/// `<driver>`: none for directories and devices; loop with raw (or no) format for images.
fn check_driver(f: &Filesystem, at: &str) -> Result<(), PlanError> {
    let Some(t) = f.driver_type else {
        if f.fs_type == FsType::File {
            return check_raw(f, at);
        }
        return Ok(());
    };
    match (f.fs_type, t) {
        (FsType::File, FsDriverType::Loop) => check_raw(f, at),
        (FsType::File, FsDriverType::Nbd) => Err(unsupported(format!("{at}: {NBD}"))),
        (ty, t) => Err(unsupported(format!(
            "{at}: <driver type='{}'> is not supported for type '{}' by the LXC driver{}",
            t.as_str(),
            ty.as_str(),
            if ty == FsType::File { " (loop is)" } else { "" }
        ))),
    }
}

fn check_raw(f: &Filesystem, at: &str) -> Result<(), PlanError> {
    match f.driver_format.as_deref() {
        None | Some("raw") => Ok(()),
        Some(fmt) => Err(unsupported(format!(
            "{at}: <driver format='{fmt}'>: a loop device takes raw images only (qcow2 needs \
             <driver type='nbd'>, which is not supported here)"
        ))),
    }
}

/// The layout for `def`; `dir` is the container's runtime directory (a block root is
/// mounted on `dir/root`). Sources must exist, with the right kind.
pub fn layout(def: &DomainDef, dir: &Path) -> Result<Layout, PlanError> {
    let mut out = Layout {
        root: PathBuf::from("/"),
        root_block: None,
        root_readonly: false,
        mounts: Vec::new(),
    };
    for f in &def.devices.filesystems {
        let at = format!("domain '{}': <filesystem> target '{}'", def.name, f.target);
        let src = PathBuf::from(f.source.as_deref().unwrap_or_default());
        let kind = match f.fs_type {
            FsType::Ram => MountKind::Tmpfs {
                size_kib: f.usage_kib.unwrap_or(0),
            },
            FsType::Block | FsType::File => {
                let image = f.fs_type == FsType::File;
                source_kind(&src, image).map_err(|why| {
                    invalid(format!(
                        "{at}: <source {}='{}'> {why}",
                        if image { "file" } else { "dev" },
                        src.display()
                    ))
                })?;
                let source = BlockSource { path: src, image };
                if f.target == "/" {
                    out.root = dir.join("root");
                    out.root_block = Some(source);
                    out.root_readonly = f.readonly;
                    continue;
                }
                MountKind::Block {
                    source,
                    readonly: f.readonly,
                }
            }
            _ => {
                if !src.is_dir() {
                    return Err(invalid(format!(
                        "{at}: <source dir='{}'> is not an existing directory",
                        src.display()
                    )));
                }
                if f.target == "/" {
                    out.root = src;
                    out.root_readonly = f.readonly;
                    continue;
                }
                MountKind::Bind {
                    source: src,
                    readonly: f.readonly,
                }
            }
        };
        out.mounts.push(Mount {
            kind,
            target: PathBuf::from(&f.target),
        });
    }
    // parents first, the definition's order otherwise
    out.mounts.sort_by_key(|m| m.target.components().count());
    Ok(out)
}

/// An image must be a regular file, a device a block device.
fn source_kind(p: &Path, image: bool) -> Result<(), &'static str> {
    use std::os::unix::fs::FileTypeExt;
    let m = std::fs::metadata(p).map_err(|_| "does not exist")?;
    match (image, m.file_type()) {
        (true, t) if t.is_file() => Ok(()),
        (true, _) => Err("is not a regular file (an image)"),
        (false, t) if t.is_block_device() => Ok(()),
        (false, _) => Err("is not a block device"),
    }
}

/// The plan with each image replaced by the loop device the controller attached it to (run
/// by the controller before the container starts). The devices stay attached while the
/// returned handles live or the container has them mounted.
pub fn attach_images(
    plan: &super::plan::Plan,
) -> Result<(super::plan::Plan, Vec<super::loopdev::Attached>), String> {
    let mut out = plan.clone();
    let mut held = Vec::new();
    let mut attach = |src: &mut BlockSource, readonly: bool| -> Result<(), String> {
        if src.image {
            let a = super::loopdev::attach(&src.path, readonly)?;
            eprintln!("{} is on {}", src.path.display(), a.device.display());
            src.path = a.device.clone();
            src.image = false;
            held.push(a);
        }
        Ok(())
    };
    if let Some(b) = &mut out.root_block {
        attach(b, plan.root_readonly)?;
    }
    for m in &mut out.mounts {
        if let MountKind::Block { source, readonly } = &mut m.kind {
            attach(source, *readonly)?;
        }
    }
    Ok((out, held))
}
