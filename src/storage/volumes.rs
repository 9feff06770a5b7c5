//! Volume operations of an active dir pool: create, clone, delete, wipe, resize.
//!
//! A volume being worked on is marked busy in its pool (see [`BusyGuard`]), so that two
//! jobs never touch one file and the pool is not stopped under them.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{
    dir,
    manager::{Pool, Storage, StorageEvent, VolEventKind, VolInfo},
    qemu_img::{self, Prealloc, Qcow2Options},
    vol_xml::{VolDef, VolFeature, VolFormat, VolType, check_vol_name},
};
use crate::core::{Error, Missing, Result};

/// Options of `CreateVolume` and `CloneVolume` beyond the XML.
#[derive(Debug, Clone, Copy, Default)]
pub struct CreateOptions {
    /// qcow2 preallocation; for raw, `falloc`/`full` allocate the whole capacity.
    pub prealloc: Option<Prealloc>,
}

/// Flags of a resize, as libvirt's `virStorageVolResizeFlags`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResizeOptions {
    /// Allocate the new space (raw files).
    pub allocate: bool,
    /// The size is added to the current capacity.
    pub delta: bool,
    /// Allow shrinking (data beyond the new end is lost).
    pub shrink: bool,
}

/// Marks a volume busy in its pool while alive.
pub(crate) struct BusyGuard {
    pool: Arc<Pool>,
    name: String,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.pool.lock().busy.remove(&self.name);
    }
}

/// Something of a volume a job needs: its pool, its definition, its path.
pub(crate) struct Held {
    pub(crate) pool: Arc<Pool>,
    pub(crate) def: Arc<VolDef>,
    pub(crate) path: PathBuf,
    pub(crate) _busy: BusyGuard,
}

fn vol_missing(pool: &str, name: &str) -> Error {
    Error::NotFound(
        Missing::Object,
        format!("no storage vol with matching name '{name}' in pool '{pool}'"),
    )
}

fn with_job(busy: &std::collections::BTreeMap<String, &'static str>, mut v: VolInfo) -> VolInfo {
    if let Some(j) = busy.get(&v.name) {
        v.job = (*j).to_string();
    }
    v
}

impl Storage {
    fn active_pool(&self, name: &str) -> Result<Arc<Pool>> {
        let pool = self.pool(name)?;
        if !pool.lock().active {
            return Err(Error::InvalidState(format!(
                "storage pool '{name}' is not active"
            )));
        }
        Ok(pool)
    }

    /// Marks `vol` busy with `job`; it must exist (or, with `creating`, must not).
    fn hold(pool: &Arc<Pool>, vol: &str, job: &'static str, creating: bool) -> Result<BusyGuard> {
        let mut s = pool.lock();
        let pname = s.def.name.clone();
        if !s.active {
            return Err(Error::InvalidState(format!(
                "storage pool '{pname}' is not active"
            )));
        }
        if let Some(j) = s.busy.get(vol) {
            return Err(Error::InvalidState(format!(
                "volume '{vol}' in pool '{pname}' has a {j} running"
            )));
        }
        match (s.volumes.contains_key(vol), creating) {
            (true, true) => {
                return Err(Error::AlreadyExists(format!(
                    "storage volume '{vol}' already exists in pool '{pname}'"
                )));
            }
            (false, false) => return Err(vol_missing(&pname, vol)),
            _ => {}
        }
        s.busy.insert(vol.to_string(), job);
        Ok(BusyGuard {
            pool: pool.clone(),
            name: vol.to_string(),
        })
    }

    pub(crate) fn hold_volume(&self, pool: &str, vol: &str, job: &'static str) -> Result<Held> {
        let p = self.active_pool(pool)?;
        let busy = Self::hold(&p, vol, job, false)?;
        let (def, dir) = {
            let s = p.lock();
            let def = s
                .volumes
                .get(vol)
                .cloned()
                .ok_or_else(|| vol_missing(pool, vol))?;
            (def, PathBuf::from(&s.def.path))
        };
        Ok(Held {
            pool: p,
            def,
            path: dir.join(vol),
            _busy: busy,
        })
    }

