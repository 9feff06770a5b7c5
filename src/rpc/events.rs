//! Event callbacks: the core's events as libvirt's `MESSAGE` packets, to every callback a
//! connection registered (`CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY`,
//! `CONNECT_STORAGE_POOL_EVENT_REGISTER_ANY`), in the order the core published them.
//!
//! One pump per view follows the core's events, words each as the packets libvirt sends
//! (all but the callback id) and hands them to every connection listening on the view. Each
//! connection filters, authorizes and queues them in a task of its own, so a peer whose
//! polkit check is slow stalls only itself; one that stops reading is disconnected rather
//! than let its queue grow.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
};

use tokio::sync::{Notify, broadcast, mpsc, watch};
use uuid::Uuid;

use super::{
    error::{RpcError, RpcResult, VIR_ERR_INTERNAL_ERROR},
    frame::{Header, MsgType, Status, packet},
    monitor_events::NameFilter,
    objproto::{Net, TypedValue},
    proto::{Dom, Pool, REMOTE_PROGRAM, REMOTE_VERSION, procs},
    streamproto,
    xdr::Xdr,
};
use crate::{
    core::{Core, DomainInfo, Event, events::lock, ops::Operation, tune::TunableValue},
    model::{
        DomainType,
        state::{Lifecycle, PmSuspendedDetail},
    },
    network::NetEvent,
    server::authz::{Authorizer, Caller, Details},
    storage::manager::{PoolEventKind, StorageEvent},
};

/// `VIR_DOMAIN_EVENT_ID_LAST` of libvirt 9.0: ids below it may be registered, whether or
/// not virtbus ever raises them.
pub const DOMAIN_EVENT_ID_LAST: i32 = 27;
/// `VIR_STORAGE_POOL_EVENT_ID_LAST`.
pub const POOL_EVENT_ID_LAST: i32 = 2;
/// `VIR_NETWORK_EVENT_ID_LAST` (lifecycle alone).
pub const NETWORK_EVENT_ID_LAST: i32 = 1;

/// `virDomainEventID` values raised here.
mod id {
    pub const LIFECYCLE: i32 = 0;
    pub const REBOOT: i32 = 1;
    pub const RTC_CHANGE: i32 = 2;
    pub const WATCHDOG: i32 = 3;
    pub const GRAPHICS: i32 = 5;
    pub const TRAY_CHANGE: i32 = 10;
    pub const BALLOON_CHANGE: i32 = 13;
    pub const PMSUSPEND: i32 = 12;
    pub const PMSUSPEND_DISK: i32 = 14;
    pub const DEVICE_REMOVED: i32 = 15;
    pub const AGENT_LIFECYCLE: i32 = 18;
    pub const DEVICE_ADDED: i32 = 19;
    pub const METADATA_CHANGE: i32 = 23;
    pub const IO_ERROR: i32 = 4;
    pub const IO_ERROR_REASON: i32 = 6;
    pub const BLOCK_JOB: i32 = 8;
    pub const BLOCK_JOB_2: i32 = 16;
    pub const BLOCK_THRESHOLD: i32 = 24;
    pub const TUNABLE: i32 = 17;
    pub const MIGRATION_ITERATION: i32 = 20;
    pub const JOB_COMPLETED: i32 = 21;
    /// `virStoragePoolEventID`.
    pub const POOL_LIFECYCLE: i32 = 0;
    pub const POOL_REFRESH: i32 = 1;
}

/// `REMOTE_PROC_DOMAIN_EVENT_CALLBACK_AGENT_LIFECYCLE`.
const DOMAIN_EVENT_CALLBACK_AGENT_LIFECYCLE: i32 = 348;
/// `REMOTE_PROC_DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION`.
const DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION: i32 = 359;
/// The messages of the disk events (`remote_procedure` numbers).
mod disk_procs {
    pub const IO_ERROR: i32 = 322;
    pub const IO_ERROR_REASON: i32 = 324;
    pub const BLOCK_JOB: i32 = 326;
    pub const BLOCK_JOB_2: i32 = 339;
    pub const BLOCK_THRESHOLD: i32 = 385;
    /// `REMOTE_PROC_DOMAIN_EVENT_CALLBACK_JOB_COMPLETED`.
    pub const JOB_COMPLETED: i32 = 363;
}

