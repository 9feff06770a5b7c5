//! `org.libvirt.DomainSnapshot`: all six methods of one snapshot.

use uuid::Uuid;
use zbus::{Message, ObjectPath};

use super::{
    Connect, Ctx,
    domain::{reply_snapshots, snapshot_filters},
    errors::{Code, CompatError, Reply, from_core, from_exec, libvirt},
    flags::{self, Method},
    objects::no_domain_uuid,
};
use crate::{
    core::{
        ops,
        options::{RevertOptions, SnapshotDeleteOptions},
    },
    server::Call,
};

/// Translate one call into its core request and run it through the one execution path.
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
    let exec = c.exec(ctx);
    // The object itself: a path naming no snapshot is libvirt's "not found", whoever asks.
    let info = c
        .core
        .snapshot_info(&dom, name)
        .map_err(|e| from_core(e, flavor, &flags::SNAPSHOT_LOOKUP_BY_NAME))?;
    let name = name.to_owned();
    macro_rules! run {
        ($m:expr, $req:expr) => {
            exec.run(call, &dom, $req)
                .await
                .map_err(|e| from_exec(e, flavor, $m))?
        };
    }
    let check = |m: &'static Method| m.check(flags, flavor);
    match member {
        "Delete" => {
            let m = &flags::SNAPSHOT_DELETE;
            check(m)?;
            let opts = SnapshotDeleteOptions {
                children: m.has(flags, "children"),
                children_only: m.has(flags, "children-only"),
                metadata_only: m.has(flags, "metadata-only"),
            };
            run!(m, ops::SnapshotDelete { name, opts });
            call.reply_empty()
        }
        "GetParent" => {
            let m = &flags::SNAPSHOT_GET_PARENT;
            check(m)?;
            run!(m, ops::SnapshotRead { name: name.clone() });
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
            check(m)?;
            let secure = m.has(flags, "secure");
            call.reply(&run!(m, ops::SnapshotGetXml { name, secure }))
        }
        "IsCurrent" => {
            let m = &flags::SNAPSHOT_IS_CURRENT;
            check(m)?;
            call.reply(&run!(m, ops::SnapshotRead { name }).is_current)
        }
        "ListChildren" => {
            let m = &flags::SNAPSHOT_LIST_CHILDREN;
            check(m)?;
            let req = ops::SnapshotChildren {
                name,
                descendants: m.has(flags, "descendants"),
                opts: snapshot_filters(m, flags),
            };
            let names = run!(m, req);
            reply_snapshots(call, c, &dom, &names)
        }
        "Revert" => {
            let m = &flags::REVERT;
            check(m)?;
            let opts = RevertOptions {
                running: m.has(flags, "running"),
                paused: m.has(flags, "paused"),
                force: m.has(flags, "force"),
            };
            run!(m, ops::SnapshotRevert { name, opts });
            call.reply_empty()
        }
        other => Err(CompatError::unknown_method(other)),
    }
}
