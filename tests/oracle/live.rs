//! The live XML of a running guest against libvirt's: each definition of `tests/oracle/live/`
//! is started in the private Debian libvirtd (`virsh create`, then `virsh dumpxml
//! --security-info`) and in virtbusd's QEMU driver (`DefineDomain`, `Start`, `GetXML` secure),
//! one guest at a time, and the answers are compared structurally after normalizing what
//! differs by nature between two daemons running two processes: the domain id, ports, pty
//! paths and socket paths each made up (see [`normalize_live`]).
//!
//! Every shape must match exactly; a difference kept on purpose is normalized here with its
//! reason, and listed in tests/oracle/README.md.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use zbus::Variant;

use super::{canon, here, support, zerr};
use support::{libvirtd::Libvirtd, proxies};

/// Held by each test that runs guests, so that one guest runs at a time (TCG on a small
/// machine).
pub static ONE_GUEST_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Make what a running guest's XML holds that each daemon picks on its own read the same:
/// the domain `id`, VNC/SPICE ports, pty paths (`/dev/pts/N`) and the paths of unix sockets
/// the input did not name (each daemon keeps them in its own runtime directory).
pub fn normalize_live(out: &mut canon::Node, input: &canon::Node) {
    canon::normalize(out, input);
    let mut named = std::collections::HashSet::new();
    walk(input, &mut |n| {
        if n.name == "source"
            && let Some(p) = n.attrs.get("path")
        {
            named.insert(p.clone());
        }
    });
    if out.attrs.contains_key("id") {
        out.attrs.insert("id".into(), canon::GENERATED.into());
    }
    kept_differences(out, input);
    walk_mut(out, &mut |n| match n.name.as_str() {
        "graphics" => {
            for a in ["port", "tlsPort", "websocket"] {
                if let Some(v) = n.attrs.get_mut(a)
                    && v != "-1"
                {
                    *v = canon::GENERATED.into();
                }
            }
        }
        "serial" | "console" | "channel" | "parallel" => {
            if let Some(t) = n.attrs.get_mut("tty") {
                *t = canon::GENERATED.into();
            }
            for c in &mut n.children {
                if c.name == "source"
                    && let Some(p) = c.attrs.get_mut("path")
                    && !named.contains(p.as_str())
                {
                    *p = canon::GENERATED.into();
                }
            }
        }
        _ => {}
    });
}

