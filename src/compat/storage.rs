//! `org.libvirt.StoragePool`, `org.libvirt.StorageVol` and Connect's storage methods:
//! libvirt-dbus's view of the storage pools, over the core's storage requests
//! (`Exec::run_storage`), with libvirt's flag words, event numbers and error codes. The
//! Test connect's pools live in memory, as in libvirt's test driver; flags are checked as
//! the driver behind the connect checks them (the test driver takes fewer).

use uuid::Uuid;
use zbus::{Message, ObjectPath, Variant};

use super::{
    Connect, Ctx,
    errors::{Code, CompatError, Reply, bare, libvirt, no_support},
    flags::{Flavor, Method},
    paths,
};
use crate::{
    core::{self, Missing, ops::Operation, storage_ops as ops},
    server::{Call, authz::Details, dict::Dict, exec::ExecError},
    storage::{
        CreateOptions, PoolEventKind, PoolInfo, ResizeOptions, StorageEvent, VolInfo,
        qemu_img::Prealloc,
    },
};

pub(super) const POOL_PROPS: &[&str] = &["Active", "Autostart", "Name", "Persistent", "UUID"];
pub(super) const VOL_PROPS: &[&str] = &["Name", "Key", "Path"];

// virConnectListAllStoragePoolsFlags: the state filters (flags::state_filter), then one bit per
// pool type (dir first)
const LIST_DIR: u32 = 64;
const LIST_ALL: u32 = (1 << 20) - 1;
/// VIR_STORAGE_POOL_CREATE_WITH_BUILD, _OVERWRITE, _NO_OVERWRITE
const CREATE_BUILD: u32 = 7;
/// VIR_STORAGE_POOL_DEFINE_VALIDATE
const DEFINE_VALIDATE: u32 = 1;
/// VIR_STORAGE_POOL_BUILD_NO_OVERWRITE, _OVERWRITE (the only ones a dir pool takes)
const BUILD_DIR: u32 = 4 | 8;
/// VIR_STORAGE_XML_INACTIVE
const XML_INACTIVE: u32 = 1;
/// VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA
const VOL_PREALLOC_METADATA: u32 = 1;
/// VIR_STORAGE_VOL_GET_PHYSICAL
const VOL_GET_PHYSICAL: u32 = 1;
// virStorageVolResizeFlags
const RESIZE_ALLOCATE: u32 = 1;
const RESIZE_DELTA: u32 = 2;
const RESIZE_SHRINK: u32 = 4;
/// virStoragePoolState: VIR_STORAGE_POOL_INACTIVE, _RUNNING
const POOL_INACTIVE: i32 = 0;
const POOL_RUNNING: i32 = 2;

/// `virCheckFlags`' refusal, naming the driver function: the test driver's `test<driver_fn>`
/// or the storage driver's `storage…` (which drops `Storage`).
fn check(flags: u32, known: u32, flavor: Flavor, driver_fn: &str) -> Reply<()> {
    let bad = flags & !known;
    if bad != 0 {
        let name = match flavor {
            Flavor::Test => format!("test{driver_fn}"),
            Flavor::Qemu | Flavor::Lxc => format!(
                "storage{}",
                driver_fn.strip_prefix("Storage").unwrap_or(driver_fn)
            ),
        };
        return Err(bare(format!(
            "unsupported flags (0x{bad:x}) in function {name}"
        )));
    }
    Ok(())
}

/// The flags the connect's driver takes: the test driver takes none for most calls.
fn known(flavor: Flavor, qemu: u32) -> u32 {
    match flavor {
        Flavor::Test => 0,
        Flavor::Qemu | Flavor::Lxc => qemu,
    }
}

fn method(api: &'static str) -> Method {
    Method {
        api,
        driver_fn: "",
        flags: &[],
    }
}

/// libvirt's error for a failed storage request of API `api`.
fn error(e: ExecError, flavor: Flavor, api: &'static str) -> CompatError {
    match e {
        ExecError::Denied(d) => d.into(),
        ExecError::Core(core::Error::NotFound(Missing::Object, msg)) => {
            if msg.starts_with("no storage vol") {
                libvirt(Code::NoStorageVol, Some(&msg))
            } else {
                libvirt(Code::NoStoragePool, Some(&msg))
            }
        }
        ExecError::Core(core::Error::Unimplemented(a)) => no_support(&a),
        ExecError::Core(core::Error::InvalidArgument(msg))
            if msg == crate::storage::memory::MISSING_CAPACITY =>
        {
            libvirt(Code::XmlError, Some(&msg))
        }
        ExecError::Core(core::Error::AlreadyExists(msg)) if flavor == Flavor::Test => {
            libvirt(Code::OperationFailed, Some(&msg))
        }
        ExecError::Core(c) => super::errors::from_core(c, flavor, &method(api)),
    }
}

