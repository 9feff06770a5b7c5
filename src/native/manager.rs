//! `org.virtbus1.Manager`: defining, creating, listing and finding domains.

use std::collections::HashMap;

use zbus::{Message, ObjectPath, Variant};

use super::{
    Call, Ctx,
    authz::Details,
    errors::{BusError, Reply},
    options::{OptionMap, Options},
    paths, wire,
};
use crate::{
    core::{
        Error,
        define::Caller,
        host,
        network_ops::{NetworkReply, NetworkRequest},
        ops::Operation,
        options::ListFilter,
        options::StartOptions,
    },
    model::{DomainDef, DomainType},
};

/// The list filter keys of ListDomains and GetAllDomainStats.
fn list_filter(o: &mut Options<'_>) -> Reply<ListFilter> {
    Ok(ListFilter {
        active: o.bool("active")?,
        inactive: o.bool("inactive")?,
        persistent: o.bool("persistent")?,
        transient: o.bool("transient")?,
        running: o.bool("running")?,
        paused: o.bool("paused")?,
        shut_off: o.bool("shut-off")?,
        other: o.bool("other")?,
        managed_save: o.bool("managed-save")?,
        no_managed_save: o.bool("no-managed-save")?,
        autostart: o.bool("autostart")?,
        no_autostart: o.bool("no-autostart")?,
        has_snapshot: o.bool("has-snapshot")?,
        no_snapshot: o.bool("no-snapshot")?,
        driver: o.string("driver")?,
        domain_types: Vec::new(),
    })
}

