//! `virsh save` images in libvirt's own layout, so that a file saved by libvirtd restores
//! here and one saved here restores under libvirtd: a fixed header (magic, version, the
//! length of the data after it, whether the guest ran, compression, where a cookie starts),
//! the domain XML NUL-terminated and padded with 64 KiB of zeros (room for
//! `save-image-edit`), then QEMU's migration stream. The header carries the "partial" magic
//! until the stream is complete, so a crash mid-save leaves an image that is refused.

use std::{
    fs::{File, OpenOptions},
    io::{self, Read, Write},
    os::unix::fs::{FileExt, OpenOptionsExt},
    path::Path,
};

use serde_json::{Value, json};

use super::{monitor::Vm, save};
use crate::drivers::{DriverError, DriverResult, DumpFormat, DumpOptions, SaveImageHeader};

const MAGIC: &[u8; 16] = b"LibvirtQemudSave";
const PARTIAL: &[u8; 16] = b"LibvirtQemudPart";
const VERSION: u32 = 2;
/// The magic and 19 native-endian 32-bit words (5 used, 14 reserved).
const HEADER_LEN: usize = 16 + 19 * 4;
/// Room left after the XML so that an edited XML may grow.
const PAD: usize = 64 * 1024;

/// A header as read, with where the migration stream starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub header: SaveImageHeader,
    /// libvirt's compression program number (0: raw).
    pub compressed: u32,
    /// The length of the XML, cookie and padding after the fixed header.
    pub data_len: u32,
    /// The cookie (libvirt's `<qemu-save-cookie>`), kept as it was when rewriting.
    pub cookie: Option<String>,
}

impl Image {
    pub fn stream_offset(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.data_len)
    }
}

/// The system's words for an I/O error, without Rust's "(os error N)".
fn why(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

fn failed(msg: String) -> DriverError {
    DriverError::Failed(msg)
}

/// The fixed header.
fn fixed(magic: &[u8; 16], data_len: u32, running: bool, compressed: u32, cookie: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_LEN);
    b.extend_from_slice(magic);
    for w in [VERSION, data_len, u32::from(running), compressed, cookie] {
        b.extend_from_slice(&w.to_ne_bytes());
    }
    b.resize(HEADER_LEN, 0);
    b
}

/// The header and data (XML, cookie, zeros) of `img`; `data_len` 0 picks the length
/// libvirt picks for a new image. An XML that no longer fits is refused.
fn encode(img: &Image, magic: &[u8; 16]) -> DriverResult<Vec<u8>> {
    let xml_len = img.header.xml.len() + 1;
    let cookie_len = img.cookie.as_ref().map_or(0, |c| c.len() + 1);
    let len = xml_len + cookie_len;
    let data_len = if img.data_len == 0 {
        len + PAD
    } else if len > img.data_len as usize {
        return Err(failed("new xml too large to fit in file".into()));
    } else {
        img.data_len as usize
    };
    let data_len32 = u32::try_from(data_len).map_err(|_| failed("domain XML too large".into()))?;
    let cookie_at = if img.cookie.is_some() {
        u32::try_from(xml_len).unwrap_or(0)
    } else {
        0
    };
    let mut b = fixed(
        magic,
        data_len32,
        img.header.running,
        img.compressed,
        cookie_at,
    );
    b.extend_from_slice(img.header.xml.as_bytes());
    b.push(0);
    if let Some(c) = &img.cookie {
        b.extend_from_slice(c.as_bytes());
        b.push(0);
    }
    b.resize(HEADER_LEN + data_len, 0);
    Ok(b)
}

/// Text up to its first NUL.
fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Read and check the header of the image at `path`, in libvirt's words when it is not one.
pub fn read(path: &Path) -> DriverResult<Image> {
    let mut f = File::open(path).map_err(|e| {
        failed(format!(
            "Failed to open file '{}': {}",
            path.display(),
            why(&e)
        ))
    })?;
    read_from(&mut f)
}

