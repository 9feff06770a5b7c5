//! Upload and download of a volume's bytes through a file descriptor the caller passes
//! (over D-Bus, type `h`): a pipe, a socket or a file. The bytes are the file's as they are
//! on disk, whatever its format, as with libvirt's volume streams.

use std::{
    fs::{File, OpenOptions},
    io::{ErrorKind, Read, Seek, SeekFrom, Write},
    os::{fd::OwnedFd, unix::fs::OpenOptionsExt},
    path::Path,
    time::{Duration, Instant},
};

use super::{
    dir::{blocking, io_err},
    manager::{Storage, StorageEvent, VolEventKind},
};
use crate::core::{Error, Result};

/// Where in the volume a transfer starts, and how many bytes it moves at most (0: to the
/// end of the volume for a download, to the end of the input for an upload).
#[derive(Debug, Clone, Copy, Default)]
pub struct TransferOptions {
    pub offset: u64,
    pub length: u64,
    /// A download tells holes from data: see [`sparse`].
    pub sparse: bool,
}

/// A sparse download's framing on its descriptor, for a caller that recreates holes
/// (libvirt's sparse streams): each extent is a kind byte and its length (u64, big-endian),
/// a data extent's bytes after its header. Holes are found with `SEEK_DATA`/`SEEK_HOLE`.
pub mod sparse {
    pub const DATA: u8 = 0;
    pub const HOLE: u8 = 1;
    /// The bytes of an extent's header.
    pub const HEADER: usize = 9;
}

/// The extents of `file` from `from` to `end`: (is data, length), holes as the file system
/// reports them (a file system without hole reporting shows all data).
fn extents(file: &File, from: u64, end: u64) -> std::io::Result<Vec<(bool, u64)>> {
    use std::os::fd::AsRawFd;
    let seek = |pos: u64, whence: i32| -> std::io::Result<Option<u64>> {
        let pos = libc::off_t::try_from(pos).map_err(|_| ErrorKind::InvalidInput)?;
        // SAFETY: lseek on a descriptor the `File` owns; the position is restored by the
        // caller's own seek before any read.
        let r = unsafe { libc::lseek(file.as_raw_fd(), pos, whence) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            // ENXIO: no data (or hole) at or after `pos`
            return match e.raw_os_error() {
                Some(libc::ENXIO) => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(r as u64))
    };
    let mut out: Vec<(bool, u64)> = Vec::new();
    let mut push = |data: bool, len: u64| {
        if len == 0 {
            return;
        }
        match out.last_mut() {
            Some((d, l)) if *d == data => *l += len,
            _ => out.push((data, len)),
        }
    };
    let mut pos = from;
    while pos < end {
        let data = seek(pos, libc::SEEK_DATA)?.unwrap_or(end).min(end);
        push(false, data - pos);
        if data >= end {
            break;
        }
        let hole = seek(data, libc::SEEK_HOLE)?.unwrap_or(end).min(end);
        push(true, hole - data);
        pos = hole;
    }
    Ok(out)
}

/// Write the `total` bytes of `input` from `offset` into `out` framed as [`sparse`] extents.
fn pump_sparse(
    input: &mut File,
    out: &mut File,
    offset: u64,
    total: u64,
    mut progress: impl FnMut(u64),
) -> std::io::Result<u64> {
    let mut done = 0u64;
    for (data, len) in extents(input, offset, offset + total)? {
        let mut h = [0u8; sparse::HEADER];
        h[0] = if data { sparse::DATA } else { sparse::HOLE };
        h[1..].copy_from_slice(&len.to_be_bytes());
        out.write_all(&h)?;
        if data {
            input.seek(SeekFrom::Start(offset + done))?;
            let n = pump(input, out, Some(len), |_| {})?;
            if n != len {
                return Err(std::io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "the volume shrank during the download",
                ));
            }
        }
        done += len;
        progress(done);
    }
    out.flush()?;
    Ok(done)
}

