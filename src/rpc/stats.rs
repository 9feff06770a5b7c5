//! What virt-manager and GNOME Boxes poll about domains — statistics of all domains at
//! once, vCPUs, memory, disk and interface counters, addresses — and the older list calls
//! python3-libvirt's `listDomainsID`/`listDefinedDomains` make, over the core's domain
//! requests.

use std::sync::Arc;

use super::{
    Shared,
    dispatch::{Session, int, ok, wire_dom},
    error::{RpcError, RpcResult},
    objects::names,
    objproto::{
        AllDomainStatsArgs, AllDomainStatsRet, BlockStatsRet, ControlInfoRet, DomAutostartArgs,
        DomMemoryStatsArgs, DomMemoryStatsRet, DomPathArgs, DomPathFlagsArgs, DomVcpusArgs,
        DomVcpusRet, DomainIface, DomainStatsRecord, IfaceAddrsArgs, IfaceAddrsRet,
        InterfaceStatsRet, IpAddr, MaxNamesArgs, MemoryStat, NumRet, Opaque, TypedParam,
        TypedParamsRet, TypedValue, VcpuInfo, XmlFlagsArgs, procs,
    },
    proto::{DomainArgs, DomainFlagsArgs, DomainRet, HyperRet, IntRet},
    xdr::{Array, Reader},
};
use crate::{
    compat::{
        connect::list_filter,
        errors::Code,
        flags::{self, Method},
    },
    core::{
        Domain,
        ops::{self, Operation},
        options::{AddressSource, Affect, ListFilter, StartOptions, StatsGroup, VcpuOptions},
    },
    drivers::{StatValue, Stats},
};

