//! `-H HOST`: the client runs `ssh -xT HOST systemd-stdio-bridge` and speaks D-Bus over its
//! standard input and output. A stand-in `ssh` first in PATH runs the bridge locally against
//! the test bus, as the remote host would against its system bus.

use std::os::unix::fs::PermissionsExt;

use crate::Env;

#[tokio::test]
async fn host_option_reaches_the_daemon_through_the_stdio_bridge() {
    let env = Env::start().await;
    env.define("far", "33333333-3333-4333-8333-333333333333", 1, 256);
    let bin = env.dir().join("fakebin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let log = env.dir().join("ssh-args");
    let ssh = bin.join("ssh");
    std::fs::write(
        &ssh,
        format!(
            "#!/bin/sh\necho \"$@\" > {log}\n\
             while [ $# -gt 0 ]; do case $1 in -l) shift 2;; --) shift 2; break;; *) shift;; esac; done\n\
             exec \"$@\" --bus-path={addr}\n",
            log = log.display(),
            addr = env.bus.address
        ),
    )
    .expect("write");
    std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_virtbusctl"))
        .args(["-H", "admin@far.example", "list", "--all", "--name"])
        .env("PATH", path)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "far\n");
    let args = std::fs::read_to_string(&log).expect("ssh ran");
    assert_eq!(
        args.trim(),
        "-xT -l admin -- far.example systemd-stdio-bridge"
    );
}
