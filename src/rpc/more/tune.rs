//! Tuning procedures of virsh's `schedinfo`, `memtune`, `cpu-stats`, `vcpupin`,
//! `emulatorpin` and `iothreadinfo`: libvirt's typed parameters (names, types and order as
//! its QEMU and test drivers give them) over the core's tuning requests.

use super::params::{CONFIG, LIVE, STRING_OKAY};
use super::{
    params::{Kind, validate},
    procs,
};
use crate::{
    compat::{
        domain::affect,
        errors::Code,
        flags::{Flag, Flavor, Method},
    },
    core::{
        ops,
        options::Affect,
        tune::{BlkioChange, BlkioField, MemoryChange, NumaChange, PinTarget, SchedulerChange},
    },
    model::{
        blkiotune::BlkioDevice,
        memtune::UNLIMITED_KIB,
        tuning::{IdSet, NumaMode},
    },
    rpc::{
        Shared,
        dispatch::{Session, ok},
        error::{RpcError, RpcResult},
        objproto::{Opaque, TypedParam, TypedValue},
        proto::Dom,
        xdr::{Array, Reader, xdr_struct},
    },
};

const SCHED_MAX: usize = 16;
const MEMORY_MAX: usize = 16;
const CPU_STATS_MAX: usize = 2048;
const IOTHREAD_INFO_MAX: usize = 16384;
/// `REMOTE_NODE_CPU_STATS_MAX` and `REMOTE_DOMAIN_GET_CPU_STATS_NCPUS_MAX`.
const CPU_STATS_NPARAMS_MAX: u32 = 16;
const CPU_STATS_NCPUS_MAX: u32 = 128;

xdr_struct! {
    SchedTypeArgs { dom: Dom }
    SchedTypeRet { kind: String, nparams: i32 }
    GetSchedArgs { dom: Dom, nparams: i32 }
    GetSchedFlagsArgs { dom: Dom, nparams: i32, flags: u32 }
    SchedRet { params: Array<TypedParam, SCHED_MAX> }
    SetSchedArgs { dom: Dom, params: Array<TypedParam, SCHED_MAX> }
    SetSchedFlagsArgs { dom: Dom, params: Array<TypedParam, SCHED_MAX>, flags: u32 }
    SetMemParamsArgs { dom: Dom, params: Array<TypedParam, MEMORY_MAX>, flags: u32 }
    GetMemParamsArgs { dom: Dom, nparams: i32, flags: u32 }
    GetMemParamsRet { params: Array<TypedParam, MEMORY_MAX>, nparams: i32 }
    PinVcpuArgs { dom: Dom, vcpu: u32, cpumap: Opaque }
    PinVcpuFlagsArgs { dom: Dom, vcpu: u32, cpumap: Opaque, flags: u32 }
    PinEmulatorArgs { dom: Dom, cpumap: Opaque, flags: u32 }
    PinIoThreadArgs { dom: Dom, iothreads_id: u32, cpumap: Opaque, flags: u32 }
    EmulatorPinInfoArgs { dom: Dom, maplen: i32, flags: u32 }
    EmulatorPinInfoRet { cpumaps: Opaque, ret: i32 }
    CpuStatsArgs { dom: Dom, nparams: u32, start_cpu: i32, ncpus: u32, flags: u32 }
    CpuStatsRet { params: Array<TypedParam, CPU_STATS_MAX>, nparams: i32 }
    IoThreadInfoArgs { dom: Dom, flags: u32 }
    IoThreadInfo { iothread_id: u32, cpumap: Opaque }
    IoThreadInfoRet { info: Array<IoThreadInfo, IOTHREAD_INFO_MAX>, ret: u32 }
}

const fn method(api: &'static str, driver_fn: &'static str, flags: &'static [Flag]) -> Method {
    Method {
        api,
        driver_fn,
        flags,
    }
}