pub(super) async fn call(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    use procs as P;
    match p {
        P::NUM_OF_DOMAINS | P::NUM_OF_DEFINED_DOMAINS => {
            Reader::decode::<()>(body)?;
            let active = p == P::NUM_OF_DOMAINS;
            let n = readable(shared, s, active).await.len();
            ok(NumRet {
                num: i32::try_from(n).unwrap_or(i32::MAX),
            })
        }
        P::LIST_DOMAINS => {
            let a: MaxNamesArgs = Reader::decode(body)?;
            let mut ids: Vec<i32> = readable(shared, s, true)
                .await
                .iter()
                .filter_map(|d| d.info().id.map(|i| i as i32))
                .collect();
            ids.truncate(usize::try_from(a.maxnames).unwrap_or(0));
            ok(IdsRet { ids: Array(ids) })
        }
        P::LIST_DEFINED_DOMAINS => {
            let a: MaxNamesArgs = Reader::decode(body)?;
            let v = readable(shared, s, false)
                .await
                .iter()
                .map(|d| d.name())
                .collect();
            names(v, a.maxnames)
        }
        P::DOMAIN_GET_MAX_MEMORY => {
            let a: DomainArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            s.authorize(shared, Operation::ReadDomain, &dom).await?;
            ok(HyperRet {
                value: dom.memory_kib().0,
            })
        }
        P::DOMAIN_GET_MAX_VCPUS => {
            let a: DomainArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let opts = VcpuOptions {
                affect: Affect::default(),
                maximum: true,
            };
            let n = s
                .run(shared, &flags::GET_VCPUS, &dom, ops::GetVcpus { opts })
                .await?;
            ok(IntRet {
                value: i32::try_from(n).unwrap_or(i32::MAX),
            })
        }
        P::DOMAIN_GET_VCPUS_FLAGS => {
            let a: DomainFlagsArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &flags::GET_VCPUS;
            s.check(m, a.flags)?;
            let opts = VcpuOptions {
                affect: Affect {
                    live: m.has(a.flags, "live"),
                    config: m.has(a.flags, "config"),
                },
                maximum: m.has(a.flags, "maximum"),
            };
            let n = s.run(shared, m, &dom, ops::GetVcpus { opts }).await?;
            ok(IntRet {
                value: i32::try_from(n).unwrap_or(i32::MAX),
            })
        }
        P::DOMAIN_GET_VCPUS => {
            let a: DomVcpusArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            vcpus(shared, s, &dom, a.maxinfo, a.maplen).await
        }
        P::DOMAIN_SET_AUTOSTART => {
            let a: DomAutostartArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let req = ops::SetAutostart {
                autostart: a.autostart != 0,
            };
            s.run(shared, &SET_AUTOSTART, &dom, req).await?;
            ok(())
        }
        P::DOMAIN_IS_UPDATED => {
            let a: DomainArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            s.authorize(shared, Operation::ReadDomain, &dom).await?;
            // a live change is written to the definition too, or refused
            int(false)
        }
        P::DOMAIN_GET_CONTROL_INFO => {
            let a: DomainFlagsArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            s.check(&CONTROL_INFO, a.flags)?;
            s.authorize(shared, Operation::ReadDomain, &dom).await?;
            if !dom.info().status.is_active() {
                return Err(s.error(Code::OperationInvalid, "domain is not running"));
            }
            // VIR_DOMAIN_CONTROL_OK: the monitor is not in use by a job of the client's
            ok(ControlInfoRet::default())
        }
        P::DOMAIN_MEMORY_STATS => {
            let a: DomMemoryStatsArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &flags::MEMORY_STATS;
            s.check(m, a.flags)?;
            let stats = s.run(shared, m, &dom, ops::MemoryStats {}).await?;
            let stats = stats
                .into_iter()
                .take(a.max_stats as usize)
                .map(|(k, v)| MemoryStat {
                    tag: k.tag(),
                    val: v,
                })
                .collect();
            ok(DomMemoryStatsRet {
                stats: Array(stats),
            })
        }
        P::DOMAIN_BLOCK_STATS | P::DOMAIN_BLOCK_STATS_FLAGS => {
            let (d, path, nparams, fl) = if p == P::DOMAIN_BLOCK_STATS {
                let a: DomPathArgs = Reader::decode(body)?;
                (a.dom, a.path, None, 0)
            } else {
                let a: DomPathFlagsArgs = Reader::decode(body)?;
                (a.dom, a.path, Some(a.nparams), a.flags)
            };
            let dom = s.domain(&d)?;
            // VIR_TYPED_PARAM_STRING_OKAY is the only flag
            s.check(&BLOCK_STATS, fl & !4)?;
            let stats = group_stats(shared, s, &dom, StatsGroup::Block).await?;
            let i = device_index(s, &stats, "block", &path)?;
            let get = |k: &str| stat_i64(&stats, &format!("block.{i}.{k}"));
            match nparams {
                None => ok(BlockStatsRet {
                    rd_req: get("rd.reqs"),
                    rd_bytes: get("rd.bytes"),
                    wr_req: get("wr.reqs"),
                    wr_bytes: get("wr.bytes"),
                    errs: -1,
                }),
                Some(n) => {
                    let all = [
                        ("rd_operations", "rd.reqs"),
                        ("rd_bytes", "rd.bytes"),
                        ("wr_operations", "wr.reqs"),
                        ("wr_bytes", "wr.bytes"),
                        ("flush_operations", "fl.reqs"),
                        ("rd_total_times", "rd.times"),
                        ("wr_total_times", "wr.times"),
                        ("flush_total_times", "fl.times"),
                    ];
                    let count = i32::try_from(all.len()).unwrap_or(i32::MAX);
                    let params = if n == 0 {
                        Vec::new()
                    } else {
                        all.iter()
                            .take(usize::try_from(n).unwrap_or(0))
                            .map(|(field, key)| TypedParam {
                                field: (*field).into(),
                                value: TypedValue::LLong(get(key)),
                            })
                            .collect()
                    };
                    ok(TypedParamsRet {
                        params: Array(params),
                        nparams: count,
                    })
                }
            }
        }
        P::DOMAIN_INTERFACE_STATS => {
            let a: DomPathArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let stats = group_stats(shared, s, &dom, StatsGroup::Interface).await?;
            let i = device_index(s, &stats, "net", &a.path)?;
            let get = |k: &str| stat_i64(&stats, &format!("net.{i}.{k}"));
            ok(InterfaceStatsRet {
                rx_bytes: get("rx.bytes"),
                rx_packets: get("rx.pkts"),
                rx_errs: get("rx.errs"),
                rx_drop: get("rx.drop"),
                tx_bytes: get("tx.bytes"),
                tx_packets: get("tx.pkts"),
                tx_errs: get("tx.errs"),
                tx_drop: get("tx.drop"),
            })
        }
        P::DOMAIN_INTERFACE_ADDRESSES => {
            let a: IfaceAddrsArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &flags::INTERFACE_ADDRESSES;
            s.check(m, a.flags)?;
            let source = match a.source {
                0 => AddressSource::Lease,
                1 => AddressSource::Agent,
                2 => AddressSource::Arp,
                n => {
                    return Err(s.error(
                        Code::ArgumentUnsupported,
                        &format!("Unknown IP address data source {n}"),
                    ));
                }
            };
            let ifaces = s
                .run(shared, m, &dom, ops::InterfaceAddresses { source })
                .await?;
            let ifaces = ifaces
                .into_iter()
                .map(|i| DomainIface {
                    name: i.name,
                    hwaddr: i.hwaddr,
                    addrs: Array(
                        i.addrs
                            .into_iter()
                            .map(|a| IpAddr {
                                kind: i32::from(a.ipv6),
                                addr: a.addr,
                                prefix: a.prefix,
                            })
                            .collect(),
                    ),
                })
                .collect();
            ok(IfaceAddrsRet {
                ifaces: Array(ifaces),
            })
        }
        P::DOMAIN_CREATE_XML => {
            let a: XmlFlagsArgs = Reader::decode(body)?;
            create_xml(shared, s, &a.xml, a.flags).await
        }
        P::CONNECT_GET_ALL_DOMAIN_STATS => {
            let a: AllDomainStatsArgs = Reader::decode(body)?;
            all_stats(shared, s, a).await
        }
        p => Err(RpcError::no_support(&format!("procedure {p}"))),
    }
}

