//! Host side of tap interfaces: bring a tap up and put it into a bridge (what libvirt does for
//! `<interface type='bridge'>`), with the same ioctls `ip link` uses.

use std::io;

const SIOCGIFFLAGS: libc::c_ulong = 0x8913;
const SIOCSIFFLAGS: libc::c_ulong = 0x8914;
const SIOCBRADDIF: libc::c_ulong = 0x89a2;
const SIOCSIFMTU: libc::c_ulong = 0x8922;

/// `struct ifreq`: a 16-byte name and a 24-byte union.
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    data: [u8; 24],
}

fn ifreq(name: &str) -> io::Result<IfReq> {
    if name.is_empty() || name.len() > 15 || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name '{name}'"),
        ));
    }
    let mut r = IfReq {
        name: [0; 16],
        data: [0; 24],
    };
    r.name[..name.len()].copy_from_slice(name.as_bytes());
    Ok(r)
}

struct Sock(libc::c_int);

impl Drop for Sock {
    fn drop(&mut self) {
        // SAFETY: our own descriptor.
        unsafe { libc::close(self.0) };
    }
}

fn sock() -> io::Result<Sock> {
    // SAFETY: a plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Sock(fd))
}

/// Set IFF_UP on `ifname`.
pub fn up(ifname: &str) -> io::Result<()> {
    let s = sock()?;
    let mut r = ifreq(ifname)?;
    // SAFETY: ifreq-sized buffer for these ioctls.
    unsafe {
        if libc::ioctl(s.0, SIOCGIFFLAGS, &mut r) < 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = i16::from_ne_bytes([r.data[0], r.data[1]]) | libc::IFF_UP as i16;
        r.data[..2].copy_from_slice(&flags.to_ne_bytes());
        if libc::ioctl(s.0, SIOCSIFFLAGS, &r) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Set the MTU of `ifname` (`<interface><mtu size>`).
pub fn set_mtu(ifname: &str, mtu: u32) -> io::Result<()> {
    let s = sock()?;
    let mut r = ifreq(ifname)?;
    r.data[..4].copy_from_slice(&(mtu as i32).to_ne_bytes());
    // SAFETY: ifreq-sized buffer.
    if unsafe { libc::ioctl(s.0, SIOCSIFMTU, &r) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Add `ifname` to `bridge` and bring it up.
pub fn attach(ifname: &str, bridge: &str) -> io::Result<()> {
    let c = std::ffi::CString::new(ifname)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))?;
    // SAFETY: a NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    let s = sock()?;
    let mut r = ifreq(bridge)?;
    r.data[..4].copy_from_slice(&(index as i32).to_ne_bytes());
    // SAFETY: ifreq-sized buffer.
    if unsafe { libc::ioctl(s.0, SIOCBRADDIF, &r) } < 0 {
        return Err(io::Error::last_os_error());
    }
    up(ifname)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_and_missing_devices() {
        assert!(ifreq("").is_err());
        assert!(ifreq("sixteen-chars-xx").is_err());
        assert!(attach("vbnosuchtap0", "vbnosuchbr0").is_err());
        assert!(up("vbnosuchtap0").is_err());
    }
}
