//! Whether KVM can really run a guest here.
//!
//! `/dev/kvm` existing is not enough: under kvm-pvm (a KVM that runs only specially built
//! 64-bit guests) a stock kernel never boots. So the probe runs a few real-mode instructions
//! from the x86 reset vector, as any BIOS does first, and checks that KVM reports the port
//! write and the `hlt` they end with.

use std::time::Duration;

/// Why KVM is (not) usable, for errors and the capabilities document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvmStatus {
    Usable,
    Unusable(String),
}

impl KvmStatus {
    pub fn usable(&self) -> bool {
        matches!(self, Self::Usable)
    }

    pub fn reason(&self) -> &str {
        match self {
            Self::Usable => "",
            Self::Unusable(r) => r,
        }
    }
}

const KVM_GET_API_VERSION: libc::c_ulong = 0xAE00;
const KVM_CREATE_VM: libc::c_ulong = 0xAE01;
const KVM_GET_VCPU_MMAP_SIZE: libc::c_ulong = 0xAE04;
const KVM_CREATE_VCPU: libc::c_ulong = 0xAE41;
const KVM_SET_USER_MEMORY_REGION: libc::c_ulong = 0x4020_AE46;
const KVM_RUN: libc::c_ulong = 0xAE80;
const KVM_EXIT_IO: u32 = 2;
const KVM_EXIT_HLT: u32 = 5;

#[repr(C)]
struct MemoryRegion {
    slot: u32,
    flags: u32,
    guest_phys_addr: u64,
    memory_size: u64,
    userspace_addr: u64,
}

/// Probe KVM, giving up after `timeout` (a KVM that never returns from the guest counts as
/// unusable; its probe thread is left blocked, which costs one idle thread).
pub async fn probe(timeout: Duration) -> KvmStatus {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("kvm-probe".into())
        .spawn(move || {
            let _ = tx.send(probe_blocking());
        });
    if let Err(e) = spawned {
        return KvmStatus::Unusable(format!("cannot start the KVM probe: {e}"));
    }
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => KvmStatus::Unusable("the KVM probe failed".into()),
        Err(_) => KvmStatus::Unusable(format!(
            "a real-mode test guest did not finish within {timeout:?} under /dev/kvm"
        )),
    }
}

/// An fd closed on drop.
struct Fd(libc::c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own this descriptor.
        unsafe { libc::close(self.0) };
    }
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

fn probe_blocking() -> KvmStatus {
    let bad = |s: String| KvmStatus::Unusable(s);
    if std::path::Path::new("/sys/module/kvm_pvm").exists() {
        // Known not to run stock guests; the real-mode test below would not tell us why.
        return bad(
            "/dev/kvm is kvm-pvm (module kvm_pvm is loaded), which runs only PVM guests, \
             not a stock kernel"
                .into(),
        );
    }
    // SAFETY: plain syscalls on descriptors we own; the guest memory is our own anonymous
    // mapping, kept alive until the vCPU and VM descriptors are closed (declaration order).
    unsafe {
        let kvm = libc::open(c"/dev/kvm".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if kvm < 0 {
            return bad(format!("cannot open /dev/kvm: {}", errno()));
        }
        let kvm = Fd(kvm);
        let v = libc::ioctl(kvm.0, KVM_GET_API_VERSION, 0);
        if v != 12 {
            return bad(format!("/dev/kvm speaks API version {v}, not 12"));
        }
        let vm = libc::ioctl(kvm.0, KVM_CREATE_VM, 0);
        if vm < 0 {
            return bad(format!("cannot create a KVM virtual machine: {}", errno()));
        }
        let vm = Fd(vm);
        const SIZE: usize = 0x1_0000;
        let mem = libc::mmap(
            std::ptr::null_mut(),
            SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if mem == libc::MAP_FAILED {
            return bad(format!("cannot map guest memory: {}", errno()));
        }
        struct Map(*mut libc::c_void, usize);
        impl Drop for Map {
            fn drop(&mut self) {
                // SAFETY: our own mapping.
                unsafe { libc::munmap(self.0, self.1) };
            }
        }
        let _mem = Map(mem, SIZE);
        // At reset the CPU fetches from 0xffff_fff0: mov al,0x42; out 0x10,al; hlt
        let code: [u8; 5] = [0xb0, 0x42, 0xe6, 0x10, 0xf4];
        std::ptr::copy_nonoverlapping(code.as_ptr(), (mem as *mut u8).add(0xfff0), code.len());
        let region = MemoryRegion {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0xffff_0000,
            memory_size: SIZE as u64,
            userspace_addr: mem as u64,
        };
        if libc::ioctl(vm.0, KVM_SET_USER_MEMORY_REGION, &region) < 0 {
            return bad(format!("cannot give a KVM guest memory: {}", errno()));
        }
        let vcpu = libc::ioctl(vm.0, KVM_CREATE_VCPU, 0);
        if vcpu < 0 {
            return bad(format!("cannot create a KVM vCPU: {}", errno()));
        }
        let vcpu = Fd(vcpu);
        let run_size = libc::ioctl(kvm.0, KVM_GET_VCPU_MMAP_SIZE, 0);
        if run_size <= 0 {
            return bad(format!("KVM gives no vCPU run area: {}", errno()));
        }
        let run = libc::mmap(
            std::ptr::null_mut(),
            run_size as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            vcpu.0,
            0,
        );
        if run == libc::MAP_FAILED {
            return bad(format!("cannot map the KVM vCPU run area: {}", errno()));
        }
        let _run = Map(run, run_size as usize);
        let exit_reason =
            |r: *mut libc::c_void| std::ptr::read_volatile((r as *const u8).add(8) as *const u32);
        let mut seen_io = false;
        for _ in 0..4 {
            if libc::ioctl(vcpu.0, KVM_RUN, 0) < 0 {
                return bad(format!("KVM cannot run a real-mode guest: {}", errno()));
            }
            match exit_reason(run) {
                KVM_EXIT_IO => seen_io = true,
                KVM_EXIT_HLT if seen_io => return KvmStatus::Usable,
                other => {
                    return bad(format!(
                        "KVM stopped a real-mode test guest with exit reason {other}"
                    ));
                }
            }
        }
        bad("KVM did not run a real-mode test guest to its end".into())
    }
}