/// The differences kept on purpose (tests/oracle/README.md lists them with their reasons),
/// taken out of both answers where the input did not ask for them:
/// - `<resource><partition>/machine</partition>`: libvirt names the cgroup partition it put
///   QEMU in; virtbus leaves cgroups to systemd-machined (registered outside the driver when
///   machined runs) and claims no partition.
/// - the guest CPU's `check='full'` and the features libvirt adds after start: libvirt reads
///   QEMU's CPUID feature words and rewrites the CPU against its own CPU map, which virtbus
///   does not carry.
fn kept_differences(out: &mut canon::Node, input: &canon::Node) {
    if input.child("resource").is_none() {
        out.children.retain(|c| c.name != "resource");
    }
    let given: Vec<String> = input
        .child("cpu")
        .map(|c| {
            c.children
                .iter()
                .filter(|f| f.name == "feature")
                .filter_map(|f| f.attrs.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let check_given = input
        .child("cpu")
        .is_some_and(|c| c.attrs.contains_key("check"));
    if let Some(cpu) = out.children.iter_mut().find(|c| c.name == "cpu") {
        if !check_given {
            cpu.attrs.remove("check");
        }
        cpu.children.retain(|f| {
            f.name != "feature" || f.attrs.get("name").is_some_and(|n| given.contains(n))
        });
    }
}

fn walk(n: &canon::Node, f: &mut impl FnMut(&canon::Node)) {
    f(n);
    for c in &n.children {
        walk(c, f);
    }
}

fn walk_mut(n: &mut canon::Node, f: &mut impl FnMut(&mut canon::Node)) {
    f(n);
    for c in &mut n.children {
        walk_mut(c, f);
    }
}

/// The live shapes, with `@DIR@` replaced by `dir`, where their disk images are made.
pub fn shapes(dir: &Path) -> Vec<(String, String)> {
    let src = here().join("live");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&src)
        .unwrap_or_else(|e| panic!("{}: {e}", src.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            let xml = std::fs::read_to_string(f)
                .expect("read shape")
                .replace("@DIR@", &dir.to_string_lossy());
            (name, xml)
        })
        .collect()
}

/// Every image a shape names, made as an empty 16 MiB qcow2.
pub fn make_images(xml: &str) {
    let doc = roxmltree::Document::parse(xml).expect("shape xml");
    for n in doc.descendants().filter(|n| n.has_tag_name("source")) {
        let Some(f) = n.attribute("file") else {
            continue;
        };
        if Path::new(f).exists() {
            continue;
        }
        let out = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", f, "16M"])
            .output()
            .expect("qemu-img");
        assert!(
            out.status.success(),
            "qemu-img create {f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// libvirt's live XML: create (transient), dump with secure info, destroy.
fn libvirt_live(lv: &Libvirtd, dir: &Path, name: &str, xml: &str) -> Result<String, String> {
    let file = dir.join(format!("{name}.lv.xml"));
    std::fs::write(&file, xml).expect("write shape");
    super::virsh_dump(
        lv,
        &["create", &file.to_string_lossy()],
        &["dumpxml", "--security-info", name],
        &["destroy", name],
    )
}

/// virtbus's live XML: define, start, read live with secure info, destroy, undefine.
async fn virtbus_live(conn: &zbus::Connection, xml: &str) -> Result<String, String> {
    let m = proxies::manager(conn).await;
    let path = m
        .define_domain(xml, support::no_opts())
        .await
        .map_err(zerr)?;
    let d = proxies::domain(conn, &path).await;
    let started = d.start(support::no_opts()).await.map_err(zerr);
    let out = match started {
        Ok(()) => {
            let out = d
                .get_xml(support::opts([("secure", Variant::from(true))]))
                .await
                .map_err(zerr);
            let _ = d.destroy(support::no_opts()).await;
            out
        }
        Err(e) => Err(e),
    };
    let _ = d.undefine(support::no_opts()).await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_xml_against_libvirt() {
    let _one = ONE_GUEST_AT_A_TIME.lock().await;
    let t0 = Instant::now();
    let lv = Libvirtd::start();
    let bus = support::Bus::start();
    let state = bus.dir.path().join("state");
    let runtime = bus.dir.path().join("run");
    let _daemon = support::Daemon::start_with(&bus, &state, &runtime, &[]).await;
    let conn = bus.connect().await;
    let images = tempfile::Builder::new()
        .prefix("vblive")
        .tempdir_in("/tmp")
        .expect("tempdir");

    let mut report = String::new();
    let mut failed = Vec::new();
    let mut matched = 0;
    let shapes = shapes(images.path());
    for (file, xml) in &shapes {
        make_images(xml);
        let input = canon::parse(xml).unwrap_or_else(|e| panic!("{file}: {e}"));
        let name = input
            .child("name")
            .and_then(|n| n.text.clone())
            .expect("name");
        // one guest at a time: libvirt's first, then virtbus's
        let l = libvirt_live(&lv, images.path(), &name, xml)
            .unwrap_or_else(|e| panic!("{file}: libvirt refused: {e}"));
        let v = virtbus_live(&conn, xml).await;
        if let Some(d) = std::env::var_os("LIVE_DUMP") {
            let d = PathBuf::from(d);
            let _ = std::fs::write(d.join(format!("{name}.libvirt.xml")), &l);
            let _ = std::fs::write(
                d.join(format!("{name}.virtbus.xml")),
                v.clone().unwrap_or_else(|e| e),
            );
        }
        let mut l = canon::parse(&l).expect("libvirt's answer");
        normalize_live(&mut l, &input);
        let outcome = v.and_then(|v| {
            let mut v = canon::parse(&v).map_err(|e| format!("unparsable answer: {e}"))?;
            normalize_live(&mut v, &input);
            Ok(canon::diff(&l, &v))
        });
        match outcome {
            Ok(d) if d.is_empty() => {
                matched += 1;
                report += &format!("{file}  match\n");
            }
            Ok(d) => {
                report += &format!("{file}  differ:{}\n", d.len());
                for x in &d {
                    report += &format!("    {x}\n");
                }
                failed.push(file.clone());
            }
            Err(e) => {
                report += &format!("{file}  refused: {e}\n");
                failed.push(file.clone());
            }
        }
    }
    report += &format!(
        "\nlive XML: {matched} of {} shapes match libvirt's ({:.1?})\n",
        shapes.len(),
        t0.elapsed()
    );
    println!("{report}");
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let out = target
        .parent()
        .unwrap_or(&target)
        .join("oracle-live-report.txt");
    std::fs::write(&out, &report).expect("write report");
    // give libvirtd's QEMU processes time to be reaped before the namespace goes
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(
        failed.is_empty(),
        "live XML differs from libvirt's for {failed:?}:\n{report}"
    );
}

#[test]
fn live_values_are_normalized_unless_the_input_gave_them() {
    let input = canon::parse(
        "<domain><name>x</name><devices>\
         <channel type='unix'><source mode='bind' path='/run/given.sock'/></channel>\
         <channel type='unix'/></devices></domain>",
    )
    .unwrap();
    let mut out = canon::parse(
        "<domain id='7'><name>x</name><devices>\
         <serial type='pty'><source path='/dev/pts/3'/></serial>\
         <console type='pty' tty='/dev/pts/3'><source path='/dev/pts/3'/></console>\
         <channel type='unix'><source mode='bind' path='/run/given.sock'/></channel>\
         <channel type='unix'><source mode='bind' path='/var/lib/x/ch.sock'/></channel>\
         <graphics type='vnc' port='5900' autoport='yes'/>\
         <graphics type='vnc' port='-1' autoport='no'/>\
         </devices></domain>",
    )
    .unwrap();
    normalize_live(&mut out, &input);
    assert_eq!(out.attrs["id"], "*");
    let devs = &out.child("devices").unwrap().children;
    assert_eq!(devs[0].children[0].attrs["path"], "*");
    assert_eq!(devs[1].attrs["tty"], "*");
    assert_eq!(devs[2].children[0].attrs["path"], "/run/given.sock");
    assert_eq!(devs[3].children[0].attrs["path"], "*");
    assert_eq!(devs[4].attrs["port"], "*");
    assert_eq!(devs[5].attrs["port"], "-1");
}
