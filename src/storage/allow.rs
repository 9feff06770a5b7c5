//! Where pools may live: a pool's directory must be one of the allowed roots or below one,
//! so that a caller allowed to define pools cannot point one at `/etc` and read or write
//! files there through volumes.

use std::path::{Component, Path, PathBuf};

use crate::core::{Error, Result};

/// Lexically clean (absolute, no `.`/`..`) and with the longest existing prefix resolved,
/// so that a symbolic link cannot lead out of an allowed root.
fn resolve(path: &Path) -> Result<PathBuf> {
    if !path.is_absolute() {
        return Err(Error::InvalidArgument(format!(
            "pool path '{}' is not absolute",
            path.display()
        )));
    }
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(Error::InvalidArgument(format!(
            "pool path '{}' may not contain '.' or '..'",
            path.display()
        )));
    }
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return Ok(out);
        }
        match (
            existing.file_name().map(|n| n.to_owned()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return Ok(path.to_path_buf()),
        }
    }
}

/// Refuses a pool directory outside every root in `allowed`.
pub fn check_pool_path(path: &Path, allowed: &[PathBuf]) -> Result<()> {
    let real = resolve(path)?;
    let ok = allowed.iter().any(|root| {
        let root = resolve(root).unwrap_or_else(|_| root.clone());
        real.starts_with(&root)
    });
    if ok {
        Ok(())
    } else {
        let list: Vec<String> = allowed.iter().map(|p| p.display().to_string()).collect();
        Err(Error::AccessDenied(format!(
            "pool path '{}' is outside the directories allowed for pools ({}); \
             see pool_dirs in [storage] of virtbusd.toml",
            path.display(),
            list.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_and_escapes() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("images");
        std::fs::create_dir(&root).unwrap();
        let allowed = vec![root.clone()];
        assert!(check_pool_path(&root, &allowed).is_ok());
        assert!(check_pool_path(&root.join("new/sub"), &allowed).is_ok());
        assert!(check_pool_path(Path::new("/etc"), &allowed).is_err());
        let e = check_pool_path(&root.join("../x"), &allowed).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        std::os::unix::fs::symlink("/etc", root.join("link")).unwrap();
        let e = check_pool_path(&root.join("link"), &allowed).unwrap_err();
        assert!(matches!(e, Error::AccessDenied(_)), "{e:?}");
    }
}
