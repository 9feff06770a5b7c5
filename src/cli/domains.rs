//! Domains and snapshots as the client sees them: found by name or UUID, read from their
//! properties.

use std::collections::HashMap;

use serde_json::json;
use zbus::OwnedObjectPath;

use super::{
    api::{Bus, DOMAIN, PropMap, SNAPSHOT, domain as d, manager, snapshot as s},
    error::{Error, Kind, Result},
};

/// A domain's properties.
#[derive(Debug, Clone)]
pub struct DomainInfo {
    pub path: String,
    pub name: String,
    pub uuid: String,
    pub title: String,
    pub id: i32,
    pub driver: String,
    pub state: String,
    pub reason: String,
    pub active: bool,
    pub persistent: bool,
    pub autostart: bool,
    pub managed_save: bool,
    pub vcpus: u32,
    pub memory_kib: u64,
    pub snapshots: u32,
    pub current_snapshot: Option<String>,
    pub warning: String,
    pub job: String,
    pub job_progress: f64,
}

impl DomainInfo {
    pub fn from_props(path: &str, p: &PropMap) -> Self {
        let current = d::CURRENT_SNAPSHOT
            .in_map(p)
            .filter(|o| o.as_str() != "/")
            .map(|o| o.to_string());
        Self {
            path: path.to_owned(),
            name: d::NAME.in_map(p).unwrap_or_default(),
            uuid: d::UUID.in_map(p).unwrap_or_default(),
            title: d::TITLE.in_map(p).unwrap_or_default(),
            id: d::ID.in_map(p).unwrap_or(-1),
            driver: d::DRIVER.in_map(p).unwrap_or_default(),
            state: d::STATE.in_map(p).unwrap_or_default(),
            reason: d::STATE_REASON.in_map(p).unwrap_or_default(),
            active: d::ACTIVE.in_map(p).unwrap_or_default(),
            persistent: d::PERSISTENT.in_map(p).unwrap_or_default(),
            autostart: d::AUTOSTART.in_map(p).unwrap_or_default(),
            managed_save: d::HAS_MANAGED_SAVE.in_map(p).unwrap_or_default(),
            vcpus: d::VCPUS.in_map(p).unwrap_or_default(),
            memory_kib: d::MEMORY_KIB.in_map(p).unwrap_or_default(),
            snapshots: d::SNAPSHOT_COUNT.in_map(p).unwrap_or_default(),
            current_snapshot: current,
            warning: d::WARNING.in_map(p).unwrap_or_default(),
            job: d::JOB.in_map(p).unwrap_or_default(),
            job_progress: d::JOB_PROGRESS.in_map(p).unwrap_or_default(),
        }
    }

    /// The id while active, as JSON `null` otherwise.
    pub fn id_json(&self) -> serde_json::Value {
        if self.active && self.id >= 0 {
            json!(self.id)
        } else {
            serde_json::Value::Null
        }
    }

    /// The keys `list --json` prints for each domain (a subset of `status --json`).
    pub fn summary_json(&self) -> serde_json::Value {
        json!({
            "name": self.name,
            "uuid": self.uuid,
            "state": self.state,
            "id": self.id_json(),
            "vcpus": self.vcpus,
            "memory_kib": self.memory_kib,
            "autostart": self.autostart,
            "persistent": self.persistent,
            "managed_save": self.managed_save,
            "snapshots": self.snapshots,
        })
    }
}

/// The object path of the domain named `name_or_uuid`.
pub async fn lookup(bus: &Bus, name_or_uuid: &str) -> Result<String> {
    bus.call(
        &manager::LOOKUP_DOMAIN,
        "/org/virtbus1",
        &(name_or_uuid.to_owned(),),
    )
    .await
    .map(|p| p.to_string())
    .map_err(Error::from)
}

/// The object path and the name of the domain named `name_or_uuid` (messages name a domain
/// by its name even when the user gave its UUID).
pub async fn resolve(bus: &Bus, name_or_uuid: &str) -> Result<(String, String)> {
    let path = lookup(bus, name_or_uuid).await?;
    let name = bus.get(&d::NAME, &path).await?;
    Ok((path, name))
}

/// The domain named `name_or_uuid` with its properties.
pub async fn get(bus: &Bus, name_or_uuid: &str) -> Result<DomainInfo> {
    let path = lookup(bus, name_or_uuid).await?;
    info(bus, &path).await
}

pub async fn info(bus: &Bus, path: &str) -> Result<DomainInfo> {
    let props = bus.get_all(path, DOMAIN).await?;
    Ok(DomainInfo::from_props(path, &props))
}

/// A snapshot's properties.
#[derive(Debug, Clone)]
pub struct SnapshotInfo {
    pub path: String,
    pub name: String,
    pub description: String,
    pub parent: Option<String>,
    pub creation_time: u64,
    pub state: String,
    pub current: bool,
    pub kind: String,
}

impl SnapshotInfo {
    pub fn from_props(path: &str, p: &PropMap) -> Self {
        Self {
            path: path.to_owned(),
            name: s::NAME.in_map(p).unwrap_or_default(),
            description: s::DESCRIPTION.in_map(p).unwrap_or_default(),
            parent: s::PARENT
                .in_map(p)
                .filter(|o: &OwnedObjectPath| o.as_str() != "/")
                .map(|o| o.to_string()),
            creation_time: s::CREATION_TIME.in_map(p).unwrap_or_default(),
            state: s::STATE.in_map(p).unwrap_or_default(),
            current: s::IS_CURRENT.in_map(p).unwrap_or_default(),
            kind: s::KIND.in_map(p).unwrap_or_default(),
        }
    }

    pub fn to_json(&self, parent_name: Option<&str>) -> serde_json::Value {
        json!({
            "name": self.name,
            "description": self.description,
            "parent": parent_name,
            "creation_time": self.creation_time,
            "state": self.state,
            "current": self.current,
            "kind": self.kind,
        })
    }
}

/// Every snapshot of the domain at `dom_path`, keyed by path.
pub async fn snapshots(bus: &Bus, dom_path: &str) -> Result<HashMap<String, SnapshotInfo>> {
    let paths = bus
        .call(&d::LIST_SNAPSHOTS, dom_path, &(Default::default(),))
        .await?;
    let mut out = HashMap::new();
    for p in paths {
        let props = bus.get_all(p.as_str(), SNAPSHOT).await?;
        out.insert(p.to_string(), SnapshotInfo::from_props(p.as_str(), &props));
    }
    Ok(out)
}

/// The object path of the snapshot `name` of the domain at `dom_path`.
pub async fn lookup_snapshot(bus: &Bus, dom_path: &str, name: &str) -> Result<String> {
    bus.call(&d::LOOKUP_SNAPSHOT, dom_path, &(name.to_owned(),))
        .await
        .map(|p| p.to_string())
        .map_err(Error::from)
}

/// Every domain, from one GetManagedObjects call, sorted by name.
pub async fn all(bus: &Bus) -> Result<Vec<DomainInfo>> {
    let objects = bus.managed_objects().await.map_err(Error::from)?;
    let mut out: Vec<DomainInfo> = objects
        .iter()
        .filter_map(|(path, ifaces)| {
            ifaces
                .get(DOMAIN)
                .map(|p| DomainInfo::from_props(path.as_str(), p))
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Read a file, or standard input for "-".
pub fn read_input(path: &std::path::Path) -> Result<String> {
    use std::io::Read;
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::NotFound {
                Kind::NotFound
            } else {
                Kind::Failed
            };
            Error::new(kind, format!("{}: {e}", path.display()))
        })
    }
}
