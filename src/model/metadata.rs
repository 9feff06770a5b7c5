//! Verbatim `<metadata>` (and snapshot `<cookie>`) content.
//!
//! Applications keep their own data in metadata, so it is stored as the
//! exact source text between the start and end tags and written back
//! unchanged. Edits (the owner element) splice source text instead of
//! re-serialising, so everything else stays byte-identical.

use std::ops::Range;

use roxmltree::{Document, Node, ParsingOptions};

use crate::model::error::XmlError;
use crate::model::xml::{Edge, Elem, check_char_refs, check_metadata_depth, node_path, walk};

/// Namespace of virtbus' own metadata.
pub const VIRTBUS_NS: &str = "https://virtbus.org/xmlns/virtbus/1";
/// Prefix used when virtbus writes its metadata.
pub const VIRTBUS_PREFIX: &str = "virtbus";

/// Wrapper used to parse a metadata fragment; its length is subtracted from
/// node ranges to get offsets into the fragment.
const WRAP_OPEN: &str = "<m>";
const WRAP_CLOSE: &str = "</m>";

/// Source text between an element's start and end tags ("" when empty).
pub(crate) fn inner_source(node: Node) -> String {
    let src = slice(node.document().input_text(), node.range());
    let start = src.find('>').map_or(src.len(), |i| i + 1);
    let end = src.rfind("</").unwrap_or(src.len());
    src.get(start..end).unwrap_or("").to_string()
}

/// Reads `<metadata>`: every top-level child must be a namespaced element
/// (libvirt's rule, so applications cannot collide); nothing inside is
/// interpreted.
pub(crate) fn read_metadata(mut e: Elem) -> Result<String, XmlError> {
    for c in e.node().children() {
        if c.is_element() && c.tag_name().namespace().is_none() {
            return Err(XmlError::UnknownElement { path: node_path(c) });
        }
        if c.is_text() && !c.text().unwrap_or("").trim().is_empty() {
            return Err(XmlError::UnexpectedText { path: e.path() });
        }
    }
    check_metadata_depth(e.node())?;
    e.take_all_content();
    let inner = inner_source_in_scope(e.node());
    e.finish()?;
    Ok(inner)
}

/// The source between an element's tags, with the namespace declarations its top-level
/// children use from outside it (on `<domain>`, say, or the element itself) copied onto each
/// child, so the verbatim text parses alone with the same meaning.
fn inner_source_in_scope(node: Node) -> String {
    let scope: Vec<(&str, &str)> = node
        .namespaces()
        .filter_map(|ns| Some((ns.name()?, ns.uri())))
        .filter(|(p, _)| *p != "xml")
        .collect();
    if scope.is_empty() {
        return inner_source(node);
    }
    let text = node.document().input_text();
    let mut out = String::new();
    for c in node.children() {
        let src = slice(text, c.range());
        if !c.is_element() {
            out.push_str(src);
            continue;
        }
        // the qualified name ends at the first blank, '/' or '>'
        let name_end = src
            .find(|ch: char| ch.is_whitespace() || ch == '/' || ch == '>')
            .unwrap_or(src.len());
        let tag_end = src.find('>').unwrap_or(src.len());
        let start_tag = &src[..tag_end];
        out.push_str(&src[..name_end]);
        for (prefix, uri) in &scope {
            let declared_here = start_tag
                .split_whitespace()
                .any(|a| a.starts_with(&format!("xmlns:{prefix}=")));
            // only the prefixes the child's names use (an element's or an attribute's)
            let used = src.contains(&format!("<{prefix}:"))
                || src.contains(&format!("</{prefix}:"))
                || src
                    .split_whitespace()
                    .any(|w| w.starts_with(&format!("{prefix}:")));
            if used && !declared_here {
                out.push_str(&format!(
                    " xmlns:{prefix}=\"{}\"",
                    crate::util::xml::attr(uri)
                ));
            }
        }
        out.push_str(&src[name_end..]);
    }
    out
}

