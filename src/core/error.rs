//! The core's error: one kind per typed D-Bus error, with a message that names what is wrong.
//!
//! Two kinds carry structure besides their message, so that a front end speaking another
//! vocabulary (the libvirt facade) can phrase them its own way without repeating the rule that
//! raised them: a domain in the wrong state for an operation, and options that conflict.

use super::ops::Operation;
use crate::{
    drivers::DriverError,
    model::{XmlError, state::DomainState},
};

/// What went wrong, by kind; front ends map each kind to one error name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Something that does not exist, and what kind of thing it is.
    #[error("{1}")]
    NotFound(Missing, String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidState(String),
    /// An operation that needs another state of the domain (a kind of `InvalidState`).
    #[error("{0}")]
    WrongState(StateConflict),
    /// Options that make no sense together (a kind of `InvalidArgument`).
    #[error("{0}")]
    Options(OptionError),
    #[error("{0}")]
    AlreadyExists(String),
    /// A configuration or request this driver or the core refuses.
    #[error("{0}")]
    NotSupported(String),
    /// A configuration libvirt calls unsupported (`VIR_ERR_CONFIG_UNSUPPORTED`: a disk the
    /// request names that cannot take part), a kind of `NotSupported`.
    #[error("{0}")]
    ConfigUnsupported(String),
    /// An operation the domain's driver does not implement at all (a kind of
    /// `NotSupported`).
    #[error("{0}")]
    Unimplemented(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Failed(String),
    /// A value the host cannot serve (a kind of `NotSupported`).
    #[error("{0}")]
    ArgumentUnsupported(String),
    /// A system call failed (a kind of `Failed`), with the reason.
    #[error("{0}")]
    System(String),
}

/// What kind of thing was not found, so that each front end names it its own way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    Domain,
    /// A snapshot, by name.
    Snapshot(String),
    /// A checkpoint, by name.
    Checkpoint(String),
    /// A metadata element, title or description.
    Metadata,
    /// Any other object a front end addresses (a path that names nothing).
    Object,
    /// A host network interface, by name or MAC address.
    Interface,
    /// A host node device, by name.
    NodeDevice,
    /// A domain's backup job.
    Backup,
}

/// A domain in a state where an operation cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateConflict {
    pub domain: String,
    pub op: Operation,
    pub state: DomainState,
    /// Whether the operation (or the definition it was asked to change) needs an active
    /// domain, rather than an inactive one.
    pub needs_active: bool,
}

impl std::fmt::Display for StateConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let why = match self.state {
            DomainState::ShutOff | DomainState::Crashed | DomainState::NoState => {
                "is not running".to_owned()
            }
            DomainState::Paused => "is paused".to_owned(),
            DomainState::Running => "is already running".to_owned(),
            s => format!("is in state '{s}'"),
        };
        write!(
            f,
            "cannot {} domain '{}': it {why}",
            self.op.verb(),
            self.domain
        )
    }
}

pub use crate::model::options::OptionError;

impl Error {
    /// The kind's short name, as the D-Bus error name's last element.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotFound(..) => "NotFound",
            Self::InvalidArgument(_) | Self::Options(_) => "InvalidArgument",
            Self::InvalidState(_) | Self::WrongState(_) => "InvalidState",
            Self::AlreadyExists(_) => "AlreadyExists",
            Self::NotSupported(_)
            | Self::ConfigUnsupported(_)
            | Self::Unimplemented(_)
            | Self::ArgumentUnsupported(_) => "NotSupported",
            Self::AccessDenied(_) => "AccessDenied",
            Self::Timeout(_) => "Timeout",
            Self::Failed(_) | Self::System(_) => "Failed",
        }
    }
}

impl From<XmlError> for Error {
    fn from(e: XmlError) -> Self {
        Self::InvalidArgument(e.to_string())
    }
}

impl From<super::store::StoreError> for Error {
    /// Something over the size limit is the caller's to fix; any other storage failure is
    /// the host's.
    fn from(e: super::store::StoreError) -> Self {
        match e {
            super::store::StoreError::TooLarge { .. } => Self::InvalidArgument(e.to_string()),
            other => Self::Failed(other.to_string()),
        }
    }
}

impl From<OptionError> for Error {
    fn from(e: OptionError) -> Self {
        Self::Options(e)
    }
}

impl From<DriverError> for Error {
    fn from(e: DriverError) -> Self {
        use Error as E;
        match e {
            DriverError::InvalidArgument(m) => E::InvalidArgument(m),
            DriverError::InvalidState(m) => E::InvalidState(m),
            DriverError::NotSupported(m) => E::NotSupported(m),
            DriverError::Unimplemented(m) => E::Unimplemented(m),
            DriverError::Timeout(m) => E::Timeout(m),
            DriverError::Failed(m) => E::Failed(m),
            DriverError::ArgumentUnsupported(m) => E::ArgumentUnsupported(m),
            DriverError::System(m) => E::System(m),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_errors_read_as_before() {
        let e = Error::WrongState(StateConflict {
            domain: "web".into(),
            op: Operation::Suspend,
            state: DomainState::ShutOff,
            needs_active: true,
        });
        assert_eq!(
            e.to_string(),
            "cannot suspend domain 'web': it is not running"
        );
        assert_eq!(e.kind(), "InvalidState");
        let e: Error = OptionError::Exclusive("running", "paused").into();
        assert_eq!(
            e.to_string(),
            "options 'running' and 'paused' are mutually exclusive"
        );
        assert_eq!(e.kind(), "InvalidArgument");
    }
}
