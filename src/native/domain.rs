//! `org.virtbus1.Domain`: one domain's lifecycle, XML, statistics and snapshots.

use std::{collections::HashMap, sync::Arc};

use zbus::{Message, OwnedObjectPath, Variant};

use super::{
    Call, Ctx,
    errors::{BusError, Reply},
    options::{OptionMap, Options},
    paths,
};
use crate::{
    core::{
        Domain, Error,
        console::ConsoleOptions,
        metadata::MetadataKind,
        ops,
        options::{
            AddressSource, Affect, DestroyOptions, DeviceOptions, ManagedSaveOptions,
            MemoryOptions, PowerMode, SnapshotCreateOptions, SnapshotListOptions, StartOptions,
            StatsGroup, UndefineOptions, VcpuOptions, XmlOptions,
        },
    },
    drivers::{GuestInfo, GuestInfoTypes, StatValue},
};

/// Options "live" and "config": which definition a call reads or changes.
fn affect(o: &mut Options<'_>) -> Reply<Affect> {
    Ok(Affect {
        live: o.bool("live")?,
        config: o.bool("config")?,
    })
}

fn metadata_kind(kind: &str, uri: String) -> Reply<MetadataKind> {
    match kind {
        "title" | "description" if !uri.is_empty() => Err(Error::InvalidArgument(format!(
            "the {kind} has no namespace; pass an empty uri"
        ))
        .into()),
        "title" => Ok(MetadataKind::Title),
        "description" => Ok(MetadataKind::Description),
        "element" if uri.is_empty() => Err(Error::InvalidArgument(
            "an element is found by its namespace uri, which is empty".into(),
        )
        .into()),
        "element" => Ok(MetadataKind::Element(uri)),
        k => Err(Error::InvalidArgument(format!(
            "metadata kind must be one of title, description, element; not '{k}'"
        ))
        .into()),
    }
}

/// Statistics as a dictionary of variants.
pub(super) fn stats_dict(stats: crate::drivers::Stats) -> HashMap<String, Variant<'static>> {
    stats
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                StatValue::U64(n) => Variant::U64(n),
                StatValue::I64(n) => Variant::I64(n),
                StatValue::Str(s) => Variant::from(s),
            };
            (k, v)
        })
        .collect()
}

/// The snapshot filters of ListSnapshots and Snapshot.ListChildren.
pub(super) fn snapshot_filters(o: &mut Options<'_>) -> Reply<SnapshotListOptions> {
    Ok(SnapshotListOptions {
        roots: false,
        leaves: o.bool("leaves")?,
        no_leaves: o.bool("no-leaves")?,
        metadata: o.bool("metadata")?,
        no_metadata: o.bool("no-metadata")?,
        inactive: o.bool("inactive")?,
        active: o.bool("active")?,
        disk_only: o.bool("disk-only")?,
        internal: o.bool("internal")?,
        external: o.bool("external")?,
        topological: o.bool("topological")?,
    })
}

/// Option "groups" of GetStats and GetAllDomainStats.
pub(super) fn stats_groups(o: &mut Options<'_>) -> Reply<Vec<StatsGroup>> {
    o.strings("groups")?
        .iter()
        .map(|g| {
            StatsGroup::parse(g).ok_or_else(|| {
                let all: Vec<&str> = StatsGroup::ALL.iter().map(|g| g.name()).collect();
                Error::InvalidArgument(format!(
                    "unknown statistics group '{g}' (known: {})",
                    all.join(", ")
                ))
                .into()
            })
        })
        .collect()
}

/// One entry of `InterfaceAddresses`: name, hardware address, (type, address, prefix).
type GuestIface = (String, String, Vec<(i32, String, u32)>);

/// The parts `GetGuestInfo` asks for; none named means all.
fn guest_info_types(names: &[String]) -> Reply<GuestInfoTypes> {
    if names.is_empty() {
        return Ok(GuestInfoTypes::ALL);
    }
    let mut t = GuestInfoTypes {
        hostname: false,
        os: false,
        timezone: false,
        interfaces: false,
    };
    for n in names {
        match n.as_str() {
            "hostname" => t.hostname = true,
            "os" => t.os = true,
            "timezone" => t.timezone = true,
            "interfaces" => t.interfaces = true,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "option 'types' takes hostname, os, timezone, interfaces; not '{other}'"
                ))
                .into());
            }
        }
    }
    Ok(t)
}

