//! libvirt's streams: after a call that opens one (`DOMAIN_OPEN_CONSOLE`) is answered, data
//! flows both ways as `STREAM` packets reusing the call's procedure and serial, `CONTINUE`
//! while it lasts; an empty one is the end of the server's data, `OK` from the client
//! finishes the stream (confirmed with `OK`), `ERROR` from the client aborts it.
//!
//! Flow control is the connection's own: data for the client waits in the writer's bounded
//! queue, and data from the client is written to the console before the next packet is read.

use std::{
    collections::{HashMap, HashSet},
    os::{fd::OwnedFd, unix::net::UnixStream as StdUnixStream},
    sync::Mutex,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::UnixStream,
    sync::mpsc,
};

use super::{
    error::RpcError,
    frame::{Header, MsgType, Status, packet},
    xdr::encode,
};
use crate::core::events::lock;

/// What the client sent on a stream.
#[derive(Debug)]
pub enum Incoming {
    Data(Vec<u8>),
    /// A hole of this many bytes in a sparse stream (`STREAM_HOLE`).
    Hole(u64),
    Finish,
    Abort,
}

/// The open streams of one connection, by serial, and those that ended (whose late packets
/// are answered, not taken for a broken client).
#[derive(Default)]
pub struct Streams {
    open: Mutex<HashMap<u32, mpsc::Sender<Incoming>>>,
    ended: Mutex<HashSet<u32>>,
}

/// What to do with a stream packet.
pub enum Route {
    To(mpsc::Sender<Incoming>),
    /// The stream ended: answer this packet (if it needs an answer) and go on.
    Ended(Option<Vec<u8>>),
    /// No stream has this serial: the client is broken.
    Unknown,
}

impl Streams {
    pub(super) fn open(&self, serial: u32) -> mpsc::Receiver<Incoming> {
        let (tx, rx) = mpsc::channel(8);
        lock(&self.open).insert(serial, tx);
        rx
    }

    pub(super) fn end(&self, serial: u32) {
        lock(&self.open).remove(&serial);
        let mut ended = lock(&self.ended);
        // a bounded memory of ended streams
        if ended.len() > 1024 {
            ended.clear();
        }
        ended.insert(serial);
    }

    /// Where stream packet `h` goes.
    pub fn route(&self, h: &Header) -> Route {
        if let Some(tx) = lock(&self.open).get(&h.serial) {
            return Route::To(tx.clone());
        }
        if lock(&self.ended).contains(&h.serial) {
            return Route::Ended(match h.status {
                Status::Ok => Some(finished(h)),
                Status::Error => Some(aborted(h)),
                _ => None,
            });
        }
        Route::Unknown
    }
}

/// The stream's end as the server confirms a finish (or announces its own).
pub(super) fn finished(h: &Header) -> Vec<u8> {
    let fh = Header {
        kind: MsgType::Stream,
        status: Status::Ok,
        ..*h
    };
    packet(&fh, &[])
}

/// The answer to the client's abort: libvirtd's error reply.
pub(super) fn aborted(h: &Header) -> Vec<u8> {
    let rh = Header {
        kind: MsgType::Reply,
        status: Status::Error,
        ..*h
    };
    let e = RpcError::rpc("stream aborted at client request".into());
    packet(&rh, &encode(&e.wire()))
}

/// Pump the console socket `fd` through the stream of call `call` until either side ends it.
pub async fn pump(
    fd: OwnedFd,
    call: Header,
    out: mpsc::Sender<Vec<u8>>,
    streams: std::sync::Arc<Streams>,
) {
    let mut rx = streams.open(call.serial);
    let sock = StdUnixStream::from(fd);
    let sock = match sock
        .set_nonblocking(true)
        .and_then(|()| UnixStream::from_std(sock))
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot use the console socket: {e}");
            // the console's end at once, as libvirtd words it: an empty data packet (the
            // client's finish is then answered as an ended stream's)
            let eof = Header {
                kind: MsgType::Stream,
                status: Status::Continue,
                ..call
            };
            let _ = out.send(packet(&eof, &[])).await;
            streams.end(call.serial);
            return;
        }
    };
    let (mut rd, mut wr) = sock.into_split();
    let data = Header {
        kind: MsgType::Stream,
        status: Status::Continue,
        ..call
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut eof = false;
    loop {
        tokio::select! {
            n = rd.read(&mut buf), if !eof => match n {
                Ok(0) | Err(_) => {
                    // the console went away (the guest stopped, another session forced in):
                    // as libvirtd, an empty data packet tells the client, whose finish (or
                    // abort) then ends the stream
                    if out.send(packet(&data, &[])).await.is_err() {
                        break;
                    }
                    eof = true;
                }
                Ok(n) => {
                    if out.send(packet(&data, &buf[..n])).await.is_err() {
                        break;
                    }
                }
            },
            m = rx.recv() => match m {
                // nothing reads what is sent after the end
                Some(Incoming::Data(_)) if eof => {}
                Some(Incoming::Data(d)) => {
                    if wr.write_all(&d).await.is_err() {
                        let _ = out.send(finished(&call)).await;
                        break;
                    }
                }
                // a console is no sparse stream
                Some(Incoming::Hole(_)) => {}
                Some(Incoming::Finish) => {
                    let _ = wr.shutdown().await;
                    let _ = out.send(finished(&call)).await;
                    break;
                }
                Some(Incoming::Abort) => {
                    let _ = out.send(aborted(&call)).await;
                    break;
                }
                None => break,
            },
        }
    }
    streams.end(call.serial);
}
