//! A net device's offload features as libvirt's node-device driver lists them
//! (`virNetDevGetFeatures`): the ethtool `G*` queries and the `GFLAGS` bits, each present when
//! the kernel answers with a non-zero value. libvirt's further `txudptnl`, `rdma` and
//! `switchdev` (generic-features string sets, infiniband, devlink) are not read.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const ETHTOOL_GRXCSUM: u32 = 0x14;
const ETHTOOL_GTXCSUM: u32 = 0x16;
const ETHTOOL_GSG: u32 = 0x18;
const ETHTOOL_GTSO: u32 = 0x1e;
const ETHTOOL_GGSO: u32 = 0x23;
const ETHTOOL_GGRO: u32 = 0x2b;
const ETHTOOL_GFLAGS: u32 = 0x25;

/// `struct ethtool_value`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// The features in libvirt's order; none when the device cannot be asked (it vanished, or it
/// lives in another network namespace).
pub fn features(ifname: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    if ifname.len() >= libc::IFNAMSIZ {
        return out;
    }
    // SAFETY: socket() has no preconditions; the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return out;
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let query = |cmd: u32| -> Option<u32> {
        let mut value = EthtoolValue { cmd, data: 0 };
        // SAFETY: an all-zero ifreq is valid; the name fits (checked above) with its NUL.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in ifr.ifr_name.iter_mut().zip(ifname.bytes()) {
            *d = s as libc::c_char;
        }
        ifr.ifr_ifru.ifru_data = (&mut value as *mut EthtoolValue).cast();
        // SAFETY: SIOCETHTOOL reads `ifr` and writes `value`, both alive for the call.
        let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut ifr) };
        (r == 0).then_some(value.data)
    };
    for (cmd, name) in [
        (ETHTOOL_GRXCSUM, "rx"),
        (ETHTOOL_GTXCSUM, "tx"),
        (ETHTOOL_GSG, "sg"),
        (ETHTOOL_GTSO, "tso"),
        (ETHTOOL_GGSO, "gso"),
        (ETHTOOL_GGRO, "gro"),
    ] {
        if query(cmd).is_some_and(|v| v != 0) {
            out.push(name);
        }
    }
    if let Some(flags) = query(ETHTOOL_GFLAGS) {
        for (bit, name) in [
            (1 << 15, "lro"),
            (1 << 8, "rxvlan"),
            (1 << 7, "txvlan"),
            (1 << 27, "ntuple"),
            (1 << 28, "rxhash"),
        ] {
            if flags & bit != 0 {
                out.push(name);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_offloads_and_a_missing_device() {
        // The loopback device of every Linux network namespace checksums and scatters.
        let lo = super::features("lo");
        for f in ["rx", "tx", "sg"] {
            assert!(lo.contains(&f), "{lo:?}");
        }
        assert!(super::features("nosuchdev0").is_empty());
        assert!(super::features("a-name-longer-than-ifnamsiz").is_empty());
    }
}