fn read_from(f: &mut impl Read) -> DriverResult<Image> {
    let mut h = [0u8; HEADER_LEN];
    f.read_exact(&mut h)
        .map_err(|_| failed("failed to read qemu header".into()))?;
    if &h[..16] != MAGIC {
        if &h[..16] == PARTIAL {
            return Err(failed("save image is incomplete".into()));
        }
        return Err(failed("image magic is incorrect".into()));
    }
    let word = |i: usize, swap: bool| {
        let mut w = [0u8; 4];
        w.copy_from_slice(&h[16 + 4 * i..20 + 4 * i]);
        let v = u32::from_ne_bytes(w);
        if swap { v.swap_bytes() } else { v }
    };
    // an image written on a host of the other byte order
    let swap = word(0, false) > VERSION;
    let version = word(0, swap);
    if version > VERSION {
        return Err(failed(format!(
            "image version is not supported ({version} > {VERSION})"
        )));
    }
    let data_len = word(1, swap);
    if data_len == 0 || data_len > i32::MAX as u32 {
        return Err(failed(format!(
            "invalid header data length: {}",
            data_len as i32
        )));
    }
    let cookie_at = word(4, swap);
    let xml_len = if cookie_at != 0 { cookie_at } else { data_len };
    if xml_len > data_len {
        return Err(failed("failed to read domain XML".into()));
    }
    let mut data = vec![0u8; data_len as usize];
    f.read_exact(&mut data)
        .map_err(|_| failed("failed to read domain XML".into()))?;
    let xml = c_string(&data[..xml_len as usize]);
    let cookie = (cookie_at != 0)
        .then(|| c_string(&data[xml_len as usize..]))
        .filter(|c| !c.is_empty());
    Ok(Image {
        header: SaveImageHeader {
            xml,
            running: word(2, swap) != 0,
        },
        compressed: word(3, swap),
        data_len,
        cookie,
    })
}

/// Replace the XML (and whether the guest runs) of the image at `path`, within the room
/// its header has; the migration stream after it is untouched.
pub fn rewrite(path: &Path, header: &SaveImageHeader) -> DriverResult<()> {
    let mut img = read(path)?;
    img.header = header.clone();
    let bytes = encode(&img, MAGIC)?;
    let f = OpenOptions::new().write(true).open(path).map_err(|e| {
        failed(format!(
            "Failed to open file '{}': {}",
            path.display(),
            why(&e)
        ))
    })?;
    f.write_all_at(&bytes, 0)
        .and_then(|()| f.sync_all())
        .map_err(|e| {
            failed(format!(
                "failed to write header to domain save file '{}': {}",
                path.display(),
                why(&e)
            ))
        })
}

/// A new file at `path` only the daemon's user may read (a guest's memory is in it), in
/// libvirt's words when it cannot be made.
fn create(path: &Path) -> DriverResult<std::fs::File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            failed(format!(
                "Failed to create file '{}': {}",
                path.display(),
                why(&e)
            ))
        })
}

/// Whether the guest's vCPUs run (QMP `query-status`).
async fn running(vm: &Vm) -> DriverResult<bool> {
    let status = vm.command("query-status", None).await?;
    Ok(status.get("running").and_then(Value::as_bool) == Some(true))
}

/// Save the guest of `vm` to a new image at `path`: header and XML, then the migration
/// stream, then the complete header. The guest is left paused (the caller stops QEMU);
/// on failure the file is removed and a guest that ran runs again.
pub async fn save(vm: &Vm, header: &SaveImageHeader, path: &Path) -> DriverResult<()> {
    let img = Image {
        header: header.clone(),
        compressed: 0,
        data_len: 0,
        cookie: None,
    };
    let start = encode(&img, PARTIAL)?;
    let mut file = create(path)?;
    let was_running = running(vm).await?;
    let written = async {
        file.write_all(&start).map_err(|e| {
            failed(format!(
                "failed to write header to domain save file '{}': {}",
                path.display(),
                why(&e)
            ))
        })?;
        if was_running {
            vm.command_quiet("stop", None, &["STOP"]).await?;
        }
        let fd = file
            .try_clone()
            .map_err(|e| failed(format!("cannot use '{}': {}", path.display(), why(&e))))?;
        save::migrate(vm, "migrate", "vb-save-file", fd.into()).await?;
        let done = encode(&img, MAGIC)?;
        file.write_all_at(&done[..HEADER_LEN], 0)
            .and_then(|()| file.sync_all())
            .map_err(|e| {
                failed(format!(
                    "failed to write header to domain save file '{}': {}",
                    path.display(),
                    why(&e)
                ))
            })
    };
    match written.await {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(path);
            if was_running {
                let _ = vm.command_quiet("cont", None, &["RESUME"]).await;
            }
            Err(e)
        }
    }
}

/// QEMU's name of a memory-only dump format.
fn format_name(f: DumpFormat) -> &'static str {
    match f {
        DumpFormat::Raw => "elf",
        DumpFormat::KdumpZlib => "kdump-zlib",
        DumpFormat::KdumpLzo => "kdump-lzo",
        DumpFormat::KdumpSnappy => "kdump-snappy",
        DumpFormat::WinDmp => "win-dmp",
    }
}

