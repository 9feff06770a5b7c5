//! Errors as libvirt-dbus clients see them: `org.libvirt.Error` carrying libvirt's message
//! (prefix by error code, libvirt's wording where it has one), and the standard D-Bus errors
//! GDBus itself answers with for calls that never reach libvirt.

use super::flags::{Flavor, Method};
use crate::{
    core::{
        self,
        error::{Missing, OptionError, StateConflict},
        ops::Operation,
    },
    server::{authz::Denied, errors::StandardError, exec::ExecError},
};

pub const LIBVIRT_ERROR: &str = "org.libvirt.Error";

#[derive(Debug, thiserror::Error)]
pub enum CompatError {
    /// `org.libvirt.Error`, with libvirt's message; the code is what libvirt's own error
    /// carries (the RPC front end sends it).
    #[error("{message}")]
    Libvirt { code: Code, message: String },
    /// A standard error (`org.freedesktop.DBus.Error.*`), by its last name element.
    #[error("{1}")]
    Standard(&'static str, String),
    #[error("{0}")]
    Zbus(#[from] zbus::Error),
}

pub type Reply<T> = Result<T, CompatError>;

/// libvirt's error codes the facade reports, each with the prefix libvirt gives its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Internal,
    NoSupport,
    InvalidArg,
    ArgumentUnsupported,
    ConfigUnsupported,
    OperationFailed,
    OperationInvalid,
    OperationUnsupported,
    OperationTimeout,
    AccessDenied,
    NoDomain,
    NoDomainSnapshot,
    NoDomainCheckpoint,
    NoDomainMetadata,
    NoDomainBackup,
    NoNetwork,
    NoStoragePool,
    NoStorageVol,
    NoInterface,
    NoNodeDevice,
    NoSecret,
    NoNwfilter,
    NoHostname,
    XmlError,
    /// A system call failed: libvirt gives the message alone.
    SystemError,
    /// `VIR_ERR_OVERFLOW`.
    Overflow,
}

impl Code {
    /// libvirt's number for the code (`virErrorNumber`).
    pub fn number(self) -> i32 {
        match self {
            Self::Internal => 1,
            Self::NoSupport => 3,
            Self::InvalidArg => 8,
            Self::OperationFailed => 9,
            Self::NoDomain => 42,
            Self::NoNetwork => 43,
            Self::NoStoragePool => 49,
            Self::NoStorageVol => 50,
            Self::NoNodeDevice => 53,
            Self::OperationInvalid => 55,
            Self::NoInterface => 57,
            Self::NoNwfilter => 62,
            Self::NoSecret => 66,
            Self::ConfigUnsupported => 67,
            Self::OperationTimeout => 68,
            Self::NoDomainSnapshot => 72,
            Self::NoDomainCheckpoint => 103,
            Self::ArgumentUnsupported => 74,
            Self::NoDomainMetadata => 80,
            Self::NoDomainBackup => 104,
            Self::OperationUnsupported => 84,
            Self::AccessDenied => 88,
            Self::NoHostname => 108,
            Self::XmlError => 27,
            Self::SystemError => 38,
            Self::Overflow => 70,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Self::Internal => "internal error",
            Self::NoSupport => "this function is not supported by the connection driver",
            Self::InvalidArg => "invalid argument",
            Self::ArgumentUnsupported => "argument unsupported",
            Self::ConfigUnsupported => "unsupported configuration",
            Self::OperationFailed => "operation failed",
            Self::OperationInvalid => "Requested operation is not valid",
            Self::OperationUnsupported => "Operation not supported",
            Self::OperationTimeout => "Timed out during operation",
            Self::AccessDenied => "access denied",
            Self::NoDomain => "Domain not found",
            Self::NoDomainSnapshot => "Domain snapshot not found",
            Self::NoDomainCheckpoint => "Domain checkpoint not found",
            Self::NoDomainMetadata => "metadata not found",
            Self::NoDomainBackup => "Domain backup job id not found",
            Self::NoNetwork => "Network not found",
            Self::NoStoragePool => "Storage pool not found",
            Self::NoStorageVol => "Storage volume not found",
            Self::NoInterface => "Interface not found",
            Self::NoNodeDevice => "Node device not found",
            Self::NoSecret => "Secret not found",
            Self::NoNwfilter => "Network filter not found",
            Self::NoHostname => "no hostname found",
            Self::XmlError => "XML error",
            Self::SystemError => "system call error",
            Self::Overflow => "value too large",
        }
    }
}

/// A libvirt error with `code` and detail `msg` (`None`: the code's message alone).
pub fn libvirt(code: Code, msg: Option<&str>) -> CompatError {
    CompatError::Libvirt {
        code,
        message: match msg {
            Some(m) if code == Code::SystemError => m.to_owned(),
            Some(m) => format!("{}: {m}", code.prefix()),
            None => code.prefix().to_owned(),
        },
    }
}

/// A message libvirt reports without a code prefix (argument checks, which libvirt raises
/// as `VIR_ERR_INVALID_ARG`).
pub fn bare(msg: String) -> CompatError {
    CompatError::Libvirt {
        code: Code::InvalidArg,
        message: msg,
    }
}

/// The connection driver lacks `api`.
pub fn no_support(api: &str) -> CompatError {
    libvirt(Code::NoSupport, Some(api))
}

impl CompatError {
    /// GDBus's answer to a method an interface does not have (what libvirt-dbus sends).
    pub fn unknown_method(member: &str) -> Self {
        Self::Standard("UnknownMethod", format!("No such method “{member}”"))
    }