const GET_SCHED: Method = method(
    "virDomainGetSchedulerParametersFlags",
    "DomainGetSchedulerParametersFlags",
    &[LIVE, CONFIG, STRING_OKAY],
);
/// libvirt's test driver takes no flags here.
const GET_SCHED_TEST: Method = method(
    "virDomainGetSchedulerParametersFlags",
    "DomainGetSchedulerParametersFlags",
    &[],
);
const SET_SCHED: Method = method(
    "virDomainSetSchedulerParametersFlags",
    "DomainSetSchedulerParametersFlags",
    &[LIVE, CONFIG],
);
const SET_SCHED_TEST: Method = method(
    "virDomainSetSchedulerParametersFlags",
    "DomainSetSchedulerParametersFlags",
    &[],
);
const GET_MEM: Method = method(
    "virDomainGetMemoryParameters",
    "DomainGetMemoryParameters",
    &[LIVE, CONFIG, STRING_OKAY],
);
const SET_MEM: Method = method(
    "virDomainSetMemoryParameters",
    "DomainSetMemoryParameters",
    &[LIVE, CONFIG],
);
/// `virDomainNumatuneMemMode`, by its number.
const NUMA_MODES: [NumaMode; 4] = [
    NumaMode::Strict,
    NumaMode::Preferred,
    NumaMode::Interleave,
    NumaMode::Restrictive,
];

const GET_NUMA: Method = method(
    "virDomainGetNumaParameters",
    "DomainGetNumaParameters",
    &[LIVE, CONFIG, STRING_OKAY],
);
const SET_NUMA: Method = method(
    "virDomainSetNumaParameters",
    "DomainSetNumaParameters",
    &[LIVE, CONFIG],
);
const GET_BLKIO: Method = method(
    "virDomainGetBlkioParameters",
    "DomainGetBlkioParameters",
    &[LIVE, CONFIG, STRING_OKAY],
);
const SET_BLKIO: Method = method(
    "virDomainSetBlkioParameters",
    "DomainSetBlkioParameters",
    &[LIVE, CONFIG],
);
const PIN_VCPU: Method = method(
    "virDomainPinVcpuFlags",
    "DomainPinVcpuFlags",
    &[LIVE, CONFIG],
);
const PIN_VCPU_TEST: Method = method("virDomainPinVcpuFlags", "DomainPinVcpuFlags", &[]);
const PIN_EMULATOR: Method = method("virDomainPinEmulator", "DomainPinEmulator", &[LIVE, CONFIG]);
const PIN_IOTHREAD: Method = method("virDomainPinIOThread", "DomainPinIOThread", &[LIVE, CONFIG]);
const EMULATOR_PIN_INFO: Method = method(
    "virDomainGetEmulatorPinInfo",
    "DomainGetEmulatorPinInfo",
    &[LIVE, CONFIG],
);
const CPU_STATS: Method = method("virDomainGetCPUStats", "DomainGetCPUStats", &[STRING_OKAY]);
const IOTHREAD_INFO: Method = method(
    "virDomainGetIOThreadInfo",
    "DomainGetIOThreadInfo",
    &[LIVE, CONFIG],
);

/// The libvirt API virsh reaches through procedure `p`, named in the `VIR_ERR_NO_SUPPORT`
/// that `lxc:///` answers (virtbus tunes no running container).
fn lxc_unsupported_api(p: i32) -> &'static str {
    match p {
        procs::DOMAIN_GET_SCHEDULER_TYPE => "virDomainGetSchedulerType",
        procs::DOMAIN_GET_SCHEDULER_PARAMETERS => "virDomainGetSchedulerParameters",
        procs::DOMAIN_GET_SCHEDULER_PARAMETERS_FLAGS => "virDomainGetSchedulerParametersFlags",
        procs::DOMAIN_SET_SCHEDULER_PARAMETERS => "virDomainSetSchedulerParameters",
        procs::DOMAIN_SET_SCHEDULER_PARAMETERS_FLAGS => "virDomainSetSchedulerParametersFlags",
        procs::DOMAIN_GET_MEMORY_PARAMETERS => "virDomainGetMemoryParameters",
        procs::DOMAIN_SET_MEMORY_PARAMETERS => "virDomainSetMemoryParameters",
        procs::DOMAIN_PIN_VCPU => "virDomainPinVcpu",
        procs::DOMAIN_PIN_VCPU_FLAGS => PIN_VCPU.api,
        procs::DOMAIN_PIN_EMULATOR => PIN_EMULATOR.api,
        procs::DOMAIN_PIN_IOTHREAD => PIN_IOTHREAD.api,
        procs::DOMAIN_GET_EMULATOR_PIN_INFO => EMULATOR_PIN_INFO.api,
        procs::DOMAIN_GET_IOTHREAD_INFO => IOTHREAD_INFO.api,
        procs::DOMAIN_GET_CPU_STATS => CPU_STATS.api,
        procs::DOMAIN_GET_NUMA_PARAMETERS => "virDomainGetNumaParameters",
        procs::DOMAIN_SET_NUMA_PARAMETERS => "virDomainSetNumaParameters",
        procs::DOMAIN_GET_BLKIO_PARAMETERS => "virDomainGetBlkioParameters",
        procs::DOMAIN_SET_BLKIO_PARAMETERS => "virDomainSetBlkioParameters",
        _ => "this procedure",
    }
}