async fn run<O: ops::StorageOp>(
    ctx: &Ctx,
    call: &Call,
    c: &Connect,
    api: &'static str,
    req: O,
) -> Reply<O::Output> {
    c.exec(ctx)
        .run_storage(&call.caller, req)
        .await
        .map_err(|e| error(e, c.flavor, api))
}

/// The pools the caller may read.
async fn list(ctx: &Ctx, call: &Call, c: &Connect) -> Reply<Vec<PoolInfo>> {
    let all = run(
        ctx,
        call,
        c,
        "virConnectListAllStoragePools",
        ops::ListPools {},
    )
    .await?;
    if ctx.authz.allows_everything() {
        return Ok(all);
    }
    let mut out = Vec::with_capacity(all.len());
    for p in all {
        let d = Details::pool(&p.name);
        if ctx
            .authorize(call, Operation::ReadStorage, &d)
            .await
            .is_ok()
        {
            out.push(p);
        }
    }
    Ok(out)
}

fn no_pool_uuid(uuid: &str) -> CompatError {
    libvirt(
        Code::NoStoragePool,
        Some(&format!("no storage pool with matching uuid '{uuid}'")),
    )
}

/// The pool with `uuid`.
async fn by_uuid(ctx: &Ctx, call: &Call, c: &Connect, uuid: &Uuid) -> Reply<PoolInfo> {
    list(ctx, call, c)
        .await?
        .into_iter()
        .find(|p| p.uuid == *uuid)
        .ok_or_else(|| no_pool_uuid(&uuid.to_string()))
}

/// The volume with `key` (a directory pool's keys are its volumes' paths).
async fn by_key(
    ctx: &Ctx,
    call: &Call,
    c: &Connect,
    key: &str,
    api: &'static str,
) -> Reply<VolInfo> {
    let req = ops::FindVolume {
        path: key.to_owned(),
        by_key: true,
    };
    run(ctx, call, c, api, req).await
}

fn pool_path(c: &Connect, p: &PoolInfo) -> ObjectPath<'static> {
    ObjectPath::from_string_unchecked(paths::storage_pool(c.path, &p.uuid))
}

fn vol_path(c: &Connect, v: &VolInfo) -> ObjectPath<'static> {
    ObjectPath::from_string_unchecked(paths::storage_vol(c.path, &v.key))
}

/// The node names under `<connect>/storagepool` (`vols`: `storagevol`) the caller may see.
pub(super) async fn children(ctx: &Ctx, call: &Call, c: &Connect, vols: bool) -> Vec<String> {
    let mut out = Vec::new();
    for p in list(ctx, call, c).await.unwrap_or_default() {
        if !vols {
            out.push(pool_path(c, &p).to_string());
            continue;
        }
        if !p.active {
            continue;
        }
        let req = ops::ListVolumes { pool: p.name };
        for v in run(ctx, call, c, "", req).await.unwrap_or_default() {
            out.push(vol_path(c, &v).to_string());
        }
    }
    let mut out: Vec<String> = out
        .iter()
        .filter_map(|p| p.rsplit('/').next().map(str::to_owned))
        .collect();
    out.sort();
    out
}

/// The source discovery libvirt's drivers answer for a pool type. (The test driver takes
/// `dir`, the first of libvirt's types, for no type at all.)
pub(crate) fn find_sources(flavor: Flavor, pool_type: &str) -> Reply<String> {
    let known = pool_type.parse::<crate::storage::PoolType>().is_ok();
    let unknown = match flavor {
        Flavor::Test => pool_type == "dir",
        Flavor::Qemu | Flavor::Lxc => !known,
    };
    if unknown {
        return Err(libvirt(
            Code::Internal,
            Some(&format!("unknown storage pool type {pool_type}")),
        ));
    }
    if flavor == Flavor::Test && pool_type == "logical" {
        // the test driver discovers fixed LVM volume groups
        return Ok(TEST_LOGICAL_SOURCES.to_owned());
    }
    Err(libvirt(
        Code::NoSupport,
        Some(&format!(
            "pool type '{pool_type}' does not support source discovery"
        )),
    ))
}

