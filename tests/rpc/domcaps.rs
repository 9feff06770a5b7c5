//! Domain capabilities against Debian's libvirtd (private, see `support::libvirtd`) for the
//! same emulator, architecture and machine types (q35 and pc, TCG): the native
//! `GetDomainCapabilities` and `virsh domcapabilities` through our RPC socket give one
//! document, and it says what libvirt says but for the differences listed here (and in
//! README's "Domain capabilities"), each a thing virtbus really does not run, or libvirt
//! advertises without running it on this host. A difference not listed fails the test, and
//! so does a listed one that no longer occurs.

use std::collections::BTreeSet;

use zbus::Variant;

use super::Rpc;
use crate::support::{libvirtd::Libvirtd, opts, proxies::manager};

const QEMU: &str = "qemu:///system";

/// Entries libvirt has and virtbus has not, by prefix, with the reason.
const ONLY_LIBVIRT: &[(&str, &str)] = &[
    (
        "cpu/mode[host-model]",
        "host-model under TCG: libvirt names a model close to the host's; virtbus refuses it",
    ),
    (
        "devices/disk/enum[diskDevice]/value=lun",
        "no SCSI passthrough disks",
    ),
    ("devices/disk/enum[bus]/value=usb", "no USB disks"),
    ("devices/disk/enum[model]", "no <disk model>"),
    (
        "devices/graphics/enum[type]/value=sdl",
        "QEMU's SDL module (qemu-system-gui) is not installed: QEMU cannot show it",
    ),
    (
        "devices/graphics/enum[type]/value=egl-headless",
        "no DRM render node on this host: the start would fail",
    ),
    ("devices/hostdev", "no host device assignment"),
    (
        "devices/filesystem/enum[driverType]/value=handle",
        "QEMU 7.2 has no 'handle' 9p backend",
    ),
    (
        "devices/tpm/enum[backendModel]/value=external",
        "no external swtpm backend",
    ),
    (
        "features/backingStoreInput@supported=yes",
        "a <backingStore> in the definition is not used",
    ),
    ("features/backup@supported=yes", "no backup jobs"),
];

/// Entries virtbus has and libvirt has not, by prefix, with the reason.
const ONLY_VIRTBUS: &[(&str, &str)] = &[
    ("cpu/mode[host-model]@supported=no", "see above"),
    ("devices/hostdev@supported=no", "see above"),
    ("features/backingStoreInput@supported=no", "see above"),
    ("features/backup@supported=no", "see above"),
    (
        "cpu/mode[custom]/model=*-vN",
        "every CPU model QEMU has runs (the name goes to -cpu): its versioned names too, \
         which libvirt's CPU map leaves out",
    ),
    (
        "cpu/mode[custom]/model=Denverton",
        "QEMU's, not in libvirt 9.0's CPU map",
    ),
    (
        "cpu/mode[custom]/model=KnightsMill",
        "QEMU's, not in libvirt 9.0's CPU map",
    ),
];

/// Whether entry `e` is one `pattern` covers: a prefix, or with `*-vN` any versioned name
/// (`Broadwell-v2`) under the part before the star.
fn covers(pattern: &str, e: &str) -> bool {
    match pattern.strip_suffix("*-vN") {
        Some(head) => {
            e.starts_with(head)
                && e.rsplit_once("-v")
                    .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        }
        None => e.starts_with(pattern),
    }
}

/// A document as a set of `path@attribute=value` and `path=text` entries; elements are
/// told apart by their `name` attribute (`enum[bus]`, `mode[custom]`). CPU models compare
/// by name: whether one is usable under TCG is not probed (virtbus says `unknown`).
fn entries(xml: &str) -> BTreeSet<String> {
    fn walk(n: roxmltree::Node, path: &str, out: &mut BTreeSet<String>) {
        for c in n.children().filter(|c| c.is_element()) {
            let mut p = if path.is_empty() {
                c.tag_name().name().to_owned()
            } else {
                format!("{path}/{}", c.tag_name().name())
            };
            if let Some(name) = c.attribute("name") {
                p = format!("{p}[{name}]");
            }
            let model = c.has_tag_name("model") && path.ends_with("mode[custom]");
            if !model {
                for a in c.attributes().filter(|a| a.name() != "name") {
                    out.insert(format!("{p}@{}={}", a.name(), a.value()));
                }
            }
            if let Some(t) = c.text().map(str::trim).filter(|t| !t.is_empty()) {
                out.insert(format!("{p}={t}"));
            }
            walk(c, &p, out);
        }
    }
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("{e}:\n{xml}"));
    let mut out = BTreeSet::new();
    walk(doc.root_element(), "", &mut out);
    out
}

/// Entries of `a` not in `b` that no prefix of `allowed` covers, and the prefixes of
/// `allowed` that covered nothing.
fn unexplained(
    a: &BTreeSet<String>,
    b: &BTreeSet<String>,
    allowed: &[(&'static str, &'static str)],
    used: &mut BTreeSet<&'static str>,
) -> Vec<String> {
    let mut out = Vec::new();
    for e in a.difference(b) {
        match allowed.iter().find(|(p, _)| covers(p, e)) {
            Some((p, _)) => {
                used.insert(*p);
            }
            None => out.push(e.clone()),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_capabilities_match_libvirtd_but_for_the_listed_differences() {
    let lv = Libvirtd::start();
    let r = Rpc::start().await;
    let conn = r.bus.connect().await;
    let mgr = manager(&conn).await;
    let mut used = BTreeSet::new();
    for machine in ["q35", "pc"] {
        let args = [
            "domcapabilities",
            "--virttype",
            "qemu",
            "--arch",
            "x86_64",
            "--machine",
            machine,
        ];
        let out = lv.virsh(&args);
        assert!(out.status.success(), "libvirtd: {out:?}");
        let theirs = String::from_utf8_lossy(&out.stdout).into_owned();
        let ours = r.ok(QEMU, &args);
        let native = mgr
            .get_domain_capabilities(opts([
                ("type", Variant::from("qemu")),
                ("arch", Variant::from("x86_64")),
                ("machine", Variant::from(machine)),
            ]))
            .await
            .expect("GetDomainCapabilities");
        assert_eq!(native.trim(), ours.trim(), "native and RPC differ");
        let (t, o) = (entries(&theirs), entries(&ours));
        let missing = unexplained(&t, &o, ONLY_LIBVIRT, &mut used);
        let extra = unexplained(&o, &t, ONLY_VIRTBUS, &mut used);
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{machine}: libvirt only: {missing:#?}\nvirtbus only: {extra:#?}\n\
             libvirt:\n{theirs}\nvirtbus:\n{ours}"
        );
    }
    let stale: Vec<_> = ONLY_LIBVIRT
        .iter()
        .chain(ONLY_VIRTBUS)
        .filter(|(p, _)| !used.contains(p))
        .collect();
    assert!(
        stale.is_empty(),
        "listed differences that did not occur: {stale:?}"
    );
}