/// libvirt's "current" when no flag is given.
const CURRENT: Affect = Affect {
    live: false,
    config: false,
};

pub(super) async fn call(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    if s.flavor() == Flavor::Lxc {
        return Err(RpcError::no_support(lxc_unsupported_api(p)));
    }
    let test = s.flavor() == Flavor::Test;
    match p {
        procs::DOMAIN_GET_SCHEDULER_TYPE => {
            let a: SchedTypeArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            if test {
                s.authorize(shared, ops::Operation::ReadTunables, &dom)
                    .await?;
                return ok(SchedTypeRet {
                    kind: "fair".into(),
                    nparams: 1,
                });
            }
            if dom.info().status.state.is_active() {
                // a running guest: its cgroup must offer the cpu controller
                let affect = Affect {
                    live: true,
                    config: false,
                };
                s.run(shared, &GET_SCHED, &dom, ops::GetTunables { affect })
                    .await?;
            } else {
                s.authorize(shared, ops::Operation::ReadTunables, &dom)
                    .await?;
            }
            ok(SchedTypeRet {
                kind: "posix".into(),
                nparams: 9,
            })
        }
        procs::DOMAIN_GET_SCHEDULER_PARAMETERS | procs::DOMAIN_GET_SCHEDULER_PARAMETERS_FLAGS => {
            let (d, n, fl) = if p == procs::DOMAIN_GET_SCHEDULER_PARAMETERS {
                let a: GetSchedArgs = Reader::decode(body)?;
                (a.dom, a.nparams, 0)
            } else {
                let a: GetSchedFlagsArgs = Reader::decode(body)?;
                (a.dom, a.nparams, a.flags)
            };
            let n = nparams(n, SCHED_MAX)?;
            let dom = s.domain(&d)?;
            if test {
                s.check(&GET_SCHED_TEST, fl)?;
                s.authorize(shared, ops::Operation::ReadTunables, &dom)
                    .await?;
                let weight = TypedParam {
                    field: "weight".into(),
                    value: TypedValue::UInt(50),
                };
                return ok(SchedRet {
                    params: Array(vec![weight]),
                });
            }
            let m = &GET_SCHED;
            s.check(m, fl)?;
            let affect = affect(m, fl);
            let t = s.run(shared, m, &dom, ops::GetTunables { affect }).await?;
            let c = t.cputune;
            let u = |v: Option<u64>| TypedValue::ULLong(v.unwrap_or(0));
            let l = |v: Option<i64>| TypedValue::LLong(v.unwrap_or(0));
            let all = [
                ("cpu_shares", u(c.shares)),
                ("vcpu_period", u(c.period)),
                ("vcpu_quota", l(c.quota)),
                ("emulator_period", u(c.emulator_period)),
                ("emulator_quota", l(c.emulator_quota)),
                ("global_period", u(c.global_period)),
                ("global_quota", l(c.global_quota)),
                ("iothread_period", u(c.iothread_period)),
                ("iothread_quota", l(c.iothread_quota)),
            ];
            ok(SchedRet {
                params: Array(params(all, n)),
            })
        }
        procs::DOMAIN_SET_SCHEDULER_PARAMETERS | procs::DOMAIN_SET_SCHEDULER_PARAMETERS_FLAGS => {
            let (d, list, fl) = if p == procs::DOMAIN_SET_SCHEDULER_PARAMETERS {
                let a: SetSchedArgs = Reader::decode(body)?;
                (a.dom, a.params.0, 0)
            } else {
                let a: SetSchedFlagsArgs = Reader::decode(body)?;
                (a.dom, a.params.0, a.flags)
            };
            let dom = s.domain(&d)?;
            if test {
                let m = &SET_SCHED_TEST;
                s.writable(m)?;
                s.check(m, fl)?;
                validate(s, &list, &[("weight", Kind::UInt)])?;
                // libvirt's test driver accepts the weight and keeps nothing
                s.authorize(shared, ops::Operation::SetTunables, &dom)
                    .await?;
                return ok(());
            }
            let m = &SET_SCHED;
            s.check(m, fl)?;
            validate(
                s,
                &list,
                &[
                    ("cpu_shares", Kind::ULLong),
                    ("vcpu_period", Kind::ULLong),
                    ("vcpu_quota", Kind::LLong),
                    ("global_period", Kind::ULLong),
                    ("global_quota", Kind::LLong),
                    ("emulator_period", Kind::ULLong),
                    ("emulator_quota", Kind::LLong),
                    ("iothread_period", Kind::ULLong),
                    ("iothread_quota", Kind::LLong),
                ],
            )?;
            let mut change = SchedulerChange::default();
            for prm in &list {
                let (ul, ll) = match prm.value {
                    TypedValue::ULLong(v) => (Some(v), None),
                    TypedValue::LLong(v) => (None, Some(v)),
                    _ => (None, None),
                };
                match prm.field.as_str() {
                    "cpu_shares" => change.shares = ul,
                    "vcpu_period" => change.vcpu.0 = ul,
                    "vcpu_quota" => change.vcpu.1 = ll,
                    "emulator_period" => change.emulator.0 = ul,
                    "emulator_quota" => change.emulator.1 = ll,
                    "global_period" => change.global.0 = ul,
                    "global_quota" => change.global.1 = ll,
                    "iothread_period" => change.iothread.0 = ul,
                    _ => change.iothread.1 = ll,
                }
            }
            let affect = if p == procs::DOMAIN_SET_SCHEDULER_PARAMETERS {
                CURRENT
            } else {
                affect(m, fl)
            };
            s.run(shared, m, &dom, ops::SetScheduler { change, affect })
                .await?;
            ok(())
        }
        procs::DOMAIN_GET_MEMORY_PARAMETERS => {
            let a: GetMemParamsArgs = Reader::decode(body)?;
            let n = nparams(a.nparams, MEMORY_MAX)?;
            let dom = s.domain(&a.dom)?;
            let m = &GET_MEM;
            s.check(m, a.flags)?;
            let affect = affect(m, a.flags);
            if n == 0 {
                s.authorize(shared, ops::Operation::ReadTunables, &dom)
                    .await?;
                return ok(GetMemParamsRet {
                    params: Array(Vec::new()),
                    nparams: 3,
                });
            }
            let t = s.run(shared, m, &dom, ops::GetTunables { affect }).await?;
            let kib = |v: Option<u64>| TypedValue::ULLong(v.unwrap_or(UNLIMITED_KIB));
            let mt = t.memtune;
            let all = [
                ("hard_limit", kib(mt.hard_limit_kib)),
                ("soft_limit", kib(mt.soft_limit_kib)),
                ("swap_hard_limit", kib(mt.swap_hard_limit_kib)),
            ];
            let list = params(all, n);
            let count = i32::try_from(list.len()).unwrap_or(0);
            ok(GetMemParamsRet {
                params: Array(list),
                nparams: count,
            })
        }
        procs::DOMAIN_SET_MEMORY_PARAMETERS => {
            let a: SetMemParamsArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &SET_MEM;
            s.check(m, a.flags)?;
            let names = [
                ("hard_limit", Kind::ULLong),
                ("soft_limit", Kind::ULLong),
                ("swap_hard_limit", Kind::ULLong),
            ];
            validate(s, &a.params.0, &names)?;
            let mut change = MemoryChange::default();
            for prm in &a.params.0 {
                let TypedValue::ULLong(v) = prm.value else {
                    continue;
                };
                // libvirt's "unlimited" (and anything above it) is no limit
                let v = Some(v).filter(|v| *v < UNLIMITED_KIB);
                match prm.field.as_str() {
                    "hard_limit" => change.hard = Some(v),
                    "soft_limit" => change.soft = Some(v),
                    _ => change.swap = Some(v),
                }
            }
            let affect = affect(m, a.flags);
            s.run(shared, m, &dom, ops::SetMemoryLimits { change, affect })
                .await?;
            ok(())
        }
        procs::DOMAIN_PIN_VCPU | procs::DOMAIN_PIN_VCPU_FLAGS => {
            let (d, vcpu, map, fl) = if p == procs::DOMAIN_PIN_VCPU {
                let a: PinVcpuArgs = Reader::decode(body)?;
                (a.dom, a.vcpu, a.cpumap.0, None)
            } else {
                let a: PinVcpuFlagsArgs = Reader::decode(body)?;
                (a.dom, a.vcpu, a.cpumap.0, Some(a.flags))
            };
            let dom = s.domain(&d)?;
            let m = if test { &PIN_VCPU_TEST } else { &PIN_VCPU };
            s.writable(m)?;
            let affect = match fl {
                // virDomainPinVcpu: the running guest's
                None => Affect {
                    live: true,
                    config: false,
                },
                Some(fl) => {
                    s.check(m, fl)?;
                    if test {
                        Affect {
                            live: true,
                            config: false,
                        }
                    } else {
                        affect(m, fl)
                    }
                }
            };
            if test && !dom.info().status.state.is_active() {
                return Err(s.error(
                    Code::OperationInvalid,
                    "cannot pin vcpus on an inactive domain",
                ));
            }
            let req = ops::PinCpus {
                target: PinTarget::Vcpu(vcpu),
                cpus: cpus_of(&map),
                affect,
            };
            s.run(shared, m, &dom, req).await?;
            ok(())
        }
        procs::DOMAIN_PIN_EMULATOR => {
            let a: PinEmulatorArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &PIN_EMULATOR;
            s.writable(m)?;
            s.check(m, a.flags)?;
            let req = ops::PinCpus {
                target: PinTarget::Emulator,
                cpus: cpus_of(&a.cpumap.0),
                affect: affect(m, a.flags),
            };
            s.run(shared, m, &dom, req).await?;
            ok(())
        }
        procs::DOMAIN_PIN_IOTHREAD => {
            let a: PinIoThreadArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &PIN_IOTHREAD;
            s.writable(m)?;
            s.check(m, a.flags)?;
            let req = ops::PinCpus {
                target: PinTarget::IoThread(a.iothreads_id),
                cpus: cpus_of(&a.cpumap.0),
                affect: affect(m, a.flags),
            };
            s.run(shared, m, &dom, req).await?;
            ok(())
        }
        procs::DOMAIN_GET_EMULATOR_PIN_INFO => {
            let a: EmulatorPinInfoArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &EMULATOR_PIN_INFO;
            s.check(m, a.flags)?;
            let Ok(maplen) = usize::try_from(a.maplen) else {
                return Err(RpcError::rpc("maplen must be positive".into()));
            };
            let affect = affect(m, a.flags);
            let mut row = s
                .run(shared, m, &dom, ops::GetEmulatorPin { affect })
                .await?;
            if test {
                test_host(&mut row);
            }
            ok(EmulatorPinInfoRet {
                cpumaps: Opaque(map_of(&row, maplen)),
                ret: 1,
            })
        }
        procs::DOMAIN_GET_IOTHREAD_INFO => {
            let a: IoThreadInfoArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &IOTHREAD_INFO;
            s.check(m, a.flags)?;
            let affect = affect(m, a.flags);
            let rows = s
                .run(shared, m, &dom, ops::GetIoThreadPins { affect })
                .await?;
            // libvirt's test driver maps an unpinned I/O thread onto the domain's vCPU
            // count (`virDomainDefGetVcpus`), not onto host CPUs
            let vcpus = dom.info().vcpus as usize;
            let info: Vec<IoThreadInfo> = rows
                .into_iter()
                .map(|(id, mut row)| {
                    if test && row.iter().all(|b| *b) {
                        row = vec![true; vcpus];
                    } else if test {
                        test_host(&mut row);
                    }
                    let len = row.len().div_ceil(8);
                    IoThreadInfo {
                        iothread_id: id,
                        cpumap: Opaque(map_of(&row, len)),
                    }
                })
                .collect();
            let n = u32::try_from(info.len()).unwrap_or(0);
            ok(IoThreadInfoRet {
                info: Array(info),
                ret: n,
            })
        }
        procs::DOMAIN_GET_CPU_STATS => cpu_stats(shared, s, body).await,
        procs::DOMAIN_GET_NUMA_PARAMETERS => {
            let a: GetMemParamsArgs = Reader::decode(body)?;
            let n = nparams(a.nparams, MEMORY_MAX)?;
            let dom = s.domain(&a.dom)?;
            let m = &GET_NUMA;
            s.check(m, a.flags)?;
            if n == 0 {
                s.authorize(shared, ops::Operation::ReadTunables, &dom)
                    .await?;
                return ok(GetMemParamsRet {
                    params: Array(Vec::new()),
                    nparams: 2,
                });
            }
            let affect = affect(m, a.flags);
            let (mode, nodeset) = s.run(shared, m, &dom, ops::GetNuma { affect }).await?;
            let code = NUMA_MODES.iter().position(|x| *x == mode).unwrap_or(0);
            let all = [
                (
                    "numa_mode",
                    TypedValue::Int(i32::try_from(code).unwrap_or(0)),
                ),
                (
                    "numa_nodeset",
                    TypedValue::String(nodeset.map(|n| n.to_string()).unwrap_or_default()),
                ),
            ];
            let list = params(all, n);
            let count = i32::try_from(list.len()).unwrap_or(0);
            ok(GetMemParamsRet {
                params: Array(list),
                nparams: count,
            })
        }
        procs::DOMAIN_SET_NUMA_PARAMETERS => {
            let a: SetMemParamsArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &SET_NUMA;
            s.check(m, a.flags)?;
            let names = [("numa_mode", Kind::Int), ("numa_nodeset", Kind::Str)];
            validate(s, &a.params.0, &names)?;
            let mut change = NumaChange::default();
            for prm in &a.params.0 {
                match &prm.value {
                    TypedValue::Int(i) => {
                        let mode = usize::try_from(*i).ok().and_then(|i| NUMA_MODES.get(i));
                        let Some(mode) = mode else {
                            return Err(s.error(
                                Code::InvalidArg,
                                &format!("unsupported numatune mode: '{i}'"),
                            ));
                        };
                        change.mode = Some(*mode);
                    }
                    TypedValue::String(v) => {
                        let set = IdSet::parse(v).map_err(|_| {
                            s.error(Code::InvalidArg, &format!("Failed to parse bitmap '{v}'"))
                        })?;
                        if set.iter().next().is_none() {
                            return Err(s.error(
                                Code::OperationInvalid,
                                &format!("Invalid nodeset of 'numatune': {v}"),
                            ));
                        }
                        change.nodeset = Some(set);
                    }
                    _ => {}
                }
            }
            let affect = affect(m, a.flags);
            s.run(shared, m, &dom, ops::SetNuma { change, affect })
                .await?;
            ok(())
        }
        procs::DOMAIN_GET_BLKIO_PARAMETERS => {
            let a: GetMemParamsArgs = Reader::decode(body)?;
            let n = nparams(a.nparams, MEMORY_MAX)?;
            let dom = s.domain(&a.dom)?;
            let m = &GET_BLKIO;
            s.check(m, a.flags)?;
            if n == 0 {
                s.authorize(shared, ops::Operation::ReadTunables, &dom)
                    .await?;
                return ok(GetMemParamsRet {
                    params: Array(Vec::new()),
                    nparams: 6,
                });
            }
            let affect = affect(m, a.flags);
            let t = s.run(shared, m, &dom, ops::GetBlkio { affect }).await?;
            let list = |f: &dyn Fn(&BlkioDevice) -> u64| {
                let v: Vec<String> = t
                    .devices
                    .iter()
                    .filter(|d| f(d) != 0)
                    .map(|d| format!("{},{}", d.path, f(d)))
                    .collect();
                TypedValue::String(v.join(","))
            };
            let all = [
                ("weight", TypedValue::UInt(t.weight)),
                ("device_weight", list(&|d| u64::from(d.weight))),
                ("device_read_iops_sec", list(&|d| u64::from(d.read_iops))),
                ("device_write_iops_sec", list(&|d| u64::from(d.write_iops))),
                ("device_read_bytes_sec", list(&|d| d.read_bytes)),
                ("device_write_bytes_sec", list(&|d| d.write_bytes)),
            ];
            let list = params(all, n);
            let count = i32::try_from(list.len()).unwrap_or(0);
            ok(GetMemParamsRet {
                params: Array(list),
                nparams: count,
            })
        }
        procs::DOMAIN_SET_BLKIO_PARAMETERS => {
            let a: SetMemParamsArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &SET_BLKIO;
            s.check(m, a.flags)?;
            let names = [
                ("weight", Kind::UInt),
                ("device_weight", Kind::Str),
                ("device_read_iops_sec", Kind::Str),
                ("device_write_iops_sec", Kind::Str),
                ("device_read_bytes_sec", Kind::Str),
                ("device_write_bytes_sec", Kind::Str),
            ];
            validate(s, &a.params.0, &names)?;
            let mut change = BlkioChange::default();
            for prm in &a.params.0 {
                match (&prm.value, prm.field.as_str()) {
                    (TypedValue::UInt(w), _) => change.weight = Some(*w),
                    (TypedValue::String(v), f) => {
                        let field = match f {
                            "device_weight" => BlkioField::Weight,
                            "device_read_iops_sec" => BlkioField::ReadIops,
                            "device_write_iops_sec" => BlkioField::WriteIops,
                            "device_read_bytes_sec" => BlkioField::ReadBytes,
                            _ => BlkioField::WriteBytes,
                        };
                        let wide = matches!(field, BlkioField::ReadBytes | BlkioField::WriteBytes);
                        change.devices.push((field, blkio_devices(s, f, v, wide)?));
                    }
                    _ => {}
                }
            }
            let affect = affect(m, a.flags);
            s.run(shared, m, &dom, ops::SetBlkio { change, affect })
                .await?;
            ok(())
        }
        p => Err(RpcError::no_support(&format!("procedure {p}"))),
    }
}

