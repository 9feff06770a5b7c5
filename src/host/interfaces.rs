//! The host's network interfaces as libvirt 9.0's udev interface backend lists and describes
//! them (L:src/interface/interface_backend_udev.c, formatted as L:src/conf/interface_conf.c
//! does).
//!
//! Listing follows libvirt: every net device except bridge ports (they appear inside their
//! bridge) and tun/tap devices (guests' NICs); "active" means operstate `up`, so `lo`, whose
//! operstate is `unknown`, is inactive as in libvirt. The kind comes from the device's
//! `DEVTYPE` (vlan, bridge, bond), falling back to a dot in the name (vlan) or a `bonding`
//! directory (bond). Unlike libvirt's udev backend, which writes no addresses at all, the
//! top-level interface carries its IPv4 and IPv6 addresses in `<protocol>` elements (the
//! element libvirt's schema has for them).

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use super::{Error, Result, sysfs};
use crate::util::xml::attr as esc;

/// Which interfaces a listing wants (libvirt's ACTIVE / INACTIVE list flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filter {
    pub active: bool,
    pub inactive: bool,
}

impl Filter {
    pub fn admits(self, active: bool) -> bool {
        (!self.active && !self.inactive) || (self.active && active) || (self.inactive && !active)
    }
}

/// An IP address with its prefix length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub ip: IpAddr,
    pub prefix: u8,
}

/// One interface, with the interfaces it is made of for bridges and bonds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInterface {
    pub name: String,
    pub mac: Option<String>,
    pub mtu: u32,
    /// The kernel's operstate (`up`, `down`, `unknown`, …).
    pub state: Option<String>,
    /// Link speed in Mb/s, known only for links that are up (libvirt's rule).
    pub speed: Option<u32>,
    pub addresses: Vec<Address>,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Ethernet,
    Bridge {
        /// `bridge/stp_state`: off, on, or (-1) unknown.
        stp: Option<bool>,
        /// `bridge/forward_delay`, verbatim as libvirt copies it.
        delay: Option<String>,
        ports: Vec<HostInterface>,
    },
    Bond {
        bond: Box<Bond>,
        slaves: Vec<HostInterface>,
    },
    Vlan {
        tag: String,
        device: String,
    },
}

/// A bond's settings from its `bonding/` directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bond {
    /// The kernel's mode number (0 balance-rr … 6 balance-alb).
    pub mode: u32,
    pub miimon: u32,
    pub updelay: u32,
    pub downdelay: u32,
    /// `use_carrier`: netif when set, ioctl when not.
    pub use_carrier: bool,
    pub arp_interval: u32,
    pub arp_target: String,
    /// `arp_validate`'s number: 0 none, 1 active, 2 backup, 3 all.
    pub arp_validate: u32,
}

