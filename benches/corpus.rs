//! How much of libvirt 9.0's own domain XML test inputs virtbus defines losslessly.
//!
//! `cargo bench --bench corpus` reads every `*.xml` of libvirt's `tests/qemuxml2argvdata/` and
//! `tests/genericxml2xmlindata/` (from `LIBVIRT_SRC`, else `/work/src/libvirt-9.0.0`; get it
//! with `apt-get source libvirt`), keeps the x86 QEMU/KVM domains that need neither KVM nor
//! host hardware, defines each (with `type='kvm'` made `qemu`: this machine kind runs TCG) in a
//! `virtbusd` on a private bus through `DefineDomain`, and reads `GetXML(inactive)` back.
//!
//! An input is *lossless* when every element and attribute path it has (namespaced by local
//! name, without indices or values) is still in the answer: values may be canonicalized (units,
//! `kvm` → `qemu`) but nothing the user wrote may vanish. It prints the share, then the refusals
//! grouped by the element they name, and the paths lost by the inputs that defined but lost some
//! (`CORPUS_DETAIL=1` prints every refusal in full).
//!
//! Excluded, with their counts: the inputs libvirt's own tests expect to be refused
//! (`*PARSE_ERROR`, `*FAILURE`, `FAIL_*` in `qemuxml2argvtest.c` and `genericxml2xmltest.c`:
//! a correct daemon refuses them too), documents that are not a `<domain>`, other hypervisor
//! types, other architectures (only `qemu-system-x86_64` is installed), `<hostdev>` and
//! `<interface type='hostdev'>` (host hardware), and what only KVM can do (`host-passthrough` and
//! `host-model` CPUs, `<features><kvm>`, Hyper-V `mode='passthrough'`).

#[path = "../tests/support/mod.rs"]
mod support;
#[path = "common/xmlpaths.rs"]
mod xmlpaths;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use support::{Bus, Daemon, no_opts, opts, proxies};
use xmlpaths::{paths, refusal_key, zerr};
use zbus::Variant;

const DIRS: [&str; 2] = ["tests/qemuxml2argvdata", "tests/genericxml2xmlindata"];
/// The test programs that say which inputs of `DIRS` must be refused.
const PROGRAMS: [&str; 2] = ["tests/qemuxml2argvtest.c", "tests/genericxml2xmltest.c"];

/// The inputs libvirt's tests expect an error for: the first string of every test statement
/// whose macro or flags say failure.
fn expected_failures(src: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for p in PROGRAMS {
        let text = std::fs::read_to_string(src.join(p)).unwrap_or_default();
        for stmt in text.split(';') {
            let Some(call) = stmt.find("DO_TEST") else {
                continue;
            };
            let stmt = &stmt[call..];
            if stmt.starts_with("DO_TEST") && stmt.contains('(') && !stmt.contains("define") {
                let fails = [
                    "PARSE_ERROR",
                    "FAILURE",
                    "FAIL_ACTIVE",
                    "FAIL_INACTIVE",
                    "FAIL_PARSE",
                ]
                .iter()
                .any(|m| stmt.contains(m));
                let name = stmt.split('"').nth(1);
                if let (true, Some(name)) = (fails, name) {
                    out.insert(name.to_owned());
                }
            }
        }
    }
    out
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

/// Why an input is left out of the figure.
fn excluded(doc: &roxmltree::Document) -> Option<&'static str> {
    let root = doc.root_element();
    if root.tag_name().name() != "domain" {
        return Some("not a <domain>");
    }
    if !matches!(root.attribute("type"), Some("qemu" | "kvm")) {
        return Some("another hypervisor type");
    }
    let arch = root
        .descendants()
        .find(|n| n.has_tag_name("type") && n.parent().is_some_and(|p| p.has_tag_name("os")))
        .and_then(|t| t.attribute("arch"));
    if arch.is_some_and(|a| a != "x86_64" && a != "i686") {
        return Some("another architecture");
    }
    let mut hostdev = false;
    let mut kvm = false;
    for n in root.descendants().filter(|n| n.is_element()) {
        let name = n.tag_name().name();
        let parent = n.parent().map(|p| p.tag_name().name()).unwrap_or("");
        hostdev |=
            name == "hostdev" || (name == "interface" && n.attribute("type") == Some("hostdev"));
        kvm |= (name == "cpu"
            && matches!(n.attribute("mode"), Some("host-passthrough" | "host-model")))
            || (name == "kvm" && parent == "features")
            || (name == "hyperv" && n.attribute("mode") == Some("passthrough"));
    }
    if hostdev {
        return Some("host hardware (<hostdev>)");
    }
    if kvm {
        return Some("needs KVM");
    }
    None
}

/// The root's `type='kvm'` made `type='qemu'`.
fn as_qemu(xml: &str, doc: &roxmltree::Document) -> String {
    let root = doc.root_element();
    match root.attribute_node("type") {
        Some(a) if a.value() == "kvm" => {
            let r = a.range_value();
            format!("{}qemu{}", &xml[..r.start], &xml[r.end..])
        }
        _ => xml.to_owned(),
    }
}

