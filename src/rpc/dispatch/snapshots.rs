//! The snapshot procedures virsh's `snapshot-*` commands use, over the core's snapshot
//! operations (the same requests as the facade's `DomainSnapshot` methods).

use std::sync::Arc;

use super::{Session, int, ok, wire_dom};
use crate::{
    compat::{
        domain::snapshot_filters,
        errors::Code,
        flags::{self, Method},
    },
    core::{
        Domain, ops,
        options::{RevertOptions, SnapshotCreateOptions, SnapshotDeleteOptions},
    },
    rpc::{
        Shared,
        error::{RpcError, RpcResult},
        proto::{
            DomainFlagsArgs, IntRet, ListAllSnapshotsArgs, ListAllSnapshotsRet, NamesRet,
            SNAPSHOT_LIST_MAX, Snap, SnapFlagsArgs, SnapRet, SnapshotCreateXmlArgs,
            SnapshotListAllChildrenArgs, SnapshotListChildrenNamesArgs, SnapshotListNamesArgs,
            SnapshotLookupByNameArgs, procs,
        },
        xdr::{Array, Reader},
    },
};

/// Whether `proc_` is one of these.
pub(super) fn handles(proc_: i32) -> bool {
    matches!(
        proc_,
        procs::DOMAIN_SNAPSHOT_CREATE_XML
            | procs::DOMAIN_SNAPSHOT_GET_XML_DESC
            | procs::DOMAIN_SNAPSHOT_LIST_NAMES
            | procs::DOMAIN_SNAPSHOT_LOOKUP_BY_NAME
            | procs::DOMAIN_HAS_CURRENT_SNAPSHOT
            | procs::DOMAIN_SNAPSHOT_CURRENT
            | procs::DOMAIN_REVERT_TO_SNAPSHOT
            | procs::DOMAIN_SNAPSHOT_DELETE
            | procs::DOMAIN_SNAPSHOT_GET_PARENT
            | procs::DOMAIN_SNAPSHOT_NUM_CHILDREN
            | procs::DOMAIN_SNAPSHOT_LIST_CHILDREN_NAMES
            | procs::DOMAIN_SNAPSHOT_IS_CURRENT
            | procs::DOMAIN_SNAPSHOT_HAS_METADATA
            | procs::DOMAIN_LIST_ALL_SNAPSHOTS
            | procs::DOMAIN_SNAPSHOT_LIST_ALL_CHILDREN
    )
}

/// `virDomainHasCurrentSnapshot` and `virDomainSnapshotHasMetadata`, which the facade does
/// not serve: no flags.
const HAS_CURRENT: Method = Method {
    api: "virDomainHasCurrentSnapshot",
    driver_fn: "DomainHasCurrentSnapshot",
    flags: &[],
};
const HAS_METADATA: Method = Method {
    api: "virDomainSnapshotHasMetadata",
    driver_fn: "DomainSnapshotHasMetadata",
    flags: &[],
};
/// `virDomainSnapshotListNames` and `virDomainSnapshotNum` take the list filters.
const LIST_NAMES: Method = Method {
    api: "virDomainSnapshotListNames",
    ..flags::LIST_SNAPSHOTS
};
const LIST_CHILDREN_NAMES: Method = Method {
    api: "virDomainSnapshotListChildrenNames",
    ..flags::SNAPSHOT_LIST_CHILDREN
};
const NUM_CHILDREN: Method = Method {
    api: "virDomainSnapshotNumChildren",
    ..flags::SNAPSHOT_LIST_CHILDREN
};

