//! Crash-safe file writes.

use std::{
    fs::{self, File},
    io::{self, Write},
    path::Path,
};

/// Replace `path` with `data` so that a crash at any point leaves either the old or the new
/// content: write a temporary file beside it, fsync it, rename it over, fsync the directory.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;

    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(temp_name(file_name));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The name of the temporary file [`write_atomic`] writes beside `file_name`.
fn temp_name(file_name: &std::ffi::OsStr) -> std::ffi::OsString {
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(file_name);
    tmp.push(".tmp");
    tmp
}

/// Temporary files [`write_atomic`] left in `dir` (a crash before its rename), each with the
/// path of the file it was to replace.
pub fn leftover_temps(dir: &Path) -> Vec<(std::path::PathBuf, std::path::PathBuf)> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = rd
        .filter_map(|e| {
            let name = e.ok()?.file_name();
            let real = name.to_str()?.strip_prefix('.')?.strip_suffix(".tmp")?;
            (!real.is_empty() && temp_name(real.as_ref()) == name)
                .then(|| (dir.join(&name), dir.join(real)))
        })
        .collect();
    out.sort();
    out
}

/// Remove a file and make the removal durable; a file already gone is not an error.
pub fn remove_durable(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Every `*.json` file of `dir` read with `load`; a file it cannot read is logged and set
/// aside as `*.corrupt`, so one bad record never hides the others or comes back.
pub fn load_json_dir<T>(
    dir: &std::path::Path,
    load: impl Fn(&std::path::Path) -> Result<T, String>,
) -> Vec<T> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        match load(&p) {
            Ok(v) => out.push(v),
            Err(e) => {
                tracing::error!("{e}; moved aside");
                let mut aside = p.as_os_str().to_owned();
                aside.push(".corrupt");
                let _ = std::fs::rename(&p, aside);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f.xml");
        write_atomic(&p, b"one", 0o600).expect("write");
        write_atomic(&p, b"two", 0o600).expect("rewrite");
        assert_eq!(fs::read(&p).expect("read"), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("readdir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["f.xml"]);
        remove_durable(&p).expect("remove");
        remove_durable(&p).expect("remove again is fine");
    }

    #[test]
    fn finds_leftover_temps_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in [".a.xml.tmp", "a.xml", ".tmp", "..tmp", "b.tmp", ".c"] {
            fs::write(dir.path().join(name), b"x").expect("write");
        }
        let found = leftover_temps(dir.path());
        assert_eq!(
            found,
            [(dir.path().join(".a.xml.tmp"), dir.path().join("a.xml"))]
        );
    }
}