impl HostInterface {
    pub fn active(&self) -> bool {
        self.state.as_deref() == Some("up")
    }

    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Ethernet => "ethernet",
            Kind::Bridge { .. } => "bridge",
            Kind::Bond { .. } => "bond",
            Kind::Vlan { .. } => "vlan",
        }
    }

    /// The bridge's member ports (empty for other kinds).
    pub fn ports(&self) -> Vec<&str> {
        match &self.kind {
            Kind::Bridge { ports, .. } => ports.iter().map(|p| p.name.as_str()).collect(),
            Kind::Bond { slaves, .. } => slaves.iter().map(|p| p.name.as_str()).collect(),
            _ => Vec::new(),
        }
    }

    /// libvirt's interface XML.
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0, true);
        out
    }

    fn write(&self, out: &mut String, depth: usize, top: bool) {
        let pad = "  ".repeat(depth);
        let inner = "  ".repeat(depth + 1);
        out.push_str(&format!(
            "{pad}<interface type='{}' name='{}'>\n",
            self.kind_name(),
            esc(&self.name)
        ));
        if top {
            if self.mtu != 0 {
                out.push_str(&format!("{inner}<mtu size='{}'/>\n", self.mtu));
            }
            for (family, v4) in [("ipv4", true), ("ipv6", false)] {
                let ips: Vec<&Address> = self
                    .addresses
                    .iter()
                    .filter(|a| a.ip.is_ipv4() == v4)
                    .collect();
                if ips.is_empty() {
                    continue;
                }
                out.push_str(&format!("{inner}<protocol family='{family}'>\n"));
                for a in ips {
                    out.push_str(&format!("{inner}  <ip address='{}'", a.ip));
                    if a.prefix != 0 {
                        out.push_str(&format!(" prefix='{}'", a.prefix));
                    }
                    out.push_str("/>\n");
                }
                out.push_str(&format!("{inner}</protocol>\n"));
            }
        }
        if !matches!(self.kind, Kind::Bridge { .. }) {
            link_xml(out, &inner, self.speed, self.state.as_deref());
        }
        match &self.kind {
            Kind::Ethernet => {
                if let Some(mac) = &self.mac {
                    out.push_str(&format!("{inner}<mac address='{}'/>\n", esc(mac)));
                }
            }
            Kind::Bridge { stp, delay, ports } => {
                out.push_str(&format!("{inner}<bridge"));
                match stp {
                    Some(true) => out.push_str(" stp='on'"),
                    Some(false) => out.push_str(" stp='off'"),
                    None => {}
                }
                if let Some(d) = delay {
                    out.push_str(&format!(" delay='{}'", esc(d)));
                }
                out.push_str(">\n");
                for p in ports {
                    p.write(out, depth + 2, false);
                }
                out.push_str(&format!("{inner}</bridge>\n"));
            }
            Kind::Bond { bond, slaves } => {
                write_bond(out, &inner, bond);
                for s in slaves {
                    s.write(out, depth + 2, false);
                }
                out.push_str(&format!("{inner}</bond>\n"));
            }
            Kind::Vlan { tag, device } => {
                out.push_str(&format!(
                    "{inner}<vlan tag='{}'>\n{inner}  <interface name='{}'/>\n{inner}</vlan>\n",
                    esc(tag),
                    esc(device)
                ));
            }
        }
        out.push_str(&format!("{pad}</interface>\n"));
    }
}

/// `<link speed state/>` as libvirt writes it for interfaces and net node devices.
pub(super) fn link_xml(out: &mut String, pad: &str, speed: Option<u32>, state: Option<&str>) {
    if speed.is_none() && state.is_none() {
        return;
    }
    out.push_str(&format!("{pad}<link"));
    if let Some(s) = speed.filter(|s| *s != 0) {
        out.push_str(&format!(" speed='{s}'"));
    }
    if let Some(s) = state {
        out.push_str(&format!(" state='{}'", esc(s)));
    }
    out.push_str("/>\n");
}

fn write_bond(out: &mut String, pad: &str, b: &Bond) {
    const MODES: [&str; 7] = [
        "balance-rr",
        "active-backup",
        "balance-xor",
        "broadcast",
        "802.3ad",
        "balance-tlb",
        "balance-alb",
    ];
    out.push_str(&format!("{pad}<bond"));
    if let Some(m) = MODES.get(b.mode as usize) {
        out.push_str(&format!(" mode='{m}'"));
    }
    out.push_str(">\n");
    if b.arp_interval > 0 {
        out.push_str(&format!(
            "{pad}  <arpmon interval='{}' target='{}'",
            b.arp_interval,
            esc(&b.arp_target)
        ));
        match b.arp_validate {
            1 => out.push_str(" validate='active'"),
            2 => out.push_str(" validate='backup'"),
            3 => out.push_str(" validate='all'"),
            _ => {}
        }
        out.push_str("/>\n");
    } else if b.miimon > 0 {
        out.push_str(&format!("{pad}  <miimon freq='{}'", b.miimon));
        if b.downdelay > 0 {
            out.push_str(&format!(" downdelay='{}'", b.downdelay));
        }
        if b.updelay > 0 {
            out.push_str(&format!(" updelay='{}'", b.updelay));
        }
        out.push_str(if b.use_carrier {
            " carrier='netif'"
        } else {
            " carrier='ioctl'"
        });
        out.push_str("/>\n");
    }
}

