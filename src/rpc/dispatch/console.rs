//! `DOMAIN_OPEN_CONSOLE`: a session on the guest's console, through the same request as
//! the native API's OpenConsole; its socket becomes the call's stream ([`crate::rpc::stream`]).

use std::os::fd::OwnedFd;

use super::Session;
use crate::{
    compat::flags::{Flag, Method},
    core::{console::ConsoleOptions, ops},
    rpc::{
        Shared,
        error::{RpcError, RpcResult},
        proto::OpenConsoleArgs,
        xdr::Reader,
    },
};

/// `virDomainOpenConsole`'s flags.
const OPEN_CONSOLE: Method = Method {
    api: "virDomainOpenConsole",
    driver_fn: "DomainOpenConsole",
    flags: &[
        Flag {
            bit: 1,
            name: "VIR_DOMAIN_CONSOLE_FORCE",
            option: "force",
        },
        Flag {
            bit: 2,
            name: "VIR_DOMAIN_CONSOLE_SAFE",
            option: "safe",
        },
    ],
};

/// Open the console the call names; the socket to pump.
pub(in crate::rpc) async fn open(shared: &Shared, s: &Session, body: &[u8]) -> RpcResult<OwnedFd> {
    let a: OpenConsoleArgs = Reader::decode(body)?;
    let dom = s.domain(&a.dom)?;
    let m = &OPEN_CONSOLE;
    s.check(m, a.flags)?;
    // a console session writes to the guest
    s.writable(m)?;
    let opts = ConsoleOptions {
        device: a.dev_name.unwrap_or_default(),
        force: m.has(a.flags, "force"),
    };
    s.run(shared, m, &dom, ops::OpenConsole { opts, peer: None })
        .await?
        .ok_or_else(|| RpcError::rpc("the console gave no socket".into()))
}
