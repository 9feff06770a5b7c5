//! Errors as libvirt.so receives them: a `virNetMessageError` with libvirt's code, the
//! domain (subsystem) that raised it, and its message. Errors of the operations come from
//! the libvirt-dbus facade's mapping, so both libvirt front ends word them alike.

use super::{proto::MessageError, xdr::XdrError};
use crate::{
    compat::{
        errors::{self, CompatError},
        flags::{Flavor, Method},
    },
    server::{authz::Denied, exec::ExecError},
};

/// `virErrorNumber` values raised here besides the facade's.
pub const VIR_ERR_INTERNAL_ERROR: i32 = 1;
pub const VIR_ERR_NO_SUPPORT: i32 = 3;
pub const VIR_ERR_NO_CONNECT: i32 = 5;
pub const VIR_ERR_OPERATION_DENIED: i32 = 29;
pub const VIR_ERR_RPC: i32 = 39;
pub const VIR_ERR_AUTH_FAILED: i32 = 45;
pub const VIR_ERR_ACCESS_DENIED: i32 = 88;

/// `virErrorDomain` values.
const VIR_FROM_RPC: i32 = 7;
const VIR_FROM_QEMU: i32 = 10;
const VIR_FROM_TEST: i32 = 12;
const VIR_FROM_LXC: i32 = 17;
const VIR_FROM_REMOTE: i32 = 13;
/// `VIR_ERR_ERROR`.
const LEVEL_ERROR: i32 = 2;

/// One error reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    pub code: i32,
    pub domain: i32,
    pub message: String,
}

pub type RpcResult<T> = Result<T, RpcError>;

impl RpcError {
    /// An error of the protocol itself (bad arguments, unknown program).
    pub fn rpc(message: String) -> Self {
        Self {
            code: VIR_ERR_RPC,
            domain: VIR_FROM_RPC,
            message,
        }
    }

    /// An error of the daemon's side of the remote driver.
    pub fn remote(code: i32, message: String) -> Self {
        Self {
            code,
            domain: VIR_FROM_REMOTE,
            message,
        }
    }

    /// A change (or a secret) asked of a read-only connection.
    pub fn read_only(what: &str) -> Self {
        Self::remote(
            VIR_ERR_OPERATION_DENIED,
            format!("operation forbidden: {what}"),
        )
    }

    /// The procedure is not implemented: clients degrade as against an older daemon.
    pub fn no_support(what: &str) -> Self {
        Self::remote(
            VIR_ERR_NO_SUPPORT,
            format!("this function is not supported by the connection driver: {what}"),
        )
    }

    /// A facade error, raised by the driver `flavor` names.
    pub fn from_compat(e: CompatError, flavor: Flavor) -> Self {
        let domain = match flavor {
            Flavor::Qemu => VIR_FROM_QEMU,
            Flavor::Test => VIR_FROM_TEST,
            Flavor::Lxc => VIR_FROM_LXC,
        };
        match e {
            CompatError::Libvirt { code, message } => Self {
                code: code.number(),
                domain,
                message,
            },
            CompatError::Standard(_, message) => Self {
                code: VIR_ERR_ACCESS_DENIED,
                domain,
                message: format!("access denied: {message}"),
            },
            CompatError::Zbus(e) => Self {
                code: VIR_ERR_INTERNAL_ERROR,
                domain,
                message: format!("internal error: {e}"),
            },
        }
    }

    /// A request of method `m` that did not go through.
    pub fn from_exec(e: ExecError, flavor: Flavor, m: &Method) -> Self {
        Self::from_compat(errors::from_exec(e, flavor, m), flavor)
    }

    pub fn from_core(e: crate::core::Error, flavor: Flavor, m: &Method) -> Self {
        Self::from_compat(errors::from_core(e, flavor, m), flavor)
    }

    pub fn denied(e: Denied, flavor: Flavor) -> Self {
        Self::from_compat(e.into(), flavor)
    }

    pub fn wire(&self) -> MessageError {
        MessageError {
            code: self.code,
            domain: self.domain,
            message: Some(self.message.clone()),
            level: LEVEL_ERROR,
            dom: None,
            str1: Some(self.message.clone()),
            str2: None,
            str3: None,
            int1: -1,
            int2: -1,
            net: None,
        }
    }
}

impl From<XdrError> for RpcError {
    fn from(e: XdrError) -> Self {
        Self::rpc(format!("Unable to decode message payload: {e}"))
    }
}
