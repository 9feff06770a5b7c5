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
pub mod fairness;
pub mod options;
pub mod paths;
pub mod props;
pub mod schema;
pub mod wire;

mod domain;
pub(crate) mod hostname;
mod manager;
mod objects;
pub mod polkit;
pub(crate) mod router;
pub(crate) mod signals;
mod snapshot;

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;
use zbus::{Connection, Message, message::Header};

use self::{
    activity::Activity,
    authz::{Authorizer, Caller},
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
}

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

impl Ctx {
    async fn signals_sent(&self) {
        signals_sent(&self.core, &self.signalled).await
    }
}

/// Signal each new host name as a change of the Manager's `Hostname`.
async fn announce_hostname(ctx: Arc<Ctx>, mut names: watch::Receiver<String>) {
    while names.changed().await.is_ok() {
        let now = names.borrow_and_update().clone();
        let values: props::PropMap<'_> = [("Hostname", zbus::Variant::from(now))]
            .into_iter()
            .collect();
        let r =
            signals::properties_changed(&ctx, paths::MANAGER, schema::MANAGER_IFACE, values).await;
        if let Err(e) = r {
            tracing::warn!("cannot signal the new host name: {e}");
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
    });
    let signals = tokio::spawn(signals::pump(ctx.clone(), events, signalled_tx));
    tokio::spawn(announce_hostname(ctx.clone(), hostname::watch()));
    let stream = router::method_calls(conn).await?;
    let activity = Arc::new(Activity::default());
    let router = tokio::spawn(router::run(ctx, stream, activity.clone()));
    Ok(Server {
        router,
        _signals: signals,
        activity,
    })
}
