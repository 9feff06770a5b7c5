//! Networks, pools and volumes as the client sees them: found by name among the daemon's
//! objects (one `GetManagedObjects` call), read from their properties.

use serde_json::json;

use super::{
    api::{Bus, NETWORK, POOL, PropMap, VOLUME, network as n, pool as p, volume as v},
    error::{Error, Kind, Result},
};

#[derive(Debug, Clone)]
pub struct NetworkInfo {
    pub path: String,
    pub name: String,
    pub uuid: String,
    pub active: bool,
    pub persistent: bool,
    pub autostart: bool,
    pub bridge: String,
}

impl NetworkInfo {
    fn from_props(path: &str, m: &PropMap) -> Self {
        Self {
            path: path.to_owned(),
            name: n::NAME.in_map(m).unwrap_or_default(),
            uuid: n::UUID.in_map(m).unwrap_or_default(),
            active: n::ACTIVE.in_map(m).unwrap_or_default(),
            persistent: n::PERSISTENT.in_map(m).unwrap_or_default(),
            autostart: n::AUTOSTART.in_map(m).unwrap_or_default(),
            bridge: n::BRIDGE.in_map(m).unwrap_or_default(),
        }
    }

    pub fn state(&self) -> &'static str {
        if self.active { "active" } else { "inactive" }
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "name": self.name,
            "uuid": self.uuid,
            "state": self.state(),
            "active": self.active,
            "persistent": self.persistent,
            "autostart": self.autostart,
            "bridge": self.bridge,
        })
    }
}

#[derive(Debug, Clone)]
pub struct PoolInfo {
    pub path: String,
    pub name: String,
    pub uuid: String,
    pub target: String,
    pub active: bool,
    pub persistent: bool,
    pub autostart: bool,
    pub capacity: u64,
    pub allocation: u64,
    pub available: u64,
}

impl PoolInfo {
    fn from_props(path: &str, m: &PropMap) -> Self {
        Self {
            path: path.to_owned(),
            name: p::NAME.in_map(m).unwrap_or_default(),
            uuid: p::UUID.in_map(m).unwrap_or_default(),
            target: p::PATH.in_map(m).unwrap_or_default(),
            active: p::ACTIVE.in_map(m).unwrap_or_default(),
            persistent: p::PERSISTENT.in_map(m).unwrap_or_default(),
            autostart: p::AUTOSTART.in_map(m).unwrap_or_default(),
            capacity: p::CAPACITY.in_map(m).unwrap_or_default(),
            allocation: p::ALLOCATION.in_map(m).unwrap_or_default(),
            available: p::AVAILABLE.in_map(m).unwrap_or_default(),
        }
    }

    pub fn state(&self) -> &'static str {
        if self.active { "active" } else { "inactive" }
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "name": self.name,
            "uuid": self.uuid,
            "state": self.state(),
            "active": self.active,
            "persistent": self.persistent,
            "autostart": self.autostart,
            "path": self.target,
            "capacity": self.capacity,
            "allocation": self.allocation,
            "available": self.available,
        })
    }
}

#[derive(Debug, Clone)]
pub struct VolumeInfo {
    pub path: String,
    pub name: String,
    pub key: String,
    pub file: String,
    pub capacity: u64,
    pub allocation: u64,
    pub format: String,
    pub job: String,
}

impl VolumeInfo {
    fn from_props(path: &str, m: &PropMap) -> Self {
        Self {
            path: path.to_owned(),
            name: v::NAME.in_map(m).unwrap_or_default(),
            key: v::KEY.in_map(m).unwrap_or_default(),
            file: v::PATH.in_map(m).unwrap_or_default(),
            capacity: v::CAPACITY.in_map(m).unwrap_or_default(),
            allocation: v::ALLOCATION.in_map(m).unwrap_or_default(),
            format: v::FORMAT.in_map(m).unwrap_or_default(),
            job: v::JOB.in_map(m).unwrap_or_default(),
        }
    }

