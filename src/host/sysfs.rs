//! Small readers of sysfs attributes: a missing attribute is `None`, other I/O failures are
//! errors naming the file.

use std::path::{Path, PathBuf};

use super::{Error, Result};

/// An attribute's text without its trailing newline; `None` when the file does not exist or
/// the kernel refuses to read it (e.g. `speed` of a link that is down gives EINVAL).
pub fn attr(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name))
        .ok()
        .map(|s| s.trim_end_matches('\n').to_owned())
}

/// [`attr`], trimmed, with an empty value counting as none (libvirt's rule for strings).
pub fn string(dir: &Path, name: &str) -> Option<String> {
    attr(dir, name)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// A number in `radix` (hex attributes may carry `0x`).
pub fn number(dir: &Path, name: &str, radix: u32) -> Result<Option<u64>> {
    let Some(s) = attr(dir, name) else {
        return Ok(None);
    };
    let t = s.trim();
    let digits = if radix == 16 {
        t.trim_start_matches("0x")
    } else {
        t
    };
    u64::from_str_radix(digits, radix)
        .map(Some)
        .map_err(|_| Error::Parse {
            path: dir.join(name),
            what: format!("'{t}' is not a number"),
        })
}

/// The `KEY=value` pairs of a device's `uevent` file.
pub fn uevent(dir: &Path) -> Vec<(String, String)> {
    attr(dir, "uevent")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// One key of a `uevent` list.
pub fn prop<'a>(ev: &'a [(String, String)], key: &str) -> Option<&'a str> {
    ev.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The last component of a symbolic link's target (a device's `subsystem` or `driver`).
pub fn link_name(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_link(dir.join(name))
        .ok()
        .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
}

/// The names in a directory, sorted (libvirt's scandir with alphasort); none when it is
/// missing.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The real directory behind a sysfs link, as an absolute path under `root`.
pub fn real(path: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(path).ok()
}
