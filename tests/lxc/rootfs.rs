//! A busybox root filesystem built at test time (Debian's `busybox-static`), and container
//! definitions over it.

use std::path::{Path, PathBuf};

pub const BUSYBOX: &str = "/bin/busybox";

/// A root filesystem under `dir`: busybox with its applets linked, the mount points the
/// driver uses, `/etc/passwd` with an unprivileged user, and `/out` for the tests' results.
pub fn build(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for d in [
        "bin", "sbin", "proc", "sys", "dev", "etc", "tmp", "out", "ro", "mnt",
    ] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    assert!(
        Path::new(BUSYBOX).exists(),
        "{BUSYBOX} is missing: install busybox-static (scripts/packages.sh)"
    );
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).expect("copy busybox");
    for applet in [
        "sh", "sleep", "echo", "cat", "ls", "hostname", "touch", "id", "grep", "wc", "mount", "ps",
        "seq", "true", "reboot", "ip", "ping", "udhcpc", "ifconfig", "mkfifo", "dd",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("link");
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )
    .expect("passwd");
    std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").expect("group");
    use std::os::unix::fs::PermissionsExt;
    // writable for a container whose root is an unprivileged host uid
    std::fs::set_permissions(root.join("out"), std::fs::Permissions::from_mode(0o777))
        .expect("chmod");
    root
}

/// A container running `/bin/sh -c SCRIPT` in `root`, with `extra` inside `<devices>` and
/// `top` after `<os>` (e.g. `<idmap>`).
pub fn domain(name: &str, root: &Path, script: &str, top: &str, extra: &str) -> String {
    let script = script
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<domain type='lxc'><name>{name}</name><memory unit='MiB'>64</memory>\
         <vcpu>1</vcpu>\
         <os><type>exe</type><init>/bin/sh</init><initarg>-c</initarg>\
         <initarg>{script}</initarg></os>{top}\
         <features><privnet/></features>\
         <devices>\
         <filesystem type='mount'><source dir='{}'/><target dir='/'/></filesystem>\
         {extra}<console type='pty'/></devices></domain>",
        root.display()
    )
}