fn snap(dom: &Domain, name: String) -> Snap {
    Snap {
        name,
        dom: wire_dom(dom),
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A `maxnames` within libvirt's limit.
fn max_names(maxnames: i32) -> RpcResult<usize> {
    match usize::try_from(maxnames) {
        Ok(n) if n <= SNAPSHOT_LIST_MAX => Ok(n),
        _ => Err(RpcError::rpc(format!(
            "maxnames {maxnames} is outside 0..={SNAPSHOT_LIST_MAX}"
        ))),
    }
}

/// Carry out snapshot procedure `proc_`.
pub(super) async fn call(
    shared: &Shared,
    s: &Session,
    proc_: i32,
    body: &[u8],
) -> RpcResult<Vec<u8>> {
    // The snapshot a `remote_nonnull_domain_snapshot` names: its domain and name.
    let snap_of =
        |a: &Snap| -> RpcResult<(Arc<Domain>, String)> { Ok((s.domain(&a.dom)?, a.name.clone())) };
    match proc_ {
        procs::DOMAIN_SNAPSHOT_CREATE_XML => {
            let a: SnapshotCreateXmlArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &flags::SNAPSHOT_CREATE_XML;
            s.check(m, a.flags)?;
            let has = |o| m.has(a.flags, o);
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
            let (name, _) = s
                .run(shared, m, &dom, ops::SnapshotCreate { xml: a.xml, opts })
                .await?;
            ok(SnapRet {
                snap: snap(&dom, name),
            })
        }
        procs::DOMAIN_SNAPSHOT_GET_XML_DESC => {
            let a: SnapFlagsArgs = Reader::decode(body)?;
            let (dom, name) = snap_of(&a.snap)?;
            let m = &flags::SNAPSHOT_GET_XML_DESC;
            s.check(m, a.flags)?;
            let secure = m.has(a.flags, "secure");
            if secure && s.readonly {
                return Err(RpcError::read_only(&format!("{} with secure flag", m.api)));
            }
            let xml = s
                .run(shared, m, &dom, ops::SnapshotGetXml { name, secure })
                .await?;
            ok(crate::rpc::proto::StringRet { value: xml })
        }
        procs::DOMAIN_SNAPSHOT_LIST_NAMES => {
            let a: SnapshotListNamesArgs = Reader::decode(body)?;
            let max = max_names(a.maxnames)?;
            let dom = s.domain(&a.dom)?;
            let m = &LIST_NAMES;
            s.check(m, a.flags)?;
            let opts = snapshot_filters(m, a.flags);
            let mut names = s.run(shared, m, &dom, ops::SnapshotList { opts }).await?;
            names.truncate(max);
            ok(NamesRet {
                names: Array(names),
            })
        }
        procs::DOMAIN_SNAPSHOT_LOOKUP_BY_NAME => {
            let a: SnapshotLookupByNameArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &flags::SNAPSHOT_LOOKUP_BY_NAME;
            s.check(m, a.flags)?;
            let info = s
                .run(shared, m, &dom, ops::SnapshotRead { name: a.name })
                .await?;
            ok(SnapRet {
                snap: snap(&dom, info.name),
            })
        }
        procs::DOMAIN_HAS_CURRENT_SNAPSHOT | procs::DOMAIN_SNAPSHOT_CURRENT => {
            let a: DomainFlagsArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let has = proc_ == procs::DOMAIN_HAS_CURRENT_SNAPSHOT;
            s.check(
                if has {
                    &HAS_CURRENT
                } else {
                    &flags::SNAPSHOT_CURRENT
                },
                a.flags,
            )?;
            s.authorize(shared, ops::Operation::SnapshotRead, &dom)
                .await?;
            let current = dom.info().current_snapshot;
            if has {
                return int(current.is_some());
            }
            let name = current.ok_or_else(|| {
                s.error(
                    Code::NoDomainSnapshot,
                    "the domain does not have a current snapshot",
                )
            })?;
            ok(SnapRet {
                snap: snap(&dom, name),
            })
        }
        procs::DOMAIN_REVERT_TO_SNAPSHOT => {
            let a: SnapFlagsArgs = Reader::decode(body)?;
            let (dom, name) = snap_of(&a.snap)?;
            let m = &flags::REVERT;
            s.check(m, a.flags)?;
            let opts = RevertOptions {
                running: m.has(a.flags, "running"),
                paused: m.has(a.flags, "paused"),
                force: m.has(a.flags, "force"),
            };
            s.run(shared, m, &dom, ops::SnapshotRevert { name, opts })
                .await?;
            ok(())
        }
        procs::DOMAIN_SNAPSHOT_DELETE => {
            let a: SnapFlagsArgs = Reader::decode(body)?;
            let (dom, name) = snap_of(&a.snap)?;
            let m = &flags::SNAPSHOT_DELETE;
            s.check(m, a.flags)?;
            let opts = SnapshotDeleteOptions {
                children: m.has(a.flags, "children"),
                children_only: m.has(a.flags, "children-only"),
                metadata_only: m.has(a.flags, "metadata-only"),
            };
            s.run(shared, m, &dom, ops::SnapshotDelete { name, opts })
                .await?;
            ok(())
        }
        procs::DOMAIN_SNAPSHOT_GET_PARENT
        | procs::DOMAIN_SNAPSHOT_IS_CURRENT
        | procs::DOMAIN_SNAPSHOT_HAS_METADATA => {
            let a: SnapFlagsArgs = Reader::decode(body)?;
            let (dom, name) = snap_of(&a.snap)?;
            let m = match proc_ {
                procs::DOMAIN_SNAPSHOT_GET_PARENT => &flags::SNAPSHOT_GET_PARENT,
                procs::DOMAIN_SNAPSHOT_IS_CURRENT => &flags::SNAPSHOT_IS_CURRENT,
                _ => &HAS_METADATA,
            };
            s.check(m, a.flags)?;
            let info = s
                .run(shared, m, &dom, ops::SnapshotRead { name: name.clone() })
                .await?;
            match proc_ {
                procs::DOMAIN_SNAPSHOT_GET_PARENT => {
                    let parent = info.parent.ok_or_else(|| {
                        s.error(
                            Code::NoDomainSnapshot,
                            &format!("snapshot '{name}' does not have a parent"),
                        )
                    })?;
                    ok(SnapRet {
                        snap: snap(&dom, parent),
                    })
                }
                procs::DOMAIN_SNAPSHOT_IS_CURRENT => int(info.is_current),
                // every snapshot virtbus knows has its metadata
                _ => int(true),
            }
        }
        procs::DOMAIN_SNAPSHOT_NUM_CHILDREN => {
            let a: SnapFlagsArgs = Reader::decode(body)?;
            let (dom, name) = snap_of(&a.snap)?;
            let names = children(shared, s, &NUM_CHILDREN, &dom, name, a.flags).await?;
            ok(IntRet {
                value: count(names.len()),
            })
        }
        procs::DOMAIN_SNAPSHOT_LIST_CHILDREN_NAMES => {
            let a: SnapshotListChildrenNamesArgs = Reader::decode(body)?;
            let max = max_names(a.maxnames)?;
            let (dom, name) = snap_of(&a.snap)?;
            let mut names = children(shared, s, &LIST_CHILDREN_NAMES, &dom, name, a.flags).await?;
            names.truncate(max);
            ok(NamesRet {
                names: Array(names),
            })
        }
        procs::DOMAIN_LIST_ALL_SNAPSHOTS => {
            let a: ListAllSnapshotsArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &flags::LIST_SNAPSHOTS;
            s.check(m, a.flags)?;
            let opts = snapshot_filters(m, a.flags);
            let names = s.run(shared, m, &dom, ops::SnapshotList { opts }).await?;
            all(&dom, names, a.need_results)
        }
        procs::DOMAIN_SNAPSHOT_LIST_ALL_CHILDREN => {
            let a: SnapshotListAllChildrenArgs = Reader::decode(body)?;
            let (dom, name) = snap_of(&a.snap)?;
            let m = &flags::SNAPSHOT_LIST_CHILDREN;
            let names = children(shared, s, m, &dom, name, a.flags).await?;
            all(&dom, names, a.need_results)
        }
        p => Err(RpcError::no_support(&format!("unknown procedure: {p}"))),
    }
}

/// The children (or descendants) of snapshot `name` that the flags select.
async fn children(
    shared: &Shared,
    s: &Session,
    m: &Method,
    dom: &Arc<Domain>,
    name: String,
    fl: u32,
) -> RpcResult<Vec<String>> {
    s.check(m, fl)?;
    let req = ops::SnapshotChildren {
        name,
        descendants: m.has(fl, "descendants"),
        opts: snapshot_filters(m, fl),
    };
    s.run(shared, m, dom, req).await
}

/// A `*_LIST_ALL_*` reply: the count, and the snapshots when asked for.
fn all(dom: &Domain, names: Vec<String>, need_results: i32) -> RpcResult<Vec<u8>> {
    let ret = count(names.len());
    let snapshots = if need_results != 0 {
        names.into_iter().map(|n| snap(dom, n)).collect()
    } else {
        Vec::new()
    };
    ok(ListAllSnapshotsRet {
        snapshots: Array(snapshots),
        ret,
    })
}
