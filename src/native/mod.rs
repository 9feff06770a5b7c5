//! The native D-Bus API, `org.virtbus1`: a thin front end over the [`crate::core`].
//!
//! Calls are read from one message stream and each is handled in its own task, so a slow
//! operation on one domain never delays calls on others, and no lock of zbus's is held while
//! the core works. Objects are not registered one by one: a call's path is resolved against
//! the core when it arrives (see [`paths`]), so a path of a deleted object gets a typed
//! `NotFound`, and a thousand domains cost no bus-side memory.

pub mod errors;
pub mod paths;
pub mod props;
pub mod schema;

mod domain;
mod hostdev;
mod manager;
mod network;
mod objects;
mod router;
mod signals;
mod snapshot;
mod storage;

use std::sync::Arc;

use tokio::sync::watch;
use zbus::Connection;

use self::schema::Schema;
// The plumbing every handler here uses, under the names it had when it lived here.
pub(crate) use crate::server::{Call, authz, dict, hostname, options, signals_sent, wire};
use crate::{
    core::Core,
    server::{activity::Activity, authz::Authorizer},
};

/// What every call handler shares.
pub(crate) struct Ctx {
    conn: Connection,
    core: Core,
    authz: Arc<dyn Authorizer>,
    schema: Schema,
    /// The sequence number of the last core event turned into signals.
    signalled: watch::Receiver<u64>,
    /// The same for the network driver's events.
    net_signalled: watch::Receiver<u64>,
}

impl Ctx {
    async fn signals_sent(&self) {
        signals_sent(&self.core, &self.signalled).await
    }

    /// Wait until the signals of every network event published so far are out.
    async fn network_signals_sent(&self) {
        let Ok(nets) = self.core.networks() else {
            return;
        };
        let want = nets.last_seq();
        let mut rx = self.net_signalled.clone();
        let _ = rx.wait_for(|s| *s >= want).await;
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
    let net_events = core.networks().ok().map(|n| (n.subscribe(), n.last_seq()));
    let (net_tx, net_signalled) = watch::channel(net_events.as_ref().map_or(0, |(_, seq)| *seq));
    let ctx = Arc::new(Ctx {
        conn: conn.clone(),
        core,
        authz,
        schema,
        signalled,
        net_signalled,
    });
    if let Some((rx, _)) = net_events {
        tokio::spawn(signals::network_pump(ctx.clone(), rx, net_tx));
    }
    let signals = tokio::spawn(crate::server::signals::pump(
        ctx.clone(),
        events,
        signalled_tx,
    ));
    tokio::spawn(announce_hostname(ctx.clone(), hostname::watch()));
    let stream = crate::server::router::method_calls(conn).await?;
    let activity = Arc::new(Activity::default());
    let router = tokio::spawn(crate::server::router::run(ctx, stream, activity.clone()));
    Ok(Server {
        router,
        _signals: signals,
        activity,
    })
}
