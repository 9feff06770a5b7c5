//! Storage requests as data, like the domain requests of [`super::ops`]: each names its
//! [`Operation`] (hence its permission) and the pool it concerns, and runs on the core's
//! [`Storage`].

use std::{future::Future, os::fd::OwnedFd};

use super::{Core, Result, ops::Operation};
use crate::storage::{CreateOptions, PoolInfo, ResizeOptions, Storage, TransferOptions, VolInfo};

/// A request about storage.
pub trait StorageOp: Send + Sized {
    type Output: Send;

    fn operation(&self) -> Operation;

    /// The pool the request concerns, passed to authorization as a detail.
    fn pool(&self) -> Option<&str>;

    /// The pool for authorization, found in `storage` when the request names it only
    /// indirectly (a volume by its path).
    fn pool_of(&self, _storage: &Storage) -> Option<String> {
        self.pool().map(str::to_owned)
    }

    fn run(self, storage: &Storage) -> impl Future<Output = Result<Self::Output>> + Send;
}

macro_rules! storage_op {
    (
        $(#[$doc:meta])*
        $name:ident { $($field:ident : $ty:ty),* $(,)? } => $out:ty, $op:ident,
        pool: |$p:ident| $pool:expr,
        |$req:ident, $st:ident| $body:expr
    ) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name { $(pub $field: $ty),* }

        impl StorageOp for $name {
            type Output = $out;

            fn operation(&self) -> Operation {
                Operation::$op
            }

            fn pool(&self) -> Option<&str> {
                let $p = self;
                $pool
            }

            async fn run(self, $st: &Storage) -> Result<$out> {
                let $req = self;
                $body
            }
        }
    };
}

storage_op!(
    /// Define (or redefine) a persistent pool from its XML.
    DefinePool { xml: String } => PoolInfo, DefinePool, pool: |_r| None,
    |r, st| st.define(&r.xml).await
);
storage_op!(
    /// Create and start a transient pool, building its directory first with `build`.
    CreatePool { xml: String, build: bool } => PoolInfo, CreatePool, pool: |_r| None,
    |r, st| st.create(&r.xml, r.build).await
);
storage_op!(
    /// Make the pool's directory.
    BuildPool { pool: String } => (), BuildPool, pool: |r| Some(&r.pool),
    |r, st| st.build(&r.pool).await
);
storage_op!(
    StartPool { pool: String } => (), StartPool, pool: |r| Some(&r.pool),
    |r, st| st.start(&r.pool).await
);
storage_op!(
    StopPool { pool: String } => (), StopPool, pool: |r| Some(&r.pool),
    |r, st| st.stop(&r.pool).await
);
storage_op!(
    RefreshPool { pool: String } => (), RefreshPool, pool: |r| Some(&r.pool),
    |r, st| st.refresh(&r.pool).await
);
storage_op!(
    /// Remove the (empty) directory of an inactive pool.
    DeletePool { pool: String } => (), DeletePool, pool: |r| Some(&r.pool),
    |r, st| st.delete(&r.pool).await
);
storage_op!(
    UndefinePool { pool: String } => (), UndefinePool, pool: |r| Some(&r.pool),
    |r, st| st.undefine(&r.pool).await
);
storage_op!(
    SetPoolAutostart { pool: String, autostart: bool } => (), SetPoolAutostart,
    pool: |r| Some(&r.pool),
    |r, st| st.set_autostart(&r.pool, r.autostart).await
);
storage_op!(
    /// Every pool (front ends leave out those the caller may not read).
    ListPools {} => Vec<PoolInfo>, ReadStorage, pool: |_r| None,
    |_r, st| Ok(st.list_pools())
);
storage_op!(
    /// A pool's properties and sizes.
    GetPool { pool: String } => PoolInfo, ReadStorage, pool: |r| Some(&r.pool),
    |r, st| Ok(st.pool(&r.pool)?.info())
);
storage_op!(
    /// A volume's properties and sizes.
    GetVolume { pool: String, volume: String } => VolInfo, ReadStorage,
    pool: |r| Some(&r.pool),
    |r, st| st.volume(&r.pool, &r.volume)
);

/// The volume whose path (or, with `by_key`, whose key: the same for directory pools) is
/// `path`; authorized as a read of the volume's pool.
#[derive(Debug)]
pub struct FindVolume {
    pub path: String,
    pub by_key: bool,
}

impl StorageOp for FindVolume {
    type Output = VolInfo;

    fn operation(&self) -> Operation {
        Operation::ReadStorage
    }

    fn pool(&self) -> Option<&str> {
        None
    }

    fn pool_of(&self, storage: &Storage) -> Option<String> {
        storage.volume_by_path(&self.path).ok().map(|v| v.pool)
    }

    async fn run(self, st: &Storage) -> Result<VolInfo> {
        st.volume_by_path(&self.path).map_err(|e| match e {
            super::Error::NotFound(m, _) if self.by_key => super::Error::NotFound(
                m,
                format!("no storage vol with matching key '{}'", self.path),
            ),
            e => e,
        })
    }
}

