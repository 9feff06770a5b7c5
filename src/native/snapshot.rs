//! `org.virtbus1.Snapshot`: one snapshot's XML, revert, delete and children.

use std::sync::Arc;

use zbus::{Message, OwnedObjectPath};

use super::{
    Call, Ctx,
    errors::{BusError, Reply},
    options::Options,
    paths,
};
use crate::core::{
    Domain, ops,
    options::{RevertOptions, SnapshotDeleteOptions},
};

/// Translate one call into its core request and run it through the one execution path.
pub(super) async fn call(
    ctx: &Ctx,
    call: &Call,
    dom: &Arc<Domain>,
    name: &str,
    member: &str,
) -> Reply<Message> {
    let body = call.msg.body();
    let exec = ctx.exec();
    let name = name.to_owned();
    match member {
        "GetXML" => {
            let mut o = Options::new("GetXML", body.deserialize()?);
            let secure = o.bool("secure")?;
            o.finish()?;
            let xml = exec
                .run(call, dom, ops::SnapshotGetXml { name, secure })
                .await?;
            call.reply(&xml)
        }
        "Revert" => {
            let mut o = Options::new("Revert", body.deserialize()?);
            let opts = RevertOptions {
                running: o.bool("running")?,
                paused: o.bool("paused")?,
                force: o.bool("force")?,
            };
            o.finish()?;
            exec.run(call, dom, ops::SnapshotRevert { name, opts })
                .await?;
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
            exec.run(call, dom, ops::SnapshotDelete { name, opts })
                .await?;
            call.reply_empty()
        }
        "ListChildren" => {
            let mut o = Options::new("ListChildren", body.deserialize()?);
            let descendants = o.bool("descendants")?;
            let opts = super::domain::snapshot_filters(&mut o)?;
            o.finish()?;
            let req = ops::SnapshotChildren {
                name,
                descendants,
                opts,
            };
            let uuid = dom.uuid();
            let out: Vec<OwnedObjectPath> = exec
                .run(call, dom, req)
                .await?
                .iter()
                .map(|n| paths::owned(paths::snapshot(&uuid, n)))
                .collect();
            call.reply(&out)
        }
        m => Err(BusError::unknown_method(super::schema::SNAPSHOT_IFACE, m)),
    }
}