/// `virDomainGetCPUStats`: with no parameters asked, the count of CPUs (`ncpus` 0) or of
/// parameters; else per CPU `cpu_time` and `vcpu_time` from `start_cpu`, or (`start_cpu`
/// -1) the totals `cpu_time`, `user_time`, `system_time`.
async fn cpu_stats(shared: &Shared, s: &Session, body: &[u8]) -> RpcResult<Vec<u8>> {
    let a: CpuStatsArgs = Reader::decode(body)?;
    if a.nparams > CPU_STATS_NPARAMS_MAX {
        return Err(s.error(Code::Internal, "nparams too large"));
    }
    if a.ncpus > CPU_STATS_NCPUS_MAX {
        return Err(s.error(Code::Internal, "ncpus too large"));
    }
    let dom = s.domain(&a.dom)?;
    let m = &CPU_STATS;
    s.check(m, a.flags)?;
    let st = s.run(shared, m, &dom, ops::GetCpuStats {}).await?;
    let want = a.nparams as usize;
    let reply = |params: Vec<TypedParam>, nparams: usize| {
        ok(CpuStatsRet {
            params: Array(params),
            nparams: i32::try_from(nparams).unwrap_or(0),
        })
    };
    if a.start_cpu == -1 {
        if want == 0 {
            return reply(Vec::new(), 3);
        }
        let all = [
            ("cpu_time", TypedValue::ULLong(st.total)),
            ("user_time", TypedValue::ULLong(st.user)),
            ("system_time", TypedValue::ULLong(st.system)),
        ];
        let list = params(all, want);
        let n = list.len();
        return reply(list, n);
    }
    let total = st.per_cpu.len();
    if total == 0 {
        return Err(s.error(
            Code::OperationInvalid,
            "per-CPU time needs the cgroup v1 cpuacct controller, which this host lacks",
        ));
    }
    if a.ncpus == 0 {
        return reply(Vec::new(), total);
    }
    if want == 0 {
        return reply(Vec::new(), 2);
    }
    let Ok(start) = usize::try_from(a.start_cpu) else {
        return Err(s.error(Code::InvalidArg, "start_cpu must be -1 or at least 0"));
    };
    if start >= total {
        return Err(s.error(
            Code::InvalidArg,
            &format!(
                "start_cpu {start} larger than maximum of {}",
                total.saturating_sub(1)
            ),
        ));
    }
    let per = want.min(2);
    let end = total.min(start + a.ncpus as usize);
    let mut list = Vec::new();
    for (cpu, vcpu) in &st.per_cpu[start..end] {
        let both = [
            ("cpu_time", TypedValue::ULLong(*cpu)),
            ("vcpu_time", TypedValue::ULLong(*vcpu)),
        ];
        list.extend(params(both, per));
    }
    reply(list, per)
}