/// Reads an element whose content is kept verbatim without any rule about
/// it (the snapshot `<cookie>`, owned by the hypervisor driver).
pub(crate) fn read_verbatim(mut e: Elem) -> Result<String, XmlError> {
    check_metadata_depth(e.node())?;
    e.take_all_content();
    let inner = inner_source(e.node());
    e.finish()?;
    Ok(inner)
}

/// Parse metadata text: no DTD, as the domain XML itself, and content nested no deeper than
/// the model reads (below the `<m>` wrapper when `wrapped`).
fn parse_fragment(xml: &str, wrapped: bool) -> Result<Document<'_>, XmlError> {
    check_char_refs(xml)?;
    let opts = ParsingOptions {
        allow_dtd: false,
        ..ParsingOptions::default()
    };
    let doc =
        Document::parse_with_options(xml, opts).map_err(|e| XmlError::Malformed(e.to_string()))?;
    check_metadata_depth(if wrapped {
        doc.root_element()
    } else {
        doc.root()
    })?;
    Ok(doc)
}

fn wrap(inner: &str) -> String {
    let mut s = String::with_capacity(inner.len() + 7);
    s.push_str(WRAP_OPEN);
    s.push_str(inner);
    s.push_str(WRAP_CLOSE);
    s
}

fn shift(r: Range<usize>) -> Range<usize> {
    r.start - WRAP_OPEN.len()..r.end - WRAP_OPEN.len()
}

/// Top-level elements of the fragment in namespace `ns`, each with the
/// range to delete to remove it (including the indentation before it).
fn matches(doc: &Document, ns: &str) -> Vec<(Range<usize>, Range<usize>)> {
    let mut out = Vec::new();
    for c in doc.root_element().children() {
        if c.is_element() && c.tag_name().namespace() == Some(ns) {
            let r = shift(c.range());
            let cut_start = match c.prev_sibling() {
                Some(p) if p.is_text() && p.text().unwrap_or("x").trim().is_empty() => {
                    shift(p.range()).start
                }
                _ => r.start,
            };
            out.push((r.clone(), cut_start..r.end));
        }
    }
    out
}

/// Verbatim source of the top-level element in namespace `ns`.
pub(crate) fn get_element(metadata: Option<&str>, ns: &str) -> Option<String> {
    let inner = metadata?;
    let wrapped = wrap(inner);
    let doc = parse_fragment(&wrapped, true).ok()?;
    let found = matches(&doc, ns).into_iter().next()?;
    inner.get(found.0).map(str::to_string)
}

/// Validates a standalone element for namespace `ns`, returning its source
/// without any prolog.
fn check_element(xml: &str, ns: &str) -> Result<String, XmlError> {
    let path = "/domain/metadata".to_string();
    let doc = parse_fragment(xml, false)?;
    let root = doc.root_element();
    if root.tag_name().namespace() != Some(ns) {
        return Err(XmlError::invalid(
            path,
            xml,
            format!("metadata element must be in namespace {ns}"),
        ));
    }
    Ok(slice(xml, root.range()).to_string())
}

/// Replaces (or with `None` removes) the top-level element in namespace
/// `ns`, leaving all other bytes of the metadata untouched. Metadata that
/// ends up blank is dropped.
pub(crate) fn set_element(
    metadata: &mut Option<String>,
    ns: &str,
    element: Option<&str>,
) -> Result<(), XmlError> {
    let new = element.map(|x| check_element(x, ns)).transpose()?;
    let inner = metadata.as_deref().unwrap_or("");
    let wrapped = wrap(inner);
    let doc = parse_fragment(&wrapped, true).map_err(|e| match e {
        XmlError::TooDeep { .. } => e,
        _ => XmlError::invalid(
            "/domain/metadata".into(),
            inner,
            "existing metadata is not well-formed",
        ),
    })?;
    let found = matches(&doc, ns);
    let mut out = String::with_capacity(inner.len() + new.as_ref().map_or(0, String::len) + 8);
    let mut pos = 0;
    let mut placed = false;
    for (elem, cut) in &found {
        if !placed && let Some(n) = &new {
            // Replace the first match in place, keeping its indentation.
            out.push_str(slice(inner, pos..elem.start));
            out.push_str(n);
            placed = true;
        } else {
            out.push_str(slice(inner, pos..cut.start));
        }
        pos = elem.end;
    }
    out.push_str(slice(inner, pos..inner.len()));
    if let (Some(n), false) = (&new, placed) {
        out = append(&doc, &out, n);
    }
    *metadata = if out.trim().is_empty() {
        None
    } else {
        Some(out)
    };
    Ok(())
}

