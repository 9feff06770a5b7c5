//! `org.virtbus1.StoragePool` and `org.virtbus1.StorageVolume`: calls, properties and the
//! signals of storage events. Every call goes through [`crate::server::exec::Exec::run_storage`]
//! with a request of [`crate::core::storage_ops`].

use std::os::fd::OwnedFd;

use zbus::{Message, Variant};

use super::{
    Call, Ctx,
    authz::Details,
    errors::Reply,
    options::{OptionMap, Options},
    paths,
    props::PropMap,
    schema::{MANAGER_IFACE, POOL_IFACE, VOLUME_IFACE},
    signals,
};
use crate::{
    core::{Error, ops::Operation, storage_ops as ops},
    storage::{
        CreateOptions, PoolEventKind, PoolInfo, ResizeOptions, StorageEvent, TransferOptions,
        VolEventKind, VolInfo, qemu_img::Prealloc,
    },
};

/// Pool properties, in the order of the interface XML.
pub const POOL_PROPS: &[&str] = &[
    "Name",
    "UUID",
    "Path",
    "Active",
    "Persistent",
    "Autostart",
    "Capacity",
    "Allocation",
    "Available",
];

pub fn pool_prop<'a>(i: &'a PoolInfo, name: &str) -> Option<Variant<'a>> {
    Some(match name {
        "Name" => Variant::from(i.name.as_str()),
        "UUID" => Variant::from(i.uuid.to_string()),
        "Path" => Variant::from(i.path.as_str()),
        "Active" => Variant::Bool(i.active),
        "Persistent" => Variant::Bool(i.persistent),
        "Autostart" => Variant::Bool(i.autostart),
        "Capacity" => Variant::U64(i.sizes.capacity),
        "Allocation" => Variant::U64(i.sizes.allocation),
        "Available" => Variant::U64(i.sizes.available),
        _ => return None,
    })
}

pub fn pool_props(i: &PoolInfo) -> PropMap<'_> {
    POOL_PROPS
        .iter()
        .filter_map(|n| pool_prop(i, n).map(|v| (*n, v)))
        .collect()
}

/// Volume properties, in the order of the interface XML.
pub const VOLUME_PROPS: &[&str] = &[
    "Name",
    "Key",
    "Path",
    "Pool",
    "Capacity",
    "Allocation",
    "Format",
    "Job",
];

pub fn volume_prop<'a>(i: &'a VolInfo, name: &str) -> Option<Variant<'a>> {
    Some(match name {
        "Name" => Variant::from(i.name.as_str()),
        "Key" => Variant::from(i.key.as_str()),
        "Path" => Variant::from(i.path.as_str()),
        "Pool" => Variant::ObjectPath(zbus::ObjectPath::from_string_unchecked(paths::pool(
            &i.pool,
        ))),
        "Capacity" => Variant::U64(i.capacity),
        "Allocation" => Variant::U64(i.allocation),
        "Format" => Variant::from(i.format.as_str()),
        "Job" => Variant::from(i.job.as_str()),
        _ => return None,
    })
}

pub fn volume_props(i: &VolInfo) -> PropMap<'_> {
    VOLUME_PROPS
        .iter()
        .filter_map(|n| volume_prop(i, n).map(|v| (*n, v)))
        .collect()
}

/// The pools and volumes the caller may see, with their paths.
pub(super) async fn visible(
    ctx: &Ctx,
    call: &Call,
) -> (Vec<(String, PoolInfo)>, Vec<(String, VolInfo)>) {
    visible_of(ctx, call, true).await
}

/// The pools the caller may see, and with `volumes` their volumes (a list of pools needs
/// none: collecting every pool's volumes made it as slow as listing them all).
async fn visible_of(
    ctx: &Ctx,
    call: &Call,
    volumes: bool,
) -> (Vec<(String, PoolInfo)>, Vec<(String, VolInfo)>) {
    let exec = ctx.exec();
    let who = &call.caller;
    let (mut pools, mut vols) = (Vec::new(), Vec::new());
    let all = exec
        .run_storage(who, ops::ListPools {})
        .await
        .unwrap_or_default();
    for p in all {
        let allowed = ctx.authz.allows_everything()
            || ctx
                .authorize(call, Operation::ReadStorage, &Details::pool(&p.name))
                .await
                .is_ok();
        if !allowed {
            continue;
        }
        if volumes && p.active {
            let req = ops::ListVolumes {
                pool: p.name.clone(),
            };
            for v in exec.run_storage(who, req).await.unwrap_or_default() {
                vols.push((paths::volume(&p.name, &v.name), v));
            }
        }
        pools.push((paths::pool(&p.name), p));
    }
    (pools, vols)
}

