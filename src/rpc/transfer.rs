//! `STORAGE_VOL_UPLOAD` and `STORAGE_VOL_DOWNLOAD`: the volume's bytes as the call's stream,
//! over the core's upload and download requests, which move bytes through a descriptor.
//!
//! The request gets one end of a socket pair and runs beside the stream: an upload's data
//! packets are written into the other end (a sparse stream's holes as zeros) and the client's
//! finish closes it, so the request sees the end; a download's bytes are read from it into
//! data packets until the request closes its end. The stream ends with the request's result:
//! `OK`, or its error as a stream `ERROR`, as libvirtd answers.

use std::{os::unix::net::UnixStream as StdUnixStream, sync::Arc};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::UnixStream,
    sync::mpsc,
    task::JoinHandle,
};

use super::{
    Shared,
    conn::reply,
    dispatch::Session,
    error::{RpcError, RpcResult},
    frame::{Header, MsgType, Status, packet},
    objects::{check_flags, writable},
    pools,
    stream::{Incoming, Streams, aborted, finished},
    streamproto::{StreamHole, VolTransferArgs, procs},
    xdr::{Reader, encode},
};
use crate::{
    core::{ops::Operation, storage_ops as ops},
    server::authz::Details,
    storage::TransferOptions,
};

/// `VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM`, `VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM`.
const SPARSE_STREAM: u32 = 1;
/// `VIR_ERR_SYSTEM_ERROR`: libvirt's code for a stream written past its length.
const VIR_ERR_SYSTEM_ERROR: i32 = 38;
/// Bytes per data packet: libvirtd's own stream chunk (`VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX`).
const CHUNK: usize = 256 * 1024;

/// The request running, and the end of its descriptor the stream uses.
struct Running {
    op: JoinHandle<RpcResult<u64>>,
    sock: UnixStream,
    upload: bool,
    /// What an upload may still write (`None`: to the volume's end).
    room: Option<u64>,
    /// A sparse download: the request frames extents, which become data and hole packets.
    sparse: bool,
}

/// Answer transfer call `call` and pump its stream until either side ends it.
pub(super) async fn serve(
    shared: Arc<Shared>,
    s: Arc<Session>,
    call: Header,
    body: Vec<u8>,
    out: mpsc::Sender<Vec<u8>>,
    streams: Arc<Streams>,
) {
    if call.proc_ == procs::DOMAIN_SCREENSHOT {
        return super::screenshot::serve(shared, s, call, body, out, streams).await;
    }
    // registered before the answer, so that the client's first data packet finds it
    let rx = streams.open(call.serial);
    let run = match start(&shared, &s, call.proc_, &body).await {
        Ok(r) => r,
        Err(e) => {
            streams.end(call.serial);
            let _ = out.send(reply(&call, Err(e))).await;
            return;
        }
    };
    if out.send(reply(&call, Ok(Vec::new()))).await.is_err() {
        streams.end(call.serial);
        return;
    }
    let last = if run.upload {
        upload(run, rx, &call).await
    } else {
        download(run, rx, &call, &out).await
    };
    // ended before the last packet goes: the client's answer to it is then answered
    streams.end(call.serial);
    if let Some(p) = last {
        let _ = out.send(p).await;
    }
}

