//! Strict reading of a roxmltree document.
//!
//! [`Elem`] wraps one element, hands out its attributes, children and text by
//! name and remembers what was taken. [`Elem::finish`] then reports the first
//! thing nobody asked for, so the model can never drop input silently. Paths
//! are only computed when an error is built, which keeps the happy path free
//! of allocations.

use std::borrow::Cow;

use roxmltree::{Document, Node, ParsingOptions};

use crate::model::error::XmlError;
use crate::model::{MAX_METADATA_DEPTH, MAX_XML_BYTES, MAX_XML_DEPTH};

type Result<T> = std::result::Result<T, XmlError>;

/// Upper bound on nodes in one document. A 1 MiB document cannot hold many
/// more anyway; this just caps roxmltree's arena independently of the size.
const NODES_LIMIT: u32 = 1 << 19;

/// Parses `xml` with the size limit applied and DTDs refused.
///
/// DTDs are never part of libvirt XML, so refusing them outright rules out
/// entity expansion attacks instead of merely bounding them.
pub(crate) fn parse_document(xml: &str) -> Result<Document<'_>> {
    parse_document_within(xml, MAX_XML_BYTES)
}

/// [`parse_document`] with another size limit (larger for stored files).
pub(crate) fn parse_document_within(xml: &str, limit: usize) -> Result<Document<'_>> {
    if xml.len() > limit {
        return Err(XmlError::TooLarge {
            size: xml.len(),
            limit,
        });
    }
    check_char_refs(xml)?;
    let opts = ParsingOptions {
        allow_dtd: false,
        nodes_limit: NODES_LIMIT,
        ..ParsingOptions::default()
    };
    let doc =
        Document::parse_with_options(xml, opts).map_err(|e| XmlError::Malformed(e.to_string()))?;
    check_depth(doc.root(), MAX_XML_DEPTH)?;
    Ok(doc)
}

/// Refuses character references to what is not a character (a surrogate such as
/// `&#xD800;`, or beyond U+10FFFF). XML forbids them, but roxmltree turns them into U+FFFD
/// without a word, so a name could silently become another one. Comments, CDATA sections
/// and processing instructions hold no references and are skipped.
pub(crate) fn check_char_refs(xml: &str) -> Result<()> {
    let mut rest = xml;
    while let Some(k) = rest.find(['<', '&']) {
        let tail = &rest[k..];
        let past = |end: &str| tail.find(end).map_or(tail.len(), |e| e + end.len());
        let advance = if tail.starts_with("<!--") {
            past("-->")
        } else if tail.starts_with("<![CDATA[") {
            past("]]>")
        } else if tail.starts_with("<?") {
            past("?>")
        } else if let Some(r) = tail.strip_prefix("&#") {
            let (digits, radix) = match r.strip_prefix('x') {
                Some(hex) => (hex, 16),
                None => (r, 10),
            };
            let len = digits
                .find(|c: char| !c.is_digit(radix))
                .unwrap_or(digits.len());
            let value = u32::from_str_radix(&digits[..len], radix).ok();
            if len > 0 && digits[len..].starts_with(';') && value.and_then(char::from_u32).is_none()
            {
                let end = tail.find(';').map_or(tail.len(), |e| e + 1);
                return Err(XmlError::Malformed(format!(
                    "character reference {} at byte {} is not a character XML allows",
                    &tail[..end.min(32)],
                    xml.len() - tail.len()
                )));
            }
            2
        } else {
            1
        };
        rest = &tail[advance..];
    }
    Ok(())
}

/// Refuses elements nested more than `limit` levels below `top` (its child
/// elements are level 1).
///
/// roxmltree parses without recursion, but the model, the metadata rewriting
/// and whoever reads the XML back walk it; bounding the depth once, right
/// after parsing, bounds all of them. The check itself is iterative.
pub(crate) fn check_depth(top: Node, limit: usize) -> Result<()> {
    let mut depth = 0usize;
    walk(top, |edge| {
        match edge {
            Edge::Open(n) if n.is_element() && n != top => {
                depth += 1;
                if depth > limit {
                    return Err(XmlError::TooDeep {
                        element: qname(n),
                        limit,
                    });
                }
            }
            Edge::Close(n) if n.is_element() && n != top => depth = depth.saturating_sub(1),
            _ => {}
        }
        Ok(())
    })
}

