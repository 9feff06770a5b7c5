//! Generated-input tests of the XML model: deep nesting and random XML-ish text must give a
//! typed error or a value that round-trips, never a panic or a stack overflow.
//!
//! Every case runs on a thread with a small stack, so anything that recurses per level of
//! nesting fails here long before it could in the daemon.

use super::*;

/// xorshift64*: reproducible input without a dependency.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Runs `f` on a thread whose stack is far smaller than a tokio worker's.
fn small_stack(f: impl FnOnce() + Send + 'static) {
    let t = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .expect("spawn");
    assert!(t.join().is_ok(), "panicked or overflowed");
}

fn nested(open: &str, close: &str, depth: usize) -> String {
    let mut s = String::with_capacity((open.len() + close.len()) * depth);
    for _ in 0..depth {
        s.push_str(open);
    }
    for _ in 0..depth {
        s.push_str(close);
    }
    s
}

fn domain_with_metadata(meta: &str) -> String {
    format!(
        "<domain type='test'><name>d</name><memory>1024</memory><vcpu>1</vcpu>\
         <os><type>hvm</type></os><metadata>{meta}</metadata></domain>"
    )
}

/// Whether `r` is the nesting error, which must name its limit.
fn is_too_deep<T: std::fmt::Debug>(r: &std::result::Result<T, XmlError>) -> bool {
    match r {
        Err(e @ XmlError::TooDeep { limit, .. }) => {
            assert!(e.to_string().contains(&limit.to_string()), "{e}");
            *limit == MAX_XML_DEPTH || *limit == MAX_METADATA_DEPTH
        }
        _ => false,
    }
}

#[test]
fn deep_documents_are_refused_at_the_limit() {
    small_stack(|| {
        let fits = MAX_METADATA_DEPTH;
        for depth in [1, fits - 1, fits, fits + 1, MAX_XML_DEPTH, 5000, 50_000] {
            let meta = format!(
                "<app:r xmlns:app='urn:app'>{}</app:r>",
                nested("<app:a>", "</app:a>", depth - 1)
            );
            let r = DomainDef::from_xml(&domain_with_metadata(&meta));
            if depth <= fits {
                let def = r.expect("within the limit");
                let plain = def.metadata_element_plain("urn:app");
                assert!(matches!(plain, Ok(Some(_))), "{depth}: {plain:?}");
            } else {
                assert!(is_too_deep(&r), "{depth}: {r:?}");
            }
            let snap = format!(
                "<domainsnapshot><name>s</name>{}</domainsnapshot>",
                domain_with_metadata(&meta)
            );
            let r = SnapshotDef::from_xml(&snap);
            assert_eq!(is_too_deep(&r), depth > fits, "snapshot {depth}");
            let cookie = format!(
                "<domainsnapshot><name>s</name><cookie>{}</cookie></domainsnapshot>",
                nested("<a>", "</a>", depth)
            );
            assert_eq!(
                is_too_deep(&SnapshotDef::from_xml(&cookie)),
                depth > fits,
                "cookie {depth}"
            );
        }
        let flat = nested("<r>", "</r>", 100_000);
        let r = DomainDef::from_xml(&flat);
        assert!(
            matches!(
                r,
                Err(XmlError::TooDeep {
                    limit: MAX_XML_DEPTH,
                    ..
                })
            ),
            "{r:?}"
        );
        // At the limit, a domain with the deepest metadata still fits in a snapshot.
        let meta = nested("<app:a xmlns:app='urn:app'>", "</app:a>", fits);
        let def = DomainDef::from_xml(&domain_with_metadata(&meta)).expect("deepest metadata");
        let snap = SnapshotDef {
            name: Some("s".into()),
            domain: Some(def),
            ..Default::default()
        };
        let xml = snap.to_xml(&FormatOptions::default());
        SnapshotDef::from_xml(&xml).expect("snapshot of the deepest domain loads");
    });
}