fn prealloc(o: &mut Options<'_>) -> Reply<CreateOptions> {
    Ok(CreateOptions {
        prealloc: o
            .string("preallocation")?
            .map(|p| Prealloc::parse(&p))
            .transpose()?,
    })
}

/// The pool and volume names of a volume's object path.
fn volume_of_path(path: &str) -> Reply<(String, String)> {
    match paths::parse(path) {
        paths::Target::Volume(p, v) => Ok((p, v)),
        _ => Err(Error::InvalidArgument(format!("'{path}' is not a storage volume's path")).into()),
    }
}

fn no_options(method: &'static str, call: &Call) -> Reply<()> {
    let body = call.msg.body();
    let opts: OptionMap = body.deserialize()?;
    Ok(Options::new(method, opts).finish()?)
}

pub(super) async fn pool_call(ctx: &Ctx, call: &Call, pool: &str, member: &str) -> Reply<Message> {
    let exec = ctx.exec();
    let who = &call.caller;
    let body = call.msg.body();
    let pool = pool.to_string();
    // the pool must exist whatever the call, so that a stale path gets NotFound
    ctx.core.storage().pool(&pool)?;
    match member {
        "Start" | "Stop" | "Build" | "Refresh" | "Delete" | "Undefine" => {
            let method = match member {
                "Start" => "Start",
                "Stop" => "Stop",
                "Build" => "Build",
                "Refresh" => "Refresh",
                "Delete" => "Delete",
                _ => "Undefine",
            };
            no_options(method, call)?;
            match member {
                "Start" => exec.run_storage(who, ops::StartPool { pool }).await?,
                "Stop" => exec.run_storage(who, ops::StopPool { pool }).await?,
                "Build" => exec.run_storage(who, ops::BuildPool { pool }).await?,
                "Refresh" => exec.run_storage(who, ops::RefreshPool { pool }).await?,
                "Delete" => exec.run_storage(who, ops::DeletePool { pool }).await?,
                _ => exec.run_storage(who, ops::UndefinePool { pool }).await?,
            }
            call.reply_empty()
        }
        "GetXML" => {
            let mut o = Options::new("GetXML", body.deserialize()?);
            let inactive = o.bool("inactive")?;
            o.finish()?;
            let xml = exec
                .run_storage(who, ops::PoolXml { pool, inactive })
                .await?;
            call.reply(&xml)
        }
        "ListVolumes" => {
            no_options("ListVolumes", call)?;
            let vols = exec
                .run_storage(who, ops::ListVolumes { pool: pool.clone() })
                .await?;
            let out: Vec<_> = vols
                .iter()
                .map(|v| paths::owned(paths::volume(&pool, &v.name)))
                .collect();
            call.reply(&out)
        }
        "CreateVolume" => {
            let (xml, opts): (String, OptionMap) = body.deserialize()?;
            let mut o = Options::new("CreateVolume", opts);
            let opts = prealloc(&mut o)?;
            o.finish()?;
            let v = exec
                .run_storage(who, ops::CreateVolume { pool, xml, opts })
                .await?;
            call.reply(&paths::owned(paths::volume(&v.pool, &v.name)))
        }
        "CloneVolume" => {
            let (xml, source, opts): (String, zbus::OwnedObjectPath, OptionMap) =
                body.deserialize()?;
            let mut o = Options::new("CloneVolume", opts);
            let opts = prealloc(&mut o)?;
            o.finish()?;
            // reading the source's bytes is authorized with the clone (`CloneVolume::checks`)
            let (source_pool, source) = volume_of_path(source.as_str())?;
            let req = ops::CloneVolume {
                pool,
                xml,
                source_pool,
                source,
                opts,
            };
            let v = exec.run_storage(who, req).await?;
            call.reply(&paths::owned(paths::volume(&v.pool, &v.name)))
        }
        m => Err(super::errors::BusError::unknown_method(POOL_IFACE, m)),
    }
}

