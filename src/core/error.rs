//! The core's error: one kind per typed D-Bus error, with a message that names what is wrong.

use crate::model::XmlError;

/// What went wrong, by kind; front ends map each kind to one error name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidState(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    NotSupported(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Failed(String),
}

impl Error {
    /// The kind's short name, as the D-Bus error name's last element.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "NotFound",
            Self::InvalidArgument(_) => "InvalidArgument",
            Self::InvalidState(_) => "InvalidState",
            Self::AlreadyExists(_) => "AlreadyExists",
            Self::NotSupported(_) => "NotSupported",
            Self::AccessDenied(_) => "AccessDenied",
            Self::Timeout(_) => "Timeout",
            Self::Failed(_) => "Failed",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::NotFound(m)
            | Self::InvalidArgument(m)
            | Self::InvalidState(m)
            | Self::AlreadyExists(m)
            | Self::NotSupported(m)
            | Self::AccessDenied(m)
            | Self::Timeout(m)
            | Self::Failed(m) => m,
        }
    }
}

impl From<XmlError> for Error {
    fn from(e: XmlError) -> Self {
        Self::InvalidArgument(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
