//! The host, as the kernel describes it in `/proc` and `/sys`: CPUs and their topology,
//! memory, per-CPU time, firmware tables, the ARP cache. Every figure is read when asked.

use std::{collections::BTreeSet, fs, io, path::Path};

use super::error::{Error, Result};

/// What libvirt's `virNodeGetInfo` reports, and what the capabilities documents show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    pub arch: &'static str,
    /// The CPU's name as `/proc/cpuinfo` gives it.
    pub cpu_model: String,
    /// `Intel`, `AMD`, or the vendor id as is.
    pub cpu_vendor: String,
    /// Online CPUs.
    pub cpus: u32,
    pub mhz: u32,
    pub nodes: u32,
    pub sockets: u32,
    /// Per socket.
    pub cores: u32,
    /// Per core.
    pub threads: u32,
    pub memory_kib: u64,
    /// The CPU flags the kernel lists.
    pub cpu_flags: Vec<String>,
    /// The machine's UUID: the firmware's when readable, else derived from the machine id.
    pub uuid: String,
}

fn read(path: impl AsRef<Path>) -> io::Result<String> {
    fs::read_to_string(path).map(|s| s.trim().to_owned())
}

/// `/proc/meminfo` as (key, KiB).
fn meminfo(path: &str) -> io::Result<Vec<(String, u64)>> {
    Ok(fs::read_to_string(path)?
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let n = v.split_whitespace().next()?.parse().ok()?;
            // Per-node files prefix each line with "Node N ".
            let k = k.trim().rsplit(' ').next().unwrap_or(k);
            Some((k.to_owned(), n))
        })
        .collect())
}

fn field(mem: &[(String, u64)], key: &str) -> u64 {
    mem.iter().find(|(k, _)| k == key).map_or(0, |(_, v)| *v)
}

/// CPUs present (online or not).
pub fn cpu_count() -> io::Result<usize> {
    let present = read("/sys/devices/system/cpu/present")?;
    Ok(parse_cpuset(&present, usize::MAX).len())
}

/// For each present CPU, whether it is online.
pub fn cpu_map() -> io::Result<Vec<bool>> {
    let n = cpu_count()?;
    let online = read("/sys/devices/system/cpu/online")?;
    Ok(parse_cpuset(&online, n))
}

/// A CPU list in libvirt's and the kernel's syntax (`0-3,^2,6`) as a map of `n` CPUs
/// (`usize::MAX`: as long as the highest CPU named).
pub fn parse_cpuset(list: &str, n: usize) -> Vec<bool> {
    let mut on = BTreeSet::new();
    let mut off = BTreeSet::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (neg, part) = match part.strip_prefix('^') {
            Some(p) => (true, p),
            None => (false, part),
        };
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (Ok(a), Ok(b)) = (a.trim().parse::<usize>(), b.trim().parse::<usize>()) else {
            continue;
        };
        for c in a..=b.min(a + 65_536) {
            if neg {
                off.insert(c);
            } else {
                on.insert(c);
            }
        }
    }
    let len = if n == usize::MAX {
        on.iter().next_back().map_or(0, |m| m + 1)
    } else {
        n
    };
    (0..len)
        .map(|c| on.contains(&c) && !off.contains(&c))
        .collect()
}

/// The host's CPUs, topology and memory.
pub fn info() -> io::Result<HostInfo> {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let first = |key: &str| {
        cpuinfo
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == key).then(|| v.trim().to_owned())
            })
            .unwrap_or_default()
    };
    let cpu_model = first("model name");
    let cpu_vendor = match first("vendor_id").as_str() {
        "GenuineIntel" => "Intel".to_owned(),
        "AuthenticAMD" => "AMD".to_owned(),
        v => v.to_owned(),
    };
    let mhz = first("cpu MHz")
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let cpu_flags = first("flags")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let online = cpu_map()?;
    let cpus = online.iter().filter(|o| **o).count() as u32;
    let mut packages = BTreeSet::new();
    let mut cores = BTreeSet::new();
    for (cpu, _) in online.iter().enumerate().filter(|(_, o)| **o) {
        let topo = format!("/sys/devices/system/cpu/cpu{cpu}/topology");
        let pkg = read(format!("{topo}/physical_package_id")).unwrap_or_default();
        let core = read(format!("{topo}/core_id")).unwrap_or_default();
        packages.insert(pkg.clone());
        cores.insert((pkg, core));
    }
    let nodes = read("/sys/devices/system/node/online")
        .map(|n| parse_cpuset(&n, usize::MAX).iter().filter(|o| **o).count() as u32)
        .unwrap_or(1)
        .max(1);
    let packages = packages.len().max(1) as u32;
    let mut sockets = (packages / nodes).max(1);
    let mut cores_per_socket = (cores.len() as u32 / packages).max(1);
    let mut threads = (cpus / (packages * cores_per_socket)).max(1);
    let mut nodes = nodes;
    // As libvirt does when the topology does not add up (offline CPUs, odd NUMA layouts):
    // one node, one socket, every CPU a core.
    if nodes * sockets * cores_per_socket * threads != cpus {
        (nodes, sockets, cores_per_socket, threads) = (1, 1, cpus.max(1), 1);
    }
    let memory_kib = field(&meminfo("/proc/meminfo")?, "MemTotal");
    Ok(HostInfo {
        arch: std::env::consts::ARCH,
        cpu_model,
        cpu_vendor,
        cpus,
        mhz,
        nodes,
        sockets,
        cores: cores_per_socket,
        threads,
        memory_kib,
        cpu_flags,
        uuid: machine_uuid(),
    })
}

