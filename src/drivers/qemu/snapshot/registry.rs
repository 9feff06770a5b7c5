//! The images the driver made for a domain's snapshots (overlays of external snapshots and of
//! reverts to them), one path a line in `<state>/qemu/overlays/<uuid>.list`. A path is added
//! (and the file synced) before the image is created, so an image is never made without
//! being listed, whatever happens to the daemon next. Only listed images are ever removed,
//! and only once no definition of the domain uses them and no running QEMU has them open:
//! an overlay of a snapshot that never completed (a daemon killed between making it and
//! recording the snapshot) goes at the next start or snapshot operation.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use uuid::Uuid;

/// The registry file of domain `uuid` under `dir` (`<state>/qemu/overlays`).
pub fn path(dir: &Path, uuid: &Uuid) -> PathBuf {
    dir.join(format!("{uuid}.list"))
}

/// The images listed.
pub fn load(file: &Path) -> Vec<String> {
    match std::fs::read_to_string(file) {
        Ok(s) => s
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            tracing::warn!("cannot read {}: {e}", file.display());
            Vec::new()
        }
    }
}

/// Write the list (atomically, synced); an empty list removes the file.
pub fn store(file: &Path, images: &[String]) -> std::io::Result<()> {
    if images.is_empty() {
        return match std::fs::remove_file(file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = file.with_extension("list.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        for i in images {
            writeln!(f, "{i}")?;
        }
        f.sync_all()?;
    }
    std::fs::rename(&tmp, file)?;
    std::fs::File::open(dir)?.sync_all()
}

/// List `images` too (before they are made).
pub fn add(file: &Path, images: &[String]) -> std::io::Result<()> {
    let mut all = load(file);
    let before = all.len();
    for i in images {
        if !all.contains(i) {
            all.push(i.clone());
        }
    }
    if all.len() == before {
        return Ok(());
    }
    store(file, &all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_load_and_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path(&dir.path().join("overlays"), &Uuid::nil());
        assert!(load(&f).is_empty());
        add(&f, &["/a".into(), "/b".into()]).expect("add");
        add(&f, &["/b".into(), "/c".into()]).expect("add");
        assert_eq!(load(&f), ["/a", "/b", "/c"]);
        store(&f, &[]).expect("store");
        assert!(!f.exists());
    }
}
