//! Domain procedures of virsh's domain commands beyond the basics — devices, memory and
//! vCPU counts, metadata, managed save, NMI, vCPU pinning, block size, filesystem freeze and
//! what the guest agent tells — each over the core request the facade runs for the same
//! libvirt API.

use super::procs;
use crate::{
    compat::{
        domain::{affect, metadata_kind},
        errors::Code,
        flags::{self, Flavor, Method},
    },
    core::{
        metadata::MetadataKind,
        ops,
        options::{Affect, DeviceOptions, ManagedSaveOptions, MemoryOptions, VcpuOptions},
    },
    drivers::{GuestInfo, GuestInfoTypes},
    rpc::{
        Shared,
        dispatch::{Session, ok},
        error::{RpcError, RpcResult},
        objproto::{Opaque, TypedParam, TypedValue},
        proto::{Dom, DomainFlagsArgs, StringRet},
        xdr::{Array, Reader, xdr_struct},
    },
};

const MOUNTPOINTS_MAX: usize = 256;

/// `virDomainSetVcpus` (no flags), as `lxc:///`'s refusal names it.
const SET_VCPUS_PLAIN: Method = Method {
    api: "virDomainSetVcpus",
    driver_fn: "DomainSetVcpus",
    flags: &[],
};
const GUEST_INFO_PARAMS_MAX: usize = 2048;

xdr_struct! {
    DomXmlArgs { dom: Dom, xml: String }
    DomXmlFlagsArgs { dom: Dom, xml: String, flags: u32 }
    DomMemoryArgs { dom: Dom, memory: u64 }
    DomMemoryFlagsArgs { dom: Dom, memory: u64, flags: u32 }
    DomVcpusArgs { dom: Dom, nvcpus: u32 }
    DomVcpusFlagsArgs { dom: Dom, nvcpus: u32, flags: u32 }
    GetMetadataArgs { dom: Dom, kind: i32, uri: Option<String>, flags: u32 }
    MetadataRet { metadata: String }
    SetMetadataArgs {
        dom: Dom,
        kind: i32,
        metadata: Option<String>,
        key: Option<String>,
        uri: Option<String>,
        flags: u32,
    }
    VcpuPinInfoArgs { dom: Dom, ncpumaps: i32, maplen: i32, flags: u32 }
    VcpuPinInfoRet { cpumaps: Opaque, num: i32 }
    BlockInfoArgs { dom: Dom, path: String, flags: u32 }
    BlockInfoRet { allocation: u64, capacity: u64, physical: u64 }
    FsFreezeArgs { dom: Dom, mountpoints: Array<String, MOUNTPOINTS_MAX>, flags: u32 }
    FsFreezeRet { filesystems: i32 }
    GuestInfoArgs { dom: Dom, types: u32, flags: u32 }
    JobInfoRet {
        kind: i32,
        time_elapsed: u64,
        time_remaining: u64,
        data_total: u64,
        data_processed: u64,
        data_remaining: u64,
        mem_total: u64,
        mem_processed: u64,
        mem_remaining: u64,
        file_total: u64,
        file_processed: u64,
        file_remaining: u64,
    }
    GuestInfoRet { params: Array<TypedParam, GUEST_INFO_PARAMS_MAX> }
}

/// CPUs of the host libvirt's test driver simulates (`test:///default`'s node info).
pub(super) const TEST_HOST_CPUS: usize = 8;

const GET_BLOCK_INFO: Method = Method {
    api: "virDomainGetBlockInfo",
    driver_fn: "DomainGetBlockInfo",
    flags: &[],
};

const GET_GUEST_INFO: Method = Method {
    api: "virDomainGetGuestInfo",
    driver_fn: "DomainGetGuestInfo",
    flags: &[],
};

/// `virDomainGuestInfoTypes`.
const INFO_USERS: u32 = 1;
const INFO_OS: u32 = 2;
const INFO_TIMEZONE: u32 = 4;
const INFO_HOSTNAME: u32 = 8;
const INFO_FILESYSTEM: u32 = 16;
const INFO_DISKS: u32 = 32;
const INFO_INTERFACES: u32 = 64;