/// The firmware's UUID, else the machine id written as a UUID.
fn machine_uuid() -> String {
    if let Ok(u) = read("/sys/class/dmi/id/product_uuid")
        && uuid::Uuid::parse_str(&u).is_ok()
    {
        return u.to_ascii_lowercase();
    }
    crate::util::machine_id()
        .and_then(|id| uuid::Uuid::try_parse(&id).ok())
        .map(|u| u.hyphenated().to_string())
        .unwrap_or_default()
}

/// Memory figures in KiB (`total`, `free`, `buffers`, `cached`), of the whole host or of one
/// NUMA node (which has only `total` and `free`).
pub fn memory_stats(cell: Option<u32>) -> Result<Vec<(&'static str, u64)>> {
    let failed = |e: io::Error| Error::Failed(format!("cannot read memory figures: {e}"));
    match cell {
        None => {
            let m = meminfo("/proc/meminfo").map_err(failed)?;
            Ok(vec![
                ("total", field(&m, "MemTotal")),
                ("free", field(&m, "MemFree")),
                ("buffers", field(&m, "Buffers")),
                ("cached", field(&m, "Cached")),
            ])
        }
        Some(n) => {
            let path = format!("/sys/devices/system/node/node{n}/meminfo");
            if !Path::new(&path).exists() {
                return Err(Error::InvalidArgument(format!(
                    "the host has no NUMA node {n}"
                )));
            }
            let m = meminfo(&path).map_err(failed)?;
            Ok(vec![
                ("total", field(&m, "MemTotal")),
                ("free", field(&m, "MemFree")),
            ])
        }
    }
}

/// Free memory in bytes.
pub fn free_memory() -> Result<u64> {
    let m = meminfo("/proc/meminfo")
        .map_err(|e| Error::Failed(format!("cannot read memory figures: {e}")))?;
    Ok(field(&m, "MemFree") * 1024)
}

/// CPU time in nanoseconds (`kernel`, `user`, `idle`, `iowait`) of all CPUs or of one.
pub fn cpu_stats(cpu: Option<u32>) -> Result<Vec<(&'static str, u64)>> {
    let stat = fs::read_to_string("/proc/stat")
        .map_err(|e| Error::Failed(format!("cannot read /proc/stat: {e}")))?;
    let label = match cpu {
        None => "cpu".to_owned(),
        Some(n) => format!("cpu{n}"),
    };
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(label.as_str()))
        .ok_or_else(|| Error::InvalidArgument(format!("the host has no CPU {label}")))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ns = |i: usize| ticks.get(i).copied().unwrap_or(0) * (1_000_000_000 / hz);
    // user nice system idle iowait irq softirq
    Ok(vec![
        ("kernel", ns(2) + ns(5) + ns(6)),
        ("user", ns(0) + ns(1)),
        ("idle", ns(3)),
        ("iowait", ns(4)),
    ])
}

/// The kernel's same-page merging settings and counters, as libvirt's
/// `virNodeGetMemoryParameters` names them.
pub fn memory_parameters() -> Vec<(&'static str, u64)> {
    [
        ("shm_pages_to_scan", "pages_to_scan"),
        ("shm_sleep_millisecs", "sleep_millisecs"),
        ("shm_pages_shared", "pages_shared"),
        ("shm_pages_sharing", "pages_sharing"),
        ("shm_pages_unshared", "pages_unshared"),
        ("shm_pages_volatile", "pages_volatile"),
        ("shm_full_scans", "full_scans"),
        ("shm_merge_across_nodes", "merge_across_nodes"),
    ]
    .into_iter()
    .filter_map(|(name, file)| {
        let v = read(format!("/sys/kernel/mm/ksm/{file}")).ok()?;
        Some((name, v.parse().ok()?))
    })
    .collect()
}

