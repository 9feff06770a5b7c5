//! Object paths of the native API.
//!
//! ```text
//! /org/virtbus1                                        Manager, ObjectManager
//! /org/virtbus1/domain/<escaped uuid>                  Domain
//! /org/virtbus1/domain/<escaped uuid>/snapshot/<escaped name>   Snapshot
//! /org/virtbus1/network/<escaped name>                 Network
//! ```
//! Escaping is [`crate::util::escape`]: every byte that is not an ASCII letter or digit becomes
//! `_xx` (lower-case hex). A path is fixed for the life of its object.

use uuid::Uuid;
use zbus::OwnedObjectPath;

use crate::util::escape::{escape, unescape};

pub const MANAGER: &str = "/org/virtbus1";
const DOMAINS: &str = "/org/virtbus1/domain";
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
        NETWORKS => return Target::NetworkDir,
        _ => {}
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
    fn others() {
        assert_eq!(parse("/"), Target::Ancestor("org"));
        assert_eq!(parse("/org/virtbus1"), Target::Manager);
        assert_eq!(parse("/org/virtbus1/domain/nope"), Target::Invalid);
        assert_eq!(parse("/org/virtbus1/domain/a_2d"), Target::Invalid);
        assert_eq!(parse("/com/example"), Target::Foreign);
        assert_eq!(parse(&network("my net")), Target::Network("my net".into()));
        assert_eq!(network("default"), "/org/virtbus1/network/default");
        assert_eq!(parse("/org/virtbus1/network"), Target::NetworkDir);
        assert_eq!(parse("/org/virtbus1/network/a/b"), Target::Invalid);
    }
}