pub(super) async fn call(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    match p {
        procs::DOMAIN_ATTACH_DEVICE
        | procs::DOMAIN_DETACH_DEVICE
        | procs::DOMAIN_ATTACH_DEVICE_FLAGS
        | procs::DOMAIN_DETACH_DEVICE_FLAGS
        | procs::DOMAIN_UPDATE_DEVICE_FLAGS => device(shared, s, p, body).await,
        procs::DOMAIN_SET_MAX_MEMORY
        | procs::DOMAIN_SET_MEMORY
        | procs::DOMAIN_SET_MEMORY_FLAGS => {
            let (d, kib, fl) = match p {
                procs::DOMAIN_SET_MEMORY_FLAGS => {
                    let a: DomMemoryFlagsArgs = Reader::decode(body)?;
                    (a.dom, a.memory, a.flags)
                }
                _ => {
                    let a: DomMemoryArgs = Reader::decode(body)?;
                    (a.dom, a.memory, 0)
                }
            };
            let dom = s.domain(&d)?;
            let m = &flags::SET_MEMORY;
            s.check(m, fl)?;
            let opts = match p {
                // virDomainSetMaxMemory: the maximum, of what the domain's state says
                procs::DOMAIN_SET_MAX_MEMORY => MemoryOptions {
                    affect: Affect::default(),
                    maximum: true,
                },
                // virDomainSetMemory: the running guest's balloon
                procs::DOMAIN_SET_MEMORY => MemoryOptions {
                    affect: Affect {
                        live: true,
                        config: false,
                    },
                    maximum: false,
                },
                _ => MemoryOptions {
                    affect: affect(m, fl),
                    maximum: m.has(fl, "maximum"),
                },
            };
            s.run(shared, m, &dom, ops::SetMemory { kib, opts }).await?;
            ok(())
        }
        procs::DOMAIN_SET_VCPUS | procs::DOMAIN_SET_VCPUS_FLAGS => {
            let (d, count, fl) = if p == procs::DOMAIN_SET_VCPUS {
                let a: DomVcpusArgs = Reader::decode(body)?;
                (a.dom, a.nvcpus, None)
            } else {
                let a: DomVcpusFlagsArgs = Reader::decode(body)?;
                (a.dom, a.nvcpus, Some(a.flags))
            };
            let dom = s.domain(&d)?;
            let m = match (fl, s.flavor()) {
                // libvirt's LXC driver has neither: virsh's plain call is named
                (None, Flavor::Lxc) => &SET_VCPUS_PLAIN,
                (_, Flavor::Qemu | Flavor::Test | Flavor::Lxc) => &flags::SET_VCPUS,
            };
            let opts = match fl {
                // virDomainSetVcpus: the running guest's
                None => VcpuOptions {
                    affect: Affect {
                        live: true,
                        config: false,
                    },
                    maximum: false,
                },
                Some(fl) => {
                    s.check(m, fl)?;
                    VcpuOptions {
                        affect: affect(m, fl),
                        maximum: m.has(fl, "maximum"),
                    }
                }
            };
            s.run(shared, m, &dom, ops::SetVcpus { count, opts })
                .await?;
            ok(())
        }
        procs::DOMAIN_GET_METADATA => {
            let a: GetMetadataArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &flags::GET_METADATA;
            s.check(m, a.flags)?;
            let uri = a.uri.unwrap_or_default();
            let kind = metadata_kind(a.kind, &uri, m.api).map_err(|e| compat(s, e))?;
            let affect = affect(m, a.flags);
            let metadata = s
                .run(shared, m, &dom, ops::GetMetadata { kind, affect })
                .await?;
            ok(MetadataRet { metadata })
        }
        procs::DOMAIN_SET_METADATA => {
            let a: SetMetadataArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &flags::SET_METADATA;
            s.check(m, a.flags)?;
            let uri = a.uri.unwrap_or_default();
            let kind = metadata_kind(a.kind, &uri, m.api).map_err(|e| compat(s, e))?;
            let key_missing = a.key.as_deref().is_none_or(str::is_empty);
            match (&kind, key_missing) {
                (MetadataKind::Element(_), true) => {
                    return Err(bare(s, format!("key in {} must not be NULL", m.api)));
                }
                (MetadataKind::Title | MetadataKind::Description, false) => {
                    return Err(bare(s, format!("key in {} must be NULL", m.api)));
                }
                _ => {}
            }
            let req = ops::SetMetadata {
                kind,
                value: a.metadata,
                key: a.key,
                affect: affect(m, a.flags),
            };
            s.run(shared, m, &dom, req).await?;
            ok(())
        }
        procs::DOMAIN_MANAGED_SAVE | procs::DOMAIN_MANAGED_SAVE_REMOVE => {
            let a: DomainFlagsArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            if p == procs::DOMAIN_MANAGED_SAVE {
                let m = &flags::MANAGED_SAVE;
                s.check(m, a.flags)?;
                let opts = ManagedSaveOptions {
                    running: m.has(a.flags, "running"),
                    paused: m.has(a.flags, "paused"),
                };
                s.run(shared, m, &dom, ops::ManagedSave { opts }).await?;
            } else {
                let m = &flags::MANAGED_SAVE_REMOVE;
                s.check(m, a.flags)?;
                s.run(shared, m, &dom, ops::ManagedSaveRemove {}).await?;
            }
            ok(())
        }
        procs::DOMAIN_INJECT_NMI => {
            let a: DomainFlagsArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &flags::INJECT_NMI;
            s.check(m, a.flags)?;
            s.run(shared, m, &dom, ops::InjectNmi {}).await?;
            ok(())
        }
        procs::DOMAIN_GET_VCPU_PIN_INFO => {
            let a: VcpuPinInfoArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &flags::GET_VCPU_PIN_INFO;
            s.check(m, a.flags)?;
            let (Ok(ncpumaps), Ok(maplen)) =
                (usize::try_from(a.ncpumaps), usize::try_from(a.maplen))
            else {
                return Err(RpcError::rpc("ncpumaps and maplen must be positive".into()));
            };
            if ncpumaps.saturating_mul(maplen) > 8_388_608 {
                return Err(RpcError::rpc(
                    "ncpumaps * maplen > REMOTE_CPUMAPS_MAX".into(),
                ));
            }
            let affect = affect(m, a.flags);
            let mut pins = s
                .run(shared, m, &dom, ops::GetVcpuPinning { affect })
                .await?;
            if s.flavor() == Flavor::Test {
                // test:///default's host has 8 CPUs, whatever the real one has
                for row in &mut pins {
                    row.resize(TEST_HOST_CPUS, true);
                }
            }
            let mut maps = vec![0u8; ncpumaps * maplen];
            let rows = pins.len().min(ncpumaps);
            for (v, row) in pins.iter().take(rows).enumerate() {
                for (cpu, on) in row.iter().enumerate().take(maplen * 8) {
                    if *on {
                        maps[v * maplen + cpu / 8] |= 1 << (cpu % 8);
                    }
                }
            }
            ok(VcpuPinInfoRet {
                cpumaps: Opaque(maps),
                num: i32::try_from(rows).unwrap_or(i32::MAX),
            })
        }
        procs::DOMAIN_GET_BLOCK_INFO => {
            let a: BlockInfoArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &GET_BLOCK_INFO;
            s.check(m, a.flags)?;
            let b = s
                .run(shared, m, &dom, ops::GetBlockInfo { disk: a.path })
                .await?;
            ok(BlockInfoRet {
                allocation: b.allocation,
                capacity: b.capacity,
                physical: b.physical,
            })
        }
        procs::DOMAIN_GET_JOB_INFO => {
            let a: crate::rpc::proto::DomainArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            s.authorize(shared, crate::core::ops::Operation::ReadDomain, &dom)
                .await?;
            // a long operation running (the domain's `Job`): unbounded, nothing measured
            // (`VIR_DOMAIN_JOB_UNBOUNDED`); none otherwise (`VIR_DOMAIN_JOB_NONE`)
            let running = !dom.info().job.is_empty() || backup_running(s, &dom);
            if dom.running_job() == "migration out"
                && let Ok(st) = s.view.core.migration_stats(&dom).await
            {
                return ok(JobInfoRet {
                    kind: 2,
                    time_elapsed: st.time_elapsed_ms,
                    data_total: st.memory_total,
                    data_processed: st.memory_processed,
                    data_remaining: st.memory_remaining,
                    mem_total: st.memory_total,
                    mem_processed: st.memory_processed,
                    mem_remaining: st.memory_remaining,
                    ..JobInfoRet::default()
                });
            }
            ok(JobInfoRet {
                kind: if running { 2 } else { 0 },
                ..JobInfoRet::default()
            })
        }
        procs::DOMAIN_GET_HOSTNAME => {
            let a: DomainFlagsArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &flags::GET_HOSTNAME;
            s.check(m, a.flags)?;
            if m.has(a.flags, "lease") && !m.has(a.flags, "agent") {
                return Err(s.error(
                    Code::NoHostname,
                    "virtbus runs no networks that lease addresses",
                ));
            }
            let types = GuestInfoTypes {
                hostname: true,
                os: false,
                timezone: false,
                interfaces: false,
            };
            let info = s.run(shared, m, &dom, ops::GuestInfoOp { types }).await?;
            let hostname = info.hostname.ok_or_else(|| {
                RpcError::from_compat(
                    crate::compat::errors::libvirt(Code::NoHostname, None),
                    s.flavor(),
                )
            })?;
            ok(StringRet { value: hostname })
        }
        procs::DOMAIN_FSFREEZE | procs::DOMAIN_FSTHAW => {
            let a: FsFreezeArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let mountpoints = a.mountpoints.0;
            let n = if p == procs::DOMAIN_FSFREEZE {
                let m = &flags::FS_FREEZE;
                s.check(m, a.flags)?;
                s.run(shared, m, &dom, ops::FsFreeze { mountpoints })
                    .await?
            } else {
                let m = &flags::FS_THAW;
                s.check(m, a.flags)?;
                s.run(shared, m, &dom, ops::FsThaw { mountpoints }).await?
            };
            ok(FsFreezeRet {
                filesystems: i32::try_from(n).unwrap_or(i32::MAX),
            })
        }
        procs::DOMAIN_GET_GUEST_INFO => {
            let a: GuestInfoArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &GET_GUEST_INFO;
            s.check(m, a.flags)?;
            let known = INFO_USERS
                | INFO_OS
                | INFO_TIMEZONE
                | INFO_HOSTNAME
                | INFO_FILESYSTEM
                | INFO_DISKS
                | INFO_INTERFACES;
            if a.types & !known != 0 {
                return Err(s.error(
                    Code::InvalidArg,
                    &format!(
                        "unsupported guest information types '0x{:x}'",
                        a.types & !known
                    ),
                ));
            }
            let all = a.types == 0;
            let parts = crate::core::agent::GuestParts {
                users: all || a.types & INFO_USERS != 0,
                filesystems: all || a.types & INFO_FILESYSTEM != 0,
                disks: all || a.types & INFO_DISKS != 0,
                // asked for nothing in particular: what the agent cannot tell is left out
                optional: all,
            };
            let details = if parts.users || parts.filesystems || parts.disks {
                s.run(shared, m, &dom, ops::GuestDetailsOp { parts })
                    .await?
            } else {
                Default::default()
            };
            let types = GuestInfoTypes {
                hostname: all || a.types & INFO_HOSTNAME != 0,
                os: all || a.types & INFO_OS != 0,
                timezone: all || a.types & INFO_TIMEZONE != 0,
                interfaces: all || a.types & INFO_INTERFACES != 0,
            };
            let info = if types.hostname || types.os || types.timezone || types.interfaces {
                s.run(shared, m, &dom, ops::GuestInfoOp { types }).await?
            } else {
                GuestInfo::default()
            };
            ok(GuestInfoRet {
                params: Array(guest_params(info, details)),
            })
        }
        p => Err(RpcError::no_support(&format!("procedure {p}"))),
    }
}