/// What libvirt's test driver finds for `logical` pools.
const TEST_LOGICAL_SOURCES: &str = "<sources>
  <source>
    <device path='/dev/sda20'/>
    <name>testvg1</name>
    <format type='lvm2'/>
  </source>
  <source>
    <device path='/dev/sda21'/>
    <name>testvg2</name>
    <format type='lvm2'/>
  </source>
</sources>
";

/// Connect's storage methods.
pub(super) async fn connect_call(
    ctx: &Ctx,
    call: &Call,
    c: &Connect,
    member: &str,
) -> Reply<Message> {
    let body = call.msg.body();
    let flavor = c.flavor;
    match member {
        "ListStoragePools" => {
            let flags: u32 = body.deserialize()?;
            check(flags, LIST_ALL, flavor, "ConnectListAllStoragePools")?;
            // every pool is a dir pool: a type filter without dir leaves none
            let types = flags & (LIST_ALL & !(LIST_DIR - 1));
            let paths: Vec<ObjectPath<'static>> = list(ctx, call, c)
                .await?
                .iter()
                .filter(|p| {
                    (types == 0 || types & LIST_DIR != 0)
                        && crate::compat::flags::state_filter(
                            flags,
                            p.active,
                            p.persistent,
                            p.autostart,
                        )
                })
                .map(|p| pool_path(c, p))
                .collect();
            call.reply(&paths)
        }
        "StoragePoolCreateXML" | "StoragePoolDefineXML" => {
            let (xml, flags): (String, u32) = body.deserialize()?;
            let p = if member == "StoragePoolCreateXML" {
                check(
                    flags,
                    known(flavor, CREATE_BUILD),
                    flavor,
                    "StoragePoolCreateXML",
                )?;
                let req = ops::CreatePool {
                    xml,
                    build: flags & CREATE_BUILD != 0,
                };
                run(ctx, call, c, "virStoragePoolCreateXML", req).await?
            } else {
                check(flags, DEFINE_VALIDATE, flavor, "StoragePoolDefineXML")?;
                run(
                    ctx,
                    call,
                    c,
                    "virStoragePoolDefineXML",
                    ops::DefinePool { xml },
                )
                .await?
            };
            c.signals_sent().await;
            call.reply(&pool_path(c, &p))
        }
        "StoragePoolLookupByName" => {
            let name: String = body.deserialize()?;
            let req = ops::GetPool { pool: name };
            let p = run(ctx, call, c, "virStoragePoolLookupByName", req).await?;
            call.reply(&pool_path(c, &p))
        }
        "StoragePoolLookupByUUID" => {
            let s: String = body.deserialize()?;
            let uuid = super::connect::parse_uuid(&s).ok_or_else(|| bare("Invalid UUID".into()))?;
            let p = by_uuid(ctx, call, c, &uuid).await?;
            call.reply(&pool_path(c, &p))
        }
        "StorageVolLookupByKey" | "StorageVolLookupByPath" => {
            let key: String = body.deserialize()?;
            let by_key = member == "StorageVolLookupByKey";
            let req = ops::FindVolume { path: key, by_key };
            let v = run(ctx, call, c, "virStorageVolLookupByPath", req).await?;
            call.reply(&vol_path(c, &v))
        }
        "FindStoragePoolSources" => {
            let (pool_type, _spec, flags): (String, String, u32) = body.deserialize()?;
            check(flags, 0, flavor, "ConnectFindStoragePoolSources")?;
            ctx.authorize(call, Operation::ReadStorage, &Details::default())
                .await?;
            call.reply(&find_sources(flavor, &pool_type)?)
        }
        m => Err(no_support(m)),
    }
}

/// What the driver behind the connect refuses for the pool's state before any work, in
/// its words (the test driver's differ from the storage driver's; both keep an active pool
/// defined, where the native API lets it run on as a transient one).
fn refuse(flavor: Flavor, p: &PoolInfo, member: &str) -> Reply<()> {
    let name = &p.name;
    let invalid = |m: String| Err(libvirt(Code::OperationInvalid, Some(&m)));
    match (flavor, member, p.active) {
        (Flavor::Test, "Create" | "Build" | "Delete" | "Undefine", true) => {
            invalid(format!("storage pool '{name}' is active"))
        }
        (Flavor::Qemu, "Undefine", true) => {
            invalid(format!("storage pool '{name}' is still active"))
        }
        (Flavor::Test, "ListStorageVolumes", false) => invalid("storage pool is not active".into()),
        (Flavor::Test, "Autostart", _) if !p.persistent => {
            Err(libvirt(Code::InvalidArg, Some("pool has no config file")))
        }
        (Flavor::Qemu, "Autostart", _) if !p.persistent => Err(libvirt(
            Code::InvalidArg,
            Some("cannot set autostart for transient pool"),
        )),
        _ => Ok(()),
    }
}

