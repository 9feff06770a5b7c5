//! Statistics of a running QEMU guest, named as libvirt's `GetAllDomainStats` names them.
//!
//! | key | type | source |
//! | --- | --- | --- |
//! | `cpu.time`, `cpu.user`, `cpu.system` | t (ns) | `/proc/PID/stat` of QEMU |
//! | `balloon.current`, `balloon.maximum` | t (KiB) | QMP `query-balloon`; without a balloon, the definition |
//! | `balloon.rss` | t (KiB) | `VmRSS` of `/proc/PID/status` |
//! | `vcpu.current`, `vcpu.maximum` | t | the live definition |
//! | `vcpu.N.state` | x (1 running) | QMP `query-cpus-fast` |
//! | `vcpu.N.time` | t (ns) | `/proc/PID/task/TID/stat` of the vCPU thread |
//! | `block.count` | t | disks with a medium |
//! | `block.N.name`, `block.N.path` | s | target and source of disk N |
//! | `block.N.rd.reqs`, `.rd.bytes`, `.rd.times`, `.wr.reqs`, `.wr.bytes`, `.wr.times`, `.fl.reqs`, `.fl.times` | t (times in ns) | QMP `query-blockstats` |
//! | `net.count` | t | interfaces |
//! | `net.N.name` | s | host device (tap), else the device alias |
//! | `iothread.count`, `iothread.ID.poll-max-ns`, `.poll-grow`, `.poll-shrink` | u, t, u, u | QMP `query-iothreads` (see `iothreads::stats`) |
//! | `perf.EVENT` | t | the perf counters open on QEMU (see `perf::Counters`) |
//! | `net.N.rx.bytes`, `.rx.pkts`, `.rx.errs`, `.rx.drop`, `.tx.bytes`, `.tx.pkts`, `.tx.errs`, `.tx.drop` | t | tap: host sysfs (swapped to the guest's view); user networking: the guest agent's counters, when an agent answers |

use serde_json::Value;

use crate::{
    drivers::{MemoryStat, StatValue, Stats},
    model::{DomainDef, devices::InterfaceType},
};

fn u(v: u64) -> StatValue {
    StatValue::U64(v)
}

/// Nanoseconds per clock tick of `/proc` times.
pub fn tick_ns() -> u64 {
    // SAFETY: sysconf has no side effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        1_000_000_000 / hz as u64
    } else {
        10_000_000
    }
}

/// `cpu.*` from QEMU's `/proc/PID/stat` line.
pub fn cpu(stat: &str, tick: u64, out: &mut Stats) {
    if let Some((user, sys)) = super::process::parse_cpu_ticks(stat) {
        out.push(("cpu.time".into(), u((user + sys) * tick)));
        out.push(("cpu.user".into(), u(user * tick)));
        out.push(("cpu.system".into(), u(sys * tick)));
    }
}

/// `VmRSS` in KiB from `/proc/PID/status`.
pub fn rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// A running guest's memory statistics as libvirt reports them: the balloon's size (QMP
/// `query-balloon`), what the guest's balloon driver last reported (the balloon's QOM
/// `guest-stats`, filled only when a stats period is set; QEMU marks a figure the guest did
/// not give with -1), then QEMU's RSS. Memory in KiB, faults and pages as counts.
pub fn memory(
    balloon: Option<&Value>,
    guest: Option<&Value>,
    rss: Option<u64>,
) -> Vec<(MemoryStat, u64)> {
    let mut out = Vec::new();
    if let Some(actual) = balloon
        .and_then(|b| b.get("actual"))
        .and_then(Value::as_u64)
    {
        out.push((MemoryStat::ActualBalloon, actual / 1024));
    }
    if let Some(g) = guest {
        let stats = g.get("stats");
        // (QEMU's name, libvirt's stat, bytes rather than a count)
        const GUEST: [(&str, MemoryStat, bool); 10] = [
            ("stat-swap-in", MemoryStat::SwapIn, true),
            ("stat-swap-out", MemoryStat::SwapOut, true),
            ("stat-major-faults", MemoryStat::MajorFault, false),
            ("stat-minor-faults", MemoryStat::MinorFault, false),
            ("stat-free-memory", MemoryStat::Unused, true),
            ("stat-total-memory", MemoryStat::Available, true),
            ("stat-available-memory", MemoryStat::Usable, true),
            ("stat-disk-caches", MemoryStat::DiskCaches, true),
            ("stat-htlb-pgalloc", MemoryStat::HugetlbPgalloc, false),
            ("stat-htlb-pgfail", MemoryStat::HugetlbPgfail, false),
        ];
        for (name, stat, bytes) in GUEST {
            // -1 does not fit a u64: skipped with every other figure the guest did not give
            if let Some(v) = stats.and_then(|s| s.get(name)).and_then(Value::as_u64) {
                out.push((stat, if bytes { v / 1024 } else { v }));
            }
        }
        match g.get("last-update").and_then(Value::as_u64) {
            Some(t) if t > 0 => out.push((MemoryStat::LastUpdate, t)),
            _ => {}
        }
    }
    if let Some(rss) = rss {
        out.push((MemoryStat::Rss, rss));
    }
    out
}

