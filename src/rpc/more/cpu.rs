//! `virsh cpu-compare` and `cpu-baseline`: the CPU XML virsh extracted is handed to the core
//! ([`crate::core::cpu_ops`]) and the answer or libvirt's error is sent back. The QEMU flavor
//! answers as libvirt's QEMU driver, the test flavor as libvirt's test driver (baselines
//! only, without `--migratable`), LXC as libvirt's LXC driver (neither).

use super::procs;
use crate::{
    compat::flags::Flavor,
    core::{cpu_ops, ops::Operation},
    host::cpu::{self, Comparison},
    rpc::{
        Shared,
        dispatch::{Session, ok},
        error::{RpcError, RpcResult},
        proto::IntRet,
        xdr::{Array, Reader, xdr_struct},
    },
    server::authz::Details,
};

/// `REMOTE_CPU_BASELINE_MAX`.
const BASELINE_MAX: usize = 256;

xdr_struct! {
    CompareArgs { xml: String, flags: u32 }
    BaselineArgs { xml_cpus: Array<String, BASELINE_MAX>, flags: u32 }
    BaselineRet { cpu: String }
}

/// libvirt's `VIR_ERR_NO_SUPPORT` for a driver without method `api`.
fn unsupported(s: &Session, api: &str) -> RpcError {
    s.error(crate::compat::errors::Code::NoSupport, api)
}

fn failed(e: cpu::Error) -> RpcError {
    RpcError::remote(e.kind.number(), e.message())
}

/// libvirt's `virCheckFlags` in the driver's function `func`: `VIR_ERR_INVALID_ARG` worded
/// without the code's prefix.
fn check_flags(flags: u32, known: u32, func: &str) -> RpcResult<()> {
    let bad = flags & !known;
    if bad != 0 {
        return Err(RpcError::remote(
            8,
            format!("unsupported flags (0x{bad:x}) in function {func}"),
        ));
    }
    Ok(())
}

/// Authorize reading the host's CPU.
async fn authorize(shared: &Shared, s: &Session) -> RpcResult<()> {
    s.exec(shared)
        .authorize_as(&s.caller, Operation::CompareCpu, &Details::default())
        .await
        .map_err(|e| RpcError::denied(e, s.flavor()))
}

pub(super) async fn call(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    let flavor = s.flavor();
    match p {
        procs::CONNECT_COMPARE_CPU => {
            let a: CompareArgs = Reader::decode(body)?;
            match flavor {
                Flavor::Qemu => {}
                Flavor::Test | Flavor::Lxc => return Err(unsupported(s, "virConnectCompareCPU")),
            }
            check_flags(
                a.flags,
                cpu::COMPARE_FAIL_INCOMPATIBLE | cpu::COMPARE_VALIDATE_XML,
                "qemuConnectCompareCPU",
            )?;
            authorize(shared, s).await?;
            let fail = a.flags & cpu::COMPARE_FAIL_INCOMPATIBLE != 0;
            let r = cpu_ops::compare(a.xml, fail).await.map_err(failed)?;
            ok(IntRet {
                value: match r {
                    Comparison::Incompatible => 0,
                    Comparison::Identical => 1,
                    Comparison::Superset => 2,
                },
            })
        }
        procs::CONNECT_BASELINE_CPU => {
            let a: BaselineArgs = Reader::decode(body)?;
            let (known, api) = match flavor {
                Flavor::Qemu => (
                    cpu::BASELINE_EXPAND_FEATURES | cpu::BASELINE_MIGRATABLE,
                    "qemuConnectBaselineCPU",
                ),
                Flavor::Test => (cpu::BASELINE_EXPAND_FEATURES, "testConnectBaselineCPU"),
                Flavor::Lxc => return Err(unsupported(s, "virConnectBaselineCPU")),
            };
            check_flags(a.flags, known, api)?;
            authorize(shared, s).await?;
            let cpu = cpu_ops::baseline(a.xml_cpus.0, a.flags, flavor == Flavor::Qemu)
                .await
                .map_err(failed)?;
            ok(BaselineRet { cpu })
        }
        p => Err(RpcError::no_support(&format!("procedure {p}"))),
    }
}
