//! The file work of a directory pool: building its directory, scanning it for volumes,
//! creating, wiping and resizing raw files. Image formats go through [`super::qemu_img`].
//!
//! Blocking calls run on tokio's blocking threads; nothing here holds a lock.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use super::{
    perms::Perms,
    pool_xml::PoolSizes,
    qemu_img,
    sniff::{self, Header},
    vol_xml::{Stamp, Timestamps, VolDef, VolFeature, VolFormat, VolTarget, VolType},
};
use crate::core::{Error, Result};

/// Mode of a pool directory built without `<permissions><mode>` (libvirt's default).
pub const DEFAULT_POOL_MODE: u32 = 0o711;
/// Mode of a new volume without `<permissions><mode>`.
pub const DEFAULT_VOL_MODE: u32 = 0o600;

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Failed(format!("storage worker failed: {e}")))?
}

pub(crate) fn io_err(what: impl std::fmt::Display, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::NotFound => Error::InvalidState(format!("{what}: {e}")),
        io::ErrorKind::AlreadyExists => Error::AlreadyExists(format!("{what}: {e}")),
        io::ErrorKind::PermissionDenied => Error::AccessDenied(format!("{what}: {e}")),
        _ if e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EFBIG) => {
            Error::InvalidArgument(format!("{what}: {e}"))
        }
        _ => Error::Failed(format!("{what}: {e}")),
    }
}

/// Applies owner, group and mode (when set) to `path`.
pub(crate) fn apply_perms(path: &Path, perms: &Perms) -> Result<()> {
    if perms.owner.is_some() || perms.group.is_some() {
        std::os::unix::fs::chown(path, perms.owner, perms.group).map_err(|e| {
            io_err(
                format_args!("cannot change owner of '{}'", path.display()),
                e,
            )
        })?;
    }
    if let Some(m) = perms.mode {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(m)).map_err(|e| {
            io_err(
                format_args!("cannot change mode of '{}'", path.display()),
                e,
            )
        })?;
    }
    Ok(())
}

/// Creates the pool's directory (and missing parents) with the wanted permissions; an
/// existing directory gets them applied.
pub fn build(path: &Path, perms: &Perms) -> Result<()> {
    match fs::metadata(path) {
        Ok(m) if !m.is_dir() => {
            return Err(Error::InvalidState(format!(
                "'{}' exists and is not a directory",
                path.display()
            )));
        }
        Ok(_) => {}
        Err(_) => {
            fs::create_dir_all(path)
                .map_err(|e| io_err(format_args!("cannot create '{}'", path.display()), e))?;
        }
    }
    let perms = Perms {
        mode: Some(perms.mode.unwrap_or(DEFAULT_POOL_MODE)),
        ..perms.clone()
    };
    apply_perms(path, &perms)
}

/// The file system's sizes under `path` (libvirt's rule: allocation = capacity - free).
pub fn sizes(path: &Path) -> Result<PoolSizes> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::InvalidArgument("path holds a NUL byte".into()))?;
    // SAFETY: statvfs writes into the zeroed struct we own; `c` is NUL-terminated.
    let mut sv: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut sv) } != 0 {
        return Err(io_err(
            format_args!("cannot read the file system of '{}'", path.display()),
            io::Error::last_os_error(),
        ));
    }
    let capacity = sv.f_frsize.saturating_mul(sv.f_blocks);
    let free = sv.f_bfree.saturating_mul(sv.f_frsize);
    Ok(PoolSizes {
        capacity,
        allocation: capacity.saturating_sub(free),
        available: free,
    })
}

/// What a stopped-or-started pool's directory looks like: its permissions and sizes.
pub fn check_dir(path: &Path) -> Result<(Perms, PoolSizes)> {
    let m = fs::metadata(path).map_err(|e| {
        Error::InvalidState(format!(
            "cannot open pool directory '{}': {e} (build the pool first)",
            path.display()
        ))
    })?;
    if !m.is_dir() {
        return Err(Error::InvalidState(format!(
            "pool path '{}' is not a directory",
            path.display()
        )));
    }
    Ok((Perms::of(&m), sizes(path)?))
}

fn stamps(m: &fs::Metadata) -> Timestamps {
    let s = |sec: i64, nsec: i64| Stamp {
        sec: u64::try_from(sec).unwrap_or(0),
        nsec: u32::try_from(nsec).unwrap_or(0),
    };
    Timestamps {
        atime: Some(s(m.atime(), m.atime_nsec())),
        mtime: Some(s(m.mtime(), m.mtime_nsec())),
        ctime: Some(s(m.ctime(), m.ctime_nsec())),
        btime: Some(Stamp::default()),
    }
}

