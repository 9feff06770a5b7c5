//! Domain XML as a structure to compare: parsed into a tree that ignores what XML does not
//! mean (whitespace between elements, attribute order, quoting, namespace prefixes), with what
//! legitimately differs between two daemons normalized away, and a structural diff that names
//! element paths.
//!
//! Paths name an element by its tag and, for the elements of which a domain has several, by
//! what identifies one (`controller[@type='pci'][@index='1']`, `disk[@dev='vda']`,
//! `timer[@name='rtc']`), then by position among the siblings of that identity (`[2]` for the
//! second). Children are matched by path, so a missing element does not shift its siblings;
//! the order of matched children is compared separately.

use std::collections::{BTreeMap, BTreeSet, HashSet};

/// An element: its name (`{namespace}local` when it has a namespace), attributes (by local
/// name), trimmed text (none when only whitespace) and child elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub attrs: BTreeMap<String, String>,
    pub text: Option<String>,
    pub children: Vec<Node>,
}

pub fn parse(xml: &str) -> Result<Node, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| e.to_string())?;
    Ok(build(doc.root_element()))
}

fn build(e: roxmltree::Node) -> Node {
    let name = match e.tag_name().namespace() {
        Some(ns) => format!("{{{ns}}}{}", e.tag_name().name()),
        None => e.tag_name().name().to_owned(),
    };
    let attrs = e
        .attributes()
        .map(|a| (a.name().to_owned(), a.value().to_owned()))
        .collect();
    let text: String = e
        .children()
        .filter(|c| c.is_text())
        .filter_map(|c| c.text())
        .collect();
    let text = Some(text.trim().to_owned()).filter(|t| !t.is_empty());
    let children = e.children().filter(|c| c.is_element()).map(build).collect();
    Node {
        name,
        attrs,
        text,
        children,
    }
}

impl Node {
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Node)) {
        f(self);
        for c in &self.children {
            c.walk(f);
        }
    }

    fn walk_mut(&mut self, f: &mut impl FnMut(&mut Node)) {
        f(self);
        for c in &mut self.children {
            c.walk_mut(f);
        }
    }
}

/// The placeholder for a value a daemon made up.
pub const GENERATED: &str = "*";

/// Replace in `out` (a daemon's answer to `input`) what each daemon makes up on its own:
/// the UUID and MAC addresses when the input gave none, and the directory of an NVRAM file
/// the input did not name (each daemon keeps them in its own state directory).
pub fn normalize(out: &mut Node, input: &Node) {
    let mut macs = HashSet::new();
    let mut nvram = None;
    input.walk(&mut |n| {
        if n.name == "mac"
            && let Some(a) = n.attrs.get("address")
        {
            macs.insert(a.to_ascii_lowercase());
        }
        if n.name == "nvram" {
            nvram = n.text.clone();
        }
    });
    let input_uuid = input.child("uuid").and_then(|u| u.text.clone());
    if input_uuid.is_none()
        && let Some(u) = out.children.iter_mut().find(|c| c.name == "uuid")
    {
        u.text = Some(GENERATED.into());
    }
    out.walk_mut(&mut |n| {
        if n.name == "mac"
            && let Some(a) = n.attrs.get_mut("address")
            && !macs.contains(&a.to_ascii_lowercase())
        {
            *a = GENERATED.into();
        }
    });
    if let Some(os) = out.children.iter_mut().find(|c| c.name == "os")
        && let Some(nv) = os.children.iter_mut().find(|c| c.name == "nvram")
        && let Some(t) = &nv.text
        && nvram.as_ref() != Some(t)
    {
        let base = t.rsplit('/').next().unwrap_or(t);
        nv.text = Some(format!("{GENERATED}/{base}"));
    }
}

/// One difference, from libvirt's answer (the expected one) to virtbus's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Diff {
    /// In libvirt's answer, not in virtbus's.
    Missing(String),
    /// In virtbus's answer, not in libvirt's.
    Extra(String),
    Changed {
        path: String,
        libvirt: String,
        virtbus: String,
    },
    /// The same children, in another order.
    Order(String),
}