/// The longest a dump may take.
const DUMP_LIMIT: std::time::Duration = std::time::Duration::from_secs(1800);

/// Dump the guest of `vm` to a new file at `path`: its memory (QEMU's `dump-guest-memory`),
/// or its whole state as a migration stream. A running guest is paused for the dump unless
/// `live`, and runs again after it. A failed dump leaves no file.
pub async fn dump(vm: &Vm, path: &Path, opts: DumpOptions) -> DriverResult<()> {
    if !opts.memory_only && opts.format != DumpFormat::Raw {
        return Err(DriverError::NotSupported(
            "kdump-compressed format is only supported with memory-only dump".into(),
        ));
    }
    let file = create(path)?;
    let was_running = running(vm).await?;
    if was_running && !opts.live {
        vm.command_quiet("stop", None, &["STOP"]).await?;
    }
    let done = async {
        if opts.memory_only {
            let name = format_name(opts.format);
            if opts.format != DumpFormat::Raw {
                let caps = vm
                    .command("query-dump-guest-memory-capability", None)
                    .await?;
                let known = caps
                    .get("formats")
                    .and_then(Value::as_array)
                    .is_some_and(|f| f.iter().any(|v| v.as_str() == Some(name)));
                if !known {
                    return Err(DriverError::InvalidArgument(format!(
                        "unsupported dumpformat '{name}' for this QEMU binary"
                    )));
                }
            }
            vm.qmp
                .execute_with_fd(
                    "getfd",
                    Some(json!({ "fdname": "vb-core-dump" })),
                    file.into(),
                    vm.timeout,
                )
                .await
                .map_err(|e| failed(format!("getfd: {e}")))?;
            let mut args = json!({ "paging": false, "protocol": "fd:vb-core-dump" });
            if opts.format != DumpFormat::Raw {
                args["format"] = json!(name);
            }
            vm.qmp
                .execute("dump-guest-memory", Some(args), DUMP_LIMIT)
                .await
                .map_err(|e| failed(format!("memory-only dump failed: {e}")))?;
            Ok(())
        } else {
            save::migrate(vm, "migrate", "vb-core-dump", file.into()).await
        }
    };
    let r = done.await.inspect_err(|_| {
        let _ = std::fs::remove_file(path);
    });
    // the migration stream leaves the guest paused, live or not
    if was_running && (!opts.live || !opts.memory_only) {
        vm.command_quiet("cont", None, &["RESUME"]).await?;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(xml: &str) -> Image {
        Image {
            header: SaveImageHeader {
                xml: xml.into(),
                running: true,
            },
            compressed: 0,
            data_len: 0,
            cookie: None,
        }
    }

    #[test]
    fn header_is_libvirts_layout() {
        let b = encode(&image("<domain/>"), MAGIC).expect("encode");
        assert_eq!(HEADER_LEN, 92);
        assert_eq!(&b[..16], b"LibvirtQemudSave");
        assert_eq!(u32::from_ne_bytes([b[16], b[17], b[18], b[19]]), 2);
        let data_len = u32::from_ne_bytes([b[20], b[21], b[22], b[23]]) as usize;
        assert_eq!(data_len, "<domain/>".len() + 1 + 64 * 1024);
        assert_eq!(b.len(), 92 + data_len);
        assert_eq!(&b[92..101], b"<domain/>");
        assert_eq!(b[101], 0);
        let back = read_from(&mut &b[..]).expect("read");
        assert_eq!(back.header.xml, "<domain/>");
        assert!(back.header.running);
        assert_eq!(back.stream_offset(), b.len() as u64);
    }

    #[test]
    fn refuses_what_libvirt_refuses() {
        let b = encode(&image("<domain/>"), PARTIAL).expect("encode");
        let e = read_from(&mut &b[..]).expect_err("partial");
        assert_eq!(e.to_string(), "save image is incomplete");
        let e = read_from(&mut &b"not an image at all"[..]).expect_err("short");
        assert_eq!(e.to_string(), "failed to read qemu header");
        let mut b = encode(&image("<domain/>"), MAGIC).expect("encode");
        b[0] = b'X';
        let e = read_from(&mut &b[..]).expect_err("magic");
        assert_eq!(e.to_string(), "image magic is incorrect");
    }

    #[test]
    fn rewritten_xml_must_fit_the_room_it_has() {
        let mut img = image("<domain/>");
        img.data_len = 20;
        img.header.xml = "x".repeat(40);
        let e = encode(&img, MAGIC).expect_err("too large");
        assert_eq!(e.to_string(), "new xml too large to fit in file");
    }
}
