//! The save image of the test driver, in the layout libvirt's test driver writes: the magic
//! `TestGuestMagic` with its NUL, the XML's length as a native-endian 32-bit integer, and
//! the XML; nothing of a guest's state (there is none). Dumps hold the magic alone.

use std::{
    io::{self, Read, Write},
    os::unix::fs::OpenOptionsExt,
    path::Path,
};

use super::{DriverError, DriverResult, SaveImageHeader};

pub const MAGIC: &[u8; 15] = b"TestGuestMagic\0";
/// libvirt's test driver refuses longer metadata.
const XML_MAX: usize = 8192;

/// libvirt's system error wording: its message, then the system's words.
fn system(msg: String, e: &io::Error) -> DriverError {
    let s = e.to_string();
    let why = s.find(" (os error").map_or(s.as_str(), |i| &s[..i]);
    DriverError::Failed(format!("{msg}: {why}"))
}

/// A new file at `path` (mode 0600), or libvirt's error naming `what`.
fn create(path: &Path, what: impl FnOnce() -> String) -> DriverResult<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| system(what(), &e))
}

/// Write an image of domain `name` holding `xml`.
pub fn write(path: &Path, name: &str, xml: &str) -> DriverResult<()> {
    let at = || format!("saving domain '{name}' to '{}'", path.display());
    let mut f = create(path, || format!("{}: open failed", at()))?;
    let len = i32::try_from(xml.len()).unwrap_or(i32::MAX);
    let mut b = MAGIC.to_vec();
    b.extend_from_slice(&len.to_ne_bytes());
    b.extend_from_slice(xml.as_bytes());
    f.write_all(&b).map_err(|e| {
        let _ = std::fs::remove_file(path);
        system(format!("{}: write failed", at()), &e)
    })
}

/// The XML of the image at `path`, in libvirt's words when it is not one.
pub fn read(path: &Path) -> DriverResult<SaveImageHeader> {
    let mut f = std::fs::File::open(path)
        .map_err(|e| system(format!("cannot read domain image '{}'", path.display()), &e))?;
    let mut magic = [0u8; 15];
    f.read_exact(&mut magic).map_err(|_| {
        DriverError::Failed(format!("incomplete save header in '{}'", path.display()))
    })?;
    if &magic != MAGIC {
        return Err(DriverError::Failed("mismatched header magic".into()));
    }
    let mut len = [0u8; 4];
    f.read_exact(&mut len).map_err(|_| {
        DriverError::Failed(format!(
            "failed to read metadata length in '{}'",
            path.display()
        ))
    })?;
    let len = i32::from_ne_bytes(len);
    let Some(len) = usize::try_from(len)
        .ok()
        .filter(|l| (1..=XML_MAX).contains(l))
    else {
        return Err(DriverError::Failed(
            "length of metadata out of range".into(),
        ));
    };
    let mut xml = vec![0u8; len];
    f.read_exact(&mut xml)
        .map_err(|_| DriverError::Failed(format!("incomplete metadata in '{}'", path.display())))?;
    Ok(SaveImageHeader {
        xml: String::from_utf8_lossy(&xml).into_owned(),
        running: true,
    })
}

/// A dump of domain `name`: the magic alone, as libvirt's test driver writes.
pub fn dump(path: &Path, name: &str) -> DriverResult<()> {
    let mut f = create(path, || {
        format!(
            "domain '{name}' coredump: failed to open {}",
            path.display()
        )
    })?;
    f.write_all(MAGIC).map_err(|e| {
        system(
            format!(
                "domain '{name}' coredump: failed to write header to {}",
                path.display()
            ),
            &e,
        )
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn image_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("img");
        super::write(&p, "t", "<domain/>").expect("write");
        let b = std::fs::read(&p).expect("read");
        assert_eq!(&b[..15], b"TestGuestMagic\0");
        assert_eq!(i32::from_ne_bytes([b[15], b[16], b[17], b[18]]), 9);
        assert_eq!(super::read(&p).expect("read").xml, "<domain/>");
    }
}