/// Attach, detach or update a device: the old calls act on the running guest.
async fn device(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    let (d, xml, fl) = match p {
        procs::DOMAIN_ATTACH_DEVICE | procs::DOMAIN_DETACH_DEVICE => {
            let a: DomXmlArgs = Reader::decode(body)?;
            (a.dom, a.xml, None)
        }
        _ => {
            let a: DomXmlFlagsArgs = Reader::decode(body)?;
            (a.dom, a.xml, Some(a.flags))
        }
    };
    let dom = s.domain(&d)?;
    let m = match p {
        procs::DOMAIN_ATTACH_DEVICE | procs::DOMAIN_ATTACH_DEVICE_FLAGS => &flags::ATTACH_DEVICE,
        procs::DOMAIN_DETACH_DEVICE | procs::DOMAIN_DETACH_DEVICE_FLAGS => &flags::DETACH_DEVICE,
        _ => &flags::UPDATE_DEVICE,
    };
    let opts = match fl {
        None => DeviceOptions {
            affect: Affect {
                live: true,
                config: false,
            },
            force: false,
        },
        Some(fl) => {
            s.check(m, fl)?;
            DeviceOptions {
                affect: affect(m, fl),
                force: p == procs::DOMAIN_UPDATE_DEVICE_FLAGS && m.has(fl, "force"),
            }
        }
    };
    match p {
        procs::DOMAIN_ATTACH_DEVICE | procs::DOMAIN_ATTACH_DEVICE_FLAGS => {
            s.run(shared, m, &dom, ops::AttachDevice { xml, opts })
                .await?
        }
        procs::DOMAIN_DETACH_DEVICE | procs::DOMAIN_DETACH_DEVICE_FLAGS => {
            s.run(shared, m, &dom, ops::DetachDevice { xml, opts })
                .await?
        }
        _ => {
            s.run(shared, m, &dom, ops::UpdateDevice { xml, opts })
                .await?
        }
    }
    ok(())
}

