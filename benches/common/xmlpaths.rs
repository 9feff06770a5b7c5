//! What the corpus benches compare and how they group refusals: the element and attribute
//! paths of a document, and the element a refusal names.

use std::collections::BTreeSet;

/// Every element and attribute path of a document, by local name, without indices.
pub fn paths(doc: &roxmltree::Document) -> BTreeSet<String> {
    fn walk(n: roxmltree::Node, base: &str, out: &mut BTreeSet<String>) {
        let here = format!("{base}/{}", n.tag_name().name());
        for a in n.attributes() {
            out.insert(format!("{here}/@{}", a.name()));
        }
        for c in n.children().filter(|c| c.is_element()) {
            walk(c, &here, out);
        }
        out.insert(here);
    }
    let mut out = BTreeSet::new();
    walk(doc.root_element(), "", &mut out);
    out
}

/// The element a refusal names: the path of an unknown element or attribute, or the first
/// `<element` of a NotSupported/InvalidArgument message.
pub fn refusal_key(msg: &str) -> String {
    let body = msg.split_once(": ").map(|(_, b)| b).unwrap_or(msg);
    if let Some(i) = body.find("/domain") {
        let path: String = body[i..]
            .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
            .next()
            .unwrap_or("")
            .to_owned();
        let mut clean = String::new();
        let mut depth = 0;
        for ch in path.chars() {
            match ch {
                '[' => depth += 1,
                ']' => depth -= 1,
                c if depth == 0 => clean.push(c),
                _ => {}
            }
        }
        return clean;
    }
    if let Some(i) = body.find('<') {
        let tag: String = body[i + 1..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '-' || *c == ':' || *c == '_')
            .collect();
        if !tag.is_empty() {
            return format!("<{tag}>");
        }
    }
    body.chars().take(70).collect()
}

pub fn zerr(e: zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, Some(msg), _) => format!("{name}: {msg}"),
        e => e.to_string(),
    }
}
