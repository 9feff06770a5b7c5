//! The client's typed API (src/cli/api.rs) against the interface XML it claims to speak: each
//! method's argument and result signatures, each property's type and access, each signal's
//! arguments. A change to either side that the other does not follow fails here.

use std::path::Path;

use crate::api::{self, Kind};

/// (kind, in-signature, out-signature or access) of `iface.member` in `dbus/<iface>.xml`.
fn lookup(iface: &str, member: &str) -> Option<(Kind, String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("dbus/{iface}.xml"));
    let text = std::fs::read_to_string(&path).expect("interface XML");
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&text, opts).expect("XML");
    let node = doc
        .descendants()
        .find(|n| n.has_tag_name("interface") && n.attribute("name") == Some(iface))?;
    let m = node
        .children()
        .find(|n| n.is_element() && n.attribute("name") == Some(member))?;
    let args = |dir: Option<&str>| -> String {
        m.children()
            .filter(|a| a.has_tag_name("arg"))
            .filter(|a| {
                dir.is_none() || a.attribute("direction").unwrap_or("in") == dir.unwrap_or("")
            })
            .filter_map(|a| a.attribute("type"))
            .collect()
    };
    match m.tag_name().name() {
        "method" => Some((Kind::Method, args(Some("in")), args(Some("out")))),
        "signal" => Some((Kind::Signal, args(None), String::new())),
        "property" => {
            let access = m.attribute("access").unwrap_or_default();
            Some((
                Kind::Property {
                    writable: access.contains("write"),
                },
                m.attribute("type").unwrap_or_default().to_owned(),
                String::new(),
            ))
        }
        _ => None,
    }
}

#[test]
fn every_member_the_client_uses_matches_the_interface_xml() {
    let mut wrong = Vec::new();
    let members = api::members();
    assert!(members.len() > 50, "the client's API lists its members");
    for m in members {
        let ours = (m.kind(), m.in_sig(), m.out_sig());
        match lookup(m.iface(), m.name()) {
            Some(theirs) if theirs == ours => {}
            Some(theirs) => wrong.push(format!(
                "{}.{}: client {ours:?}, XML {theirs:?}",
                m.iface(),
                m.name()
            )),
            None => wrong.push(format!("{}.{}: not in the XML", m.iface(), m.name())),
        }
    }
    assert!(
        wrong.is_empty(),
        "the client drifted from the API:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_check_itself_sees_a_wrong_signature() {
    // A method typed (s) → () where the XML says (a{sv}) → () must not pass.
    const WRONG: api::Method<(String,), ()> = api::Method::new(api::DOMAIN, "Start");
    let m: &dyn api::Member = &WRONG;
    let theirs = lookup(m.iface(), m.name()).expect("Start exists");
    assert_ne!((m.kind(), m.in_sig(), m.out_sig()), theirs);
    assert_eq!(theirs.1, "a{sv}");
}
