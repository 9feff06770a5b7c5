//! The libvirt-dbus compatible facade, `org.libvirt`: libvirt-dbus 1.4.1's `Connect`,
//! `Domain` and `DomainSnapshot` interfaces over the same core as the native API.
//!
//! A second thin front end, on a bus connection of its own that owns `org.libvirt`: the
//! native API's router, signal pump and authorizer, with libvirt's flag words, enums,
//! object paths and error wording. Each connect (`/org/libvirt/QEMU`, `/org/libvirt/Test`)
//! shows the domains of some types of one core.

pub(crate) mod connect;
pub(crate) mod domain;
pub mod errors;
pub mod fixture;
pub mod flags;
mod hostdev;
pub(crate) mod network;
mod objects;
pub mod paths;
mod props;
pub mod schema;
mod signals;
mod snapshot;
pub(crate) mod storage;
pub mod wire;

use std::{future::Future, sync::Arc};

use tokio::sync::watch;
use uuid::Uuid;
use zbus::{Connection, Message};

use self::{
    errors::{CompatError, Reply},
    flags::Flavor,
    schema::Schema,
};
use crate::{
    core::{Core, Domain, DomainInfo, ops::Operation},
    model::DomainType,
    server::{
        Call,
        activity::Activity,
        authz::{Authorizer, Details},
        exec::Exec,
        router::{self, Frontend},
    },
};

pub const BUS_NAME: &str = "org.libvirt";

/// The libvirt version whose API the facade speaks, as `LibVersion` reports it.
pub const LIB_VERSION: u64 = 9_000_000;

/// One connect object: a view of a core as one libvirt driver.
pub struct ConnectSpec {
    /// `/org/libvirt/QEMU`, `/org/libvirt/Test`.
    pub path: &'static str,
    pub flavor: Flavor,
    pub core: Core,
    /// The domain types it shows.
    pub types: Vec<DomainType>,
}

pub(crate) struct Connect {
    pub path: &'static str,
    pub flavor: Flavor,
    pub core: Core,
    pub types: Vec<DomainType>,
    /// The last event of `core` this connect has signalled.
    signalled: watch::Receiver<u64>,
    /// The last network event of `core` this connect has signalled.
    net_signalled: watch::Receiver<u64>,
}

impl Connect {
    /// The domain `uuid` if this connect shows it.
    pub fn domain(&self, uuid: &Uuid) -> Option<Arc<Domain>> {
        self.core
            .get(uuid)
            .filter(|d| self.types.contains(&d.domain_type()))
    }

    pub fn shows(&self, dom: &Domain) -> bool {
        self.types.contains(&dom.domain_type())
    }

    pub fn domain_path(&self, uuid: &Uuid) -> String {
        paths::domain(self.path, uuid)
    }

    pub fn snapshot_path(&self, uuid: &Uuid, name: &str) -> String {
        paths::snapshot(self.path, uuid, name)
    }

    /// Wait until the signals of this connect's core's events so far are sent.
    pub async fn signals_sent(&self) {
        crate::server::signals_sent(&self.core, &self.signalled).await
    }

    /// Wait until the signals of the network driver's events so far are sent.
    pub async fn network_signals_sent(&self) {
        let Ok(nets) = self.core.networks() else {
            return;
        };
        let want = nets.last_seq();
        let mut rx = self.net_signalled.clone();
        let _ = rx.wait_for(|s| *s >= want).await;
    }

    /// The one execution path, over this connect's core.
    pub fn exec<'a>(&'a self, ctx: &'a Ctx) -> Exec<'a> {
        Exec {
            core: &self.core,
            authz: &*ctx.authz,
            signalled: &self.signalled,
        }
    }
}

/// What every call handler shares.
pub(crate) struct Ctx {
    conn: Connection,
    connects: Vec<Connect>,
    paths: Vec<&'static str>,
    authz: Arc<dyn Authorizer>,
    schema: Schema,
}

