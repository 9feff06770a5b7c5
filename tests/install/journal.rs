//! Logging to the journal when systemd connects stderr to it, and to stderr otherwise.
//!
//! journald is not running here, so the test plays its part: a datagram socket bound where
//! the daemon looks for it (/run/systemd/journal/socket, inside a mount namespace) receives
//! the native-protocol entries.

use std::{
    os::unix::{fs::MetadataExt, net::UnixDatagram},
    process::Command,
    time::Duration,
};

use crate::{
    fixture::*,
    support::{Bus, NAME},
};

/// Start the daemon with stderr to `log` and JOURNAL_STREAM naming that file, as systemd
/// does for StandardError=journal; with `socket_dir` mounted on /run/systemd/journal.
fn start(bus: &Bus, log: &std::path::Path, socket_dir: &std::path::Path) -> Proc {
    let file = std::fs::File::create(log).expect("log");
    let meta = file.metadata().expect("stat");
    let script = r#"mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/journal &&
        mount --bind "$1" /run/systemd/journal && shift && exec "$@""#;
    Proc::spawn(
        Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(socket_dir)
            .arg(cargo_bin())
            .args(["--session", "--timeout=0", "--state-dir"])
            .arg(bus.dir.path().join("state"))
            .arg("--runtime-dir")
            .arg(bus.dir.path().join("run"))
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .env("XDG_CONFIG_HOME", bus.dir.path().join("config"))
            .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .stdout(std::process::Stdio::null())
            .stderr(file),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_go_to_the_journal_when_stderr_is_the_journal_stream() {
    let bus = Bus::start();
    let sockdir = bus.dir.path().join("journal");
    std::fs::create_dir(&sockdir).expect("dir");
    let journal = UnixDatagram::bind(sockdir.join("socket")).expect("bind");
    journal
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let log = bus.dir.path().join("stderr");
    let mut d = start(&bus, &log, &sockdir);
    let conn = bus.connect().await;
    assert!(
        eventually(Duration::from_secs(20), async || has_owner(&conn, NAME)
            .await)
        .await
    );

    let mut entries = Vec::new();
    let serving = tokio::task::block_in_place(|| {
        let mut buf = vec![0u8; 65536];
        loop {
            let n = journal.recv(&mut buf).ok()?;
            let entry = parse_entry(&buf[..n]);
            entries.push(entry.clone());
            if entry.get("MESSAGE").map(String::as_str)
                == Some("serving org.virtbus1 on the session bus")
            {
                return Some(entry);
            }
        }
    });
    let entry = serving.unwrap_or_else(|| panic!("no entry: {entries:#?}"));
    assert_eq!(
        entry.get("PRIORITY").map(String::as_str),
        Some("6"),
        "info: {entry:?}"
    );
    assert_eq!(
        entry.get("SYSLOG_IDENTIFIER").map(String::as_str),
        Some("virtbusd"),
        "{entry:?}"
    );
    d.signal(libc::SIGTERM);
    assert!(
        d.wait_exit(Duration::from_secs(10))
            .expect("exit")
            .success()
    );
    let text = std::fs::read_to_string(&log).expect("stderr");
    assert!(
        !text.contains("serving org.virtbus1"),
        "also on stderr: {text}"
    );
}

/// With JOURNAL_STREAM set but no journal to talk to, logs go to stderr, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_journal_logs_go_to_stderr() {
    let bus = Bus::start();
    let empty = bus.dir.path().join("no-journal");
    std::fs::create_dir(&empty).expect("dir");
    let log = bus.dir.path().join("stderr");
    let mut d = start(&bus, &log, &empty);
    let conn = bus.connect().await;
    assert!(
        eventually(Duration::from_secs(20), async || has_owner(&conn, NAME)
            .await)
        .await
    );
    d.signal(libc::SIGTERM);
    assert!(
        d.wait_exit(Duration::from_secs(10))
            .expect("exit")
            .success()
    );
    let text = std::fs::read_to_string(&log).expect("stderr");
    assert!(text.contains("cannot log to the journal"), "{text}");
    assert!(
        text.contains("serving org.virtbus1 on the session bus"),
        "{text}"
    );
}

/// Fields of one entry in journald's native protocol: `KEY=value\n`, or `KEY\n`, a 64-bit
/// little-endian length, the value and `\n`.
fn parse_entry(mut b: &[u8]) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    while let Some(nl) = b.iter().position(|&c| c == b'\n') {
        let line = &b[..nl];
        if let Some(eq) = line.iter().position(|&c| c == b'=') {
            let key = String::from_utf8_lossy(&line[..eq]).into_owned();
            out.insert(key, String::from_utf8_lossy(&line[eq + 1..]).into_owned());
            b = &b[nl + 1..];
        } else {
            let key = String::from_utf8_lossy(line).into_owned();
            let rest = &b[nl + 1..];
            let Some(len) = rest.get(..8) else { break };
            let len = u64::from_le_bytes(len.try_into().expect("8 bytes")) as usize;
            let Some(value) = rest.get(8..8 + len) else {
                break;
            };
            out.insert(key, String::from_utf8_lossy(value).into_owned());
            b = rest.get(8 + len + 1..).unwrap_or_default();
        }
    }
    out
}