/// `vcpu.*`: from `query-cpus-fast` and each thread's stat line (`thread_stat(tid)`).
pub fn vcpus(
    live: &DomainDef,
    cpus: &Value,
    tick: u64,
    thread_stat: &dyn Fn(i64) -> Option<String>,
    out: &mut Stats,
) {
    out.push(("vcpu.current".into(), u(u64::from(live.vcpus()))));
    out.push(("vcpu.maximum".into(), u(u64::from(live.max_vcpus))));
    for c in cpus.as_array().into_iter().flatten() {
        let Some(idx) = c.get("cpu-index").and_then(Value::as_u64) else {
            continue;
        };
        out.push((format!("vcpu.{idx}.state"), StatValue::I64(1)));
        if let Some((user, sys)) = c
            .get("thread-id")
            .and_then(Value::as_i64)
            .and_then(thread_stat)
            .and_then(|s| super::process::parse_cpu_ticks(&s))
        {
            out.push((format!("vcpu.{idx}.time"), u((user + sys) * tick)));
        }
    }
}

/// `balloon.*` from `query-balloon` (`None` when the guest has no balloon).
pub fn balloon(live: &DomainDef, reply: Option<&Value>, rss: Option<u64>, out: &mut Stats) {
    let current = reply
        .and_then(|r| r.get("actual"))
        .and_then(Value::as_u64)
        .map(|b| b / 1024)
        .unwrap_or_else(|| live.current_memory());
    out.push(("balloon.current".into(), u(current)));
    out.push(("balloon.maximum".into(), u(live.memory_kib)));
    if let Some(r) = rss {
        out.push(("balloon.rss".into(), u(r)));
    }
}

/// `block.*` from `query-blockstats`, matched to disks by their format node name.
pub fn blocks(live: &DomainDef, blockstats: &Value, out: &mut Stats) {
    let entries: Vec<&Value> = blockstats
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let disks: Vec<_> = live
        .devices
        .disks
        .iter()
        .filter(|d| d.source.as_ref().is_some_and(|s| s.path.is_some()))
        .collect();
    out.push(("block.count".into(), u(disks.len() as u64)));
    for (i, d) in disks.iter().enumerate() {
        let node = format!("vb-{}", d.target_dev);
        let alias = d.info.alias.clone().unwrap_or_default();
        out.push((
            format!("block.{i}.name"),
            StatValue::Str(d.target_dev.clone()),
        ));
        if let Some(p) = d.source.as_ref().and_then(|s| s.path.clone()) {
            out.push((format!("block.{i}.path"), StatValue::Str(p)));
        }
        let entry = entries.iter().find(|e| {
            e.get("node-name").and_then(Value::as_str) == Some(node.as_str())
                || (!alias.is_empty()
                    && e.get("qdev")
                        .and_then(Value::as_str)
                        .is_some_and(|q| q.split('/').any(|part| part == alias)))
        });
        let Some(s) = entry.and_then(|e| e.get("stats")) else {
            continue;
        };
        for (key, field) in [
            ("rd.reqs", "rd_operations"),
            ("rd.bytes", "rd_bytes"),
            ("rd.times", "rd_total_time_ns"),
            ("wr.reqs", "wr_operations"),
            ("wr.bytes", "wr_bytes"),
            ("wr.times", "wr_total_time_ns"),
            ("fl.reqs", "flush_operations"),
            ("fl.times", "flush_total_time_ns"),
        ] {
            if let Some(v) = s.get(field).and_then(Value::as_u64) {
                out.push((format!("block.{i}.{key}"), u(v)));
            }
        }
    }
}

/// Counters of one interface, from the guest's point of view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetCounters {
    pub rx_bytes: u64,
    pub rx_pkts: u64,
    pub rx_errs: u64,
    pub rx_drop: u64,
    pub tx_bytes: u64,
    pub tx_pkts: u64,
    pub tx_errs: u64,
    pub tx_drop: u64,
}

