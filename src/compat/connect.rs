//! `org.libvirt.Connect`: defining, creating, finding and listing domains, statistics of all
//! domains, and the host. Networks are `compat::network`'s, storage `compat::storage`'s;
//! objects the facade does not serve (secrets, filters) list empty and are never found.

use std::sync::Arc;

use zbus::{Message, ObjectPath, Variant};

use super::{
    Connect, Ctx,
    errors::{Code, Reply, bare, from_core, libvirt, no_support},
    flags::{self, Flavor, Method},
    objects::no_domain_uuid,
};
use crate::core::ops::Operation;
use crate::{
    core::{
        Domain, host,
        options::{ListFilter, StartOptions, StatsGroup},
    },
    drivers::{StatValue, Stats},
    model::{DomainDef, DomainType},
    server::{
        Call,
        authz::{Details, authorize_definition},
        dict::Dict,
    },
};

/// The domain list filter for libvirt's list flags, over domains of `types`.
pub(crate) fn list_filter(types: &[DomainType], m: &Method, flags: u32) -> ListFilter {
    let has = |o| m.has(flags, o);
    ListFilter {
        active: has("active"),
        inactive: has("inactive"),
        persistent: has("persistent"),
        transient: has("transient"),
        running: has("running"),
        paused: has("paused"),
        shut_off: has("shut-off"),
        other: has("other"),
        managed_save: has("managed-save"),
        no_managed_save: has("no-managed-save"),
        autostart: has("autostart"),
        no_autostart: has("no-autostart"),
        has_snapshot: has("has-snapshot"),
        no_snapshot: has("no-snapshot"),
        driver: None,
        domain_types: types.to_vec(),
    }
}

/// A statistic as libvirt types it: counts and vCPU figures `u`, states `i`, figures `t`.
fn typed(key: &str, v: &StatValue) -> Variant<'static> {
    match v {
        StatValue::Str(s) => Variant::from(s.clone()),
        StatValue::I64(n) => match key {
            "state.state" | "state.reason" => Variant::I32(*n as i32),
            k if k.starts_with("vcpu.") && k.ends_with(".state") => Variant::I32(*n as i32),
            _ => Variant::I64(*n),
        },
        StatValue::U64(n) => match key {
            "vcpu.current" | "vcpu.maximum" | "net.count" | "block.count" => {
                Variant::U32(*n as u32)
            }
            _ => Variant::U64(*n),
        },
    }
}

/// Typed parameters as libvirt-dbus sends them: each value wrapped in a second variant.
pub(super) fn typed_params(stats: &Stats) -> Dict<&str, Variant<'static>> {
    stats
        .iter()
        .map(|(k, v)| (k.as_str(), Variant::Variant(Box::new(typed(k, v)))))
        .collect()
}

/// The stats groups of a libvirt `stats` word; with `enforce`, unknown bits are an error.
pub(super) fn stats_groups(stats: u32, enforce: bool) -> Reply<Vec<StatsGroup>> {
    let groups: Vec<StatsGroup> = StatsGroup::ALL
        .iter()
        .enumerate()
        .filter(|(i, _)| stats & (1 << i) != 0)
        .map(|(_, g)| *g)
        .collect();
    let unknown = stats & !((1u32 << StatsGroup::ALL.len()) - 1);
    if enforce && unknown != 0 {
        return Err(libvirt(
            Code::OperationUnsupported,
            Some(&format!(
                "Stats types bits 0x{unknown:x} are not supported by this daemon"
            )),
        ));
    }
    Ok(groups)
}

