//! XML escaping, written once for every writer (definitions, records, capabilities, metadata).
//!
//! CR is always a character reference because parsers turn a literal CR into LF; in attribute
//! values, tabs and newlines are references too because parsers normalise them to spaces.

/// Append `s` escaped as element text.
pub fn push_text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

/// Append `s` escaped as an attribute value (either quote style).
pub fn push_attr(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
}

/// `s` escaped as element text.
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_text(&mut out, s);
    out
}

/// `s` escaped as an attribute value.
pub fn attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_attr(&mut out, s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_a_parser() {
        let nasty = "a&b<c>d'e\"f\ng\rh\ti";
        let doc = format!(
            "<x a='{}' b=\"{}\">{}</x>",
            attr(nasty),
            attr(nasty),
            text(nasty)
        );
        let parsed = roxmltree::Document::parse(&doc).expect("valid XML");
        let root = parsed.root_element();
        assert_eq!(root.attribute("a"), Some(nasty));
        assert_eq!(root.attribute("b"), Some(nasty));
        assert_eq!(root.text(), Some(nasty));
    }
}
