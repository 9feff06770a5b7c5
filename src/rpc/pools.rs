//! Storage pools and volumes over the core's storage requests
//! ([`crate::core::storage_ops`], run by [`crate::server::exec::Exec::run_storage`]), with
//! libvirt's flag words, states and error codes.

use uuid::Uuid;

use super::{
    Shared,
    dispatch::{Session, int, ok},
    error::{RpcError, RpcResult},
    objects::{check_flags, names, num, writable},
    objproto::{
        ListAllArgs, ListAllPoolsRet, ListAllVolumesRet, MaxNamesArgs, NameArgs, Pool, PoolArgs,
        PoolAutostartArgs, PoolFlagsArgs, PoolInfoRet, PoolListAllVolumesArgs, PoolListVolumesArgs,
        PoolRet, UuidArgs, Vol, VolArgs, VolCreateXmlArgs, VolCreateXmlFromArgs, VolFlagsArgs,
        VolInfoRet, VolLookupByNameArgs, VolResizeArgs, VolRet, XmlFlagsArgs, procs,
    },
    proto::StringRet,
    xdr::{Array, Reader},
};
use crate::{
    compat::errors::Code,
    core::{self, Missing, ops::Operation, storage_ops as ops, storage_ops::StorageOp},
    server::{authz::Details, exec::ExecError},
    storage::{CreateOptions, PoolInfo, ResizeOptions, VolInfo, qemu_img::Prealloc},
};

/// Whether this module answers procedure `p`.
pub(super) fn handles(p: i32) -> bool {
    use procs as P;
    matches!(
        p,
        P::CONNECT_LIST_ALL_STORAGE_POOLS
            | P::NUM_OF_STORAGE_POOLS
            | P::LIST_STORAGE_POOLS
            | P::NUM_OF_DEFINED_STORAGE_POOLS
            | P::LIST_DEFINED_STORAGE_POOLS
            | P::STORAGE_POOL_CREATE_XML
            | P::STORAGE_POOL_DEFINE_XML
            | P::STORAGE_POOL_CREATE
            | P::STORAGE_POOL_BUILD
            | P::STORAGE_POOL_DESTROY
            | P::STORAGE_POOL_DELETE
            | P::STORAGE_POOL_UNDEFINE
            | P::STORAGE_POOL_REFRESH
            | P::STORAGE_POOL_LOOKUP_BY_NAME
            | P::STORAGE_POOL_LOOKUP_BY_UUID
            | P::STORAGE_POOL_LOOKUP_BY_VOLUME
            | P::STORAGE_POOL_GET_INFO
            | P::STORAGE_POOL_GET_XML_DESC
            | P::STORAGE_POOL_GET_AUTOSTART
            | P::STORAGE_POOL_SET_AUTOSTART
            | P::STORAGE_POOL_NUM_OF_VOLUMES
            | P::STORAGE_POOL_LIST_VOLUMES
            | P::STORAGE_POOL_LIST_ALL_VOLUMES
            | P::STORAGE_POOL_IS_ACTIVE
            | P::STORAGE_POOL_IS_PERSISTENT
            | P::STORAGE_VOL_CREATE_XML
            | P::STORAGE_VOL_CREATE_XML_FROM
            | P::STORAGE_VOL_DELETE
            | P::STORAGE_VOL_WIPE
            | P::STORAGE_VOL_RESIZE
            | P::STORAGE_VOL_LOOKUP_BY_NAME
            | P::STORAGE_VOL_LOOKUP_BY_KEY
            | P::STORAGE_VOL_LOOKUP_BY_PATH
            | P::STORAGE_VOL_GET_INFO
            | P::STORAGE_VOL_GET_INFO_FLAGS
            | P::STORAGE_VOL_GET_XML_DESC
            | P::STORAGE_VOL_GET_PATH
    )
}

