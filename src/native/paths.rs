//! Object paths of the native API.
//!
//! ```text
//! /org/virtbus1                                        Manager, ObjectManager
//! /org/virtbus1/domain/<escaped uuid>                  Domain
//! /org/virtbus1/domain/<escaped uuid>/snapshot/<escaped name>   Snapshot
//! /org/virtbus1/host/interface/<escaped name>          HostInterface
//! /org/virtbus1/host/device/<escaped name>             NodeDevice
//! /org/virtbus1/pool/<escaped name>                    StoragePool
//! /org/virtbus1/pool/<escaped name>/volume/<escaped name>         StorageVolume
//! /org/virtbus1/network/<escaped name>                 Network
//! ```
//! Escaping is [`crate::util::escape`]: every byte that is not an ASCII letter or digit becomes
//! `_xx` (lower-case hex). A path is fixed for the life of its object.

use uuid::Uuid;
use zbus::OwnedObjectPath;

use crate::util::escape::{escape, unescape};

pub const MANAGER: &str = "/org/virtbus1";
const DOMAINS: &str = "/org/virtbus1/domain";
const HOST: &str = "/org/virtbus1/host";
const INTERFACES: &str = "/org/virtbus1/host/interface";
const DEVICES: &str = "/org/virtbus1/host/device";

pub fn host_interface(name: &str) -> String {
    format!("{INTERFACES}/{}", escape(name))
}

pub fn node_device(name: &str) -> String {
    format!("{DEVICES}/{}", escape(name))
}

const POOLS: &str = "/org/virtbus1/pool";

pub fn pool(name: &str) -> String {
    format!("{POOLS}/{}", escape(name))
}

pub fn volume(pool_name: &str, name: &str) -> String {
    format!("{}/volume/{}", pool(pool_name), escape(name))
}

const NETWORKS: &str = "/org/virtbus1/network";

/// A virtual network's path (networks are named uniquely; their name never changes).
pub fn network(name: &str) -> String {
    format!("{NETWORKS}/{}", escape(name))
}

pub fn domain(uuid: &Uuid) -> String {
    let mut s = String::with_capacity(DOMAINS.len() + 50);
    push_domain(&mut s, uuid);
    s
}

/// Append a domain's path to `out` without allocating: `-` is the only byte of a UUID that
/// needs escaping (`_2d`).
pub fn push_domain(out: &mut String, uuid: &Uuid) {
    out.push_str(DOMAINS);
    out.push('/');
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    for (i, part) in uuid
        .hyphenated()
        .encode_lower(&mut buf)
        .split('-')
        .enumerate()
    {
        if i > 0 {
            out.push_str("_2d");
        }
        out.push_str(part);
    }
}

pub fn snapshot(uuid: &Uuid, name: &str) -> String {
    format!("{}/snapshot/{}", domain(uuid), escape(name))
}

/// An object path as a bus value. Every path built here is valid by construction (escaped
/// elements), so it is not validated again.
pub fn owned(path: String) -> OwnedObjectPath {
    zbus::ObjectPath::from_string_unchecked(path).into()
}

/// `/`, the path clients read as "none".
pub fn root() -> OwnedObjectPath {
    OwnedObjectPath::try_from("/").unwrap_or_default()
}

/// What a path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/` or `/org`: only children.
    Ancestor(&'static str),
    Manager,
    DomainDir,
    Domain(Uuid),
    SnapshotDir(Uuid),
    Snapshot(Uuid, String),
    /// `/org/virtbus1/host`, and its `interface` and `device` directories.
    HostDir,
    InterfaceDir,
    DeviceDir,
    HostInterface(String),
    NodeDevice(String),
    PoolDir,
    Pool(String),
    VolumeDir(String),
    Volume(String, String),
    NetworkDir,
    Network(String),
    /// Under our tree but not a valid name: no such object.
    Invalid,
    /// Outside our tree.
    Foreign,
}