/// The host's ARP cache: (MAC address, IPv4 address) pairs.
pub fn arp_table() -> Vec<(String, String)> {
    fs::read_to_string("/proc/net/arp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let (ip, mac) = (cols.first()?, cols.get(3)?);
            (*mac != "00:00:00:00:00:00").then(|| (mac.to_ascii_lowercase(), (*ip).to_owned()))
        })
        .collect()
}

/// The firmware's description of the host (SMBIOS, from `/sys/class/dmi/id`) and its
/// processors, as libvirt's `<sysinfo type='smbios'>` document.
pub fn sysinfo_xml() -> String {
    use std::fmt::Write as _;
    let dmi = |f: &str| {
        read(format!("/sys/class/dmi/id/{f}"))
            .ok()
            .filter(|v| !v.is_empty())
    };
    let mut out = String::from("<sysinfo type='smbios'>\n");
    let mut section = |name: &str, entries: &[(&str, Option<String>)]| {
        if entries.iter().all(|(_, v)| v.is_none()) {
            return;
        }
        let _ = writeln!(out, "  <{name}>");
        for (k, v) in entries {
            if let Some(v) = v {
                let _ = writeln!(
                    out,
                    "    <entry name='{k}'>{}</entry>",
                    super::capabilities::xml_text(v)
                );
            }
        }
        let _ = writeln!(out, "  </{name}>");
    };
    section(
        "bios",
        &[
            ("vendor", dmi("bios_vendor")),
            ("version", dmi("bios_version")),
            ("date", dmi("bios_date")),
            ("release", dmi("bios_release")),
        ],
    );
    section(
        "system",
        &[
            ("manufacturer", dmi("sys_vendor")),
            ("product", dmi("product_name")),
            ("version", dmi("product_version")),
            ("serial", dmi("product_serial")),
            ("uuid", dmi("product_uuid")),
            ("sku", dmi("product_sku")),
            ("family", dmi("product_family")),
        ],
    );
    section(
        "baseBoard",
        &[
            ("manufacturer", dmi("board_vendor")),
            ("product", dmi("board_name")),
            ("version", dmi("board_version")),
            ("serial", dmi("board_serial")),
            ("asset", dmi("board_asset_tag")),
        ],
    );
    section(
        "chassis",
        &[
            ("manufacturer", dmi("chassis_vendor")),
            ("version", dmi("chassis_version")),
            ("serial", dmi("chassis_serial")),
            ("asset", dmi("chassis_asset_tag")),
        ],
    );
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let mut seen = BTreeSet::new();
    for block in cpuinfo.split("\n\n") {
        let get = |key: &str| {
            block.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == key).then(|| v.trim().to_owned())
            })
        };
        let socket = get("physical id").unwrap_or_else(|| "0".into());
        if get("processor").is_none() || !seen.insert(socket.clone()) {
            continue;
        }
        let signature = match (get("cpu family"), get("model"), get("stepping")) {
            (Some(f), Some(m), Some(s)) => Some(format!("Family {f}, Model {m}, Stepping {s}")),
            _ => None,
        };
        section(
            "processor",
            &[
                ("socket_destination", Some(format!("CPU {socket}"))),
                ("type", Some("Central Processor".into())),
                ("manufacturer", get("vendor_id")),
                ("signature", signature),
                ("version", get("model name")),
                (
                    "max_speed",
                    get("cpu MHz").map(|m| format!("{} MHz", m.split('.').next().unwrap_or(""))),
                ),
            ],
        );
    }
    out.push_str("</sysinfo>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpusets() {
        assert_eq!(parse_cpuset("0-3,^2", 4), [true, true, false, true]);
        assert_eq!(parse_cpuset("1,3", 5), [false, true, false, true, false]);
        assert_eq!(parse_cpuset("0-1", usize::MAX), [true, true]);
        assert_eq!(parse_cpuset("", 2), [false, false]);
        assert_eq!(parse_cpuset("7", 2), [false, false]);
    }

    #[test]
    fn this_host() {
        let i = info().expect("host info");
        assert!(i.cpus >= 1 && i.memory_kib > 0, "{i:?}");
        assert_eq!(i.sockets * i.cores * i.threads * i.nodes, i.cpus, "{i:?}");
        assert_eq!(cpu_map().expect("map").len(), cpu_count().expect("count"));
        let m = memory_stats(None).expect("memory");
        assert_eq!(m[0].0, "total");
        assert_eq!(m[0].1, i.memory_kib);
        assert!(free_memory().expect("free") > 0);
        let c = cpu_stats(None).expect("cpu");
        assert!(c.iter().any(|(k, v)| *k == "user" && *v > 0));
        assert!(cpu_stats(Some(100_000)).is_err());
        assert!(memory_stats(Some(100_000)).is_err());
        let s = sysinfo_xml();
        assert!(
            s.starts_with("<sysinfo type='smbios'>") && s.contains("<processor>"),
            "{s}"
        );
    }
}