    pub fn list_volumes(&self, pool: &str) -> Result<Vec<VolInfo>> {
        let p = self.active_pool(pool)?;
        let s = p.lock();
        Ok(s.volumes
            .values()
            .map(|v| with_job(&s.busy, VolInfo::of(pool, v)))
            .collect())
    }

    pub fn volume(&self, pool: &str, vol: &str) -> Result<VolInfo> {
        let p = self.active_pool(pool)?;
        let s = p.lock();
        s.volumes
            .get(vol)
            .map(|v| with_job(&s.busy, VolInfo::of(pool, v)))
            .ok_or_else(|| vol_missing(pool, vol))
    }

    pub fn volume_xml(&self, pool: &str, vol: &str) -> Result<String> {
        let p = self.active_pool(pool)?;
        let s = p.lock();
        s.volumes
            .get(vol)
            .map(|v| v.to_xml())
            .ok_or_else(|| vol_missing(pool, vol))
    }

    /// The volume whose path (or key, the same for dir pools) is `path`.
    pub fn volume_by_path(&self, path: &str) -> Result<VolInfo> {
        for p in self.pools() {
            let s = p.lock();
            if let Some(v) = s
                .volumes
                .values()
                .find(|v| s.active && v.target.path.as_deref() == Some(path))
            {
                return Ok(VolInfo::of(&s.def.name, v));
            }
        }
        Err(Error::NotFound(
            Missing::Object,
            format!("no storage vol with matching path '{path}'"),
        ))
    }

    /// The path of the volume's backing image, if it has one.
    pub fn volume_backing(&self, pool: &str, vol: &str) -> Option<String> {
        let p = self.pool(pool).ok()?;
        let s = p.lock();
        s.volumes.get(vol)?.backing.as_ref()?.path.clone()
    }

    /// The path and format of a volume, for a domain's `<disk type='volume'>`.
    pub fn resolve(&self, pool: &str, vol: &str) -> Result<(String, VolFormat)> {
        let p = self.pool(pool)?;
        let s = p.lock();
        if !s.active {
            return Err(Error::InvalidState(format!(
                "storage pool '{pool}' containing volume '{vol}' is not active"
            )));
        }
        let v = s.volumes.get(vol).ok_or_else(|| vol_missing(pool, vol))?;
        Ok((
            v.target.path.clone().unwrap_or_default(),
            v.target.format.unwrap_or(VolFormat::Raw),
        ))
    }

    /// Probes the volume again and publishes the change.
    pub(crate) async fn reprobe(
        &self,
        pool: &Arc<Pool>,
        name: &str,
        kind: VolEventKind,
    ) -> Result<VolInfo> {
        let (pname, path) = {
            let s = pool.lock();
            (s.def.name.clone(), PathBuf::from(&s.def.path).join(name))
        };
        let def = dir::probe(name, &path)
            .await?
            .ok_or_else(|| Error::Failed(format!("volume '{}' vanished", path.display())))?;
        let info = VolInfo::of(&pname, &def);
        pool.lock().volumes.insert(name.to_string(), Arc::new(def));
        self.update_sizes(pool);
        self.emit(StorageEvent::VolumeChanged {
            pool: pname,
            name: name.to_string(),
            kind,
        });
        Ok(info)
    }