pub(super) async fn call(ctx: &Ctx, call: &Call, member: &str) -> Reply<Message> {
    if let Some(r) = super::storage::manager_call(ctx, call, member).await {
        return r;
    }
    let body = call.msg.body();
    match member {
        "DefineDomain" => {
            let (xml, opts): (String, OptionMap) = body.deserialize()?;
            Options::new("DefineDomain", opts).finish()?;
            let def = ctx.core.parse_domain(&xml)?;
            let owner = authorize_definition(ctx, call, &def, &[Operation::DefineDomain]).await?;
            let dom = ctx.core.define(def, owner).await?;
            ctx.signals_sent().await;
            call.reply(&paths::owned(paths::domain(&dom.uuid())))
        }
        "CreateDomain" => {
            let (xml, opts): (String, OptionMap) = body.deserialize()?;
            let mut o = Options::new("CreateDomain", opts);
            let start = StartOptions {
                paused: o.bool("paused")?,
                force_boot: false,
            };
            o.finish()?;
            let def = ctx.core.parse_domain(&xml)?;
            let owner = authorize_definition(
                ctx,
                call,
                &def,
                &[Operation::DefineDomain, Operation::CreateDomain],
            )
            .await?;
            let dom = ctx.core.create(def, start, owner).await?;
            ctx.signals_sent().await;
            call.reply(&paths::owned(paths::domain(&dom.uuid())))
        }
        "ListDomains" => {
            let opts: OptionMap = body.deserialize()?;
            let mut o = Options::new("ListDomains", opts);
            let filter = list_filter(&mut o)?;
            o.finish()?;
            let everyone = ctx.authz.allows_everything();
            let mut uuids = Vec::new();
            for dom in ctx.core.list(&filter) {
                if everyone || ctx.may_read(call, &dom.info()).await {
                    uuids.push(dom.uuid());
                }
            }
            let body = wire::object_paths(uuids.len(), |i, buf| paths::push_domain(buf, &uuids[i]));
            Ok(wire::reply_object_paths(&call.header(), &body)?)
        }
        "DefineNetwork" | "CreateNetwork" => {
            let (xml, opts): (String, OptionMap) = body.deserialize()?;
            let method = if member == "DefineNetwork" {
                "DefineNetwork"
            } else {
                "CreateNetwork"
            };
            Options::new(method, opts).finish()?;
            let req = if member == "DefineNetwork" {
                NetworkRequest::Define { xml }
            } else {
                NetworkRequest::Create { xml }
            };
            match ctx.network(call, req).await? {
                NetworkReply::Info(i) => call.reply(&paths::owned(paths::network(&i.name))),
                _ => Err(Error::Failed("unexpected reply from the network driver".into()).into()),
            }
        }
        "ListNetworks" => match ctx.network(call, NetworkRequest::List).await? {
            NetworkReply::List(l) => {
                let out: Vec<_> = l
                    .iter()
                    .map(|n| paths::owned(paths::network(&n.name)))
                    .collect();
                call.reply(&out)
            }
            _ => Err(Error::Failed("unexpected reply from the network driver".into()).into()),
        },
        "LookupDomain" => {
            let name: String = body.deserialize()?;
            let dom = ctx.core.lookup(&name)?;
            ctx.authorize_domain(call, Operation::ReadDomain, &dom.info())
                .await?;
            call.reply(&paths::owned(paths::domain(&dom.uuid())))
        }
        "ListHostInterfaces" => super::hostdev::list_interfaces(ctx, call).await,
        "ListNodeDevices" => super::hostdev::list_devices(ctx, call).await,
        "GetCapabilities" => {
            ctx.authorize(call, Operation::ReadHost, &Details::default())
                .await?;
            call.reply(&ctx.core.capabilities_xml())
        }
        "GetAllDomainStats" => {
            let mut o = Options::new("GetAllDomainStats", body.deserialize()?);
            let filter = list_filter(&mut o)?;
            let groups = super::domain::stats_groups(&mut o)?;
            o.finish()?;
            let mut paths = Vec::new();
            let mut all = Vec::new();
            for (dom, stats) in ctx.core.all_stats(&filter, &groups).await {
                if ctx.may_read(call, &dom.info()).await {
                    paths.push(paths::domain(&dom.uuid()));
                    all.push(super::domain::stats_dict(stats));
                }
            }
            let out: HashMap<ObjectPath<'_>, HashMap<String, Variant<'static>>> = paths
                .iter()
                .map(|p| ObjectPath::from_str_unchecked(p))
                .zip(all)
                .collect();
            call.reply(&out)
        }
        "GetHostInfo" => {
            ctx.authorize(call, Operation::ReadHost, &Details::default())
                .await?;
            let h = host::info()
                .map_err(|e| Error::Failed(format!("cannot read the host's figures: {e}")))?;
            let info: HashMap<&str, Variant<'_>> = [
                ("arch", Variant::from(h.arch)),
                ("cpu-model", Variant::from(h.cpu_model.as_str())),
                ("cpu-vendor", Variant::from(h.cpu_vendor.as_str())),
                ("cpus", Variant::U32(h.cpus)),
                ("mhz", Variant::U32(h.mhz)),
                ("nodes", Variant::U32(h.nodes)),
                ("sockets", Variant::U32(h.sockets)),
                ("cores", Variant::U32(h.cores)),
                ("threads", Variant::U32(h.threads)),
                ("memory-kib", Variant::U64(h.memory_kib)),
                ("uuid", Variant::from(h.uuid.as_str())),
            ]
            .into_iter()
            .collect();
            call.reply(&info)
        }
        "GetHostStats" => {
            let mut o = Options::new("GetHostStats", body.deserialize()?);
            let node = o.u32("node")?;
            let cpu = o.u32("cpu")?;
            o.finish()?;
            ctx.authorize(call, Operation::ReadHost, &Details::default())
                .await?;
            let mut out: HashMap<String, u64> = HashMap::new();
            for (k, v) in host::memory_stats(node)? {
                out.insert(format!("memory.{k}"), v);
            }
            for (k, v) in host::cpu_stats(cpu)? {
                out.insert(format!("cpu.{k}"), v);
            }
            call.reply(&out)
        }
        "GetSysinfo" => {
            ctx.authorize(call, Operation::ReadHost, &Details::default())
                .await?;
            call.reply(&host::sysinfo_xml())
        }
        "GetDomainCapabilities" => {
            let mut o = Options::new("GetDomainCapabilities", body.deserialize()?);
            let virttype = o
                .string("type")?
                .map(|t| {
                    t.parse::<DomainType>().map_err(|e| {
                        Error::InvalidArgument(format!("option 'type': {e}, not '{t}'"))
                    })
                })
                .transpose()?;
            let arch = o.string("arch")?;
            let machine = o.string("machine")?;
            o.finish()?;
            ctx.authorize(call, Operation::ReadHost, &Details::default())
                .await?;
            let types = ctx.core.domain_types();
            call.reply(&ctx.core.libvirt_domain_capabilities(
                &types,
                virttype,
                arch.as_deref(),
                machine.as_deref(),
            )?)
        }
        "GetCPUModels" => {
            let arch: String = body.deserialize()?;
            ctx.authorize(call, Operation::ReadHost, &Details::default())
                .await?;
            call.reply(&ctx.core.cpu_models(&ctx.core.domain_types(), &arch))
        }
        m => Err(BusError::unknown_method(super::schema::MANAGER_IFACE, m)),
    }
}

/// Authorize defining `def` with the details of the domain it creates or replaces; returns
/// who defines it, for ownership.
async fn authorize_definition(
    ctx: &Ctx,
    call: &Call,
    def: &DomainDef,
    ops: &[Operation],
) -> Reply<Caller> {
    Ok(super::authz::authorize_definition(&*ctx.authz, &ctx.core, &call.caller, def, ops).await?)
}
