//! The error type of virtual networks.

use crate::model::XmlError;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The document is not a valid network definition; names the element/attribute.
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// A value another network already uses (a bridge name, an overlapping subnet).
    #[error("{path}: '{value}' conflicts with network '{other}': {reason}")]
    Conflict {
        path: String,
        value: String,
        other: String,
        reason: &'static str,
    },
    /// The bridge name is an interface of the host that is not this network's.
    #[error("/network/bridge/@name: '{0}' is an existing host interface")]
    HostLinkExists(String),
    /// forward mode='bridge' names a host bridge that does not exist.
    #[error("/network/bridge/@name: host bridge '{0}' does not exist")]
    NoHostBridge(String),
    #[error("no network named '{0}'")]
    NotFound(String),
    /// The name is another network's (libvirt's wording, as both its drivers say it).
    #[error("network '{name}' already exists with uuid {uuid}")]
    NameTaken { name: String, uuid: uuid::Uuid },
    /// The UUID is network `name`'s.
    #[error("network '{name}' is already defined with uuid {uuid}")]
    UuidTaken { name: String, uuid: uuid::Uuid },
    /// A transient definition for a network that runs already.
    #[error("network is already active as '{0}'")]
    ActiveAs(String),
    #[error("network '{0}' is not active")]
    NotActive(String),
    #[error("network '{0}' is already active")]
    AlreadyActive(String),
    /// libvirt's test driver undefines stopped networks only.
    #[error("network '{0}' is still running")]
    StillActive(String),
    #[error("network '{0}' is transient; it cannot be given autostart or be undefined")]
    Transient(String),
    #[error("{0} is not supported")]
    NotSupported(String),
    /// Starting or stopping failed at `step` (netlink, nft, dnsmasq, …).
    #[error("network '{name}': {step} failed: {detail}")]
    Runtime {
        name: String,
        step: &'static str,
        detail: String,
    },
    #[error("network state: {0}")]
    Store(String),
}

pub type Result<T> = std::result::Result<T, NetError>;