impl Ctx {
    pub async fn authorize(&self, call: &Call, op: Operation, details: &Details) -> Reply<()> {
        Ok(self.authz.check(&call.caller, op.action(), details).await?)
    }

    pub async fn authorize_domain(
        &self,
        call: &Call,
        op: Operation,
        info: &DomainInfo,
    ) -> Reply<()> {
        self.authorize(call, op, &Details::domain(info)).await
    }

    /// Whether the caller may see a domain; lists leave out the others.
    pub async fn may_read(&self, call: &Call, info: &DomainInfo) -> bool {
        self.authz.allows_everything()
            || self
                .authorize_domain(call, Operation::ReadDomain, info)
                .await
                .is_ok()
    }
}

/// The running facade; its tasks live with the connection.
pub struct Server {
    router: tokio::task::JoinHandle<()>,
    _pumps: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Resolve when the connection is gone.
    pub async fn closed(&mut self) {
        let _ = (&mut self.router).await;
    }
}

/// Serve `connects` on `conn`. Call before requesting the bus name. `activity` is shared
/// with the native API, so that idleness counts calls to both.
pub async fn serve(
    conn: &Connection,
    connects: Vec<ConnectSpec>,
    authz: Arc<dyn Authorizer>,
    activity: Arc<Activity>,
) -> Result<Server, zbus::Error> {
    let schema = Schema::load().map_err(|e| zbus::Error::Failure(e.to_string()))?;
    let mut built = Vec::new();
    let mut senders = Vec::new();
    let mut net_senders = Vec::new();
    for spec in connects {
        let events = spec.core.events().subscribe();
        let (tx, rx) = watch::channel(spec.core.events().last_seq());
        senders.push((events, tx));
        let (net_tx, net_rx) = match spec.core.networks() {
            Ok(n) => {
                let (t, r) = watch::channel(n.last_seq());
                (Some((n.subscribe(), t)), r)
            }
            Err(_) => (None, watch::channel(0).1),
        };
        net_senders.push(net_tx);
        built.push(Connect {
            path: spec.path,
            flavor: spec.flavor,
            core: spec.core,
            types: spec.types,
            signalled: rx,
            net_signalled: net_rx,
        });
    }
    let ctx = Arc::new(Ctx {
        conn: conn.clone(),
        paths: built.iter().map(|c| c.path).collect(),
        connects: built,
        authz,
        schema,
    });
    let mut pumps = Vec::new();
    for (i, (events, tx)) in senders.into_iter().enumerate() {
        let emitter = Arc::new(signals::ConnectEmitter::new(ctx.clone(), i));
        pumps.push(tokio::spawn(crate::server::signals::pump(
            emitter, events, tx,
        )));
    }
    for (i, net) in net_senders.into_iter().enumerate() {
        if let Some((events, tx)) = net {
            pumps.push(tokio::spawn(network::pump(ctx.clone(), i, events, tx)));
        }
    }
    pumps.push(tokio::spawn(signals::announce_hostname(ctx.clone())));
    let stream = router::method_calls(conn).await?;
    let router = tokio::spawn(router::run(ctx, stream, activity));
    Ok(Server {
        router,
        _pumps: pumps,
    })
}

impl Frontend for Ctx {
    type Error = CompatError;

    fn conn(&self) -> &Connection {
        &self.conn
    }

    fn dispatch(&self, call: &Call) -> impl Future<Output = Reply<Message>> + Send {
        objects::dispatch(self, call)
    }

    fn error_reply(&self, call: &Call, e: &CompatError) -> zbus::Result<Message> {
        Message::error(&call.header(), e.name().as_str()).build(&(e.to_string(),))
    }

    fn interfaces(&self) -> Vec<&crate::server::schema::Interface> {
        vec![
            &self.schema.connect,
            &self.schema.domain,
            &self.schema.snapshot,
            &self.schema.interface,
            &self.schema.nodedev,
            &self.schema.network,
            &self.schema.storage_pool,
            &self.schema.storage_vol,
        ]
    }
}
