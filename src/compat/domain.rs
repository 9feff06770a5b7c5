//! `org.libvirt.Domain`: one domain's lifecycle, XML, state, statistics, metadata, vCPUs,
//! devices, managed save, guest facts and snapshots, each a libvirt API over the core.

use std::sync::Arc;

use uuid::Uuid;
use zbus::{Message, ObjectPath};

use super::{
    Connect, Ctx,
    connect::{stats_groups, typed_params},
    errors::{Code, Reply, bare, from_exec, libvirt, no_support},
    flags::{self, Flavor, Method},
    objects::no_domain_uuid,
};
use crate::{
    core::{
        Domain,
        metadata::MetadataKind,
        ops,
        options::{
            AddressSource, Affect, DestroyOptions, DeviceOptions, ManagedSaveOptions,
            MemoryOptions, PowerMode, SnapshotCreateOptions, SnapshotListOptions, StartOptions,
            UndefineOptions, VcpuOptions, XmlOptions,
        },
    },
    drivers::GuestInfoTypes,
    server::{Call, dict::Dict},
};

/// CPUs of the host libvirt's test driver simulates (`test:///default`'s node info).
const TEST_HOST_CPUS: usize = 8;

/// An interface as `InterfaceAddresses` returns it: name, MAC address, (type, address,
/// prefix) per address.
type Iface = (String, String, Vec<(i32, String, u32)>);

pub(crate) fn affect(m: &Method, flags: u32) -> Affect {
    Affect {
        live: m.has(flags, "live"),
        config: m.has(flags, "config"),
    }
}

pub(crate) fn power_mode(m: &Method, flags: u32) -> PowerMode {
    // libvirt's LXC driver: initctl wins when both container modes are given (a container
    // without initctl then fails; the signal is the fallback of no flags only)
    if m.has(flags, "initctl") {
        return PowerMode::Initctl;
    }
    if m.has(flags, "signal") {
        return PowerMode::Signal;
    }
    match (m.has(flags, "acpi"), m.has(flags, "agent")) {
        (true, false) => PowerMode::Acpi,
        (false, true) => PowerMode::Agent,
        // Neither, or both (either will do): the driver's choice.
        _ => PowerMode::Default,
    }
}

/// The options of libvirt's undefine flags.
pub(crate) fn undefine_options(m: &Method, flags: u32) -> Reply<UndefineOptions> {
    if m.has(flags, "nvram") && m.has(flags, "keep-nvram") {
        return Err(libvirt(
            Code::OperationInvalid,
            Some("cannot both keep and delete nvram"),
        ));
    }
    Ok(UndefineOptions {
        snapshots_metadata: m.has(flags, "snapshots-metadata"),
        checkpoints_metadata: m.has(flags, "checkpoints-metadata"),
        managed_save: m.has(flags, "managed-save"),
        nvram: m.has(flags, "nvram"),
        keep_nvram: m.has(flags, "keep-nvram"),
        keep_tpm: m.has(flags, "keep-tpm"),
    })
}

/// What a GetXMLDesc flag word asks for.
pub(crate) fn xml_options(m: &Method, flags: u32) -> XmlOptions {
    XmlOptions {
        inactive: m.has(flags, "inactive"),
        secure: m.has(flags, "secure"),
        migratable: m.has(flags, "migratable"),
        update_cpu: m.has(flags, "update-cpu"),
    }
}

/// The snapshot filters of a list flag word (bit 0 aside).
pub(crate) fn snapshot_filters(m: &Method, flags: u32) -> SnapshotListOptions {
    let has = |o| m.has(flags, o);
    SnapshotListOptions {
        roots: has("roots"),
        leaves: has("leaves"),
        no_leaves: has("no-leaves"),
        metadata: has("metadata"),
        no_metadata: has("no-metadata"),
        inactive: has("inactive"),
        active: has("active"),
        disk_only: has("disk-only"),
        internal: has("internal"),
        external: has("external"),
        topological: has("topological"),
    }
}

/// The metadata kind of libvirt's type and URI, with libvirt's argument checks.
pub(crate) fn metadata_kind(kind: i32, uri: &str, api: &str) -> Reply<MetadataKind> {
    match (kind, uri.is_empty()) {
        (0 | 1, false) => Err(bare(format!("uri in {api} must be NULL"))),
        (0, true) => Ok(MetadataKind::Description),
        (1, true) => Ok(MetadataKind::Title),
        (2, true) => Err(bare(format!("uri in {api} must not be NULL"))),
        (2, false) => Ok(MetadataKind::Element(uri.to_owned())),
        (k, _) => Err(libvirt(
            Code::InvalidArg,
            Some(&format!("unknown metadata type '{k}'")),
        )),
    }
}