/// What kind of object a callback follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Domain,
    Pool,
    Network,
    /// QEMU monitor events (the QEMU program's).
    Monitor,
}

/// The object an event is about, with what authorizing its delivery needs.
#[derive(Debug, Clone)]
enum Subject {
    Domain(Arc<DomainInfo>),
    Pool { name: String, uuid: Uuid },
    Network { name: String, uuid: Uuid },
}

impl Subject {
    fn family(&self) -> Family {
        match self {
            Self::Domain(_) => Family::Domain,
            Self::Pool { .. } => Family::Pool,
            Self::Network { .. } => Family::Network,
        }
    }

    fn uuid(&self) -> Uuid {
        match self {
            Self::Domain(i) => i.uuid,
            Self::Pool { uuid, .. } | Self::Network { uuid, .. } => *uuid,
        }
    }
}

/// One event as libvirt words it: the procedure, the event id callbacks register for, and
/// the message after its `callbackID`.
#[derive(Debug, Clone)]
pub struct Outgoing {
    subject: Subject,
    event: i32,
    proc_: i32,
    tail: Vec<u8>,
    /// A QEMU monitor event's name: the packet is the QEMU program's.
    monitor: Option<String>,
}

#[derive(Clone)]
struct Callback {
    id: i32,
    family: Family,
    event: i32,
    /// Only this object's events.
    only: Option<Uuid>,
    /// Only monitor events of these names.
    names: Option<Arc<NameFilter>>,
}

#[derive(Default)]
struct Callbacks {
    next_id: i32,
    list: Vec<Callback>,
}

/// One connection's callbacks and the way its event packets go out.
pub struct Listener {
    callbacks: Mutex<Callbacks>,
    queue: mpsc::UnboundedSender<Arc<Outgoing>>,
}

impl Listener {
    /// A listener writing to `out` for `caller`; `kick` is notified when the peer stops
    /// reading.
    pub fn new(
        out: mpsc::Sender<Vec<u8>>,
        caller: Caller,
        authz: Arc<dyn Authorizer>,
        kick: Arc<Notify>,
    ) -> Arc<Self> {
        let (queue, rx) = mpsc::unbounded_channel();
        let l = Arc::new(Self {
            callbacks: Mutex::new(Callbacks {
                next_id: 1,
                list: Vec::new(),
            }),
            queue,
        });
        tokio::spawn(deliver(Arc::downgrade(&l), rx, out, caller, authz, kick));
        l
    }

    /// Add a callback for `event` of `family` (of one object, or all); its id.
    pub fn register(&self, family: Family, event: i32, only: Option<Uuid>) -> RpcResult<i32> {
        let last = match family {
            Family::Domain => DOMAIN_EVENT_ID_LAST,
            Family::Pool => POOL_EVENT_ID_LAST,
            Family::Network => NETWORK_EVENT_ID_LAST,
            Family::Monitor => 1,
        };
        if !(0..last).contains(&event) {
            let what = if family == Family::Network {
                "network event"
            } else {
                "event"
            };
            return Err(RpcError::remote(
                VIR_ERR_INTERNAL_ERROR,
                format!("internal error: unsupported {what} ID {event}"),
            ));
        }
        let mut cb = lock(&self.callbacks);
        let id = cb.next_id;
        cb.next_id = cb.next_id.wrapping_add(1).max(1);
        cb.list.push(Callback {
            id,
            family,
            event,
            only,
            names: None,
        });
        Ok(id)
    }

    /// Add a callback for the QEMU monitor events of one domain or all, of the names
    /// `names` lets through (all without); its id.
    pub fn register_monitor(&self, only: Option<Uuid>, names: Option<NameFilter>) -> i32 {
        let mut cb = lock(&self.callbacks);
        let id = cb.next_id;
        cb.next_id = cb.next_id.wrapping_add(1).max(1);
        cb.list.push(Callback {
            id,
            family: Family::Monitor,
            event: 0,
            only,
            names: names.map(Arc::new),
        });
        id
    }

