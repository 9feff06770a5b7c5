//! How much of libvirt 9.0's LXC domain XML test inputs the LXC driver defines losslessly.
//!
//! `cargo bench --profile dev --bench lxccorpus` (as root: the LXC driver loads only then)
//! defines every `tests/lxcxml2xmldata/*.xml` of libvirt's source (`LIBVIRT_SRC`, else
//! `/tmp/libvirt-9.0.0`) in a `virtbusd` on a private bus through `DefineDomain`, reads
//! `GetXML(inactive)` back and prints, per file, lossless / lost paths / refused, then the
//! refusals grouped by the element they name. libvirt's `lxcxml2xmltest.c` expects every one
//! of these inputs to parse, so none is excluded. Lossless means every element and attribute
//! path of the input is still in the answer (values may be canonicalised).

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "common/xmlpaths.rs"]
mod xmlpaths;

use std::{collections::BTreeMap, path::PathBuf};

use support::{Bus, Daemon, no_opts, opts, proxies};
use zbus::Variant;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let src =
        PathBuf::from(std::env::var("LIBVIRT_SRC").unwrap_or_else(|_| "/tmp/libvirt-9.0.0".into()));
    let dir = src.join("tests/lxcxml2xmldata");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        eprintln!(
            "{} is missing: set LIBVIRT_SRC to libvirt 9.0's source tree",
            dir.display()
        );
        std::process::exit(2);
    };
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    files.sort();
    let bus = Bus::start();
    let _daemon = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = proxies::manager(&conn).await;

    let mut refused: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut lost: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let (mut lossless, mut lossy) = (0usize, 0usize);
    for f in &files {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let Ok(doc) = roxmltree::Document::parse(&text) else {
            println!("{name}: not well-formed");
            continue;
        };
        let path = match mgr.define_domain(&text, no_opts()).await {
            Ok(p) => p,
            Err(e) => {
                let msg = xmlpaths::zerr(e);
                println!("refused   {name}: {msg}");
                refused
                    .entry(xmlpaths::refusal_key(&msg))
                    .or_default()
                    .push(name);
                continue;
            }
        };
        let dom = proxies::domain(&conn, &path).await;
        let answer = dom.get_xml(opts([("inactive", Variant::from(true))])).await;
        let _ = dom.undefine(no_opts()).await;
        let answer = answer.unwrap_or_default();
        let Ok(out) = roxmltree::Document::parse(&answer) else {
            println!("refused   {name}: GetXML failed");
            refused.entry("GetXML".into()).or_default().push(name);
            continue;
        };
        let have = xmlpaths::paths(&out);
        let missing: Vec<String> = xmlpaths::paths(&doc).difference(&have).cloned().collect();
        if missing.is_empty() {
            println!("lossless  {name}");
            lossless += 1;
        } else {
            println!("lost      {name}: {}", missing.join(" "));
            lossy += 1;
            for m in missing {
                lost.entry(m).or_default().push(name.clone());
            }
        }
    }
    let total = files.len();
    println!(
        "\nlibvirt 9.0 tests/lxcxml2xmldata: {total} files; lossless {lossless}, defined but \
         lost paths {lossy}, refused {}",
        total - lossless - lossy
    );
    println!("refusals by element (files):");
    for (k, v) in &refused {
        println!("    {:3}  {k}   {}", v.len(), v.join(", "));
    }
    println!("paths lost (files):");
    for (k, v) in &lost {
        println!("    {:3}  {k}   {}", v.len(), v.join(", "));
    }
}
