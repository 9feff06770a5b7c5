//! virsh's "Host and Hypervisor" commands: the vCPU limit, free memory and pages by NUMA cell,
//! huge page pools, same-page merging (KSM) settings, CPU model names, and the refusals libvirt
//! 9.0 gives on this kind of host (suspending the host, SEV, native configuration, the
//! hypervisor's CPU). The QEMU flavor answers as libvirt's QEMU driver reading the real host; the
//! test flavor as libvirt's test driver with its fixed two cells.

use super::procs;
use crate::{
    compat::{errors::Code, flags::Flavor},
    core::ops::Operation,
    host::{
        cpumodels,
        hostmem::{HostMem, Refusal},
    },
    rpc::{
        Shared,
        dispatch::{Session, ok},
        error::{RpcError, RpcResult},
        objects::check_flags,
        objproto::{TypedParam, TypedValue},
        proto::IntRet,
        xdr::{Array, Reader, xdr_struct},
    },
    server::authz::Details,
};

/// `REMOTE_NODE_MAX_CELLS`.
const MAX_CELLS: usize = 1024;
/// `REMOTE_CONNECT_CPU_MODELS_MAX`.
const CPU_MODELS_MAX: usize = 8192;
/// `REMOTE_NODE_MEMORY_PARAMETERS_MAX`.
const MEMORY_PARAMETERS_MAX: usize = 64;
/// `VIR_TYPED_PARAM_STRING_OKAY`, which libvirt.so adds to typed-parameter reads.
const STRING_OKAY: u32 = 4;
/// `VIR_NODE_ALLOC_PAGES_SET`.
const ALLOC_PAGES_SET: u32 = 1;
/// libvirt's QEMU driver's vCPU limit for TCG (and with no type).
const QEMU_MAX_VCPUS: i32 = 16;
/// libvirt's test driver's vCPU limit.
const TEST_MAX_VCPUS: i32 = 32;
/// libvirt's test driver's two cells' memory, in bytes.
const TEST_CELLS: [u64; 2] = [2048 * 1024, 4096 * 1024];

xdr_struct! {
    MaxVcpusArgs { kind: Option<String> }
    MaxVcpusRet { max_vcpus: i32 }
    CellsFreeArgs { start_cell: i32, maxcells: i32 }
    CellsFreeRet { cells: Array<u64, MAX_CELLS> }
    FreePagesArgs { pages: Array<u32, MAX_CELLS>, start_cell: i32, cell_count: u32, flags: u32 }
    FreePagesRet { counts: Array<u64, MAX_CELLS> }
    AllocPagesArgs {
        page_sizes: Array<u32, MAX_CELLS>,
        page_counts: Array<u64, MAX_CELLS>,
        start_cell: i32,
        cell_count: u32,
        flags: u32,
    }
    GetMemParamsArgs { nparams: i32, flags: u32 }
    MemParamsRet { params: Array<TypedParam, MEMORY_PARAMETERS_MAX>, nparams: i32 }
    SetMemParamsArgs { params: Array<TypedParam, MEMORY_PARAMETERS_MAX>, flags: u32 }
    SuspendArgs { target: u32, duration: u64, flags: u32 }
    SevInfoArgs { nparams: i32, flags: u32 }
    CpuModelNamesArgs { arch: String, need_results: i32, flags: u32 }
    CpuModelNamesRet { models: Array<String, CPU_MODELS_MAX>, ret: i32 }
    XmlNativeArgs { format: String, config: String, flags: u32 }
}

/// libvirt's `VIR_ERR_NO_SUPPORT` for a driver without method `api`.
fn unsupported(s: &Session, api: &str) -> RpcError {
    s.error(Code::NoSupport, api)
}

fn refused(s: &Session, r: Refusal) -> RpcError {
    let code = match r {
        Refusal::Internal(_) => Code::Internal,
        Refusal::Failed(_) => Code::OperationFailed,
        Refusal::Unsupported(_) => Code::OperationUnsupported,
        Refusal::Invalid(_) => Code::OperationInvalid,
        // VIR_ERR_SYSTEM_ERROR, worded as it comes
        Refusal::System(m) => return RpcError::remote(38, m),
    };
    s.error(code, &r.to_string())
}