/// A StoragePool object's methods.
pub(super) async fn pool_call(
    ctx: &Ctx,
    call: &Call,
    c: &Connect,
    uuid: &Uuid,
    member: &str,
) -> Reply<Message> {
    let body = call.msg.body();
    let flavor = c.flavor;
    let p = by_uuid(ctx, call, c, uuid).await?;
    let pool = p.name.clone();
    refuse(flavor, &p, member)?;
    let out = match member {
        "Build" => {
            let flags: u32 = body.deserialize()?;
            check(flags, known(flavor, BUILD_DIR), flavor, "StoragePoolBuild")?;
            run(ctx, call, c, "virStoragePoolBuild", ops::BuildPool { pool }).await?;
            call.reply_empty()
        }
        "Create" => {
            let flags: u32 = body.deserialize()?;
            check(
                flags,
                known(flavor, CREATE_BUILD),
                flavor,
                "StoragePoolCreate",
            )?;
            if flags & CREATE_BUILD != 0 {
                let req = ops::BuildPool { pool: pool.clone() };
                run(ctx, call, c, "virStoragePoolCreate", req).await?;
            }
            run(
                ctx,
                call,
                c,
                "virStoragePoolCreate",
                ops::StartPool { pool },
            )
            .await?;
            call.reply_empty()
        }
        "Delete" => {
            let flags: u32 = body.deserialize()?;
            check(flags, 0, flavor, "StoragePoolDelete")?;
            run(
                ctx,
                call,
                c,
                "virStoragePoolDelete",
                ops::DeletePool { pool },
            )
            .await?;
            call.reply_empty()
        }
        "Destroy" => {
            run(
                ctx,
                call,
                c,
                "virStoragePoolDestroy",
                ops::StopPool { pool },
            )
            .await?;
            call.reply_empty()
        }
        "Undefine" => {
            run(
                ctx,
                call,
                c,
                "virStoragePoolUndefine",
                ops::UndefinePool { pool },
            )
            .await?;
            call.reply_empty()
        }
        "Refresh" => {
            let flags: u32 = body.deserialize()?;
            check(flags, 0, flavor, "StoragePoolRefresh")?;
            run(
                ctx,
                call,
                c,
                "virStoragePoolRefresh",
                ops::RefreshPool { pool },
            )
            .await?;
            call.reply_empty()
        }
        "GetInfo" => {
            let state = if p.active {
                POOL_RUNNING
            } else {
                POOL_INACTIVE
            };
            let s = p.sizes;
            call.reply(&((state, s.capacity, s.allocation, s.available),))
        }
        "GetXMLDesc" => {
            let flags: u32 = body.deserialize()?;
            check(
                flags,
                known(flavor, XML_INACTIVE),
                flavor,
                "StoragePoolGetXMLDesc",
            )?;
            let req = ops::PoolXml {
                pool,
                inactive: flags & XML_INACTIVE != 0,
            };
            call.reply(&run(ctx, call, c, "virStoragePoolGetXMLDesc", req).await?)
        }
        "ListStorageVolumes" => {
            let flags: u32 = body.deserialize()?;
            check(flags, 0, flavor, "StoragePoolListAllVolumes")?;
            let vols = run(
                ctx,
                call,
                c,
                "virStoragePoolListAllVolumes",
                ops::ListVolumes { pool },
            )
            .await?;
            let paths: Vec<ObjectPath<'static>> = vols.iter().map(|v| vol_path(c, v)).collect();
            call.reply(&paths)
        }
        "StorageVolCreateXML" => {
            let (xml, flags): (String, u32) = body.deserialize()?;
            check(
                flags,
                known(flavor, VOL_PREALLOC_METADATA),
                flavor,
                "StorageVolCreateXML",
            )?;
            let opts = CreateOptions {
                prealloc: (flags & VOL_PREALLOC_METADATA != 0).then_some(Prealloc::Metadata),
            };
            let req = ops::CreateVolume { pool, xml, opts };
            let v = run(ctx, call, c, "virStorageVolCreateXML", req).await?;
            call.reply(&vol_path(c, &v))
        }
        "StorageVolCreateXMLFrom" => {
            let (xml, key, flags): (String, String, u32) = body.deserialize()?;
            let api = "virStorageVolCreateXMLFrom";
            let src = by_key(ctx, call, c, &key, api).await?;
            check(
                flags,
                known(flavor, VOL_PREALLOC_METADATA),
                flavor,
                "StorageVolCreateXMLFrom",
            )?;
            let req = ops::CloneVolume {
                pool,
                xml,
                source_pool: src.pool,
                source: src.name,
                opts: CreateOptions {
                    prealloc: (flags & VOL_PREALLOC_METADATA != 0).then_some(Prealloc::Metadata),
                },
            };
            let v = run(ctx, call, c, api, req).await?;
            call.reply(&vol_path(c, &v))
        }
        "StorageVolLookupByName" => {
            let name: String = body.deserialize()?;
            let req = ops::GetVolume {
                pool,
                volume: name.clone(),
            };
            let v = run(ctx, call, c, "virStorageVolLookupByName", req)
                .await
                .map_err(|e| match e {
                    CompatError::Libvirt {
                        code: Code::NoStorageVol,
                        ..
                    } => libvirt(
                        Code::NoStorageVol,
                        Some(&format!("no storage vol with matching name '{name}'")),
                    ),
                    e => e,
                })?;
            call.reply(&vol_path(c, &v))
        }
        m => Err(CompatError::unknown_method(m)),
    }?;
    Ok(out)
}