fn inputs(src: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for d in DIRS {
        let dir = src.join(d);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            eprintln!(
                "{} is missing: set LIBVIRT_SRC to libvirt 9.0's source tree",
                dir.display()
            );
            std::process::exit(2);
        };
        files.extend(
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "xml")),
        );
    }
    files.sort();
    files
}

async fn run() {
    let src = PathBuf::from(
        std::env::var("LIBVIRT_SRC").unwrap_or_else(|_| "/work/src/libvirt-9.0.0".into()),
    );
    let files = inputs(&src);
    let must_fail = expected_failures(&src);
    let bus = Bus::start();
    let _daemon = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = proxies::manager(&conn).await;

    let mut out_of_scope: BTreeMap<&str, usize> = BTreeMap::new();
    let mut refused: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut lost: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let (mut scope, mut lossless, mut lossy) = (0usize, 0usize, 0usize);
    let started = std::time::Instant::now();
    for f in &files {
        let name = format!(
            "{}/{}",
            f.parent()
                .and_then(|p| p.file_name())
                .unwrap_or_default()
                .to_string_lossy(),
            f.file_name().unwrap_or_default().to_string_lossy()
        );
        let stem = f.file_stem().unwrap_or_default().to_string_lossy();
        if must_fail.contains(stem.as_ref()) {
            *out_of_scope
                .entry("libvirt's tests expect an error")
                .or_default() += 1;
            continue;
        }
        let Ok(text) = std::fs::read_to_string(f) else {
            *out_of_scope.entry("unreadable").or_default() += 1;
            continue;
        };
        let Ok(doc) = roxmltree::Document::parse(&text) else {
            *out_of_scope.entry("not well-formed").or_default() += 1;
            continue;
        };
        if let Some(why) = excluded(&doc) {
            *out_of_scope.entry(why).or_default() += 1;
            continue;
        }
        scope += 1;
        let xml = as_qemu(&text, &doc);
        let path = match mgr.define_domain(&xml, no_opts()).await {
            Ok(p) => p,
            Err(e) => {
                let msg = zerr(e);
                if std::env::var_os("CORPUS_DETAIL").is_some() {
                    println!("refused {name}: {msg}");
                }
                refused.entry(refusal_key(&msg)).or_default().push(name);
                continue;
            }
        };
        let dom = proxies::domain(&conn, &path).await;
        let answer = dom
            .get_xml(opts([
                ("inactive", Variant::from(true)),
                ("secure", Variant::from(true)),
            ]))
            .await;
        if dom.undefine(no_opts()).await.is_err() {
            let _ = dom.undefine(opts([("nvram", Variant::from(true))])).await;
        }
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                refused
                    .entry(format!("GetXML: {}", zerr(e)))
                    .or_default()
                    .push(name);
                continue;
            }
        };
        let Ok(out) = roxmltree::Document::parse(&answer) else {
            refused
                .entry("GetXML answer not well-formed".into())
                .or_default()
                .push(name);
            continue;
        };
        let have = paths(&out);
        let missing: Vec<String> = paths(&doc).difference(&have).cloned().collect();
        if missing.is_empty() {
            lossless += 1;
        } else {
            lossy += 1;
            for m in missing {
                lost.entry(m).or_default().push(name.clone());
            }
        }
    }

    let total = files.len();
    println!(
        "libvirt 9.0 domain XML test inputs ({}): {total} files, {scope} in scope \
         (x86 QEMU/KVM, valid for libvirt, no host hardware, no KVM-only feature)",
        DIRS.join(", ")
    );
    for (why, n) in &out_of_scope {
        println!("    excluded: {n:4}  {why}");
    }
    let pct = |n: usize| 100.0 * n as f64 / scope.max(1) as f64;
    println!(
        "defined losslessly: {lossless} of {scope} ({:.0}%); defined but lost paths: {lossy} \
         ({:.0}%); refused: {} ({:.0}%)   [{:.1} s]",
        pct(lossless),
        pct(lossy),
        scope - lossless - lossy,
        pct(scope - lossless - lossy),
        started.elapsed().as_secs_f64()
    );
    let mut by_count: Vec<_> = refused.iter().collect();
    by_count.sort_by_key(|(k, v)| (std::cmp::Reverse(v.len()), (*k).clone()));
    println!("\nrefusals by element (files):");
    for (k, v) in by_count {
        let eg: Vec<&str> = v.iter().take(2).map(|s| s.as_str()).collect();
        println!("    {:4}  {k}   e.g. {}", v.len(), eg.join(", "));
    }
    let mut by_count: Vec<_> = lost.iter().collect();
    by_count.sort_by_key(|(k, v)| (std::cmp::Reverse(v.len()), (*k).clone()));
    println!("\npaths lost by inputs that defined (files):");
    for (k, v) in by_count {
        println!("    {:4}  {k}   e.g. {}", v.len(), v[0]);
    }
}
