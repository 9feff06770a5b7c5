//! Turns core events into signals, in the order the core published them.

use std::future::Future;

use zbus::OwnedObjectPath;

use super::{
    Ctx,
    dict::Dict,
    paths, props,
    router::{OBJECT_MANAGER, PROPERTIES},
    schema::{DOMAIN_IFACE, MANAGER_IFACE, NETWORK_IFACE, SNAPSHOT_IFACE},
};
use crate::{core::Event, server::signals::Emitter};

impl Emitter for Ctx {
    fn emit(&self, event: Event) -> impl Future<Output = zbus::Result<()>> + Send {
        emit(self, event)
    }
}

pub(super) async fn signal<B>(
    ctx: &Ctx,
    path: &str,
    iface: &str,
    member: &str,
    body: &B,
) -> zbus::Result<()>
where
    B: serde::Serialize + zbus::DynamicType,
{
    ctx.conn
        .emit_signal(None::<&str>, path, iface, member, body)
        .await
}

async fn emit(ctx: &Ctx, event: Event) -> zbus::Result<()> {
    match event {
        Event::DomainAdded { info } => {
            let path = paths::owned(paths::domain(&info.uuid));
            interfaces_added(ctx, path, DOMAIN_IFACE, props::domain_props(&info)).await
        }
        Event::DomainChanged { info, changed } => {
            let values: props::PropMap = changed
                .iter()
                .map(|p| props::domain_prop_name(*p))
                .filter_map(|n| props::domain_prop(&info, n).map(|v| (n, v)))
                .collect();
            properties_changed(ctx, &paths::domain(&info.uuid), DOMAIN_IFACE, values).await
        }
        Event::Lifecycle { uuid, event } => {
            let path = paths::owned(paths::domain(&uuid));
            let body = (path, event.event_str(), event.detail_str());
            signal(ctx, paths::MANAGER, MANAGER_IFACE, "DomainEvent", &body).await
        }
        Event::Rebooted { uuid } => {
            signal(ctx, &paths::domain(&uuid), DOMAIN_IFACE, "Rebooted", &()).await
        }
        // disk events have no signal of the native API yet: libvirt's RPC clients get them
        Event::BlockJob { .. } | Event::BlockThreshold { .. } | Event::IoError { .. } => Ok(()),
        Event::Watchdog { uuid, action } => {
            let path = paths::domain(&uuid);
            signal(ctx, &path, DOMAIN_IFACE, "Watchdog", &(action.as_str(),)).await
        }
        Event::MetadataChanged { uuid, kind } => {
            let body = (kind.name(), kind.uri());
            let path = paths::domain(&uuid);
            signal(ctx, &path, DOMAIN_IFACE, "MetadataChanged", &body).await
        }
        Event::DeviceAdded { uuid, device } => {
            let path = paths::domain(&uuid);
            signal(ctx, &path, DOMAIN_IFACE, "DeviceAdded", &(device,)).await
        }
        Event::DeviceRemoved { uuid, device } => {
            let path = paths::domain(&uuid);
            signal(ctx, &path, DOMAIN_IFACE, "DeviceRemoved", &(device,)).await
        }
        // the native API has no tunable signal; TunableChanged properties would be its own
        Event::Tunable { .. } | Event::MigrationIteration { .. } | Event::JobCompleted { .. } => {
            Ok(())
        }
        Event::DomainRemoved { uuid } => {
            interfaces_removed(ctx, paths::owned(paths::domain(&uuid)), DOMAIN_IFACE).await
        }
        Event::SnapshotAdded { info } => {
            let path = paths::owned(paths::snapshot(&info.domain, &info.name));
            interfaces_added(ctx, path, SNAPSHOT_IFACE, props::snapshot_props(&info)).await
        }
        Event::SnapshotChanged { info, changed } => {
            let values: props::PropMap = changed
                .iter()
                .map(|p| props::snapshot_prop_name(*p))
                .filter_map(|n| props::snapshot_prop(&info, n).map(|v| (n, v)))
                .collect();
            let path = paths::snapshot(&info.domain, &info.name);
            properties_changed(ctx, &path, SNAPSHOT_IFACE, values).await
        }
        Event::SnapshotRemoved { domain, name } => {
            let path = paths::owned(paths::snapshot(&domain, &name));
            interfaces_removed(ctx, path, SNAPSHOT_IFACE).await
        }
        Event::Storage(ev) => super::storage::emit(ctx, ev).await,
        // the native API defines no signals for these (the libvirt RPC server forwards them)
        Event::RtcChange { .. }
        | Event::Graphics { .. }
        | Event::BalloonChange { .. }
        | Event::TrayChange { .. }
        | Event::Monitor { .. }
        | Event::AgentLifecycle { .. } => Ok(()),
    }
}