pub(super) async fn call(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    let flavor = s.flavor();
    let host = HostMem::system();
    match p {
        procs::CONNECT_GET_MAX_VCPUS => {
            let a: MaxVcpusArgs = Reader::decode(body)?;
            s.host_read(shared).await?;
            let max = match flavor {
                Flavor::Test => TEST_MAX_VCPUS,
                Flavor::Lxc => return Err(unsupported(s, "virConnectGetMaxVcpus")),
                Flavor::Qemu => match a.kind.as_deref() {
                    None => QEMU_MAX_VCPUS,
                    Some(t) if t.eq_ignore_ascii_case("qemu") => QEMU_MAX_VCPUS,
                    Some(t) if t.eq_ignore_ascii_case("kvm") => kvm_max_vcpus().map_err(|e| {
                        RpcError::remote(38, format!("Unable to open /dev/kvm: {e}"))
                    })?,
                    Some(t) => {
                        return Err(s.error(Code::InvalidArg, &format!("unknown type '{t}'")));
                    }
                },
            };
            ok(MaxVcpusRet { max_vcpus: max })
        }
        procs::NODE_GET_CELLS_FREE_MEMORY => {
            let a: CellsFreeArgs = Reader::decode(body)?;
            if a.maxcells > MAX_CELLS as i32 {
                return Err(RpcError::rpc("maxCells > REMOTE_NODE_MAX_CELLS".into()));
            }
            s.host_read(shared).await?;
            let cells = match flavor {
                Flavor::Test => {
                    let start = usize::try_from(a.start_cell).unwrap_or(usize::MAX);
                    if start >= TEST_CELLS.len() {
                        return Err(s.error(Code::InvalidArg, "Range exceeds available cells"));
                    }
                    let n = usize::try_from(a.maxcells).unwrap_or(0);
                    TEST_CELLS[start..].iter().take(n).copied().collect()
                }
                Flavor::Qemu | Flavor::Lxc => host
                    .cells_free(a.start_cell, a.maxcells)
                    .map_err(|r| refused(s, r))?,
            };
            ok(CellsFreeRet {
                cells: Array(cells),
            })
        }
        procs::NODE_GET_FREE_PAGES => {
            let a: FreePagesArgs = Reader::decode(body)?;
            if a.pages.0.len() as u64 * u64::from(a.cell_count) > MAX_CELLS as u64 {
                return Err(RpcError::rpc(
                    "the result won't fit into REMOTE_NODE_MAX_CELLS".into(),
                ));
            }
            check_flags(s, a.flags, 0, "virNodeGetFreePages")?;
            s.host_read(shared).await?;
            let counts = match flavor {
                // libvirt's test driver makes its counts up: 19, 45, 97… over every page
                Flavor::Test => {
                    let n = a.pages.0.len() * a.cell_count as usize;
                    std::iter::successors(Some(19u64), |x| Some(x * 2 + 7))
                        .take(n)
                        .collect()
                }
                Flavor::Qemu | Flavor::Lxc => host
                    .free_pages(&a.pages.0, a.start_cell, a.cell_count)
                    .map_err(|r| refused(s, r))?,
            };
            ok(FreePagesRet {
                counts: Array(counts),
            })
        }
        procs::NODE_ALLOC_PAGES => {
            let a: AllocPagesArgs = Reader::decode(body)?;
            s.writable(&crate::compat::flags::Method {
                api: "virNodeAllocPages",
                driver_fn: "NodeAllocPages",
                flags: &[],
            })?;
            if flavor == Flavor::Test {
                return Err(unsupported(s, "virNodeAllocPages"));
            }
            check_flags(s, a.flags, ALLOC_PAGES_SET, "virNodeAllocPages")?;
            tune(shared, s).await?;
            let pools: Vec<(u32, u64)> = a
                .page_sizes
                .0
                .iter()
                .copied()
                .zip(a.page_counts.0.iter().copied())
                .collect();
            let add = a.flags & ALLOC_PAGES_SET == 0;
            let n = host
                .alloc_pages(&pools, a.start_cell, a.cell_count, add)
                .map_err(|r| refused(s, r))?;
            ok(IntRet {
                value: i32::try_from(n).unwrap_or(i32::MAX),
            })
        }
        procs::NODE_GET_MEMORY_PARAMETERS => {
            let a: GetMemParamsArgs = Reader::decode(body)?;
            if flavor == Flavor::Test {
                return Err(unsupported(s, "virNodeGetMemoryParameters"));
            }
            check_flags(s, a.flags, STRING_OKAY, "virNodeGetMemoryParameters")?;
            s.host_read(shared).await?;
            let all = crate::core::host::memory_parameters();
            if a.nparams == 0 {
                // libvirt counts the parameters it knows, present or not
                return ok(MemParamsRet {
                    params: Array(Vec::new()),
                    nparams: 8,
                });
            }
            let n = usize::try_from(a.nparams).unwrap_or(0);
            let params: Vec<TypedParam> = all
                .into_iter()
                .take(n)
                .map(|(name, v)| TypedParam {
                    field: name.into(),
                    value: if matches!(
                        name,
                        "shm_pages_to_scan" | "shm_sleep_millisecs" | "shm_merge_across_nodes"
                    ) {
                        TypedValue::UInt(u32::try_from(v).unwrap_or(u32::MAX))
                    } else {
                        TypedValue::ULLong(v)
                    },
                })
                .collect();
            let nparams = params.len() as i32;
            ok(MemParamsRet {
                params: Array(params),
                nparams,
            })
        }
        procs::NODE_SET_MEMORY_PARAMETERS => {
            let a: SetMemParamsArgs = Reader::decode(body)?;
            s.writable(&crate::compat::flags::Method {
                api: "virNodeSetMemoryParameters",
                driver_fn: "NodeSetMemoryParameters",
                flags: &[],
            })?;
            if flavor == Flavor::Test {
                return Err(unsupported(s, "virNodeSetMemoryParameters"));
            }
            check_flags(s, a.flags, 0, "virNodeSetMemoryParameters")?;
            tune(shared, s).await?;
            let mut settings = Vec::new();
            for p in &a.params.0 {
                if !matches!(
                    p.field.as_str(),
                    "shm_pages_to_scan" | "shm_sleep_millisecs" | "shm_merge_across_nodes"
                ) {
                    return Err(s.error(
                        Code::ArgumentUnsupported,
                        &format!("parameter '{}' not supported", p.field),
                    ));
                }
                let TypedValue::UInt(v) = p.value else {
                    return Err(s.error(
                        Code::InvalidArg,
                        &format!(
                            "invalid type '{}' for parameter '{}', expected 'uint'",
                            p.value.type_name(),
                            p.field
                        ),
                    ));
                };
                settings.push((p.field.as_str(), v));
            }
            host.ksm_set(&settings).map_err(|r| refused(s, r))?;
            ok(())
        }
        procs::NODE_SUSPEND_FOR_DURATION => {
            let a: SuspendArgs = Reader::decode(body)?;
            s.writable(&crate::compat::flags::Method {
                api: "virNodeSuspendForDuration",
                driver_fn: "NodeSuspendForDuration",
                flags: &[],
            })?;
            if flavor == Flavor::Test {
                return Err(unsupported(s, "virNodeSuspendForDuration"));
            }
            check_flags(s, a.flags, 0, "virNodeSuspendForDuration")?;
            s.host_read(shared).await?;
            // virtbus never suspends the host: every target is one the host lacks, as
            // libvirtd finds on a host without logind's or pm-utils' suspend
            let what = match a.target {
                0 => "Suspend-to-RAM",
                1 => "Suspend-to-Disk",
                2 => "Hybrid-Suspend",
                _ => return Err(s.error(Code::InvalidArg, "Invalid suspend target")),
            };
            Err(s.error(Code::ArgumentUnsupported, what))
        }
        procs::NODE_GET_SEV_INFO => {
            let _a: SevInfoArgs = Reader::decode(body)?;
            match flavor {
                Flavor::Qemu => {
                    s.host_read(shared).await?;
                    Err(s.error(
                        Code::OperationUnsupported,
                        "QEMU does not support SEV guest",
                    ))
                }
                Flavor::Test | Flavor::Lxc => Err(unsupported(s, "virNodeGetSEVInfo")),
            }
        }
        procs::CONNECT_GET_CPU_MODEL_NAMES => {
            let a: CpuModelNamesArgs = Reader::decode(body)?;
            if flavor == Flavor::Lxc {
                return Err(unsupported(s, "virConnectGetCPUModelNames"));
            }
            check_flags(s, a.flags, 0, "virConnectGetCPUModelNames")?;
            s.host_read(shared).await?;
            let models = cpumodels::models(std::path::Path::new(cpumodels::CPU_MAP), &a.arch)
                .map_err(|r| {
                    let code = match r {
                        cpumodels::Refusal::UnknownArch(_) => Code::InvalidArg,
                        cpumodels::Refusal::NoDriver(_) => Code::NoSupport,
                        cpumodels::Refusal::Map(_) => Code::Internal,
                    };
                    s.error(code, &r.to_string())
                })?;
            let ret = i32::try_from(models.len()).unwrap_or(i32::MAX);
            ok(CpuModelNamesRet {
                models: Array(if a.need_results != 0 {
                    models
                } else {
                    Vec::new()
                }),
                ret,
            })
        }
        procs::CONNECT_DOMAIN_XML_FROM_NATIVE => {
            let _a: XmlNativeArgs = Reader::decode(body)?;
            // libvirt 9.0's drivers have no native-configuration parser any more
            Err(unsupported(s, "virConnectDomainXMLFromNative"))
        }
        procs::CONNECT_DOMAIN_XML_TO_NATIVE => {
            let a: XmlNativeArgs = Reader::decode(body)?;
            match flavor {
                Flavor::Qemu if a.format != "qemu-argv" => Err(s.error(
                    Code::InvalidArg,
                    &format!("unsupported config type {}", a.format),
                )),
                // the command line virtbus would run is not offered (yet)
                Flavor::Qemu | Flavor::Test | Flavor::Lxc => {
                    Err(unsupported(s, "virConnectDomainXMLToNative"))
                }
            }
        }
        procs::CONNECT_COMPARE_HYPERVISOR_CPU => {
            Err(unsupported(s, "virConnectCompareHypervisorCPU"))
        }
        procs::CONNECT_BASELINE_HYPERVISOR_CPU => {
            Err(unsupported(s, "virConnectBaselineHypervisorCPU"))
        }
        p => Err(RpcError::no_support(&format!("procedure {p}"))),
    }
}