storage_op!(
    /// The pool's XML (the persistent definition with `inactive`).
    PoolXml { pool: String, inactive: bool } => String, ReadStorage, pool: |r| Some(&r.pool),
    |r, st| st.pool_xml(&r.pool, r.inactive)
);
storage_op!(
    ListVolumes { pool: String } => Vec<VolInfo>, ReadStorage, pool: |r| Some(&r.pool),
    |r, st| st.list_volumes(&r.pool)
);
storage_op!(
    VolumeXml { pool: String, volume: String } => String, ReadStorage, pool: |r| Some(&r.pool),
    |r, st| st.volume_xml(&r.pool, &r.volume)
);
storage_op!(
    CreateVolume { pool: String, xml: String, opts: CreateOptions } => VolInfo, CreateVolume,
    pool: |r| Some(&r.pool),
    |r, st| st.create_volume(&r.pool, &r.xml, r.opts).await
);
storage_op!(
    /// A new volume in `pool` with the contents of `source` in `source_pool`.
    CloneVolume {
        pool: String,
        xml: String,
        source_pool: String,
        source: String,
        opts: CreateOptions,
    } => VolInfo, CloneVolume, pool: |r| Some(&r.pool),
    |r, st| st.clone_volume(&r.pool, &r.xml, &r.source_pool, &r.source, r.opts).await
);
storage_op!(
    DeleteVolume { pool: String, volume: String } => (), DeleteVolume, pool: |r| Some(&r.pool),
    |r, st| st.delete_volume(&r.pool, &r.volume).await
);
storage_op!(
    WipeVolume { pool: String, volume: String } => (), WipeVolume, pool: |r| Some(&r.pool),
    |r, st| st.wipe_volume(&r.pool, &r.volume).await
);
storage_op!(
    ResizeVolume { pool: String, volume: String, capacity: u64, opts: ResizeOptions }
        => VolInfo, ResizeVolume, pool: |r| Some(&r.pool),
    |r, st| st.resize_volume(&r.pool, &r.volume, r.capacity, r.opts).await
);
storage_op!(
    /// Write what the descriptor delivers into the volume; the bytes written.
    UploadVolume { pool: String, volume: String, fd: OwnedFd, opts: TransferOptions }
        => u64, UploadVolume, pool: |r| Some(&r.pool),
    |r, st| st.upload(&r.pool, &r.volume, r.fd, r.opts).await
);
storage_op!(
    /// Write the volume's bytes into the descriptor; the bytes written.
    DownloadVolume { pool: String, volume: String, fd: OwnedFd, opts: TransferOptions }
        => u64, DownloadVolume, pool: |r| Some(&r.pool),
    |r, st| st.download(&r.pool, &r.volume, r.fd, r.opts).await
);

impl Core {
    /// Points each `type='volume'` disk of `def` at its volume's file (the path is not part
    /// of the XML: libvirt shows the pool and volume, running or not). The pool must be
    /// active and the volume a file.
    pub(crate) fn resolve_volumes(&self, def: &mut crate::model::DomainDef) -> Result<()> {
        for disk in &mut def.devices.disks {
            self.resolve_disk(disk)?;
        }
        Ok(())
    }

    /// A device about to be hot-plugged, with its volume resolved when it is a volume disk.
    pub(crate) fn resolved_device(
        &self,
        dev: crate::model::devices::Device,
    ) -> Result<crate::model::devices::Device> {
        let Some(disk) = dev.as_devices().disks.first() else {
            return Ok(dev);
        };
        if disk.source.as_ref().is_none_or(|s| s.volume.is_none()) {
            return Ok(dev);
        }
        let mut disk = disk.clone();
        self.resolve_disk(&mut disk)?;
        Ok(crate::model::devices::Device::disk(disk))
    }

    fn resolve_disk(&self, disk: &mut crate::model::devices::Disk) -> Result<()> {
        let Some(src) = disk.source.as_mut() else {
            return Ok(());
        };
        let Some(v) = &src.volume else {
            return Ok(());
        };
        let dev = &disk.target_dev;
        let (path, format) = self
            .storage()
            .resolve(&v.pool, &v.volume)
            .map_err(|e| match e {
                super::Error::NotFound(_, m) => {
                    super::Error::InvalidArgument(format!("disk '{dev}': {m}"))
                }
                other => other,
            })?;
        if format == crate::storage::VolFormat::Dir {
            return Err(super::Error::NotSupported(format!(
                "disk '{dev}': volume '{}' of pool '{}' is a directory",
                v.volume, v.pool
            )));
        }
        src.path = Some(path);
        Ok(())
    }

    /// [`Self::resolve_volumes`] on a shared definition, copied only when it has volumes.
    pub(crate) fn resolved(
        &self,
        def: std::sync::Arc<crate::model::DomainDef>,
    ) -> Result<std::sync::Arc<crate::model::DomainDef>> {
        let has = def
            .devices
            .disks
            .iter()
            .any(|d| d.source.as_ref().is_some_and(|s| s.volume.is_some()));
        if !has {
            return Ok(def);
        }
        let mut d = (*def).clone();
        self.resolve_volumes(&mut d)?;
        Ok(std::sync::Arc::new(d))
    }

    /// The storage pools (a memory-only set until [`Core::set_storage`]).
    pub fn storage(&self) -> &Storage {
        self.inner
            .storage
            .get_or_init(|| Storage::new(Default::default()))
    }

    /// Install the storage subsystem (once, before serving): its events join the core's,
    /// so that front ends signal them in order with the domains'.
    pub fn set_storage(&self, storage: Storage) {
        let weak = std::sync::Arc::downgrade(&self.inner);
        storage.set_sink(move |ev| {
            if let Some(inner) = weak.upgrade() {
                inner.events.publish(super::Event::Storage(ev));
            }
        });
        if self.inner.storage.set(storage).is_err() {
            tracing::warn!("the storage subsystem was installed twice; the first one stays");
        }
    }
}
