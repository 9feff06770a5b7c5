//! genid, dumpCore, `<bios>` and vmcoreinfo against libvirt 9.0's genid.args,
//! machine-core-on.args, reboot-timeout-enabled.args and vmcoreinfo.args.

use super::tests::build_with;
use super::*;
use crate::drivers::qemu::caps::tests::x86_64;
use crate::model::FormatOptions;

const XML: &str = "<domain type='qemu'><name>t</name>\
    <uuid>00000000-0000-4000-8000-000000000001</uuid>\
    <genid>e9392370-2917-565e-692b-d057f46512d6</genid>\
    <memory dumpCore='on' unit='KiB'>219100</memory><os><type>hvm</type>\
    <bios useserial='yes' rebootTimeout='128'/></os><features><vmcoreinfo state='on'/>\
    </features><devices/></domain>";

#[test]
fn as_libvirt_writes_them() {
    let d = DomainDef::from_xml(XML).expect("parses");
    let mut caps = x86_64();
    caps.devices
        .extend(["sga", "vmgenid", "vmcoreinfo"].map(String::from));
    caps.devices.sort();
    let a = build_with(&d, &caps, Accel::Tcg)
        .expect("builds")
        .args
        .join(" ");
    for want in [
        "usb=off,dump-guest-core=on",
        "-boot reboot-timeout=128,strict=on",
        "-device sga -device vmgenid,guid=e9392370-2917-565e-692b-d057f46512d6,id=vmgenid0 \
         -device vmcoreinfo",
    ] {
        assert!(a.contains(want), "{want}: {a}");
    }
    let e = build_with(&d, &x86_64(), Accel::Tcg).expect_err("no sga");
    assert!(e.to_string().contains("useserial"), "{e}");
    let out = d.to_xml(&FormatOptions::default());
    for want in [
        "<uuid>00000000-0000-4000-8000-000000000001</uuid>\n  \
         <genid>e9392370-2917-565e-692b-d057f46512d6</genid>",
        "<memory dumpCore='on' unit='KiB'>219100</memory>",
        "<bios useserial='yes' rebootTimeout='128'/>\n  </os>",
        "<vmcoreinfo state='on'/>",
    ] {
        assert!(out.contains(want), "{want}\n{out}");
    }
    assert_eq!(DomainDef::from_xml(&out).expect("reparses"), d);
}

#[test]
fn an_empty_genid_is_made_once() {
    let d = DomainDef::from_xml(&XML.replace(
        "<genid>e9392370-2917-565e-692b-d057f46512d6</genid>",
        "<genid/>",
    ))
    .expect("parses");
    let g = d.genid.expect("made");
    let again = DomainDef::from_xml(&d.to_xml(&FormatOptions::default())).expect("reparses");
    assert_eq!(again.genid, Some(g));
    let bad = XML.replace("rebootTimeout='128'", "rebootTimeout='-2'");
    let e = DomainDef::from_xml(&bad).expect_err("range").to_string();
    assert!(e.contains("/domain/os/bios/@rebootTimeout"), "{e}");
}
