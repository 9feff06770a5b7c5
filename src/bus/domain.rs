//! `org.virtbus1.Domain`: one domain's lifecycle, XML, statistics and snapshots.

use std::{collections::HashMap, sync::Arc};

use zbus::{Message, OwnedObjectPath, Variant};

use super::{
    Call, Ctx,
    authz::{Action, Details},
    errors::{BusError, Reply},
    options::{OptionMap, Options},
    paths,
};
use crate::{
    core::{
        Domain, Error,
        metadata::MetadataKind,
        options::{
            Affect, DestroyOptions, DeviceOptions, ManagedSaveOptions, PowerMode,
            SnapshotCreateOptions, SnapshotListOptions, StartOptions, StatsGroup, UndefineOptions,
            VcpuOptions, XmlOptions,
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
                "option 'mode' must be one of default, acpi, agent; not '{m}'"
            ))
            .into()
        }),
    }
}

pub(super) async fn call(
    ctx: &Ctx,
    call: &Call,
    dom: &Arc<Domain>,
    member: &str,
) -> Reply<Message> {
    let body = call.msg.body();
    let info = dom.info();
    let core = &ctx.core;
    // Methods whose reply is empty: parse options, authorize, act.
    let simple = |action| {
        let info = &info;
        async move { ctx.authorize_domain(call, action, info).await }
    };
    match member {
        "Start" => {
            let mut o = Options::new("Start", body.deserialize()?);
            let opts = StartOptions {
                paused: o.bool("paused")?,
                force_boot: o.bool("force-boot")?,
            };
            o.finish()?;
            simple(Action::DomainStart).await?;
            core.start(dom, opts).await?;
        }
        "Shutdown" | "Reboot" => {
            let mut o = Options::new(
                if member == "Shutdown" {
                    "Shutdown"
                } else {
                    "Reboot"
                },
                body.deserialize()?,
            );
            let mode = power_mode(&mut o)?;
            o.finish()?;
            simple(Action::DomainInitControl).await?;
            if member == "Shutdown" {
                core.shutdown(dom, mode).await?;
            } else {
                core.reboot(dom, mode).await?;
            }
        }
        "Destroy" => {
            let mut o = Options::new("Destroy", body.deserialize()?);
            let opts = DestroyOptions {
                graceful: o.bool("graceful")?,
            };
            o.finish()?;
            simple(Action::DomainStop).await?;
            core.destroy(dom, opts).await?;
        }
        "Reset" => {
            Options::new("Reset", body.deserialize()?).finish()?;
            simple(Action::DomainReset).await?;
            core.reset(dom).await?;
        }
        "Suspend" => {
            Options::new("Suspend", body.deserialize()?).finish()?;
            simple(Action::DomainSuspend).await?;
            core.suspend(dom).await?;
        }
        "Resume" => {
            Options::new("Resume", body.deserialize()?).finish()?;
            simple(Action::DomainSuspend).await?;
            core.resume(dom).await?;
        }
        "Undefine" => {
            let mut o = Options::new("Undefine", body.deserialize()?);
            let opts = UndefineOptions {
                snapshots_metadata: o.bool("snapshots-metadata")?,
                managed_save: o.bool("managed-save")?,
            };
            o.finish()?;
            simple(Action::DomainDelete).await?;
            core.undefine(dom, opts).await?;
        }
        "FSFreeze" | "FSThaw" => {
            let method = if member == "FSFreeze" {
                "FSFreeze"
            } else {
                "FSThaw"
            };
            let mut o = Options::new(method, body.deserialize()?);
            let mountpoints = o.strings("mountpoints")?;
            o.finish()?;
            simple(Action::DomainFsFreeze).await?;
            let n = if member == "FSFreeze" {
                core.fs_freeze(dom, &mountpoints).await?
            } else {
                core.fs_thaw(dom, &mountpoints).await?
            };
            ctx.signals_sent().await;
            return call.reply(&n);
        }
        "GetXML" => {
            let mut o = Options::new("GetXML", body.deserialize()?);
            let opts = XmlOptions {
                inactive: o.bool("inactive")?,
                secure: o.bool("secure")?,
            };
            o.finish()?;
            ctx.authorize_domain(call, Action::DomainRead, &info)
                .await?;
            if opts.secure {
                ctx.authorize_domain(call, Action::DomainReadSecure, &info)
                    .await?;
            }
            return call.reply(&core.domain_xml(dom, opts)?);
        }
        "GetStats" => {
            let mut o = Options::new("GetStats", body.deserialize()?);
            let groups = stats_groups(&mut o)?;
            o.finish()?;
            ctx.authorize_domain(call, Action::DomainRead, &info)
                .await?;
            return call.reply(&stats_dict(core.stats_in(dom, &groups).await?));
        }
        "ManagedSave" => {
            let mut o = Options::new("ManagedSave", body.deserialize()?);
            let opts = ManagedSaveOptions {
                running: o.bool("running")?,
                paused: o.bool("paused")?,
            };
            o.finish()?;
            opts.validate()?;
            simple(Action::DomainStop).await?;
            core.managed_save(dom, opts).await?;
        }
        "ManagedSaveRemove" => {
            Options::new("ManagedSaveRemove", body.deserialize()?).finish()?;
            simple(Action::DomainDelete).await?;
            core.managed_save_remove(dom).await?;
        }
        "GetMetadata" => {
            let (kind, uri, opts): (String, String, OptionMap) = body.deserialize()?;
            let mut o = Options::new("GetMetadata", opts);
            let affect = affect(&mut o)?;
            o.finish()?;
            let kind = metadata_kind(&kind, uri)?;
            ctx.authorize_domain(call, Action::DomainRead, &info)
                .await?;
            return call.reply(&core.metadata(dom, &kind, affect)?);
        }
        "SetMetadata" => {
            let (kind, value, key, uri, opts): (String, String, String, String, OptionMap) =
                body.deserialize()?;
            let mut o = Options::new("SetMetadata", opts);
            let affect = affect(&mut o)?;
            o.finish()?;
            let kind = metadata_kind(&kind, uri)?;
            simple(Action::DomainWrite).await?;
            core.set_metadata(dom, kind, Some(&value), Some(&key), affect)
                .await?;
        }
        "GetVCPUs" => {
            let mut o = Options::new("GetVCPUs", body.deserialize()?);
            let opts = VcpuOptions {
                affect: affect(&mut o)?,
                maximum: o.bool("maximum")?,
            };
            o.finish()?;
            ctx.authorize_domain(call, Action::DomainRead, &info)
                .await?;
            return call.reply(&core.vcpu_count(dom, opts)?);
        }
        "SetVCPUs" => {
            let (count, opts): (u32, OptionMap) = body.deserialize()?;
            let mut o = Options::new("SetVCPUs", opts);
            let opts = VcpuOptions {
                affect: affect(&mut o)?,
                maximum: o.bool("maximum")?,
            };
            o.finish()?;
            opts.validate_set()?;
            simple(Action::DomainWrite).await?;
            core.set_vcpus(dom, count, opts).await?;
        }
        "GetVCPUPinning" => {
            let mut o = Options::new("GetVCPUPinning", body.deserialize()?);
            let affect = affect(&mut o)?;
            o.finish()?;
            ctx.authorize_domain(call, Action::DomainRead, &info)
                .await?;
            return call.reply(&core.vcpu_pinning(dom, affect).await?);
        }
        "MemoryStats" => {
            Options::new("MemoryStats", body.deserialize()?).finish()?;
            ctx.authorize_domain(call, Action::DomainRead, &info)
                .await?;
            let stats: HashMap<&str, u64> = core
                .memory_stats(dom)
                .await?
                .into_iter()
                .map(|(k, v)| (k.name(), v))
                .collect();
            return call.reply(&stats);
        }
        "AttachDevice" | "DetachDevice" | "UpdateDevice" => {
            let (xml, opts): (String, OptionMap) = body.deserialize()?;
            let name = match member {
                "AttachDevice" => "AttachDevice",
                "DetachDevice" => "DetachDevice",
                _ => "UpdateDevice",
            };
            let mut o = Options::new(name, opts);
            let opts = DeviceOptions {
                affect: affect(&mut o)?,
                force: if member == "UpdateDevice" {
                    o.bool("force")?
                } else {
                    false
                },
            };
            o.finish()?;
            simple(Action::DomainWrite).await?;
            match member {
                "AttachDevice" => core.attach_device(dom, &xml, opts).await?,
                "DetachDevice" => core.detach_device(dom, &xml, opts).await?,
                _ => core.update_device(dom, &xml, opts).await?,
            }
        }
        "InjectNMI" => {
            Options::new("InjectNMI", body.deserialize()?).finish()?;
            simple(Action::DomainReset).await?;
            core.inject_nmi(dom).await?;
        }
        "GetGuestInfo" => {
            let mut o = Options::new("GetGuestInfo", body.deserialize()?);
            let types = guest_info_types(&o.strings("types")?)?;
            o.finish()?;
            ctx.authorize_domain(call, Action::DomainRead, &info)
                .await?;
            let gi = core.guest_info(dom, types).await?;
            return call.reply(&guest_info_map(gi));
        }
        "InterfaceAddresses" => {
            let mut o = Options::new("InterfaceAddresses", body.deserialize()?);
            match o.string("source")?.as_deref() {
                None | Some("agent") => {}
                Some(s @ ("lease" | "arp")) => {
                    return Err(Error::NotSupported(format!(
                        "interface address source '{s}' is not supported; use 'agent'"
                    ))
                    .into());
                }
                Some(s) => {
                    return Err(Error::InvalidArgument(format!(
                        "option 'source' must be 'agent', not '{s}'"
                    ))
                    .into());
                }
            }
            o.finish()?;
            ctx.authorize_domain(call, Action::DomainRead, &info)
                .await?;
            let only = GuestInfoTypes {
                hostname: false,
                os: false,
                timezone: false,
                interfaces: true,
            };
            let gi = core.guest_info(dom, only).await?;
            let out: Vec<GuestIface> = gi
                .interfaces
                .unwrap_or_default()
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
            opts.validate()?;
            ctx.authorize_domain(call, Action::DomainSnapshot, &info)
                .await?;
            if opts.quiesce {
                ctx.authorize_domain(call, Action::DomainFsFreeze, &info)
                    .await?;
            }
            let name = core.snapshot_create(dom, &xml, opts).await?;
            ctx.signals_sent().await;
            let path = match name {
                (n, true) => paths::owned(paths::snapshot(&dom.uuid(), &n)),
                (_, false) => paths::root(),
            };
            return call.reply(&path);
        }
        "ListSnapshots" => {
            let mut o = Options::new("ListSnapshots", body.deserialize()?);
            let opts = SnapshotListOptions {
                roots: o.bool("roots")?,
                ..snapshot_filters(&mut o)?
            };
            o.finish()?;
            ctx.authorize_domain(call, Action::DomainRead, &info)
                .await?;
            let uuid = dom.uuid();
            let out: Vec<OwnedObjectPath> = core
                .snapshot_list(dom, opts)?
                .iter()
                .map(|n| paths::owned(paths::snapshot(&uuid, n)))
                .collect();
            return call.reply(&out);
        }
        "LookupSnapshot" => {
            let name: String = body.deserialize()?;
            ctx.authorize(call, Action::DomainRead, &Details::snapshot(&info, &name))
                .await?;
            core.snapshot_info(dom, &name)?;
            return call.reply(&paths::owned(paths::snapshot(&dom.uuid(), &name)));
        }
        m => return Err(BusError::unknown_method(super::schema::DOMAIN_IFACE, m)),
    }
    ctx.signals_sent().await;
    call.reply_empty()
}