/// Guest info as libvirt's typed-parameter keys.
fn guest_info_map(gi: GuestInfo) -> HashMap<String, Variant<'static>> {
    let mut m: HashMap<String, Variant<'static>> = HashMap::new();
    if let Some(h) = gi.hostname {
        m.insert("hostname".into(), Variant::from(h));
    }
    for (k, v) in gi.os {
        m.insert(format!("os.{k}"), Variant::from(v));
    }
    if let Some((name, offset)) = gi.timezone {
        m.insert("timezone.name".into(), Variant::from(name));
        m.insert(
            "timezone.offset".into(),
            Variant::I32(offset.clamp(i32::MIN.into(), i32::MAX.into()) as i32),
        );
    }
    if let Some(ifs) = gi.interfaces {
        m.insert("if.count".into(), Variant::U32(ifs.len() as u32));
        for (n, i) in ifs.into_iter().enumerate() {
            m.insert(format!("if.{n}.name"), Variant::from(i.name));
            if let Some(h) = i.hwaddr {
                m.insert(format!("if.{n}.hwaddr"), Variant::from(h));
            }
            m.insert(
                format!("if.{n}.addr.count"),
                Variant::U32(i.addrs.len() as u32),
            );
            for (j, a) in i.addrs.into_iter().enumerate() {
                let kind = if a.ipv6 { "ipv6" } else { "ipv4" };
                m.insert(format!("if.{n}.addr.{j}.type"), Variant::from(kind));
                m.insert(format!("if.{n}.addr.{j}.addr"), Variant::from(a.addr));
                m.insert(format!("if.{n}.addr.{j}.prefix"), Variant::U32(a.prefix));
            }
        }
    }
    m
}

fn power_mode(o: &mut Options<'_>) -> Reply<PowerMode> {
    match o.string("mode")? {
        None => Ok(PowerMode::Default),
        Some(m) => PowerMode::parse(&m).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "option 'mode' must be one of {}; not '{m}'",
                PowerMode::NAMES.join(", ")
            ))
            .into()
        }),
    }
}

/// Options "live" and "config" with "maximum": which definition and which figure a call
/// reads or changes.
fn sizing(o: &mut Options<'_>) -> Reply<(Affect, bool)> {
    Ok((affect(o)?, o.bool("maximum")?))
}

