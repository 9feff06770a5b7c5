//! `org.libvirt.DomainSnapshot`: all six methods of one snapshot.

use uuid::Uuid;
use zbus::{Message, ObjectPath};

use super::{
    Connect, Ctx,
    domain::{no_snapshot, reply_snapshots, snapshot_filters},
    errors::{Code, CompatError, Reply, from_core, libvirt},
    flags::{self, Method},
    objects::no_domain_uuid,
};
use crate::{
    bus::{
        Call,
        authz::{Action, Details},
    },
    core::{
        Error,
        options::{RevertOptions, SnapshotDeleteOptions},
    },
};

pub(super) async fn call(
    ctx: &Ctx,
    call: &Call,
    c: &Connect,
    uuid: &Uuid,
    name: &str,
    member: &str,
) -> Reply<Message> {
    let dom = c.domain(uuid).ok_or_else(|| no_domain_uuid(c, uuid))?;
    let body = call.msg.body();
    let flags: u32 = body.deserialize()?;
    let flavor = c.flavor;
    let core = &c.core;
    let details = Details::snapshot(&dom.info(), name);
    let info = core
        .snapshot_info(&dom, name)
        .map_err(|_| no_snapshot(name))?;
    let fail = |m: &'static Method| move |e: Error| from_core(e, flavor, m);
    match member {
        "Delete" => {
            let m = &flags::SNAPSHOT_DELETE;
            m.check(flags, flavor)?;
            let opts = SnapshotDeleteOptions {
                children: m.has(flags, "children"),
                children_only: m.has(flags, "children-only"),
                metadata_only: m.has(flags, "metadata-only"),
            };
            opts.validate().map_err(|e| fail(m)(e.into()))?;
            ctx.authorize(call, Action::DomainSnapshot, &details)
                .await?;
            core.snapshot_delete(&dom, name, opts)
                .await
                .map_err(fail(m))?;
            c.signals_sent().await;
            call.reply_empty()
        }
        "GetParent" => {
            flags::SNAPSHOT_GET_PARENT.check(flags, flavor)?;
            ctx.authorize(call, Action::DomainRead, &details).await?;
            let parent = info.parent.ok_or_else(|| {
                libvirt(
                    Code::NoDomainSnapshot,
                    Some(&format!("snapshot '{name}' does not have a parent")),
                )
            })?;
            call.reply(&ObjectPath::from_string_unchecked(
                c.snapshot_path(uuid, &parent),
            ))
        }
        "GetXMLDesc" => {
            let m = &flags::SNAPSHOT_GET_XML_DESC;
            m.check(flags, flavor)?;
            let secure = m.has(flags, "secure");
            ctx.authorize(call, Action::DomainRead, &details).await?;
            if secure {
                ctx.authorize(call, Action::DomainReadSecure, &details)
                    .await?;
            }
            call.reply(&core.snapshot_xml(&dom, name, secure).map_err(fail(m))?)
        }
        "IsCurrent" => {
            flags::SNAPSHOT_IS_CURRENT.check(flags, flavor)?;
            ctx.authorize(call, Action::DomainRead, &details).await?;
            call.reply(&info.is_current)
        }
        "ListChildren" => {
            let m = &flags::SNAPSHOT_LIST_CHILDREN;
            m.check(flags, flavor)?;
            ctx.authorize(call, Action::DomainRead, &details).await?;
            let names = core
                .snapshot_children_in(
                    &dom,
                    name,
                    m.has(flags, "descendants"),
                    snapshot_filters(m, flags),
                )
                .map_err(fail(m))?;
            reply_snapshots(call, c, &dom, &names)
        }
        "Revert" => {
            let m = &flags::REVERT;
            m.check(flags, flavor)?;
            let opts = RevertOptions {
                running: m.has(flags, "running"),
                paused: m.has(flags, "paused"),
                force: m.has(flags, "force"),
            };
            opts.validate().map_err(|e| fail(m)(e.into()))?;
            ctx.authorize(call, Action::DomainSnapshot, &details)
                .await?;
            core.snapshot_revert(&dom, name, opts)
                .await
                .map_err(fail(m))?;
            c.signals_sent().await;
            call.reply_empty()
        }
        other => Err(CompatError::Standard(
            "UnknownMethod",
            format!("No such method “{other}”"),
        )),
    }
}
