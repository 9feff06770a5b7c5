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
    <memballoon model='virtio'><stats period='1'/></memballoon>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    {extra_devices}
  </devices>
</domain>",
        kernel = g.join("vmlinux").display(),
        initrd = g.join("initramfs.cpio.gz").display(),
        disk = disk.display(),
    )
}

/// A second virtio port on which the guest runs a second qemu-ga, for tests: the daemon
/// holds the first agent's socket.
pub const TEST_CHANNEL: &str =
    "<channel type='unix'><target type='virtio' name='org.virtbus.test.0'/></channel>";

/// The host socket of the test channel, from a domain's live XML.
pub fn test_channel_socket(live_xml: &str) -> PathBuf {
    let at = live_xml
        .find("name='org.virtbus.test.0'")
        .expect("the domain has the test channel");
    let before = &live_xml[..at];
    let p = before
        .rfind("path='")
        .map(|i| &before[i + 6..])
        .and_then(|r| r.split('\'').next())
        .expect("the test channel's socket path");
    PathBuf::from(p)
}

/// Standard base64, as qemu-ga sends output.
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let Some(v) = val(c) else { continue };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// The test agent: runs shell commands in the guest.
pub struct TestAgent {
    pub path: PathBuf,
}

impl TestAgent {
    /// The test agent of a running domain, once it answers.
    pub async fn of(live_xml: &str) -> TestAgent {
        let a = TestAgent {
            path: test_channel_socket(live_xml),
        };
        let t = Instant::now();
        while a.try_sh("true").await.is_err() {
            let limit = std::time::Duration::from_secs(120);
            assert!(
                t.elapsed() < limit,
                "the test agent did not answer within {limit:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        a
    }

    /// Run `cmd` with /bin/sh in the guest; (exit code, stdout + stderr).
    pub async fn try_sh(&self, cmd: &str) -> Result<(i64, String), String> {
        use serde_json::{Value, json};
        use std::time::Duration;
        // a connection per command: after a snapshot load the guest's end starts afresh
        let agent = virtbus::drivers::qemu::qga::Agent::new(&self.path);
        let t = Duration::from_secs(10);
        let pid = agent
            .execute_raw(
                "guest-exec",
                Some(json!({"path": "/bin/sh", "arg": ["-c", cmd], "capture-output": true})),
                t,
            )
            .await
            .map_err(|e| e.to_string())?["pid"]
            .as_i64()
            .ok_or("no pid")?;
        let started = Instant::now();
        loop {
            let st = agent
                .execute_raw("guest-exec-status", Some(json!({ "pid": pid })), t)
                .await
                .map_err(|e| e.to_string())?;
            if st["exited"].as_bool() == Some(true) {
                let text = |k: &str| {
                    String::from_utf8_lossy(&base64_decode(st[k].as_str().unwrap_or("")))
                        .into_owned()
                };
                let code = st.get("exitcode").and_then(Value::as_i64).unwrap_or(-1);
                return Ok((code, text("out-data") + &text("err-data")));
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(format!("'{cmd}' did not finish within 30 s"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Run `cmd`, which must succeed; its output.
    pub async fn sh(&self, cmd: &str) -> String {
        let (code, out) = self
            .try_sh(cmd)
            .await
            .unwrap_or_else(|e| panic!("'{cmd}': {e}"));
        assert_eq!(code, 0, "'{cmd}': {out}");
        out
    }
}

/// Whether the ext4 filesystem at the start of `image` (read through its backing chain,
/// while a guest may have it open) has `needs_recovery` (`EXT3_FEATURE_INCOMPAT_RECOVER`,
/// 0x4 in `s_feature_incompat` at superblock offset 0x60; the superblock is at 1024).
pub fn ext4_needs_recovery(image: &Path) -> bool {
    let out = image.with_extension("sb.raw");
    let st = Command::new("qemu-img")
        .args(["dd", "-U", "-O", "raw", "bs=4096", "count=1"])
        .arg(format!("if={}", image.display()))
        .arg(format!("of={}", out.display()))
        .status()
        .expect("qemu-img dd");
    assert!(st.success(), "qemu-img dd of {}", image.display());
    let sb = std::fs::read(&out).expect("superblock");
    let _ = std::fs::remove_file(&out);
    assert_eq!(&sb[1024 + 0x38..1024 + 0x3a], &[0x53, 0xef], "ext4 magic");
    let incompat = u32::from_le_bytes(sb[1024 + 0x60..1024 + 0x64].try_into().expect("four bytes"));
    incompat & 0x4 != 0
}

/// `qemu-img info` of an image a guest may have open, as JSON (with `--backing-chain`, a list).
pub fn image_info(image: &Path, chain: bool) -> serde_json::Value {
    let mut c = Command::new("qemu-img");
    c.args(["info", "-U", "--output=json"]);
    if chain {
        c.arg("--backing-chain");
    }
    let out = c.arg(image).output().expect("qemu-img info");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// The internal snapshots an image holds: (name, memory state size).
pub fn image_snapshots(image: &Path) -> Vec<(String, u64)> {
    image_info(image, false)["snapshots"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_owned(),
                s["vm-state-size"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// `xml` (from [`domain_xml`]) booting Debian's compressed kernel instead of the extracted
/// ELF: its EFI stub boots through OVMF, and it finds the ACPI-described TPM, which the
/// ELF's PVH entry does not.
pub fn with_bzimage(xml: String) -> String {
    let release = std::fs::read_to_string(dir().join("kernel-release")).expect("kernel-release");
    xml.replace(
        &dir().join("vmlinux").display().to_string(),
        &format!("/boot/vmlinuz-{}", release.trim()),
    )
}