/// Authorize changing the host's memory settings.
async fn tune(shared: &Shared, s: &Session) -> RpcResult<()> {
    s.exec(shared)
        .authorize_as(&s.caller, Operation::TuneHost, &Details::default())
        .await
        .map_err(|e| RpcError::denied(e, s.flavor()))
}

/// KVM's vCPU limit (`KVM_CAP_MAX_VCPUS`, else `KVM_CAP_NR_VCPUS`, else 4), as libvirt's
/// `virHostCPUGetKVMMaxVCPUs`.
fn kvm_max_vcpus() -> std::io::Result<i32> {
    const KVM_CHECK_EXTENSION: libc::c_ulong = 0xAE03;
    const KVM_CAP_NR_VCPUS: libc::c_int = 9;
    const KVM_CAP_MAX_VCPUS: libc::c_int = 66;
    // SAFETY: a NUL-terminated path; the descriptor is closed below.
    let fd = unsafe { libc::open(c"/dev/kvm".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: KVM_CHECK_EXTENSION takes an integer argument and touches no memory.
    let check = |cap: libc::c_int| unsafe { libc::ioctl(fd, KVM_CHECK_EXTENSION as _, cap) };
    let mut n = check(KVM_CAP_MAX_VCPUS);
    if n <= 0 {
        n = check(KVM_CAP_NR_VCPUS);
    }
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    Ok(if n <= 0 { 4 } else { n })
}