/// Reads interfaces from a sysfs tree and an address table.
pub struct Reader {
    net: PathBuf,
    addresses: Vec<(String, Address)>,
}

impl Reader {
    /// The live host: `/sys/class/net` and `getifaddrs`.
    pub fn host() -> Result<Reader> {
        Ok(Reader {
            net: Path::new(super::SYSFS).join("class/net"),
            addresses: host_addresses()?,
        })
    }

    /// A reader over `sysfs` (a tree shaped like `/sys`) with the given addresses.
    pub fn new(sysfs: &Path, addresses: Vec<(String, Address)>) -> Reader {
        Reader {
            net: sysfs.join("class/net"),
            addresses,
        }
    }

    /// The names of the listed interfaces (bridge ports and taps left out), sorted.
    pub fn names(&self, filter: Filter) -> Vec<String> {
        sysfs::names(&self.net)
            .into_iter()
            .filter(|n| {
                let dir = self.net.join(n);
                !dir.join("brport/state").exists()
                    && !dir.join("tun_flags").exists()
                    && filter.admits(sysfs::attr(&dir, "operstate").as_deref() == Some("up"))
            })
            .collect()
    }

    /// The listed interfaces.
    pub fn list(&self, filter: Filter) -> Vec<HostInterface> {
        self.names(filter)
            .iter()
            // One that vanished between the listing and the reading is not listed.
            .filter_map(|n| self.read(n).ok())
            .collect()
    }

    /// One interface by name (any net device, as libvirt's lookup allows).
    pub fn read(&self, name: &str) -> Result<HostInterface> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(Error::NoInterface(name.to_owned()));
        }
        let dir = self.net.join(name);
        if !dir.is_dir() {
            return Err(Error::NoInterface(name.to_owned()));
        }
        let mtu = sysfs::number(&dir, "mtu", 10)?.unwrap_or(0) as u32;
        let state = sysfs::string(&dir, "operstate");
        let speed = if state.as_deref() == Some("up") {
            // -1 (unknown) reads as 4294967295, as libvirt's unsigned parse gives.
            sysfs::string(&dir, "speed")
                .and_then(|s| s.parse::<i64>().ok())
                .map(|s| s as u32)
        } else {
            None
        };
        let ev = sysfs::uevent(&dir);
        let devtype = sysfs::prop(&ev, "DEVTYPE");
        let kind = match devtype {
            Some("bridge") => self.bridge(&dir)?,
            Some("bond") => self.bond(&dir)?,
            Some("vlan") => vlan(name)?,
            _ if dir.join("bonding/mode").exists() => self.bond(&dir)?,
            _ if dir.join("bridge").is_dir() => self.bridge(&dir)?,
            _ if name.contains('.') => vlan(name)?,
            _ => Kind::Ethernet,
        };
        Ok(HostInterface {
            name: name.to_owned(),
            mac: sysfs::string(&dir, "address"),
            mtu,
            state,
            speed,
            addresses: self
                .addresses
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, a)| a.clone())
                .collect(),
            kind,
        })
    }

    /// The interface with this MAC address (compared without regard to case).
    pub fn by_mac(&self, mac: &str) -> Result<HostInterface> {
        let found: Vec<String> = sysfs::names(&self.net)
            .into_iter()
            .filter(|n| {
                sysfs::string(&self.net.join(n), "address")
                    .is_some_and(|a| a.eq_ignore_ascii_case(mac))
            })
            .collect();
        match found.as_slice() {
            [one] => self.read(one),
            [] => Err(Error::NoInterfaceMac(mac.to_owned())),
            _ => Err(Error::Parse {
                path: self.net.clone(),
                what: format!("the MAC address '{mac}' matches multiple interfaces"),
            }),
        }
    }

    fn bridge(&self, dir: &Path) -> Result<Kind> {
        let stp = match sysfs::number(dir, "bridge/stp_state", 10) {
            Ok(Some(0)) => Some(false),
            Ok(Some(_)) => Some(true),
            _ => None,
        };
        let ports = sysfs::names(&dir.join("brif"))
            .iter()
            .filter_map(|p| self.read(p).ok())
            .collect();
        Ok(Kind::Bridge {
            stp,
            delay: sysfs::string(dir, "bridge/forward_delay"),
            ports,
        })
    }

    fn bond(&self, dir: &Path) -> Result<Kind> {
        let num = |n: &str| -> Result<u32> { Ok(sysfs::number(dir, n, 10)?.unwrap_or(0) as u32) };
        // "balance-rr 0": the number after the space.
        let second = |n: &str| -> u32 {
            sysfs::string(dir, n)
                .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
                .unwrap_or(0)
        };
        let bond = Bond {
            mode: second("bonding/mode"),
            miimon: num("bonding/miimon")?,
            updelay: num("bonding/updelay")?,
            downdelay: num("bonding/downdelay")?,
            use_carrier: num("bonding/use_carrier")? != 0,
            arp_interval: num("bonding/arp_interval")?,
            arp_target: sysfs::string(dir, "bonding/arp_ip_target").unwrap_or_default(),
            arp_validate: second("bonding/arp_validate"),
        };
        let slaves = sysfs::names(dir)
            .iter()
            .filter_map(|n| {
                n.strip_prefix("lower_")
                    .or_else(|| n.strip_prefix("slave_"))
            })
            .filter_map(|p| self.read(p).ok())
            .collect();
        Ok(Kind::Bond {
            bond: Box::new(bond),
            slaves,
        })
    }
}