/// libvirt's name for a format `qemu-img` reports; formats libvirt has no name for are raw.
fn libvirt_format(qemu: &str) -> VolFormat {
    match qemu {
        "qcow2" => VolFormat::Qcow2,
        "qcow" => VolFormat::Qcow,
        "vmdk" => VolFormat::Vmdk,
        "vpc" => VolFormat::Vpc,
        "vdi" => VolFormat::Vdi,
        "qed" => VolFormat::Qed,
        "dmg" => VolFormat::Dmg,
        "cloop" => VolFormat::Cloop,
        "bochs" => VolFormat::Bochs,
        _ => VolFormat::Raw,
    }
}

/// Describes the file at `path` as libvirt's refresh does; `None` for what is no volume
/// (a dangling link, a socket, a device node). Only files that may be in an image format
/// are given to `qemu-img` (see [`sniff`]).
pub async fn probe(name: &str, path: &Path) -> Result<Option<VolDef>> {
    let p = path.to_path_buf();
    let n = name.to_string();
    match blocking(move || Ok(probe_quick(&n, &p))).await? {
        Quick::None => Ok(None),
        Quick::Done(v) => Ok(Some(*v)),
        Quick::Image(m) => probe_image(name, path, &m).await.map(Some),
    }
}

/// What a look at a file without `qemu-img` tells.
pub(crate) enum Quick {
    /// No volume.
    None,
    /// A directory, an ISO or a raw file, fully described.
    Done(Box<VolDef>),
    /// A file that may be an image: its metadata, for [`probe_image`].
    Image(fs::Metadata),
}

/// The part of [`probe`] that needs no `qemu-img`; blocking.
pub(crate) fn probe_quick(name: &str, path: &Path) -> Quick {
    let Ok(m) = fs::metadata(path) else {
        return Quick::None;
    };
    let key = path.to_string_lossy().into_owned();
    let mut target = VolTarget {
        path: Some(key.clone()),
        perms: Perms::of(&m),
        timestamps: Some(stamps(&m)),
        ..VolTarget::default()
    };
    if m.is_dir() {
        target.format = Some(VolFormat::Dir);
        return Quick::Done(Box::new(VolDef {
            vol_type: Some(VolType::Dir),
            name: name.to_string(),
            key: Some(key),
            capacity: Some(0),
            allocation: Some(0),
            physical: None,
            target,
            backing: None,
        }));
    }
    if !m.is_file() {
        return Quick::None;
    }
    let format = match sniff::header(path) {
        Ok(Header::Iso) => VolFormat::Iso,
        Ok(Header::Raw) => VolFormat::Raw,
        // unreadable here: qemu-img says why
        Ok(Header::Unknown) | Err(_) => return Quick::Image(m),
    };
    target.format = Some(format);
    Quick::Done(Box::new(file_vol(name, key, &m, m.size(), target, None)))
}

fn file_vol(
    name: &str,
    key: String,
    m: &fs::Metadata,
    capacity: u64,
    target: VolTarget,
    backing: Option<VolTarget>,
) -> VolDef {
    VolDef {
        vol_type: Some(VolType::File),
        name: name.to_string(),
        key: Some(key),
        capacity: Some(capacity),
        allocation: Some(m.blocks() * 512),
        physical: (m.size() > 0).then_some(m.size()),
        target,
        backing,
    }
}

/// A file that may be in an image format, described from `qemu-img info`.
pub(crate) async fn probe_image(name: &str, path: &Path, m: &fs::Metadata) -> Result<VolDef> {
    let key = path.to_string_lossy().into_owned();
    let mut target = VolTarget {
        path: Some(key.clone()),
        perms: Perms::of(m),
        timestamps: Some(stamps(m)),
        ..VolTarget::default()
    };
    let mut capacity = m.size();
    let mut backing = None;
    let info = qemu_img::info(path).await?;
    let format = libvirt_format(&info.format);
    target.format = Some(format);
    if format != VolFormat::Raw {
        capacity = info.virtual_size;
    }
    if format == VolFormat::Qcow2 {
        let data = info.format_specific.clone().unwrap_or_default().data;
        // libvirt names the level of version 3 images only
        target.compat = data.compat.clone().filter(|c| c == "1.1");
        target.cluster_size = info.cluster_size;
        if data.compat.as_deref() == Some("1.1") {
            let mut f = Vec::new();
            if data.lazy_refcounts == Some(true) {
                f.push(VolFeature::LazyRefcounts);
            }
            if data.extended_l2 == Some(true) {
                f.push(VolFeature::ExtendedL2);
            }
            target.features = Some(f);
        }
    }
    if let Some(b) = info.full_backing_filename.or(info.backing_filename) {
        backing = Some(probe_backing(&b, info.backing_filename_format.as_deref()).await);
    }
    Ok(file_vol(name, key, m, capacity, target, backing))
}