/// Check the call and start its request on one end of a new socket pair.
async fn start(
    shared: &Arc<Shared>,
    s: &Arc<Session>,
    proc_: i32,
    body: &[u8],
) -> RpcResult<Running> {
    let a: VolTransferArgs = Reader::decode(body)?;
    let upload = proc_ == procs::STORAGE_VOL_UPLOAD;
    let (api, op) = if upload {
        ("virStorageVolUpload", Operation::UploadVolume)
    } else {
        ("virStorageVolDownload", Operation::DownloadVolume)
    };
    // libvirt refuses both on a read-only connection
    writable(s, api)?;
    check_flags(s, a.flags, SPARSE_STREAM, api)?;
    let v = pools::vol_of(shared, s, &a.vol).await?;
    // refused now rather than as the stream's first packet
    s.exec(shared)
        .authorize_as(&s.caller, op, &Details::pool(&v.pool))
        .await
        .map_err(|e| RpcError::denied(e, s.flavor()))?;
    let (ours, theirs) = StdUnixStream::pair()
        .map_err(|e| RpcError::rpc(format!("cannot make the stream's socket pair: {e}")))?;
    let sock = ours
        .set_nonblocking(true)
        .and_then(|()| UnixStream::from_std(ours))
        .map_err(|e| RpcError::rpc(format!("cannot use the stream's socket: {e}")))?;
    let sparse = !upload && a.flags & SPARSE_STREAM != 0;
    let opts = TransferOptions {
        offset: a.offset,
        length: a.length,
        sparse,
    };
    let (shared, s) = (shared.clone(), s.clone());
    let op = tokio::spawn(async move {
        let exec = s.exec(&shared);
        let (pool, volume, fd) = (v.pool, v.name, theirs.into());
        let r = if upload {
            let req = ops::UploadVolume {
                pool,
                volume,
                fd,
                opts,
            };
            exec.run_storage(&s.caller, req).await
        } else {
            let req = ops::DownloadVolume {
                pool,
                volume,
                fd,
                opts,
            };
            exec.run_storage(&s.caller, req).await
        };
        r.map_err(|e| pools::error(&s, e))
    });
    let room = (a.length > 0).then_some(a.length);
    Ok(Running {
        op,
        sock,
        upload,
        room,
        sparse,
    })
}

/// Feed the client's packets to the upload; the stream's last packet.
async fn upload(run: Running, mut rx: mpsc::Receiver<Incoming>, call: &Header) -> Option<Vec<u8>> {
    let Running {
        op,
        mut sock,
        mut room,
        ..
    } = run;
    let zeros = vec![0u8; CHUNK];
    loop {
        let m = rx.recv().await?;
        let want = match &m {
            Incoming::Data(d) => d.len() as u64,
            Incoming::Hole(n) => *n,
            _ => 0,
        };
        // as libvirt's descriptor streams: what fits the length is written, more fails
        let fits = room.map_or(want, |r| r.min(want));
        let full = fits < want;
        if let Some(r) = &mut room {
            *r -= fits;
        }
        let written = match m {
            Incoming::Data(d) => sock.write_all(&d[..fits as usize]).await,
            Incoming::Hole(_) => {
                // the request writes what it reads: a hole is written as zeros
                let (mut n, mut r) = (fits, Ok(()));
                while n > 0 && r.is_ok() {
                    let k = usize::try_from(n).map_or(CHUNK, |n| n.min(CHUNK));
                    r = sock.write_all(&zeros[..k]).await;
                    n -= k as u64;
                }
                r
            }
            Incoming::Finish => {
                let _ = sock.shutdown().await;
                drop(sock);
                return Some(
                    outcome(op, call)
                        .await
                        .map_or_else(|e| e, |()| finished(call)),
                );
            }
            Incoming::Abort => {
                // what arrived stays written, as with libvirtd; the request sees the end
                drop(sock);
                return Some(aborted(call));
            }
        };
        if written.is_err() || full {
            // the request failed, or more was sent than the length asked
            drop(sock);
            let last = match op.await {
                Ok(Err(e)) => e,
                _ => RpcError::remote(
                    VIR_ERR_SYSTEM_ERROR,
                    "cannot write to stream: No space left on device".into(),
                ),
            };
            return Some(failed(call, &last));
        }
    }
}