fn transfer_options(method: &'static str, opts: OptionMap) -> Reply<TransferOptions> {
    let mut o = Options::new(method, opts);
    let t = TransferOptions {
        offset: o.u64("offset")?.unwrap_or(0),
        length: o.u64("length")?.unwrap_or(0),
        sparse: false,
    };
    o.finish()?;
    Ok(t)
}

pub(super) async fn volume_call(
    ctx: &Ctx,
    call: &Call,
    pool: &str,
    volume: &str,
    member: &str,
) -> Reply<Message> {
    let exec = ctx.exec();
    let who = &call.caller;
    let body = call.msg.body();
    let (pool, volume) = (pool.to_string(), volume.to_string());
    ctx.core.storage().volume(&pool, &volume)?;
    match member {
        "Delete" => {
            no_options("Delete", call)?;
            exec.run_storage(who, ops::DeleteVolume { pool, volume })
                .await?;
            call.reply_empty()
        }
        "Wipe" => {
            no_options("Wipe", call)?;
            exec.run_storage(who, ops::WipeVolume { pool, volume })
                .await?;
            call.reply_empty()
        }
        "Resize" => {
            let (capacity, opts): (u64, OptionMap) = body.deserialize()?;
            let mut o = Options::new("Resize", opts);
            let opts = ResizeOptions {
                allocate: o.bool("allocate")?,
                delta: o.bool("delta")?,
                shrink: o.bool("shrink")?,
            };
            o.finish()?;
            let req = ops::ResizeVolume {
                pool,
                volume,
                capacity,
                opts,
            };
            exec.run_storage(who, req).await?;
            call.reply_empty()
        }
        "GetXML" => {
            no_options("GetXML", call)?;
            let xml = exec
                .run_storage(who, ops::VolumeXml { pool, volume })
                .await?;
            call.reply(&xml)
        }
        "Upload" | "Download" => {
            let (fd, opts): (zbus::OwnedFd, OptionMap) = body.deserialize()?;
            let fd: OwnedFd = fd.into();
            let n = if member == "Upload" {
                let opts = transfer_options("Upload", opts)?;
                let req = ops::UploadVolume {
                    pool,
                    volume,
                    fd,
                    opts,
                };
                exec.run_storage(who, req).await?
            } else {
                let opts = transfer_options("Download", opts)?;
                let req = ops::DownloadVolume {
                    pool,
                    volume,
                    fd,
                    opts,
                };
                exec.run_storage(who, req).await?
            };
            call.reply(&n)
        }
        m => Err(super::errors::BusError::unknown_method(VOLUME_IFACE, m)),
    }
}

/// Manager methods about storage; `None` when `member` is not one of them.
pub(super) async fn manager_call(ctx: &Ctx, call: &Call, member: &str) -> Option<Reply<Message>> {
    let exec = ctx.exec();
    let who = &call.caller;
    let body = call.msg.body();
    let r: Reply<Message> = async {
        match member {
            "DefinePool" => {
                let (xml, opts): (String, OptionMap) = body.deserialize()?;
                Options::new("DefinePool", opts).finish()?;
                let p = exec.run_storage(who, ops::DefinePool { xml }).await?;
                call.reply(&paths::owned(paths::pool(&p.name)))
            }
            "CreatePool" => {
                let (xml, opts): (String, OptionMap) = body.deserialize()?;
                let mut o = Options::new("CreatePool", opts);
                let build = o.bool("build")?;
                o.finish()?;
                let p = exec
                    .run_storage(who, ops::CreatePool { xml, build })
                    .await?;
                call.reply(&paths::owned(paths::pool(&p.name)))
            }
            "ListPools" => {
                let mut o = Options::new("ListPools", body.deserialize()?);
                let active = o.bool("active")?;
                let inactive = o.bool("inactive")?;
                o.finish()?;
                let (pools, _) = visible_of(ctx, call, false).await;
                let out: Vec<_> = pools
                    .into_iter()
                    .filter(|(_, p)| (!active || p.active) && (!inactive || !p.active))
                    .map(|(path, _)| paths::owned(path))
                    .collect();
                call.reply(&out)
            }
            "LookupVolumeByPath" => {
                let path: String = body.deserialize()?;
                let req = ops::FindVolume {
                    path,
                    by_key: false,
                };
                let v = exec.run_storage(who, req).await?;
                call.reply(&paths::owned(paths::volume(&v.pool, &v.name)))
            }
            _ => Err(Error::Failed(String::new()).into()),
        }
    }
    .await;
    match member {
        "DefinePool" | "CreatePool" | "ListPools" | "LookupVolumeByPath" => Some(r),
        _ => None,
    }
}

