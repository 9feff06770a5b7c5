//! The container's side of a block filesystem: mount a device at a target with the first
//! filesystem type the kernel recognizes on it, as libvirt's LXC driver does (it tries the
//! block-device filesystems of /proc/filesystems in turn; a wrong type fails with EINVAL).

use std::{ffi::CString, os::unix::ffi::OsStrExt, path::Path};

/// The kernel's filesystems that live on devices (not `nodev`), in its order.
fn device_filesystems() -> Vec<String> {
    std::fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with("nodev"))
        .map(|l| l.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Mount `device` at `target` (read-only if asked).
pub fn mount_block(device: &Path, target: &Path, readonly: bool) -> Result<(), String> {
    let cs = |p: &Path| CString::new(p.as_os_str().as_bytes()).unwrap_or_default();
    let (src, dst) = (cs(device), cs(target));
    let mut flags = libc::MS_NOSUID;
    if readonly {
        flags |= libc::MS_RDONLY;
    }
    let mut tried = Vec::new();
    for t in device_filesystems() {
        let ty = CString::new(t.as_str()).unwrap_or_default();
        // SAFETY: valid C strings that outlive the call; no data.
        let r = unsafe {
            libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                ty.as_ptr(),
                flags,
                std::ptr::null(),
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            // not this filesystem: the next one
            Some(libc::EINVAL) | Some(libc::ENODEV) | Some(libc::ENOTBLK) => tried.push(t),
            _ => {
                return Err(format!(
                    "<filesystem> target '{}': cannot mount {} ({t}): {e}",
                    target.display(),
                    device.display()
                ));
            }
        }
    }
    Err(format!(
        "<filesystem> target '{}': no filesystem the kernel knows is on {} (tried {})",
        target.display(),
        device.display(),
        tried.join(" ")
    ))
}
