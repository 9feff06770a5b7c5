//! virsh's `domiftune`: an interface's `<bandwidth>` as libvirt's typed parameters
//! (`inbound.average` … `outbound.burst`, uint, in its order), over the core's interface
//! bandwidth requests.

use super::params::{CONFIG, LIVE, STRING_OKAY};
use super::{
    params::{Kind, validate},
    procs,
};
use crate::{
    compat::{
        domain::affect,
        flags::{Flavor, Method},
    },
    core::{iftune::BandwidthChange, ops},
    rpc::{
        Shared,
        dispatch::{Session, ok},
        error::{RpcError, RpcResult},
        objproto::{TypedParam, TypedValue},
        proto::Dom,
        xdr::{Array, Reader, xdr_struct},
    },
};

/// `REMOTE_DOMAIN_INTERFACE_PARAMETERS_MAX`.
const MAX: usize = 16;

xdr_struct! {
    SetArgs { dom: Dom, device: String, params: Array<TypedParam, MAX>, flags: u32 }
    GetArgs { dom: Dom, device: String, nparams: i32, flags: u32 }
    GetRet { params: Array<TypedParam, MAX>, nparams: i32 }
}

const SET: Method = Method {
    api: "virDomainSetInterfaceParameters",
    driver_fn: "DomainSetInterfaceParameters",
    flags: &[LIVE, CONFIG],
};
const GET: Method = Method {
    api: "virDomainGetInterfaceParameters",
    driver_fn: "DomainGetInterfaceParameters",
    flags: &[LIVE, CONFIG, STRING_OKAY],
};

/// libvirt's names, in the order its drivers answer them.
const NAMES: [&str; 7] = [
    "inbound.average",
    "inbound.peak",
    "inbound.burst",
    "inbound.floor",
    "outbound.average",
    "outbound.peak",
    "outbound.burst",
];

pub(super) async fn call(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    if s.flavor() == Flavor::Lxc {
        // libvirt's LXC driver has no interface tuning
        return Err(RpcError::no_support(&format!("procedure {p} on lxc:///")));
    }
    match p {
        procs::DOMAIN_SET_INTERFACE_PARAMETERS => {
            let a: SetArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            s.writable(&SET)?;
            s.check(&SET, a.flags)?;
            let known: Vec<(&str, Kind)> = NAMES.iter().map(|n| (*n, Kind::UInt)).collect();
            validate(s, &a.params.0, &known)?;
            let mut c = BandwidthChange::default();
            for prm in &a.params.0 {
                let TypedValue::UInt(v) = prm.value else {
                    continue;
                };
                let v = u64::from(v);
                match prm.field.as_str() {
                    "inbound.average" => {
                        c.inbound.average = v;
                        c.inbound_specified = true;
                    }
                    "inbound.peak" => c.inbound.peak = v,
                    "inbound.burst" => c.inbound.burst = v,
                    "inbound.floor" => {
                        c.inbound.floor = v;
                        c.inbound_specified = true;
                    }
                    "outbound.average" => {
                        c.outbound.average = v;
                        c.outbound_specified = true;
                    }
                    "outbound.peak" => c.outbound.peak = v,
                    _ => c.outbound.burst = v,
                }
            }
            let req = ops::SetInterfaceBandwidth {
                device: a.device,
                change: c,
                affect: affect(&SET, a.flags),
            };
            s.run(shared, &SET, &dom, req).await?;
            ok(())
        }
        _ => {
            let a: GetArgs = Reader::decode(body)?;
            let n = usize::try_from(a.nparams)
                .map_err(|_| RpcError::rpc("nparams must be non-negative".into()))?;
            if n > MAX {
                return Err(RpcError::rpc("nparams too large".into()));
            }
            let dom = s.domain(&a.dom)?;
            s.check(&GET, a.flags)?;
            let req = ops::GetInterfaceBandwidth {
                device: a.device,
                affect: affect(&GET, a.flags),
            };
            if n == 0 {
                // a count asked first, as virsh does: libvirt's drivers answer it before
                // looking the interface up
                s.authorize(shared, ops::Operation::ReadTunables, &dom)
                    .await?;
                return ok(GetRet {
                    params: Array(Vec::new()),
                    nparams: NAMES.len() as i32,
                });
            }
            let bw = s.run(shared, &GET, &dom, req).await?;
            let b = bw.unwrap_or_default();
            let (i, o) = (
                b.inbound.unwrap_or_default(),
                b.outbound.unwrap_or_default(),
            );
            let values = [
                i.average, i.peak, i.burst, i.floor, o.average, o.peak, o.burst,
            ];
            let list: Vec<TypedParam> = NAMES
                .iter()
                .zip(values)
                .take(n)
                .map(|(f, v)| TypedParam {
                    field: (*f).into(),
                    // the API's values are uint: larger XML values are cut as libvirt's are
                    value: TypedValue::UInt(v as u32),
                })
                .collect();
            let count = list.len();
            ok(GetRet {
                params: Array(list),
                nparams: count as i32,
            })
        }
    }
}