fn pool_event_name(k: PoolEventKind) -> &'static str {
    match k {
        PoolEventKind::Defined => "defined",
        PoolEventKind::Undefined => "undefined",
        PoolEventKind::Started => "started",
        PoolEventKind::Stopped => "stopped",
        PoolEventKind::Created => "created",
        PoolEventKind::Deleted => "deleted",
        PoolEventKind::Refreshed => "refreshed",
        PoolEventKind::Changed => "changed",
    }
}

/// Signals for one storage event.
pub(super) async fn emit(ctx: &Ctx, ev: StorageEvent) -> zbus::Result<()> {
    match ev {
        StorageEvent::PoolChanged { info, kind, added } => {
            let path = paths::pool(&info.name);
            if added {
                signals::interfaces_added(
                    ctx,
                    paths::owned(path.clone()),
                    POOL_IFACE,
                    pool_props(&info),
                )
                .await?;
            } else {
                let values: PropMap<'_> = POOL_PROPS[2..]
                    .iter()
                    .filter_map(|n| pool_prop(&info, n).map(|v| (*n, v)))
                    .collect();
                signals::properties_changed(ctx, &path, POOL_IFACE, values).await?;
            }
            if kind != PoolEventKind::Changed {
                let body = (paths::owned(path), pool_event_name(kind));
                signals::signal(ctx, paths::MANAGER, MANAGER_IFACE, "PoolEvent", &body).await?;
            }
            Ok(())
        }
        StorageEvent::PoolRemoved { name, .. } => {
            signals::interfaces_removed(ctx, paths::owned(paths::pool(&name)), POOL_IFACE).await
        }
        StorageEvent::VolumeChanged { pool, name, kind } => {
            let path = paths::volume(&pool, &name);
            match kind {
                VolEventKind::Deleted => {
                    signals::interfaces_removed(ctx, paths::owned(path), VOLUME_IFACE).await
                }
                _ => {
                    // gone again meanwhile: its removal follows
                    let Ok(info) = ctx.core.storage().volume(&pool, &name) else {
                        return Ok(());
                    };
                    if kind == VolEventKind::Created {
                        signals::interfaces_added(
                            ctx,
                            paths::owned(path),
                            VOLUME_IFACE,
                            volume_props(&info),
                        )
                        .await
                    } else {
                        let values: PropMap<'_> = ["Capacity", "Allocation", "Format"]
                            .iter()
                            .filter_map(|n| volume_prop(&info, n).map(|v| (*n, v)))
                            .collect();
                        signals::properties_changed(ctx, &path, VOLUME_IFACE, values).await
                    }
                }
            }
        }
        StorageEvent::Progress {
            pool,
            name,
            operation,
            done,
            total,
        } => {
            let path = paths::volume(&pool, &name);
            signals::signal(
                ctx,
                &path,
                VOLUME_IFACE,
                "Progress",
                &(operation, done, total),
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::schema::Schema;

    /// The properties served are the interface XML's, in its order, with its types.
    #[test]
    fn props_match_the_interface_xml() {
        let schema = Schema::load().expect("schema");
        let pool = PoolInfo {
            name: "p".into(),
            uuid: uuid::Uuid::nil(),
            active: true,
            persistent: true,
            autostart: false,
            sizes: Default::default(),
            path: "/p".into(),
        };
        let names: Vec<&str> = schema
            .pool
            .properties
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(names, POOL_PROPS);
        for (name, p) in &schema.pool.properties {
            let v = pool_prop(&pool, name).expect(name);
            assert_eq!(v.value_signature().to_string(), p.sig, "{name}");
        }
        let vol = VolInfo {
            pool: "p".into(),
            name: "v".into(),
            key: "/p/v".into(),
            path: "/p/v".into(),
            capacity: 1,
            allocation: 1,
            format: "raw".into(),
            vol_type: 0,
            job: String::new(),
        };
        let names: Vec<&str> = schema
            .volume
            .properties
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(names, VOLUME_PROPS);
        for (name, p) in &schema.volume.properties {
            let v = volume_prop(&vol, name).expect(name);
            assert_eq!(v.value_signature().to_string(), p.sig, "{name}");
        }
    }
}