crate::rpc::xdr::xdr_struct! {
    /// `remote_list_domains_ret`.
    IdsRet { ids: Array<i32, 16384> }
}

/// `virDomainSetAutostart`, which the facade serves as a property.
const SET_AUTOSTART: Method = Method {
    api: "virDomainSetAutostart",
    driver_fn: "DomainSetAutostart",
    flags: &[],
};

const CONTROL_INFO: Method = Method {
    api: "virDomainGetControlInfo",
    driver_fn: "DomainGetControlInfo",
    flags: &[],
};

const BLOCK_STATS: Method = Method {
    api: "virDomainBlockStatsFlags",
    driver_fn: "DomainBlockStatsFlags",
    flags: &[],
};

/// `VIR_CONNECT_GET_ALL_DOMAINS_STATS_ENFORCE_STATS`.
const ENFORCE: u32 = 1 << 31;

/// The domains of the view the caller may read, active or not.
async fn readable(shared: &Shared, s: &Session, active: bool) -> Vec<Arc<Domain>> {
    let filter = ListFilter {
        active,
        inactive: !active,
        domain_types: s.view.types.clone(),
        ..ListFilter::default()
    };
    let mut out = Vec::new();
    for d in s.view.core.list(&filter) {
        if shared.authz.allows_everything()
            || s.authorize(shared, Operation::ReadDomain, &d).await.is_ok()
        {
            out.push(d);
        }
    }
    out
}

async fn group_stats(
    shared: &Shared,
    s: &Session,
    dom: &Arc<Domain>,
    group: StatsGroup,
) -> RpcResult<Stats> {
    s.run(
        shared,
        &flags::DOMAIN_LIST_GET_STATS,
        dom,
        ops::GetStats {
            groups: vec![group],
        },
    )
    .await
}

fn stat(stats: &Stats, key: &str) -> Option<u64> {
    stats
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| match v {
            StatValue::U64(n) => Some(*n),
            StatValue::I64(n) => u64::try_from(*n).ok(),
            StatValue::Str(_) => None,
        })
}

/// A counter, or libvirt's -1 for one the hypervisor does not give.
fn stat_i64(stats: &Stats, key: &str) -> i64 {
    stat(stats, key)
        .and_then(|v| i64::try_from(v).ok())
        .unwrap_or(-1)
}

