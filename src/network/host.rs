//! Where a network runs: the host side of the network driver. [`HostNet`] makes networks
//! real (a bridge through rtnetlink, an nftables table, a dnsmasq, and a live record so that
//! a restarted daemon adopts them); [`MemoryNet`] makes nothing, for a connection whose
//! networks live in memory only (libvirt's `test:///default`). The registry, the XML and
//! the rules of [`super::driver`] are the same over both.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::def::NetworkDef;
use super::dnsmasq::{self, Files, Lease};
use super::error::{NetError, Result};
use super::netlink::{BridgeSpec, Links};
use super::{defaults, firewall};
use crate::util::escape::escape;
use crate::util::fs::{remove_durable, write_atomic};

/// The host side of running networks.
#[async_trait]
pub trait NetHost: Send + Sync {
    /// Which of `names` are interfaces of the host (bridge names a network cannot take).
    async fn existing_links(&self, names: &[String]) -> Vec<String>;
    /// The live definitions of networks that ran before the daemon (re)started.
    fn live_records(&self) -> Vec<(String, NetworkDef)>;
    /// Brings the network up; on failure, everything done is undone.
    async fn bring_up(&self, def: &NetworkDef) -> Result<()>;
    /// Undoes [`NetHost::bring_up`]; errors are logged.
    async fn tear_down(&self, def: &NetworkDef);
    /// Takes over a network found in [`NetHost::live_records`], repairing what is missing.
    async fn adopt(&self, live: &NetworkDef) -> Result<()>;
    /// The running network's definition changed (a DHCP or DNS host): record it and have
    /// its DHCP server reread it.
    async fn live_changed(&self, def: &NetworkDef) -> Result<()>;
    /// The DHCP leases of a running network at `now` (seconds since the epoch).
    fn leases(&self, live: &NetworkDef, now: i64) -> Vec<Lease>;
    /// The pid of a running network's DHCP server.
    fn dnsmasq_pid(&self, name: &str) -> Option<u32>;
    /// The addresses on a running network's bridge.
    async fn bridge_addresses(&self, name: &str, bridge: &str) -> Result<Vec<(IpAddr, u8)>>;
}

fn rt(name: &str, step: &'static str) -> impl FnOnce(String) -> NetError {
    let name = name.to_string();
    move |detail| NetError::Runtime { name, step, detail }
}

pub(super) fn store_err(path: &Path) -> impl FnOnce(std::io::Error) -> NetError {
    let p = path.display().to_string();
    move |e| NetError::Store(format!("{p}: {e}"))
}

/// Networks made on the host, with their live records and dnsmasq files under `run`:
///
/// ```text
/// RUN/<escaped name>.xml      live definition of an active network
/// RUN/<escaped name>/         its dnsmasq's files (config, pid, leases)
/// ```
pub struct HostNet {
    run: PathBuf,
    /// Whether networks may be started (a root daemon): others can define networks only.
    privileged: bool,
}

impl HostNet {
    pub fn new(run: PathBuf, privileged: bool) -> Result<HostNet> {
        std::fs::create_dir_all(&run).map_err(store_err(&run))?;
        Ok(HostNet { run, privileged })
    }

    fn files(&self, name: &str) -> Files {
        Files {
            dir: self.run.join(escape(name)),
        }
    }

    fn live_path(&self, name: &str) -> PathBuf {
        self.run.join(format!("{}.xml", escape(name)))
    }

    async fn make(&self, def: &NetworkDef, bridge: &str, links: &Links) -> Result<()> {
        let name = def.name.as_str();
        let b = def.bridge.clone().unwrap_or_default();
        let index = links
            .create_bridge(&BridgeSpec {
                name: bridge,
                mac: def.mac,
                mtu: def.mtu,
                stp: b.stp.unwrap_or(true),
                delay: b.delay.unwrap_or(0),
            })
            .await
            .map_err(rt(name, "creating the bridge"))?;
        if let Some(script) = firewall::script(def, bridge) {
            firewall::apply(&script)
                .await
                .map_err(rt(name, "adding firewall rules"))?;
        }
        for ip in &def.ips {
            links
                .add_address(index, ip.address, ip.prefix_len())
                .await
                .map_err(rt(name, "adding the bridge's addresses"))?;
        }
        links
            .set_up(index)
            .await
            .map_err(rt(name, "bringing the bridge up"))?;
        if defaults::needs_ip_forward(def) {
            firewall::enable_forwarding(def).map_err(rt(name, "enabling IP forwarding"))?;
        }
        if dnsmasq::wanted(def) {
            let files = self.files(name);
            std::fs::create_dir_all(&files.dir).map_err(|e| NetError::Runtime {
                name: name.to_string(),
                step: "creating dnsmasq's directory",
                detail: format!("{}: {e}", files.dir.display()),
            })?;
            dnsmasq::start(def, bridge, &files)
                .await
                .map_err(rt(name, "starting dnsmasq"))?;
        }
        Ok(())
    }

