//! Loop devices for `<filesystem type='file'>` images, through the kernel's ioctls
//! (`LOOP_CTL_GET_FREE` on /dev/loop-control, then `LOOP_CONFIGURE`), no losetup. Each is
//! attached with autoclear: the kernel detaches it when its last user goes, i.e. when the
//! container's mount namespace (which holds the mount) dies and the controller has closed
//! its descriptor. Nobody detaches by number, which could hit a device someone else got
//! since.

use std::{
    ffi::CString,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_NAME_SIZE: usize = 64;

/// The kernel's `struct loop_info64`.
#[repr(C)]
struct LoopInfo64 {
    device: u64,
    inode: u64,
    rdevice: u64,
    offset: u64,
    sizelimit: u64,
    number: u32,
    encrypt_type: u32,
    encrypt_key_size: u32,
    flags: u32,
    file_name: [u8; LO_NAME_SIZE],
    crypt_name: [u8; LO_NAME_SIZE],
    encrypt_key: [u8; 32],
    init: [u64; 2],
}

/// The kernel's `struct loop_config`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// A loop device attached to an image; dropping it closes the controller's descriptor.
pub struct Attached {
    pub device: PathBuf,
    _fd: OwnedFd,
}

fn open(p: &Path, flags: libc::c_int) -> Result<OwnedFd, String> {
    let c = CString::new(p.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: a valid C string; the descriptor is owned from here on.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(format!(
            "cannot open {}: {}",
            p.display(),
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: just opened, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Attach `image` to a free loop device (read-only if asked).
pub fn attach(image: &Path, readonly: bool) -> Result<Attached, String> {
    let mode = if readonly {
        libc::O_RDONLY
    } else {
        libc::O_RDWR
    };
    let file = open(image, mode)?;
    let ctl = open(Path::new("/dev/loop-control"), libc::O_RDWR)?;
    // another process may take the free device between the two calls: try again then
    for _ in 0..20 {
        // SAFETY: an ioctl without argument on our descriptor.
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE) };
        if n < 0 {
            return Err(format!(
                "no free loop device: {}",
                std::io::Error::last_os_error()
            ));
        }
        let device = PathBuf::from(format!("/dev/loop{n}"));
        let dev = open(&device, mode)?;
        // SAFETY: all-zero is a valid loop_config.
        let mut cfg: LoopConfig = unsafe { std::mem::zeroed() };
        cfg.fd = file.as_raw_fd() as u32;
        cfg.info.flags = LO_FLAGS_AUTOCLEAR | if readonly { LO_FLAGS_READ_ONLY } else { 0 };
        let name = image.as_os_str().as_bytes();
        let len = name.len().min(LO_NAME_SIZE - 1);
        cfg.info.file_name[..len].copy_from_slice(&name[..len]);
        // SAFETY: LOOP_CONFIGURE reads a loop_config we own.
        if unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CONFIGURE, &cfg) } == 0 {
            return Ok(Attached { device, _fd: dev });
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EBUSY) {
            return Err(format!(
                "cannot attach {} to {}: {e}",
                image.display(),
                device.display()
            ));
        }
    }
    Err(format!(
        "cannot attach {}: every free loop device was taken first",
        image.display()
    ))
}