/// Appends `elem` after the last child, indented like its predecessor.
fn append(doc: &Document, inner: &str, elem: &str) -> String {
    let trailing = inner.len() - inner.trim_end().len();
    let body = slice(inner, 0..inner.len() - trailing);
    if body.is_empty() {
        return format!("\n    {elem}\n  ");
    }
    let indent = doc
        .root_element()
        .children()
        .rfind(|c| c.is_element())
        .and_then(|c| c.prev_sibling())
        .filter(|p| p.is_text())
        .and_then(|p| p.text())
        .filter(|t| t.trim().is_empty() && t.contains('\n'))
        .unwrap_or("\n    ");
    let mut out = String::with_capacity(inner.len() + indent.len() + elem.len());
    out.push_str(body);
    out.push_str(indent);
    out.push_str(elem);
    out.push_str(slice(inner, inner.len() - trailing..inner.len()));
    out
}

/// Ranges come from roxmltree and always fall on character boundaries;
/// this only guards against a panic should that ever not hold.
fn slice(s: &str, r: Range<usize>) -> &str {
    s.get(r).unwrap_or("")
}

/// libvirt's form of an application's metadata element: `xml`, one element whose names carry
/// no namespace (or are already in `uri`), moved into namespace `uri` under prefix `key`.
pub(crate) fn namespaced(xml: &str, key: &str, uri: &str) -> Result<String, XmlError> {
    let path = "/domain/metadata".to_string();
    let valid_key = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !key.to_ascii_lowercase().starts_with("xml");
    if !valid_key {
        return Err(XmlError::invalid(
            path,
            key,
            "a metadata key must be an XML name without a colon",
        ));
    }
    let doc = parse_fragment(xml, false)?;
    let root = doc.root_element();
    let mut out = String::with_capacity(xml.len() + key.len() * 4 + uri.len() + 16);
    write_node(root, &mut out, Some((key, uri)), true)
        .map_err(|e| XmlError::invalid(path, xml, e))?;
    Ok(out)
}

/// The element in namespace `uri` as libvirt hands it back: its names without prefix and
/// without the namespace declaration. Stored metadata that cannot be read back (nested
/// too deep, say) is an error rather than "no element".
pub(crate) fn plain(metadata: Option<&str>, uri: &str) -> Result<Option<String>, XmlError> {
    let Some(inner) = metadata else {
        return Ok(None);
    };
    let wrapped = wrap(inner);
    let doc = parse_fragment(&wrapped, true)?;
    let Some((range, _)) = matches(&doc, uri).into_iter().next() else {
        return Ok(None);
    };
    let element = slice(inner, range);
    let doc = parse_fragment(element, false)?;
    let mut out = String::with_capacity(element.len());
    write_node(doc.root_element(), &mut out, None, false)
        .map_err(|e| XmlError::invalid("/domain/metadata".into(), element, e))?;
    Ok(Some(out))
}

