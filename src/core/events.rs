//! Events from the core to its front ends.
//!
//! Every change of a domain's or snapshot's visible state is published here, in the order it
//! happened, with a sequence number. Front ends turn events into signals, and a method call
//! waits until its front end has handled every event published before the call returned, so
//! that a caller sees an operation's signals before its reply.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use uuid::Uuid;

use super::{
    info::{DomainInfo, DomainProp, SnapshotInfo, SnapshotProp},
    metadata::MetadataKind,
};
use crate::model::{
    guest_events::{GraphicsEvent, MonitorEvent},
    state::Lifecycle,
};

#[derive(Debug, Clone)]
pub enum Event {
    /// A domain object appeared; `info` holds all its properties.
    DomainAdded {
        info: Arc<DomainInfo>,
    },
    /// Properties in `changed` took the values in `info`.
    DomainChanged {
        info: Arc<DomainInfo>,
        changed: Vec<DomainProp>,
    },
    /// A lifecycle event, with libvirt's vocabulary.
    Lifecycle {
        uuid: Uuid,
        event: Lifecycle,
    },
    /// The guest reset or rebooted (no state change).
    Rebooted {
        uuid: Uuid,
    },
    /// The guest's watchdog fired; the hypervisor took `action`.
    Watchdog {
        uuid: Uuid,
        action: crate::model::state::WatchdogEventAction,
    },
    /// The guest set its real-time clock; `offset` is seconds from UTC.
    RtcChange {
        uuid: Uuid,
        offset: i64,
    },
    /// A graphics client connected, finished its handshake or left.
    Graphics {
        uuid: Uuid,
        graphics: Arc<GraphicsEvent>,
    },
    /// The balloon now leaves the guest `actual` KiB.
    BalloonChange {
        uuid: Uuid,
        actual: u64,
    },
    /// The tray of removable drive `alias` opened or closed.
    TrayChange {
        uuid: Uuid,
        alias: String,
        open: bool,
    },
    /// A raw event of the guest's monitor (libvirt's QEMU monitor events).
    Monitor {
        uuid: Uuid,
        event: Arc<MonitorEvent>,
    },
    /// The guest agent connected or disconnected (libvirt's agent lifecycle event);
    /// `at_start`: reported as the domain started rather than when the guest changed it.
    AgentLifecycle {
        uuid: Uuid,
        connected: bool,
        at_start: bool,
    },
    /// A piece of metadata was set or removed.
    MetadataChanged {
        uuid: Uuid,
        kind: MetadataKind,
    },
    /// A device was attached to the running guest; `device` names it (alias, disk target or
    /// MAC address).
    DeviceAdded {
        uuid: Uuid,
        device: String,
    },
    /// A device was detached from the running guest.
    DeviceRemoved {
        uuid: Uuid,
        device: String,
    },
    DomainRemoved {
        uuid: Uuid,
    },
    /// The guest's outgoing migration began pass `iteration` over its memory (libvirt's
    /// migration iteration event).
    MigrationIteration {
        uuid: Uuid,
        iteration: i32,
    },
    /// Tunables of the running guest changed (libvirt's tunable event): the parameters set,
    /// with libvirt's names (`cputune.*`, `blkdeviotune.*`) and types.
    Tunable {
        uuid: Uuid,
        params: super::tune::Tunables,
    },
    SnapshotAdded {
        info: Arc<SnapshotInfo>,
    },
    SnapshotChanged {
        info: Arc<SnapshotInfo>,
        changed: Vec<SnapshotProp>,
    },
    SnapshotRemoved {
        domain: Uuid,
        name: String,
    },
    /// A block job of disk `target` (image `path` now) became ready or ended.
    BlockJob {
        uuid: Uuid,
        target: String,
        path: Option<String>,
        kind: crate::drivers::block::BlockJobKind,
        status: crate::drivers::block::BlockJobStatus,
    },
    /// A write threshold armed on `dev` (`vda` or `vda[2]`, image `path`) was crossed.
    BlockThreshold {
        uuid: Uuid,
        dev: String,
        path: String,
        threshold: u64,
        excess: u64,
    },
    /// A disk (`path`, `alias`; empty when unknown) met an I/O error; `action` is
    /// libvirt's code (0 none, 1 pause, 2 report), `reason` `enospc` or empty.
    IoError {
        uuid: Uuid,
        path: String,
        alias: String,
        action: i32,
        reason: String,
    },
    /// A long job of the domain (a backup, a migration) ended, with libvirt's statistics of it.
    JobCompleted {
        uuid: Uuid,
        stats: Arc<super::backup::JobStats>,
    },
    /// A storage pool or volume changed.
    Storage(crate::storage::StorageEvent),
}

/// A publish/subscribe channel that keeps one global order.
#[derive(Default)]
pub struct EventBus {
    inner: Mutex<BusInner>,
}

#[derive(Default)]
struct BusInner {
    seq: u64,
    subscribers: Vec<mpsc::UnboundedSender<(u64, Event)>>,
}

impl EventBus {
    /// A new subscriber receives every event published from now on.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<(u64, Event)> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.inner).subscribers.push(tx);
        rx
    }

    pub fn publish(&self, event: Event) {
        let mut inner = lock(&self.inner);
        inner.seq += 1;
        let seq = inner.seq;
        inner
            .subscribers
            .retain(|tx| tx.send((seq, event.clone())).is_ok());
    }

    /// The sequence number of the last event published.
    pub fn last_seq(&self) -> u64 {
        lock(&self.inner).seq
    }
}

pub(crate) use crate::util::lock;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_sequence() {
        let bus = EventBus::default();
        let mut rx = bus.subscribe();
        let u = Uuid::nil();
        bus.publish(Event::Rebooted { uuid: u });
        bus.publish(Event::DomainRemoved { uuid: u });
        assert_eq!(bus.last_seq(), 2);
        let (s1, e1) = rx.try_recv().expect("first");
        let (s2, e2) = rx.try_recv().expect("second");
        assert_eq!((s1, s2), (1, 2));
        assert!(matches!(e1, Event::Rebooted { .. }));
        assert!(matches!(e2, Event::DomainRemoved { .. }));
    }

    #[test]
    fn dropped_subscriber_is_forgotten() {
        let bus = EventBus::default();
        drop(bus.subscribe());
        bus.publish(Event::Rebooted { uuid: Uuid::nil() });
        assert!(lock(&bus.inner).subscribers.is_empty());
    }
}
