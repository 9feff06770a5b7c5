//! Canonical XML output: two-space indentation, single-quoted attributes in
//! the order the caller writes them, childless elements self-closed.
//!
//! A start tag stays open until the first child or the end arrives, so
//! callers do not need to know in advance whether an element has children.

use std::fmt::Display;
use std::fmt::Write as _;

pub(crate) struct Writer {
    buf: String,
    stack: Vec<&'static str>,
    /// The innermost start tag is still missing its `>`.
    open: bool,
}

impl Writer {
    /// A writer whose first element sits at `depth` levels of indentation.
    pub(crate) fn new(depth: usize) -> Writer {
        Writer {
            buf: String::with_capacity(1024),
            stack: Vec::with_capacity(8),
            open: false,
        }
        .with_depth(depth)
    }

    fn with_depth(mut self, depth: usize) -> Writer {
        self.stack.extend(std::iter::repeat_n("", depth));
        self
    }

    pub(crate) fn finish(self) -> String {
        self.buf
    }

    fn close_pending(&mut self) {
        if self.open {
            self.buf.push_str(">\n");
            self.open = false;
        }
    }

    fn indent(&mut self) {
        for _ in 0..self.stack.len() {
            self.buf.push_str("  ");
        }
    }

    /// Starts `<name`; attributes may follow until a child or `end`.
    pub(crate) fn start(&mut self, name: &'static str) {
        self.close_pending();
        self.indent();
        self.buf.push('<');
        self.buf.push_str(name);
        self.stack.push(name);
        self.open = true;
    }

    pub(crate) fn attr(&mut self, name: &str, value: &str) {
        self.buf.push(' ');
        self.buf.push_str(name);
        self.buf.push_str("='");
        escape_attr(&mut self.buf, value);
        self.buf.push('\'');
    }

    pub(crate) fn attr_opt(&mut self, name: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.attr(name, v);
        }
    }

    /// An attribute whose value needs no escaping (numbers, enum names).
    pub(crate) fn attr_num(&mut self, name: &str, value: impl Display) {
        let _ = write!(self.buf, " {name}='{value}'");
    }

    pub(crate) fn attr_num_opt(&mut self, name: &str, value: Option<impl Display>) {
        if let Some(v) = value {
            self.attr_num(name, v);
        }
    }

    /// Closes the innermost element.
    pub(crate) fn end(&mut self) {
        let name = self.stack.pop().unwrap_or("");
        if self.open {
            self.buf.push_str("/>\n");
            self.open = false;
        } else {
            self.indent();
            self.buf.push_str("</");
            self.buf.push_str(name);
            self.buf.push_str(">\n");
        }
    }

    /// Ends the element with an end tag of its own even when it has no children, as
    /// libvirt writes a network's `<ip>`.
    pub(crate) fn end_block(&mut self) {
        self.close_pending();
        self.end();
    }

    /// `<name>` and `</name>` on lines of their own with nothing between: libvirt's form of
    /// an empty `<devices>`.
    pub(crate) fn empty_block(&mut self, name: &'static str) {
        self.close_pending();
        self.indent();
        self.buf.push('<');
        self.buf.push_str(name);
        self.buf.push_str(">\n");
        self.indent();
        self.buf.push_str("</");
        self.buf.push_str(name);
        self.buf.push_str(">\n");
    }

    /// Ends the open start tag with text content and the end tag.
    pub(crate) fn end_with_text(&mut self, text: &str) {
        let name = self.stack.pop().unwrap_or("");
        self.buf.push('>');
        escape_text(&mut self.buf, text);
        self.buf.push_str("</");
        self.buf.push_str(name);
        self.buf.push_str(">\n");
        self.open = false;
    }

    /// Ends the open start tag with raw (already serialised) content.
    pub(crate) fn end_with_raw(&mut self, raw: &str) {
        let name = self.stack.pop().unwrap_or("");
        if raw.is_empty() {
            self.buf.push_str("/>\n");
        } else {
            self.buf.push('>');
            self.buf.push_str(raw);
            self.buf.push_str("</");
            self.buf.push_str(name);
            self.buf.push_str(">\n");
        }
        self.open = false;
    }

    /// `<name>text</name>`.
    pub(crate) fn leaf(&mut self, name: &'static str, text: &str) {
        self.start(name);
        self.end_with_text(text);
    }

    pub(crate) fn leaf_opt(&mut self, name: &'static str, text: Option<&str>) {
        if let Some(t) = text {
            self.leaf(name, t);
        }
    }

    /// `<name/>` when `on`.
    pub(crate) fn flag(&mut self, name: &'static str, on: bool) {
        if on {
            self.start(name);
            self.end();
        }
    }

    /// `<name attr='value'/>`.
    pub(crate) fn leaf_attr(&mut self, name: &'static str, attr: &str, value: &str) {
        self.start(name);
        self.attr(attr, value);
        self.end();
    }
}

use crate::util::xml::{push_attr as escape_attr, push_text as escape_text};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_and_self_closing() {
        let mut w = Writer::new(0);
        w.start("a");
        w.attr("k", "v'<&>\"\n");
        w.start("b");
        w.end();
        w.leaf("c", "x<y&z>\r");
        w.start("d");
        w.attr_num("n", 5);
        w.end_with_text("t");
        w.end();
        assert_eq!(
            w.finish(),
            "<a k='v&apos;&lt;&amp;&gt;&quot;&#10;'>\n  <b/>\n  <c>x&lt;y&amp;z&gt;&#13;</c>\n  <d n='5'>t</d>\n</a>\n"
        );
    }

    #[test]
    fn depth_offsets_indentation() {
        let mut w = Writer::new(1);
        w.start("a");
        w.end_with_raw("");
        w.start("m");
        w.end_with_raw("<x/>");
        assert_eq!(w.finish(), "  <a/>\n  <m><x/></m>\n");
    }

    #[test]
    fn escaped_values_survive_a_parse() {
        let nasty = "a'b\"c<d>&e\nf\tg\rh";
        let mut w = Writer::new(0);
        w.start("r");
        w.attr("v", nasty);
        w.end_with_text(nasty);
        let xml = w.finish();
        let doc = roxmltree::Document::parse(&xml).map_err(|e| e.to_string());
        let doc = doc.as_ref().map_err(String::as_str);
        let root = doc.map(|d| d.root_element());
        assert_eq!(root.map(|r| r.attribute("v")), Ok(Some(nasty)));
        assert_eq!(root.map(|r| r.text()), Ok(Some(nasty)));
    }
}
