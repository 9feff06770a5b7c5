//! The status file of a running domain: what a restarted daemon needs to find its QEMU again
//! (pid and start time, so that a recycled pid is never adopted; the monitor and agent
//! sockets; the id; the live definition). One JSON file per running domain in
//! `<runtime>/qemu/status/<uuid>.json`, replaced atomically, so a `kill -9` of the daemon at
//! any moment leaves either the old or the new one.

use std::{
    io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::{DomainDef, FormatOptions};

const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot read {path}: {why}")]
    Read { path: PathBuf, why: String },
}

/// One running domain, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub uuid: Uuid,
    pub id: u32,
    pub pid: i32,
    pub start_time: u64,
    pub emulator: PathBuf,
    pub monitor: PathBuf,
    pub agent: Option<PathBuf>,
    /// The domain's runtime directory (sockets).
    pub dir: PathBuf,
    pub log: PathBuf,
    pub live: DomainDef,
    /// A quiesced snapshot's thaw was not confirmed: the guest may still be frozen, and a
    /// restarted daemon keeps checking (and shows the warning) until its agent says
    /// `thawed`.
    pub thaw_unconfirmed: bool,
    /// QEMU holds a descriptor of the agent connection that carries that thaw (`getfd`
    /// name [`AGENT_HELD_FD`]): a restarted daemon closes it once the guest has run.
    pub agent_held: bool,
}

/// The `getfd` name under which QEMU holds an agent connection with a thaw on it.
pub const AGENT_HELD_FD: &str = "vb-agent-thaw";

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    uuid: Uuid,
    id: u32,
    pid: i32,
    start_time: u64,
    emulator: PathBuf,
    monitor: PathBuf,
    agent: Option<PathBuf>,
    dir: PathBuf,
    log: PathBuf,
    /// The live definition as domain XML, secrets included (the file is private).
    live: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    thaw_unconfirmed: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    agent_held: bool,
}

/// The status files' directory under the driver's runtime directory.
pub fn dir(runtime: &Path) -> PathBuf {
    runtime.join("status")
}

pub fn path(runtime: &Path, uuid: &Uuid) -> PathBuf {
    dir(runtime).join(format!("{uuid}.json"))
}

impl Status {
    pub fn to_json(&self) -> Vec<u8> {
        let f = File {
            version: VERSION,
            uuid: self.uuid,
            id: self.id,
            pid: self.pid,
            start_time: self.start_time,
            emulator: self.emulator.clone(),
            monitor: self.monitor.clone(),
            agent: self.agent.clone(),
            dir: self.dir.clone(),
            log: self.log.clone(),
            live: self.live.to_xml(&FormatOptions {
                id: None,
                secure: true,
            }),
            thaw_unconfirmed: self.thaw_unconfirmed,
            agent_held: self.agent_held,
        };
        serde_json::to_vec_pretty(&f).unwrap_or_default()
    }

    pub fn from_json(text: &[u8]) -> Result<Self, String> {
        let f: File = serde_json::from_slice(text).map_err(|e| e.to_string())?;
        if f.version != VERSION {
            return Err(format!("unknown status version {}", f.version));
        }
        let live = DomainDef::from_xml(&f.live).map_err(|e| e.to_string())?;
        if live.uuid != f.uuid {
            return Err(format!(
                "the definition's UUID {} is not the file's {}",
                live.uuid, f.uuid
            ));
        }
        Ok(Self {
            uuid: f.uuid,
            id: f.id,
            pid: f.pid,
            start_time: f.start_time,
            emulator: f.emulator,
            monitor: f.monitor,
            agent: f.agent,
            dir: f.dir,
            log: f.log,
            live,
            thaw_unconfirmed: f.thaw_unconfirmed,
            agent_held: f.agent_held,
        })
    }

    /// Write (replace) the file atomically.
    pub fn save(&self, runtime: &Path) -> Result<(), StatusError> {
        let p = path(runtime, &self.uuid);
        let err = |source| StatusError::Write {
            path: p.clone(),
            source,
        };
        std::fs::create_dir_all(dir(runtime)).map_err(err)?;
        crate::util::fs::write_atomic(&p, &self.to_json(), 0o600).map_err(err)
    }

    pub fn load(path: &Path) -> Result<Self, StatusError> {
        let err = |why: String| StatusError::Read {
            path: path.to_owned(),
            why,
        };
        let text = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        Self::from_json(&text).map_err(err)
    }

    pub fn remove(runtime: &Path, uuid: &Uuid) {
        let p = path(runtime, uuid);
        if let Err(e) = crate::util::fs::remove_durable(&p) {
            tracing::warn!("cannot remove {}: {e}", p.display());
        }
    }
}

/// Every status file; unreadable ones are logged and set aside as `*.corrupt`.
pub fn load_all(runtime: &Path) -> Vec<Status> {
    let mut out = crate::util::fs::load_json_dir(&dir(runtime), |p| {
        Status::load(p).map_err(|e| e.to_string())
    });
    out.sort_by_key(|s| s.id);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Status {
        let live = DomainDef::from_xml(
            "<domain type='qemu'><name>st</name><memory unit='MiB'>64</memory>\
             <os><type>hvm</type></os><devices><graphics type='vnc' port='5901' \
             passwd='secret'/></devices></domain>",
        )
        .expect("def");
        Status {
            uuid: live.uuid,
            id: 7,
            pid: 4242,
            start_time: 123456,
            emulator: "/usr/bin/qemu-system-x86_64".into(),
            monitor: "/run/x/monitor.sock".into(),
            agent: Some("/run/x/channel0.sock".into()),
            dir: "/run/x".into(),
            log: "/var/log/x.log".into(),
            live,
            thaw_unconfirmed: true,
            agent_held: true,
        }
    }

    #[test]
    fn round_trip_keeps_everything_including_secrets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = status();
        s.save(dir.path()).expect("save");
        let all = load_all(dir.path());
        assert_eq!(all, std::slice::from_ref(&s));
        assert_eq!(
            all[0].live.devices.graphics[0].passwd.as_deref(),
            Some("secret")
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path(dir.path(), &s.uuid))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        Status::remove(dir.path(), &s.uuid);
        assert!(load_all(dir.path()).is_empty());
    }

    #[test]
    fn corrupt_or_mismatched_files_are_set_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = status();
        s.save(dir.path()).expect("save");
        let bad = super::dir(dir.path()).join("bad.json");
        std::fs::write(&bad, b"{\"version\": 1").expect("write");
        let mut other = status();
        other.uuid = Uuid::new_v4();
        let text = other.to_json();
        std::fs::write(path(dir.path(), &other.uuid), text).expect("write");
        assert_eq!(load_all(dir.path()), [s]);
        assert!(super::dir(dir.path()).join("bad.json.corrupt").exists());
        assert!(Status::from_json(b"{\"version\": 99}").is_err());
    }
}