/// A VLAN's tag and underlying device from `/proc/net/vlan/<name>`.
fn vlan(name: &str) -> Result<Kind> {
    let path = Path::new("/proc/net/vlan").join(name);
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })?;
    parse_vlan(&text).ok_or_else(|| Error::Parse {
        path,
        what: "no VID and Device lines".into(),
    })
}

fn parse_vlan(text: &str) -> Option<Kind> {
    let vid = text.split("VID: ").nth(1)?;
    let tag: String = vid.chars().take_while(|c| c.is_ascii_digit()).collect();
    let device = text.split("\nDevice: ").nth(1)?.lines().next()?.trim();
    (!tag.is_empty() && !device.is_empty()).then(|| Kind::Vlan {
        tag,
        device: device.to_owned(),
    })
}

/// Every address of every interface, from `getifaddrs(3)`.
pub fn host_addresses() -> Result<Vec<(String, Address)>> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(Error::Read {
            path: PathBuf::from("getifaddrs"),
            source: std::io::Error::last_os_error(),
        });
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: ifa_addr/ifa_netmask point at sockaddrs of the family ifa_addr names.
        let (ip, prefix) = unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let a = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    let ip = IpAddr::from(a.sin_addr.s_addr.to_ne_bytes());
                    let prefix = if ifa.ifa_netmask.is_null() {
                        0
                    } else {
                        let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in);
                        u32::from_be(m.sin_addr.s_addr).count_ones() as u8
                    };
                    (ip, prefix)
                }
                libc::AF_INET6 => {
                    let a = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    let ip = IpAddr::from(a.sin6_addr.s6_addr);
                    let prefix = if ifa.ifa_netmask.is_null() {
                        0
                    } else {
                        let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in6);
                        m.sin6_addr
                            .s6_addr
                            .iter()
                            .map(|b| b.count_ones())
                            .sum::<u32>() as u8
                    };
                    (ip, prefix)
                }
                _ => continue,
            }
        };
        out.push((name, Address { ip, prefix }));
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}