#[test]
fn deep_metadata_is_refused_on_set_and_on_read_back() {
    small_stack(|| {
        let mut def = DomainDef::from_xml(&domain_with_metadata("")).expect("domain");
        for depth in [MAX_METADATA_DEPTH, MAX_METADATA_DEPTH + 1, 5000, 50_000] {
            let element = nested("<a>", "</a>", depth);
            let r = def.set_metadata_namespaced("urn:app", "app", Some(&element));
            assert_eq!(
                is_too_deep(&r),
                depth > MAX_METADATA_DEPTH,
                "{depth}: {r:?}"
            );
            let raw = format!(
                "<app:a xmlns:app='urn:app'>{}</app:a>",
                nested("<app:a>", "</app:a>", depth - 1)
            );
            let r = def.set_metadata_element("urn:app", Some(&raw));
            assert_eq!(
                is_too_deep(&r),
                depth > MAX_METADATA_DEPTH,
                "{depth}: {r:?}"
            );
        }
        // Metadata that got stored some other way (an older daemon, a hand-edited file)
        // reads back as an error, not a crash.
        def.metadata = Some(format!(
            "<app:a xmlns:app='urn:app'>{}</app:a>",
            nested("<app:a>", "</app:a>", 50_000)
        ));
        assert!(is_too_deep(&def.metadata_element_plain("urn:app")));
        assert!(def.set_metadata_element("urn:other", None).is_err());
        let xml = def.to_xml(&FormatOptions::default());
        assert!(is_too_deep(&DomainDef::from_xml(&xml)));
    });
}

/// Pieces of XML, well-formed or not, with nesting, namespaces, entities (some of them
/// characters XML forbids), comments and CDATA.
const PIECES: &[&str] = &[
    "<a>",
    "</a>",
    "<b x='1'>",
    "</b>",
    "<c/>",
    "<app:e xmlns:app='urn:app'>",
    "</app:e>",
    "<app:f/>",
    "text",
    " ",
    "&amp;",
    "&#xD800;",
    "&#1;",
    "&#x10FFFF;",
    "<!-- c -->",
    "<![CDATA[<x>]]>",
    "<?pi x?>",
    "<",
    ">",
    "'",
    "\u{1}",
    "é",
];

fn random_fragment(rng: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..rng.below(40) {
        if rng.below(20) == 0 {
            let depth = rng.below(3 * MAX_XML_DEPTH);
            s.push_str(&nested("<a>", "</a>", depth));
        } else {
            s.push_str(PIECES[rng.below(PIECES.len())]);
        }
    }
    s
}

#[test]
fn random_documents_give_errors_or_round_trip() {
    small_stack(|| {
        let mut rng = Rng::new(0x5eed_0001);
        let opts = FormatOptions::default();
        for _ in 0..3000 {
            let frag = random_fragment(&mut rng);
            if let Ok(def) = DomainDef::from_xml(&domain_with_metadata(&frag)) {
                let again = DomainDef::from_xml(&def.to_xml(&opts)).expect("round trip");
                assert_eq!(again, def);
                let _ = def.metadata_element_plain("urn:app");
            }
            let snap =
                format!("<domainsnapshot><name>s</name><cookie>{frag}</cookie></domainsnapshot>");
            if let Ok(def) = SnapshotDef::from_xml(&snap) {
                SnapshotDef::from_xml(&def.to_xml(&opts)).expect("snapshot round trip");
            }
            let _ = DomainDef::from_xml(&frag);
            let mut def = DomainDef::from_xml(&domain_with_metadata("")).expect("domain");
            if def
                .set_metadata_namespaced("urn:app", "app", Some(&frag))
                .is_ok()
            {
                let back = def.metadata_element_plain("urn:app").expect("read back");
                assert!(back.is_some());
                DomainDef::from_xml(&def.to_xml(&opts)).expect("stored metadata parses");
            }
        }
    });
}

#[test]
fn names_with_characters_xml_forbids_are_refused() {
    for name in [
        "a&#xD800;b",
        "a&#x85;b",
        "&#x9F;",
        "a&#1;",
        "a\u{1}b",
        "x&#xFFFF;",
    ] {
        let dom = format!(
            "<domain type='test'><name>{name}</name><memory>1024</memory><vcpu>1</vcpu>\
             <os><type>hvm</type></os></domain>"
        );
        assert!(DomainDef::from_xml(&dom).is_err(), "domain {name}");
        let snap = format!("<domainsnapshot><name>{name}</name></domainsnapshot>");
        assert!(SnapshotDef::from_xml(&snap).is_err(), "snapshot {name}");
    }
    for name in ["a\u{85}b", "\u{FFFF}", "a\u{1}"] {
        assert!(validate_name(NameKind::Snapshot, name).is_err(), "{name:?}");
    }
}
