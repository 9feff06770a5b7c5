//! Errors the plumbing raises before a call reaches the core: the standard D-Bus errors, by
//! the last element of their name. Each front end wraps them in its own error type.

/// A standard error (`org.freedesktop.DBus.Error.*`), by its last name element.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StandardError {
    pub name: &'static str,
    pub message: String,
}

impl StandardError {
    pub fn new(name: &'static str, message: String) -> Self {
        Self { name, message }
    }

    pub fn invalid_args(message: String) -> Self {
        Self::new("InvalidArgs", message)
    }

    pub fn unknown_method(iface: &str, member: &str) -> Self {
        Self::new(
            "UnknownMethod",
            format!("no method '{member}' in interface '{iface}' on this object"),
        )
    }

    /// The full D-Bus error name.
    pub fn full_name(&self) -> String {
        format!("org.freedesktop.DBus.Error.{}", self.name)
    }
}