    /// Checks a new volume's request against the pool; returns its capacity and format.
    fn check_request(&self, pool: &Arc<Pool>, def: &VolDef) -> Result<(u64, VolFormat)> {
        check_vol_name(&def.name).map_err(|r| {
            Error::InvalidArgument(format!("invalid volume name '{}': {r}", def.name))
        })?;
        let format = def.target.format.unwrap_or(VolFormat::Raw);
        if !matches!(format, VolFormat::Raw | VolFormat::Qcow2) {
            return Err(Error::NotSupported(format!(
                "creating volumes of format '{format}' is not supported (raw and qcow2 are)"
            )));
        }
        if matches!(def.vol_type, Some(t) if t != VolType::File) {
            return Err(Error::NotSupported(format!(
                "/volume/@type '{}': dir pools create file volumes",
                def.vol_type.map(|t| t.as_str()).unwrap_or_default()
            )));
        }
        if format == VolFormat::Raw
            && (def.backing.is_some()
                || def.target.features.is_some()
                || def.target.compat.is_some())
        {
            return Err(Error::InvalidArgument(
                "backing stores, compat and features need format qcow2".into(),
            ));
        }
        let pool_path = PathBuf::from(&pool.lock().def.path);
        if let Some(p) = &def.target.path
            && Path::new(p) != pool_path.join(&def.name)
        {
            return Err(Error::InvalidArgument(format!(
                "/volume/target/path '{p}' is not '{}'",
                pool_path.join(&def.name).display()
            )));
        }
        let capacity = match (def.capacity, &def.backing) {
            (Some(c), _) => c,
            (None, Some(_)) => 0,
            (None, None) => return Err(Error::InvalidArgument("missing /volume/capacity".into())),
        };
        Ok((capacity, format))
    }

    /// Refuses a volume needing more space up front than the file system has.
    fn check_space(&self, pool: &Arc<Pool>, needed: u64, name: &str) -> Result<()> {
        let path = PathBuf::from(&pool.lock().def.path);
        let sizes = dir::sizes(&path)?;
        if needed > sizes.available {
            return Err(Error::InvalidArgument(format!(
                "volume '{name}' needs {needed} bytes allocated but pool directory '{}' has \
                 only {} bytes available",
                path.display(),
                sizes.available
            )));
        }
        if needed > sizes.capacity {
            return Err(Error::InvalidArgument(format!(
                "volume '{name}' is larger than the file system of '{}'",
                path.display()
            )));
        }
        Ok(())
    }