    /// The D-Bus error name.
    pub fn name(&self) -> String {
        match self {
            Self::Libvirt { .. } | Self::Zbus(_) => LIBVIRT_ERROR.to_owned(),
            Self::Standard(n, _) => format!("org.freedesktop.DBus.Error.{n}"),
        }
    }

    pub fn invalid_args(msg: String) -> Self {
        Self::Standard("InvalidArgs", msg)
    }
}

/// libvirt's wording for a domain in the wrong state.
fn state_conflict(c: &StateConflict, flavor: Flavor) -> CompatError {
    let active = c.state.is_active();
    let name = &c.domain;
    match (flavor, c.op, active) {
        (Flavor::Test, Operation::Start, true) => libvirt(
            Code::Internal,
            Some(&format!("Domain '{name}' is already running")),
        ),
        (Flavor::Test, Operation::Suspend | Operation::Shutdown, _) => libvirt(
            Code::Internal,
            Some(&format!("domain '{name}' not running")),
        ),
        (Flavor::Test, Operation::Resume, _) => {
            libvirt(Code::Internal, Some(&format!("domain '{name}' not paused")))
        }
        (_, Operation::Start, true) => {
            libvirt(Code::OperationInvalid, Some("domain is already running"))
        }
        (_, Operation::Resume, true) => {
            libvirt(Code::OperationInvalid, Some("domain is not paused"))
        }
        (_, Operation::Suspend, true) => {
            libvirt(Code::OperationInvalid, Some("domain is already paused"))
        }
        (_, _, false) if c.needs_active => {
            libvirt(Code::OperationInvalid, Some("domain is not running"))
        }
        _ => libvirt(Code::OperationInvalid, Some(&c.to_string())),
    }
}

/// libvirt's wording for options that conflict: the flags of `m` behind the option names.
fn option_error(e: &OptionError, m: &Method) -> CompatError {
    let flag = |opt: &str| m.flags.iter().find(|f| f.option == opt).map(|f| f.name);
    match e {
        OptionError::Exclusive(a, b) => match (flag(a), flag(b)) {
            (Some(a), Some(b)) => bare(format!("Flags '{a}' and '{b}' are mutually exclusive")),
            _ => libvirt(Code::InvalidArg, Some(&e.to_string())),
        },
        OptionError::Requires(a, b, _) => match (flag(a), flag(b)) {
            (Some(a), Some(b)) => bare(format!("Flag '{b}' is required by flag '{a}'")),
            _ => libvirt(Code::InvalidArg, Some(&e.to_string())),
        },
    }
}

/// libvirt's error for a snapshot name that names none.
pub fn no_snapshot(name: &str) -> CompatError {
    libvirt(
        Code::NoDomainSnapshot,
        Some(&format!("no domain snapshot with matching name '{name}'")),
    )
}

/// The libvirt error for a core error raised by method `m`: a total function over the
/// core's structured errors.
pub fn from_core(e: core::Error, flavor: Flavor, m: &Method) -> CompatError {
    use core::Error as E;
    match e {
        E::NotFound(Missing::Domain | Missing::Object, msg) => libvirt(Code::NoDomain, Some(&msg)),
        E::NotFound(Missing::Snapshot(name), _) => no_snapshot(&name),
        E::NotFound(Missing::Checkpoint(name), _) => libvirt(
            Code::NoDomainCheckpoint,
            Some(&format!("no domain checkpoint with matching name '{name}'")),
        ),
        E::NotFound(Missing::Interface, msg) => libvirt(Code::NoInterface, Some(&msg)),
        E::NotFound(Missing::NodeDevice, msg) => libvirt(Code::NoNodeDevice, Some(&msg)),
        E::NotFound(Missing::Backup, msg) => libvirt(Code::NoDomainBackup, Some(&msg)),
        E::NotFound(Missing::Metadata, _) => libvirt(
            Code::NoDomainMetadata,
            Some("Requested metadata element is not present"),
        ),
        E::InvalidArgument(msg) => libvirt(Code::InvalidArg, Some(&msg)),
        E::InvalidState(msg) => libvirt(Code::OperationInvalid, Some(&msg)),
        E::WrongState(c) => state_conflict(&c, flavor),
        E::Options(o) => option_error(&o, m),
        E::AlreadyExists(msg) => libvirt(Code::OperationFailed, Some(&msg)),
        E::Unimplemented(_) => no_support(m.api),
        E::NotSupported(msg) => libvirt(Code::OperationUnsupported, Some(&msg)),
        E::ConfigUnsupported(msg) => libvirt(Code::ConfigUnsupported, Some(&msg)),
        E::AccessDenied(msg) => libvirt(Code::AccessDenied, Some(&msg)),
        E::Timeout(msg) => libvirt(Code::OperationTimeout, Some(&msg)),
        E::Failed(msg) => libvirt(Code::Internal, Some(&msg)),
        E::ArgumentUnsupported(msg) => libvirt(Code::ArgumentUnsupported, Some(&msg)),
        E::System(msg) => libvirt(Code::SystemError, Some(&msg)),
    }
}

/// The libvirt error for a request of method `m` that did not go through.
pub fn from_exec(e: ExecError, flavor: Flavor, m: &Method) -> CompatError {
    match e {
        ExecError::Denied(d) => d.into(),
        ExecError::Core(c) => from_core(c, flavor, m),
    }
}

/// An authorization refusal: libvirt's access-denied error, or the standard error asking
/// the caller to allow interactive authorization.
impl From<Denied> for CompatError {
    fn from(e: Denied) -> Self {
        match e {
            Denied::NotAuthorized(_) => libvirt(Code::AccessDenied, Some(&e.to_string())),
            Denied::InteractionRequired(_) => {
                Self::Standard("InteractiveAuthorizationRequired", e.to_string())
            }
        }
    }
}

impl From<StandardError> for CompatError {
    fn from(e: StandardError) -> Self {
        Self::Standard(e.name, e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{compat::flags::Flag, model::state::DomainState};

    const M: Method = Method {
        api: "virDomainManagedSave",
        driver_fn: "DomainManagedSave",
        flags: &[
            Flag {
                bit: 2,
                name: "VIR_DOMAIN_SAVE_RUNNING",
                option: "running",
            },
            Flag {
                bit: 4,
                name: "VIR_DOMAIN_SAVE_PAUSED",
                option: "paused",
            },
        ],
    };

    fn msg(e: CompatError) -> String {
        e.to_string()
    }

    #[test]
    fn libvirt_wording() {
        let e = core::Error::Options(OptionError::Exclusive("running", "paused"));
        assert_eq!(
            msg(from_core(e, Flavor::Qemu, &M)),
            "Flags 'VIR_DOMAIN_SAVE_RUNNING' and 'VIR_DOMAIN_SAVE_PAUSED' are mutually exclusive"
        );
        let off = StateConflict {
            domain: "d".into(),
            op: Operation::ManagedSave,
            state: DomainState::ShutOff,
            needs_active: true,
        };
        assert_eq!(
            msg(from_core(core::Error::WrongState(off), Flavor::Qemu, &M)),
            "Requested operation is not valid: domain is not running"
        );
        let running = StateConflict {
            domain: "d".into(),
            op: Operation::Start,
            state: DomainState::Running,
            needs_active: false,
        };
        assert_eq!(
            msg(from_core(
                core::Error::WrongState(running.clone()),
                Flavor::Test,
                &M
            )),
            "internal error: Domain 'd' is already running"
        );
        assert_eq!(
            msg(from_core(
                core::Error::WrongState(running),
                Flavor::Qemu,
                &M
            )),
            "Requested operation is not valid: domain is already running"
        );
        assert_eq!(
            msg(from_core(
                core::Error::Unimplemented("x".into()),
                Flavor::Qemu,
                &M
            )),
            "this function is not supported by the connection driver: virDomainManagedSave"
        );
        assert_eq!(libvirt(Code::NoDomain, None).name(), "org.libvirt.Error");
    }
}
