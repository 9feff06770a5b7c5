//! The status file of a running container: what a restarted daemon needs to find its
//! controller again (pid and start time, so that a recycled pid is never adopted), its
//! cgroups, its id and its live definition. One JSON file per container in
//! `<runtime>/lxc/status/<uuid>.json`, replaced atomically.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::cgroup::Cgroups;
use crate::model::{DomainDef, FormatOptions};

const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub uuid: Uuid,
    pub id: u32,
    pub controller_pid: i32,
    pub controller_start: u64,
    /// The container's runtime directory (plan, controller record).
    pub dir: PathBuf,
    pub log: PathBuf,
    pub cgroups: Cgroups,
    pub live: DomainDef,
}

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    uuid: Uuid,
    id: u32,
    controller_pid: i32,
    controller_start: u64,
    dir: PathBuf,
    log: PathBuf,
    cgroups: Cgroups,
    live: String,
}

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
            controller_pid: self.controller_pid,
            controller_start: self.controller_start,
            dir: self.dir.clone(),
            log: self.log.clone(),
            cgroups: self.cgroups.clone(),
            live: self.live.to_xml(&FormatOptions {
                id: None,
                secure: true,
            }),
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
            controller_pid: f.controller_pid,
            controller_start: f.controller_start,
            dir: f.dir,
            log: f.log,
            cgroups: f.cgroups,
            live,
        })
    }

    pub fn save(&self, runtime: &Path) -> Result<(), String> {
        let p = path(runtime, &self.uuid);
        std::fs::create_dir_all(dir(runtime))
            .and_then(|()| crate::util::fs::write_atomic(&p, &self.to_json(), 0o600))
            .map_err(|e| format!("cannot write {}: {e}", p.display()))
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn remove(runtime: &Path, uuid: &Uuid) {
        let p = path(runtime, uuid);
        if let Err(e) = crate::util::fs::remove_durable(&p)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot remove {}: {e}", p.display());
        }
    }
}

/// Every status file; unreadable ones are logged and set aside as `*.corrupt`.
pub fn load_all(runtime: &Path) -> Vec<Status> {
    let mut out = crate::util::fs::load_json_dir(&dir(runtime), Status::load);
    out.sort_by_key(|s| s.id);
    out
}