/// Send the download's bytes as data packets; the stream's last packet.
async fn download(
    run: Running,
    mut rx: mpsc::Receiver<Incoming>,
    call: &Header,
    out: &mpsc::Sender<Vec<u8>>,
) -> Option<Vec<u8>> {
    let Running {
        op,
        mut sock,
        sparse,
        ..
    } = run;
    let data = Header {
        kind: MsgType::Stream,
        status: Status::Continue,
        ..*call
    };
    let mut buf = vec![0u8; CHUNK];
    let mut frames = sparse.then(Extents::default);
    loop {
        tokio::select! {
            n = sock.read(&mut buf) => match n {
                Ok(0) | Err(_) => {
                    drop(sock);
                    // libvirtd's end of data is an empty data packet; the client's finish
                    // that follows is answered once the stream has ended
                    return Some(match outcome(op, call).await {
                        Ok(()) => packet(&data, &[]),
                        Err(e) => e,
                    });
                }
                Ok(n) => {
                    let packets = match frames.as_mut() {
                        Some(f) => f.feed(&buf[..n], call),
                        None => vec![packet(&data, &buf[..n])],
                    };
                    for p in packets {
                        if out.send(p).await.is_err() {
                            // the client left: the request fails on the closed socket
                            return None;
                        }
                    }
                }
            },
            m = rx.recv() => match m {
                // nothing to write into a download: data from the client is dropped
                Some(Incoming::Data(_) | Incoming::Hole(_)) => {}
                Some(Incoming::Finish) => {
                    // the client is done early: the request fails on the closed socket
                    drop(sock);
                    let _ = op.await;
                    return Some(finished(call));
                }
                Some(Incoming::Abort) | None => {
                    // the request fails on the closed socket
                    return Some(aborted(call));
                }
            },
        }
    }
}

/// A sparse download's framed extents (`storage::transfer::sparse`) turned into packets:
/// data as data packets, holes as `STREAM_HOLE` packets, as libvirtd sends a sparse stream.
#[derive(Default)]
struct Extents {
    /// Bytes of an extent header read so far.
    header: Vec<u8>,
    /// Data bytes still to come in the current data extent.
    data_left: u64,
}

impl Extents {
    fn feed(&mut self, mut bytes: &[u8], call: &Header) -> Vec<Vec<u8>> {
        use crate::storage::transfer::sparse;
        let mut out = Vec::new();
        while !bytes.is_empty() {
            if self.data_left > 0 {
                let n = bytes
                    .len()
                    .min(usize::try_from(self.data_left).unwrap_or(usize::MAX));
                let h = Header {
                    kind: MsgType::Stream,
                    status: Status::Continue,
                    ..*call
                };
                out.push(packet(&h, &bytes[..n]));
                self.data_left -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            let need = sparse::HEADER - self.header.len();
            let n = need.min(bytes.len());
            self.header.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.header.len() < sparse::HEADER {
                break;
            }
            let mut len = [0u8; 8];
            len.copy_from_slice(&self.header[1..]);
            let len = u64::from_be_bytes(len);
            if self.header[0] == sparse::HOLE {
                let h = Header {
                    kind: MsgType::StreamHole,
                    status: Status::Continue,
                    ..*call
                };
                let hole = StreamHole {
                    length: i64::try_from(len).unwrap_or(i64::MAX),
                    flags: 0,
                };
                out.push(packet(&h, &encode(&hole)));
            } else {
                self.data_left = len;
            }
            self.header.clear();
        }
        out
    }
}

/// The stream's end after the request finished: `OK` (the finish confirmed), or the
/// packet of its error.
async fn outcome(op: JoinHandle<RpcResult<u64>>, call: &Header) -> Result<(), Vec<u8>> {
    match op.await {
        Ok(Ok(n)) => {
            tracing::debug!("RPC stream {}: {n} bytes moved", call.serial);
            Ok(())
        }
        Ok(Err(e)) => Err(failed(call, &e)),
        Err(e) => Err(failed(
            call,
            &RpcError::rpc(format!("the transfer stopped: {e}")),
        )),
    }
}

/// A stream's error packet, as libvirtd sends a stream's failure.
fn failed(call: &Header, e: &RpcError) -> Vec<u8> {
    let h = Header {
        kind: MsgType::Stream,
        status: Status::Error,
        ..*call
    };
    packet(&h, &encode(&e.wire()))
}

/// The length of a `STREAM_HOLE` packet's hole, or why it is refused.
pub(super) fn hole_length(body: &[u8]) -> RpcResult<u64> {
    let h: StreamHole = Reader::decode(body)?;
    if h.flags != 0 {
        return Err(RpcError::rpc(format!(
            "unsupported flags (0x{:x}) in a stream hole",
            h.flags
        )));
    }
    u64::try_from(h.length)
        .map_err(|_| RpcError::rpc(format!("negative stream hole length {}", h.length)))
}