/// The backing image as libvirt shows it: its path and format (probed when the image does
/// not say; raw when it cannot be read), and its file's permissions and times.
async fn probe_backing(path: &str, format: Option<&str>) -> VolTarget {
    let mut t = VolTarget {
        path: Some(path.to_string()),
        ..VolTarget::default()
    };
    let p = PathBuf::from(path);
    t.format = Some(match format {
        Some(f) => libvirt_format(f),
        None => match qemu_img::info(&p).await {
            Ok(i) => libvirt_format(&i.format),
            Err(_) => VolFormat::Raw,
        },
    });
    if let Ok(m) = fs::metadata(&p) {
        t.perms = Perms::of(&m);
        t.timestamps = Some(stamps(&m));
    }
    t
}

/// The names in the pool's directory that can be volumes (libvirt skips names with
/// control characters).
pub fn list_names(dir: &Path) -> Result<Vec<String>> {
    let rd = fs::read_dir(dir).map_err(|e| {
        io_err(
            format_args!("cannot read pool directory '{}'", dir.display()),
            e,
        )
    })?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| io_err(format_args!("cannot read '{}'", dir.display()), e))?;
        match e.file_name().into_string() {
            Ok(n) if !n.chars().any(char::is_control) => out.push(n),
            Ok(n) => tracing::warn!(
                "ignoring file {n:?} with control characters in '{}'",
                dir.display()
            ),
            Err(n) => tracing::warn!(
                "ignoring file {n:?} whose name is not UTF-8 in '{}'",
                dir.display()
            ),
        }
    }
    out.sort();
    Ok(out)
}

/// Opens a new file exclusively (never through a link) with `mode`.
pub fn create_new(path: &Path, mode: u32) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .read(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| io_err(format_args!("cannot create '{}'", path.display()), e))
}

/// Allocates `len` bytes from the start of `f` (real blocks, not a hole).
fn allocate(f: &File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    if len == 0 {
        return Ok(());
    }
    let len = i64::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: the fd is open for writing and owned by `f` for the call.
    let rc = unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, len) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// A new raw file of `capacity` bytes, the first `allocation` of them allocated; removed
/// again if anything fails.
pub fn create_raw(path: &Path, capacity: u64, allocation: u64, perms: &Perms) -> Result<()> {
    let f = create_new(path, perms.mode.unwrap_or(DEFAULT_VOL_MODE))?;
    let r = (|| {
        allocate(&f, allocation.min(capacity))
            .map_err(|e| io_err(format_args!("cannot allocate '{}'", path.display()), e))?;
        f.set_len(capacity)
            .map_err(|e| io_err(format_args!("cannot size '{}'", path.display()), e))?;
        f.sync_all()
            .map_err(|e| io_err(format_args!("cannot flush '{}'", path.display()), e))?;
        apply_perms(
            path,
            &Perms {
                mode: None,
                ..perms.clone()
            },
        )
    })();
    if r.is_err() {
        let _ = fs::remove_file(path);
    }
    r
}

/// libvirt's "zero" wipe: a sparse file is emptied and regrown (all holes); any other
/// file gets zeros written over its whole length, so its blocks stay allocated.
pub fn wipe(path: &Path) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| io_err(format_args!("cannot open '{}'", path.display()), e))?;
    let m = f
        .metadata()
        .map_err(|e| io_err(format_args!("cannot stat '{}'", path.display()), e))?;
    let werr = |e| io_err(format_args!("cannot wipe '{}'", path.display()), e);
    if m.blocks() < m.size() / 512 {
        f.set_len(0).map_err(werr)?;
        f.set_len(m.size()).map_err(werr)?;
    } else {
        let zeros = vec![0u8; 1 << 20];
        let mut left = m.size();
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            f.write_all(&zeros[..n]).map_err(werr)?;
            left -= n as u64;
        }
    }
    f.sync_all().map_err(werr)
}

/// Changes a raw file's length; with `allocate`, the new part is given blocks.
pub fn resize_raw(path: &Path, size: u64, allocate_new: bool) -> Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| io_err(format_args!("cannot open '{}'", path.display()), e))?;
    let rerr = |e| io_err(format_args!("cannot resize '{}'", path.display()), e);
    if allocate_new {
        allocate(&f, size).map_err(rerr)?;
    }
    f.set_len(size).map_err(rerr)?;
    f.sync_all().map_err(rerr)
}
