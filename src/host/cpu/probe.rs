//! The host's CPUID bits (and `IA32_ARCH_CAPABILITIES`) as libvirt's `virCPUx86GetHost`
//! collects them, limited to the leaves the map's features use.

use super::map::{Data, Leaf, Map};

/// `cpuid` with `leaf` and `sub`.
#[cfg(target_arch = "x86_64")]
fn cpuid(leaf: u32, sub: u32) -> [u32; 4] {
    let r = std::arch::x86_64::__cpuid_count(leaf, sub);
    [r.eax, r.ebx, r.ecx, r.edx]
}

#[cfg(not(target_arch = "x86_64"))]
fn cpuid(_leaf: u32, _sub: u32) -> [u32; 4] {
    [0; 4]
}

/// The host's bits for the leaves `map` knows, vendor (leaf 0) and signature (leaf 1).
pub fn host_data(map: &Map) -> Data {
    let mut leaves: Vec<Leaf> = vec![Leaf::Cpuid(0, 0), Leaf::Cpuid(1, 0)];
    for f in &map.features {
        for l in f.data.0.keys() {
            if !leaves.contains(l) {
                leaves.push(*l);
            }
        }
    }
    leaves.sort();
    let max_basic = cpuid(0, 0)[0];
    let max_ext = cpuid(0x8000_0000, 0)[0];
    let mut data = Data::default();
    for l in &leaves {
        let Leaf::Cpuid(leaf, sub) = *l else {
            continue;
        };
        let in_range = if leaf >= 0x8000_0000 {
            leaf <= max_ext
        } else {
            leaf <= max_basic
        };
        if !in_range {
            continue;
        }
        // sub-leaves libvirt reads only when their leaf says they exist
        let exists = match (leaf, sub) {
            (_, 0) => leaf != 0x12 || cpuid(7, 0)[1] & (1 << 2) != 0,
            (7 | 0x14, s) => s <= cpuid(leaf, 0)[0],
            (0xd, 1) => true,
            (0xf, s) => s < 32 && cpuid(0xf, 0)[3] & (1 << s) != 0,
            (0x10, s) => s < 32 && cpuid(0x10, 0)[1] & (1 << s) != 0,
            (0x12, 1) => cpuid(7, 0)[1] & (1 << 2) != 0,
            _ => false,
        };
        if exists {
            data.set(*l, cpuid(leaf, sub));
        }
    }
    if let Some(f) = map.feature("arch-capabilities")
        && data.contains(&f.data)
        && let Some(v) = read_msr(0x10a)
    {
        data.set(Leaf::Msr(0x10a), [v as u32, 0, 0, (v >> 32) as u32]);
    }
    data
}

/// An MSR from `/dev/cpu/0/msr`, else KVM's feature MSRs (libvirt's `virHostCPUGetMSR`).
fn read_msr(index: u32) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    if let Ok(f) = std::fs::File::open("/dev/cpu/0/msr") {
        let mut b = [0u8; 8];
        if f.read_exact_at(&mut b, u64::from(index)).is_ok() {
            return Some(u64::from_le_bytes(b));
        }
    }
    kvm_msr(index)
}

/// `KVM_GET_MSRS` on `/dev/kvm` for one feature MSR.
fn kvm_msr(index: u32) -> Option<u64> {
    /// `struct kvm_msrs` with one `struct kvm_msr_entry`.
    #[repr(C)]
    struct Msrs {
        nmsrs: u32,
        pad: u32,
        index: u32,
        reserved: u32,
        data: u64,
    }
    /// `_IOWR(KVMIO, 0x88, struct kvm_msrs)`.
    const KVM_GET_MSRS: libc::c_ulong = 0xC008_AE88;
    // SAFETY: a NUL-terminated path; the descriptor is closed below.
    let fd = unsafe { libc::open(c"/dev/kvm".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let mut m = Msrs {
        nmsrs: 1,
        pad: 0,
        index,
        reserved: 0,
        data: 0,
    };
    // SAFETY: `m` is a kvm_msrs header followed by the one entry nmsrs announces.
    let n = unsafe { libc::ioctl(fd, KVM_GET_MSRS as _, &mut m as *mut Msrs) };
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    (n == 1).then_some(m.data)
}