    pub fn to_json(&self, pool: &str) -> serde_json::Value {
        json!({
            "name": self.name,
            "pool": pool,
            "key": self.key,
            "path": self.file,
            "capacity": self.capacity,
            "allocation": self.allocation,
            "format": self.format,
            "job": self.job,
        })
    }
}

/// Every object of the daemon with interface `iface`, by path.
async fn with_iface(bus: &Bus, iface: &str) -> Result<Vec<(String, PropMap)>> {
    let objects = bus.managed_objects().await?;
    Ok(objects
        .into_iter()
        .filter_map(|(path, mut ifaces)| ifaces.remove(iface).map(|p| (path.to_string(), p)))
        .collect())
}

/// Every network the caller may see, sorted by name.
pub async fn networks(bus: &Bus) -> Result<Vec<NetworkInfo>> {
    let mut out: Vec<_> = with_iface(bus, NETWORK)
        .await?
        .iter()
        .map(|(path, m)| NetworkInfo::from_props(path, m))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub async fn network(bus: &Bus, name: &str) -> Result<NetworkInfo> {
    networks(bus)
        .await?
        .into_iter()
        .find(|n| n.name == name || n.uuid == name)
        .ok_or_else(|| Error::new(Kind::NotFound, format!("no network named '{name}'")))
}

pub async fn network_at(bus: &Bus, path: &str) -> Result<NetworkInfo> {
    let m = bus.get_all(path, NETWORK).await?;
    Ok(NetworkInfo::from_props(path, &m))
}

/// Every pool the caller may see, sorted by name.
pub async fn pools(bus: &Bus) -> Result<Vec<PoolInfo>> {
    let mut out: Vec<_> = with_iface(bus, POOL)
        .await?
        .iter()
        .map(|(path, m)| PoolInfo::from_props(path, m))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub async fn pool(bus: &Bus, name: &str) -> Result<PoolInfo> {
    pools(bus)
        .await?
        .into_iter()
        .find(|p| p.name == name || p.uuid == name)
        .ok_or_else(|| Error::new(Kind::NotFound, format!("no storage pool named '{name}'")))
}

pub async fn pool_at(bus: &Bus, path: &str) -> Result<PoolInfo> {
    let m = bus.get_all(path, POOL).await?;
    Ok(PoolInfo::from_props(path, &m))
}

/// The volumes of the pool at `pool_path`, sorted by name.
pub async fn volumes(bus: &Bus, pool_path: &str) -> Result<Vec<VolumeInfo>> {
    let paths = bus
        .call(&p::LIST_VOLUMES, pool_path, &(Default::default(),))
        .await?;
    let mut out = Vec::new();
    for path in paths {
        out.push(volume_at(bus, path.as_str()).await?);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub async fn volume_at(bus: &Bus, path: &str) -> Result<VolumeInfo> {
    let m = bus.get_all(path, VOLUME).await?;
    Ok(VolumeInfo::from_props(path, &m))
}

/// The pool named `pool`, which must be active, and its volume named `name`.
pub async fn volume(bus: &Bus, pool_name: &str, name: &str) -> Result<(PoolInfo, VolumeInfo)> {
    let pool = active_pool(bus, pool_name).await?;
    let vol = volumes(bus, &pool.path)
        .await?
        .into_iter()
        .find(|v| v.name == name)
        .ok_or_else(|| {
            Error::new(
                Kind::NotFound,
                format!("no volume named '{name}' in pool '{}'", pool.name),
            )
        })?;
    Ok((pool, vol))
}

/// The pool named `name`, refused unless active (only an active pool has volumes).
pub async fn active_pool(bus: &Bus, name: &str) -> Result<PoolInfo> {
    let pool = pool(bus, name).await?;
    if !pool.active {
        return Err(Error::new(
            Kind::State,
            format!(
                "pool '{}' is not active (`virtbusctl pool start {}`)",
                pool.name, pool.name
            ),
        ));
    }
    Ok(pool)
}
