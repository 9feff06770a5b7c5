//! The network driver: the registry of networks, their persistence, and starting, stopping
//! and adopting them through its [`NetHost`] (the host's bridges and dnsmasq, or nothing).
//!
//! ```text
//! STATE/networks/<escaped name>.xml          persistent definition (canonical XML)
//! STATE/networks/autostart/<escaped name>    present when the network starts with the daemon
//! ```
//! The host side records each running network (see [`super::host::HostNet`]), so that a
//! daemon restarted (even after kill -9) finds its bridge, firewall table and dnsmasq and
//! adopts them instead of creating them again. One lock serializes every change: starting a network takes well
//! under a second, and bridge names and subnets must be checked against all networks at once.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{Mutex, broadcast};
use uuid::Uuid;

use super::def::NetworkDef;
use super::defaults;
use super::dnsmasq::Lease;
use super::error::{NetError, Result};
use super::host::{HostNet, MemoryNet, NetHost, store_err};
use crate::util::escape::{escape, unescape};
use crate::util::fs::{remove_durable, write_atomic};

/// What the front ends show of a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    pub name: String,
    pub uuid: Uuid,
    pub active: bool,
    pub persistent: bool,
    pub autostart: bool,
    /// The bridge guests are plugged into (empty when there is none).
    pub bridge: String,
}

/// A change to a network, for signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetEventKind {
    Defined,
    Undefined,
    Started,
    Stopped,
    /// Autostart changed (no lifecycle event of its own in libvirt).
    Changed,
}

