//! libvirt's typed parameters as the procedures here receive them: which names a call
//! knows, of which type (`virTypedParamsValidate`).

use crate::{
    compat::{errors::Code, flags::Flag},
    rpc::{dispatch::Session, error::RpcResult, objproto::TypedParam},
};

/// `VIR_DOMAIN_AFFECT_LIVE`, `_CONFIG` and `VIR_TYPED_PARAM_STRING_OKAY`: the flags of
/// every typed-parameter get and set call.
pub(super) const LIVE: Flag = Flag {
    bit: 1,
    name: "VIR_DOMAIN_AFFECT_LIVE",
    option: "live",
};
pub(super) const CONFIG: Flag = Flag {
    bit: 2,
    name: "VIR_DOMAIN_AFFECT_CONFIG",
    option: "config",
};
pub(super) const STRING_OKAY: Flag = Flag {
    bit: 4,
    name: "VIR_TYPED_PARAM_STRING_OKAY",
    option: "string-okay",
};

/// A typed parameter's expected type.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Int,
    UInt,
    LLong,
    ULLong,
    Str,
    Boolean,
}

impl Kind {
    /// The type as libvirt's errors name it (as [`TypedValue::type_name`]).
    ///
    /// [`TypedValue::type_name`]: crate::rpc::objproto::TypedValue::type_name
    fn name(self) -> &'static str {
        match self {
            Self::Int => "int",
            Self::UInt => "uint",
            Self::LLong => "llong",
            Self::ULLong => "ullong",
            Self::Str => "string",
            Self::Boolean => "boolean",
        }
    }
}

/// `virTypedParamsValidate`: known names, each once, of its type; refused in libvirt's words.
pub(super) fn validate(s: &Session, list: &[TypedParam], known: &[(&str, Kind)]) -> RpcResult<()> {
    for (i, prm) in list.iter().enumerate() {
        let Some((_, kind)) = known.iter().find(|(n, _)| *n == prm.field) else {
            return Err(s.error(
                Code::ArgumentUnsupported,
                &format!("parameter '{}' not supported", prm.field),
            ));
        };
        if list[..i].iter().any(|o| o.field == prm.field) {
            return Err(s.error(
                Code::InvalidArg,
                &format!("parameter '{}' occurs multiple times", prm.field),
            ));
        }
        let (got, expected) = (prm.value.type_name(), kind.name());
        if got != expected {
            return Err(s.error(
                Code::InvalidArg,
                &format!(
                    "invalid type '{got}' for parameter '{}', expected '{expected}'",
                    prm.field
                ),
            ));
        }
    }
    Ok(())
}