    /// Undoes the host side, without the live record.
    async fn unmake(&self, def: &NetworkDef) {
        let files = self.files(&def.name);
        dnsmasq::stop(&files).await;
        if !def.is_virtual() || !self.privileged {
            return;
        }
        let Some(bridge) = def.bridge_name() else {
            return;
        };
        if firewall::script(def, bridge).is_some()
            && let Err(e) = firewall::apply(&firewall::remove_script(bridge)).await
        {
            tracing::warn!("network '{}': removing its firewall table: {e}", def.name);
        }
        match Links::open() {
            Ok(l) => {
                if let Err(e) = l.delete(bridge).await {
                    tracing::warn!("network '{}': {e}", def.name);
                }
            }
            Err(e) => tracing::warn!("network '{}': {e}", def.name),
        }
        let _ = std::fs::remove_dir_all(&files.dir);
    }
}

#[async_trait]
impl NetHost for HostNet {
    async fn existing_links(&self, names: &[String]) -> Vec<String> {
        if !self.privileged {
            return Vec::new();
        }
        let Ok(links) = Links::open() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for n in names {
            if matches!(links.get(n).await, Ok(Some(_))) {
                out.push(n.clone());
            }
        }
        out
    }

    fn live_records(&self) -> Vec<(String, NetworkDef)> {
        let mut out = Vec::new();
        for (name, path) in super::driver::xml_files(&self.run) {
            match std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| NetworkDef::from_xml(&t).map_err(|e| e.to_string()))
            {
                Ok(d) => out.push((name, d)),
                Err(e) => tracing::error!("live network record {} skipped: {e}", path.display()),
            }
        }
        out
    }

    /// The bridge, its firewall table, its addresses, forwarding and dnsmasq, in libvirt's
    /// order; the live record is written last.
    async fn bring_up(&self, def: &NetworkDef) -> Result<()> {
        if !self.privileged {
            return Err(NetError::NotSupported(
                "starting virtual networks in an unprivileged daemon".into(),
            ));
        }
        let name = def.name.as_str();
        let bridge = def.bridge_name().unwrap_or_default().to_string();
        let links = Links::open().map_err(rt(name, "netlink"))?;
        if !def.is_virtual() {
            match links.get(&bridge).await.map_err(rt(name, "netlink"))? {
                Some(l) if l.is_bridge => {}
                _ => return Err(NetError::NoHostBridge(bridge)),
            }
        } else {
            if links
                .get(&bridge)
                .await
                .map_err(rt(name, "netlink"))?
                .is_some()
            {
                return Err(NetError::HostLinkExists(bridge));
            }
            if let Err(e) = self.make(def, &bridge, &links).await {
                self.unmake(def).await;
                return Err(e);
            }
        }
        let p = self.live_path(name);
        if let Err(e) = write_atomic(&p, def.to_xml().as_bytes(), 0o600) {
            self.unmake(def).await;
            return Err(store_err(&p)(e));
        }
        Ok(())
    }

    async fn tear_down(&self, def: &NetworkDef) {
        self.unmake(def).await;
        let _ = remove_durable(&self.live_path(&def.name));
    }

    /// Its bridge must exist; a missing firewall table or dnsmasq is put back.
    async fn adopt(&self, live: &NetworkDef) -> Result<()> {
        let name = live.name.as_str();
        if !self.privileged {
            return Err(NetError::NotSupported(
                "networks in an unprivileged daemon".into(),
            ));
        }
        let bridge = live.bridge_name().unwrap_or_default();
        let links = Links::open().map_err(rt(name, "netlink"))?;
        let link = links.get(bridge).await.map_err(rt(name, "netlink"))?;
        if !link.as_ref().is_some_and(|l| l.is_bridge) {
            return Err(NetError::NoHostBridge(bridge.to_string()));
        }
        if !live.is_virtual() {
            return Ok(());
        }
        if let Some(script) = firewall::script(live, bridge)
            && !firewall::table_exists(bridge).await
        {
            tracing::warn!("network '{name}': its firewall table was gone; added again");
            firewall::apply(&script)
                .await
                .map_err(rt(name, "adding firewall rules"))?;
        }
        let files = self.files(name);
        if dnsmasq::wanted(live) && dnsmasq::running_pid(&files).is_none() {
            tracing::warn!("network '{name}': its dnsmasq was gone; started again");
            std::fs::create_dir_all(&files.dir).map_err(store_err(&files.dir))?;
            dnsmasq::start(live, bridge, &files)
                .await
                .map_err(rt(name, "starting dnsmasq"))?;
        }
        Ok(())
    }

    async fn live_changed(&self, d: &NetworkDef) -> Result<()> {
        let p = self.live_path(&d.name);
        write_atomic(&p, d.to_xml().as_bytes(), 0o600).map_err(store_err(&p))?;
        let files = self.files(&d.name);
        let bridge = d.bridge_name().unwrap_or_default().to_string();
        if let Some(pid) = dnsmasq::running_pid(&files) {
            let (_, hosts, addn) = dnsmasq::config(d, &bridge, &files);
            for (path, text) in [(files.hostsfile(), hosts), (files.addnhosts(), addn)] {
                write_atomic(&path, text.as_bytes(), 0o644).map_err(store_err(&path))?;
            }
            if let Ok(raw) = i32::try_from(pid) {
                // SAFETY: kill(2) with plain integers; SIGHUP makes dnsmasq reread them
                unsafe {
                    libc::kill(raw, libc::SIGHUP);
                }
            }
        }
        Ok(())
    }

    fn leases(&self, live: &NetworkDef, now: i64) -> Vec<Lease> {
        let bridge = live.bridge_name().unwrap_or_default();
        dnsmasq::leases(live, bridge, &self.files(&live.name), now)
    }

    fn dnsmasq_pid(&self, name: &str) -> Option<u32> {
        dnsmasq::running_pid(&self.files(name))
    }

    async fn bridge_addresses(&self, name: &str, bridge: &str) -> Result<Vec<(IpAddr, u8)>> {
        let links = Links::open().map_err(rt(name, "netlink"))?;
        let l = links
            .get(bridge)
            .await
            .map_err(rt(name, "netlink"))?
            .ok_or_else(|| NetError::NoHostBridge(bridge.to_string()))?;
        links.addresses(l.index).await.map_err(rt(name, "netlink"))
    }
}

/// Networks that exist only as records: starting one changes its state and nothing else,
/// as in libvirt's test driver. There is no DHCP server, so no leases.
pub struct MemoryNet;

#[async_trait]
impl NetHost for MemoryNet {
    async fn existing_links(&self, _: &[String]) -> Vec<String> {
        Vec::new()
    }

    fn live_records(&self) -> Vec<(String, NetworkDef)> {
        Vec::new()
    }

    async fn bring_up(&self, _: &NetworkDef) -> Result<()> {
        Ok(())
    }

    async fn tear_down(&self, _: &NetworkDef) {}

    async fn adopt(&self, _: &NetworkDef) -> Result<()> {
        Ok(())
    }

    async fn live_changed(&self, _: &NetworkDef) -> Result<()> {
        Ok(())
    }

    fn leases(&self, _: &NetworkDef, _: i64) -> Vec<Lease> {
        Vec::new()
    }

    fn dnsmasq_pid(&self, _: &str) -> Option<u32> {
        None
    }

    async fn bridge_addresses(&self, name: &str, _: &str) -> Result<Vec<(IpAddr, u8)>> {
        Err(NetError::NotSupported(format!(
            "addresses of network '{name}', which has no bridge on the host"
        )))
    }
}