/// The first `n` of `all`.
fn params<const N: usize>(all: [(&str, TypedValue); N], n: usize) -> Vec<TypedParam> {
    all.into_iter()
        .take(n)
        .map(|(f, value)| TypedParam {
            field: f.into(),
            value,
        })
        .collect()
}

fn nparams(n: i32, max: usize) -> RpcResult<usize> {
    let n = usize::try_from(n).map_err(|_| RpcError::rpc("nparams must be non-negative".into()))?;
    if n > max {
        return Err(RpcError::rpc("nparams too large".into()));
    }
    Ok(n)
}

/// `path,value[,path,value...]` of a per-device blkio parameter, as libvirt parses it.
fn blkio_devices(s: &Session, field: &str, v: &str, wide: bool) -> RpcResult<Vec<(String, u64)>> {
    if v.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<&str> = v.split(',').collect();
    if !parts.len().is_multiple_of(2) {
        return Err(s.error(
            Code::InvalidArg,
            &format!("unable to parse blkio device '{field}' '{v}'"),
        ));
    }
    parts
        .chunks(2)
        .map(|c| {
            let n = if wide {
                c[1].parse::<u64>().ok()
            } else {
                c[1].parse::<u32>().ok().map(u64::from)
            };
            n.map(|n| (c[0].to_owned(), n)).ok_or_else(|| {
                s.error(
                    Code::InvalidArg,
                    &format!(
                        "invalid value '{}' for parameter '{field}' of device '{}'",
                        c[1], c[0]
                    ),
                )
            })
        })
        .collect()
}

/// The host CPUs a libvirt CPU map sets.
fn cpus_of(map: &[u8]) -> IdSet {
    IdSet::from_ids(map.iter().enumerate().flat_map(|(i, b)| {
        (0..8)
            .filter(move |k| b & (1 << k) != 0)
            .map(move |k| i as u32 * 8 + k)
    }))
}

/// `row` on `test:///default`'s 8 host CPUs, whatever the real host has: unpinned is all.
fn test_host(row: &mut Vec<bool>) {
    let all = row.iter().all(|b| *b);
    row.resize(super::domain::TEST_HOST_CPUS, all);
}

/// A CPU map of `maplen` bytes.
fn map_of(row: &[bool], maplen: usize) -> Vec<u8> {
    let mut map = vec![0u8; maplen];
    for (cpu, on) in row.iter().enumerate().take(maplen * 8) {
        if *on {
            map[cpu / 8] |= 1 << (cpu % 8);
        }
    }
    map
}
