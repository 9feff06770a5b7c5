//! A look at a file's first bytes that tells, without running `qemu-img`, the files that
//! are certainly raw (or ISO) images. Scanning a pool runs one `qemu-img info` per file
//! otherwise: a few milliseconds each, seconds for a pool of a hundred volumes.
//!
//! The test is conservative: a file is called raw only when none of the signatures QEMU
//! probes for the formats libvirt names (qcow, qcow2, vmdk, vpc, vdi, qed, dmg, cloop,
//! bochs) can be in it; anything else is left to `qemu-img`.

use std::{
    fs::File,
    io::{self, Read, Seek, SeekFrom},
    path::Path,
};

/// What the first bytes of a file say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// An ISO 9660 image (its volume descriptor at 32 KiB + 1).
    Iso,
    /// No image format's signature: `qemu-img` would call it raw.
    Raw,
    /// Maybe an image format: ask `qemu-img`.
    Unknown,
}

/// How much of the start is looked at: more than QEMU's probe buffer (512 bytes).
const HEAD: usize = 4096;

/// Signatures at offset 0 of the formats libvirt names (QEMU's `*_probe` functions); the
/// cloop and bochs ones shortened, so that any variant of their text matches.
const MAGICS: &[&[u8]] = &[
    b"QFI\xfb",   // qcow, qcow2
    b"KDMV",      // vmdk 4
    b"COWD",      // vmdk 3
    b"conectix",  // vpc
    b"QED\0",     // qed
    b"#!/bin/sh", // cloop
    b"Bochs",     // bochs
];

/// vdi's signature, little-endian at offset 0x40.
const VDI: (usize, &[u8]) = (0x40, &[0x7f, 0x10, 0xda, 0xbe]);

/// Reads the header of the regular file at `path`.
pub fn header(path: &Path) -> io::Result<Header> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; HEAD];
    let mut n = 0;
    while n < HEAD {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    let mut iso = [0u8; 5];
    let is_iso = f.seek(SeekFrom::Start(0x8001)).is_ok() && f.read_exact(&mut iso).is_ok();
    if is_iso && &iso == b"CD001" {
        return Ok(Header::Iso);
    }
    Ok(classify(&buf[..n], path))
}

/// Raw unless the bytes (or, for dmg, the name) could be one of the formats of [`MAGICS`].
fn classify(head: &[u8], path: &Path) -> Header {
    // QEMU takes any readable file whose name ends in .dmg for dmg
    let dmg = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("dmg"));
    let magic = MAGICS.iter().any(|m| head.starts_with(m));
    let vdi = head.get(VDI.0..VDI.0 + VDI.1.len()) == Some(VDI.1);
    // a vmdk descriptor is text with a `version=` line
    let vmdk_text = head.windows(8).any(|w| w == b"version=");
    if dmg || magic || vdi || vmdk_text {
        Header::Unknown
    } else {
        Header::Raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(bytes: &[u8], name: &str) -> Header {
        classify(bytes, Path::new(name))
    }

    #[test]
    fn zeros_and_text_are_raw() {
        assert_eq!(of(&[0; 4096], "/p/a.img"), Header::Raw);
        assert_eq!(of(b"", "/p/empty"), Header::Raw);
        assert_eq!(of(b"hello world\n", "/p/t.txt"), Header::Raw);
    }

    #[test]
    fn signatures_go_to_qemu_img() {
        for m in MAGICS {
            assert_eq!(of(m, "/p/x"), Header::Unknown, "{m:?}");
        }
        let mut vdi = vec![0u8; 0x80];
        vdi[0x40..0x44].copy_from_slice(VDI.1);
        assert_eq!(of(&vdi, "/p/x.vdi"), Header::Unknown);
        assert_eq!(
            of(b"# Disk DescriptorFile\nversion=1\n", "/p/d.vmdk"),
            Header::Unknown
        );
        assert_eq!(of(&[0; 16], "/p/image.DMG"), Header::Unknown);
    }

    #[test]
    fn real_files() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("r.img");
        std::fs::File::create(&raw)
            .unwrap()
            .set_len(1 << 20)
            .unwrap();
        assert_eq!(header(&raw).unwrap(), Header::Raw);
        let mut iso = vec![0u8; 0x8010];
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        let p = dir.path().join("i.iso");
        std::fs::write(&p, &iso).unwrap();
        assert_eq!(header(&p).unwrap(), Header::Iso);
    }
}