/// Refuses `<metadata>` or `<cookie>` content nested deeper than [`MAX_METADATA_DEPTH`].
pub(crate) fn check_metadata_depth(container: Node) -> Result<()> {
    check_depth(container, MAX_METADATA_DEPTH)
}

/// One step of [`walk`]: entering or leaving a node.
pub(crate) enum Edge<'a, 'i> {
    Open(Node<'a, 'i>),
    Close(Node<'a, 'i>),
}

/// Visits `node` and everything under it in document order, with an explicit
/// stack instead of recursion so that no nesting can overflow the thread's
/// stack. Stops at the first error `f` returns.
pub(crate) fn walk<'a, 'i, E>(
    node: Node<'a, 'i>,
    mut f: impl FnMut(Edge<'a, 'i>) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let mut stack = vec![Edge::Open(node)];
    while let Some(edge) = stack.pop() {
        if let Edge::Open(n) = edge {
            stack.push(Edge::Close(n));
            let mut kids: Vec<Node> = n.children().collect();
            kids.reverse();
            stack.extend(kids.into_iter().map(Edge::Open));
            f(Edge::Open(n))?;
        } else {
            f(edge)?;
        }
    }
    Ok(())
}

/// Returns a strict reader for the root element, which must be `expected`.
pub(crate) fn root<'a, 'i>(doc: &'a Document<'i>, expected: &'static str) -> Result<Elem<'a, 'i>> {
    let node = doc.root_element();
    if node.tag_name().namespace().is_some() || node.tag_name().name() != expected {
        return Err(XmlError::WrongRoot {
            expected,
            found: qname(node),
        });
    }
    Elem::new(node)
}

/// The element's name as written (with its prefix when namespaced).
fn qname(node: Node) -> String {
    let name = node.tag_name();
    match name.namespace() {
        None => name.name().to_string(),
        Some(ns) => match node.lookup_prefix(ns) {
            Some(p) if !p.is_empty() => format!("{p}:{}", name.name()),
            _ => format!("{{{ns}}}{}", name.name()),
        },
    }
}

/// Path of an element: names from the root joined by `/`, each followed by
/// a 1-based `[n]` when its parent has more than one element of that name.
pub(crate) fn node_path(node: Node) -> String {
    let mut chain: Vec<Node> = node.ancestors().filter(|n| n.is_element()).collect();
    chain.reverse();
    let mut out = String::new();
    for n in chain {
        out.push('/');
        out.push_str(&qname(n));
        if let Some(parent) = n.parent() {
            let same = |c: &Node| c.is_element() && c.tag_name() == n.tag_name();
            let count = parent.children().filter(same).count();
            if count > 1 {
                let pos = parent
                    .children()
                    .filter(same)
                    .position(|c| c == n)
                    .map_or(0, |p| p + 1);
                out.push_str(&format!("[{pos}]"));
            }
        }
    }
    out
}

/// Growable bit set, allocation-free for the first 64 entries.
#[derive(Default)]
struct Bits {
    low: u64,
    high: Vec<u64>,
}

impl Bits {
    fn set(&mut self, i: usize) {
        if i < 64 {
            self.low |= 1 << i;
        } else {
            let word = (i - 64) / 64;
            if self.high.len() <= word {
                self.high.resize(word + 1, 0);
            }
            self.high[word] |= 1 << ((i - 64) % 64);
        }
    }

    fn get(&self, i: usize) -> bool {
        if i < 64 {
            self.low & (1 << i) != 0
        } else {
            let word = (i - 64) / 64;
            self.high
                .get(word)
                .is_some_and(|w| w & (1 << ((i - 64) % 64)) != 0)
        }
    }
}