pub(super) async fn call(
    ctx: &Ctx,
    call: &Call,
    c: &Connect,
    uuid: &Uuid,
    member: &str,
) -> Reply<Message> {
    let dom = c.domain(uuid).ok_or_else(|| no_domain_uuid(c, uuid))?;
    let body = call.msg.body();
    let info = dom.info();
    let flavor = c.flavor;
    let exec = c.exec(ctx);
    // Run a request of method `m` through the one execution path; its signals are sent.
    macro_rules! run {
        ($m:expr, $req:expr) => {
            exec.run(call, &dom, $req)
                .await
                .map_err(|e| from_exec(e, flavor, $m))?
        };
    }
    macro_rules! done {
        ($m:expr, $req:expr) => {{
            run!($m, $req);
            return call.reply_empty();
        }};
    }
    match member {
        "Create" => {
            let flags: u32 = body.deserialize()?;
            let m = &flags::CREATE;
            m.check(flags, flavor)?;
            let opts = StartOptions {
                paused: m.has(flags, "paused"),
                force_boot: m.has(flags, "force-boot"),
            };
            done!(m, ops::Start { opts })
        }
        "Destroy" => {
            let flags: u32 = body.deserialize()?;
            let m = &flags::DESTROY;
            m.check(flags, flavor)?;
            let opts = DestroyOptions {
                graceful: m.has(flags, "graceful"),
            };
            done!(m, ops::Destroy { opts })
        }
        "Shutdown" | "Reboot" => {
            let flags: u32 = body.deserialize()?;
            let m = flags::power_method(flavor, member == "Reboot");
            m.check(flags, flavor)?;
            let mode = power_mode(m, flags);
            if member == "Shutdown" {
                done!(m, ops::Shutdown { mode })
            }
            done!(m, ops::Reboot { mode })
        }
        "Reset" | "InjectNMI" => {
            let flags: u32 = body.deserialize()?;
            let m = if member == "Reset" {
                &flags::RESET
            } else {
                &flags::INJECT_NMI
            };
            m.check(flags, flavor)?;
            if member == "Reset" {
                done!(m, ops::Reset {})
            }
            done!(m, ops::InjectNmi {})
        }
        "OpenGraphicsFD" => {
            let (index, flags): (u32, u32) = body.deserialize()?;
            let m = &flags::OPEN_GRAPHICS_FD;
            m.check(flags, flavor)?;
            let skipauth = m.has(flags, "skipauth");
            let fd = run!(m, ops::OpenGraphics { index, skipauth });
            call.reply(&zbus::OwnedFd::from(fd))
        }
        "Suspend" | "Resume" => {
            if member == "Suspend" {
                done!(&flags::SUSPEND, ops::Suspend {})
            }
            done!(&flags::RESUME, ops::Resume {})
        }
        "Undefine" => {
            let flags: u32 = body.deserialize()?;
            let m = &flags::UNDEFINE;
            m.check(flags, flavor)?;
            let opts = undefine_options(m, flags)?;
            done!(m, ops::Undefine { opts })
        }
        "GetXMLDesc" => {
            let flags: u32 = body.deserialize()?;
            // libvirt's test driver has no UPDATE_CPU
            let m = match flavor {
                Flavor::Qemu | Flavor::Lxc => &flags::GET_XML_DESC,
                Flavor::Test => &flags::GET_XML_DESC_TEST,
            };
            m.check(flags, flavor)?;
            let opts = xml_options(m, flags);
            call.reply(&run!(m, ops::GetXml { opts }))
        }
        "GetState" => {
            let flags: u32 = body.deserialize()?;
            flags::GET_STATE.check(flags, flavor)?;
            exec.authorize_domain(call, ops::Operation::ReadDomain, &info)
                .await?;
            let s = info.status;
            call.reply(&((s.state.code(), s.reason.code(s.state)),))
        }
        "GetStats" => {
            let (stats, flags): (u32, u32) = body.deserialize()?;
            let m = &flags::DOMAIN_LIST_GET_STATS;
            m.check(flags, flavor)?;
            let groups = stats_groups(stats, m.has(flags, "enforce"))?;
            call.reply(&typed_params(&run!(m, ops::GetStats { groups })))
        }
        "GetMetadata" => {
            let (kind, uri, flags): (i32, String, u32) = body.deserialize()?;
            let m = &flags::GET_METADATA;
            m.check(flags, flavor)?;
            let kind = metadata_kind(kind, &uri, "virDomainGetMetadata")?;
            let affect = affect(m, flags);
            call.reply(&run!(m, ops::GetMetadata { kind, affect }))
        }
        "SetMetadata" => {
            let (kind, value, key, uri, flags): (i32, String, String, String, u32) =
                body.deserialize()?;
            let m = &flags::SET_METADATA;
            m.check(flags, flavor)?;
            let api = "virDomainSetMetadata";
            let kind = metadata_kind(kind, &uri, api)?;
            match (&kind, key.is_empty()) {
                (MetadataKind::Element(_), true) => {
                    return Err(bare(format!("key in {api} must not be NULL")));
                }
                (MetadataKind::Title | MetadataKind::Description, false) => {
                    return Err(bare(format!("key in {api} must be NULL")));
                }
                _ => {}
            }
            let req = ops::SetMetadata {
                kind,
                value: Some(value),
                key: Some(key),
                affect: affect(m, flags),
            };
            done!(m, req)
        }
        "ManagedSave" => {
            let flags: u32 = body.deserialize()?;
            let m = &flags::MANAGED_SAVE;
            m.check(flags, flavor)?;
            let opts = ManagedSaveOptions {
                running: m.has(flags, "running"),
                paused: m.has(flags, "paused"),
            };
            done!(m, ops::ManagedSave { opts })
        }
        "HasManagedSaveImage" => {
            let flags: u32 = body.deserialize()?;
            let m = &flags::HAS_MANAGED_SAVE;
            m.check(flags, flavor)?;
            call.reply(&run!(m, ops::HasManagedSave {}))
        }
        "ManagedSaveRemove" => {
            let flags: u32 = body.deserialize()?;
            let m = &flags::MANAGED_SAVE_REMOVE;
            m.check(flags, flavor)?;
            done!(m, ops::ManagedSaveRemove {})
        }
        "GetVcpus" => {
            let flags: u32 = body.deserialize()?;
            let m = &flags::GET_VCPUS;
            m.check(flags, flavor)?;
            let opts = VcpuOptions {
                affect: affect(m, flags),
                maximum: m.has(flags, "maximum"),
            };
            call.reply(&run!(m, ops::GetVcpus { opts }))
        }
        "SetVcpus" => {
            let (count, flags): (u32, u32) = body.deserialize()?;
            let m = &flags::SET_VCPUS;
            m.check(flags, flavor)?;
            let opts = VcpuOptions {
                affect: affect(m, flags),
                maximum: m.has(flags, "maximum"),
            };
            done!(m, ops::SetVcpus { count, opts })
        }
        "SetMemory" => {
            let (kib, flags): (u64, u32) = body.deserialize()?;
            let m = &flags::SET_MEMORY;
            m.check(flags, flavor)?;
            let opts = MemoryOptions {
                affect: affect(m, flags),
                maximum: m.has(flags, "maximum"),
            };
            done!(m, ops::SetMemory { kib, opts })
        }
        "GetVcpuPinInfo" => {
            let flags: u32 = body.deserialize()?;
            let m = &flags::GET_VCPU_PIN_INFO;
            m.check(flags, flavor)?;
            let affect = affect(m, flags);
            let mut pins = run!(m, ops::GetVcpuPinning { affect });
            if flavor == Flavor::Test {
                // test:///default's host has 8 CPUs, whatever the real one has
                for row in &mut pins {
                    row.resize(TEST_HOST_CPUS, true);
                }
            }
            call.reply(&pins)
        }
        "MemoryStats" => {
            let flags: u32 = body.deserialize()?;
            let m = &flags::MEMORY_STATS;
            m.check(flags, flavor)?;
            let stats: Dict<i32, u64> = run!(m, ops::MemoryStats {})
                .into_iter()
                .map(|(k, v)| (k.tag(), v))
                .collect();
            call.reply(&stats)
        }
        "InterfaceAddresses" => {
            let (source, flags): (u32, u32) = body.deserialize()?;
            let m = &flags::INTERFACE_ADDRESSES;
            m.check(flags, flavor)?;
            let source = match source {
                0 => AddressSource::Lease,
                1 => AddressSource::Agent,
                2 => AddressSource::Arp,
                n => {
                    return Err(libvirt(
                        Code::ArgumentUnsupported,
                        Some(&format!("Unknown IP address data source {n}")),
                    ));
                }
            };
            let ifaces = run!(m, ops::InterfaceAddresses { source });
            let out: Vec<Iface> = ifaces
                .into_iter()
                .map(|i| {
                    let addrs = i
                        .addrs
                        .into_iter()
                        .map(|a| (i32::from(a.ipv6), a.addr, a.prefix))
                        .collect();
                    (i.name, i.hwaddr.unwrap_or_default(), addrs)
                })
                .collect();
            call.reply(&out)
        }
        "GetHostname" => {
            let flags: u32 = body.deserialize()?;
            let m = &flags::GET_HOSTNAME;
            m.check(flags, flavor)?;
            exec.authorize_domain(call, ops::Operation::GuestInfo, &info)
                .await?;
            if m.has(flags, "lease") && !m.has(flags, "agent") {
                return Err(libvirt(
                    Code::NoHostname,
                    Some("virtbus runs no networks that lease addresses"),
                ));
            }
            let types = GuestInfoTypes {
                hostname: true,
                os: false,
                timezone: false,
                interfaces: false,
            };
            let info = run!(m, ops::GuestInfoOp { types });
            let name = info
                .hostname
                .ok_or_else(|| libvirt(Code::NoHostname, None))?;
            call.reply(&name)
        }
        "FSFreeze" | "FSThaw" => {
            let (mountpoints, flags): (Vec<String>, u32) = body.deserialize()?;
            let m = if member == "FSFreeze" {
                &flags::FS_FREEZE
            } else {
                &flags::FS_THAW
            };
            m.check(flags, flavor)?;
            let n = if member == "FSFreeze" {
                run!(m, ops::FsFreeze { mountpoints })
            } else {
                run!(m, ops::FsThaw { mountpoints })
            };
            call.reply(&n)
        }
        "AttachDevice" | "DetachDevice" | "UpdateDevice" => {
            let (xml, flags): (String, u32) = body.deserialize()?;
            let m = match member {
                "AttachDevice" => &flags::ATTACH_DEVICE,
                "DetachDevice" => &flags::DETACH_DEVICE,
                _ => &flags::UPDATE_DEVICE,
            };
            m.check(flags, flavor)?;
            let opts = DeviceOptions {
                affect: affect(m, flags),
                force: member == "UpdateDevice" && m.has(flags, "force"),
            };
            match member {
                "AttachDevice" => done!(m, ops::AttachDevice { xml, opts }),
                "DetachDevice" => done!(m, ops::DetachDevice { xml, opts }),
                _ => done!(m, ops::UpdateDevice { xml, opts }),
            }
        }
        "ListDomainSnapshots" => {
            let flags: u32 = body.deserialize()?;
            let m = &flags::LIST_SNAPSHOTS;
            m.check(flags, flavor)?;
            let opts = snapshot_filters(m, flags);
            let names = run!(m, ops::SnapshotList { opts });
            reply_snapshots(call, c, &dom, &names)
        }
        "SnapshotCurrent" => {
            let flags: u32 = body.deserialize()?;
            flags::SNAPSHOT_CURRENT.check(flags, flavor)?;
            exec.authorize_domain(call, ops::Operation::SnapshotRead, &info)
                .await?;
            let name = info.current_snapshot.as_deref().ok_or_else(|| {
                libvirt(
                    Code::NoDomainSnapshot,
                    Some("the domain does not have a current snapshot"),
                )
            })?;
            call.reply(&ObjectPath::from_string_unchecked(
                c.snapshot_path(&dom.uuid(), name),
            ))
        }
        "SnapshotLookupByName" => {
            let (name, flags): (String, u32) = body.deserialize()?;
            let m = &flags::SNAPSHOT_LOOKUP_BY_NAME;
            m.check(flags, flavor)?;
            let info = run!(m, ops::SnapshotRead { name });
            call.reply(&ObjectPath::from_string_unchecked(
                c.snapshot_path(&dom.uuid(), &info.name),
            ))
        }
        "SnapshotCreateXML" => {
            let (xml, flags): (String, u32) = body.deserialize()?;
            let m = &flags::SNAPSHOT_CREATE_XML;
            m.check(flags, flavor)?;
            let has = |o| m.has(flags, o);
            let opts = SnapshotCreateOptions {
                disk_only: has("disk-only"),
                quiesce: has("quiesce"),
                halt: has("halt"),
                atomic: has("atomic"),
                no_metadata: has("no-metadata"),
                redefine: has("redefine"),
                current: has("current"),
                live: has("live"),
                reuse_external: has("reuse-external"),
            };
            let (name, _) = run!(m, ops::SnapshotCreate { xml, opts });
            call.reply(&ObjectPath::from_string_unchecked(
                c.snapshot_path(&dom.uuid(), &name),
            ))
        }
        m => Err(no_support(&unsupported_api(m))),
    }
}

