//! Core events as libvirt-dbus's signals: `Connect.DomainEvent` with libvirt's numeric event
//! and detail, the Domain signals the core's events stand for (`Reboot`, `MetadataChange`,
//! `DeviceAdded`, `DeviceRemoved`, `Watchdog`; `PMSuspend`, `PMSuspendDisk` beside the
//! lifecycle events that imply them), and PropertiesChanged for the facade's properties
//! (which libvirt-dbus itself never emits).

use std::{
    collections::HashSet,
    future::Future,
    sync::{Arc, Mutex},
};

use uuid::Uuid;
use zbus::{ObjectPath, Variant};

use super::{
    Ctx,
    objects::PROPERTIES,
    props,
    schema::{CONNECT_IFACE, DOMAIN_IFACE},
};
use crate::{
    core::{DomainProp, Event, events::lock},
    model::state::{Lifecycle, PmSuspendedDetail},
    server::{dict::Dict, signals::Emitter},
};

/// Emits one connect's signals: only for domains of the types it shows.
pub(super) struct ConnectEmitter {
    ctx: Arc<Ctx>,
    index: usize,
    /// The domains of this connect's types, followed from the events.
    known: Mutex<HashSet<Uuid>>,
}

impl ConnectEmitter {
    /// Subscribe to the core's events before calling this, so no domain is missed.
    pub fn new(ctx: Arc<Ctx>, index: usize) -> Self {
        let c = &ctx.connects[index];
        let known = c
            .core
            .domains()
            .into_iter()
            .filter(|d| c.shows(d))
            .map(|d| d.uuid())
            .collect();
        Self {
            ctx,
            index,
            known: Mutex::new(known),
        }
    }

    fn shows(&self, uuid: &Uuid) -> bool {
        lock(&self.known).contains(uuid)
    }

    async fn signal<B>(&self, path: &str, iface: &str, member: &str, body: &B) -> zbus::Result<()>
    where
        B: serde::Serialize + zbus::DynamicType,
    {
        self.ctx
            .conn
            .emit_signal(None::<&str>, path, iface, member, body)
            .await
    }

    async fn emit_event(&self, event: Event) -> zbus::Result<()> {
        let c = &self.ctx.connects[self.index];
        match event {
            Event::DomainAdded { info } => {
                if c.types.contains(&info.domain_type) {
                    lock(&self.known).insert(info.uuid);
                }
                Ok(())
            }
            Event::DomainChanged { info, changed } if self.shows(&info.uuid) => {
                let dom = c.core.get(&info.uuid);
                let mut values: Dict<&str, Variant<'static>> = Dict::new();
                for p in changed {
                    let name = match p {
                        DomainProp::Name => "Name",
                        DomainProp::Id => "Id",
                        DomainProp::Active => "Active",
                        DomainProp::Persistent => "Persistent",
                        DomainProp::Autostart => "Autostart",
                        _ => continue,
                    };
                    if let Some(d) = &dom
                        && let Some(Ok(v)) = props::domain_prop(c, d, &info, name)
                    {
                        values.push(name, v);
                    }
                }
                if values.is_empty() {
                    return Ok(());
                }
                let path = c.domain_path(&info.uuid);
                let invalidated: Vec<&str> = Vec::new();
                let body = (DOMAIN_IFACE, values, invalidated);
                self.signal(&path, PROPERTIES, "PropertiesChanged", &body)
                    .await
            }
            Event::Lifecycle { uuid, event } if self.shows(&uuid) => {
                let path = c.domain_path(&uuid);
                let dom = ObjectPath::from_string_unchecked(path.clone());
                let body = (dom, event.event_code(), event.detail_code());
                self.signal(c.path, CONNECT_IFACE, "DomainEvent", &body)
                    .await?;
                match implied_signal(event) {
                    Some((member, arg)) => self.signal(&path, DOMAIN_IFACE, member, &(arg,)).await,
                    None => Ok(()),
                }
            }
            Event::Rebooted { uuid } if self.shows(&uuid) => {
                self.signal(&c.domain_path(&uuid), DOMAIN_IFACE, "Reboot", &())
                    .await
            }
            Event::Watchdog { uuid, action } if self.shows(&uuid) => {
                let path = c.domain_path(&uuid);
                self.signal(&path, DOMAIN_IFACE, "Watchdog", &(action.code(),))
                    .await
            }
            Event::MetadataChanged { uuid, kind } if self.shows(&uuid) => {
                let body = (kind.code(), kind.uri());
                self.signal(&c.domain_path(&uuid), DOMAIN_IFACE, "MetadataChange", &body)
                    .await
            }
            Event::DeviceAdded { uuid, device } if self.shows(&uuid) => {
                self.signal(
                    &c.domain_path(&uuid),
                    DOMAIN_IFACE,
                    "DeviceAdded",
                    &(device,),
                )
                .await
            }
            Event::DeviceRemoved { uuid, device } if self.shows(&uuid) => {
                let path = c.domain_path(&uuid);
                self.signal(&path, DOMAIN_IFACE, "DeviceRemoved", &(device,))
                    .await
            }
            Event::DomainRemoved { uuid } => {
                lock(&self.known).remove(&uuid);
                Ok(())
            }
            Event::Storage(ev) => super::storage::emit(&self.ctx, c, &ev).await,
            // libvirt has no snapshot events; other connects' domains are not ours.
            _ => Ok(()),
        }
    }
}

