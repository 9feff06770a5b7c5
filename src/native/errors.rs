//! Errors as the bus sees them: the core's typed errors under `org.virtbus1.Error`, and the
//! standard D-Bus errors for calls that never reach the core.

use crate::{
    core,
    server::{authz::Denied, errors::StandardError, exec::ExecError},
};

pub const PREFIX: &str = "org.virtbus1.Error";

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error(transparent)]
    Core(#[from] core::Error),
    /// A standard error (`org.freedesktop.DBus.Error.*`), by its last name element.
    #[error("{1}")]
    Standard(&'static str, String),
    #[error("{0}")]
    Zbus(#[from] zbus::Error),
}

impl BusError {
    pub fn unknown_method(iface: &str, member: &str) -> Self {
        Self::Standard(
            "UnknownMethod",
            format!("no method '{member}' in interface '{iface}' on this object"),
        )
    }

    pub fn invalid_args(msg: String) -> Self {
        Self::Standard("InvalidArgs", msg)
    }

    /// The full D-Bus error name.
    pub fn name(&self) -> String {
        match self {
            Self::Core(e) => format!("{PREFIX}.{}", e.kind()),
            Self::Standard(n, _) => format!("org.freedesktop.DBus.Error.{n}"),
            Self::Zbus(_) => format!("{PREFIX}.Failed"),
        }
    }
}

impl From<StandardError> for BusError {
    fn from(e: StandardError) -> Self {
        Self::Standard(e.name, e.message)
    }
}

/// A refusal is the core's `AccessDenied`, or the standard error asking the caller to allow
/// interactive authorization.
impl From<Denied> for BusError {
    fn from(e: Denied) -> Self {
        match e {
            Denied::InteractionRequired(_) => {
                Self::Standard("InteractiveAuthorizationRequired", e.to_string())
            }
            Denied::NotAuthorized(_) => Self::Core(core::Error::AccessDenied(e.to_string())),
        }
    }
}

impl From<ExecError> for BusError {
    fn from(e: ExecError) -> Self {
        match e {
            ExecError::Denied(d) => d.into(),
            ExecError::Core(c) => c.into(),
        }
    }
}

impl From<core::error::OptionError> for BusError {
    fn from(e: core::error::OptionError) -> Self {
        Self::Core(e.into())
    }
}

pub type Reply<T> = Result<T, BusError>;
