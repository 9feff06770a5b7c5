//! A container definition turned into what the controller does: the root, mounts, init,
//! namespaces, capabilities and cgroup limits. Everything a definition asks for that this
//! driver cannot do is refused here, naming the element, before any process starts.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::cgroup::{Cgroups, Limits};
use super::veth::Veth;
use crate::model::{
    DomainDef, OsType,
    devices::{CharSourceType, InterfaceType, LinkState},
    proc_caps::ProcessCaps,
};

/// Why a definition cannot run as a container.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotSupported(String),
}

/// One mount inside the container, made before the init runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountKind {
    /// A host directory bound at the target.
    Bind { source: PathBuf, readonly: bool },
    /// A tmpfs of this many KiB.
    Tmpfs { size_kib: u64 },
    /// A block device (or an image, on its loop device) mounted at the target.
    Block {
        source: super::fs::BlockSource,
        readonly: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub kind: MountKind,
    /// The path inside the container (absolute).
    pub target: PathBuf,
}

/// Everything the controller needs to start one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub uuid: Uuid,
    pub name: String,
    /// The host directory that becomes `/`, and whether it is read-only.
    pub root: PathBuf,
    /// A block device (or image) the container mounts on `root` first (`<filesystem
    /// type='block|file'>` with target `/`).
    #[serde(default)]
    pub root_block: Option<super::fs::BlockSource>,
    pub root_readonly: bool,
    /// Mounts below the root, parents before children.
    pub mounts: Vec<Mount>,
    pub init: String,
    pub init_args: Vec<String>,
    pub init_env: Vec<(String, String)>,
    pub init_dir: String,
    pub init_user: Option<String>,
    pub init_group: Option<String>,
    /// `uid_map` and `gid_map` contents; empty without `<idmap>`.
    pub uid_map: String,
    pub gid_map: String,
    /// The host ids the container's root has (0 without `<idmap>`).
    pub root_ids: (u32, u32),
    /// A network namespace of its own (`<privnet/>` or interfaces).
    pub private_net: bool,
    /// The `<interface>`s, in the definition's order.
    pub veths: Vec<Veth>,
    /// Capability numbers dropped from the bounding set.
    pub caps_drop: Vec<u32>,
    pub cgroups: Cgroups,
    pub limits: Limits,
    /// Where the controller writes what happens (start failures, exits).
    pub log: PathBuf,
    /// The controller's own record (init pid, console pty), replaced atomically.
    pub state: PathBuf,
    /// Descriptors the daemon passes as 3, 4, ... for the init's first boot
    /// (`virDomainCreateWithFiles`).
    #[serde(default)]
    pub pass_fds: usize,
}

fn invalid(m: String) -> PlanError {
    PlanError::Invalid(m)
}

fn unsupported(m: String) -> PlanError {
    PlanError::NotSupported(m)
}

/// The partition a container's cgroups go in without `<resource><partition>`.
pub const DEFAULT_PARTITION: &str = "/machine";

/// Refuse what the driver cannot run, naming the element (define and start).
pub fn check(def: &DomainDef) -> Result<(), PlanError> {
    if def.os.os_type != OsType::Exe {
        return Err(invalid(format!(
            "domain '{}': <os><type> must be 'exe' for an LXC domain, not '{}'",
            def.name,
            def.os.os_type.as_str()
        )));
    }
    if def.os.init.is_none() {
        return Err(invalid(format!(
            "domain '{}': an LXC domain needs <os><init> (the program its container runs)",
            def.name
        )));
    }
    let d = &def.devices;
    let refused: [(&str, bool); 20] = [
        ("disk", !d.disks.is_empty()),
        ("controller", !d.controllers.is_empty()),
        ("serial", !d.serials.is_empty()),
        ("parallel", !d.parallels.is_empty()),
        ("channel", !d.channels.is_empty()),
        ("input", !d.inputs.is_empty()),
        ("graphics", !d.graphics.is_empty()),
        ("tpm", !d.tpms.is_empty()),
        ("sound", !d.sounds.is_empty()),
        ("audio", !d.audios.is_empty()),
        ("video", !d.videos.is_empty()),
        ("redirdev", !d.redirdevs.is_empty()),
        ("hub", !d.hubs.is_empty()),
        ("watchdog", !d.watchdogs.is_empty()),
        ("memballoon", d.memballoon.is_some()),
        ("rng", !d.rngs.is_empty()),
        ("panic", !d.panics.is_empty()),
        ("shmem", !d.shmems.is_empty()),
        ("vsock", d.vsock.is_some()),
        ("iommu", d.iommu.is_some()),
    ];
    if let Some((el, _)) = refused.iter().find(|(_, present)| *present) {
        return Err(unsupported(format!(
            "domain '{}': the LXC driver does not support <devices><{el}>",
            def.name
        )));
    }
    check_interfaces(def)?;
    if def.tuning.memtune.min_guarantee_kib.is_some() {
        return Err(unsupported(format!(
            "domain '{}': <memtune><min_guarantee> is not supported by the LXC driver",
            def.name
        )));
    }
    if d.consoles.is_empty() {
        return Err(invalid(format!(
            "domain '{}': an LXC domain needs a <console type='pty'> (libvirt's rule: at least \
             one PTY console is required)",
            def.name
        )));
    }
    if d.consoles.len() > 1 {
        return Err(unsupported(format!(
            "domain '{}': the LXC driver runs one <console>, not {}",
            def.name,
            d.consoles.len()
        )));
    }
    if d.consoles[0].source_type != CharSourceType::Pty {
        return Err(unsupported(format!(
            "domain '{}': <console type='{}'>: only PTY consoles are supported",
            def.name,
            d.consoles[0].source_type.as_str()
        )));
    }
    super::fs::check(def)?;
    Ok(())
}