/// Translate one call into its core request, run it through the one execution path, and
/// encode the result.
pub(super) async fn call(
    ctx: &Ctx,
    call: &Call,
    dom: &Arc<Domain>,
    member: &str,
) -> Reply<Message> {
    let body = call.msg.body();
    let exec = ctx.exec();
    // Parse a call whose only argument is its options dictionary.
    let opts =
        || -> Reply<Options<'_>> { Ok(Options::new(method_name(member), body.deserialize()?)) };
    macro_rules! run {
        ($req:expr) => {
            exec.run(call, dom, $req).await?
        };
    }
    match member {
        "Start" => {
            let mut o = opts()?;
            let opts = StartOptions {
                paused: o.bool("paused")?,
                force_boot: o.bool("force-boot")?,
            };
            o.finish()?;
            run!(ops::Start { opts })
        }
        "Shutdown" => {
            let mut o = opts()?;
            let mode = power_mode(&mut o)?;
            o.finish()?;
            run!(ops::Shutdown { mode })
        }
        "Reboot" => {
            let mut o = opts()?;
            let mode = power_mode(&mut o)?;
            o.finish()?;
            run!(ops::Reboot { mode })
        }
        "Destroy" => {
            let mut o = opts()?;
            let opts = DestroyOptions {
                graceful: o.bool("graceful")?,
            };
            o.finish()?;
            run!(ops::Destroy { opts })
        }
        "Reset" => {
            opts()?.finish()?;
            run!(ops::Reset {})
        }
        "Suspend" => {
            opts()?.finish()?;
            run!(ops::Suspend {})
        }
        "Resume" => {
            opts()?.finish()?;
            run!(ops::Resume {})
        }
        "InjectNMI" => {
            opts()?.finish()?;
            run!(ops::InjectNmi {})
        }
        "OpenConsole" => {
            let (device, opts): (String, OptionMap) = body.deserialize()?;
            let mut o = Options::new("OpenConsole", opts);
            let force = o.bool("force")?;
            o.finish()?;
            let opts = ConsoleOptions { device, force };
            let fd = run!(ops::OpenConsole { opts, peer: None })
                .ok_or_else(|| Error::Failed("the console session gave no socket".into()))?;
            return call.reply(&zbus::OwnedFd::from(fd));
        }
        "OpenGraphicsFD" => {
            let mut o = opts()?;
            let index = o.u32("index")?.unwrap_or(0);
            let skipauth = o.bool("skipauth")?;
            o.finish()?;
            let fd = run!(ops::OpenGraphics { index, skipauth });
            return call.reply(&zbus::OwnedFd::from(fd));
        }
        "Undefine" => {
            let mut o = opts()?;
            let opts = UndefineOptions {
                snapshots_metadata: o.bool("snapshots-metadata")?,
                // checkpoints are made over libvirt RPC only for now
                checkpoints_metadata: false,
                managed_save: o.bool("managed-save")?,
                nvram: o.bool("nvram")?,
                keep_nvram: o.bool("keep-nvram")?,
                keep_tpm: o.bool("keep-tpm")?,
            };
            o.finish()?;
            run!(ops::Undefine { opts })
        }
        "FSFreeze" => {
            let mut o = opts()?;
            let mountpoints = o.strings("mountpoints")?;
            o.finish()?;
            return call.reply(&run!(ops::FsFreeze { mountpoints }));
        }
        "FSThaw" => {
            let mut o = opts()?;
            let mountpoints = o.strings("mountpoints")?;
            o.finish()?;
            return call.reply(&run!(ops::FsThaw { mountpoints }));
        }
        "GetXML" => {
            let mut o = opts()?;
            let opts = XmlOptions {
                inactive: o.bool("inactive")?,
                secure: o.bool("secure")?,
                migratable: o.bool("migratable")?,
                update_cpu: o.bool("update-cpu")?,
            };
            o.finish()?;
            return call.reply(&run!(ops::GetXml { opts }));
        }
        "GetStats" => {
            let mut o = opts()?;
            let groups = stats_groups(&mut o)?;
            o.finish()?;
            return call.reply(&stats_dict(run!(ops::GetStats { groups })));
        }
        "ManagedSave" => {
            let mut o = opts()?;
            let opts = ManagedSaveOptions {
                running: o.bool("running")?,
                paused: o.bool("paused")?,
            };
            o.finish()?;
            run!(ops::ManagedSave { opts })
        }
        "ManagedSaveRemove" => {
            opts()?.finish()?;
            run!(ops::ManagedSaveRemove {})
        }
        "GetMetadata" => {
            let (kind, uri, opts): (String, String, OptionMap) = body.deserialize()?;
            let mut o = Options::new("GetMetadata", opts);
            let affect = affect(&mut o)?;
            o.finish()?;
            let kind = metadata_kind(&kind, uri)?;
            return call.reply(&run!(ops::GetMetadata { kind, affect }));
        }
        "SetMetadata" => {
            let (kind, value, key, uri, opts): (String, String, String, String, OptionMap) =
                body.deserialize()?;
            let mut o = Options::new("SetMetadata", opts);
            let affect = affect(&mut o)?;
            o.finish()?;
            let kind = metadata_kind(&kind, uri)?;
            run!(ops::SetMetadata {
                kind,
                value: Some(value),
                key: Some(key),
                affect
            })
        }
        "GetVCPUs" => {
            let mut o = opts()?;
            let (affect, maximum) = sizing(&mut o)?;
            o.finish()?;
            let opts = VcpuOptions { affect, maximum };
            return call.reply(&run!(ops::GetVcpus { opts }));
        }
        "SetVCPUs" => {
            let (count, opts): (u32, OptionMap) = body.deserialize()?;
            let mut o = Options::new("SetVCPUs", opts);
            let (affect, maximum) = sizing(&mut o)?;
            o.finish()?;
            let opts = VcpuOptions { affect, maximum };
            run!(ops::SetVcpus { count, opts })
        }
        "SetMemory" => {
            let (kib, opts): (u64, OptionMap) = body.deserialize()?;
            let mut o = Options::new("SetMemory", opts);
            let (affect, maximum) = sizing(&mut o)?;
            o.finish()?;
            let opts = MemoryOptions { affect, maximum };
            run!(ops::SetMemory { kib, opts })
        }
        "GetVCPUPinning" => {
            let mut o = opts()?;
            let affect = affect(&mut o)?;
            o.finish()?;
            return call.reply(&run!(ops::GetVcpuPinning { affect }));
        }
        "MemoryStats" => {
            opts()?.finish()?;
            let stats: HashMap<&str, u64> = run!(ops::MemoryStats {})
                .into_iter()
                .map(|(k, v)| (k.name(), v))
                .collect();
            return call.reply(&stats);
        }
        "AttachDevice" | "DetachDevice" | "UpdateDevice" => {
            let (xml, opts): (String, OptionMap) = body.deserialize()?;
            let mut o = Options::new(method_name(member), opts);
            let opts = DeviceOptions {
                affect: affect(&mut o)?,
                force: if member == "UpdateDevice" {
                    o.bool("force")?
                } else {
                    false
                },
            };
            o.finish()?;
            match member {
                "AttachDevice" => run!(ops::AttachDevice { xml, opts }),
                "DetachDevice" => run!(ops::DetachDevice { xml, opts }),
                _ => run!(ops::UpdateDevice { xml, opts }),
            }
        }
        "GetGuestInfo" => {
            let mut o = opts()?;
            let types = guest_info_types(&o.strings("types")?)?;
            o.finish()?;
            return call.reply(&guest_info_map(run!(ops::GuestInfoOp { types })));
        }
        "InterfaceAddresses" => {
            let mut o = opts()?;
            let source = match o.string("source")?.as_deref() {
                None | Some("agent") => AddressSource::Agent,
                Some("lease") => AddressSource::Lease,
                Some("arp") => AddressSource::Arp,
                Some(s) => {
                    return Err(Error::InvalidArgument(format!(
                        "option 'source' must be 'agent', 'lease' or 'arp', not '{s}'"
                    ))
                    .into());
                }
            };
            o.finish()?;
            let out: Vec<GuestIface> = run!(ops::InterfaceAddresses { source })
                .into_iter()
                .map(|i| {
                    (
                        i.name,
                        i.hwaddr.unwrap_or_default(),
                        i.addrs
                            .into_iter()
                            .map(|a| (i32::from(a.ipv6), a.addr, a.prefix))
                            .collect(),
                    )
                })
                .collect();
            return call.reply(&out);
        }
        "CreateSnapshot" => {
            let (xml, opts): (String, OptionMap) = body.deserialize()?;
            let mut o = Options::new("CreateSnapshot", opts);
            let opts = SnapshotCreateOptions {
                disk_only: o.bool("disk-only")?,
                quiesce: o.bool("quiesce")?,
                halt: o.bool("halt")?,
                atomic: o.bool("atomic")?,
                no_metadata: o.bool("no-metadata")?,
                redefine: o.bool("redefine")?,
                current: o.bool("current")?,
                live: o.bool("live")?,
                reuse_external: o.bool("reuse-external")?,
            };
            o.finish()?;
            let path = match run!(ops::SnapshotCreate { xml, opts }) {
                (n, true) => paths::owned(paths::snapshot(&dom.uuid(), &n)),
                (_, false) => paths::root(),
            };
            return call.reply(&path);
        }
        "ListSnapshots" => {
            let mut o = opts()?;
            let opts = SnapshotListOptions {
                roots: o.bool("roots")?,
                ..snapshot_filters(&mut o)?
            };
            o.finish()?;
            let uuid = dom.uuid();
            let out: Vec<OwnedObjectPath> = run!(ops::SnapshotList { opts })
                .iter()
                .map(|n| paths::owned(paths::snapshot(&uuid, n)))
                .collect();
            return call.reply(&out);
        }
        "LookupSnapshot" => {
            let name: String = body.deserialize()?;
            let info = run!(ops::SnapshotRead { name });
            return call.reply(&paths::owned(paths::snapshot(&dom.uuid(), &info.name)));
        }
        m => return Err(BusError::unknown_method(super::schema::DOMAIN_IFACE, m)),
    }
    call.reply_empty()
}

/// The method's name with a static lifetime, as option errors quote it.
fn method_name(member: &str) -> &'static str {
    const METHODS: &[&str] = &[
        "Start",
        "Shutdown",
        "Reboot",
        "Destroy",
        "Reset",
        "Suspend",
        "Resume",
        "InjectNMI",
        "OpenConsole",
        "OpenGraphicsFD",
        "Undefine",
        "FSFreeze",
        "FSThaw",
        "GetXML",
        "GetStats",
        "ManagedSave",
        "ManagedSaveRemove",
        "GetVCPUs",
        "GetVCPUPinning",
        "MemoryStats",
        "AttachDevice",
        "DetachDevice",
        "UpdateDevice",
        "GetGuestInfo",
        "InterfaceAddresses",
        "ListSnapshots",
    ];
    METHODS
        .iter()
        .find(|m| **m == member)
        .copied()
        .unwrap_or("call")
}
