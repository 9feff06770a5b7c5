//! Storage requests as data, like the domain requests of [`super::ops`]: each names its
//! [`Operation`] (hence its permission), the pool and volume it concerns, and runs on the
//! core's [`Storage`]. The caller's uid comes in as a plain number, recorded as the owner
//! of the volumes a non-root caller creates.

use std::{future::Future, os::fd::OwnedFd};

use super::{Core, Result, ops::Operation};
use crate::storage::{CreateOptions, PoolInfo, ResizeOptions, Storage, TransferOptions, VolInfo};

/// What one authorization check of a storage request is about, for rules to decide on: the
/// pool, and the volume with its owner (for a volume the request creates, the caller).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageTarget {
    pub pool: Option<String>,
    pub volume: Option<String>,
    /// The volume's owner; `None` for root's volumes and those found in a pool's directory.
    pub owner: Option<u32>,
}

impl StorageTarget {
    /// The existing volume `vol` of `pool`, with its owner.
    pub fn volume(storage: &Storage, pool: &str, vol: &str) -> Self {
        Self {
            pool: Some(pool.to_owned()),
            volume: Some(vol.to_owned()),
            owner: storage.volume_owner(pool, vol),
        }
    }

    /// A volume the request creates: `by` will own it.
    fn new_volume(pool: &str, vol: Option<String>, by: Option<u32>) -> Self {
        Self {
            pool: Some(pool.to_owned()),
            owner: vol.is_some().then_some(by).flatten(),
            volume: vol,
        }
    }
}

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

    /// The existing volume the request changes or moves the bytes of, passed to
    /// authorization with its owner. Reads are authorized per pool only: a listing's
    /// properties would otherwise cost a polkit check per volume.
    fn volume(&self) -> Option<&str> {
        None
    }

    /// Every check the request needs for a caller of uid `by` (`None`: root, or where
    /// ownership means nothing): its operation on what it concerns, and for requests that
    /// copy another volume's bytes (a clone's source, a backing store) the permission of
    /// reading a volume's bytes on each image copied.
    fn checks(&self, storage: &Storage, _by: Option<u32>) -> Vec<(Operation, StorageTarget)> {
        let pool = self.pool_of(storage);
        let target = match (&pool, self.volume()) {
            (Some(p), Some(v)) => StorageTarget::volume(storage, p, v),
            _ => StorageTarget {
                pool,
                ..StorageTarget::default()
            },
        };
        vec![(self.operation(), target)]
    }

    fn run(
        self,
        storage: &Storage,
        by: Option<u32>,
    ) -> impl Future<Output = Result<Self::Output>> + Send;
}

/// The deepest backing chain followed for authorization; a longer one needs the permission
/// on no particular volume (which the owner rules do not give).
const MAX_CHAIN: usize = 16;

/// Where a chain of images to be read starts: a volume, or an image's path.
enum Image {
    Volume(String, String),
    Path(String),
}

/// Checks for reading the bytes of `first` and of every image below it (qemu-img reads
/// through backing files). A path that is no volume of an active pool is checked without
/// pool or volume: only who may manage all storage may read it.
fn reads_of(storage: &Storage, first: Image) -> Vec<(Operation, StorageTarget)> {
    let mut out = Vec::new();
    let mut next = Some(first);
    while let Some(img) = next.take() {
        if out.len() >= MAX_CHAIN {
            out.push((Operation::DownloadVolume, StorageTarget::default()));
            break;
        }
        match img {
            Image::Volume(pool, vol) => {
                next = storage.volume_backing(&pool, &vol).map(Image::Path);
                out.push((
                    Operation::DownloadVolume,
                    StorageTarget::volume(storage, &pool, &vol),
                ));
            }
            Image::Path(path) => match storage.volume_by_path(&path) {
                Ok(v) => next = Some(Image::Volume(v.pool, v.name)),
                Err(_) => out.push((Operation::DownloadVolume, StorageTarget::default())),
            },
        }
    }
    out
}

/// The name of the pool `xml` defines, for authorization (`None` when it does not parse:
/// running the request reports why).
fn pool_name_of(xml: &str) -> Option<String> {
    crate::storage::PoolDef::parse(xml).ok().map(|d| d.name)
}

/// The name and backing path of the volume `xml` describes (`None` when it does not parse:
/// running the request reports why).
fn new_volume_of(xml: &str) -> Option<(String, Option<String>)> {
    let def = crate::storage::VolDef::parse(xml).ok()?;
    Some((def.name, def.backing.and_then(|b| b.path)))
}

