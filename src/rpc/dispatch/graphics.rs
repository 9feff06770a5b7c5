//! `DOMAIN_OPEN_GRAPHICS_FD`: a connected socket to the guest's display server (VNC or
//! SPICE), through the same request as the native API's OpenGraphicsFD; the descriptor goes
//! to the client in a `REPLY_WITH_FDS` ([`crate::rpc::conn`] passes it).

use std::os::fd::OwnedFd;

use super::Session;
use crate::{
    compat::flags,
    core::ops,
    rpc::{Shared, error::RpcResult, streamproto::OpenGraphicsFdArgs, xdr::Reader},
};

/// Open the display socket the call names.
pub(in crate::rpc) async fn open(shared: &Shared, s: &Session, body: &[u8]) -> RpcResult<OwnedFd> {
    let a: OpenGraphicsFdArgs = Reader::decode(body)?;
    let dom = s.domain(&a.dom)?;
    let m = &flags::OPEN_GRAPHICS_FD;
    s.check(m, a.flags)?;
    // libvirt refuses it on a read-only connection: the display takes keys and clicks
    s.writable(m)?;
    let req = ops::OpenGraphics {
        index: a.idx,
        skipauth: m.has(a.flags, "skipauth"),
    };
    s.run(shared, m, &dom, req).await
}
