//! The tiny real test guest (busybox, qemu-ga, virtio modules; see
//! `tests/guest/build-guest.sh`), built once per script version into a cache directory under
//! /tmp, and domain XML that boots it.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::Instant,
};

/// The guest's build directory: `/tmp/vbq-guest-<hash of the builder script>`, built on
/// first use (the script itself skips work when its inputs did not change).
pub fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guest/build-guest.sh");
        let text = std::fs::read(&script).expect("read build-guest.sh");
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in &text {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let dir = PathBuf::from(format!("/tmp/vbq-guest-{h:016x}"));
        let t = Instant::now();
        let out = Command::new("bash")
            .arg(&script)
            .arg(&dir)
            .output()
            .expect("run build-guest.sh");
        assert!(
            out.status.success(),
            "build-guest.sh failed (packages: busybox-static linux-image-amd64 \
             qemu-guest-agent e2fsprogs cpio kmod):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("test guest ready in {:?} at {}", t.elapsed(), dir.display());
        dir
    })
}

/// A blank qcow2 data disk (the guest formats it on first boot).
pub fn data_disk(path: &Path) {
    let st = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(path)
        .arg("64M")
        .status()
        .expect("qemu-img (package qemu-utils)");
    assert!(st.success(), "qemu-img create failed");
}

/// A domain that boots the test guest: data disk, user networking, agent channel, serial
/// and console on a pty, VNC with autoport, balloon, rng.
pub fn domain_xml(name: &str, disk: &Path, extra_devices: &str) -> String {
    let g = dir();
    format!(
        "<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 quiet</cmdline>
  </os>
  <features><acpi/></features>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='user'><model type='virtio'/></interface>
    <serial type='pty'/>
    <console type='pty'><target type='serial'/></console>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <graphics type='vnc' autoport='yes'/>
    <memballoon model='virtio'/>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    {extra_devices}
  </devices>
</domain>",
        kernel = g.join("vmlinux").display(),
        initrd = g.join("initramfs.cpio.gz").display(),
        disk = disk.display(),
    )
}