macro_rules! storage_op {
    (
        $(#[$doc:meta])*
        $name:ident { $($field:ident : $ty:ty),* $(,)? } => $out:ty, $op:ident,
        pool: |$p:ident| $pool:expr,
        $(pool_of: |$po:ident| $poolof:expr,)?
        $(volume: |$v:ident| $vol:expr,)?
        |$req:ident, $st:ident $(, $by:ident)?| $body:expr
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

            $(
                fn pool_of(&self, _storage: &Storage) -> Option<String> {
                    let $po = self;
                    $poolof
                }
            )?

            $(
                fn volume(&self) -> Option<&str> {
                    let $v = self;
                    $vol
                }
            )?

            async fn run(self, $st: &Storage, by: Option<u32>) -> Result<$out> {
                let $req = self;
                $(let $by = by;)?
                let _ = by;
                $body
            }
        }
    };
}

storage_op!(
    /// Define (or redefine) a persistent pool from its XML.
    DefinePool { xml: String } => PoolInfo, DefinePool, pool: |_r| None,
    pool_of: |r| pool_name_of(&r.xml),
    |r, st| st.define(&r.xml).await
);
storage_op!(
    /// Create and start a transient pool, building its directory first with `build`.
    CreatePool { xml: String, build: bool } => PoolInfo, CreatePool, pool: |_r| None,
    pool_of: |r| pool_name_of(&r.xml),
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

    async fn run(self, st: &Storage, _by: Option<u32>) -> Result<VolInfo> {
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
/// A new volume from its XML, owned by its creator when that is not root.
#[derive(Debug)]
pub struct CreateVolume {
    pub pool: String,
    pub xml: String,
    pub opts: CreateOptions,
}

impl StorageOp for CreateVolume {
    type Output = VolInfo;

    fn operation(&self) -> Operation {
        Operation::CreateVolume
    }

    fn pool(&self) -> Option<&str> {
        Some(&self.pool)
    }

    /// Creating in the pool, with the new volume's name and its future owner; a backing
    /// store is read through, so it needs the permission to read its bytes.
    fn checks(&self, storage: &Storage, by: Option<u32>) -> Vec<(Operation, StorageTarget)> {
        let (name, backing) = new_volume_of(&self.xml).unzip();
        let mut out = vec![(
            self.operation(),
            StorageTarget::new_volume(&self.pool, name, by),
        )];
        if let Some(path) = backing.flatten() {
            out.extend(reads_of(storage, Image::Path(path)));
        }
        out
    }

    async fn run(self, st: &Storage, by: Option<u32>) -> Result<VolInfo> {
        st.create_volume(&self.pool, &self.xml, self.opts, by).await
    }
}

/// A new volume in `pool` with the contents of `source` in `source_pool`, owned as a
/// created one.
#[derive(Debug)]
pub struct CloneVolume {
    pub pool: String,
    pub xml: String,
    pub source_pool: String,
    pub source: String,
    pub opts: CreateOptions,
}

impl StorageOp for CloneVolume {
    type Output = VolInfo;

    fn operation(&self) -> Operation {
        Operation::CloneVolume
    }

    fn pool(&self) -> Option<&str> {
        Some(&self.pool)
    }

    /// As [`CreateVolume`]'s, and the permission to read the bytes of the source (and of
    /// its backing chain): a clone reveals them as a download does.
    fn checks(&self, storage: &Storage, by: Option<u32>) -> Vec<(Operation, StorageTarget)> {
        let name = new_volume_of(&self.xml).map(|(n, _)| n);
        let mut out = vec![(
            self.operation(),
            StorageTarget::new_volume(&self.pool, name, by),
        )];
        out.extend(reads_of(
            storage,
            Image::Volume(self.source_pool.clone(), self.source.clone()),
        ));
        out
    }

    async fn run(self, st: &Storage, by: Option<u32>) -> Result<VolInfo> {
        st.clone_volume(
            &self.pool,
            &self.xml,
            &self.source_pool,
            &self.source,
            self.opts,
            by,
        )
        .await
    }
}
storage_op!(
    /// A pool's properties and sizes.
    PoolProps { pool: String } => PoolInfo, ReadStorage, pool: |r| Some(&r.pool),
    |r, st| Ok(st.pool(&r.pool)?.info())
);
storage_op!(
    /// A volume's properties and sizes.
    VolumeProps { pool: String, volume: String } => VolInfo, ReadStorage,
    pool: |r| Some(&r.pool),
    |r, st| st.volume(&r.pool, &r.volume)
);
storage_op!(
    DeleteVolume { pool: String, volume: String } => (), DeleteVolume, pool: |r| Some(&r.pool),
    volume: |r| Some(&r.volume),
    |r, st| st.delete_volume(&r.pool, &r.volume).await
);
storage_op!(
    WipeVolume { pool: String, volume: String } => (), WipeVolume, pool: |r| Some(&r.pool),
    volume: |r| Some(&r.volume),
    |r, st| st.wipe_volume(&r.pool, &r.volume).await
);
storage_op!(
    ResizeVolume { pool: String, volume: String, capacity: u64, opts: ResizeOptions }
        => VolInfo, ResizeVolume, pool: |r| Some(&r.pool),
    volume: |r| Some(&r.volume),
    |r, st| st.resize_volume(&r.pool, &r.volume, r.capacity, r.opts).await
);
storage_op!(
    /// Write what the descriptor delivers into the volume; the bytes written.
    UploadVolume { pool: String, volume: String, fd: OwnedFd, opts: TransferOptions }
        => u64, UploadVolume, pool: |r| Some(&r.pool),
    volume: |r| Some(&r.volume),
    |r, st| st.upload(&r.pool, &r.volume, r.fd, r.opts).await
);
storage_op!(
    /// Write the volume's bytes into the descriptor; the bytes written.
    DownloadVolume { pool: String, volume: String, fd: OwnedFd, opts: TransferOptions }
        => u64, DownloadVolume, pool: |r| Some(&r.pool),
    volume: |r| Some(&r.volume),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn target(pool: &str, vol: Option<&str>, owner: Option<u32>) -> StorageTarget {
        StorageTarget {
            pool: Some(pool.into()),
            volume: vol.map(str::to_owned),
            owner,
        }
    }

    /// What each kind of request asks authorization for: pool definitions their pool's
    /// name, changes of a volume the volume with its owner, creations the new volume owned
    /// by the caller, copies the bytes of each image they read.
    #[tokio::test]
    async fn checks_name_pool_volume_owner_and_what_is_read() {
        let st = Storage::new_in_memory();
        let pool = "<pool type='dir'><name>m</name><target><path>/nowhere/m</path></target></pool>";
        let def = DefinePool { xml: pool.into() };
        assert_eq!(
            def.checks(&st, Some(61001)),
            [(Operation::DefinePool, target("m", None, None))]
        );
        st.define(pool).await.unwrap();
        st.start("m").await.unwrap();
        let vol = |n: &str| format!("<volume><name>{n}</name><capacity>4096</capacity></volume>");
        st.create_volume("m", &vol("a"), CreateOptions::default(), Some(61001))
            .await
            .unwrap();
        st.create_volume("m", &vol("r"), CreateOptions::default(), None)
            .await
            .unwrap();

        let create = CreateVolume {
            pool: "m".into(),
            xml: vol("b"),
            opts: CreateOptions::default(),
        };
        assert_eq!(
            create.checks(&st, Some(61002)),
            [(Operation::CreateVolume, target("m", Some("b"), Some(61002)))]
        );
        assert_eq!(
            create.checks(&st, None),
            [(Operation::CreateVolume, target("m", Some("b"), None))]
        );
        let bad = CreateVolume {
            pool: "m".into(),
            xml: "<volume>".into(),
            opts: CreateOptions::default(),
        };
        assert_eq!(
            bad.checks(&st, Some(61002)),
            [(Operation::CreateVolume, target("m", None, None))]
        );
        let backed = CreateVolume {
            pool: "m".into(),
            xml: "<volume><name>c</name><target><format type='qcow2'/></target>\
                  <backingStore><path>/nowhere/m/a</path></backingStore></volume>"
                .into(),
            opts: CreateOptions::default(),
        };
        assert_eq!(
            backed.checks(&st, Some(61002))[1..],
            [(
                Operation::DownloadVolume,
                target("m", Some("a"), Some(61001))
            )]
        );
        let elsewhere = CreateVolume {
            xml: backed.xml.replace("/nowhere/m/a", "/etc/shadow"),
            ..backed
        };
        assert_eq!(
            elsewhere.checks(&st, Some(61002))[1..],
            [(Operation::DownloadVolume, StorageTarget::default())]
        );

        let clone = CloneVolume {
            pool: "m".into(),
            xml: vol("d"),
            source_pool: "m".into(),
            source: "r".into(),
            opts: CreateOptions::default(),
        };
        assert_eq!(
            clone.checks(&st, Some(61001)),
            [
                (Operation::CloneVolume, target("m", Some("d"), Some(61001))),
                (Operation::DownloadVolume, target("m", Some("r"), None)),
            ]
        );
        let del = DeleteVolume {
            pool: "m".into(),
            volume: "a".into(),
        };
        assert_eq!(
            del.checks(&st, None),
            [(Operation::DeleteVolume, target("m", Some("a"), Some(61001)))]
        );
        let read = VolumeXml {
            pool: "m".into(),
            volume: "a".into(),
        };
        assert_eq!(
            read.checks(&st, None),
            [(Operation::ReadStorage, target("m", None, None))]
        );
    }
}