/// Serialize an element: with `ns` `Some((prefix, uri))`, names without a namespace or in
/// `uri` get `prefix` (and the root declares it); with `None`, every name loses its prefix.
/// Comments and processing instructions are dropped. The walk is iterative, so no nesting
/// can exhaust the stack (the parser bounds it anyway).
fn write_node(
    node: Node,
    out: &mut String,
    ns: Option<(&str, &str)>,
    root: bool,
) -> Result<(), String> {
    let foreign = |n: &str| {
        format!("metadata uses namespace {n}; only the element's own namespace is allowed")
    };
    let qualify = |name: roxmltree::ExpandedName| -> Result<String, String> {
        match (ns, name.namespace()) {
            (None, _) => Ok(name.name().to_owned()),
            (Some((p, _)), None) => Ok(format!("{p}:{}", name.name())),
            (Some((p, u)), Some(n)) if n == u => Ok(format!("{p}:{}", name.name())),
            (Some(_), Some(n)) => Err(foreign(n)),
        }
    };
    let has_content = |n: &Node| n.children().any(|c| c.is_element() || c.is_text());
    walk(node, |edge| {
        match edge {
            Edge::Open(n) if n.is_element() => {
                out.push('<');
                out.push_str(&qualify(n.tag_name())?);
                if root
                    && n == node
                    && let Some((p, u)) = ns
                {
                    out.push_str(&format!(" xmlns:{p}=\"{}\"", escape_attr(u)));
                }
                for a in n.attributes() {
                    let aname = match (ns, a.namespace()) {
                        (_, None) => a.name().to_owned(),
                        (Some((p, u)), Some(x)) if x == u => format!("{p}:{}", a.name()),
                        (None, Some(_)) => a.name().to_owned(),
                        (Some(_), Some(x)) => return Err(foreign(x)),
                    };
                    out.push_str(&format!(" {aname}=\"{}\"", escape_attr(a.value())));
                }
                out.push_str(if has_content(&n) { ">" } else { "/>" });
            }
            Edge::Open(n) if n.is_text() => out.push_str(&escape_text(n.text().unwrap_or(""))),
            Edge::Close(n) if n.is_element() && has_content(&n) => {
                out.push_str("</");
                out.push_str(&qualify(n.tag_name())?);
                out.push('>');
            }
            _ => {}
        }
        Ok(())
    })
}

use crate::util::xml::{attr as escape_attr, text as escape_text};

/// `uid` attribute of `<virtbus:owner/>`.
pub(crate) fn owner_uid(metadata: Option<&str>) -> Option<u32> {
    let inner = metadata?;
    let wrapped = wrap(inner);
    let doc = parse_fragment(&wrapped, true).ok()?;
    let owner = doc.root_element().children().find(|c| {
        c.is_element()
            && c.tag_name().namespace() == Some(VIRTBUS_NS)
            && c.tag_name().name() == "owner"
    })?;
    let uid = owner.attribute("uid")?;
    if !uid.is_empty() && uid.bytes().all(|b| b.is_ascii_digit()) {
        uid.parse().ok()
    } else {
        None
    }
}

