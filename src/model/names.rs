//! Rules for domain and snapshot names.
//!
//! Names become file names (`<name>.xml`) and appear in logs and D-Bus
//! object paths, so they may not contain `/` or control characters.

use crate::model::error::XmlError;

/// Longest accepted name, in bytes (a common file name limit).
pub const MAX_NAME_BYTES: usize = 255;

/// What a name belongs to; decides the path reported in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Domain,
    Snapshot,
}

impl NameKind {
    fn path(self) -> &'static str {
        match self {
            NameKind::Domain => "/domain/name",
            NameKind::Snapshot => "/domainsnapshot/name",
        }
    }
}

/// Checks a name given outside a document (e.g. a rename request); the
/// error carries the path the name has in its document.
pub fn validate_name(kind: NameKind, name: &str) -> Result<(), XmlError> {
    check_name(name).map_err(|reason| XmlError::invalid(kind.path().to_string(), name, reason))
}

/// The rule itself, as a value converter for the strict reader.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name must not be empty".into());
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!("name is longer than {MAX_NAME_BYTES} bytes"));
    }
    if name.contains('/') {
        return Err("name must not contain '/'".into());
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!(
            "name must not contain control characters (U+{:04X})",
            u32::from(c)
        ));
    }
    if let Some(c) = name.chars().find(|c| matches!(c, '\u{FFFE}' | '\u{FFFF}')) {
        return Err(format!(
            "name must not contain U+{:04X}, which XML does not allow",
            u32::from(c)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted() {
        for n in ["a", "my vm", "ünïcode", "x.y-z_1", &"n".repeat(255)] {
            assert_eq!(validate_name(NameKind::Domain, n), Ok(()), "{n}");
        }
    }

    #[test]
    fn rejected_with_path() {
        for n in [
            "",
            "a/b",
            "a\u{1}b",
            "a\nb",
            "a\u{7f}",
            "a\u{85}b",
            "a\u{9f}",
            "\u{FFFE}",
            "a\u{FFFF}",
            &"n".repeat(256),
        ] {
            match validate_name(NameKind::Snapshot, n) {
                Err(XmlError::InvalidValue { path, .. }) => {
                    assert_eq!(path, "/domainsnapshot/name")
                }
                other => panic!("{n:?}: {other:?}"),
            }
        }
    }
}