/// The Domain signal libvirt sends beside a lifecycle event, with its argument.
fn implied_signal(event: Lifecycle) -> Option<(&'static str, i32)> {
    match event {
        Lifecycle::PmSuspended(PmSuspendedDetail::Memory) => Some(("PMSuspend", 0)),
        Lifecycle::PmSuspended(PmSuspendedDetail::Disk) => Some(("PMSuspendDisk", 0)),
        _ => None,
    }
}

impl Emitter for ConnectEmitter {
    fn emit(&self, event: Event) -> impl Future<Output = zbus::Result<()>> + Send {
        self.emit_event(event)
    }
}

/// Signal each new host name as a change of every connect's `Hostname`.
pub(super) async fn announce_hostname(ctx: Arc<Ctx>) {
    let mut names = crate::server::hostname::watch();
    while names.changed().await.is_ok() {
        let now = names.borrow_and_update().clone();
        for c in &ctx.connects {
            let values: Dict<&str, Variant<'_>> = [("Hostname", Variant::from(now.as_str()))]
                .into_iter()
                .collect();
            let invalidated: Vec<&str> = Vec::new();
            let r = ctx
                .conn
                .emit_signal(
                    None::<&str>,
                    c.path,
                    PROPERTIES,
                    "PropertiesChanged",
                    &(CONNECT_IFACE, values, invalidated),
                )
                .await;
            if let Err(e) = r {
                tracing::warn!("cannot signal the new host name: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::state::{StartedDetail, SuspendedDetail};

    #[test]
    fn signals_implied_by_lifecycle_events() {
        // the watchdog's own signal comes from its own event
        let w = Lifecycle::Suspended(SuspendedDetail::Watchdog);
        assert_eq!(implied_signal(w), None);
        let m = Lifecycle::PmSuspended(PmSuspendedDetail::Memory);
        assert_eq!(implied_signal(m), Some(("PMSuspend", 0)));
        let d = Lifecycle::PmSuspended(PmSuspendedDetail::Disk);
        assert_eq!(implied_signal(d), Some(("PMSuspendDisk", 0)));
        assert_eq!(
            implied_signal(Lifecycle::Started(StartedDetail::Booted)),
            None
        );
        let p = Lifecycle::Suspended(SuspendedDetail::Paused);
        assert_eq!(implied_signal(p), None);
    }
}