const CHUNK: usize = 4 << 20;
/// Bytes per `copy_file_range` call: large, but small enough for progress to move.
const KERNEL_CHUNK: usize = 64 << 20;
/// How often progress is published, at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// Copies from `input` to `output` until EOF or `limit` bytes, calling `progress` with the
/// bytes done now and then. The kernel copies (`copy_file_range`, as `cp` does) when both
/// ends allow it; otherwise, or once it declines, the bytes pass through a buffer here.
fn pump(
    input: &mut File,
    output: &mut File,
    limit: Option<u64>,
    mut progress: impl FnMut(u64),
) -> std::io::Result<u64> {
    use std::os::fd::AsRawFd;
    let mut done = 0u64;
    let mut last = Instant::now();
    let mut report = |done: u64, force: bool| {
        if force || last.elapsed() >= PROGRESS_EVERY {
            progress(done);
            last = Instant::now();
        }
    };
    let want = |done: u64, chunk: usize| match limit {
        Some(l) if l - done < chunk as u64 => (l - done) as usize,
        _ => chunk,
    };
    // in the kernel, while it takes the descriptors
    let mut kernel = true;
    while kernel {
        let n = want(done, KERNEL_CHUNK);
        if n == 0 {
            break;
        }
        // SAFETY: both descriptors are open and owned by the `File`s for the call; null
        // offsets use and advance the files' own positions.
        let r = unsafe {
            libc::copy_file_range(
                input.as_raw_fd(),
                std::ptr::null_mut(),
                output.as_raw_fd(),
                std::ptr::null_mut(),
                n,
                0,
            )
        };
        match r {
            0 => {
                // an end of input, unless nothing was copied yet (some file systems answer
                // 0 for what they cannot do): then the buffer decides
                if done > 0 {
                    output.flush()?;
                    report(done, true);
                    return Ok(done);
                }
                kernel = false;
            }
            n if n > 0 => {
                done += n as u64;
                report(done, false);
            }
            _ => {
                let e = std::io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => {}
                    Some(
                        libc::EXDEV | libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::EBADF,
                    ) => kernel = false,
                    _ => return Err(e),
                }
            }
        }
    }
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = want(done, CHUNK);
        if n == 0 {
            break;
        }
        let n = match input.read(&mut buf[..n]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        output.write_all(&buf[..n])?;
        done += n as u64;
        report(done, false);
    }
    output.flush()?;
    report(done, true);
    Ok(done)
}

fn open_volume(path: &Path, write: bool) -> Result<File> {
    OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| io_err(format_args!("cannot open '{}'", path.display()), e))
}

impl Storage {
    fn progress_sink(
        &self,
        pool: &str,
        vol: &str,
        operation: &'static str,
        total: u64,
    ) -> impl FnMut(u64) + Send + 'static {
        let this = self.clone();
        let (pool, name) = (pool.to_string(), vol.to_string());
        move |done| {
            this.emit(StorageEvent::Progress {
                pool: pool.clone(),
                name: name.clone(),
                operation,
                done,
                total,
            })
        }
    }

    /// Writes what `fd` delivers into the volume at `opts.offset`; returns the bytes written.
    pub async fn upload(
        &self,
        pool: &str,
        vol: &str,
        fd: OwnedFd,
        opts: TransferOptions,
    ) -> Result<u64> {
        if self.in_memory() {
            return Err(super::memory::unimplemented("virStorageVolUpload"));
        }
        let held = self.hold_volume(pool, vol, "upload")?;
        if held.def.vol_type == Some(super::VolType::Dir) {
            return Err(Error::NotSupported(format!(
                "cannot upload into directory volume '{vol}'"
            )));
        }
        let path = held.path.clone();
        let limit = (opts.length > 0).then_some(opts.length);
        let progress = self.progress_sink(pool, vol, "upload", opts.length);
        let n = blocking(move || {
            let mut out = open_volume(&path, true)?;
            out.seek(SeekFrom::Start(opts.offset))
                .map_err(|e| io_err(format_args!("cannot seek in '{}'", path.display()), e))?;
            let mut input = File::from(fd);
            let n = pump(&mut input, &mut out, limit, progress)
                .map_err(|e| io_err(format_args!("upload into '{}' failed", path.display()), e))?;
            out.sync_all()
                .map_err(|e| io_err(format_args!("cannot flush '{}'", path.display()), e))?;
            Ok(n)
        })
        .await?;
        self.reprobe(&held.pool, vol, VolEventKind::Changed).await?;
        Ok(n)
    }

    /// Writes the volume's bytes from `opts.offset` into `fd`; returns the bytes written.
    pub async fn download(
        &self,
        pool: &str,
        vol: &str,
        fd: OwnedFd,
        opts: TransferOptions,
    ) -> Result<u64> {
        if self.in_memory() {
            return Err(super::memory::unimplemented("virStorageVolDownload"));
        }
        let held = self.hold_volume(pool, vol, "download")?;
        if held.def.vol_type == Some(super::VolType::Dir) {
            return Err(Error::NotSupported(format!(
                "cannot download directory volume '{vol}'"
            )));
        }
        let path = held.path.clone();
        let size = held.def.physical.unwrap_or(0);
        if opts.offset > size {
            return Err(Error::InvalidArgument(format!(
                "offset {} is beyond the {size} bytes of volume '{vol}'",
                opts.offset
            )));
        }
        let left = size - opts.offset;
        let total = if opts.length > 0 {
            opts.length.min(left)
        } else {
            left
        };
        let progress = self.progress_sink(pool, vol, "download", total);
        blocking(move || {
            let mut input = open_volume(&path, false)?;
            input
                .seek(SeekFrom::Start(opts.offset))
                .map_err(|e| io_err(format_args!("cannot seek in '{}'", path.display()), e))?;
            let mut out = File::from(fd);
            if opts.sparse {
                pump_sparse(&mut input, &mut out, opts.offset, total, progress)
            } else {
                pump(&mut input, &mut out, Some(total), progress)
            }
            .map_err(|e| io_err(format_args!("download of '{}' failed", path.display()), e))
        })
        .await
    }
}