    /// Remove callback `id` of `family`.
    pub fn deregister(&self, family: Family, id: i32) -> RpcResult<()> {
        let mut cb = lock(&self.callbacks);
        let before = cb.list.len();
        cb.list.retain(|c| !(c.id == id && c.family == family));
        if cb.list.len() == before {
            return Err(RpcError::remote(
                VIR_ERR_INTERNAL_ERROR,
                format!("internal error: callback {id} not registered"),
            ));
        }
        Ok(())
    }

    /// The ids of the callbacks `o` goes to, in the order they were registered.
    fn targets(&self, o: &Outgoing) -> Vec<i32> {
        let family = match o.monitor {
            Some(_) => Family::Monitor,
            None => o.subject.family(),
        };
        let uuid = o.subject.uuid();
        lock(&self.callbacks)
            .list
            .iter()
            .filter(|c| c.family == family && c.event == o.event)
            .filter(|c| c.only.is_none_or(|u| u == uuid))
            .filter(|c| match (&c.names, &o.monitor) {
                (Some(f), Some(name)) => f.matches(name),
                _ => true,
            })
            .map(|c| c.id)
            .collect()
    }
}

/// A connection's delivery task: each event its callbacks want, if its peer may read the
/// object, as one packet per callback.
async fn deliver(
    listener: Weak<Listener>,
    mut rx: mpsc::UnboundedReceiver<Arc<Outgoing>>,
    out: mpsc::Sender<Vec<u8>>,
    caller: Caller,
    authz: Arc<dyn Authorizer>,
    kick: Arc<Notify>,
) {
    while let Some(o) = rx.recv().await {
        let Some(l) = listener.upgrade() else { break };
        let targets = l.targets(&o);
        drop(l);
        if targets.is_empty() {
            continue;
        }
        if !authz.allows_everything() {
            let (op, details) = match &o.subject {
                // a monitor's raw events are QEMU passthrough, as its commands are
                Subject::Domain(info) if o.monitor.is_some() => {
                    (Operation::QemuMonitorCommand, Details::domain(info))
                }
                Subject::Domain(info) => (Operation::ReadDomain, Details::domain(info)),
                Subject::Pool { name, .. } => (Operation::ReadStorage, Details::pool(name)),
                Subject::Network { name, .. } => {
                    (Operation::ReadNetwork, Details::network(Some(name)))
                }
            };
            if authz.check(&caller, op.action(), &details).await.is_err() {
                continue;
            }
        }
        for id in targets {
            let mut body = Vec::with_capacity(4 + o.tail.len());
            id.put(&mut body);
            body.extend_from_slice(&o.tail);
            let (prog, vers) = match o.monitor {
                Some(_) => (super::qemu::QEMU_PROGRAM, super::qemu::QEMU_VERSION),
                None => (REMOTE_PROGRAM, REMOTE_VERSION),
            };
            let h = Header {
                prog,
                vers,
                proc_: o.proc_,
                kind: MsgType::Message,
                // libvirtd sends events with serial 1
                serial: 1,
                status: Status::Ok,
            };
            match out.try_send(packet(&h, &body)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::info!(
                        "RPC {}: the client does not read its events: disconnecting it",
                        caller.sender
                    );
                    kick.notify_one();
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    }
}

/// The listeners of one view, and the domains it shows as events name them.
pub struct Hub {
    types: Vec<DomainType>,
    listeners: Mutex<Vec<Weak<Listener>>>,
    known: Mutex<HashMap<Uuid, Arc<DomainInfo>>>,
}

impl Hub {
    /// A hub for the domains of `types` on `core` (subscribe to its events first, so no
    /// domain defined in between is missed).
    pub fn new(core: &Core, types: Vec<DomainType>) -> Self {
        let known = core
            .domains()
            .into_iter()
            .filter(|d| types.contains(&d.domain_type()))
            .map(|d| (d.uuid(), Arc::new(d.info())))
            .collect();
        Self {
            types,
            listeners: Mutex::new(Vec::new()),
            known: Mutex::new(known),
        }
    }

    /// Start handing events to `l` (once per listener).
    pub fn listen(&self, l: &Arc<Listener>) {
        let mut ls = lock(&self.listeners);
        ls.retain(|w| w.strong_count() > 0);
        if !ls.iter().any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(l))) {
            ls.push(Arc::downgrade(l));
        }
    }

    /// The packets `event` stands for (none for what libvirt has no event).
    fn translate(&self, event: &Event) -> Vec<Outgoing> {
        let known = |uuid: &Uuid| lock(&self.known).get(uuid).cloned();
        let dom_event =
            |info: Arc<DomainInfo>, event: i32, proc_: i32, rest: &dyn Fn(&mut Vec<u8>)| {
                let mut tail = Vec::new();
                rest(&mut tail);
                Outgoing {
                    subject: Subject::Domain(info),
                    event,
                    proc_,
                    tail,
                    monitor: None,
                }
            };
        match event {
            Event::DomainAdded { info } => {
                if self.types.contains(&info.domain_type) {
                    lock(&self.known).insert(info.uuid, info.clone());
                }
                Vec::new()
            }
            Event::DomainChanged { info, .. } => {
                if let Some(k) = lock(&self.known).get_mut(&info.uuid) {
                    *k = info.clone();
                }
                Vec::new()
            }
            Event::DomainRemoved { uuid } => {
                lock(&self.known).remove(uuid);
                Vec::new()
            }
            Event::Lifecycle { uuid, event } => {
                let Some(info) = known(uuid) else {
                    return Vec::new();
                };
                let dom = wire_now(&info);
                let mut out = vec![dom_event(
                    info.clone(),
                    id::LIFECYCLE,
                    procs::DOMAIN_EVENT_CALLBACK_LIFECYCLE,
                    &|w| {
                        dom.put(w);
                        event.event_code().put(w);
                        event.detail_code().put(w);
                    },
                )];
                // the events libvirt raises beside this one: (reason 0, domain)
                let implied = match event {
                    Lifecycle::PmSuspended(PmSuspendedDetail::Memory) => {
                        Some((id::PMSUSPEND, procs::DOMAIN_EVENT_CALLBACK_PMSUSPEND))
                    }
                    Lifecycle::PmSuspended(PmSuspendedDetail::Disk) => Some((
                        id::PMSUSPEND_DISK,
                        procs::DOMAIN_EVENT_CALLBACK_PMSUSPEND_DISK,
                    )),
                    _ => None,
                };
                if let Some((ev, proc_)) = implied {
                    out.push(dom_event(info, ev, proc_, &|w| {
                        0i32.put(w);
                        dom.put(w);
                    }));
                }
                out
            }
            Event::Watchdog { uuid, action } => known(uuid)
                .map(|info| {
                    let dom = wire_now(&info);
                    dom_event(
                        info,
                        id::WATCHDOG,
                        procs::DOMAIN_EVENT_CALLBACK_WATCHDOG,
                        &|w| {
                            dom.put(w);
                            action.code().put(w);
                        },
                    )
                })
                .into_iter()
                .collect(),
            Event::AgentLifecycle {
                uuid,
                connected,
                at_start,
            } => known(uuid)
                .map(|info| {
                    let dom = wire_now(&info);
                    // VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_CONNECTED (1) or
                    // _DISCONNECTED (2); _REASON_DOMAIN_STARTED (1) or _CHANNEL (2)
                    let state: i32 = if *connected { 1 } else { 2 };
                    let reason: i32 = if *at_start { 1 } else { 2 };
                    dom_event(
                        info,
                        id::AGENT_LIFECYCLE,
                        DOMAIN_EVENT_CALLBACK_AGENT_LIFECYCLE,
                        &|w| {
                            dom.put(w);
                            state.put(w);
                            reason.put(w);
                        },
                    )
                })
                .into_iter()
                .collect(),
            Event::Rebooted { uuid } => known(uuid)
                .map(|info| {
                    let dom = wire_now(&info);
                    dom_event(
                        info,
                        id::REBOOT,
                        procs::DOMAIN_EVENT_CALLBACK_REBOOT,
                        &|w| dom.put(w),
                    )
                })
                .into_iter()
                .collect(),
            Event::MetadataChanged { uuid, kind } => known(uuid)
                .map(|info| {
                    let dom = wire_now(&info);
                    let uri = Some(kind.uri().to_owned()).filter(|u| !u.is_empty());
                    dom_event(
                        info,
                        id::METADATA_CHANGE,
                        procs::DOMAIN_EVENT_CALLBACK_METADATA_CHANGE,
                        &|w| {
                            dom.put(w);
                            kind.code().put(w);
                            uri.put(w);
                        },
                    )
                })
                .into_iter()
                .collect(),
            Event::MigrationIteration { uuid, iteration } => one(known(uuid), |info| {
                let dom = wire_now(&info);
                dom_event(
                    info,
                    id::MIGRATION_ITERATION,
                    DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION,
                    &|w| {
                        dom.put(w);
                        iteration.put(w);
                    },
                )
            }),
            Event::Tunable { uuid, params } => known(uuid)
                .map(|info| {
                    let dom = wire_now(&info);
                    let list: Vec<crate::rpc::objproto::TypedParam> = params
                        .iter()
                        .map(|(field, v)| crate::rpc::objproto::TypedParam {
                            field: field.clone(),
                            value: match v {
                                TunableValue::ULLong(v) => TypedValue::ULLong(*v),
                                TunableValue::LLong(v) => TypedValue::LLong(*v),
                                TunableValue::Int(v) => TypedValue::Int(*v),
                                TunableValue::Str(v) => TypedValue::String(v.clone()),
                            },
                        })
                        .collect();
                    dom_event(
                        info,
                        id::TUNABLE,
                        procs::DOMAIN_EVENT_CALLBACK_TUNABLE,
                        &|w| {
                            dom.put(w);
                            u32::try_from(list.len()).unwrap_or(0).put(w);
                            for p in &list {
                                p.put(w);
                            }
                        },
                    )
                })
                .into_iter()
                .collect(),
            Event::JobCompleted { uuid, stats } => known(uuid)
                .map(|info| {
                    let dom = wire_now(&info);
                    let list = crate::rpc::more::job_params(stats);
                    dom_event(info, id::JOB_COMPLETED, disk_procs::JOB_COMPLETED, &|w| {
                        dom.put(w);
                        u32::try_from(list.len()).unwrap_or(0).put(w);
                        for p in &list {
                            p.put(w);
                        }
                    })
                })
                .into_iter()
                .collect(),
            Event::DeviceAdded { uuid, device } | Event::DeviceRemoved { uuid, device } => {
                let (ev, proc_) = match event {
                    Event::DeviceAdded { .. } => {
                        (id::DEVICE_ADDED, procs::DOMAIN_EVENT_CALLBACK_DEVICE_ADDED)
                    }
                    _ => (
                        id::DEVICE_REMOVED,
                        procs::DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED,
                    ),
                };
                known(uuid)
                    .map(|info| {
                        let dom = wire_now(&info);
                        dom_event(info, ev, proc_, &|w| {
                            dom.put(w);
                            device.put(w);
                        })
                    })
                    .into_iter()
                    .collect()
            }
            Event::BlockJob {
                uuid,
                target,
                path,
                kind,
                status,
            } => {
                let Some(info) = known(uuid) else {
                    return Vec::new();
                };
                let dom = wire_now(&info);
                let (kind, status) = (kind.code(), status.code());
                // libvirt raises both: the old one by image path (local images only)
                let mut out = Vec::new();
                if let Some(p) = path.as_ref().filter(|p| !p.is_empty()) {
                    out.push(dom_event(
                        info.clone(),
                        id::BLOCK_JOB,
                        disk_procs::BLOCK_JOB,
                        &|w| {
                            dom.put(w);
                            p.put(w);
                            kind.put(w);
                            status.put(w);
                        },
                    ));
                }
                out.push(dom_event(
                    info,
                    id::BLOCK_JOB_2,
                    disk_procs::BLOCK_JOB_2,
                    &|w| {
                        dom.put(w);
                        target.put(w);
                        kind.put(w);
                        status.put(w);
                    },
                ));
                out
            }
            Event::BlockThreshold {
                uuid,
                dev,
                path,
                threshold,
                excess,
            } => known(uuid)
                .map(|info| {
                    let dom = wire_now(&info);
                    dom_event(
                        info,
                        id::BLOCK_THRESHOLD,
                        disk_procs::BLOCK_THRESHOLD,
                        &|w| {
                            dom.put(w);
                            dev.put(w);
                            Some(path.clone()).put(w);
                            threshold.put(w);
                            excess.put(w);
                        },
                    )
                })
                .into_iter()
                .collect(),
            Event::IoError {
                uuid,
                path,
                alias,
                action,
                reason,
            } => {
                let Some(info) = known(uuid) else {
                    return Vec::new();
                };
                let dom = wire_now(&info);
                vec![
                    dom_event(info.clone(), id::IO_ERROR, disk_procs::IO_ERROR, &|w| {
                        dom.put(w);
                        path.put(w);
                        alias.put(w);
                        action.put(w);
                    }),
                    dom_event(
                        info,
                        id::IO_ERROR_REASON,
                        disk_procs::IO_ERROR_REASON,
                        &|w| {
                            dom.put(w);
                            path.put(w);
                            alias.put(w);
                            action.put(w);
                            reason.put(w);
                        },
                    ),
                ]
            }
            Event::Storage(StorageEvent::PoolChanged { info, kind, .. }) => {
                let pool = Pool {
                    name: info.name.clone(),
                    uuid: *info.uuid.as_bytes(),
                };
                let subject = Subject::Pool {
                    name: info.name.clone(),
                    uuid: info.uuid,
                };
                let mut tail = Vec::new();
                pool.put(&mut tail);
                let (event, proc_) = match (kind, kind.libvirt()) {
                    (_, Some(code)) => {
                        code.put(&mut tail);
                        // no lifecycle detail is defined
                        0i32.put(&mut tail);
                        (id::POOL_LIFECYCLE, procs::STORAGE_POOL_EVENT_LIFECYCLE)
                    }
                    (PoolEventKind::Refreshed, None) => {
                        (id::POOL_REFRESH, procs::STORAGE_POOL_EVENT_REFRESH)
                    }
                    _ => return Vec::new(),
                };
                vec![Outgoing {
                    subject,
                    event,
                    proc_,
                    tail,
                    monitor: None,
                }]
            }
            Event::RtcChange { uuid, offset } => one(known(uuid), |info| {
                let dom = wire_now(&info);
                dom_event(
                    info,
                    id::RTC_CHANGE,
                    procs::DOMAIN_EVENT_CALLBACK_RTC_CHANGE,
                    &|w| {
                        dom.put(w);
                        offset.put(w);
                    },
                )
            }),
            Event::BalloonChange { uuid, actual } => one(known(uuid), |info| {
                let dom = wire_now(&info);
                dom_event(
                    info,
                    id::BALLOON_CHANGE,
                    procs::DOMAIN_EVENT_CALLBACK_BALLOON_CHANGE,
                    &|w| {
                        dom.put(w);
                        actual.put(w);
                    },
                )
            }),
            Event::TrayChange { uuid, alias, open } => one(known(uuid), |info| {
                let dom = wire_now(&info);
                // VIR_DOMAIN_EVENT_TRAY_CHANGE_OPEN, _CLOSE
                let reason = if *open { 0i32 } else { 1 };
                dom_event(
                    info,
                    id::TRAY_CHANGE,
                    procs::DOMAIN_EVENT_CALLBACK_TRAY_CHANGE,
                    &|w| {
                        dom.put(w);
                        alias.put(w);
                        reason.put(w);
                    },
                )
            }),
            Event::Graphics { uuid, graphics: g } => one(known(uuid), |info| {
                let dom = wire_now(&info);
                dom_event(
                    info,
                    id::GRAPHICS,
                    procs::DOMAIN_EVENT_CALLBACK_GRAPHICS,
                    &|w| {
                        dom.put(w);
                        (g.phase as i32).put(w);
                        for a in [&g.local, &g.remote] {
                            (a.family as i32).put(w);
                            a.node.put(w);
                            a.service.put(w);
                        }
                        g.auth_scheme.put(w);
                        (g.subject.len() as u32).put(w);
                        for (kind, name) in &g.subject {
                            kind.put(w);
                            name.put(w);
                        }
                    },
                )
            }),
            Event::Monitor { uuid, event: m } => one(known(uuid), |info| {
                let dom = wire_now(&info);
                let mut tail = Vec::new();
                dom.put(&mut tail);
                m.name.put(&mut tail);
                m.seconds.put(&mut tail);
                m.micros.put(&mut tail);
                m.details.put(&mut tail);
                Outgoing {
                    subject: Subject::Domain(info),
                    event: 0,
                    proc_: super::qemu::procs::DOMAIN_MONITOR_EVENT,
                    tail,
                    monitor: Some(m.name.clone()),
                }
            }),
            _ => Vec::new(),
        }
    }

    fn dispatch(&self, out: Vec<Outgoing>) {
        if out.is_empty() {
            return;
        }
        let out: Vec<Arc<Outgoing>> = out.into_iter().map(Arc::new).collect();
        let mut ls = lock(&self.listeners);
        ls.retain(|w| match w.upgrade() {
            Some(l) => out.iter().all(|o| l.queue.send(o.clone()).is_ok()),
            None => false,
        });
    }
}