    /// Creates a volume from its XML; `owner` is the uid of the (non-root) caller who
    /// creates it.
    pub async fn create_volume(
        &self,
        pool: &str,
        xml: &str,
        opts: CreateOptions,
        owner: Option<u32>,
    ) -> Result<VolInfo> {
        if self.in_memory() {
            return self.memory_create_volume(pool, xml, owner);
        }
        let def = VolDef::parse(xml)?;
        let p = self.active_pool(pool)?;
        let (capacity, format) = self.check_request(&p, &def)?;
        let _busy = Self::hold(&p, &def.name, "creation", true)?;
        let path = PathBuf::from(&p.lock().def.path).join(&def.name);
        let preallocated = match (format, opts.prealloc) {
            (_, Some(Prealloc::Falloc | Prealloc::Full)) => capacity,
            (VolFormat::Raw, _) => def.allocation.unwrap_or(0).min(capacity),
            _ => 0,
        };
        self.check_space(&p, preallocated, &def.name)?;
        match format {
            VolFormat::Raw => {
                let perms = def.target.perms.clone();
                let pth = path.clone();
                dir::blocking(move || dir::create_raw(&pth, capacity, preallocated, &perms))
                    .await?;
            }
            _ => {
                let backing = match &def.backing {
                    Some(b) => {
                        let bp = b.path.clone().unwrap_or_default();
                        let bf = match b.format {
                            Some(f) => f,
                            None => dir::probe("backing", Path::new(&bp))
                                .await?
                                .and_then(|v| v.target.format)
                                .ok_or_else(|| {
                                    Error::InvalidArgument(format!(
                                        "backing store '{bp}' is not a readable image"
                                    ))
                                })?,
                        };
                        Some((bp, bf))
                    }
                    None => None,
                };
                let feats = def.target.features.clone().unwrap_or_default();
                if !feats.is_empty() && def.target.compat.as_deref() == Some("0.10") {
                    return Err(Error::NotSupported(format!(
                        "qcow2 features ({}) need compat 1.1, not 0.10",
                        feats
                            .iter()
                            .map(|f| f.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                let o = Qcow2Options {
                    prealloc: opts.prealloc,
                    compat: def.target.compat.clone(),
                    lazy_refcounts: feats.contains(&VolFeature::LazyRefcounts),
                    extended_l2: feats.contains(&VolFeature::ExtendedL2),
                    cluster_size: def.target.cluster_size,
                    backing,
                };
                let capacity = match (capacity, &o.backing) {
                    (0, Some((b, _))) => qemu_img::info(Path::new(b)).await?.virtual_size,
                    (c, _) => c,
                };
                let r = qemu_img::create_qcow2(&path, capacity, &o).await;
                let r = r.and_then(|()| {
                    let perms = def.target.perms.clone();
                    let perms = super::Perms {
                        mode: Some(perms.mode.unwrap_or(dir::DEFAULT_VOL_MODE)),
                        ..perms
                    };
                    dir::apply_perms(&path, &perms)
                });
                if let Err(e) = r {
                    let _ = std::fs::remove_file(&path);
                    return Err(e);
                }
            }
        }
        self.own_new(&p, &def.name, &path, owner).await?;
        self.reprobe(&p, &def.name, VolEventKind::Created).await
    }

    /// Records the owner of a volume just made; a volume whose owner cannot be recorded
    /// is removed again, so that none is left its creator could not manage.
    async fn own_new(
        &self,
        p: &Arc<Pool>,
        name: &str,
        path: &Path,
        owner: Option<u32>,
    ) -> Result<()> {
        if let Err(e) = self.set_owner(p, name, owner).await {
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        Ok(())
    }

    /// Creates a volume from its XML with the contents of `source` (in `source_pool`),
    /// converted to the new volume's format; `owner` as for [`Self::create_volume`].
    pub async fn clone_volume(
        &self,
        pool: &str,
        xml: &str,
        source_pool: &str,
        source: &str,
        opts: CreateOptions,
        owner: Option<u32>,
    ) -> Result<VolInfo> {
        if self.in_memory() {
            return self.memory_clone_volume(pool, xml, source_pool, source, owner);
        }
        let mut def = VolDef::parse(xml)?;
        let src = self.hold_volume(source_pool, source, "clone")?;
        let p = self.active_pool(pool)?;
        let src_fmt = src.def.target.format.unwrap_or(VolFormat::Raw);
        if def.target.format.is_none() {
            def.target.format = Some(src_fmt);
        }
        if def.capacity.is_none() {
            def.capacity = src.def.capacity;
        }
        let (capacity, format) = self.check_request(&p, &def)?;
        if def.backing.is_some() {
            return Err(Error::InvalidArgument(
                "a cloned volume gets its source's contents, not a backing store".into(),
            ));
        }
        if capacity < src.def.capacity.unwrap_or(0) {
            return Err(Error::InvalidArgument(format!(
                "capacity {capacity} of '{}' is below the {} bytes of source volume '{source}'",
                def.name,
                src.def.capacity.unwrap_or(0)
            )));
        }
        let _busy = Self::hold(&p, &def.name, "creation", true)?;
        let path = PathBuf::from(&p.lock().def.path).join(&def.name);
        self.check_space(&p, src.def.allocation.unwrap_or(0), &def.name)?;
        let r = qemu_img::convert(&src.path, src_fmt, &path, format, opts.prealloc).await;
        let r = match r {
            Ok(()) if capacity > src.def.capacity.unwrap_or(0) => {
                if format == VolFormat::Raw {
                    let pth = path.clone();
                    dir::blocking(move || dir::resize_raw(&pth, capacity, false)).await
                } else {
                    qemu_img::resize(&path, format, capacity, false).await
                }
            }
            r => r,
        };
        let r = r.and_then(|()| {
            let perms = super::Perms {
                mode: Some(def.target.perms.mode.unwrap_or(dir::DEFAULT_VOL_MODE)),
                ..def.target.perms.clone()
            };
            dir::apply_perms(&path, &perms)
        });
        if let Err(e) = r {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        drop(src);
        self.own_new(&p, &def.name, &path, owner).await?;
        self.reprobe(&p, &def.name, VolEventKind::Created).await
    }

    pub async fn delete_volume(&self, pool: &str, vol: &str) -> Result<()> {
        if self.in_memory() {
            return self.memory_delete_volume(pool, vol);
        }
        let held = self.hold_volume(pool, vol, "deletion")?;
        let path = held.path.clone();
        let is_dir = held.def.vol_type == Some(VolType::Dir);
        dir::blocking(move || {
            let r = if is_dir {
                std::fs::remove_dir(&path)
            } else {
                std::fs::remove_file(&path)
            };
            r.map_err(|e| dir::io_err(format_args!("cannot delete '{}'", path.display()), e))
        })
        .await?;
        held.pool.lock().volumes.remove(vol);
        if let Err(e) = self.set_owner(&held.pool, vol, None).await {
            tracing::warn!(
                "volume '{vol}' of pool '{pool}' is deleted but its owner stays on record: {e}"
            );
        }
        self.update_sizes(&held.pool);
        self.emit(StorageEvent::VolumeChanged {
            pool: pool.to_string(),
            name: vol.to_string(),
            kind: VolEventKind::Deleted,
        });
        Ok(())
    }

    /// Overwrites the volume with zeros (libvirt's `zero` algorithm).
    pub async fn wipe_volume(&self, pool: &str, vol: &str) -> Result<()> {
        if self.in_memory() {
            return Err(super::memory::unimplemented("virStorageVolWipePattern"));
        }
        let held = self.hold_volume(pool, vol, "wipe")?;
        if held.def.vol_type == Some(VolType::Dir) {
            return Err(Error::NotSupported(format!(
                "cannot wipe directory volume '{vol}'"
            )));
        }
        let path = held.path.clone();
        dir::blocking(move || dir::wipe(&path)).await?;
        self.reprobe(&held.pool, vol, VolEventKind::Changed).await?;
        Ok(())
    }

    /// Changes the volume's capacity.
    pub async fn resize_volume(
        &self,
        pool: &str,
        vol: &str,
        capacity: u64,
        opts: ResizeOptions,
    ) -> Result<VolInfo> {
        if self.in_memory() {
            return Err(super::memory::unimplemented("virStorageVolResize"));
        }
        let held = self.hold_volume(pool, vol, "resize")?;
        let current = held.def.capacity.unwrap_or(0);
        let size = if opts.delta {
            current.checked_add(capacity).ok_or_else(|| {
                Error::InvalidArgument(format!("capacity {current} + {capacity} overflows"))
            })?
        } else {
            capacity
        };
        if size < current && !opts.shrink {
            return Err(Error::InvalidArgument(format!(
                "can't shrink capacity of '{vol}' from {current} to {size} bytes without the \
                 shrink flag"
            )));
        }
        let format = held.def.target.format.unwrap_or(VolFormat::Raw);
        if size > current && opts.allocate {
            self.check_space(
                &held.pool,
                size - held.def.allocation.unwrap_or(0).min(size),
                vol,
            )?;
        }
        match format {
            VolFormat::Raw => {
                let path = held.path.clone();
                let alloc = opts.allocate;
                dir::blocking(move || dir::resize_raw(&path, size, alloc)).await?;
            }
            VolFormat::Qcow2 => {
                if opts.allocate {
                    return Err(Error::NotSupported(
                        "preallocating on resize is supported for raw volumes only".into(),
                    ));
                }
                qemu_img::resize(&held.path, format, size, opts.shrink).await?
            }
            f => {
                return Err(Error::NotSupported(format!(
                    "resizing volumes of format '{f}' is not supported"
                )));
            }
        }
        self.reprobe(&held.pool, vol, VolEventKind::Changed).await
    }
}
