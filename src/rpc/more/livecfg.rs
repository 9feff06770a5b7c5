//! virsh's `iothreadadd`, `iothreaddel`, `iothreadset` and `perf` over the core's I/O thread
//! and perf event requests: what libvirt checks of the wire arguments alone (flags, the id 0,
//! typed parameter names, types and ranges) is checked here, in its words, for its QEMU and
//! test drivers.

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
    core::{livecfg::check_id, ops},
    drivers::livecfg::{IoThreadChange, IoThreadParams},
    model::perf::PerfEvent,
    rpc::{
        Shared,
        dispatch::{Session, ok},
        error::{RpcError, RpcResult},
        objproto::{TypedParam, TypedValue},
        proto::Dom,
        xdr::{Array, Reader, xdr_struct},
    },
};

/// `REMOTE_DOMAIN_IOTHREAD_PARAMS_MAX`.
const IOTHREAD_PARAMS_MAX: usize = 64;
/// `REMOTE_DOMAIN_PERF_EVENTS_MAX`.
const PERF_EVENTS_MAX: usize = 64;

xdr_struct! {
    IoThreadArgs { dom: Dom, iothread_id: u32, flags: u32 }
    IoThreadParamsArgs {
        dom: Dom,
        iothread_id: u32,
        params: Array<TypedParam, IOTHREAD_PARAMS_MAX>,
        flags: u32,
    }
    PerfArgs { dom: Dom, flags: u32 }
    PerfRet { params: Array<TypedParam, PERF_EVENTS_MAX> }
    SetPerfArgs { dom: Dom, params: Array<TypedParam, PERF_EVENTS_MAX>, flags: u32 }
}

const fn method(api: &'static str, driver_fn: &'static str, flags: &'static [Flag]) -> Method {
    Method {
        api,
        driver_fn,
        flags,
    }
}

const ADD: Method = method("virDomainAddIOThread", "DomainAddIOThread", &[LIVE, CONFIG]);
const DEL: Method = method("virDomainDelIOThread", "DomainDelIOThread", &[LIVE, CONFIG]);
const SET: Method = method(
    "virDomainSetIOThreadParams",
    "DomainSetIOThreadParams",
    &[LIVE, CONFIG],
);
/// libvirt's test driver changes the running guest's values alone.
const SET_TEST: Method = method(
    "virDomainSetIOThreadParams",
    "DomainSetIOThreadParams",
    &[LIVE],
);

const GET_PERF: Method = method(
    "virDomainGetPerfEvents",
    "DomainGetPerfEvents",
    &[LIVE, CONFIG, STRING_OKAY],
);
const SET_PERF: Method = method(
    "virDomainSetPerfEvents",
    "DomainSetPerfEvents",
    &[LIVE, CONFIG],
);

/// The polling values, which both drivers know.
const POLLING: [(&str, Kind); 3] = [
    ("poll_max_ns", Kind::ULLong),
    ("poll_grow", Kind::UInt),
    ("poll_shrink", Kind::UInt),
];
/// The QEMU driver's, besides: the thread pool bounds.
const POOL: [(&str, Kind); 2] = [
    ("thread_pool_min", Kind::Int),
    ("thread_pool_max", Kind::Int),
];