pub fn parse(path: &str) -> Target {
    match path {
        "/" => return Target::Ancestor("org"),
        "/org" => return Target::Ancestor("virtbus1"),
        MANAGER => return Target::Manager,
        DOMAINS => return Target::DomainDir,
        HOST => return Target::HostDir,
        INTERFACES => return Target::InterfaceDir,
        DEVICES => return Target::DeviceDir,
        POOLS => return Target::PoolDir,
        NETWORKS => return Target::NetworkDir,
        _ => {}
    }
    for (dir, make) in [
        (INTERFACES, Target::HostInterface as fn(String) -> Target),
        (DEVICES, Target::NodeDevice),
    ] {
        if let Some(rest) = path.strip_prefix(dir).and_then(|r| r.strip_prefix('/')) {
            return match unescape(rest).filter(|n| !n.is_empty() && !n.contains('/')) {
                Some(n) => make(n),
                None => Target::Invalid,
            };
        }
    }
    if let Some(rest) = path
        .strip_prefix(NETWORKS)
        .and_then(|r| r.strip_prefix('/'))
    {
        return match unescape(rest) {
            Some(n) if !rest.contains('/') => Target::Network(n),
            _ => Target::Invalid,
        };
    }
    if let Some(rest) = path.strip_prefix(POOLS).and_then(|r| r.strip_prefix('/')) {
        let mut parts = rest.split('/');
        let Some(pool) = parts.next().and_then(unescape) else {
            return Target::Invalid;
        };
        return match (parts.next(), parts.next(), parts.next()) {
            (None, _, _) => Target::Pool(pool),
            (Some("volume"), None, _) => Target::VolumeDir(pool),
            (Some("volume"), Some(v), None) => match unescape(v) {
                Some(v) => Target::Volume(pool, v),
                None => Target::Invalid,
            },
            _ => Target::Invalid,
        };
    }
    let Some(rest) = path.strip_prefix(DOMAINS).and_then(|r| r.strip_prefix('/')) else {
        return Target::Foreign;
    };
    let mut parts = rest.split('/');
    let Some(uuid) = parts
        .next()
        .and_then(unescape)
        .and_then(|u| Uuid::parse_str(&u).ok())
    else {
        return Target::Invalid;
    };
    match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) => Target::Domain(uuid),
        (Some("snapshot"), None, _) => Target::SnapshotDir(uuid),
        (Some("snapshot"), Some(name), None) => match unescape(name) {
            Some(n) => Target::Snapshot(uuid, n),
            None => Target::Invalid,
        },
        _ => Target::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let u = Uuid::parse_str("6695eb01-f6a4-8304-79aa-97f2502e193f").expect("uuid");
        let p = domain(&u);
        assert_eq!(
            p,
            "/org/virtbus1/domain/6695eb01_2df6a4_2d8304_2d79aa_2d97f2502e193f"
        );
        assert_eq!(parse(&p), Target::Domain(u));
        let s = snapshot(&u, "before upgrade");
        assert!(s.ends_with("/snapshot/before_20upgrade"));
        assert_eq!(parse(&s), Target::Snapshot(u, "before upgrade".into()));
        assert_eq!(parse(&format!("{p}/snapshot")), Target::SnapshotDir(u));
        assert!(zbus::ObjectPath::try_from(s.as_str()).is_ok());
    }

    #[test]
    fn push_domain_escapes_as_escape_does() {
        for u in [Uuid::nil(), Uuid::new_v4(), Uuid::max()] {
            let mut s = String::new();
            push_domain(&mut s, &u);
            assert_eq!(s, format!("{DOMAINS}/{}", escape(&u.to_string())));
        }
    }

    #[test]
    fn storage_paths() {
        let p = pool("my pool");
        assert_eq!(p, "/org/virtbus1/pool/my_20pool");
        assert_eq!(parse(&p), Target::Pool("my pool".into()));
        let v = volume("my pool", "disk.qcow2");
        assert_eq!(v, "/org/virtbus1/pool/my_20pool/volume/disk_2eqcow2");
        assert_eq!(
            parse(&v),
            Target::Volume("my pool".into(), "disk.qcow2".into())
        );
        assert_eq!(
            parse(&format!("{p}/volume")),
            Target::VolumeDir("my pool".into())
        );
        assert_eq!(parse("/org/virtbus1/pool"), Target::PoolDir);
        assert_eq!(parse("/org/virtbus1/pool/a_zz"), Target::Invalid);
        assert!(zbus::ObjectPath::try_from(v.as_str()).is_ok());
    }

    #[test]
    fn others() {
        assert_eq!(parse("/"), Target::Ancestor("org"));
        assert_eq!(parse("/org/virtbus1"), Target::Manager);
        assert_eq!(parse("/org/virtbus1/domain/nope"), Target::Invalid);
        assert_eq!(parse("/org/virtbus1/domain/a_2d"), Target::Invalid);
        assert_eq!(parse("/com/example"), Target::Foreign);
        assert_eq!(
            host_interface("br-lan"),
            "/org/virtbus1/host/interface/br_2dlan"
        );
        assert_eq!(
            parse("/org/virtbus1/host/interface/br_2dlan"),
            Target::HostInterface("br-lan".into())
        );
        assert_eq!(
            parse(&node_device("pci_0000_00_02_0")),
            Target::NodeDevice("pci_0000_00_02_0".into())
        );
        assert_eq!(parse("/org/virtbus1/host"), Target::HostDir);
        assert_eq!(parse("/org/virtbus1/host/device"), Target::DeviceDir);
        assert_eq!(parse(&network("my net")), Target::Network("my net".into()));
        assert_eq!(network("default"), "/org/virtbus1/network/default");
        assert_eq!(parse("/org/virtbus1/network"), Target::NetworkDir);
        assert_eq!(parse("/org/virtbus1/network/a/b"), Target::Invalid);
    }
}