/// A StorageVol object's methods.
pub(super) async fn vol_call(
    ctx: &Ctx,
    call: &Call,
    c: &Connect,
    key: &str,
    member: &str,
) -> Reply<Message> {
    let body = call.msg.body();
    let flavor = c.flavor;
    let v = by_key(ctx, call, c, key, "virStorageVolLookupByKey").await?;
    let (pool, volume) = (v.pool.clone(), v.name.clone());
    match member {
        "Delete" => {
            let flags: u32 = body.deserialize()?;
            check(flags, 0, flavor, "StorageVolDelete")?;
            run(
                ctx,
                call,
                c,
                "virStorageVolDelete",
                ops::DeleteVolume { pool, volume },
            )
            .await?;
            call.reply_empty()
        }
        // the test driver has only the older virStorageVolGetInfo
        "GetInfo" if flavor == Flavor::Test => Err(no_support("virStorageVolGetInfoFlags")),
        "GetInfo" => {
            let flags: u32 = body.deserialize()?;
            check(flags, VOL_GET_PHYSICAL, flavor, "StorageVolGetInfoFlags")?;
            call.reply(&((v.vol_type, v.capacity, v.allocation),))
        }
        "GetXMLDesc" => {
            let flags: u32 = body.deserialize()?;
            check(flags, 0, flavor, "StorageVolGetXMLDesc")?;
            let req = ops::VolumeXml { pool, volume };
            call.reply(&run(ctx, call, c, "virStorageVolGetXMLDesc", req).await?)
        }
        "Resize" => {
            let (capacity, flags): (u64, u32) = body.deserialize()?;
            // the test driver lacks resizing altogether: no flag is looked at
            if flavor == Flavor::Qemu {
                let all = RESIZE_ALLOCATE | RESIZE_DELTA | RESIZE_SHRINK;
                check(flags, all, flavor, "StorageVolResize")?;
            }
            let req = ops::ResizeVolume {
                pool,
                volume,
                capacity,
                opts: ResizeOptions {
                    allocate: flags & RESIZE_ALLOCATE != 0,
                    delta: flags & RESIZE_DELTA != 0,
                    shrink: flags & RESIZE_SHRINK != 0,
                },
            };
            run(ctx, call, c, "virStorageVolResize", req).await?;
            call.reply_empty()
        }
        "Wipe" => {
            let (pattern, flags): (u32, u32) = body.deserialize()?;
            if flavor == Flavor::Qemu {
                check(flags, 0, flavor, "StorageVolWipePattern")?;
                // VIR_STORAGE_VOL_WIPE_ALG_ZERO is the one virtbus writes
                if pattern != 0 {
                    return Err(libvirt(
                        Code::ArgumentUnsupported,
                        Some(&format!("unsupported erase algorithm {pattern}")),
                    ));
                }
            }
            run(
                ctx,
                call,
                c,
                "virStorageVolWipePattern",
                ops::WipeVolume { pool, volume },
            )
            .await?;
            call.reply_empty()
        }
        m => Err(CompatError::unknown_method(m)),
    }
}

