//! `org.virtbus1.Snapshot`: one snapshot's XML, revert, delete and children.

use std::sync::Arc;

use zbus::{Message, OwnedObjectPath};

use super::{
    Call, Ctx,
    authz::{Action, Details},
    errors::{BusError, Reply},
    options::Options,
    paths,
};
use crate::core::{
    Domain,
    options::{RevertOptions, SnapshotDeleteOptions},
};

pub(super) async fn call(
    ctx: &Ctx,
    call: &Call,
    dom: &Arc<Domain>,
    name: &str,
    member: &str,
) -> Reply<Message> {
    let body = call.msg.body();
    let details = Details::snapshot(&dom.info(), name);
    let core = &ctx.core;
    match member {
        "GetXML" => {
            let mut o = Options::new("GetXML", body.deserialize()?);
            let secure = o.bool("secure")?;
            o.finish()?;
            ctx.authorize(call, Action::DomainRead, &details).await?;
            if secure {
                ctx.authorize(call, Action::DomainReadSecure, &details)
                    .await?;
            }
            call.reply(&core.snapshot_xml(dom, name, secure)?)
        }
        "Revert" => {
            let mut o = Options::new("Revert", body.deserialize()?);
            let opts = RevertOptions {
                running: o.bool("running")?,
                paused: o.bool("paused")?,
                force: o.bool("force")?,
            };
            o.finish()?;
            opts.validate()?;
            ctx.authorize(call, Action::DomainSnapshot, &details)
                .await?;
            core.snapshot_revert(dom, name, opts).await?;
            ctx.signals_sent().await;
            call.reply_empty()
        }
        "Delete" => {
            let mut o = Options::new("Delete", body.deserialize()?);
            let opts = SnapshotDeleteOptions {
                children: o.bool("children")?,
                children_only: o.bool("children-only")?,
                metadata_only: o.bool("metadata-only")?,
            };
            o.finish()?;
            opts.validate()?;
            ctx.authorize(call, Action::DomainSnapshot, &details)
                .await?;
            core.snapshot_delete(dom, name, opts).await?;
            ctx.signals_sent().await;
            call.reply_empty()
        }
        "ListChildren" => {
            let mut o = Options::new("ListChildren", body.deserialize()?);
            let descendants = o.bool("descendants")?;
            let filters = super::domain::snapshot_filters(&mut o)?;
            o.finish()?;
            ctx.authorize(call, Action::DomainRead, &details).await?;
            let uuid = dom.uuid();
            let out: Vec<OwnedObjectPath> = core
                .snapshot_children_in(dom, name, descendants, filters)?
                .iter()
                .map(|n| paths::owned(paths::snapshot(&uuid, n)))
                .collect();
            call.reply(&out)
        }
        m => Err(BusError::unknown_method(super::schema::SNAPSHOT_IFACE, m)),
    }
}