impl NetEventKind {
    /// libvirt's `virNetworkEventLifecycleType` number.
    pub fn libvirt_code(self) -> i32 {
        match self {
            Self::Defined => 0,
            Self::Undefined => 1,
            Self::Started => 2,
            Self::Stopped => 3,
            Self::Changed => -1,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NetEvent {
    /// Increasing from 1, so that a front end can wait for its signals to be out.
    pub seq: u64,
    pub kind: NetEventKind,
    pub info: NetworkInfo,
}

struct Entry {
    /// The persistent definition, or the transient one.
    def: NetworkDef,
    /// The definition it runs with, when active.
    live: Option<NetworkDef>,
    persistent: bool,
    autostart: bool,
}

impl Entry {
    fn info(&self) -> NetworkInfo {
        let d = self.live.as_ref().unwrap_or(&self.def);
        NetworkInfo {
            name: d.name.clone(),
            uuid: d.uuid,
            active: self.live.is_some(),
            persistent: self.persistent,
            autostart: self.autostart,
            bridge: d.bridge_name().unwrap_or_default().to_string(),
        }
    }
}

/// Where a driver keeps its files; `config: None` keeps definitions in memory only.
#[derive(Debug, Clone)]
pub struct Dirs {
    pub config: Option<PathBuf>,
    pub run: PathBuf,
}

/// Whose rules a driver follows, where libvirt's drivers differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// libvirt's network driver: bridge names and MACs filled in, bridges and subnets
    /// checked against the other networks and the host; undefining a running network
    /// leaves it transient; guests' `type='network'` interfaces are plugged into the bridge.
    Bridge,
    /// libvirt's test driver (`test:///default`): definitions kept as given and unchecked;
    /// a running network cannot be undefined; destroying a stopped one and giving a
    /// transient one autostart are accepted; no inactive XML; guests are not plugged in.
    Test,
}

pub struct NetworkDriver {
    /// Where persistent definitions are kept (`None`: in memory).
    config: Option<PathBuf>,
    host: Arc<dyn NetHost>,
    flavour: Flavour,
    nets: Mutex<BTreeMap<String, Entry>>,
    events: broadcast::Sender<NetEvent>,
    seq: std::sync::atomic::AtomicU64,
}

impl NetworkDriver {
    /// A driver of networks on this host over `dirs` (only a privileged one starts
    /// networks); call [`NetworkDriver::load`] next.
    pub fn new(dirs: Dirs, privileged: bool) -> Result<Arc<NetworkDriver>> {
        let host = HostNet::new(dirs.run.clone(), privileged)?;
        Self::with_host(dirs.config, Arc::new(host), Flavour::Bridge)
    }

    /// A driver whose networks live in memory only, with libvirt's test driver's rules.
    pub fn in_memory() -> Arc<NetworkDriver> {
        Arc::new(Self::build(None, Arc::new(MemoryNet), Flavour::Test))
    }

    /// A driver over `host`, keeping definitions under `config`.
    pub fn with_host(
        config: Option<PathBuf>,
        host: Arc<dyn NetHost>,
        flavour: Flavour,
    ) -> Result<Arc<NetworkDriver>> {
        if let Some(c) = &config {
            let d = c.join("autostart");
            std::fs::create_dir_all(&d).map_err(store_err(&d))?;
        }
        Ok(Arc::new(Self::build(config, host, flavour)))
    }

    fn build(config: Option<PathBuf>, host: Arc<dyn NetHost>, flavour: Flavour) -> NetworkDriver {
        NetworkDriver {
            config,
            host,
            flavour,
            nets: Mutex::new(BTreeMap::new()),
            events: broadcast::channel(256).0,
            seq: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn flavour(&self) -> Flavour {
        self.flavour
    }

    pub fn subscribe(&self) -> broadcast::Receiver<NetEvent> {
        self.events.subscribe()
    }

    fn emit(&self, kind: NetEventKind, info: NetworkInfo) {
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let _ = self.events.send(NetEvent { seq, kind, info });
    }

    /// The sequence number of the last event published.
    pub fn last_seq(&self) -> u64 {
        self.seq.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn config_path(&self, name: &str) -> Option<PathBuf> {
        self.config
            .as_ref()
            .map(|c| c.join(format!("{}.xml", escape(name))))
    }

    fn autostart_path(&self, name: &str) -> Option<PathBuf> {
        self.config
            .as_ref()
            .map(|c| c.join("autostart").join(escape(name)))
    }

    /// Loads the persistent definitions and adopts the networks that still run (live
    /// records), repairing a missing dnsmasq or firewall table; a record whose bridge is
    /// gone is cleaned up. With `define_default`, a first start (no network stored yet)
    /// defines libvirt's `default` NAT network, not started. Returns how many are active.
    pub async fn load(&self, define_default: bool) -> usize {
        let mut nets = self.nets.lock().await;
        let mut seen_config = false;
        if let Some(dir) = &self.config {
            seen_config = dir.join(".initialized").exists();
            for (name, path) in xml_files(dir) {
                match std::fs::read_to_string(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|t| NetworkDef::from_xml(&t).map_err(|e| e.to_string()))
                {
                    Ok(def) if def.name == name => {
                        let autostart = self.autostart_path(&name).is_some_and(|p| p.exists());
                        nets.insert(
                            name,
                            Entry {
                                def,
                                live: None,
                                persistent: true,
                                autostart,
                            },
                        );
                    }
                    Ok(def) => tracing::error!(
                        "{} holds network '{}', not '{name}'; skipped",
                        path.display(),
                        def.name
                    ),
                    Err(e) => tracing::error!("network file {} skipped: {e}", path.display()),
                }
            }
        }
        let mut active = 0;
        for (name, live) in self.host.live_records() {
            match self.host.adopt(&live).await {
                Ok(()) => {
                    tracing::info!("network '{name}' still runs; adopted");
                    active += 1;
                    match nets.get_mut(&name) {
                        Some(e) => e.live = Some(live),
                        None => {
                            nets.insert(
                                name,
                                Entry {
                                    def: live.clone(),
                                    live: Some(live),
                                    persistent: false,
                                    autostart: false,
                                },
                            );
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!("network '{name}' did not survive: {e}; cleaning up");
                    self.host.tear_down(&live).await;
                }
            }
        }
        if define_default
            && !seen_config
            && nets.is_empty()
            && let Some(dir) = self.config.clone()
        {
            match self.define_default(&mut nets).await {
                Ok(()) => tracing::info!("defined the 'default' network"),
                Err(e) => tracing::warn!("the 'default' network cannot be defined: {e}"),
            }
            let marker = dir.join(".initialized");
            let _ = write_atomic(&marker, b"", 0o600);
        } else if let Some(dir) = &self.config
            && !seen_config
        {
            let _ = write_atomic(&dir.join(".initialized"), b"", 0o600);
        }
        active
    }

    async fn define_default(&self, nets: &mut BTreeMap<String, Entry>) -> Result<()> {
        let mut def = NetworkDef::from_xml(defaults::DEFAULT_NETWORK_XML)?;
        // virbr0 may be another manager's (a host libvirtd): then the lowest free name
        if !self
            .host
            .existing_links(&["virbr0".to_string()])
            .await
            .is_empty()
            && let Some(b) = def.bridge.as_mut()
        {
            b.name = None;
        }
        self.prepare(&mut def, nets).await?;
        self.save_config(&def)?;
        let entry = Entry {
            def,
            live: None,
            persistent: true,
            autostart: false,
        };
        let info = entry.info();
        nets.insert(info.name.clone(), entry);
        self.emit(NetEventKind::Defined, info);
        Ok(())
    }

    /// Starts every autostart network that is not active; failures are logged.
    pub async fn autostart(&self) {
        let names: Vec<String> = {
            let nets = self.nets.lock().await;
            nets.iter()
                .filter(|(_, e)| e.autostart && e.live.is_none())
                .map(|(n, _)| n.clone())
                .collect()
        };
        for n in names {
            if let Err(e) = self.start(&n).await {
                tracing::error!("autostart of network '{n}' failed: {e}");
            }
        }
    }

    /// Fills in the defaults and checks the definition against the others and the host.
    /// (The test driver does neither.)
    async fn prepare(&self, def: &mut NetworkDef, nets: &BTreeMap<String, Entry>) -> Result<()> {
        if self.flavour == Flavour::Test {
            return Ok(());
        }
        let own_live_bridge = nets
            .get(&def.name)
            .and_then(|e| e.live.as_ref())
            .and_then(|l| l.bridge_name())
            .map(str::to_string);
        let mut used: Vec<String> = Vec::new();
        for (n, e) in nets {
            if *n == def.name {
                continue;
            }
            for d in [Some(&e.def), e.live.as_ref()].into_iter().flatten() {
                if let Some(b) = d.bridge_name() {
                    used.push(b.to_string());
                }
            }
        }
        // host interfaces, found once for the candidates the template can give
        let wanted = def.bridge_name().map(str::to_string);
        let template = match &wanted {
            Some(n) if n.contains("%d") => Some(n.clone()),
            Some(_) => None,
            None => Some("virbr%d".to_string()),
        };
        let candidates: Vec<String> = match template {
            Some(t) => (0..=256).map(|i| t.replace("%d", &i.to_string())).collect(),
            None => wanted.into_iter().collect::<Vec<_>>(),
        }
        .into_iter()
        .filter(|c| own_live_bridge.as_deref() != Some(c.as_str()))
        .collect();
        let host = self.host.existing_links(&candidates).await;
        if def.is_virtual()
            && let Some(b) = def.bridge_name()
            && !b.contains("%d")
            && host.iter().any(|h| h == b)
            && !used.iter().any(|u| u == b)
        {
            return Err(NetError::HostLinkExists(b.to_string()));
        }
        defaults::fill(def, &|n| {
            used.iter().any(|u| u == n) || host.iter().any(|h| h == n)
        })?;
        let others: Vec<&NetworkDef> = nets
            .iter()
            .filter(|(n, _)| **n != def.name)
            .flat_map(|(_, e)| [Some(&e.def), e.live.as_ref()].into_iter().flatten())
            .collect();
        defaults::check_against(def, others)?;
        Ok(())
    }

    /// Checks that the name and UUID are free or belong to the same network (the UUID
    /// first, as libvirt does).
    fn check_identity(def: &NetworkDef, nets: &BTreeMap<String, Entry>) -> Result<()> {
        if let Some((n, _)) = nets
            .iter()
            .find(|(n, e)| e.def.uuid == def.uuid && **n != def.name)
        {
            return Err(NetError::UuidTaken {
                name: n.clone(),
                uuid: def.uuid,
            });
        }
        if let Some(e) = nets.get(&def.name)
            && e.def.uuid != def.uuid
        {
            return Err(NetError::NameTaken {
                name: def.name.clone(),
                uuid: e.def.uuid,
            });
        }
        Ok(())
    }

    fn save_config(&self, def: &NetworkDef) -> Result<()> {
        if let Some(p) = self.config_path(&def.name) {
            write_atomic(&p, def.to_xml().as_bytes(), 0o600).map_err(store_err(&p))?;
        }
        Ok(())
    }

    /// Defines (or redefines) a persistent network. A running network keeps its live
    /// definition until it is restarted.
    pub async fn define(&self, xml: &str) -> Result<NetworkInfo> {
        let mut def = NetworkDef::from_xml(xml)?;
        let mut nets = self.nets.lock().await;
        // a redefinition without <uuid> keeps the network's UUID, as libvirt does
        if let Some(e) = nets.get(&def.name)
            && !xml_has_uuid(xml)
        {
            def.uuid = e.def.uuid;
        }
        Self::check_identity(&def, &nets)?;
        self.prepare(&mut def, &nets).await?;
        self.save_config(&def)?;
        let entry = match nets.remove(&def.name) {
            Some(mut e) => {
                e.def = def;
                e.persistent = true;
                e
            }
            None => Entry {
                def,
                live: None,
                persistent: true,
                autostart: false,
            },
        };
        let info = entry.info();
        nets.insert(info.name.clone(), entry);
        self.emit(NetEventKind::Defined, info.clone());
        Ok(info)
    }

    /// Creates and starts a transient network; given the name and UUID of a stopped
    /// persistent network, starts that one with this definition, as libvirt does.
    pub async fn create(&self, xml: &str) -> Result<NetworkInfo> {
        let mut def = NetworkDef::from_xml(xml)?;
        let mut nets = self.nets.lock().await;
        Self::check_identity(&def, &nets)?;
        if nets.get(&def.name).is_some_and(|e| e.live.is_some()) {
            return Err(NetError::ActiveAs(def.name.clone()));
        }
        self.prepare(&mut def, &nets).await?;
        self.host.bring_up(&def).await?;
        let entry = match nets.remove(&def.name) {
            Some(mut e) => {
                e.live = Some(def);
                e
            }
            None => Entry {
                def: def.clone(),
                live: Some(def),
                persistent: false,
                autostart: false,
            },
        };
        let info = entry.info();
        nets.insert(info.name.clone(), entry);
        self.emit(NetEventKind::Started, info.clone());
        Ok(info)
    }

    pub async fn start(&self, name: &str) -> Result<NetworkInfo> {
        let mut nets = self.nets.lock().await;
        let entry = nets
            .get(name)
            .ok_or_else(|| NetError::NotFound(name.to_string()))?;
        if entry.live.is_some() {
            return Err(NetError::AlreadyActive(name.to_string()));
        }
        let mut def = entry.def.clone();
        // the host may have changed since the definition: check its bridge and subnets again
        self.prepare(&mut def, &nets).await?;
        self.host.bring_up(&def).await?;
        let info = {
            let e = nets
                .get_mut(name)
                .ok_or_else(|| NetError::NotFound(name.to_string()))?;
            e.live = Some(def);
            e.info()
        };
        self.emit(NetEventKind::Started, info.clone());
        Ok(info)
    }

    /// Stops the network (libvirt's destroy); a transient one is gone afterwards.
    pub async fn stop(&self, name: &str) -> Result<NetworkInfo> {
        let mut nets = self.nets.lock().await;
        let entry = nets
            .get_mut(name)
            .ok_or_else(|| NetError::NotFound(name.to_string()))?;
        match entry.live.take() {
            // libvirt's test driver keeps the definition it ran with (its changes to the
            // persistent one while it ran are lost)
            Some(live) if self.flavour == Flavour::Test => entry.def = live,
            Some(live) => self.host.tear_down(&live).await,
            // libvirt's test driver "stops" a stopped network too
            None if self.flavour == Flavour::Test => {}
            None => return Err(NetError::NotActive(name.to_string())),
        }
        let info = entry.info();
        if !entry.persistent {
            nets.remove(name);
        }
        self.emit(NetEventKind::Stopped, info.clone());
        Ok(info)
    }

    /// Removes the persistent definition; an active network stays, as a transient one.
    pub async fn undefine(&self, name: &str) -> Result<()> {
        let mut nets = self.nets.lock().await;
        let entry = nets
            .get_mut(name)
            .ok_or_else(|| NetError::NotFound(name.to_string()))?;
        // libvirt's test driver asks whether it runs first, its network driver whether
        // it is persistent
        if self.flavour == Flavour::Test && entry.live.is_some() {
            return Err(NetError::StillActive(name.to_string()));
        }
        if !entry.persistent {
            return Err(NetError::Transient(name.to_string()));
        }
        for p in [self.config_path(name), self.autostart_path(name)]
            .into_iter()
            .flatten()
        {
            match remove_durable(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(store_err(&p)(e)),
            }
        }
        entry.persistent = false;
        entry.autostart = false;
        let info = entry.info();
        if entry.live.is_none() {
            nets.remove(name);
        } else if let Some(l) = entry.live.clone() {
            entry.def = l;
        }
        self.emit(NetEventKind::Undefined, info);
        Ok(())
    }

    pub async fn set_autostart(&self, name: &str, on: bool) -> Result<NetworkInfo> {
        let mut nets = self.nets.lock().await;
        let entry = nets
            .get_mut(name)
            .ok_or_else(|| NetError::NotFound(name.to_string()))?;
        if !entry.persistent && self.flavour != Flavour::Test {
            return Err(NetError::Transient(name.to_string()));
        }
        if let Some(p) = self.autostart_path(name) {
            if on {
                write_atomic(&p, b"", 0o600).map_err(store_err(&p))?;
            } else {
                match remove_durable(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(store_err(&p)(e)),
                }
            }
        }
        entry.autostart = on;
        let info = entry.info();
        self.emit(NetEventKind::Changed, info.clone());
        Ok(info)
    }

    pub async fn list(&self) -> Vec<NetworkInfo> {
        self.nets.lock().await.values().map(Entry::info).collect()
    }

    pub async fn info(&self, name: &str) -> Result<NetworkInfo> {
        self.nets
            .lock()
            .await
            .get(name)
            .map(Entry::info)
            .ok_or_else(|| NetError::NotFound(name.to_string()))
    }

    pub async fn by_uuid(&self, uuid: Uuid) -> Result<NetworkInfo> {
        self.nets
            .lock()
            .await
            .values()
            .find(|e| e.def.uuid == uuid)
            .map(Entry::info)
            .ok_or_else(|| NetError::NotFound(uuid.to_string()))
    }

    /// The XML: the live definition of an active network unless `inactive`.
    pub async fn xml(&self, name: &str, inactive: bool) -> Result<String> {
        let nets = self.nets.lock().await;
        let e = nets
            .get(name)
            .ok_or_else(|| NetError::NotFound(name.to_string()))?;
        let d = match (&e.live, inactive) {
            (Some(l), false) => l,
            _ => &e.def,
        };
        Ok(d.to_xml())
    }

    /// The bridge of an active network, for guests' interfaces.
    pub async fn active_bridge(&self, name: &str) -> Result<String> {
        let nets = self.nets.lock().await;
        let e = nets
            .get(name)
            .ok_or_else(|| NetError::NotFound(name.to_string()))?;
        e.live
            .as_ref()
            .and_then(|l| l.bridge_name())
            .map(str::to_string)
            .ok_or_else(|| NetError::NotActive(name.to_string()))
    }

    /// The current DHCP leases of an active network; `mac` narrows them to one interface.
    pub async fn leases(&self, name: &str, mac: Option<&str>) -> Result<Vec<Lease>> {
        let nets = self.nets.lock().await;
        let e = nets
            .get(name)
            .ok_or_else(|| NetError::NotFound(name.to_string()))?;
        let Some(live) = &e.live else {
            return Err(NetError::NotActive(name.to_string()));
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut out = self.host.leases(live, now);
        if let Some(m) = mac {
            let m = m.to_ascii_lowercase();
            out.retain(|l| l.mac.is_some_and(|x| x.to_string() == m));
        }
        Ok(out)
    }

    /// Leases for a MAC in any active network (for a domain's interface addresses).
    pub async fn leases_for_mac(&self, mac: &str) -> Vec<Lease> {
        let names: Vec<String> = {
            let nets = self.nets.lock().await;
            nets.iter()
                .filter(|(_, e)| e.live.is_some())
                .map(|(n, _)| n.clone())
                .collect()
        };
        let mut out = Vec::new();
        for n in names {
            if let Ok(l) = self.leases(&n, Some(mac)).await {
                out.extend(l);
            }
        }
        out
    }

    /// Changes one part of the definition (libvirt's virNetworkUpdate): the persistent
    /// definition with `config`, the running network with `live` (its dnsmasq rereads its
    /// hosts files), given as `(live, config)`. Neither given: live when active, else config, as libvirt's "current".
    pub async fn update(
        &self,
        name: &str,
        cmd: super::update::UpdateCommand,
        section: super::update::UpdateSection,
        xml: &str,
        (mut live, mut config): (bool, bool),
        ip_index: Option<usize>,
    ) -> Result<NetworkInfo> {
        let mut nets = self.nets.lock().await;
        let entry = nets
            .get_mut(name)
            .ok_or_else(|| NetError::NotFound(name.to_string()))?;
        if !live && !config {
            live = entry.live.is_some();
            config = !live;
        }
        if live && entry.live.is_none() {
            return Err(NetError::NotActive(name.to_string()));
        }
        if config && !entry.persistent {
            return Err(NetError::Transient(name.to_string()));
        }
        // compute both before changing anything
        let new_config = if config {
            Some(super::update::apply(
                &entry.def, cmd, section, xml, ip_index,
            )?)
        } else {
            None
        };
        let new_live = match (&entry.live, live) {
            (Some(l), true) => Some(super::update::apply(l, cmd, section, xml, ip_index)?),
            _ => None,
        };
        if let Some(d) = new_config {
            self.save_config(&d)?;
            entry.def = d;
        }
        if let Some(d) = new_live {
            self.host.live_changed(&d).await?;
            entry.live = Some(d);
        }
        Ok(entry.info())
    }

    /// The pid of an active network's dnsmasq (tests and diagnostics).
    pub fn dnsmasq_pid(&self, name: &str) -> Option<u32> {
        self.host.dnsmasq_pid(name)
    }

    /// The addresses on the bridge of an active network.
    pub async fn bridge_addresses(&self, name: &str) -> Result<Vec<(IpAddr, u8)>> {
        let bridge = self.active_bridge(name).await?;
        self.host.bridge_addresses(name, &bridge).await
    }
}

/// Whether the document names a UUID (a redefinition without one keeps the old one).
fn xml_has_uuid(xml: &str) -> bool {
    crate::model::xml::parse_document(xml).is_ok_and(|d| {
        d.root_element()
            .children()
            .any(|c| c.is_element() && c.tag_name().name() == "uuid")
    })
}

/// `(name, path)` of the `*.xml` files directly in `dir`, names unescaped.
pub(super) fn xml_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, PathBuf)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let f = e.file_name().to_string_lossy().to_string();
            let stem = f.strip_suffix(".xml")?;
            if stem.starts_with('.') {
                return None;
            }
            Some((unescape(stem)?, e.path()))
        })
        .collect();
    out.sort();
    out
}