fn pool_prop(p: &PoolInfo, name: &str) -> Option<Variant<'static>> {
    Some(match name {
        "Active" => Variant::Bool(p.active),
        "Autostart" => Variant::Bool(p.autostart),
        "Name" => Variant::from(p.name.clone()),
        "Persistent" => Variant::Bool(p.persistent),
        "UUID" => Variant::from(p.uuid.to_string()),
        _ => return None,
    })
}

fn vol_prop(v: &VolInfo, name: &str) -> Option<Variant<'static>> {
    Some(match name {
        "Name" => Variant::from(v.name.clone()),
        "Key" => Variant::from(v.key.clone()),
        "Path" => Variant::from(v.path.clone()),
        _ => return None,
    })
}

pub(super) async fn pool_get(
    ctx: &Ctx,
    call: &Call,
    c: &Connect,
    uuid: &Uuid,
    name: &str,
) -> Reply<Option<Variant<'static>>> {
    if !POOL_PROPS.contains(&name) {
        return Ok(None);
    }
    Ok(pool_prop(&by_uuid(ctx, call, c, uuid).await?, name))
}

pub(super) async fn vol_get(
    ctx: &Ctx,
    call: &Call,
    c: &Connect,
    key: &str,
    name: &str,
) -> Reply<Option<Variant<'static>>> {
    if !VOL_PROPS.contains(&name) {
        return Ok(None);
    }
    let v = by_key(ctx, call, c, key, "virStorageVolLookupByKey").await?;
    Ok(vol_prop(&v, name))
}

pub(super) async fn pool_get_all(
    ctx: &Ctx,
    call: &Call,
    c: &Connect,
    uuid: &Uuid,
    out: &mut Dict<&str, Variant<'static>>,
) -> Reply<()> {
    // A pool that is gone has no property left to read: an empty answer.
    if let Ok(p) = by_uuid(ctx, call, c, uuid).await {
        super::props::push_props(out, POOL_PROPS, |n| pool_prop(&p, n));
    }
    Ok(())
}

pub(super) async fn vol_get_all(
    ctx: &Ctx,
    call: &Call,
    c: &Connect,
    key: &str,
    out: &mut Dict<&str, Variant<'static>>,
) -> Reply<()> {
    if let Ok(v) = by_key(ctx, call, c, key, "virStorageVolLookupByKey").await {
        super::props::push_props(out, VOL_PROPS, |n| vol_prop(&v, n));
    }
    Ok(())
}

pub(super) async fn set_autostart(
    ctx: &Ctx,
    call: &Call,
    c: &Connect,
    uuid: &Uuid,
    on: bool,
) -> Reply<()> {
    let p = by_uuid(ctx, call, c, uuid).await?;
    refuse(c.flavor, &p, "Autostart")?;
    let req = ops::SetPoolAutostart {
        pool: p.name,
        autostart: on,
    };
    run(ctx, call, c, "virStoragePoolSetAutostart", req).await?;
    c.signals_sent().await;
    Ok(())
}

/// Connect's `StoragePoolEvent` and the pool's `Refresh` for a storage event.
pub(super) async fn emit(ctx: &Ctx, c: &Connect, ev: &StorageEvent) -> zbus::Result<()> {
    let StorageEvent::PoolChanged { info, kind, .. } = ev else {
        return Ok(());
    };
    // The LXC connect shares the QEMU one's pools. Cockpit Machines subscribes to these
    // signals on any path and keys its pools by path: signalled on both, every pool was listed
    // twice. So they go out once, on the QEMU connect's paths.
    if c.flavor == Flavor::Lxc && ctx.connects.iter().any(|o| o.flavor == Flavor::Qemu) {
        return Ok(());
    }
    let path = pool_path(c, info);
    if *kind == PoolEventKind::Refreshed {
        return ctx
            .conn
            .emit_signal(
                None::<()>,
                &path,
                super::schema::STORAGE_POOL_IFACE,
                "Refresh",
                &(),
            )
            .await;
    }
    let Some(event) = kind.libvirt() else {
        return Ok(());
    };
    // libvirt's pool events carry no detail
    ctx.conn
        .emit_signal(
            None::<()>,
            c.path,
            super::schema::CONNECT_IFACE,
            "StoragePoolEvent",
            &(path, event, 0i32),
        )
        .await
}