/// The index of the disk (`block`) or interface (`net`) named `path` (its target or its
/// source), as libvirt matches the path argument of the stats calls.
fn device_index(s: &Session, stats: &Stats, group: &str, path: &str) -> RpcResult<u64> {
    let count = stat(stats, &format!("{group}.count")).unwrap_or(0);
    (0..count)
        .find(|i| {
            [format!("{group}.{i}.name"), format!("{group}.{i}.path")]
                .iter()
                .any(|k| {
                    stats
                        .iter()
                        .any(|(n, v)| n == k && matches!(v, StatValue::Str(x) if x == path))
                })
        })
        .ok_or_else(|| s.error(Code::InvalidArg, &format!("invalid path: {path}")))
}

/// A statistic as a typed parameter, typed as libvirt types it.
fn typed(key: &str, v: &StatValue) -> TypedValue {
    match v {
        StatValue::Str(s) => TypedValue::String(s.clone()),
        StatValue::I64(n) => match key {
            "state.state" | "state.reason" | "dirtyrate.calc_status" | "dirtyrate.calc_period" => {
                TypedValue::Int(*n as i32)
            }
            k if k.starts_with("vcpu.") && k.ends_with(".state") => TypedValue::Int(*n as i32),
            _ => TypedValue::LLong(*n),
        },
        StatValue::U64(n) => match key {
            "vcpu.current" | "vcpu.maximum" | "net.count" | "block.count" | "iothread.count" => {
                TypedValue::UInt(*n as u32)
            }
            k if k.starts_with("iothread.")
                && (k.ends_with(".poll-grow") || k.ends_with(".poll-shrink")) =>
            {
                TypedValue::UInt(*n as u32)
            }
            k if k.starts_with("vcpu.") && k.ends_with(".state") => TypedValue::Int(*n as i32),
            "state.state" | "state.reason" => TypedValue::Int(*n as i32),
            _ => TypedValue::ULLong(*n),
        },
    }
}

fn record(dom: &Domain, stats: &Stats) -> DomainStatsRecord {
    DomainStatsRecord {
        dom: wire_dom(dom),
        params: Array(
            stats
                .iter()
                .map(|(k, v)| TypedParam {
                    field: k.clone(),
                    value: typed(k, v),
                })
                .collect(),
        ),
    }
}

/// `virConnectGetAllDomainStats`, or `virDomainListGetStats` when domains are named.
async fn all_stats(shared: &Shared, s: &Session, a: AllDomainStatsArgs) -> RpcResult<Vec<u8>> {
    let listed = !a.doms.0.is_empty();
    let m = if listed {
        &flags::DOMAIN_LIST_GET_STATS
    } else {
        &flags::GET_ALL_DOMAIN_STATS
    };
    s.check(m, a.flags)?;
    let known = (1u32 << StatsGroup::ALL.len()) - 1;
    let unknown = a.stats & !known;
    if a.flags & ENFORCE != 0 && unknown != 0 {
        return Err(s.error(
            Code::OperationUnsupported,
            &format!("Stats types bits 0x{unknown:x} are not supported by this daemon"),
        ));
    }
    let groups: Vec<StatsGroup> = StatsGroup::ALL
        .iter()
        .enumerate()
        .filter(|(i, _)| a.stats & (1 << i) != 0)
        .map(|(_, g)| *g)
        .collect();
    let doms: Vec<Arc<Domain>> = if listed {
        a.doms
            .0
            .iter()
            .map(|d| s.domain(d))
            .collect::<RpcResult<_>>()?
    } else {
        s.view.core.list(&list_filter(&s.view.types, m, a.flags))
    };
    let mut out = Vec::with_capacity(doms.len());
    for dom in doms {
        let req = ops::GetStats {
            groups: groups.clone(),
        };
        match s.run(shared, m, &dom, req).await {
            Ok(st) => out.push(record(&dom, &st)),
            // a domain named by the caller must be readable; a listed one is skipped
            Err(e) if listed => return Err(e),
            Err(_) => {}
        }
    }
    ok(AllDomainStatsRet { stats: Array(out) })
}