pub(super) async fn interfaces_added(
    ctx: &Ctx,
    path: OwnedObjectPath,
    iface: &str,
    values: props::PropMap<'_>,
) -> zbus::Result<()> {
    let ifaces = Dict(vec![(iface, values)]);
    let body = (path, ifaces);
    signal(
        ctx,
        paths::MANAGER,
        OBJECT_MANAGER,
        "InterfacesAdded",
        &body,
    )
    .await
}

pub(super) async fn interfaces_removed(
    ctx: &Ctx,
    path: OwnedObjectPath,
    iface: &str,
) -> zbus::Result<()> {
    let body = (path, vec![iface]);
    signal(
        ctx,
        paths::MANAGER,
        OBJECT_MANAGER,
        "InterfacesRemoved",
        &body,
    )
    .await
}

pub(super) async fn properties_changed(
    ctx: &Ctx,
    path: &str,
    iface: &str,
    values: props::PropMap<'_>,
) -> zbus::Result<()> {
    let invalidated: Vec<&str> = Vec::new();
    signal(
        ctx,
        path,
        PROPERTIES,
        "PropertiesChanged",
        &(iface, values, invalidated),
    )
    .await
}

/// Signals the network driver's events: `InterfacesAdded`/`Removed` when a network appears
/// or goes, `PropertiesChanged` otherwise, and the Manager's `NetworkEvent` for each
/// lifecycle change; then records the event's sequence number as signalled.
pub(super) async fn network_pump(
    ctx: std::sync::Arc<Ctx>,
    mut rx: tokio::sync::broadcast::Receiver<crate::network::NetEvent>,
    done: tokio::sync::watch::Sender<u64>,
) {
    use crate::network::NetEventKind as K;
    use tokio::sync::broadcast::error::RecvError;
    // what each network looked like when last signalled, to tell additions from changes
    let mut known: std::collections::HashMap<String, crate::network::NetworkInfo> =
        match ctx.core.networks() {
            Ok(n) => n
                .list()
                .await
                .into_iter()
                .map(|i| (i.name.clone(), i))
                .collect(),
            Err(_) => Default::default(),
        };
    loop {
        let ev = match rx.recv().await {
            Ok(ev) => ev,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!("{n} network event(s) were dropped before being signalled");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let path = paths::network(&ev.info.name);
        let gone = ev.kind == K::Undefined && !ev.info.active
            || ev.kind == K::Stopped && !ev.info.persistent;
        let r = if gone {
            known.remove(&ev.info.name);
            interfaces_removed(&ctx, paths::owned(path.clone()), NETWORK_IFACE).await
        } else if let Some(before) = known.get(&ev.info.name) {
            let now = props::network_props(&ev.info);
            let old = props::network_props(before);
            let changed: props::PropMap = now
                .0
                .into_iter()
                .filter(|(k, v)| !old.0.iter().any(|(k2, v2)| k2 == k && v2 == v))
                .collect();
            let r = if changed.0.is_empty() {
                Ok(())
            } else {
                properties_changed(&ctx, &path, NETWORK_IFACE, changed).await
            };
            known.insert(ev.info.name.clone(), ev.info.clone());
            r
        } else {
            known.insert(ev.info.name.clone(), ev.info.clone());
            interfaces_added(
                &ctx,
                paths::owned(path.clone()),
                NETWORK_IFACE,
                props::network_props(&ev.info),
            )
            .await
        };
        let event = match ev.kind {
            K::Defined => Some("defined"),
            K::Undefined => Some("undefined"),
            K::Started => Some("started"),
            K::Stopped => Some("stopped"),
            K::Changed => None,
        };
        let r2 = match event {
            Some(e) => {
                let body = (paths::owned(path), e);
                signal(&ctx, paths::MANAGER, MANAGER_IFACE, "NetworkEvent", &body).await
            }
            None => Ok(()),
        };
        if let Err(e) = r.and(r2) {
            tracing::warn!("cannot signal a network event: {e}");
        }
        done.send_replace(ev.seq);
    }
}
