//! systemd-style escaping of names into object-path elements and file names.
//!
//! Every byte that is not an ASCII letter or digit becomes `_` followed by two lower-case hex
//! digits (so `_` itself becomes `_5f`); the empty string becomes `_`. The result is a valid
//! D-Bus object path element and a valid file name, and decoding gives back the exact name.

pub fn escape(name: &str) -> String {
    if name.is_empty() {
        return "_".to_owned();
    }
    let mut out = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            out.push('_');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The inverse of [`escape`]; `None` for text that [`escape`] cannot have produced.
pub fn unescape(s: &str) -> Option<String> {
    if s == "_" {
        return Some(String::new());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'_' {
            let hex = s.get(i + 1..i + 3)?;
            if hex.bytes().any(|c| c.is_ascii_uppercase()) {
                return None;
            }
            let v = u8::from_str_radix(hex, 16).ok()?;
            if v.is_ascii_alphanumeric() {
                return None;
            }
            out.push(v);
            i += 3;
        } else if b.is_ascii_alphanumeric() {
            out.push(b);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples() {
        assert_eq!(escape("abc123"), "abc123");
        assert_eq!(escape("a-b_c"), "a_2db_5fc");
        assert_eq!(escape(""), "_");
        assert_eq!(escape("é"), "_c3_a9");
        assert_eq!(
            escape("6695eb01-f6a4-8304-79aa-97f2502e193f"),
            "6695eb01_2df6a4_2d8304_2d79aa_2d97f2502e193f"
        );
    }

    #[test]
    fn round_trip() {
        for s in [
            "",
            "x",
            "snap 1",
            "a/b",
            "_",
            "__",
            "ü-ß",
            "tab\there",
            "9lives",
        ] {
            assert_eq!(unescape(&escape(s)).as_deref(), Some(s), "{s:?}");
        }
    }

    #[test]
    fn rejects_what_escape_never_makes() {
        for s in ["a-b", "_2", "_zz", "_41", "_2D", "a b"] {
            assert_eq!(unescape(s), None, "{s:?}");
        }
    }
}
