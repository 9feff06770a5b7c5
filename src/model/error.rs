//! The single error type of the model.
//!
//! Every variant that concerns a place in the document carries the XML path
//! of that place (see the module docs of `crate::model` for the syntax), so
//! a D-Bus caller can be told exactly what to fix.

/// Longest value echoed back in [`XmlError::InvalidValue`]; user input may be
/// huge and error messages end up in logs and D-Bus replies.
const MAX_ECHO: usize = 256;

/// Why a document could not be turned into a model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// Not well-formed XML (or it uses a DTD); the message carries line:column.
    #[error("malformed XML: {0}")]
    Malformed(String),
    /// Rejected before parsing to bound memory and CPU spent on one request.
    #[error("XML document is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// Elements nested deeper than the limit, refused so that no walk over the
    /// document can exhaust the stack.
    #[error("XML nests element <{element}> deeper than the limit of {limit} levels")]
    TooDeep { element: String, limit: usize },
    #[error("expected root element <{expected}>, found <{found}>")]
    WrongRoot {
        expected: &'static str,
        found: String,
    },
    #[error("unknown element {path}")]
    UnknownElement { path: String },
    #[error("unknown attribute {path}")]
    UnknownAttribute { path: String },
    #[error("unexpected text content in {path}")]
    UnexpectedText { path: String },
    #[error("missing {path}")]
    Missing { path: String },
    #[error("duplicate {path}")]
    Duplicate { path: String },
    #[error("invalid value '{value}' for {path}: {reason}")]
    InvalidValue {
        path: String,
        value: String,
        reason: String,
    },
}

impl XmlError {
    /// The offending XML path, when the error concerns one place.
    pub fn path(&self) -> Option<&str> {
        match self {
            XmlError::Malformed(_)
            | XmlError::TooLarge { .. }
            | XmlError::TooDeep { .. }
            | XmlError::WrongRoot { .. } => None,
            XmlError::UnknownElement { path }
            | XmlError::UnknownAttribute { path }
            | XmlError::UnexpectedText { path }
            | XmlError::Missing { path }
            | XmlError::Duplicate { path }
            | XmlError::InvalidValue { path, .. } => Some(path),
        }
    }

    /// Builds `InvalidValue`, truncating the echoed value so that a hostile
    /// document cannot blow up log lines.
    pub(crate) fn invalid(path: String, value: &str, reason: impl Into<String>) -> XmlError {
        let mut end = value.len().min(MAX_ECHO);
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        let mut shown = value[..end].to_string();
        if end < value.len() {
            shown.push('…');
        }
        XmlError::InvalidValue {
            path,
            value: shown,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_accessor() {
        let e = XmlError::Missing {
            path: "/domain/name".into(),
        };
        assert_eq!(e.path(), Some("/domain/name"));
        assert_eq!(XmlError::Malformed("x".into()).path(), None);
    }

    #[test]
    fn long_values_are_truncated() {
        let long = "é".repeat(1000);
        match XmlError::invalid("/p".into(), &long, "bad") {
            XmlError::InvalidValue { value, .. } => {
                assert!(value.len() <= MAX_ECHO + 3);
                assert!(value.ends_with('…'));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn messages_are_readable() {
        let e = XmlError::invalid("/domain/memory".into(), "0", "must be positive");
        assert_eq!(
            e.to_string(),
            "invalid value '0' for /domain/memory: must be positive"
        );
    }
}
