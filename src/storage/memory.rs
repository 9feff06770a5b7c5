//! Pools that live in memory only, as in libvirt's test driver (`test:///default`): nothing
//! is read from or written to the host's file systems. A pool has a fixed capacity, its
//! allocation is the sum of its volumes', and its volumes stay while it is stopped. Wiping,
//! resizing and transfers are what the test driver lacks, so they are not implemented here.

use std::{path::Path, sync::Arc};

use super::{
    manager::{Pool, PoolState, Storage, StorageEvent, VolEventKind, VolInfo},
    owners::Owner,
    pool_xml::PoolSizes,
    vol_xml::{VolDef, VolFormat, VolType},
};
use crate::core::{Error, Missing, Result};

/// The capacity of every pool in memory (libvirt's test driver: 100 GiB).
pub const CAPACITY: u64 = 100 << 30;

/// The complaint about a volume without a size (libvirt's parser reports it as an XML error).
pub const MISSING_CAPACITY: &str = "missing capacity element";

/// A new pool's sizes: nothing allocated.
pub(crate) fn empty_sizes() -> PoolSizes {
    PoolSizes {
        capacity: CAPACITY,
        allocation: 0,
        available: CAPACITY,
    }
}

fn set_allocation(s: &mut PoolState, allocation: u64) {
    s.sizes.allocation = allocation;
    s.sizes.available = s.sizes.capacity.saturating_sub(allocation);
}

impl Storage {
    /// Whether pools live in memory only.
    pub fn in_memory(&self) -> bool {
        self.inner.memory
    }

    fn memory_pool(&self, name: &str) -> Result<Arc<Pool>> {
        let pool = self.pool(name)?;
        if !pool.lock().active {
            return Err(Error::InvalidState(format!(
                "storage pool '{name}' is not active"
            )));
        }
        Ok(pool)
    }

    /// A volume held in memory: its path and key are the pool's directory and its name.
    fn memory_volume(
        &self,
        pool: &Arc<Pool>,
        mut def: VolDef,
        allocation: u64,
        owner: Option<u32>,
    ) -> Result<VolInfo> {
        let mut s = pool.lock();
        let pname = s.def.name.clone();
        if s.volumes.contains_key(&def.name) {
            return Err(Error::AlreadyExists("storage vol already exists".into()));
        }
        let used = s.sizes.allocation.saturating_add(allocation);
        if used > s.sizes.capacity {
            return Err(Error::Failed(format!(
                "Not enough free space in pool for volume '{}'",
                def.name
            )));
        }
        let path = Path::new(&s.def.path).join(&def.name);
        let path = path.to_string_lossy().into_owned();
        def.vol_type = Some(def.vol_type.unwrap_or(VolType::File));
        def.key = Some(path.clone());
        def.target.path = Some(path);
        def.target.format = Some(def.target.format.unwrap_or(VolFormat::Raw));
        def.allocation = Some(allocation);
        let info = VolInfo::of(&pname, &def);
        match owner {
            Some(uid) => s.owners.insert(
                def.name.clone(),
                Owner {
                    uid,
                    dev: 0,
                    ino: 0,
                },
            ),
            None => s.owners.remove(&def.name),
        };
        s.volumes.insert(def.name.clone(), Arc::new(def));
        set_allocation(&mut s, used);
        drop(s);
        self.emit(StorageEvent::VolumeChanged {
            pool: pname,
            name: info.name.clone(),
            kind: VolEventKind::Created,
        });
        Ok(info)
    }

    /// A volume from its XML; unless given, its allocation is its capacity.
    pub(crate) fn memory_create_volume(
        &self,
        pool: &str,
        xml: &str,
        owner: Option<u32>,
    ) -> Result<VolInfo> {
        let def = VolDef::parse(xml)?;
        let p = self.memory_pool(pool)?;
        let capacity = def
            .capacity
            .ok_or_else(|| Error::InvalidArgument(MISSING_CAPACITY.into()))?;
        let allocation = def.allocation.unwrap_or(capacity);
        self.memory_volume(&p, def, allocation, owner)
    }

    /// A copy of `source`: as the test driver, fully allocated to its capacity.
    pub(crate) fn memory_clone_volume(
        &self,
        pool: &str,
        xml: &str,
        source_pool: &str,
        source: &str,
        owner: Option<u32>,
    ) -> Result<VolInfo> {
        let mut def = VolDef::parse(xml)?;
        let src = self.memory_pool(source_pool)?;
        let src_def = src.lock().volumes.get(source).cloned().ok_or_else(|| {
            Error::NotFound(
                Missing::Object,
                format!("no storage vol with matching name '{source}'"),
            )
        })?;
        let p = self.memory_pool(pool)?;
        if def.capacity.is_none() {
            def.capacity = src_def.capacity;
        }
        let allocation = def.capacity.unwrap_or(0);
        self.memory_volume(&p, def, allocation, owner)
    }

    pub(crate) fn memory_delete_volume(&self, pool: &str, vol: &str) -> Result<()> {
        let p = self.memory_pool(pool)?;
        let mut s = p.lock();
        let def = s.volumes.remove(vol).ok_or_else(|| {
            Error::NotFound(
                Missing::Object,
                format!("no storage vol with matching name '{vol}'"),
            )
        })?;
        s.owners.remove(vol);
        let used = s
            .sizes
            .allocation
            .saturating_sub(def.allocation.unwrap_or(0));
        set_allocation(&mut s, used);
        drop(s);
        self.emit(StorageEvent::VolumeChanged {
            pool: pool.to_string(),
            name: vol.to_string(),
            kind: VolEventKind::Deleted,
        });
        Ok(())
    }
}

/// What an operation the test driver lacks answers in memory.
pub(crate) fn unimplemented(api: &str) -> Error {
    Error::Unimplemented(api.to_string())
}
