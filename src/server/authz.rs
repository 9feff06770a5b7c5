//! Authorization of bus calls: which action each call needs, the details rules can use, and
//! the decision-maker behind it (polkit on the system bus; nobody to ask on the session bus).

use async_trait::async_trait;

use crate::{
    core::{Core, DomainInfo, define, ops::Operation, storage_ops::StorageTarget},
    model::DomainDef,
};

pub use crate::core::ops::Action;

/// Why a caller may not do something: it is not allowed, or it would be after proving who
/// it is, which it did not allow to be asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("not authorized for {0}")]
    NotAuthorized(String),
    #[error("authentication is required for {0}; call again allowing interaction")]
    InteractionRequired(String),
}

/// What a rule can decide on, passed to polkit as details.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Details {
    pub driver: Option<String>,
    pub domain_name: Option<String>,
    pub domain_uuid: Option<String>,
    /// The domain's owner: `Some(None)` for a domain without one (root's).
    pub domain_owner: Option<Option<u32>>,
    pub snapshot_name: Option<String>,
    /// The storage pool a storage operation concerns.
    pub pool_name: Option<String>,
    /// The storage volume a storage operation concerns (the one it creates, for a creation).
    pub volume_name: Option<String>,
    /// The volume's owner: `Some(None)` for a volume without one (root's, or found in the
    /// pool's directory); for a creation, the caller unless root.
    pub volume_owner: Option<Option<u32>>,
    /// The virtual network a network operation is about.
    pub network_name: Option<String>,
}

impl Details {
    pub fn domain(info: &DomainInfo) -> Self {
        Self {
            driver: Some(info.driver.to_owned()),
            domain_name: Some(info.name.clone()),
            domain_uuid: Some(info.uuid.to_string()),
            domain_owner: Some(info.owner),
            snapshot_name: None,
            pool_name: None,
            volume_name: None,
            volume_owner: None,
            network_name: None,
        }
    }

    /// A storage operation on the pool `name`.
    pub fn pool(name: &str) -> Self {
        Self {
            pool_name: Some(name.to_owned()),
            ..Self::default()
        }
    }

    /// A storage operation's details: its pool, and its volume with the volume's owner.
    pub fn storage(t: &StorageTarget) -> Self {
        Self {
            pool_name: t.pool.clone(),
            volume_name: t.volume.clone(),
            volume_owner: t.volume.as_ref().map(|_| t.owner),
            ..Self::default()
        }
    }

    /// A network operation's details: the network's name (none for listings).
    pub fn network(name: Option<&str>) -> Self {
        Self {
            network_name: name.map(str::to_owned),
            ..Self::default()
        }
    }

    pub fn snapshot(info: &DomainInfo, name: &str) -> Self {
        Self {
            snapshot_name: Some(name.to_owned()),
            ..Self::domain(info)
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The unique bus name, or another key unique to the peer while it is connected
    /// (decisions are cached under it).
    pub sender: String,
    /// Whether the call allows interactive authorization.
    pub interactive: bool,
    /// Whom polkit is asked about.
    pub peer: Peer,
}

/// The subject of a check: a bus client, or a process connected to a socket of ours.
#[derive(Debug, Clone)]
pub enum Peer {
    /// The call itself, from which polkit's subject (the sender's bus name) is made.
    Bus(zbus::Message),
    /// A process, as `SO_PEERCRED` named it when it connected; its start time makes the
    /// pid safe against reuse.
    Process { pid: u32, start_time: u64, uid: u32 },
}

#[async_trait]
pub trait Authorizer: Send + Sync {
    /// `Ok` when `caller` may perform `action`; otherwise the error to reply.
    async fn check(&self, caller: &Caller, action: Action, details: &Details)
    -> Result<(), Denied>;

    /// The caller's uid when domains it defines should record it as their owner; `None` for
    /// root and where ownership means nothing (the session bus).
    async fn owner_uid(&self, caller: &Caller) -> Option<u32>;

    /// Whether every check passes, so that lists can skip asking per object.
    fn allows_everything(&self) -> bool {
        false
    }

    /// Drop what is remembered of `sender`, a peer that is gone (bus names are forgotten
    /// when they leave the bus; socket peers say so themselves).
    fn forget(&self, _sender: &str) {}
}

/// Everyone may do everything: the session bus, where the bus itself admits only its owner.
pub struct SessionOwner;

#[async_trait]
impl Authorizer for SessionOwner {
    async fn check(&self, _: &Caller, _: Action, _: &Details) -> Result<(), Denied> {
        Ok(())
    }

    async fn owner_uid(&self, _: &Caller) -> Option<u32> {
        None
    }

    fn allows_everything(&self) -> bool {
        true
    }
}

/// Authorize defining `def` (each of `actions`) with the details of the domain it creates
/// or replaces; returns who defines it, for ownership.
pub async fn authorize_definition(
    authz: &dyn Authorizer,
    core: &Core,
    caller: &Caller,
    def: &DomainDef,
    ops: &[Operation],
) -> Result<define::Caller, Denied> {
    let uid = authz.owner_uid(caller).await;
    let owner = match core.get(&def.uuid) {
        Some(existing) => existing.info().owner,
        None => uid,
    };
    let details = Details {
        driver: core.driver_name(def.domain_type).map(str::to_owned),
        domain_name: Some(def.name.clone()),
        domain_uuid: Some(def.uuid.to_string()),
        domain_owner: Some(owner),
        snapshot_name: None,
        pool_name: None,
        volume_name: None,
        volume_owner: None,
        network_name: None,
    };
    for op in ops {
        authz.check(caller, op.action(), &details).await?;
    }
    // arguments QEMU gets unchecked, and capabilities or device properties overridden, need
    // a permission of their own
    if def.qemu_commandline.is_some() || !def.qemu_tweaks.is_empty() {
        authz
            .check(caller, Operation::QemuPassthrough.action(), &details)
            .await?;
    }
    Ok(define::Caller { uid })
}