/// Hand a network's lifecycle event to the listeners (`NETWORK_EVENT_LIFECYCLE`; autostart
/// changes have no event in libvirt).
fn network_event(hub: &Hub, ev: &NetEvent) {
    let code = ev.kind.libvirt_code();
    if code < 0 {
        return;
    }
    let mut tail = Vec::new();
    Net {
        name: ev.info.name.clone(),
        uuid: *ev.info.uuid.as_bytes(),
    }
    .put(&mut tail);
    code.put(&mut tail);
    // libvirt defines no lifecycle detail for networks
    0i32.put(&mut tail);
    hub.dispatch(vec![Outgoing {
        subject: Subject::Network {
            name: ev.info.name.clone(),
            uuid: ev.info.uuid,
        },
        event: 0,
        proc_: streamproto::procs::NETWORK_EVENT_LIFECYCLE,
        tail,
        monitor: None,
    }]);
}

/// Follow a network driver's events for `hub`.
pub async fn network_pump(hub: Arc<Hub>, mut events: broadcast::Receiver<NetEvent>) {
    loop {
        match events.recv().await {
            Ok(ev) => network_event(&hub, &ev),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!("{n} network event(s) were dropped before RPC clients got them");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// The packet `make` words for a domain known to the view, if it is.
fn one(
    info: Option<Arc<DomainInfo>>,
    make: impl FnOnce(Arc<DomainInfo>) -> Outgoing,
) -> Vec<Outgoing> {
    info.map(make).into_iter().collect()
}

fn wire_now(info: &DomainInfo) -> Dom {
    Dom {
        name: info.name.clone(),
        uuid: *info.uuid.as_bytes(),
        id: info.id.map_or(-1, |i| i as i32),
    }
}

/// Follow the core's events for `hub`, then tell `signalled` how far they went.
pub async fn pump(
    hub: Arc<Hub>,
    mut events: mpsc::UnboundedReceiver<(u64, Event)>,
    signalled: watch::Sender<u64>,
) {
    while let Some((seq, event)) = events.recv().await {
        let out = hub.translate(&event);
        hub.dispatch(out);
        signalled.send_replace(seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener() -> (Arc<Listener>, mpsc::Receiver<Vec<u8>>) {
        let (tx, rx) = mpsc::channel(4);
        let caller = Caller {
            sender: "rpc:test".into(),
            interactive: false,
            peer: crate::server::authz::Peer::Process {
                pid: 1,
                start_time: 0,
                uid: 0,
            },
        };
        let l = Listener::new(
            tx,
            caller,
            Arc::new(crate::server::authz::SessionOwner),
            Arc::new(Notify::new()),
        );
        (l, rx)
    }

    #[tokio::test]
    async fn callback_ids_and_bad_event_ids() {
        let (l, _rx) = listener();
        assert_eq!(l.register(Family::Domain, 0, None), Ok(1));
        assert_eq!(l.register(Family::Pool, 1, None), Ok(2));
        let e = l.register(Family::Domain, DOMAIN_EVENT_ID_LAST, None);
        assert_eq!(e.map_err(|e| e.code), Err(VIR_ERR_INTERNAL_ERROR));
        assert!(l.register(Family::Pool, -1, None).is_err());
        // the family must match
        assert!(l.deregister(Family::Domain, 2).is_err());
        assert_eq!(l.deregister(Family::Pool, 2), Ok(()));
        assert!(l.deregister(Family::Pool, 2).is_err());
    }
}