impl Diff {
    pub fn path(&self) -> &str {
        match self {
            Diff::Missing(p) | Diff::Extra(p) | Diff::Order(p) => p,
            Diff::Changed { path, .. } => path,
        }
    }

    /// The kind and the path without what tells instances apart (positions, controller
    /// indices, disk targets): what the same missing default looks like in every file.
    pub fn general(&self) -> String {
        let kind = match self {
            Diff::Missing(_) => "missing",
            Diff::Extra(_) => "extra",
            Diff::Changed { .. } => "changed",
            Diff::Order(_) => "order",
        };
        format!("{kind} {}", generalize(self.path()))
    }
}

impl std::fmt::Display for Diff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Diff::Missing(p) => write!(f, "missing {p}"),
            Diff::Extra(p) => write!(f, "extra   {p}"),
            Diff::Changed {
                path,
                libvirt,
                virtbus,
            } => write!(
                f,
                "changed {path}: libvirt {libvirt:?}, virtbus {virtbus:?}"
            ),
            Diff::Order(p) => write!(f, "order   {p}/*"),
        }
    }
}

/// Predicates that only tell instances apart, dropped by [`Diff::general`].
const INSTANCE_PREDICATES: &[&str] = &["index", "dev"];

fn generalize(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find(']')
            .map(|c| open + c)
            .unwrap_or(rest.len() - 1);
        let pred = &rest[open + 1..close];
        let instance = pred.chars().all(|c| c.is_ascii_digit())
            || INSTANCE_PREDICATES
                .iter()
                .any(|p| pred.starts_with(&format!("@{p}=")));
        if !instance {
            out.push_str(&rest[open..=close]);
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// The attributes (of the element itself, or of a child: `(child, attr)`) that identify an
/// element among its siblings of the same name.
fn identity(n: &Node) -> Vec<(&'static str, Option<&'static str>)> {
    match n.name.as_str() {
        "controller" => vec![("type", None), ("index", None)],
        "disk" => vec![("dev", Some("target"))],
        "input" => vec![("type", None), ("bus", None)],
        "graphics" | "channel" | "serial" | "console" | "parallel" | "interface" | "listen"
        | "redirdev" | "smartcard" | "hostdev" | "filesystem" => vec![("type", None)],
        "timer" => vec![("name", None)],
        "boot" => vec![("dev", None)],
        "sound" | "rng" | "memballoon" | "watchdog" | "panic" | "tpm" | "iommu" => {
            vec![("model", None)]
        }
        "feature" => vec![("name", None)],
        _ => vec![],
    }
}

fn base_key(n: &Node) -> String {
    let mut k = short(&n.name);
    for (attr, child) in identity(n) {
        let v = match child {
            Some(c) => n.child(c).and_then(|c| c.attrs.get(attr)),
            None => n.attrs.get(attr),
        };
        if let Some(v) = v {
            k += &format!("[@{attr}='{v}']");
        }
    }
    k
}

/// A name with its namespace URI shortened to its last path segment.
fn short(name: &str) -> String {
    match name.strip_prefix('{').and_then(|r| r.split_once('}')) {
        Some((ns, local)) => {
            let tail = ns.trim_end_matches('/').rsplit('/').next().unwrap_or(ns);
            format!("{tail}:{local}")
        }
        None => name.to_owned(),
    }
}

/// The children's keys: the base key, then `[n]` for the n-th (n > 1) of that key.
fn keyed(children: &[Node]) -> Vec<(String, &Node)> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    children
        .iter()
        .map(|c| {
            let base = base_key(c);
            let n = seen.entry(base.clone()).or_insert(0);
            *n += 1;
            let key = if *n > 1 { format!("{base}[{n}]") } else { base };
            (key, c)
        })
        .collect()
}

/// The differences from `libvirt` to `virtbus`, in document order.
pub fn diff(libvirt: &Node, virtbus: &Node) -> Vec<Diff> {
    let mut out = Vec::new();
    let root = format!("/{}", short(&libvirt.name));
    if libvirt.name != virtbus.name {
        out.push(Diff::Changed {
            path: "/".into(),
            libvirt: libvirt.name.clone(),
            virtbus: virtbus.name.clone(),
        });
        return out;
    }
    diff_node(&root, libvirt, virtbus, &mut out);
    out
}

fn diff_node(path: &str, l: &Node, v: &Node, out: &mut Vec<Diff>) {
    let names: BTreeSet<&String> = l.attrs.keys().chain(v.attrs.keys()).collect();
    for a in names {
        let p = format!("{path}/@{a}");
        match (l.attrs.get(a), v.attrs.get(a)) {
            (Some(x), Some(y)) if x != y => out.push(Diff::Changed {
                path: p,
                libvirt: x.clone(),
                virtbus: y.clone(),
            }),
            (Some(_), None) => out.push(Diff::Missing(p)),
            (None, Some(_)) => out.push(Diff::Extra(p)),
            _ => {}
        }
    }
    match (&l.text, &v.text) {
        (Some(x), Some(y)) if x != y => out.push(Diff::Changed {
            path: format!("{path}/text()"),
            libvirt: x.clone(),
            virtbus: y.clone(),
        }),
        (Some(_), None) => out.push(Diff::Missing(format!("{path}/text()"))),
        (None, Some(_)) => out.push(Diff::Extra(format!("{path}/text()"))),
        _ => {}
    }
    let lk = keyed(&l.children);
    let vk = keyed(&v.children);
    let vmap: BTreeMap<&str, &Node> = vk.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    let lset: BTreeSet<&str> = lk.iter().map(|(k, _)| k.as_str()).collect();
    for (k, n) in &lk {
        let p = format!("{path}/{k}");
        match vmap.get(k.as_str()) {
            Some(m) => diff_node(&p, n, m, out),
            None => out.push(Diff::Missing(p)),
        }
    }
    for (k, _) in &vk {
        if !lset.contains(k.as_str()) {
            out.push(Diff::Extra(format!("{path}/{k}")));
        }
    }
    let common_l: Vec<&str> = lk
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| vmap.contains_key(k))
        .collect();
    let common_v: Vec<&str> = vk
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| lset.contains(k))
        .collect();
    if common_l != common_v {
        out.push(Diff::Order(path.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(xml: &str) -> Node {
        parse(xml).expect("xml")
    }

    #[test]
    fn layout_and_attribute_order_do_not_matter() {
        let a = n(
            "<domain type='qemu'><name>x</name><os><type arch='x86_64' machine='pc'>hvm</type></os></domain>",
        );
        let b = n(r#"<domain type="qemu">
              <name> x </name>
              <os>
                <type machine="pc" arch="x86_64">hvm</type>
              </os>
            </domain>"#);
        assert_eq!(a, b);
        assert!(diff(&a, &b).is_empty());
    }

    #[test]
    fn namespaces_compare_by_uri_not_prefix() {
        let a = n("<domain><metadata><a:x xmlns:a='http://e.org/ns/1'/></metadata></domain>");
        let b = n("<domain><metadata><ns0:x xmlns:ns0='http://e.org/ns/1'/></metadata></domain>");
        assert!(diff(&a, &b).is_empty());
        let c = n("<domain><metadata><a:x xmlns:a='http://e.org/ns/2'/></metadata></domain>");
        assert_eq!(
            diff(&a, &c),
            vec![
                Diff::Missing("/domain/metadata/1:x".into()),
                Diff::Extra("/domain/metadata/2:x".into())
            ]
        );
    }

    #[test]
    fn generated_values_are_normalized_unless_the_input_gave_them() {
        let input = n("<domain><name>x</name><devices>\
             <interface type='user'/>\
             <interface type='user'><mac address='52:54:00:AA:BB:CC'/></interface>\
             </devices></domain>");
        let mut out = n(
            "<domain><name>x</name><uuid>0b1c…</uuid><os><nvram>/var/lib/libvirt/qemu/nvram/x_VARS.fd</nvram></os><devices>\
             <interface type='user'><mac address='52:54:00:01:02:03'/></interface>\
             <interface type='user'><mac address='52:54:00:aa:bb:cc'/></interface>\
             </devices></domain>",
        );
        normalize(&mut out, &input);
        assert_eq!(out.child("uuid").unwrap().text.as_deref(), Some("*"));
        let os = out.child("os").unwrap();
        assert_eq!(
            os.child("nvram").unwrap().text.as_deref(),
            Some("*/x_VARS.fd")
        );
        let devs = &out.child("devices").unwrap().children;
        assert_eq!(devs[0].children[0].attrs["address"], "*");
        assert_eq!(devs[1].children[0].attrs["address"], "52:54:00:aa:bb:cc");

        // given ones stay, so that losing them shows
        let input = n("<domain><uuid>u1</uuid></domain>");
        let mut out = n("<domain><uuid>u2</uuid></domain>");
        normalize(&mut out, &input);
        assert_eq!(out.child("uuid").unwrap().text.as_deref(), Some("u2"));
    }

    #[test]
    fn children_match_by_identity_then_position() {
        let l = n("<domain><devices>\
             <controller type='usb' index='0' model='qemu-xhci'/>\
             <controller type='pci' index='0' model='pcie-root'/>\
             <controller type='pci' index='1' model='pcie-root-port'><address bus='0x00'/></controller>\
             <serial type='pty'/><serial type='pty'/>\
             </devices></domain>");
        let v = n("<domain><devices>\
             <controller type='pci' index='0' model='pcie-root'/>\
             <controller type='usb' index='0' model='piix3-uhci'/>\
             <serial type='pty'/>\
             <video/>\
             </devices></domain>");
        let d = diff(&l, &v);
        let shown: Vec<String> = d.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            shown,
            vec![
                "changed /domain/devices/controller[@type='usb'][@index='0']/@model: libvirt \"qemu-xhci\", virtbus \"piix3-uhci\"",
                "missing /domain/devices/controller[@type='pci'][@index='1']",
                "missing /domain/devices/serial[@type='pty'][2]",
                "extra   /domain/devices/video",
                "order   /domain/devices/*",
            ]
        );
        // a missing element is one difference, not one per attribute below it
        assert_eq!(d.len(), 5);
    }

    #[test]
    fn text_and_attributes() {
        let l = n(
            "<domain><memory unit='KiB'>1024</memory><currentMemory unit='KiB'>1024</currentMemory><on_crash>destroy</on_crash></domain>",
        );
        let v = n(
            "<domain><memory>2048</memory><currentMemory unit='KiB'>1024</currentMemory><on_crash/></domain>",
        );
        assert_eq!(
            diff(&l, &v),
            vec![
                Diff::Missing("/domain/memory/@unit".into()),
                Diff::Changed {
                    path: "/domain/memory/text()".into(),
                    libvirt: "1024".into(),
                    virtbus: "2048".into()
                },
                Diff::Missing("/domain/on_crash/text()".into()),
            ]
        );
    }

    #[test]
    fn general_paths_drop_instance_marks() {
        let d = Diff::Missing(
            "/domain/devices/controller[@type='pci'][@index='3']/address/@bus".into(),
        );
        assert_eq!(
            d.general(),
            "missing /domain/devices/controller[@type='pci']/address/@bus"
        );
        let d = Diff::Extra("/domain/devices/disk[@dev='vdb']/serial[@type='pty'][2]".into());
        assert_eq!(
            d.general(),
            "extra /domain/devices/disk/serial[@type='pty']"
        );
    }
}