/// A tap's counters from sysfs, swapped: what the host sends, the guest receives.
pub fn tap_counters(ifname: &str) -> Option<NetCounters> {
    let read = |f: &str| -> Option<u64> {
        std::fs::read_to_string(format!("/sys/class/net/{ifname}/statistics/{f}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    Some(NetCounters {
        rx_bytes: read("tx_bytes")?,
        rx_pkts: read("tx_packets")?,
        rx_errs: read("tx_errors")?,
        rx_drop: read("tx_dropped")?,
        tx_bytes: read("rx_bytes")?,
        tx_pkts: read("rx_packets")?,
        tx_errs: read("rx_errors")?,
        tx_drop: read("rx_dropped")?,
    })
}

/// `net.*`; `counters(i)` gives interface i's counters when known.
pub fn nets(live: &DomainDef, counters: &dyn Fn(usize) -> Option<NetCounters>, out: &mut Stats) {
    let ifaces = &live.devices.interfaces;
    out.push(("net.count".into(), u(ifaces.len() as u64)));
    for (i, n) in ifaces.iter().enumerate() {
        let name = match n.iface_type {
            InterfaceType::Bridge | InterfaceType::Ethernet | InterfaceType::Network => {
                n.target_dev.clone()
            }
            _ => None,
        }
        .or_else(|| n.info.alias.clone())
        .unwrap_or_else(|| format!("net{i}"));
        out.push((format!("net.{i}.name"), StatValue::Str(name)));
        if let Some(c) = counters(i) {
            for (k, v) in [
                ("rx.bytes", c.rx_bytes),
                ("rx.pkts", c.rx_pkts),
                ("rx.errs", c.rx_errs),
                ("rx.drop", c.rx_drop),
                ("tx.bytes", c.tx_bytes),
                ("tx.pkts", c.tx_pkts),
                ("tx.errs", c.tx_errs),
                ("tx.drop", c.tx_drop),
            ] {
                out.push((format!("net.{i}.{k}"), u(v)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn memory_stats_in_kib_and_counts() {
        let balloon = json!({"actual": 268435456u64});
        let guest = json!({"last-update": 1700000000u64, "stats": {
            "stat-swap-in": 0, "stat-swap-out": 4096, "stat-major-faults": 12,
            "stat-minor-faults": 3456, "stat-free-memory": 104857600u64,
            "stat-total-memory": 209715200u64, "stat-available-memory": 157286400u64,
            "stat-disk-caches": 10485760u64, "stat-htlb-pgalloc": -1, "stat-htlb-pgfail": -1}});
        let got = memory(Some(&balloon), Some(&guest), Some(51200));
        assert_eq!(
            got,
            [
                (MemoryStat::ActualBalloon, 262144),
                (MemoryStat::SwapIn, 0),
                (MemoryStat::SwapOut, 4),
                (MemoryStat::MajorFault, 12),
                (MemoryStat::MinorFault, 3456),
                (MemoryStat::Unused, 102400),
                (MemoryStat::Available, 204800),
                (MemoryStat::Usable, 153600),
                (MemoryStat::DiskCaches, 10240),
                (MemoryStat::LastUpdate, 1700000000),
                (MemoryStat::Rss, 51200),
            ]
        );
        // stats not enabled: QEMU answers with no figures and last-update 0
        let none = json!({"last-update": 0, "stats": {"stat-swap-in": -1}});
        assert_eq!(
            memory(Some(&balloon), Some(&none), None),
            [(MemoryStat::ActualBalloon, 262144)]
        );
        assert_eq!(memory(None, None, Some(7)), [(MemoryStat::Rss, 7)]);
    }

    fn def() -> DomainDef {
        DomainDef::from_xml(
            "<domain type='qemu'><name>s</name><memory unit='MiB'>256</memory>\
             <currentMemory unit='MiB'>128</currentMemory><vcpu current='1'>2</vcpu>\
             <os><type>hvm</type></os><devices>\
             <disk type='file'><source file='/i/a.qcow2'/><target dev='vda' bus='virtio'/>\
             <alias name='virtio-disk0'/></disk>\
             <disk type='file' device='cdrom'><target dev='sda' bus='sata'/></disk>\
             <disk type='file'><source file='/i/b.raw'/><target dev='vdb' bus='virtio'/>\
             <alias name='virtio-disk1'/></disk>\
             <interface type='user'><mac address='52:54:00:00:00:01'/><alias name='net0'/></interface>\
             <interface type='ethernet'><mac address='52:54:00:00:00:02'/><target dev='tap9'/></interface>\
             </devices></domain>",
        )
        .expect("def")
    }

    fn get<'a>(s: &'a Stats, k: &str) -> Option<&'a StatValue> {
        s.iter().find(|(n, _)| n == k).map(|(_, v)| v)
    }

    #[test]
    fn cpu_balloon_and_vcpus() {
        let mut s = Stats::new();
        cpu(
            "1 (qemu) S 1 1 1 0 -1 0 0 0 0 0 30 20 0 0 20 0 3 0 500 0 0",
            10_000_000,
            &mut s,
        );
        assert_eq!(get(&s, "cpu.time"), Some(&u(500_000_000)));
        assert_eq!(get(&s, "cpu.user"), Some(&u(300_000_000)));
        balloon(
            &def(),
            Some(&json!({"actual": 134217728u64})),
            Some(9000),
            &mut s,
        );
        assert_eq!(get(&s, "balloon.current"), Some(&u(131072)));
        assert_eq!(get(&s, "balloon.maximum"), Some(&u(262144)));
        assert_eq!(get(&s, "balloon.rss"), Some(&u(9000)));
        let mut s2 = Stats::new();
        balloon(&def(), None, None, &mut s2);
        assert_eq!(
            get(&s2, "balloon.current"),
            Some(&u(131072)),
            "from the definition"
        );
        let cpus =
            json!([{"cpu-index": 0, "thread-id": 77, "qom-path": "/machine/unattached/device[0]"}]);
        vcpus(
            &def(),
            &cpus,
            10,
            &|tid| (tid == 77).then(|| "77 (CPU 0/TCG) R 1 1 1 0 -1 0 0 0 0 0 4 6 0".to_owned()),
            &mut s,
        );
        assert_eq!(get(&s, "vcpu.current"), Some(&u(1)));
        assert_eq!(get(&s, "vcpu.maximum"), Some(&u(2)));
        assert_eq!(get(&s, "vcpu.0.state"), Some(&StatValue::I64(1)));
        assert_eq!(get(&s, "vcpu.0.time"), Some(&u(100)));
        assert_eq!(rss_kib("Name:\tq\nVmRSS:\t  2048 kB\n"), Some(2048));
    }

    #[test]
    fn blockstats_of_qemu_7_2() {
        // the shape QEMU 7.2 returns for -blockdev disks (trimmed)
        let reply = json!([
            {"device": "", "node-name": "vb-vda", "qdev": "/machine/peripheral/virtio-disk0/virtio-backend",
             "stats": {"rd_bytes": 1000, "wr_bytes": 2000, "rd_operations": 3, "wr_operations": 4,
                       "flush_operations": 5, "rd_total_time_ns": 6, "wr_total_time_ns": 7,
                       "flush_total_time_ns": 8}},
            {"device": "", "qdev": "/machine/peripheral/virtio-disk1/virtio-backend",
             "stats": {"rd_bytes": 10, "wr_bytes": 20, "rd_operations": 1, "wr_operations": 2}}
        ]);
        let mut s = Stats::new();
        blocks(&def(), &reply, &mut s);
        assert_eq!(
            get(&s, "block.count"),
            Some(&u(2)),
            "the empty CD-ROM is not counted"
        );
        assert_eq!(get(&s, "block.0.name"), Some(&StatValue::Str("vda".into())));
        assert_eq!(
            get(&s, "block.0.path"),
            Some(&StatValue::Str("/i/a.qcow2".into()))
        );
        assert_eq!(get(&s, "block.0.rd.bytes"), Some(&u(1000)));
        assert_eq!(get(&s, "block.0.wr.reqs"), Some(&u(4)));
        assert_eq!(get(&s, "block.0.fl.times"), Some(&u(8)));
        assert_eq!(get(&s, "block.1.name"), Some(&StatValue::Str("vdb".into())));
        assert_eq!(
            get(&s, "block.1.wr.bytes"),
            Some(&u(20)),
            "matched by qdev alias"
        );
    }

    #[test]
    fn interfaces() {
        let mut s = Stats::new();
        let c = NetCounters {
            rx_bytes: 5,
            tx_bytes: 6,
            ..Default::default()
        };
        nets(&def(), &|i| (i == 0).then_some(c), &mut s);
        assert_eq!(get(&s, "net.count"), Some(&u(2)));
        assert_eq!(get(&s, "net.0.name"), Some(&StatValue::Str("net0".into())));
        assert_eq!(get(&s, "net.0.rx.bytes"), Some(&u(5)));
        assert_eq!(get(&s, "net.0.tx.bytes"), Some(&u(6)));
        assert_eq!(get(&s, "net.1.name"), Some(&StatValue::Str("tap9".into())));
        assert_eq!(get(&s, "net.1.rx.bytes"), None);
        assert!(tap_counters("no-such-if0").is_none());
    }
}
