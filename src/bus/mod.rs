//! The native D-Bus API, `org.virtbus1`: a thin front end over the [`crate::core`].
//!
//! Calls are read from one message stream and each is handled in its own task, so a slow
//! operation on one domain never delays calls on others, and no lock of zbus's is held while
//! the core works. Objects are not registered one by one: a call's path is resolved against
//! the core when it arrives (see [`paths`]), so a path of a deleted object gets a typed
//! `NotFound`, and a thousand domains cost no bus-side memory.

pub mod activity;
pub mod authz;
pub mod dict;
pub mod errors;
pub mod options;
pub mod paths;
pub mod props;
pub mod schema;

mod domain;
mod hostname;
mod manager;
mod objects;
pub mod polkit;
mod router;
mod signals;
mod snapshot;

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;
use zbus::{Connection, Message, message::Header};

use self::{
    activity::Activity,
    authz::{Authorizer, Caller},
    errors::Reply,
    schema::Schema,
};
use crate::core::Core;

/// What every call handler shares.
pub(crate) struct Ctx {
    conn: Connection,
    core: Core,
    authz: Arc<dyn Authorizer>,
    schema: Schema,
    /// The sequence number of the last core event turned into signals.
    signalled: watch::Receiver<u64>,
    hostname: hostname::Hostname,
}

/// One method call being handled.
pub(crate) struct Call {
    msg: Message,
    caller: Caller,
}

impl Call {
    fn header(&self) -> Header<'_> {
        self.msg.header()
    }

    /// Build the method return carrying `body`.
    fn reply<B>(&self, body: &B) -> Reply<Message>
    where
        B: serde::Serialize + zbus::DynamicType,
    {
        Ok(Message::method_return(&self.header()).build(body)?)
    }

    fn reply_empty(&self) -> Reply<Message> {
        self.reply(&())
    }
}

impl Ctx {
    /// Wait until the signals of every event the core published so far are sent, so that a
    /// caller sees an operation's signals before its reply.
    async fn signals_sent(&self) {
        let seq = self.core.events().last_seq();
        let mut rx = self.signalled.clone();
        let wait = rx.wait_for(|done| *done >= seq);
        if tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .is_err()
        {
            tracing::warn!("signals of event {seq} not sent after 5 s; replying anyway");
        }
    }
}

/// The running front end; dropping it does not stop it (its tasks live with the connection).
pub struct Server {
    router: tokio::task::JoinHandle<()>,
    _signals: tokio::task::JoinHandle<()>,
    activity: Arc<Activity>,
}

impl Server {
    /// Calls in flight and the time since the last one.
    pub fn activity(&self) -> Arc<Activity> {
        self.activity.clone()
    }

    /// Resolve when the connection is gone and no call can arrive any more.
    pub async fn closed(&mut self) {
        let _ = (&mut self.router).await;
    }
}

/// Serve the native API for `core` on `conn`. Call before requesting the bus name, so that
/// no call that arrives once the name is owned can be missed.
pub async fn serve(
    conn: &Connection,
    core: Core,
    authz: Arc<dyn Authorizer>,
) -> Result<Server, zbus::Error> {
    let schema = Schema::load().map_err(|e| zbus::Error::Failure(e.to_string()))?;
    let events = core.events().subscribe();
    let (signalled_tx, signalled) = watch::channel(core.events().last_seq());
    let ctx = Arc::new(Ctx {
        conn: conn.clone(),
        core,
        authz,
        schema,
        signalled,
        hostname: hostname::Hostname::new(),
    });
    let signals = tokio::spawn(signals::pump(ctx.clone(), events, signalled_tx));
    hostname::watch(ctx.clone());
    let stream = router::method_calls(conn).await?;
    let activity = Arc::new(Activity::default());
    let router = tokio::spawn(router::run(ctx, stream, activity.clone()));
    Ok(Server {
        router,
        _signals: signals,
        activity,
    })
}