/// A list of snapshot paths.
pub(super) fn reply_snapshots(
    call: &Call,
    c: &Connect,
    dom: &Arc<Domain>,
    names: &[String],
) -> Reply<Message> {
    let paths: Vec<ObjectPath<'static>> = names
        .iter()
        .map(|n| ObjectPath::from_string_unchecked(c.snapshot_path(&dom.uuid(), n)))
        .collect();
    call.reply(&paths)
}

/// The libvirt API behind a Domain method virtbus does not implement.
fn unsupported_api(member: &str) -> String {
    let api = match member {
        "AbortJob" => "virDomainAbortJob",
        "AddIOThread" => "virDomainAddIOThread",
        "BlockCommit" => "virDomainBlockCommit",
        "BlockCopy" => "virDomainBlockCopy",
        "BlockJobAbort" => "virDomainBlockJobAbort",
        "BlockPeek" => "virDomainBlockPeek",
        "BlockPull" => "virDomainBlockPull",
        "BlockRebase" => "virDomainBlockRebase",
        "BlockResize" => "virDomainBlockResize",
        "BlockJobSetSpeed" => "virDomainBlockJobSetSpeed",
        "CoreDump" => "virDomainCoreDumpWithFormat",
        "CreateWithFiles" => "virDomainCreateWithFiles",
        "DelIOThread" => "virDomainDelIOThread",
        "FSTrim" => "virDomainFSTrim",
        "GetBlockIOParameters" => "virDomainGetBlkioParameters",
        "GetBlockIOTune" => "virDomainGetBlockIoTune",
        "GetBlockJobInfo" => "virDomainGetBlockJobInfo",
        "GetControlInfo" => "virDomainGetControlInfo",
        "GetDiskErrors" => "virDomainGetDiskErrors",
        "GetEmulatorPinInfo" => "virDomainGetEmulatorPinInfo",
        "GetFSInfo" => "virDomainGetFSInfo",
        "GetGuestVcpus" => "virDomainGetGuestVcpus",
        "GetInterfaceParameters" => "virDomainGetInterfaceParameters",
        "GetIOThreadInfo" => "virDomainGetIOThreadInfo",
        "GetJobInfo" => "virDomainGetJobInfo",
        "GetJobStats" => "virDomainGetJobStats",
        "GetMemoryParameters" => "virDomainGetMemoryParameters",
        "GetNumaParameters" => "virDomainGetNumaParameters",
        "GetPerfEvents" => "virDomainGetPerfEvents",
        "GetSchedulerParameters" => "virDomainGetSchedulerParametersFlags",
        "GetSecurityLabelList" => "virDomainGetSecurityLabelList",
        "GetTime" => "virDomainGetTime",
        "MemoryPeek" => "virDomainMemoryPeek",
        "MigrateGetCompressionCache" => "virDomainMigrateGetCompressionCache",
        "MigrateGetMaxSpeed" => "virDomainMigrateGetMaxSpeed",
        "MigrateSetCompressionCache" => "virDomainMigrateSetCompressionCache",
        "MigrateSetMaxDowntime" => "virDomainMigrateSetMaxDowntime",
        "MigrateSetMaxSpeed" => "virDomainMigrateSetMaxSpeed",
        "MigrateStartPostCopy" => "virDomainMigrateStartPostCopy",
        "MigrateToURI3" => "virDomainMigrateToURI3",
        "OpenGraphicsFD" => "virDomainOpenGraphicsFD",
        "PinEmulator" => "virDomainPinEmulator",
        "PinIOThread" => "virDomainPinIOThread",
        "PinVcpu" => "virDomainPinVcpuFlags",
        "PMWakeup" => "virDomainPMWakeup",
        "Rename" => "virDomainRename",
        "Save" => "virDomainSaveFlags",
        "SendKey" => "virDomainSendKey",
        "SendProcessSignal" => "virDomainSendProcessSignal",
        "SetBlockIOParameters" => "virDomainSetBlkioParameters",
        "SetBlockIOTune" => "virDomainSetBlockIoTune",
        "SetGuestVcpus" => "virDomainSetGuestVcpus",
        "SetInterfaceParameters" => "virDomainSetInterfaceParameters",
        "SetMemoryParameters" => "virDomainSetMemoryParameters",
        "SetMemoryStatsPeriod" => "virDomainSetMemoryStatsPeriod",
        "SetNumaParameters" => "virDomainSetNumaParameters",
        "SetPerfEvents" => "virDomainSetPerfEvents",
        "SetSchedulerParameters" => "virDomainSetSchedulerParametersFlags",
        "SetUserPassword" => "virDomainSetUserPassword",
        "SetTime" => "virDomainSetTime",
        m => return format!("virDomain{m}"),
    };
    api.to_owned()
}
