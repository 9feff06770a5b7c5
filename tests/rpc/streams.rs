//! Streams and passed descriptors through libvirt's RPC protocol with unchanged clients:
//! `virsh vol-upload`/`vol-download` (whole, `--offset`/`--length`, `--sparse`), compared by
//! checksum.

use std::path::Path;

use super::Rpc;

const QEMU: &str = "qemu:///system";

fn sha(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// `len` bytes that differ everywhere (a pattern no offset mistake keeps equal).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn virsh_vol_upload_and_download() {
    let r = Rpc::start().await;
    let dir = r.bus.dir.path();
    let pool_dir = r.daemon.state.join("images/up");
    let pool_arg = pool_dir.to_string_lossy().into_owned();
    r.ok(
        QEMU,
        &["pool-define-as", "up", "dir", "--target", &pool_arg],
    );
    r.ok(QEMU, &["pool-build", "up"]);
    r.ok(QEMU, &["pool-start", "up"]);
    r.ok(
        QEMU,
        &["vol-create-as", "up", "v.raw", "8M", "--format", "raw"],
    );
    // 6 MiB and a bit: more than one packet, not a multiple of the chunk
    let data = pattern(6 * 1024 * 1024 + 12345, 7);
    let src = dir.join("src.bin");
    std::fs::write(&src, &data).expect("write source");
    let s = |p: &Path| p.to_string_lossy().into_owned();
    r.ok(QEMU, &["vol-upload", "--pool", "up", "v.raw", &s(&src)]);
    let vol = pool_dir.join("v.raw");
    let on_disk = std::fs::read(&vol).expect("volume");
    assert_eq!(on_disk.len(), 8 * 1024 * 1024, "the volume keeps its size");
    assert_eq!(&on_disk[..data.len()], &data[..], "uploaded bytes");

    // the whole volume back
    let back = dir.join("back.bin");
    r.ok(QEMU, &["vol-download", "--pool", "up", "v.raw", &s(&back)]);
    assert_eq!(sha(&back), sha(&vol));

    // a window of it
    let (off, len) = (1_000_003usize, 2_500_000usize);
    let part = dir.join("part.bin");
    r.ok(
        QEMU,
        &[
            "vol-download",
            "--pool",
            "up",
            "v.raw",
            &s(&part),
            "--offset",
            &off.to_string(),
            "--length",
            &len.to_string(),
        ],
    );
    let got = std::fs::read(&part).expect("part");
    assert_eq!(got.len(), len);
    assert_eq!(&got[..], &on_disk[off..off + len]);

    // an upload into a window: what is around it stays
    let (off, len) = (4_194_301usize, 1_048_583usize);
    let patch = pattern(len, 99);
    let patch_file = dir.join("patch.bin");
    std::fs::write(&patch_file, &patch).expect("write patch");
    let window = |file: &Path| {
        vec![
            "vol-upload".to_owned(),
            "--pool".into(),
            "up".into(),
            "v.raw".into(),
            s(file),
            "--offset".into(),
            off.to_string(),
            "--length".into(),
            len.to_string(),
        ]
    };
    let args = window(&patch_file);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    r.ok(QEMU, &args);
    let mut want = on_disk.clone();
    want[off..off + len].copy_from_slice(&patch);
    let now = std::fs::read(&vol).expect("volume");
    assert!(now == want, "the window alone was written");
    // more than the length: refused as libvirt's descriptor streams refuse it
    let args = window(&src);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = r.fails(QEMU, &args);
    assert!(e.contains("No space left on device"), "{e}");

    // sparse: a file with a hole in the middle goes up with STREAM_HOLE packets and comes
    // back with the same bytes
    let sparse = dir.join("sparse.bin");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::File::create(&sparse).expect("sparse");
        f.write_all(&pattern(1024 * 1024, 3)).expect("head");
        f.seek(SeekFrom::Start(5 * 1024 * 1024)).expect("seek");
        f.write_all(&pattern(1024 * 1024, 5)).expect("tail");
    }
    r.ok(
        QEMU,
        &[
            "vol-upload",
            "--sparse",
            "--pool",
            "up",
            "v.raw",
            &s(&sparse),
        ],
    );
    let sparse_len = 6 * 1024 * 1024;
    let now = std::fs::read(&vol).expect("volume");
    assert!(now[..sparse_len] == std::fs::read(&sparse).expect("sparse")[..]);
    let back = dir.join("sparse-back.bin");
    r.ok(
        QEMU,
        &[
            "vol-download",
            "--sparse",
            "--pool",
            "up",
            "v.raw",
            &s(&back),
        ],
    );
    assert_eq!(sha(&back), sha(&vol));

    // refused before any byte moves: a read-only connection, an unknown flag's volume
    let e = r.fails(
        QEMU,
        &["-r", "vol-download", "--pool", "up", "v.raw", &s(&back)],
    );
    assert!(
        e.contains("read only access prevents virStorageVolDownload"),
        "{e}"
    );
    let e = r.fails(QEMU, &["vol-download", "--pool", "up", "nope", &s(&back)]);
    assert!(e.contains("nope"), "{e}");
    r.ok(QEMU, &["vol-delete", "--pool", "up", "v.raw"]);
    r.ok(QEMU, &["pool-destroy", "up"]);
    r.ok(QEMU, &["pool-undefine", "up"]);
}

