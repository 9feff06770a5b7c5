//! `DOMAIN_SCREENSHOT`: the image the core's screenshot request returns, as the call's
//! stream. The reply carries its MIME type; the bytes follow as data packets, ended as
//! libvirtd ends a download (an empty data packet, then the client's finish is answered).

use std::sync::Arc;

use tokio::sync::mpsc;

use super::{
    Shared,
    conn::reply,
    dispatch::Session,
    error::RpcResult,
    frame::{Header, MsgType, Status, packet},
    stream::{Incoming, Streams, aborted},
    streamproto::{ScreenshotArgs, ScreenshotRet},
    xdr::{Reader, encode},
};
use crate::{compat::flags::Method, core::ops, drivers::Screenshot};

/// `virDomainScreenshot`, which takes no flags.
const SCREENSHOT: Method = Method {
    api: "virDomainScreenshot",
    driver_fn: "DomainScreenshot",
    flags: &[],
};

/// Bytes per data packet, as libvirtd's streams.
const CHUNK: usize = 256 * 1024;

/// Answer screenshot call `call` and send the image.
pub(super) async fn serve(
    shared: Arc<Shared>,
    s: Arc<Session>,
    call: Header,
    body: Vec<u8>,
    out: mpsc::Sender<Vec<u8>>,
    streams: Arc<Streams>,
) {
    // registered before the answer, so that an early abort finds it
    let mut rx = streams.open(call.serial);
    let shot = match take(&shared, &s, &body).await {
        Ok(shot) => shot,
        Err(e) => {
            streams.end(call.serial);
            let _ = out.send(reply(&call, Err(e))).await;
            return;
        }
    };
    let ret = ScreenshotRet {
        mime: Some(shot.mime),
    };
    if out.send(reply(&call, Ok(encode(&ret)))).await.is_err() {
        streams.end(call.serial);
        return;
    }
    let data = Header {
        kind: MsgType::Stream,
        status: Status::Continue,
        ..call
    };
    for chunk in shot.data.chunks(CHUNK) {
        if let Ok(Incoming::Abort | Incoming::Finish) = rx.try_recv() {
            streams.end(call.serial);
            let _ = out.send(aborted(&call)).await;
            return;
        }
        if out.send(packet(&data, chunk)).await.is_err() {
            streams.end(call.serial);
            return;
        }
    }
    // ended first: the client's finish after the empty packet is then answered
    streams.end(call.serial);
    let _ = out.send(packet(&data, &[])).await;
}

async fn take(shared: &Shared, s: &Session, body: &[u8]) -> RpcResult<Screenshot> {
    let a: ScreenshotArgs = Reader::decode(body)?;
    let dom = s.domain(&a.dom)?;
    let m = &SCREENSHOT;
    s.check(m, a.flags)?;
    // libvirt refuses it on a read-only connection
    s.writable(m)?;
    s.run(shared, m, &dom, ops::Screenshot { screen: a.screen })
        .await
}
