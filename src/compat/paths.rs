//! Object paths of the facade, as libvirt-dbus names them.
//!
//! ```text
//! /org/libvirt/<Driver>                                    Connect
//! /org/libvirt/<Driver>/domain/_<uuid, - as _>             Domain
//! /org/libvirt/<Driver>/domainsnapshot/_<uuid>_<name>      DomainSnapshot
//! /org/libvirt/<Driver>/interface/<escaped MAC address>    Interface
//! /org/libvirt/<Driver>/nodedev/<escaped name>             NodeDevice
//! /org/libvirt/<Driver>/storagepool/_<uuid, - as _>        StoragePool
//! /org/libvirt/<Driver>/storagevol/<escaped key>           StorageVol
//! ```
//! A snapshot name is escaped as libvirt-dbus does: every byte that is not an ASCII letter
//! or digit becomes `_` and two lower-case hex digits.

use uuid::Uuid;

pub const ROOT: &str = "/org/libvirt";

/// What a path under [`ROOT`] addresses, relative to the connects served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/`, `/org`, `/org/libvirt`: only children.
    Ancestor,
    /// The connect at this index.
    Connect(usize),
    /// `<connect>/domain` or `<connect>/domainsnapshot`.
    Dir(usize, Dir),
    Domain(usize, Uuid),
    /// Under a connect's `domain` with a name that is no encoded UUID.
    BadDomain(usize),
    Snapshot(usize, Uuid, String),
    /// A host interface, by its MAC address (libvirt-dbus names interfaces by MAC).
    Interface(usize, String),
    /// A node device, by name.
    NodeDevice(usize, String),
    /// A virtual network, by UUID.
    Network(usize, Uuid),
    /// A storage pool, by UUID.
    StoragePool(usize, Uuid),
    /// A storage volume, by key (libvirt-dbus names volumes by key).
    StorageVol(usize, String),
    /// Not an object of ours.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Domains,
    Snapshots,
    Interfaces,
    NodeDevices,
    Networks,
    StoragePools,
    StorageVols,
}

/// `_` and the UUID with its dashes as underscores.
fn encode_uuid(uuid: &Uuid) -> String {
    let mut s = String::with_capacity(37);
    s.push('_');
    for c in uuid
        .hyphenated()
        .encode_lower(&mut Uuid::encode_buffer())
        .chars()
    {
        s.push(if c == '-' { '_' } else { c });
    }
    s
}

fn decode_uuid(s: &str) -> Option<Uuid> {
    let body = s.strip_prefix('_')?;
    if body.len() != 36 {
        return None;
    }
    Uuid::parse_str(&body.replace('_', "-")).ok()
}

/// libvirt-dbus's escaping of a snapshot name: the native scheme (snapshot names are never
/// empty, the one input where the two would differ).
pub fn escape_name(name: &str) -> String {
    crate::util::escape::escape(name)
}

/// Lenient where libvirt-dbus is: upper-case hex and escaped letters decode too.
fn unescape_name(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'_' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

pub fn domain(connect: &str, uuid: &Uuid) -> String {
    format!("{connect}/domain/{}", encode_uuid(uuid))
}

/// Append a domain's path to `out`: a long listing writes every path into one buffer, and
/// this writes the UUID's hex digits straight from its bytes.
pub fn push_domain(out: &mut String, connect: &str, uuid: &Uuid) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut enc = [b'_'; 37];
    let mut i = 1;
    for (n, b) in uuid.as_bytes().iter().enumerate() {
        if matches!(n, 4 | 6 | 8 | 10) {
            i += 1;
        }
        enc[i] = HEX[(b >> 4) as usize];
        enc[i + 1] = HEX[(b & 0xf) as usize];
        i += 2;
    }
    out.push_str(connect);
    out.push_str("/domain/");
    // Only ASCII hex digits and underscores were written.
    out.push_str(std::str::from_utf8(&enc).unwrap_or_default());
}

pub fn snapshot(connect: &str, uuid: &Uuid, name: &str) -> String {
    format!(
        "{connect}/domainsnapshot/{}_{}",
        encode_uuid(uuid),
        escape_name(name)
    )
}

pub fn interface(connect: &str, mac: &str) -> String {
    format!("{connect}/interface/{}", escape_name(mac))
}

pub fn network(connect: &str, uuid: &Uuid) -> String {
    format!("{connect}/network/{}", encode_uuid(uuid))
}

pub fn storage_pool(connect: &str, uuid: &Uuid) -> String {
    format!("{connect}/storagepool/{}", encode_uuid(uuid))
}

pub fn storage_vol(connect: &str, key: &str) -> String {
    format!("{connect}/storagevol/{}", escape_name(key))
}

pub fn nodedev(connect: &str, name: &str) -> String {
    format!("{connect}/nodedev/{}", escape_name(name))
}