/// python3-libvirt (virt-manager's local display) asks for the guest's display socket.
const GRAPHICS_FD: &str = r#"
import libvirt, socket, sys
conn = libvirt.open(sys.argv[1])
dom = conn.lookupByName(sys.argv[2])
fd = dom.openGraphicsFD(0, 0)
s = socket.socket(fileno=fd)
s.settimeout(20)
banner = b""
while len(banner) < 12:
    chunk = s.recv(12 - len(banner))
    if not chunk:
        break
    banner += chunk
print(banner.decode(errors="replace").strip())
# a second display that is not there
try:
    dom.openGraphicsFD(1, 0)
    print("idx 1 opened")
except libvirt.libvirtError as e:
    print("idx 1:", e.get_error_code())
ro = libvirt.openReadOnly(sys.argv[1])
try:
    ro.lookupByName(sys.argv[2]).openGraphicsFD(0, 0)
    print("read-only opened")
except libvirt.libvirtError as e:
    print("read-only:", e.get_error_message())
"#;

#[tokio::test]
async fn graphics_fd_and_screenshot_of_a_running_guest() {
    let r = Rpc::start().await;
    let disk = r.bus.dir.path().join("gfx.qcow2");
    super::guest::data_disk(&disk);
    let xml = r.bus.dir.path().join("gfx.xml");
    std::fs::write(&xml, super::guest::domain_xml("gfx", &disk, "")).expect("write xml");
    r.ok(QEMU, &["define", &xml.to_string_lossy()]);
    r.ok(QEMU, &["start", "gfx"]);

    let out = std::process::Command::new("/usr/bin/python3")
        .args(["-c", GRAPHICS_FD, &r.uri(QEMU), "gfx"])
        .env("HOME", r.bus.dir.path())
        .output()
        .expect("python3-libvirt");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        r.daemon.log_text()
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"RFB 003.008"), "{text}");
    assert!(lines.iter().any(|l| l.starts_with("idx 1: ")), "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("read only access prevents virDomainOpenGraphicsFD")),
        "{text}"
    );

    // virsh screenshot: a PPM whose header's size matches its pixels
    let shot = r.bus.dir.path().join("gfx.ppm");
    let shot_arg = shot.to_string_lossy().into_owned();
    let said = r.ok(QEMU, &["screenshot", "gfx", &shot_arg]);
    assert!(said.contains("image/x-portable-pixmap"), "{said}");
    let img = std::fs::read(&shot).expect("screenshot");
    let (w, h, pixels) = ppm(&img);
    assert!(w >= 320 && h >= 200, "{w}x{h}");
    assert_eq!(pixels, w * h * 3, "{w}x{h}");
    eprintln!("screenshot: {w}x{h}, {} bytes", img.len());
    // a screen the guest does not have; a read-only connection
    let e = r.fails(QEMU, &["screenshot", "gfx", &shot_arg, "--screen", "1"]);
    assert!(e.contains("no screen with index 1"), "{e}");
    let e = r.fails(QEMU, &["-r", "screenshot", "gfx", &shot_arg]);
    assert!(
        e.contains("read only access prevents virDomainScreenshot"),
        "{e}"
    );

    r.ok(QEMU, &["destroy", "gfx"]);
    let e = r.fails(QEMU, &["screenshot", "gfx", &shot_arg]);
    assert!(e.contains("not running"), "{e}");
    r.ok(QEMU, &["undefine", "gfx"]);
}

/// A binary PPM's width, height and pixel bytes after its header.
fn ppm(img: &[u8]) -> (usize, usize, usize) {
    // "P6\n<w> <h>\n<max>\n" then the pixels
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while img.get(at).is_some_and(u8::is_ascii_whitespace) {
            at += 1;
        }
        let start = at;
        while img.get(at).is_some_and(|b| !b.is_ascii_whitespace()) {
            at += 1;
        }
        assert!(at > start, "a short PPM header");
        fields.push(String::from_utf8_lossy(&img[start..at]).into_owned());
    }
    assert_eq!(fields[0], "P6", "not a binary PPM");
    assert_eq!(fields[3], "255");
    let n = |s: &str| s.parse::<usize>().expect("a number");
    (n(&fields[1]), n(&fields[2]), img.len() - at - 1)
}