pub(super) async fn call(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    if s.flavor() == Flavor::Lxc {
        return Err(RpcError::no_support(&format!("procedure {p} on lxc:///")));
    }
    let test = s.flavor() == Flavor::Test;
    let bad_id = |e| RpcError::from_core(e, s.flavor(), &ADD);
    match p {
        procs::DOMAIN_ADD_IOTHREAD | procs::DOMAIN_DEL_IOTHREAD => {
            let a: IoThreadArgs = Reader::decode(body)?;
            let add = p == procs::DOMAIN_ADD_IOTHREAD;
            let m = if add { &ADD } else { &DEL };
            s.writable(m)?;
            s.check(m, a.flags)?;
            check_id(a.iothread_id).map_err(bad_id)?;
            let dom = s.domain(&a.dom)?;
            one_definition(s, test, a.flags)?;
            let change = if add {
                IoThreadChange::Add(a.iothread_id)
            } else {
                IoThreadChange::Remove(a.iothread_id)
            };
            let affect = affect(m, a.flags);
            s.run(shared, m, &dom, ops::ChangeIoThread { change, affect })
                .await?;
            ok(())
        }
        procs::DOMAIN_SET_IOTHREAD_PARAMS => {
            let a: IoThreadParamsArgs = Reader::decode(body)?;
            let m = if test { &SET_TEST } else { &SET };
            s.writable(m)?;
            s.check(m, a.flags)?;
            check_id(a.iothread_id).map_err(bad_id)?;
            let dom = s.domain(&a.dom)?;
            let list = a.params.0;
            let known: Vec<(&str, Kind)> = if test {
                POLLING.to_vec()
            } else {
                POLLING.iter().chain(&POOL).copied().collect()
            };
            validate(s, &list, &known)?;
            let params = parse(s, &list)?;
            let affect = affect(m, a.flags);
            s.run(
                shared,
                m,
                &dom,
                ops::ChangeIoThread {
                    change: IoThreadChange::Set(a.iothread_id, params),
                    affect,
                },
            )
            .await?;
            ok(())
        }
        procs::DOMAIN_GET_PERF_EVENTS => {
            let a: PerfArgs = Reader::decode(body)?;
            let m = &GET_PERF;
            s.check(m, a.flags)?;
            let dom = s.domain(&a.dom)?;
            let affect = affect(m, a.flags);
            let events = s
                .run(shared, m, &dom, ops::GetPerfEvents { affect })
                .await?;
            let params = events
                .into_iter()
                .map(|(e, on)| TypedParam {
                    field: e.as_str().to_owned(),
                    value: TypedValue::Boolean(on),
                })
                .collect();
            ok(PerfRet {
                params: Array(params),
            })
        }
        procs::DOMAIN_SET_PERF_EVENTS => {
            let a: SetPerfArgs = Reader::decode(body)?;
            let m = &SET_PERF;
            s.writable(m)?;
            s.check(m, a.flags)?;
            let list = a.params.0;
            let known: Vec<(&str, Kind)> = PerfEvent::ALL
                .iter()
                .map(|e| (e.as_str(), Kind::Boolean))
                .collect();
            validate(s, &list, &known)?;
            let dom = s.domain(&a.dom)?;
            one_definition(s, test, a.flags)?;
            let changes = list
                .iter()
                .filter_map(|prm| {
                    let e = prm.field.parse::<PerfEvent>().ok()?;
                    Some((e, matches!(prm.value, TypedValue::Boolean(true))))
                })
                .collect();
            let affect = affect(m, a.flags);
            s.run(shared, m, &dom, ops::SetPerfEvents { changes, affect })
                .await?;
            ok(())
        }
        _ => Err(RpcError::no_support(&format!("procedure {p}"))),
    }
}

/// libvirt's test driver changes one definition per call (`virDomainObjGetOneDef`).
fn one_definition(s: &Session, test: bool, flags: u32) -> RpcResult<()> {
    if test && flags & 3 == 3 {
        return Err(RpcError::from_compat(
            crate::compat::errors::bare(
                "Flags 'VIR_DOMAIN_AFFECT_LIVE' and 'VIR_DOMAIN_AFFECT_CONFIG' are mutually \
                 exclusive"
                    .into(),
            ),
            s.flavor(),
        ));
    }
    Ok(())
}

/// The values of validated parameters, with libvirt's QEMU driver's range checks.
fn parse(s: &Session, list: &[TypedParam]) -> RpcResult<IoThreadParams> {
    let mut p = IoThreadParams::default();
    let unsupported = |msg: String| s.error(Code::ConfigUnsupported, &msg);
    for prm in list {
        match (prm.field.as_str(), &prm.value) {
            ("poll_max_ns", TypedValue::ULLong(v)) => {
                if *v > i32::MAX as u64 {
                    return Err(unsupported(format!(
                        "poll-max-ns ({v}) must be less than or equal to {}",
                        i32::MAX
                    )));
                }
                p.poll_max_ns = Some(*v);
            }
            ("poll_grow" | "poll_shrink", TypedValue::UInt(v)) => {
                let name = prm.field.replace('_', "-");
                if *v > i32::MAX as u32 {
                    return Err(unsupported(format!(
                        "{name} ({v}) must be less than or equal to {}",
                        i32::MAX
                    )));
                }
                if prm.field == "poll_grow" {
                    p.poll_grow = Some(*v);
                } else {
                    p.poll_shrink = Some(*v);
                }
            }
            ("thread_pool_min", TypedValue::Int(v)) => {
                if *v < -1 {
                    return Err(unsupported(format!(
                        "thread_pool_min ({v}) must be equal to or greater than -1"
                    )));
                }
                p.pool_min = Some(*v);
            }
            ("thread_pool_max", TypedValue::Int(v)) => {
                if *v < -1 || *v == 0 {
                    return Err(unsupported(format!(
                        "thread_pool_max ({v}) must be a positive number or -1"
                    )));
                }
                p.pool_max = Some(*v);
            }
            _ => {}
        }
    }
    Ok(p)
}