/// What of an `<interface>` a container can have: a veth pair into a bridge (`bridge`,
/// `network`) or alone (`ethernet`), with guest-side addresses and routes.
fn check_interfaces(def: &DomainDef) -> Result<(), PlanError> {
    let mut names = std::collections::HashSet::new();
    for n in &def.devices.interfaces {
        let at = format!(
            "domain '{}': <interface type='{}'> {}",
            def.name, n.iface_type, n.mac
        );
        if !matches!(
            n.iface_type,
            InterfaceType::Bridge | InterfaceType::Network | InterfaceType::Ethernet
        ) {
            return Err(unsupported(format!(
                "{at}: the LXC driver supports interfaces of type bridge, network and ethernet"
            )));
        }
        let vm_only = [
            ("<model>", n.model.is_some()),
            (
                "<driver>",
                n.driver_name.is_some() || n.driver_queues.is_some(),
            ),
            ("<boot>", n.boot_order.is_some()),
            ("<target managed>", n.target_managed.is_some()),
        ];
        if let Some((el, _)) = vm_only.iter().find(|(_, p)| *p) {
            return Err(unsupported(format!(
                "{at}: {el} is for virtual machines, not containers"
            )));
        }
        for (what, name) in [
            ("<target dev>", &n.target_dev),
            ("<guest dev>", &n.guest_dev),
        ] {
            if let Some(t) = name
                && (t.len() > 15 || t.contains('/') || t == "lo")
            {
                return Err(invalid(format!(
                    "{at}: {what} '{t}' is not a usable interface name (at most 15 \
                     characters, no '/', not 'lo')"
                )));
            }
        }
        if let Some(g) = &n.guest_dev
            && !names.insert(g.clone())
        {
            return Err(invalid(format!(
                "{at}: <guest dev='{g}'> names another interface too"
            )));
        }
    }
    Ok(())
}

/// The veth pairs of `def` (id `id`); a `network` interface must have been given its
/// network's bridge (the core does so at start).
fn veths(def: &DomainDef, id: u32) -> Result<Vec<Veth>, PlanError> {
    let mut out = Vec::new();
    let mut unnamed = 0;
    let taken: Vec<&String> = def
        .devices
        .interfaces
        .iter()
        .filter_map(|n| n.guest_dev.as_ref())
        .collect();
    for (i, n) in def.devices.interfaces.iter().enumerate() {
        let at = format!(
            "domain '{}': <interface type='{}'> {}",
            def.name, n.iface_type, n.mac
        );
        let bridge = match n.iface_type {
            InterfaceType::Ethernet => None,
            _ => {
                let Some(br) = n.source_bridge.clone() else {
                    return Err(invalid(format!(
                        "{at}: network '{}' was not resolved to a bridge",
                        n.source_network.as_deref().unwrap_or_default()
                    )));
                };
                // that it exists is checked through netlink (`veth::check`)
                Some(br)
            }
        };
        let guest = match &n.guest_dev {
            Some(g) => g.clone(),
            None => loop {
                let g = format!("eth{unnamed}");
                unnamed += 1;
                if !taken.contains(&&g) {
                    break g;
                }
            },
        };
        let host = n
            .target_dev
            .clone()
            .unwrap_or_else(|| format!("vb{id}n{i}"));
        let peer = format!("vb{id}p{i}");
        if host.len() > 15 || peer.len() > 15 {
            return Err(invalid(format!(
                "{at}: host device name '{host}' is longer than 15 characters"
            )));
        }
        out.push(Veth {
            host,
            peer,
            guest,
            mac: n.mac.0,
            bridge,
            ips: n
                .ips
                .iter()
                .map(|a| (a.address, a.prefix_or_default(), a.peer))
                .collect(),
            routes: n.routes.iter().map(route).collect(),
            up: !n.ips.is_empty() || n.link_state == Some(LinkState::Up),
            host_ips: n
                .host_ips
                .iter()
                .map(|a| (a.address, a.prefix_or_default(), a.peer))
                .collect(),
            host_routes: n.host_routes.iter().map(route).collect(),
        });
    }
    Ok(out)
}