// virConnectListAllStoragePoolsFlags: the state filters are compat::flags::state_filter's.
/// The pool type bits, from `VIR_CONNECT_LIST_STORAGE_POOLS_DIR` on.
const LIST_DIR: u32 = 1 << 6;
const LIST_TYPES: u32 = ((1 << 20) - 1) & !63;
/// `VIR_STORAGE_POOL_CREATE_WITH_BUILD`, `_OVERWRITE`, `_NO_OVERWRITE`.
const CREATE_BUILD: u32 = 1;
const CREATE_BUILD_ANY: u32 = 7;
/// `VIR_STORAGE_POOL_BUILD_NO_OVERWRITE`, `_OVERWRITE` (a new directory either way).
const BUILD_FLAGS: u32 = 4 | 8;
/// `VIR_STORAGE_XML_INACTIVE`, `VIR_STORAGE_POOL_DEFINE_VALIDATE`.
const XML_INACTIVE: u32 = 1;
const DEFINE_VALIDATE: u32 = 1;
/// `VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA`, `VIR_STORAGE_VOL_CREATE_VALIDATE`.
const VOL_PREALLOC_METADATA: u32 = 1;
const VOL_CREATE_VALIDATE: u32 = 4;
/// `VIR_STORAGE_VOL_RESIZE_ALLOCATE`, `_DELTA`, `_SHRINK`.
const RESIZE_ALLOCATE: u32 = 1;
const RESIZE_DELTA: u32 = 2;
const RESIZE_SHRINK: u32 = 4;
/// `virStoragePoolState`.
const POOL_INACTIVE: u32 = 0;
const POOL_RUNNING: u32 = 2;

fn wire_pool(p: &PoolInfo) -> Pool {
    Pool {
        name: p.name.clone(),
        uuid: *p.uuid.as_bytes(),
    }
}

fn wire_vol(v: &VolInfo) -> Vol {
    Vol {
        pool: v.pool.clone(),
        name: v.name.clone(),
        key: v.key.clone(),
    }
}

/// libvirt's error for a storage request: a missing object is a missing pool or volume.
pub(super) fn error(s: &Session, e: ExecError) -> RpcError {
    let flavor = s.flavor();
    match e {
        ExecError::Denied(d) => RpcError::denied(d, flavor),
        ExecError::Core(e) => core_error(s, e),
    }
}

fn core_error(s: &Session, e: core::Error) -> RpcError {
    match e {
        core::Error::NotFound(Missing::Object, msg) => {
            let code = if msg.contains("storage vol") {
                Code::NoStorageVol
            } else {
                Code::NoStoragePool
            };
            s.error(code, &msg)
        }
        e => RpcError::from_core(e, s.flavor(), &STORAGE_METHOD),
    }
}

static STORAGE_METHOD: crate::compat::flags::Method = crate::compat::flags::Method {
    api: "virStorage",
    driver_fn: "Storage",
    flags: &[],
};

async fn run<O: StorageOp>(
    shared: &Shared,
    s: &Session,
    api: &str,
    req: O,
) -> RpcResult<O::Output> {
    if req.operation().changes_state() {
        writable(s, api)?;
    }
    s.exec(shared)
        .run_storage(&s.caller, req)
        .await
        .map_err(|e| error(s, e))
}

/// The pools the caller may read.
async fn visible(shared: &Shared, s: &Session) -> Vec<PoolInfo> {
    let exec = s.exec(shared);
    let mut out = Vec::new();
    for p in s.view.core.storage().list_pools() {
        if exec.allows_everything()
            || exec
                .authorize_as(&s.caller, Operation::ReadStorage, &Details::pool(&p.name))
                .await
                .is_ok()
        {
            out.push(p);
        }
    }
    out
}

/// The pool a `remote_nonnull_storage_pool` names (by UUID, as libvirt looks it up).
async fn pool_of(shared: &Shared, s: &Session, p: &Pool) -> RpcResult<PoolInfo> {
    let uuid = Uuid::from_bytes(p.uuid);
    let name = s
        .view
        .core
        .storage()
        .pool_by_uuid(&uuid)
        .map_err(|_| {
            s.error(
                Code::NoStoragePool,
                &format!("no storage pool with matching uuid '{uuid}' ({})", p.name),
            )
        })?
        .name();
    run(
        shared,
        s,
        "virStoragePoolGetInfo",
        ops::PoolProps { pool: name },
    )
    .await
}

