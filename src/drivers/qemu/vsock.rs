//! The host side of `<vsock>`: the vhost device must exist, and `<cid auto='yes'>` is
//! settled into a context id no other guest holds before the command line is built.

use std::{borrow::Cow, fs::OpenOptions, os::fd::AsRawFd, path::Path};

use crate::{drivers::DriverError, model::DomainDef};

const VHOST_VSOCK: &str = "/dev/vhost-vsock";

/// `_IOW(VHOST_VIRTIO, 0x60, __u64)`: claim a guest context id on an open vhost-vsock.
const VHOST_VSOCK_SET_GUEST_CID: libc::c_ulong = 0x4008_af60;

/// The lowest context id a guest may hold (0-2 are the hypervisor's, the host's and local).
const FIRST_GUEST_CID: u32 = 3;

/// `def` with its vsock's context id settled, or an error naming what the host lacks.
pub fn settle(def: &DomainDef) -> Result<Cow<'_, DomainDef>, DriverError> {
    let Some(v) = &def.devices.vsock else {
        return Ok(Cow::Borrowed(def));
    };
    if !Path::new(VHOST_VSOCK).exists() {
        return Err(DriverError::NotSupported(format!(
            "domain '{}': <vsock>: {VHOST_VSOCK} is missing (the host needs the vhost_vsock \
             module)",
            def.name
        )));
    }
    if v.cid.is_some() && v.cid_auto != Some(true) {
        return Ok(Cow::Borrowed(def));
    }
    let cid = free_cid(v.cid.unwrap_or(FIRST_GUEST_CID)).map_err(|e| {
        DriverError::Failed(format!(
            "domain '{}': <vsock>: no free guest context id: {e}",
            def.name
        ))
    })?;
    let mut def = def.clone();
    if let Some(v) = def.devices.vsock.as_mut() {
        v.cid = Some(cid);
    }
    Ok(Cow::Owned(def))
}

/// The first context id from `from` the kernel lets us claim. The claim ends when the
/// probe's descriptor closes, just before QEMU claims it for good.
fn free_cid(from: u32) -> std::io::Result<u32> {
    let dev = OpenOptions::new()
        .read(true)
        .write(true)
        .open(VHOST_VSOCK)?;
    for cid in from..from.saturating_add(65_536) {
        let value: u64 = cid.into();
        // SAFETY: the request takes a pointer to a u64 that outlives the call.
        let rc = unsafe { libc::ioctl(dev.as_raw_fd(), VHOST_VSOCK_SET_GUEST_CID, &value) };
        if rc == 0 {
            return Ok(cid);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EADDRINUSE) {
            return Err(err);
        }
    }
    Err(std::io::Error::from_raw_os_error(libc::EADDRINUSE))
}
