//! D-Bus server plumbing shared by every D-Bus front end (the native API and the libvirt-dbus
//! facade): the call router, the call context, interface schemas and signature checks,
//! options decoding, the signal pump, authorization (polkit) and activity tracking. It knows
//! no interface of its own: front ends translate their wire requests into core operations and
//! run them through [`exec`].

pub mod activity;
pub mod authz;
pub mod dict;
pub mod errors;
pub mod exec;
pub mod fairness;
pub(crate) mod hostname;
pub mod options;
pub mod polkit;
pub(crate) mod router;
pub mod schema;
pub(crate) mod signals;
pub mod wire;

use std::time::Duration;

use tokio::sync::watch;
use zbus::{Message, message::Header};

use self::authz::Caller;
use crate::core::Core;

/// One method call being handled (by either front end).
pub(crate) struct Call {
    pub(crate) msg: Message,
    pub(crate) caller: Caller,
}

impl Call {
    pub(crate) fn header(&self) -> Header<'_> {
        self.msg.header()
    }

    /// Build the method return carrying `body`.
    pub(crate) fn reply<B, E>(&self, body: &B) -> Result<Message, E>
    where
        B: serde::Serialize + zbus::DynamicType,
        E: From<zbus::Error>,
    {
        Ok(Message::method_return(&self.header()).build(body)?)
    }

    pub(crate) fn reply_empty<E: From<zbus::Error>>(&self) -> Result<Message, E> {
        self.reply(&())
    }
}

/// Wait until the signals of every event `core` published so far are sent (`signalled`
/// follows the pump of its events), so that a caller sees an operation's signals before its
/// reply.
pub(crate) async fn signals_sent(core: &Core, signalled: &watch::Receiver<u64>) {
    let seq = core.events().last_seq();
    let mut rx = signalled.clone();
    let wait = rx.wait_for(|done| *done >= seq);
    if tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .is_err()
    {
        tracing::warn!("signals of event {seq} not sent after 5 s; replying anyway");
    }
}