pub(crate) fn set_owner_uid(metadata: &mut Option<String>, uid: Option<u32>) {
    let elem = uid.map(|u| {
        format!("<{VIRTBUS_PREFIX}:owner xmlns:{VIRTBUS_PREFIX}='{VIRTBUS_NS}' uid='{u}'/>")
    });
    // Our own element is always valid; if the stored metadata itself is not
    // well-formed (only possible when a caller assigned it directly) the
    // element is appended by hand so the ownership is never lost.
    if set_element(metadata, VIRTBUS_NS, elem.as_deref()).is_err()
        && let Some(e) = elem
    {
        let m = metadata.get_or_insert_with(String::new);
        m.push_str(&e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: &str = "\n    <!-- keep me -->\n    <app:x xmlns:app=\"urn:app\" a='1'>&amp;<y/></app:x>\n    <o:thing xmlns:o='urn:o'/>\n  ";

    #[test]
    fn owner_add_replace_remove() {
        let mut m = Some(META.to_string());
        assert_eq!(owner_uid(m.as_deref()), None);
        set_owner_uid(&mut m, Some(1000));
        let added = m.clone().unwrap_or_default();
        assert_eq!(
            added,
            "\n    <!-- keep me -->\n    <app:x xmlns:app=\"urn:app\" a='1'>&amp;<y/></app:x>\n    <o:thing xmlns:o='urn:o'/>\n    <virtbus:owner xmlns:virtbus='https://virtbus.org/xmlns/virtbus/1' uid='1000'/>\n  "
        );
        assert_eq!(owner_uid(m.as_deref()), Some(1000));
        set_owner_uid(&mut m, Some(7));
        assert_eq!(owner_uid(m.as_deref()), Some(7));
        assert_eq!(
            m.as_deref().map(|s| s.replace("'7'", "'1000'")),
            Some(added)
        );
        set_owner_uid(&mut m, None);
        assert_eq!(m.as_deref(), Some(META));
        assert_eq!(owner_uid(m.as_deref()), None);
    }

    #[test]
    fn owner_in_empty_metadata() {
        let mut m = None;
        set_owner_uid(&mut m, Some(0));
        assert_eq!(owner_uid(m.as_deref()), Some(0));
        set_owner_uid(&mut m, None);
        assert_eq!(m, None);
    }

    #[test]
    fn owner_with_other_prefix_is_found_and_replaced_in_place() {
        let mut m = Some("<vb:owner xmlns:vb='https://virtbus.org/xmlns/virtbus/1' uid='5'/><a:b xmlns:a='urn:a'/>".to_string());
        assert_eq!(owner_uid(m.as_deref()), Some(5));
        set_owner_uid(&mut m, Some(6));
        assert_eq!(
            m.as_deref(),
            Some(
                "<virtbus:owner xmlns:virtbus='https://virtbus.org/xmlns/virtbus/1' uid='6'/><a:b xmlns:a='urn:a'/>"
            )
        );
    }

    #[test]
    fn generic_elements() {
        let mut m = Some(META.to_string());
        assert_eq!(
            get_element(m.as_deref(), "urn:o").as_deref(),
            Some("<o:thing xmlns:o='urn:o'/>")
        );
        assert!(set_element(&mut m, "urn:o", Some("<p:z xmlns:p='urn:other'/>")).is_err());
        assert!(set_element(&mut m, "urn:o", Some("<p:z")).is_err());
        assert_eq!(
            set_element(
                &mut m,
                "urn:o",
                Some("<?xml version='1.0'?><o:new xmlns:o='urn:o'/>")
            ),
            Ok(())
        );
        assert_eq!(
            get_element(m.as_deref(), "urn:o").as_deref(),
            Some("<o:new xmlns:o='urn:o'/>")
        );
    }

    #[test]
    fn libvirt_style_application_elements() {
        let e =
            namespaced("<foo a=\"1\">b&amp;r<b/></foo>", "app", "http://app/").expect("namespaced");
        assert_eq!(
            e,
            "<app:foo xmlns:app=\"http://app/\" a=\"1\">b&amp;r<app:b/></app:foo>"
        );
        let mut m = None;
        set_element(&mut m, "http://app/", Some(&e)).expect("set");
        assert_eq!(
            plain(m.as_deref(), "http://app/").ok().flatten().as_deref(),
            Some("<foo a=\"1\">b&amp;r<b/></foo>")
        );
        assert_eq!(plain(m.as_deref(), "http://other/"), Ok(None));
        assert!(namespaced("<foo/>", "x:y", "http://app/").is_err());
        assert!(namespaced("<foo/>", "xmlfoo", "http://app/").is_err());
        assert!(namespaced("<foo", "app", "http://app/").is_err());
        assert!(namespaced("<o:foo xmlns:o='urn:o'/>", "app", "http://app/").is_err());
        let same = namespaced("<o:foo xmlns:o='http://app/'/>", "app", "http://app/");
        assert_eq!(same.as_deref(), Ok("<app:foo xmlns:app=\"http://app/\"/>"));
    }

    #[test]
    fn bad_uid_reads_as_none() {
        let m = "<virtbus:owner xmlns:virtbus='https://virtbus.org/xmlns/virtbus/1' uid='-1'/>";
        assert_eq!(owner_uid(Some(m)), None);
        assert_eq!(owner_uid(Some("<broken")), None);
    }
}