pub(super) async fn vol_of(shared: &Shared, s: &Session, v: &Vol) -> RpcResult<VolInfo> {
    let req = ops::VolumeProps {
        pool: v.pool.clone(),
        volume: v.name.clone(),
    };
    run(shared, s, "virStorageVolGetInfo", req).await
}

/// The volume whose path (the key of a directory pool's volume) is `path`.
async fn vol_by_path(shared: &Shared, s: &Session, path: &str, what: &str) -> RpcResult<VolInfo> {
    let found = s.view.core.storage().volume_by_path(path).map_err(|_| {
        s.error(
            Code::NoStorageVol,
            &format!("no storage vol with matching {what} '{path}'"),
        )
    })?;
    let req = ops::VolumeProps {
        pool: found.pool,
        volume: found.name,
    };
    run(shared, s, "virStorageVolLookupByPath", req).await
}

fn create_options(flags: u32) -> CreateOptions {
    CreateOptions {
        prealloc: (flags & VOL_PREALLOC_METADATA != 0).then_some(Prealloc::Metadata),
    }
}

pub(super) async fn call(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    use procs as P;
    match p {
        P::CONNECT_LIST_ALL_STORAGE_POOLS => {
            let a: ListAllArgs = Reader::decode(body)?;
            check_flags(s, a.flags, 63 | LIST_TYPES, "virConnectListAllStoragePools")?;
            let f = a.flags;
            // every pool is a directory pool
            let typed_out = f & LIST_TYPES != 0 && f & LIST_DIR == 0;
            let pools: Vec<Pool> = if typed_out {
                Vec::new()
            } else {
                visible(shared, s)
                    .await
                    .iter()
                    .filter(|p| {
                        crate::compat::flags::state_filter(f, p.active, p.persistent, p.autostart)
                    })
                    .map(wire_pool)
                    .collect()
            };
            let ret = pools.len() as u32;
            let pools = if a.need_results != 0 {
                pools
            } else {
                Vec::new()
            };
            ok(ListAllPoolsRet {
                pools: Array(pools),
                ret,
            })
        }
        P::NUM_OF_STORAGE_POOLS | P::NUM_OF_DEFINED_STORAGE_POOLS => {
            Reader::decode::<()>(body)?;
            let active = p == P::NUM_OF_STORAGE_POOLS;
            num(visible(shared, s)
                .await
                .iter()
                .filter(|p| p.active == active)
                .count())
        }
        P::LIST_STORAGE_POOLS | P::LIST_DEFINED_STORAGE_POOLS => {
            let a: MaxNamesArgs = Reader::decode(body)?;
            let active = p == P::LIST_STORAGE_POOLS;
            let v = visible(shared, s)
                .await
                .into_iter()
                .filter(|p| p.active == active)
                .map(|p| p.name)
                .collect();
            names(v, a.maxnames)
        }
        P::STORAGE_POOL_LOOKUP_BY_NAME => {
            let a: NameArgs = Reader::decode(body)?;
            let req = ops::PoolProps {
                pool: a.name.clone(),
            };
            let info = run(shared, s, "virStoragePoolLookupByName", req).await?;
            ok(PoolRet {
                pool: wire_pool(&info),
            })
        }
        P::STORAGE_POOL_LOOKUP_BY_UUID => {
            let a: UuidArgs = Reader::decode(body)?;
            let uuid = Uuid::from_bytes(a.uuid);
            let name = s
                .view
                .core
                .storage()
                .pool_by_uuid(&uuid)
                .map_err(|_| {
                    s.error(
                        Code::NoStoragePool,
                        &format!("no storage pool with matching uuid '{uuid}'"),
                    )
                })?
                .name();
            let info = run(
                shared,
                s,
                "virStoragePoolLookupByUUID",
                ops::PoolProps { pool: name },
            )
            .await?;
            ok(PoolRet {
                pool: wire_pool(&info),
            })
        }
        P::STORAGE_POOL_LOOKUP_BY_VOLUME => {
            let a: VolArgs = Reader::decode(body)?;
            let v = vol_of(shared, s, &a.vol).await?;
            let info = run(
                shared,
                s,
                "virStoragePoolLookupByVolume",
                ops::PoolProps { pool: v.pool },
            )
            .await?;
            ok(PoolRet {
                pool: wire_pool(&info),
            })
        }
        P::STORAGE_POOL_DEFINE_XML | P::STORAGE_POOL_CREATE_XML => {
            let a: XmlFlagsArgs = Reader::decode(body)?;
            let info = if p == P::STORAGE_POOL_DEFINE_XML {
                let api = "virStoragePoolDefineXML";
                check_flags(s, a.flags, DEFINE_VALIDATE, api)?;
                run(shared, s, api, ops::DefinePool { xml: a.xml }).await?
            } else {
                let api = "virStoragePoolCreateXML";
                check_flags(s, a.flags, CREATE_BUILD_ANY, api)?;
                let req = ops::CreatePool {
                    xml: a.xml,
                    build: a.flags & CREATE_BUILD_ANY != 0,
                };
                run(shared, s, api, req).await?
            };
            ok(PoolRet {
                pool: wire_pool(&info),
            })
        }
        P::STORAGE_POOL_CREATE => {
            let a: PoolFlagsArgs = Reader::decode(body)?;
            let api = "virStoragePoolCreate";
            check_flags(s, a.flags, CREATE_BUILD_ANY, api)?;
            let pool = pool_of(shared, s, &a.pool).await?.name;
            if a.flags & CREATE_BUILD_ANY != 0 {
                let _ = CREATE_BUILD;
                run(shared, s, api, ops::BuildPool { pool: pool.clone() }).await?;
            }
            run(shared, s, api, ops::StartPool { pool }).await?;
            ok(())
        }
        P::STORAGE_POOL_BUILD => {
            let a: PoolFlagsArgs = Reader::decode(body)?;
            let api = "virStoragePoolBuild";
            check_flags(s, a.flags, BUILD_FLAGS, api)?;
            let pool = pool_of(shared, s, &a.pool).await?.name;
            run(shared, s, api, ops::BuildPool { pool }).await?;
            ok(())
        }
        P::STORAGE_POOL_DESTROY | P::STORAGE_POOL_UNDEFINE => {
            let a: PoolArgs = Reader::decode(body)?;
            let pool = pool_of(shared, s, &a.pool).await?.name;
            if p == P::STORAGE_POOL_DESTROY {
                run(shared, s, "virStoragePoolDestroy", ops::StopPool { pool }).await?;
            } else {
                run(
                    shared,
                    s,
                    "virStoragePoolUndefine",
                    ops::UndefinePool { pool },
                )
                .await?;
            }
            ok(())
        }
        P::STORAGE_POOL_DELETE | P::STORAGE_POOL_REFRESH => {
            let a: PoolFlagsArgs = Reader::decode(body)?;
            let pool = pool_of(shared, s, &a.pool).await?.name;
            if p == P::STORAGE_POOL_DELETE {
                let api = "virStoragePoolDelete";
                check_flags(s, a.flags, 0, api)?;
                run(shared, s, api, ops::DeletePool { pool }).await?;
            } else {
                let api = "virStoragePoolRefresh";
                check_flags(s, a.flags, 0, api)?;
                run(shared, s, api, ops::RefreshPool { pool }).await?;
            }
            ok(())
        }
        P::STORAGE_POOL_GET_INFO => {
            let a: PoolArgs = Reader::decode(body)?;
            let i = pool_of(shared, s, &a.pool).await?;
            ok(PoolInfoRet {
                state: if i.active {
                    POOL_RUNNING
                } else {
                    POOL_INACTIVE
                },
                capacity: i.sizes.capacity,
                allocation: i.sizes.allocation,
                available: i.sizes.available,
            })
        }
        P::STORAGE_POOL_GET_XML_DESC => {
            let a: PoolFlagsArgs = Reader::decode(body)?;
            check_flags(s, a.flags, XML_INACTIVE, "virStoragePoolGetXMLDesc")?;
            let pool = pool_of(shared, s, &a.pool).await?.name;
            let req = ops::PoolXml {
                pool,
                inactive: a.flags & XML_INACTIVE != 0,
            };
            let xml = run(shared, s, "virStoragePoolGetXMLDesc", req).await?;
            ok(StringRet { value: xml })
        }
        P::STORAGE_POOL_GET_AUTOSTART
        | P::STORAGE_POOL_IS_ACTIVE
        | P::STORAGE_POOL_IS_PERSISTENT => {
            let a: PoolArgs = Reader::decode(body)?;
            let i = pool_of(shared, s, &a.pool).await?;
            int(match p {
                P::STORAGE_POOL_GET_AUTOSTART => i.autostart,
                P::STORAGE_POOL_IS_ACTIVE => i.active,
                _ => i.persistent,
            })
        }
        P::STORAGE_POOL_SET_AUTOSTART => {
            let a: PoolAutostartArgs = Reader::decode(body)?;
            let pool = pool_of(shared, s, &a.pool).await?.name;
            let req = ops::SetPoolAutostart {
                pool,
                autostart: a.autostart != 0,
            };
            run(shared, s, "virStoragePoolSetAutostart", req).await?;
            ok(())
        }
        P::STORAGE_POOL_NUM_OF_VOLUMES | P::STORAGE_POOL_LIST_VOLUMES => {
            let (pool, max) = if p == P::STORAGE_POOL_NUM_OF_VOLUMES {
                (Reader::decode::<PoolArgs>(body)?.pool, None)
            } else {
                let a: PoolListVolumesArgs = Reader::decode(body)?;
                (a.pool, Some(a.maxnames))
            };
            let pool = pool_of(shared, s, &pool).await?.name;
            let vols = run(
                shared,
                s,
                "virStoragePoolListVolumes",
                ops::ListVolumes { pool },
            )
            .await?;
            match max {
                None => num(vols.len()),
                Some(m) => names(vols.into_iter().map(|v| v.name).collect(), m),
            }
        }
        P::STORAGE_POOL_LIST_ALL_VOLUMES => {
            let a: PoolListAllVolumesArgs = Reader::decode(body)?;
            check_flags(s, a.flags, 0, "virStoragePoolListAllVolumes")?;
            let pool = pool_of(shared, s, &a.pool).await?.name;
            let vols = run(
                shared,
                s,
                "virStoragePoolListAllVolumes",
                ops::ListVolumes { pool },
            )
            .await?;
            let ret = vols.len() as u32;
            let vols = if a.need_results != 0 {
                vols.iter().map(wire_vol).collect()
            } else {
                Vec::new()
            };
            ok(ListAllVolumesRet {
                vols: Array(vols),
                ret,
            })
        }
        P::STORAGE_VOL_LOOKUP_BY_NAME => {
            let a: VolLookupByNameArgs = Reader::decode(body)?;
            let pool = pool_of(shared, s, &a.pool).await?.name;
            let req = ops::VolumeProps {
                pool,
                volume: a.name,
            };
            let v = run(shared, s, "virStorageVolLookupByName", req).await?;
            ok(VolRet { vol: wire_vol(&v) })
        }
        P::STORAGE_VOL_LOOKUP_BY_KEY | P::STORAGE_VOL_LOOKUP_BY_PATH => {
            let a: NameArgs = Reader::decode(body)?;
            let what = if p == P::STORAGE_VOL_LOOKUP_BY_KEY {
                "key"
            } else {
                "path"
            };
            let v = vol_by_path(shared, s, &a.name, what).await?;
            ok(VolRet { vol: wire_vol(&v) })
        }
        P::STORAGE_VOL_CREATE_XML => {
            let a: VolCreateXmlArgs = Reader::decode(body)?;
            let api = "virStorageVolCreateXML";
            check_flags(s, a.flags, VOL_PREALLOC_METADATA | VOL_CREATE_VALIDATE, api)?;
            let pool = pool_of(shared, s, &a.pool).await?.name;
            let req = ops::CreateVolume {
                pool,
                xml: a.xml,
                opts: create_options(a.flags),
            };
            let v = run(shared, s, api, req).await?;
            ok(VolRet { vol: wire_vol(&v) })
        }
        P::STORAGE_VOL_CREATE_XML_FROM => {
            let a: VolCreateXmlFromArgs = Reader::decode(body)?;
            let api = "virStorageVolCreateXMLFrom";
            check_flags(s, a.flags, VOL_PREALLOC_METADATA | VOL_CREATE_VALIDATE, api)?;
            let pool = pool_of(shared, s, &a.pool).await?.name;
            let src = vol_of(shared, s, &a.clonevol).await?;
            let req = ops::CloneVolume {
                pool,
                xml: a.xml,
                source_pool: src.pool,
                source: src.name,
                opts: create_options(a.flags),
            };
            let v = run(shared, s, api, req).await?;
            ok(VolRet { vol: wire_vol(&v) })
        }
        P::STORAGE_VOL_DELETE | P::STORAGE_VOL_WIPE => {
            let a: VolFlagsArgs = Reader::decode(body)?;
            let v = vol_of(shared, s, &a.vol).await?;
            if p == P::STORAGE_VOL_DELETE {
                let api = "virStorageVolDelete";
                check_flags(s, a.flags, 0, api)?;
                let req = ops::DeleteVolume {
                    pool: v.pool,
                    volume: v.name,
                };
                run(shared, s, api, req).await?;
            } else {
                let api = "virStorageVolWipe";
                check_flags(s, a.flags, 0, api)?;
                let req = ops::WipeVolume {
                    pool: v.pool,
                    volume: v.name,
                };
                run(shared, s, api, req).await?;
            }
            ok(())
        }
        P::STORAGE_VOL_RESIZE => {
            let a: VolResizeArgs = Reader::decode(body)?;
            let api = "virStorageVolResize";
            check_flags(
                s,
                a.flags,
                RESIZE_ALLOCATE | RESIZE_DELTA | RESIZE_SHRINK,
                api,
            )?;
            let v = vol_of(shared, s, &a.vol).await?;
            let req = ops::ResizeVolume {
                pool: v.pool,
                volume: v.name,
                capacity: a.capacity,
                opts: ResizeOptions {
                    allocate: a.flags & RESIZE_ALLOCATE != 0,
                    delta: a.flags & RESIZE_DELTA != 0,
                    shrink: a.flags & RESIZE_SHRINK != 0,
                },
            };
            run(shared, s, api, req).await?;
            ok(())
        }
        P::STORAGE_VOL_GET_INFO | P::STORAGE_VOL_GET_INFO_FLAGS => {
            let vol = if p == P::STORAGE_VOL_GET_INFO {
                Reader::decode::<VolArgs>(body)?.vol
            } else {
                let a: VolFlagsArgs = Reader::decode(body)?;
                // VIR_STORAGE_VOL_GET_PHYSICAL: a file's allocation is what it holds
                check_flags(s, a.flags, 1, "virStorageVolGetInfoFlags")?;
                a.vol
            };
            let v = vol_of(shared, s, &vol).await?;
            ok(VolInfoRet {
                kind: v.vol_type,
                capacity: v.capacity,
                allocation: v.allocation,
            })
        }
        P::STORAGE_VOL_GET_XML_DESC => {
            let a: VolFlagsArgs = Reader::decode(body)?;
            check_flags(s, a.flags, 0, "virStorageVolGetXMLDesc")?;
            let req = ops::VolumeXml {
                pool: a.vol.pool,
                volume: a.vol.name,
            };
            let xml = run(shared, s, "virStorageVolGetXMLDesc", req).await?;
            ok(StringRet { value: xml })
        }
        P::STORAGE_VOL_GET_PATH => {
            let a: VolArgs = Reader::decode(body)?;
            let v = vol_of(shared, s, &a.vol).await?;
            ok(StringRet { value: v.path })
        }
        p => Err(RpcError::no_support(&format!("procedure {p}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_storage_procedure_is_listed() {
        let mine: Vec<i32> = procs::IMPLEMENTED
            .iter()
            .copied()
            .filter(|p| handles(*p))
            .collect();
        assert_eq!(mine.len(), 37);
    }
}
