//! `org.virtbus1.Manager`: defining, creating, listing and finding domains.

use zbus::{Message, OwnedObjectPath};

use super::{
    Call, Ctx,
    authz::{Action, Details},
    errors::{BusError, Reply},
    options::{OptionMap, Options},
    paths,
};
use crate::{
    core::{define::Caller, options::ListFilter, options::StartOptions},
    model::DomainDef,
};

pub(super) async fn call(ctx: &Ctx, call: &Call, member: &str) -> Reply<Message> {
    let body = call.msg.body();
    match member {
        "DefineDomain" => {
            let (xml, opts): (String, OptionMap) = body.deserialize()?;
            Options::new("DefineDomain", opts).finish()?;
            let def = ctx.core.parse_domain(&xml)?;
            let owner = authorize_definition(ctx, call, &def, &[Action::DomainWrite]).await?;
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
            let owner =
                authorize_definition(ctx, call, &def, &[Action::DomainWrite, Action::DomainStart])
                    .await?;
            let dom = ctx.core.create(def, start, owner).await?;
            ctx.signals_sent().await;
            call.reply(&paths::owned(paths::domain(&dom.uuid())))
        }
        "ListDomains" => {
            let opts: OptionMap = body.deserialize()?;
            let mut o = Options::new("ListDomains", opts);
            let filter = ListFilter {
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
            };
            o.finish()?;
            let mut out: Vec<OwnedObjectPath> = Vec::new();
            let everyone = ctx.authz.allows_everything();
            for dom in ctx.core.list(&filter) {
                if everyone || ctx.may_read(call, &dom.info()).await {
                    out.push(paths::owned(paths::domain(&dom.uuid())));
                }
            }
            call.reply(&out)
        }
        "LookupDomain" => {
            let name: String = body.deserialize()?;
            let dom = ctx.core.lookup(&name)?;
            ctx.authorize_domain(call, Action::DomainRead, &dom.info())
                .await?;
            call.reply(&paths::owned(paths::domain(&dom.uuid())))
        }
        "GetCapabilities" => {
            ctx.authorize(call, Action::ManagerRead, &Details::default())
                .await?;
            call.reply(&ctx.core.capabilities_xml())
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
    actions: &[Action],
) -> Reply<Caller> {
    let uid = ctx.authz.owner_uid(&call.caller).await;
    let owner = match ctx.core.get(&def.uuid) {
        Some(existing) => existing.info().owner,
        None => uid,
    };
    let details = Details {
        driver: ctx.core.driver_name(def.domain_type).map(str::to_owned),
        domain_name: Some(def.name.clone()),
        domain_uuid: Some(def.uuid.to_string()),
        domain_owner: Some(owner),
        snapshot_name: None,
    };
    for a in actions {
        ctx.authorize(call, *a, &details).await?;
    }
    Ok(Caller { uid })
}