pub(super) async fn call(ctx: &Ctx, call: &Call, c: &Connect, member: &str) -> Reply<Message> {
    let body = call.msg.body();
    let flavor = c.flavor;
    let core = &c.core;
    let none = Details::default();
    let host_read = || ctx.authorize(call, Operation::ReadHost, &none);
    match member {
        "DomainCreateXML" | "DomainDefineXML" => {
            let create = member == "DomainCreateXML";
            let (m, xml, flags) = if create {
                let (xml, flags): (String, u32) = body.deserialize()?;
                (&flags::DOMAIN_CREATE_XML, xml, flags)
            } else {
                let xml: String = body.deserialize()?;
                (&flags::DOMAIN_DEFINE_XML, xml, 0)
            };
            m.check(flags, flavor)?;
            let err = |e| from_core(e, flavor, m);
            let def = DomainDef::from_xml(&xml).map_err(|e| err(e.into()))?;
            if !c.types.contains(&def.domain_type) {
                return Err(libvirt(
                    Code::ConfigUnsupported,
                    Some(&format!(
                        "domains of type '{}' are not served at {}",
                        def.domain_type.as_str(),
                        c.path
                    )),
                ));
            }
            let actions: &[Operation] = if create {
                &[Operation::DefineDomain, Operation::CreateDomain]
            } else {
                &[Operation::DefineDomain]
            };
            let owner =
                authorize_definition(&*ctx.authz, core, &call.caller, &def, actions).await?;
            let dom = if create {
                let opts = StartOptions {
                    paused: m.has(flags, "paused"),
                    force_boot: false,
                };
                core.create(def, opts, owner).await
            } else {
                core.define(def, owner).await
            }
            .map_err(err)?;
            c.signals_sent().await;
            call.reply(&ObjectPath::from_string_unchecked(
                c.domain_path(&dom.uuid()),
            ))
        }
        "DomainLookupByID" => {
            let id: i32 = body.deserialize()?;
            if id < 0 {
                return Err(bare(
                    "id in virDomainLookupByID must be zero or greater".into(),
                ));
            }
            let dom = core
                .domains()
                .into_iter()
                .find(|d| c.shows(d) && d.info().id == Some(id as u32))
                .ok_or_else(|| match flavor {
                    Flavor::Test => libvirt(Code::NoDomain, None),
                    Flavor::Qemu => libvirt(
                        Code::NoDomain,
                        Some(&format!("no domain with matching id {id}")),
                    ),
                })?;
            found(ctx, call, c, &dom).await
        }
        "DomainLookupByName" => {
            let name: String = body.deserialize()?;
            let dom = core
                .lookup(&name)
                .ok()
                .filter(|d| c.shows(d) && d.name() == name)
                .ok_or_else(|| match flavor {
                    Flavor::Test => libvirt(Code::NoDomain, None),
                    Flavor::Qemu => libvirt(
                        Code::NoDomain,
                        Some(&format!("no domain with matching name '{name}'")),
                    ),
                })?;
            found(ctx, call, c, &dom).await
        }
        "DomainLookupByUUID" => {
            let s: String = body.deserialize()?;
            let uuid = parse_uuid(&s).ok_or_else(|| bare("Invalid UUID".into()))?;
            let dom = c.domain(&uuid).ok_or_else(|| no_domain_uuid(c, &uuid))?;
            found(ctx, call, c, &dom).await
        }
        "ListDomains" => {
            let flags: u32 = body.deserialize()?;
            let m = &flags::LIST_ALL_DOMAINS;
            m.check(flags, flavor)?;
            // No domain has checkpoints.
            let filter = list_filter(&c.types, m, flags);
            let uuids = if m.has(flags, "has-checkpoint") && !m.has(flags, "no-checkpoint") {
                Vec::new()
            } else if ctx.authz.allows_everything() {
                core.list_uuids(&filter)
            } else {
                readable(ctx, call, core.list(&filter))
                    .await
                    .iter()
                    .map(|d| d.uuid())
                    .collect()
            };
            super::wire::reply_domain_paths(call, c.path, &uuids)
        }
        "GetAllDomainStats" => {
            let (stats, flags): (u32, u32) = body.deserialize()?;
            let m = &flags::GET_ALL_DOMAIN_STATS;
            m.check(flags, flavor)?;
            let groups = stats_groups(stats, m.has(flags, "enforce"))?;
            let mut records = Vec::new();
            for (dom, s) in core
                .all_stats(&list_filter(&c.types, m, flags), &groups)
                .await
            {
                if ctx.may_read(call, &dom.info()).await {
                    records.push((dom.name(), s));
                }
            }
            let out: Vec<(&str, Dict<&str, Variant<'static>>)> = records
                .iter()
                .map(|(n, s)| (n.as_str(), typed_params(s)))
                .collect();
            call.reply(&out)
        }
        "GetCapabilities" => {
            host_read().await?;
            let m = &flags::GET_CAPABILITIES;
            call.reply(
                &core
                    .libvirt_capabilities(&c.types)
                    .map_err(|e| from_core(e, flavor, m))?,
            )
        }
        "GetDomainCapabilities" => {
            let (emulator, arch, machine, virttype, flags): (String, String, String, String, u32) =
                body.deserialize()?;
            let m = &flags::GET_DOMAIN_CAPABILITIES;
            m.check(flags, flavor)?;
            let _ = emulator;
            let virttype = match virttype.as_str() {
                "" => None,
                t => Some(t.parse::<DomainType>().map_err(|_| {
                    libvirt(Code::InvalidArg, Some(&format!("unknown virttype: {t}")))
                })?),
            };
            let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
            host_read().await?;
            let xml = core
                .libvirt_domain_capabilities(
                    &c.types,
                    virttype,
                    opt(&arch).as_deref(),
                    opt(&machine).as_deref(),
                )
                .map_err(|e| from_core(e, flavor, m))?;
            call.reply(&xml)
        }
        "GetCPUModelNames" => {
            let (arch, flags): (String, u32) = body.deserialize()?;
            flags::GET_CPU_MODEL_NAMES.check(flags, flavor)?;
            host_read().await?;
            if !matches!(
                arch.as_str(),
                "x86_64"
                    | "i686"
                    | "aarch64"
                    | "armv7l"
                    | "ppc64"
                    | "ppc64le"
                    | "s390x"
                    | "riscv64"
            ) {
                return Err(libvirt(
                    Code::InvalidArg,
                    Some(&format!("cannot find architecture {arch}")),
                ));
            }
            call.reply(&core.cpu_models(&c.types, &arch))
        }
        "GetSysinfo" => {
            let flags: u32 = body.deserialize()?;
            flags::GET_SYSINFO.check(flags, flavor)?;
            host_read().await?;
            call.reply(&host::sysinfo_xml())
        }
        "ListInterfaces"
        | "ListNodeDevices"
        | "InterfaceLookupByName"
        | "InterfaceLookupByMAC"
        | "NodeDeviceLookupByName" => super::hostdev::connect_call(ctx, call, c, member).await,
        "ListNetworks"
        | "NetworkLookupByName"
        | "NetworkLookupByUUID"
        | "NetworkDefineXML"
        | "NetworkCreateXML" => super::network::connect_call(ctx, call, c, member).await,
        "ListStoragePools"
        | "StoragePoolCreateXML"
        | "StoragePoolDefineXML"
        | "StoragePoolLookupByName"
        | "StoragePoolLookupByUUID"
        | "StorageVolLookupByKey"
        | "StorageVolLookupByPath"
        | "FindStoragePoolSources" => super::storage::connect_call(ctx, call, c, member).await,
        "ListNWFilters" | "ListSecrets" => {
            // The facade serves none of these yet: there are none to list.
            let _flags: u32 = body.deserialize()?;
            host_read().await?;
            call.reply(&Vec::<ObjectPath<'_>>::new())
        }
        "NodeGetCPUMap" => {
            let flags: u32 = body.deserialize()?;
            let m = &flags::NODE_GET_CPU_MAP;
            m.check(flags, flavor)?;
            host_read().await?;
            let map = host::cpu_map()
                .map_err(|e| libvirt(Code::Internal, Some(&format!("cannot read CPUs: {e}"))))?;
            call.reply(&map)
        }
        "NodeGetCPUStats" => {
            let (cpu, flags): (i32, u32) = body.deserialize()?;
            let m = &flags::NODE_GET_CPU_STATS;
            m.check(flags, flavor)?;
            host_read().await?;
            let cpu = match cpu {
                -1 => None,
                n if n < 0 => {
                    return Err(libvirt(
                        Code::InvalidArg,
                        Some(&format!("Invalid cpuNum {n}")),
                    ));
                }
                n => Some(n as u32),
            };
            let stats: Dict<&str, u64> = host::cpu_stats(cpu)
                .map_err(|e| from_core(e, flavor, m))?
                .into_iter()
                .collect();
            call.reply(&stats)
        }
        "NodeGetFreeMemory" => {
            host_read().await?;
            let m = &flags::NODE_GET_FREE_MEMORY;
            call.reply(&host::free_memory().map_err(|e| from_core(e, flavor, m))?)
        }
        "NodeGetMemoryParameters" => {
            let flags: u32 = body.deserialize()?;
            flags::NODE_GET_MEMORY_PARAMETERS.check(flags, flavor)?;
            host_read().await?;
            let params: Dict<&str, Variant<'static>> = host::memory_parameters()
                .into_iter()
                .map(|(k, v)| {
                    let v = if k == "shm_merge_across_nodes" {
                        Variant::U32(v as u32)
                    } else {
                        Variant::U64(v)
                    };
                    (k, Variant::Variant(Box::new(v)))
                })
                .collect();
            call.reply(&params)
        }
        "NodeGetMemoryStats" => {
            let (cell, flags): (i32, u32) = body.deserialize()?;
            let m = &flags::NODE_GET_MEMORY_STATS;
            m.check(flags, flavor)?;
            host_read().await?;
            let cell = match cell {
                -1 => None,
                n if n < 0 => {
                    return Err(libvirt(Code::InvalidArg, Some("Invalid cell number")));
                }
                n => Some(n as u32),
            };
            let stats: Dict<&str, u64> = host::memory_stats(cell)
                .map_err(|e| from_core(e, flavor, m))?
                .into_iter()
                .collect();
            call.reply(&stats)
        }
        "NodeGetSecurityModel" => {
            host_read().await?;
            // virtbus applies no security driver (SELinux, AppArmor) to guests.
            call.reply(&(("none", "0"),))
        }
        m => not_managed(ctx, call, m).await,
    }
}

/// Authorize reading a domain that a lookup found, and reply its path.
async fn found(ctx: &Ctx, call: &Call, c: &Connect, dom: &Domain) -> Reply<Message> {
    ctx.authorize_domain(call, Operation::ReadDomain, &dom.info())
        .await?;
    call.reply(&ObjectPath::from_string_unchecked(
        c.domain_path(&dom.uuid()),
    ))
}

/// The domains the caller may read.
async fn readable(ctx: &Ctx, call: &Call, doms: Vec<Arc<Domain>>) -> Vec<Arc<Domain>> {
    let mut out = Vec::with_capacity(doms.len());
    for d in doms {
        if ctx.may_read(call, &d.info()).await {
            out.push(d);
        }
    }
    out
}

/// A UUID in any of the spellings libvirt takes (dashes anywhere, or none).
pub(super) fn parse_uuid(s: &str) -> Option<uuid::Uuid> {
    let hex: String = s.chars().filter(|c| *c != '-' && *c != ' ').collect();
    if hex.len() != 32 {
        return None;
    }
    uuid::Uuid::try_parse(&hex).ok()
}

/// Methods about objects virtbus does not manage: lookups find nothing; the rest are not
/// supported.
async fn not_managed(ctx: &Ctx, call: &Call, member: &str) -> Reply<Message> {
    let body = call.msg.body();
    let one = || -> Reply<String> { Ok(body.deserialize::<String>()?) };
    let (code, what) = match member {
        "NodeDeviceLookupSCSIHostByWWN" => {
            let (wwnn, wwpn, _): (String, String, u32) = body.deserialize()?;
            (
                Code::NoNodeDevice,
                format!("no node device with matching wwnn '{wwnn}' and wwpn '{wwpn}'"),
            )
        }
        "NWFilterLookupByName" => (
            Code::NoNwfilter,
            format!("no nwfilter with matching name '{}'", one()?),
        ),
        "NWFilterLookupByUUID" => (
            Code::NoNwfilter,
            format!("no nwfilter with matching uuid '{}'", one()?),
        ),
        "SecretLookupByUUID" => (
            Code::NoSecret,
            format!("no secret with matching uuid '{}'", one()?),
        ),
        "SecretLookupByUsage" => {
            let (_, usage): (i32, String) = body.deserialize()?;
            (
                Code::NoSecret,
                format!("no secret with matching usage '{usage}'"),
            )
        }
        m => return Err(no_support(unsupported_api(m))),
    };
    ctx.authorize(call, Operation::ReadHost, &Details::default())
        .await?;
    Err(libvirt(code, Some(&what)))
}

/// The libvirt API behind a Connect method virtbus does not implement.
fn unsupported_api(member: &str) -> &str {
    match member {
        "BaselineCPU" => "virConnectBaselineCPU",
        "CompareCPU" => "virConnectCompareCPU",
        "DomainCreateXMLWithFiles" => "virDomainCreateXMLWithFiles",
        "DomainRestore" => "virDomainRestoreFlags",
        "DomainSaveImageDefineXML" => "virDomainSaveImageDefineXML",
        "DomainSaveImageGetXMLDesc" => "virDomainSaveImageGetXMLDesc",
        "InterfaceChangeBegin" => "virInterfaceChangeBegin",
        "InterfaceChangeCommit" => "virInterfaceChangeCommit",
        "InterfaceChangeRollback" => "virInterfaceChangeRollback",
        "InterfaceDefineXML" => "virInterfaceDefineXML",
        "NodeDeviceCreateXML" => "virNodeDeviceCreateXML",
        "NodeSetMemoryParameters" => "virNodeSetMemoryParameters",
        "NWFilterDefineXML" => "virNWFilterDefineXML",
        "SecretDefineXML" => "virSecretDefineXML",
        m => m,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_and_stats_groups() {
        let u = "6695eb01-f6a4-8304-79aa-97f2502e193f";
        assert_eq!(parse_uuid(u).map(|u| u.to_string()).as_deref(), Some(u));
        assert!(parse_uuid("6695eb01f6a4830479aa97f2502e193f").is_some());
        assert!(parse_uuid("nope").is_none());
        assert_eq!(
            stats_groups(45, false).expect("groups"),
            [
                StatsGroup::State,
                StatsGroup::Balloon,
                StatsGroup::Vcpu,
                StatsGroup::Block
            ]
        );
        assert!(stats_groups(1 << 20, true).is_err());
        assert!(stats_groups(1 << 20, false).is_ok());
        assert_eq!(
            typed("state.state", &StatValue::I64(1)).value_signature(),
            "i"
        );
        assert_eq!(
            typed("vcpu.current", &StatValue::U64(2)).value_signature(),
            "u"
        );
        assert_eq!(typed("cpu.time", &StatValue::U64(2)).value_signature(), "t");
    }
}
