//! Who created each volume, so that authorization rules can let users manage their own
//! volumes (as domains record their definer).
//!
//! ```text
//! STATE/storage/owners/<pool uuid>.json   {"<volume>": {"uid": U, "dev": D, "ino": I}, ...}
//! ```
//! A record names the file it was made for by device and inode: a file that replaced it
//! (deleted and made again outside the daemon) is nobody's, so a record never passes to a
//! file its owner did not create. Records go when their volume is deleted, and when a scan
//! (pool start, refresh) finds their file gone or replaced. Files that appear by a scan
//! have no owner, nor do volumes root creates.

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    core::{Error, Result},
    util::fs::{remove_durable, write_atomic},
};

/// The creator of one volume and the file it created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Owner {
    pub(crate) uid: u32,
    /// The file's device and inode when it was created (0 for volumes kept in memory).
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

/// A pool's owned volumes by name.
pub(crate) type Owners = BTreeMap<String, Owner>;

/// Device and inode of the file at `path` (not following a link).
pub(crate) fn identity(path: &Path) -> Option<(u64, u64)> {
    fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn file(dir: &Path, pool: &Uuid) -> PathBuf {
    dir.join(format!("{pool}.json"))
}

/// The records of `pool` kept in `dir`; an unreadable file leaves the volumes ownerless
/// (the safe side: nobody but root may then touch them), and says so in the log.
pub(crate) fn load(dir: &Path, pool: &Uuid) -> Owners {
    let f = file(dir, pool);
    let text = match fs::read_to_string(&f) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Owners::new(),
        Err(e) => {
            tracing::error!("cannot read volume owners '{}': {e}", f.display());
            return Owners::new();
        }
    };
    serde_json::from_str(&text).unwrap_or_else(|e| {
        tracing::error!("cannot load volume owners '{}': {e}", f.display());
        Owners::new()
    })
}

/// Replace the records of `pool` in `dir` with `owners` (none: the file goes).
pub(crate) fn save(dir: &Path, pool: &Uuid, owners: &Owners) -> Result<()> {
    let f = file(dir, pool);
    if owners.is_empty() {
        return remove(dir, pool);
    }
    let text = serde_json::to_string(owners)
        .map_err(|e| Error::Failed(format!("cannot encode volume owners: {e}")))?;
    fs::create_dir_all(dir)
        .and_then(|()| write_atomic(&f, text.as_bytes(), 0o600))
        .map_err(|e| Error::Failed(format!("cannot save '{}': {e}", f.display())))
}

/// Remove the records of `pool` (a pool that is gone).
pub(crate) fn remove(dir: &Path, pool: &Uuid) -> Result<()> {
    let f = file(dir, pool);
    remove_durable(&f).map_err(|e| Error::Failed(format!("cannot remove '{}': {e}", f.display())))
}

/// Drop the records whose volume is not in `present` or whose file in `pool_dir` is not
/// the one created; whether any went.
pub(crate) fn prune(owners: &mut Owners, pool_dir: &Path, present: impl Fn(&str) -> bool) -> bool {
    let before = owners.len();
    owners
        .retain(|name, o| present(name) && identity(&pool_dir.join(name)) == Some((o.dev, o.ino)));
    owners.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_reload_and_follow_their_file_only() {
        let state = tempfile::tempdir().unwrap();
        let pool_dir = tempfile::tempdir().unwrap();
        let uuid = Uuid::new_v4();
        let a = pool_dir.path().join("a.img");
        fs::write(&a, b"x").unwrap();
        let (dev, ino) = identity(&a).unwrap();
        let mut owners = Owners::new();
        owners.insert(
            "a.img".into(),
            Owner {
                uid: 61001,
                dev,
                ino,
            },
        );
        owners.insert(
            "gone.img".into(),
            Owner {
                uid: 61002,
                dev,
                ino: ino + 1,
            },
        );
        save(state.path(), &uuid, &owners).unwrap();
        let mut back = load(state.path(), &uuid);
        assert_eq!(back, owners);

        // the volume that is gone loses its record; a.img keeps its own
        assert!(prune(&mut back, pool_dir.path(), |_| true));
        assert_eq!(back.keys().collect::<Vec<_>>(), ["a.img"]);

        // a.img made again (another inode) is nobody's; keep the old inode busy so that
        // the new file cannot reuse it
        let keep = pool_dir.path().join("keep");
        fs::rename(&a, &keep).unwrap();
        fs::write(&a, b"y").unwrap();
        assert_ne!(identity(&a), Some((dev, ino)));
        assert!(prune(&mut back, pool_dir.path(), |_| true));
        assert!(back.is_empty());

        // no records: no file
        save(state.path(), &uuid, &back).unwrap();
        assert!(!file(state.path(), &uuid).exists());
        assert!(load(state.path(), &uuid).is_empty());
    }

    #[test]
    fn a_damaged_file_leaves_volumes_ownerless() {
        let state = tempfile::tempdir().unwrap();
        let uuid = Uuid::new_v4();
        fs::write(file(state.path(), &uuid), b"{not json").unwrap();
        assert!(load(state.path(), &uuid).is_empty());
    }
}