/// What the guest agent told, as libvirt's typed parameters of `virDomainGetGuestInfo`, in
/// libvirt's order: users, OS, time zone, host name, filesystems, disks, interfaces.
fn guest_params(info: GuestInfo, details: crate::core::agent::GuestDetails) -> Vec<TypedParam> {
    let mut out = Vec::new();
    super::agent::user_params(&details, &mut out);
    let mut put = |field: String, value: TypedValue| out.push(TypedParam { field, value });
    for (k, v) in info.os {
        put(format!("os.{k}"), TypedValue::String(v));
    }
    if let Some((name, offset)) = info.timezone {
        if !name.is_empty() {
            put("timezone.name".into(), TypedValue::String(name));
        }
        put(
            "timezone.offset".into(),
            TypedValue::Int(i32::try_from(offset).unwrap_or(0)),
        );
    }
    if let Some(h) = info.hostname {
        put("hostname".into(), TypedValue::String(h));
    }
    super::agent::fs_disk_params(details, &mut out);
    let mut put = |field: String, value: TypedValue| out.push(TypedParam { field, value });
    if let Some(ifaces) = info.interfaces {
        let n = u32::try_from(ifaces.len()).unwrap_or(u32::MAX);
        put("if.count".into(), TypedValue::UInt(n));
        for (i, f) in ifaces.into_iter().enumerate() {
            put(format!("if.{i}.name"), TypedValue::String(f.name));
            if let Some(mac) = f.hwaddr {
                put(format!("if.{i}.hwaddr"), TypedValue::String(mac));
            }
            let n = u32::try_from(f.addrs.len()).unwrap_or(u32::MAX);
            put(format!("if.{i}.addr.count"), TypedValue::UInt(n));
            for (j, a) in f.addrs.into_iter().enumerate() {
                let kind = if a.ipv6 { "ipv6" } else { "ipv4" };
                put(
                    format!("if.{i}.addr.{j}.type"),
                    TypedValue::String(kind.into()),
                );
                put(format!("if.{i}.addr.{j}.addr"), TypedValue::String(a.addr));
                put(
                    format!("if.{i}.addr.{j}.prefix"),
                    TypedValue::UInt(a.prefix),
                );
            }
        }
    }
    out
}

fn compat(s: &Session, e: crate::compat::errors::CompatError) -> RpcError {
    RpcError::from_compat(e, s.flavor())
}

fn bare(s: &Session, msg: String) -> RpcError {
    compat(s, crate::compat::errors::bare(msg))
}

/// Whether a backup job runs on `dom` (an unbounded job for `virDomainGetJobInfo`).
fn backup_running(s: &Session, dom: &crate::core::Domain) -> bool {
    s.view.core.backup_running(dom)
}
