//! The configuration file at start: errors stop the daemon with file and line, options
//! override the file.

use std::{process::Command, time::Duration};

use crate::{
    fixture::*,
    support::{Bus, NAME},
};

fn virtbusd(bus: &Bus, args: &[&str]) -> Command {
    let mut cmd = Command::new(cargo_bin());
    cmd.arg("--session")
        .args(args)
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .env("XDG_CONFIG_HOME", bus.dir.path().join("no-config"))
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM");
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_stops_the_daemon_naming_file_and_line() {
    let bus = Bus::start();
    let file = bus.dir.path().join("virtbusd.toml");
    std::fs::write(
        &file,
        "# comment\nlog_level = \"info\"\nidle_timeout = 5\nidle_timout = 6\n",
    )
    .expect("write");
    let out = virtbusd(&bus, &["--config", file.to_str().expect("utf-8")])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(78), "EX_CONFIG");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:4:1: unknown field `idle_timout`",
            file.display()
        )),
        "{err}"
    );
    let conn = bus.connect().await;
    assert!(!has_owner(&conn, NAME).await);

    let missing = bus.dir.path().join("missing.toml");
    let out = virtbusd(&bus, &["--config", missing.to_str().expect("utf-8")])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot read {}", missing.display())),
        "{err}"
    );
}

/// The user's file is found under XDG_CONFIG_HOME; `--state-dir` beats its `state_dir`,
/// its `runtime_dir` applies, and `--timeout` beats its `idle_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_override_the_file() {
    let bus = Bus::start();
    let d = bus.dir.path();
    let confdir = d.join("xdg/virtbus");
    std::fs::create_dir_all(&confdir).expect("dir");
    std::fs::write(
        confdir.join("virtbusd.toml"),
        format!(
            "state_dir = \"{}\"\nruntime_dir = \"{}\"\nidle_timeout = 1\nlog_level = \"debug\"\n",
            d.join("conf-state").display(),
            d.join("conf-run").display()
        ),
    )
    .expect("write");
    let log = d.join("log");
    let mut cmd = virtbusd(
        &bus,
        &[
            "--state-dir",
            d.join("arg-state").to_str().expect("utf-8"),
            "--timeout=0",
        ],
    );
    let mut proc = Proc::spawn(
        cmd.env("XDG_CONFIG_HOME", d.join("xdg"))
            .env_remove("RUST_LOG")
            .stderr(std::fs::File::create(&log).expect("log")),
    );
    let conn = bus.connect().await;
    assert!(
        eventually(Duration::from_secs(20), async || has_owner(&conn, NAME)
            .await)
        .await
    );
    assert!(d.join("arg-state/domains").is_dir());
    assert!(!d.join("conf-state").exists());
    assert!(d.join("conf-run").is_dir());
    // The file's one-second idle timeout would have ended it by now.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(has_owner(&conn, NAME).await, "--timeout=0 keeps it running");
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.contains(&format!(
            "configuration from {}",
            confdir.join("virtbusd.toml").display()
        )),
        "{text}"
    );
    assert!(
        text.contains("DEBUG"),
        "log_level from the file applies: {text}"
    );
    proc.signal(libc::SIGTERM);
    assert!(
        proc.wait_exit(Duration::from_secs(10))
            .expect("exit")
            .success()
    );
}