/// A `<route>` with libvirt's default prefix.
fn route(
    r: &crate::model::devices::IfaceRoute,
) -> (std::net::IpAddr, u8, std::net::IpAddr, Option<u32>) {
    let p = r
        .prefix
        .unwrap_or_else(|| crate::model::devices::default_prefix(&r.address));
    (r.address, p, r.gateway, r.metric)
}

/// The plan for `def` (id `id`); `dir` is the container's runtime directory.
pub fn build(
    def: &DomainDef,
    id: u32,
    dir: &std::path::Path,
    log: PathBuf,
) -> Result<Plan, PlanError> {
    check(def)?;
    let veths = veths(def, id)?;
    let layout = super::fs::layout(def, dir)?;
    let init = def.os.init.clone().unwrap_or_default();
    if layout.root_block.is_none() {
        // a device root is mounted by the container: its init is checked when it runs
        check_init(def, &layout.root, &init)?;
    }
    let map = |v: &[crate::model::idmap::IdRange]| v.iter().map(|r| r.map_line()).collect();
    let (uid_map, gid_map, root_ids) = match &def.idmap {
        Some(m) => (map(&m.uid), map(&m.gid), m.root()),
        None => (String::new(), String::new(), (0, 0)),
    };
    let partition = def
        .resource_partition
        .as_deref()
        .unwrap_or(DEFAULT_PARTITION);
    let cgroups = Cgroups::locate(partition, &def.name);
    let c = &def.tuning.cputune;
    let mt = &def.tuning.memtune;
    let limits = Limits {
        // as libvirt's LXC driver: the hard limit, where given, replaces <memory>'s
        memory_bytes: Some(
            mt.hard_limit_kib
                .unwrap_or(def.memory_kib)
                .saturating_mul(1024),
        ),
        memory_soft_bytes: mt.soft_limit_kib.map(|k| k.saturating_mul(1024)),
        memory_swap_bytes: mt.swap_hard_limit_kib.map(|k| k.saturating_mul(1024)),
        cpu_shares: c.shares,
        cpu_period: c.period.or(c.global_period),
        cpu_quota: c.quota.or(c.global_quota),
        blkio: super::blkio::resolve(&def.tuning.blkiotune)
            .map_err(|m| invalid(format!("domain '{}': {m}", def.name)))?,
    };
    cgroups
        .check(&limits)
        .map_err(|m| unsupported(format!("domain '{}': {m}", def.name)))?;
    Ok(Plan {
        uuid: def.uuid,
        name: def.name.clone(),
        root: layout.root,
        root_block: layout.root_block,
        root_readonly: layout.root_readonly,
        mounts: layout.mounts,
        init,
        init_args: def.os.init_args.clone(),
        init_env: def.os.init_env.clone(),
        init_dir: def.os.init_dir.clone().unwrap_or_else(|| "/".into()),
        init_user: def.os.init_user.clone(),
        init_group: def.os.init_group.clone(),
        uid_map,
        gid_map,
        root_ids,
        private_net: def.features.privnet || !def.devices.interfaces.is_empty(),
        veths,
        caps_drop: ProcessCaps::dropped(def.features.capabilities.as_ref())
            .into_iter()
            .map(|c| c.number())
            .collect(),
        cgroups,
        limits,
        log,
        state: dir.join("controller.json"),
        pass_fds: 0,
    })
}

/// The init must be an executable file inside the root; its symlinks are resolved inside
/// the root (a busybox applet link points to `/bin/busybox`, which is the root's).
fn check_init(def: &DomainDef, root: &std::path::Path, init: &str) -> Result<(), PlanError> {
    let missing = |why: &str| {
        invalid(format!(
            "domain '{}': <os><init> '{init}' {why} in the container's root '{}'",
            def.name,
            root.display()
        ))
    };
    let mut path = PathBuf::from(init);
    for _ in 0..40 {
        let host = root.join(path.strip_prefix("/").unwrap_or(&path));
        let meta = std::fs::symlink_metadata(&host).map_err(|_| missing("does not exist"))?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&host).map_err(|_| missing("is unreadable"))?;
            path = if target.is_absolute() {
                target
            } else {
                path.parent()
                    .unwrap_or(std::path::Path::new("/"))
                    .join(target)
            };
            continue;
        }
        use std::os::unix::fs::PermissionsExt;
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            return Err(missing("is not an executable file"));
        }
        return Ok(());
    }
    Err(missing("is a symlink loop"))
}