/// Resolve `path` against the connects' paths.
pub fn parse(path: &str, connects: &[&str]) -> Target {
    if path == "/" || path == "/org" || path == ROOT {
        return Target::Ancestor;
    }
    for (i, c) in connects.iter().enumerate() {
        let Some(rest) = path.strip_prefix(c) else {
            continue;
        };
        if rest.is_empty() {
            return Target::Connect(i);
        }
        if rest == "/domain" {
            return Target::Dir(i, Dir::Domains);
        }
        if rest == "/domainsnapshot" {
            return Target::Dir(i, Dir::Snapshots);
        }
        if rest == "/interface" {
            return Target::Dir(i, Dir::Interfaces);
        }
        if rest == "/network" {
            return Target::Dir(i, Dir::Networks);
        }
        if rest == "/nodedev" {
            return Target::Dir(i, Dir::NodeDevices);
        }
        if rest == "/storagepool" {
            return Target::Dir(i, Dir::StoragePools);
        }
        if rest == "/storagevol" {
            return Target::Dir(i, Dir::StorageVols);
        }
        if let Some(u) = rest.strip_prefix("/storagepool/") {
            return decode_uuid(u).map_or(Target::Unknown, |u| Target::StoragePool(i, u));
        }
        if let Some(k) = rest.strip_prefix("/storagevol/") {
            return unescape_name(k).map_or(Target::Unknown, |k| Target::StorageVol(i, k));
        }
        if let Some(m) = rest.strip_prefix("/interface/") {
            return unescape_name(m).map_or(Target::Unknown, |m| Target::Interface(i, m));
        }
        if let Some(n) = rest.strip_prefix("/nodedev/") {
            return unescape_name(n).map_or(Target::Unknown, |n| Target::NodeDevice(i, n));
        }
        if let Some(u) = rest.strip_prefix("/network/") {
            return decode_uuid(u).map_or(Target::Unknown, |u| Target::Network(i, u));
        }
        if let Some(u) = rest.strip_prefix("/domain/") {
            return decode_uuid(u).map_or(Target::BadDomain(i), |u| Target::Domain(i, u));
        }
        if let Some(s) = rest.strip_prefix("/domainsnapshot/") {
            let (Some(u), Some(n)) = (s.get(..37), s.get(38..)) else {
                return Target::Unknown;
            };
            if s.as_bytes().get(37) != Some(&b'_') {
                return Target::Unknown;
            }
            return match (decode_uuid(u), unescape_name(n)) {
                (Some(u), Some(n)) => Target::Snapshot(i, u, n),
                _ => Target::Unknown,
            };
        }
    }
    Target::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: &[&str] = &["/org/libvirt/QEMU", "/org/libvirt/Test"];

    #[test]
    fn libvirt_dbus_paths() {
        let u = Uuid::parse_str("6695eb01-f6a4-8304-79aa-97f2502e193f").expect("uuid");
        let d = domain(C[1], &u);
        assert_eq!(
            d,
            "/org/libvirt/Test/domain/_6695eb01_f6a4_8304_79aa_97f2502e193f"
        );
        let mut pushed = String::new();
        push_domain(&mut pushed, C[1], &u);
        assert_eq!(pushed, d);
        assert_eq!(parse(&d, C), Target::Domain(1, u));
        let s = snapshot(C[0], &u, "snap 1.x");
        assert_eq!(
            s,
            "/org/libvirt/QEMU/domainsnapshot/_6695eb01_f6a4_8304_79aa_97f2502e193f_snap_201_2ex"
        );
        assert_eq!(parse(&s, C), Target::Snapshot(0, u, "snap 1.x".into()));
        assert!(zbus::ObjectPath::try_from(s.as_str()).is_ok());
        assert_eq!(parse("/org/libvirt/Test", C), Target::Connect(1));
        assert_eq!(
            parse("/org/libvirt/Test/domain", C),
            Target::Dir(1, Dir::Domains)
        );
        assert_eq!(parse("/org/libvirt", C), Target::Ancestor);
        assert_eq!(
            parse("/org/libvirt/Test/domain/xyz", C),
            Target::BadDomain(1)
        );
        assert_eq!(parse("/org/libvirt/Xen", C), Target::Unknown);
        let i = interface(C[1], "aa:bb:cc:dd:ee:ff");
        assert_eq!(i, "/org/libvirt/Test/interface/aa_3abb_3acc_3add_3aee_3aff");
        assert_eq!(
            parse(&i, C),
            Target::Interface(1, "aa:bb:cc:dd:ee:ff".into())
        );
        let n = nodedev(C[1], "scsi_host1");
        assert_eq!(n, "/org/libvirt/Test/nodedev/scsi_5fhost1");
        assert_eq!(parse(&n, C), Target::NodeDevice(1, "scsi_host1".into()));
        assert_eq!(
            parse("/org/libvirt/QEMU/nodedev", C),
            Target::Dir(0, Dir::NodeDevices)
        );
        let net = network(C[0], &u);
        assert_eq!(
            net,
            "/org/libvirt/QEMU/network/_6695eb01_f6a4_8304_79aa_97f2502e193f"
        );
        assert_eq!(parse(&net, C), Target::Network(0, u));
        let pool = storage_pool(C[1], &u);
        assert_eq!(
            pool,
            "/org/libvirt/Test/storagepool/_6695eb01_f6a4_8304_79aa_97f2502e193f"
        );
        assert_eq!(parse(&pool, C), Target::StoragePool(1, u));
        let vol = storage_vol(C[1], "/default-pool/v 1");
        assert_eq!(
            vol,
            "/org/libvirt/Test/storagevol/_2fdefault_2dpool_2fv_201"
        );
        assert_eq!(
            parse(&vol, C),
            Target::StorageVol(1, "/default-pool/v 1".into())
        );
        assert_eq!(escape_name("a_b-é"), "a_5fb_2d_c3_a9");
        assert_eq!(unescape_name("a_5fb_2d_c3_a9").as_deref(), Some("a_b-é"));
    }
}
