//! virsh's `checkpoint-*` commands: the seven checkpoint procedures over the core's
//! checkpoint requests, with the flags and messages of libvirt's QEMU and test drivers
//! (libvirt's LXC driver has no checkpoints: `VIR_ERR_NO_SUPPORT` there).
//!
//! The wire types are the snapshot ones: `remote_nonnull_domain_checkpoint` has the shape of
//! `remote_nonnull_domain_snapshot`, and each checkpoint call's arguments and reply that of
//! its snapshot twin.

use std::sync::Arc;

use super::procs;
use crate::{
    compat::{
        errors::Code,
        flags::{Flag, Flavor, Method},
    },
    core::{
        Domain,
        checkpoints::{CheckpointCreateOptions, CheckpointDeleteOptions, CheckpointListOptions},
        ops,
    },
    model::CheckpointFormat,
    rpc::{
        Shared,
        dispatch::{Session, ok, wire_dom},
        error::{RpcError, RpcResult},
        proto::{
            ListAllSnapshotsArgs, ListAllSnapshotsRet, Snap, SnapFlagsArgs, SnapRet,
            SnapshotCreateXmlArgs, SnapshotListAllChildrenArgs, SnapshotLookupByNameArgs,
            StringRet,
        },
        xdr::{Array, Reader},
    },
};

const fn flag(bit: u32, name: &'static str, option: &'static str) -> Flag {
    Flag { bit, name, option }
}

const REDEFINE: Flag = flag(1, "VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE", "redefine");
const QUIESCE: Flag = flag(2, "VIR_DOMAIN_CHECKPOINT_CREATE_QUIESCE", "quiesce");
const VALIDATE: Flag = flag(
    4,
    "VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE_VALIDATE",
    "redefine-validate",
);
const XML_FLAGS: &[Flag] = &[
    flag(1, "VIR_DOMAIN_CHECKPOINT_XML_SECURE", "secure"),
    flag(2, "VIR_DOMAIN_CHECKPOINT_XML_NO_DOMAIN", "no-domain"),
    flag(4, "VIR_DOMAIN_CHECKPOINT_XML_SIZE", "size"),
];
const LIST_FLAGS: &[Flag] = &[
    flag(1, "VIR_DOMAIN_CHECKPOINT_LIST_ROOTS", "roots"),
    flag(2, "VIR_DOMAIN_CHECKPOINT_LIST_TOPOLOGICAL", "topological"),
    flag(4, "VIR_DOMAIN_CHECKPOINT_LIST_LEAVES", "leaves"),
    flag(8, "VIR_DOMAIN_CHECKPOINT_LIST_NO_LEAVES", "no-leaves"),
];
const CHILDREN_FLAGS: &[Flag] = &[
    flag(1, "VIR_DOMAIN_CHECKPOINT_LIST_DESCENDANTS", "roots"),
    flag(2, "VIR_DOMAIN_CHECKPOINT_LIST_TOPOLOGICAL", "topological"),
    flag(4, "VIR_DOMAIN_CHECKPOINT_LIST_LEAVES", "leaves"),
    flag(8, "VIR_DOMAIN_CHECKPOINT_LIST_NO_LEAVES", "no-leaves"),
];
const DELETE_FLAGS: &[Flag] = &[
    flag(1, "VIR_DOMAIN_CHECKPOINT_DELETE_CHILDREN", "children"),
    flag(
        2,
        "VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY",
        "metadata-only",
    ),
    flag(
        4,
        "VIR_DOMAIN_CHECKPOINT_DELETE_CHILDREN_ONLY",
        "children-only",
    ),
];

/// libvirt's methods; the QEMU driver checks create, XML and delete flags in its
/// `qemuCheckpoint*` helpers (and takes no `quiesce`), the test driver in its own.
fn method(p: i32, flavor: Flavor) -> Method {
    let qemu = flavor == Flavor::Qemu;
    let (api, driver_fn, flags): (_, _, &'static [Flag]) = match p {
        procs::DOMAIN_CHECKPOINT_CREATE_XML if qemu => (
            "virDomainCheckpointCreateXML",
            "CheckpointCreateXML",
            &[REDEFINE, VALIDATE],
        ),
        procs::DOMAIN_CHECKPOINT_CREATE_XML => (
            "virDomainCheckpointCreateXML",
            "DomainCheckpointCreateXML",
            &[REDEFINE, QUIESCE],
        ),
        procs::DOMAIN_CHECKPOINT_GET_XML_DESC => (
            "virDomainCheckpointGetXMLDesc",
            if qemu {
                "CheckpointGetXMLDesc"
            } else {
                "DomainCheckpointGetXMLDesc"
            },
            XML_FLAGS,
        ),
        procs::DOMAIN_LIST_ALL_CHECKPOINTS => (
            "virDomainListAllCheckpoints",
            "DomainListAllCheckpoints",
            LIST_FLAGS,
        ),
        procs::DOMAIN_CHECKPOINT_LIST_ALL_CHILDREN => (
            "virDomainCheckpointListAllChildren",
            "DomainCheckpointListAllChildren",
            CHILDREN_FLAGS,
        ),
        procs::DOMAIN_CHECKPOINT_LOOKUP_BY_NAME => (
            "virDomainCheckpointLookupByName",
            "DomainCheckpointLookupByName",
            &[],
        ),
        procs::DOMAIN_CHECKPOINT_GET_PARENT => (
            "virDomainCheckpointGetParent",
            "DomainCheckpointGetParent",
            &[],
        ),
        _ => (
            "virDomainCheckpointDelete",
            if qemu {
                "CheckpointDelete"
            } else {
                "DomainCheckpointDelete"
            },
            DELETE_FLAGS,
        ),
    };
    Method {
        api,
        driver_fn,
        flags,
    }
}