fn is_blank(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// A strictly read element: everything must be consumed before `finish`.
pub(crate) struct Elem<'a, 'i> {
    node: Node<'a, 'i>,
    attrs: Bits,
    kids: Bits,
    all_kids: bool,
    text: bool,
}

impl<'a, 'i> Elem<'a, 'i> {
    /// Wraps `node`. Namespace declarations may sit on any element, as XML allows: names
    /// in a namespace are still refused outside `<metadata>`, and what `<metadata>` keeps
    /// verbatim carries the declarations it uses (see `metadata::read_metadata`).
    pub(crate) fn new(node: Node<'a, 'i>) -> Result<Self> {
        Ok(Elem {
            node,
            attrs: Bits::default(),
            kids: Bits::default(),
            all_kids: false,
            text: false,
        })
    }

    pub(crate) fn node(&self) -> Node<'a, 'i> {
        self.node
    }

    pub(crate) fn name(&self) -> &'a str {
        self.node.tag_name().name()
    }

    pub(crate) fn path(&self) -> String {
        node_path(self.node)
    }

    pub(crate) fn attr_path(&self, name: &str) -> String {
        format!("{}/@{name}", self.path())
    }

    /// `InvalidValue` for this element's text.
    pub(crate) fn invalid(&self, value: &str, reason: impl Into<String>) -> XmlError {
        XmlError::invalid(self.path(), value, reason)
    }

    /// `InvalidValue` for one of this element's attributes.
    pub(crate) fn attr_invalid(
        &self,
        name: &str,
        value: &str,
        reason: impl Into<String>,
    ) -> XmlError {
        XmlError::invalid(self.attr_path(name), value, reason)
    }

    /// This element is not allowed where it stands.
    pub(crate) fn unknown(&self) -> XmlError {
        XmlError::UnknownElement { path: self.path() }
    }

    pub(crate) fn missing_attr(&self, name: &str) -> XmlError {
        XmlError::Missing {
            path: self.attr_path(name),
        }
    }

    pub(crate) fn missing_child(&self, name: &str) -> XmlError {
        XmlError::Missing {
            path: format!("{}/{name}", self.path()),
        }
    }

    /// Takes an attribute (no namespace) by name.
    pub(crate) fn attr(&mut self, name: &str) -> Option<&'a str> {
        let found = self
            .node
            .attributes()
            .enumerate()
            .find(|(_, a)| a.namespace().is_none() && a.name() == name);
        found.map(|(i, a)| {
            self.attrs.set(i);
            a.value()
        })
    }

    pub(crate) fn req_attr(&mut self, name: &str) -> Result<&'a str> {
        self.attr(name).ok_or_else(|| self.missing_attr(name))
    }

    /// Takes and converts an attribute; conversion errors name its path.
    pub(crate) fn attr_with<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&str) -> std::result::Result<T, String>,
    ) -> Result<Option<T>> {
        match self.attr(name) {
            None => Ok(None),
            Some(v) => f(v)
                .map(Some)
                .map_err(|reason| self.attr_invalid(name, v, reason)),
        }
    }

    pub(crate) fn req_attr_with<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&str) -> std::result::Result<T, String>,
    ) -> Result<T> {
        self.attr_with(name, f)?
            .ok_or_else(|| self.missing_attr(name))
    }

    /// Takes an attribute as an owned string.
    pub(crate) fn attr_string(&mut self, name: &str) -> Option<String> {
        self.attr(name).map(str::to_string)
    }

    /// Takes the single child element `name`; a second one is `Duplicate`.
    pub(crate) fn child(&mut self, name: &str) -> Result<Option<Elem<'a, 'i>>> {
        let mut found = None;
        for (i, c) in self.node.children().filter(Node::is_element).enumerate() {
            if c.tag_name().namespace().is_none() && c.tag_name().name() == name {
                if found.is_some() {
                    return Err(XmlError::Duplicate { path: node_path(c) });
                }
                self.kids.set(i);
                found = Some(c);
            }
        }
        found.map(Elem::new).transpose()
    }

    /// The child element `name` in namespace `uri`, if any (at most one).
    pub(crate) fn child_ns(&mut self, uri: &str, name: &str) -> Result<Option<Elem<'a, 'i>>> {
        let mut found = None;
        for (i, c) in self.node.children().filter(Node::is_element).enumerate() {
            if c.tag_name().namespace() == Some(uri) && c.tag_name().name() == name {
                if found.is_some() {
                    return Err(XmlError::Duplicate { path: node_path(c) });
                }
                self.kids.set(i);
                found = Some(c);
            }
        }
        found.map(Elem::new).transpose()
    }

    /// Calls `f` for every child element `name` in namespace `uri`, in document order.
    pub(crate) fn each_ns(
        &mut self,
        uri: &str,
        name: &str,
        mut f: impl FnMut(Elem<'a, 'i>) -> Result<()>,
    ) -> Result<()> {
        for (i, c) in self.node.children().filter(Node::is_element).enumerate() {
            if c.tag_name().namespace() == Some(uri) && c.tag_name().name() == name {
                self.kids.set(i);
                f(Elem::new(c)?)?;
            }
        }
        Ok(())
    }

    pub(crate) fn req_child(&mut self, name: &str) -> Result<Elem<'a, 'i>> {
        match self.child(name)? {
            Some(c) => Ok(c),
            None => Err(self.missing_child(name)),
        }
    }

    /// Calls `f` for every child element called `name`, in document order.
    pub(crate) fn each(
        &mut self,
        name: &str,
        mut f: impl FnMut(Elem<'a, 'i>) -> Result<()>,
    ) -> Result<()> {
        for (i, c) in self.node.children().filter(Node::is_element).enumerate() {
            if c.tag_name().namespace().is_none() && c.tag_name().name() == name {
                self.kids.set(i);
                f(Elem::new(c)?)?;
            }
        }
        Ok(())
    }

    /// Calls `f` for every child element; `f` must reject names it does not
    /// know (usually with [`Elem::unknown`]).
    pub(crate) fn each_child(
        &mut self,
        mut f: impl FnMut(Elem<'a, 'i>) -> Result<()>,
    ) -> Result<()> {
        self.all_kids = true;
        for c in self.node.children().filter(Node::is_element) {
            if c.tag_name().namespace().is_some() {
                return Err(XmlError::UnknownElement { path: node_path(c) });
            }
            f(Elem::new(c)?)?;
        }
        Ok(())
    }

    /// Takes the text content (all text nodes joined; comments may split it).
    pub(crate) fn text(&mut self) -> Cow<'a, str> {
        self.text = true;
        let mut texts = self.node.children().filter(Node::is_text);
        let first = texts.next().and_then(|t| t.text()).unwrap_or("");
        match texts.next() {
            None => Cow::Borrowed(first),
            Some(second) => {
                let mut s = String::from(first);
                s.push_str(second.text().unwrap_or(""));
                for t in texts {
                    s.push_str(t.text().unwrap_or(""));
                }
                Cow::Owned(s)
            }
        }
    }

    /// Takes and converts the text content (surrounding whitespace trimmed).
    pub(crate) fn text_with<T>(
        &mut self,
        f: impl FnOnce(&str) -> std::result::Result<T, String>,
    ) -> Result<T> {
        let t = self.text();
        f(t.trim()).map_err(|reason| self.invalid(&t, reason))
    }

    /// Takes and converts the text content exactly as written.
    pub(crate) fn text_with_raw<T>(
        &mut self,
        f: impl FnOnce(&str) -> std::result::Result<T, String>,
    ) -> Result<T> {
        let t = self.text();
        f(&t).map_err(|reason| self.invalid(&t, reason))
    }

    /// Marks everything inside as consumed without looking at it; used for
    /// content that is kept verbatim.
    pub(crate) fn take_all_content(&mut self) {
        self.all_kids = true;
        self.text = true;
    }

    /// Reports the first attribute, child or text nobody took.
    pub(crate) fn finish(self) -> Result<()> {
        for (i, a) in self.node.attributes().enumerate() {
            if !self.attrs.get(i) {
                let name = match a.namespace().and_then(|ns| self.node.lookup_prefix(ns)) {
                    Some(p) => format!("{p}:{}", a.name()),
                    None => a.name().to_string(),
                };
                return Err(XmlError::UnknownAttribute {
                    path: self.attr_path(&name),
                });
            }
        }
        let mut idx = 0;
        for c in self.node.children() {
            if c.is_element() {
                if !self.all_kids && !self.kids.get(idx) {
                    return Err(XmlError::UnknownElement { path: node_path(c) });
                }
                idx += 1;
            } else if c.is_text() && !self.text && !is_blank(c.text().unwrap_or("")) {
                return Err(XmlError::UnexpectedText { path: self.path() });
            }
        }
        Ok(())
    }

    // ---- small conveniences built on the primitives above ----

    /// A leaf child with text: `<name>text</name>`.
    pub(crate) fn child_text(&mut self, name: &str) -> Result<Option<String>> {
        match self.child(name)? {
            None => Ok(None),
            Some(mut c) => {
                let t = c.text().into_owned();
                c.finish()?;
                Ok(Some(t))
            }
        }
    }

    /// A leaf child whose text is converted by `f`.
    pub(crate) fn child_text_with<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&str) -> std::result::Result<T, String>,
    ) -> Result<Option<T>> {
        match self.child(name)? {
            None => Ok(None),
            Some(mut c) => {
                let v = c.text_with(f)?;
                c.finish()?;
                Ok(Some(v))
            }
        }
    }

    /// An empty marker child such as `<readonly/>`.
    pub(crate) fn flag(&mut self, name: &str) -> Result<bool> {
        match self.child(name)? {
            None => Ok(false),
            Some(c) => {
                c.finish()?;
                Ok(true)
            }
        }
    }

    /// A child that carries one attribute only, e.g. `<alias name='x'/>`.
    pub(crate) fn child_attr_with<T>(
        &mut self,
        child: &str,
        attr: &str,
        f: impl FnOnce(&str) -> std::result::Result<T, String>,
    ) -> Result<Option<T>> {
        match self.child(child)? {
            None => Ok(None),
            Some(mut c) => {
                let v = c.req_attr_with(attr, f)?;
                c.finish()?;
                Ok(Some(v))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_root<T>(xml: &str, f: impl FnOnce(Elem) -> Result<T>) -> Result<T> {
        let doc = parse_document(xml)?;
        f(root(&doc, "r")?)
    }

    #[test]
    fn consumed_everything_is_fine() {
        let r = with_root("<r a='1'><x>t</x><y/></r>", |mut e| {
            assert_eq!(e.attr("a"), Some("1"));
            assert_eq!(e.child_text("x")?.as_deref(), Some("t"));
            assert!(e.flag("y")?);
            e.finish()
        });
        assert_eq!(r, Ok(()));
    }

    #[test]
    fn leftovers_are_reported_with_paths() {
        let r = with_root("<r a='1' b='2'/>", |mut e| {
            e.attr("a");
            e.finish()
        });
        assert_eq!(
            r,
            Err(XmlError::UnknownAttribute {
                path: "/r/@b".into()
            })
        );
        let r = with_root("<r><x/><x/><z/></r>", |mut e| {
            e.each("x", |c| c.finish())?;
            e.finish()
        });
        assert_eq!(
            r,
            Err(XmlError::UnknownElement {
                path: "/r/z".into()
            })
        );
        let r = with_root("<r><x><q/></x><x/></r>", |mut e| {
            e.each("x", |c| c.finish())?;
            e.finish()
        });
        assert_eq!(
            r,
            Err(XmlError::UnknownElement {
                path: "/r/x[1]/q".into()
            })
        );
    }

    #[test]
    fn text_rules() {
        let r = with_root("<r>\n  <x/>\n</r>", |mut e| {
            e.flag("x")?;
            e.finish()
        });
        assert_eq!(r, Ok(()));
        let r = with_root("<r>oops<x/></r>", |mut e| {
            e.flag("x")?;
            e.finish()
        });
        assert_eq!(r, Err(XmlError::UnexpectedText { path: "/r".into() }));
        let r = with_root("<r>a<!-- c -->b&amp;</r>", |mut e| {
            let t = e.text().into_owned();
            e.finish()?;
            Ok(t)
        });
        assert_eq!(r.as_deref(), Ok("ab&"));
    }

    #[test]
    fn duplicates_and_missing() {
        let r = with_root("<r><x/><y/><x/></r>", |mut e| e.flag("x"));
        assert_eq!(
            r,
            Err(XmlError::Duplicate {
                path: "/r/x[2]".into()
            })
        );
        let r = with_root("<r/>", |mut e| e.req_child("x").map(|_| ()));
        assert_eq!(
            r,
            Err(XmlError::Missing {
                path: "/r/x".into()
            })
        );
        let r = with_root("<r/>", |mut e| e.req_attr("k").map(|_| ()));
        assert_eq!(
            r,
            Err(XmlError::Missing {
                path: "/r/@k".into()
            })
        );
    }

    #[test]
    fn namespaced_names_are_refused_outside_metadata() {
        // a declaration alone is plain XML
        assert_eq!(with_root("<r xmlns:q='urn:q'/>", |e| e.finish()), Ok(()));
        let r = with_root("<r xmlns:q='urn:q'><q:x/></r>", |e| e.finish());
        assert_eq!(
            r,
            Err(XmlError::UnknownElement {
                path: "/r/q:x".into()
            })
        );
        let r = with_root("<r><q:x xmlns:q='urn:q'/></r>", |e| e.finish());
        assert_eq!(
            r,
            Err(XmlError::UnknownElement {
                path: "/r/q:x".into()
            })
        );
        let r = with_root("<r><x xmlns='urn:q'/></r>", |mut e| {
            e.flag("x").map(|_| ()).and(e.finish())
        });
        assert_eq!(
            r,
            Err(XmlError::UnknownElement {
                path: "/r/{urn:q}x".into()
            })
        );
        let r = with_root("<r xml:lang='en'/>", |e| e.finish());
        assert_eq!(
            r,
            Err(XmlError::UnknownAttribute {
                path: "/r/@xml:lang".into()
            })
        );
    }

    #[test]
    fn many_children_are_tracked() {
        let mut xml = String::from("<r>");
        for _ in 0..200 {
            xml.push_str("<x/>");
        }
        xml.push_str("<y/></r>");
        let r = with_root(&xml, |mut e| {
            let mut n = 0;
            e.each("x", |c| {
                n += 1;
                c.finish()
            })?;
            assert_eq!(n, 200);
            e.finish()
        });
        assert_eq!(
            r,
            Err(XmlError::UnknownElement {
                path: "/r/y".into()
            })
        );
    }

    #[test]
    fn wrong_root_and_limits() {
        let doc = parse_document("<other/>");
        let doc = doc.as_ref().map_err(Clone::clone);
        let r = doc.and_then(|d| root(d, "r").map(|_| ()));
        assert_eq!(
            r,
            Err(XmlError::WrongRoot {
                expected: "r",
                found: "other".into()
            })
        );
        let big = "x".repeat(MAX_XML_BYTES + 1);
        assert_eq!(
            parse_document(&big).map(|_| ()),
            Err(XmlError::TooLarge {
                size: MAX_XML_BYTES + 1,
                limit: MAX_XML_BYTES
            })
        );
        match parse_document("<r><a></b></r>") {
            Err(XmlError::Malformed(m)) => assert!(m.contains("1:"), "{m}"),
            other => panic!("unexpected {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn references_to_non_characters_are_refused() {
        for bad in [
            "&#xD800;",
            "&#55296;",
            "&#xDFFF;",
            "&#x110000;",
            "&#x1F600000000;",
        ] {
            let xml = format!("<r a='{bad}'>x{bad}</r>");
            match parse_document(&xml) {
                Err(XmlError::Malformed(m)) => assert!(m.contains("&#"), "{m}"),
                other => panic!("{bad}: {:?}", other.map(|_| ())),
            }
        }
        for good in [
            "&#xD7FF;",
            "&#xE000;",
            "&#x10FFFF;",
            "&#65;",
            "<!-- &#xD800; -->",
            "<![CDATA[&#xD800;]]>",
            "<?pi &#xD800;?>",
        ] {
            let xml = format!("<r>{good}</r>");
            assert!(parse_document(&xml).is_ok(), "{good}");
        }
    }
}
