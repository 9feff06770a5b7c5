//! virtbusctl against the real daemon (test driver) on a private bus: every command, its
//! human output (golden files in `golden/`), its JSON, and its exit codes; the client's typed
//! API checked against `dbus/*.xml`.

#[path = "../support/mod.rs"]
mod support;

#[allow(dead_code)]
#[path = "../../src/cli/api.rs"]
mod api;

mod commands;
mod drift;
mod network;
mod polkit;
mod remote;
mod storage;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use support::{Bus, Daemon};

/// A daemon on a private bus, and the client pointed at it.
pub struct Env {
    pub bus: Bus,
    pub daemon: Daemon,
}

/// What one run of the client did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Assert success and return standard output.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "failed: {self:?}");
        &self.stdout
    }

    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

impl Env {
    pub async fn start() -> Env {
        let bus = Bus::start();
        let daemon = Daemon::start(&bus).await;
        Env { bus, daemon }
    }

    /// A daemon started as `launch` says (e.g. inside a network namespace).
    pub async fn start_launch(launch: support::Launch) -> Env {
        let bus = Bus::start();
        let daemon = Daemon::start_launch(&bus, launch).await;
        Env { bus, daemon }
    }

    pub fn dir(&self) -> &Path {
        self.bus.dir.path()
    }

    /// The client as a command on this bus (`--user`, the session-type test bus).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_virtbusctl"));
        c.arg("--user")
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus.address)
            .env_remove("NO_COLOR")
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("run virtbusctl"))
    }

    /// Write `text` to a file in the test's directory and return its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir().join(name);
        std::fs::write(&p, text).expect("write file");
        p
    }

    /// Define a test-driver domain with a fixed UUID.
    pub fn define(&self, name: &str, uuid: &str, vcpus: u32, mib: u32) {
        let xml = format!(
            "<domain type='test'><name>{name}</name><uuid>{uuid}</uuid>\
             <memory unit='MiB'>{mib}</memory><vcpu>{vcpus}</vcpu>\
             <os><type>hvm</type></os></domain>"
        );
        let f = self.file(&format!("{name}.xml"), &xml);
        self.run(&["define", f.to_str().expect("path")]).ok();
    }
}

/// Compare `actual` with the golden file `name` (`VIRTBUS_GOLDEN_UPDATE=1` rewrites it).
#[track_caller]
pub fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cli/golden")
        .join(name);
    if std::env::var_os("VIRTBUS_GOLDEN_UPDATE").is_some() {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (VIRTBUS_GOLDEN_UPDATE=1 writes it)",
            path.display()
        )
    });
    assert_eq!(actual, expected, "output differs from {}", path.display());
}

/// Replace `YYYY-MM-DD HH:MM:SS` stamps by `TIME`, so outputs with creation times compare.
pub fn mask_times(s: &str) -> String {
    let b = s.as_bytes();
    let shape = b"dddd-dd-dd dd:dd:dd";
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        let fits = i + shape.len() <= b.len()
            && shape.iter().zip(&b[i..]).all(|(s, c)| match s {
                b'd' => c.is_ascii_digit(),
                other => other == c,
            });
        if fits {
            out.push_str("TIME");
            i += shape.len();
        } else {
            let ch = s[i..].chars().next().expect("char");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}