/// `virDomainCreateXML`: a transient domain, started (virt-install's create path).
async fn create_xml(shared: &Shared, s: &Session, xml: &str, fl: u32) -> RpcResult<Vec<u8>> {
    let m = &flags::DOMAIN_CREATE_XML;
    s.check(m, fl)?;
    if s.readonly {
        return Err(RpcError::read_only(&format!(
            "read only access prevents {}",
            m.api
        )));
    }
    let flavor = s.flavor();
    let err = |e| RpcError::from_core(e, flavor, m);
    let (def, owner) = s
        .definition(
            shared,
            m,
            xml,
            &[Operation::DefineDomain, Operation::CreateDomain],
        )
        .await?;
    let core = &s.view.core;
    let opts = StartOptions {
        paused: m.has(fl, "paused"),
        force_boot: false,
    };
    let dom = core.create(def, opts, owner).await.map_err(err)?;
    ok(DomainRet {
        dom: wire_dom(&dom),
    })
}

/// `virDomainGetVcpus`: per vCPU its state, time and host CPU, and the pinning maps.
async fn vcpus(
    shared: &Shared,
    s: &Session,
    dom: &Arc<Domain>,
    maxinfo: i32,
    maplen: i32,
) -> RpcResult<Vec<u8>> {
    if maxinfo < 1 || maplen < 0 {
        return Err(s.error(Code::InvalidArg, "maxinfo must be positive"));
    }
    let stats = s
        .run(
            shared,
            &GET_VCPUS_INFO,
            dom,
            ops::GetStats {
                groups: vec![StatsGroup::Vcpu],
            },
        )
        .await?;
    if !dom.info().status.is_active() {
        return Err(s.error(
            Code::OperationInvalid,
            "cannot list vcpu pinning for an inactive domain",
        ));
    }
    let current = stat(&stats, "vcpu.current").unwrap_or(0);
    let n = current.min(maxinfo as u64);
    let info = (0..n)
        .map(|i| VcpuInfo {
            number: i as u32,
            state: stat(&stats, &format!("vcpu.{i}.state")).unwrap_or(1) as i32,
            cpu_time: stat(&stats, &format!("vcpu.{i}.time")).unwrap_or(0),
            cpu: -1,
        })
        .collect();
    let maplen = maplen as usize;
    let mut maps = Vec::new();
    if maplen > 0 {
        let pins = s
            .run(
                shared,
                &GET_VCPUS_INFO,
                dom,
                ops::GetVcpuPinning {
                    affect: Affect {
                        live: true,
                        config: false,
                    },
                },
            )
            .await?;
        for i in 0..n as usize {
            let mut map = vec![0u8; maplen];
            if let Some(row) = pins.get(i) {
                for (cpu, on) in row.iter().enumerate() {
                    if *on && cpu / 8 < maplen {
                        map[cpu / 8] |= 1 << (cpu % 8);
                    }
                }
            }
            maps.extend(map);
        }
    }
    ok(DomVcpusRet {
        info: Array(info),
        cpumaps: Opaque(maps),
    })
}

const GET_VCPUS_INFO: Method = Method {
    api: "virDomainGetVcpus",
    driver_fn: "DomainGetVcpus",
    flags: &[],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_are_typed_as_libvirt_types_them() {
        assert_eq!(typed("state.state", &StatValue::I64(1)), TypedValue::Int(1));
        assert_eq!(
            typed("block.count", &StatValue::U64(2)),
            TypedValue::UInt(2)
        );
        assert_eq!(typed("cpu.time", &StatValue::U64(7)), TypedValue::ULLong(7));
        assert_eq!(
            typed("block.0.name", &StatValue::Str("vda".into())),
            TypedValue::String("vda".into())
        );
    }

    #[test]
    fn devices_are_found_by_target_or_source() {
        let stats: Stats = vec![
            ("block.count".into(), StatValue::U64(2)),
            ("block.0.name".into(), StatValue::Str("vda".into())),
            ("block.1.name".into(), StatValue::Str("vdb".into())),
            ("block.1.path".into(), StatValue::Str("/d.img".into())),
        ];
        let find = |p: &str| {
            (0..2u64).find(|i| {
                [format!("block.{i}.name"), format!("block.{i}.path")]
                    .iter()
                    .any(|k| {
                        stats
                            .iter()
                            .any(|(n, v)| n == k && matches!(v, StatValue::Str(x) if x == p))
                    })
            })
        };
        assert_eq!(find("vdb"), Some(1));
        assert_eq!(find("/d.img"), Some(1));
        assert_eq!(find("vdz"), None);
        assert_eq!(stat_i64(&stats, "block.0.rd.reqs"), -1);
    }
}