fn chk(dom: &Domain, name: String) -> Snap {
    Snap {
        name,
        dom: wire_dom(dom),
    }
}

fn list_opts(m: &Method, fl: u32) -> CheckpointListOptions {
    CheckpointListOptions {
        roots_or_descendants: m.has(fl, "roots"),
        topological: m.has(fl, "topological"),
        leaves: m.has(fl, "leaves"),
        no_leaves: m.has(fl, "no-leaves"),
    }
}

/// A `*_LIST_ALL_*` reply: the count, and the checkpoints when asked for.
fn all(dom: &Domain, names: Vec<String>, need_results: i32) -> RpcResult<Vec<u8>> {
    let ret = i32::try_from(names.len()).unwrap_or(i32::MAX);
    let checkpoints = if need_results != 0 {
        names.into_iter().map(|n| chk(dom, n)).collect()
    } else {
        Vec::new()
    };
    ok(ListAllSnapshotsRet {
        snapshots: Array(checkpoints),
        ret,
    })
}

/// Carry out checkpoint procedure `p`.
pub(super) async fn call(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    let m = method(p, s.flavor());
    if s.flavor() == Flavor::Lxc {
        return Err(RpcError::no_support(m.api));
    }
    let of =
        |a: &Snap| -> RpcResult<(Arc<Domain>, String)> { Ok((s.domain(&a.dom)?, a.name.clone())) };
    match p {
        procs::DOMAIN_CHECKPOINT_CREATE_XML => {
            let a: SnapshotCreateXmlArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            s.check(&m, a.flags)?;
            let opts = CheckpointCreateOptions {
                redefine: m.has(a.flags, "redefine"),
                redefine_validate: m.has(a.flags, "redefine-validate"),
                quiesce: m.has(a.flags, "quiesce"),
            };
            let name = s
                .run(shared, &m, &dom, ops::CheckpointCreate { xml: a.xml, opts })
                .await?;
            ok(SnapRet {
                snap: chk(&dom, name),
            })
        }
        procs::DOMAIN_CHECKPOINT_GET_XML_DESC => {
            let a: SnapFlagsArgs = Reader::decode(body)?;
            let (dom, name) = of(&a.snap)?;
            s.check(&m, a.flags)?;
            let format = CheckpointFormat {
                secure: m.has(a.flags, "secure"),
                no_domain: m.has(a.flags, "no-domain"),
                size: m.has(a.flags, "size"),
            };
            if format.secure && s.readonly {
                return Err(RpcError::read_only(&format!("{} with secure flag", m.api)));
            }
            let xml = s
                .run(shared, &m, &dom, ops::CheckpointGetXml { name, format })
                .await?;
            ok(StringRet { value: xml })
        }
        procs::DOMAIN_LIST_ALL_CHECKPOINTS => {
            let a: ListAllSnapshotsArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            s.check(&m, a.flags)?;
            let req = ops::CheckpointList {
                from: None,
                opts: list_opts(&m, a.flags),
            };
            let names = s.run(shared, &m, &dom, req).await?;
            all(&dom, names, a.need_results)
        }
        procs::DOMAIN_CHECKPOINT_LIST_ALL_CHILDREN => {
            let a: SnapshotListAllChildrenArgs = Reader::decode(body)?;
            let (dom, name) = of(&a.snap)?;
            s.check(&m, a.flags)?;
            let req = ops::CheckpointList {
                from: Some(name),
                opts: list_opts(&m, a.flags),
            };
            let names = s.run(shared, &m, &dom, req).await?;
            all(&dom, names, a.need_results)
        }
        procs::DOMAIN_CHECKPOINT_LOOKUP_BY_NAME => {
            let a: SnapshotLookupByNameArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            s.check(&m, a.flags)?;
            let facts = s
                .run(shared, &m, &dom, ops::CheckpointRead { name: a.name })
                .await?;
            ok(SnapRet {
                snap: chk(&dom, facts.name),
            })
        }
        procs::DOMAIN_CHECKPOINT_GET_PARENT => {
            let a: SnapFlagsArgs = Reader::decode(body)?;
            let (dom, name) = of(&a.snap)?;
            s.check(&m, a.flags)?;
            let facts = s
                .run(shared, &m, &dom, ops::CheckpointRead { name: name.clone() })
                .await?;
            let parent = facts.parent.ok_or_else(|| {
                s.error(
                    Code::NoDomainCheckpoint,
                    &format!("checkpoint '{name}' does not have a parent"),
                )
            })?;
            ok(SnapRet {
                snap: chk(&dom, parent),
            })
        }
        _ => {
            let a: SnapFlagsArgs = Reader::decode(body)?;
            let (dom, name) = of(&a.snap)?;
            s.check(&m, a.flags)?;
            let opts = CheckpointDeleteOptions {
                children: m.has(a.flags, "children"),
                children_only: m.has(a.flags, "children-only"),
                metadata_only: m.has(a.flags, "metadata-only"),
            };
            s.run(shared, &m, &dom, ops::CheckpointDelete { name, opts })
                .await?;
            ok(())
        }
    }
}
