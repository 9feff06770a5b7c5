//! Every `GetXMLDesc` flag against libvirt's: a few definitions of `tests/oracle/live/` are
//! defined and started in the private Debian libvirtd and, through the libvirt-dbus facade
//! (`DomainDefineXML`, `Create`, `GetXMLDesc(flags)`), in virtbusd; for each combination of
//! SECURE, INACTIVE, UPDATE_CPU and MIGRATABLE the two answers are compared (with the live
//! normalization of `live.rs`), running and then shut off.

use std::path::{Path, PathBuf};

use super::{
    VIR_DOMAIN_XML_INACTIVE as INACTIVE, VIR_DOMAIN_XML_MIGRATABLE as MIGRATABLE,
    VIR_DOMAIN_XML_SECURE as SECURE, VIR_DOMAIN_XML_UPDATE_CPU as UPDATE_CPU, canon, facade_define,
    live, one_line, support, zerr,
};
use support::libvirtd::Libvirtd;

/// The definitions compared, of `live/`. (Not `live-q35-virtio.xml`: libvirt writes the
/// virtio-serial controller it adds after the root ports it adds in the definition it keeps
/// from `define`, and before them once it parsed that definition again to start it; virtbus
/// writes the started order in both, see README.md.)
const SHAPES: &[&str] = &[
    "live-pc-console-vnc.xml",
    "live-pc-virtio.xml",
    "live-q35-sata.xml",
];

/// virsh's options for a flag set.
fn virsh_args(flags: u32) -> Vec<&'static str> {
    let mut a = vec!["dumpxml"];
    for (f, o) in [
        (SECURE, "--security-info"),
        (INACTIVE, "--inactive"),
        (UPDATE_CPU, "--update-cpu"),
        (MIGRATABLE, "--migratable"),
    ] {
        if flags & f != 0 {
            a.push(o);
        }
    }
    a
}

fn flag_names(flags: u32) -> String {
    let n: Vec<&str> = [
        (SECURE, "SECURE"),
        (INACTIVE, "INACTIVE"),
        (UPDATE_CPU, "UPDATE_CPU"),
        (MIGRATABLE, "MIGRATABLE"),
    ]
    .iter()
    .filter(|(f, _)| flags & f != 0)
    .map(|(_, n)| *n)
    .collect();
    if n.is_empty() {
        "0".into()
    } else {
        n.join("|")
    }
}

/// libvirt's answers for every flag set, running then shut off.
fn libvirt_answers(
    lv: &Libvirtd,
    file: &Path,
    name: &str,
) -> Vec<(String, Result<String, String>)> {
    let ok = |o: std::process::Output| {
        if o.status.success() {
            Ok(String::from_utf8_lossy(&o.stdout).into_owned())
        } else {
            Err(one_line(&String::from_utf8_lossy(&o.stderr)))
        }
    };
    let d = lv.virsh(&["define", &file.to_string_lossy()]);
    assert!(d.status.success(), "libvirt define {name}: {d:?}");
    let mut out = Vec::new();
    for running in [true, false] {
        if running {
            let s = lv.virsh(&["start", name]);
            assert!(s.status.success(), "libvirt start {name}: {s:?}");
        }
        for flags in 0..16 {
            let mut args = virsh_args(flags);
            args.push(name);
            out.push((key(running, flags), ok(lv.virsh(&args))));
        }
        if running {
            let s = lv.virsh(&["destroy", name]);
            assert!(s.status.success(), "libvirt destroy {name}: {s:?}");
        }
    }
    let u = lv.virsh(&["undefine", name]);
    assert!(u.status.success(), "libvirt undefine {name}: {u:?}");
    out
}

fn key(running: bool, flags: u32) -> String {
    format!(
        "{} {}",
        if running { "running" } else { "shut off" },
        flag_names(flags)
    )
}

async fn virtbus_answers(
    conn: &zbus::Connection,
    xml: &str,
) -> Vec<(String, Result<String, String>)> {
    let d = facade_define(conn, xml).await.expect("facade define");
    let mut out = Vec::new();
    for running in [true, false] {
        if running {
            d.create(0).await.expect("facade create");
        }
        for flags in 0..16 {
            out.push((
                key(running, flags),
                d.get_xml_desc(flags).await.map_err(zerr),
            ));
        }
        if running {
            d.destroy(0).await.expect("facade destroy");
        }
    }
    d.undefine(0).await.expect("facade undefine");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_flags_against_libvirt() {
    let _one = live::ONE_GUEST_AT_A_TIME.lock().await;
    let lv = Libvirtd::start();
    let bus = support::Bus::start();
    let state = bus.dir.path().join("state");
    let runtime = bus.dir.path().join("run");
    let daemon = support::Daemon::start_with(&bus, &state, &runtime, &["--libvirt-compat"]).await;
    let conn = bus.connect().await;
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.expect("dbus");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !dbus
        .name_has_owner("org.libvirt".try_into().expect("name"))
        .await
        .unwrap_or(false)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no org.libvirt:\n{}",
            daemon.log_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let images = tempfile::Builder::new()
        .prefix("vbflags")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let dump = std::env::var_os("LIVE_DUMP").map(PathBuf::from);

    let mut report = String::new();
    let (mut matched, mut total) = (0, 0);
    for (file, xml) in live::shapes(images.path())
        .into_iter()
        .filter(|(f, _)| SHAPES.contains(&f.as_str()))
    {
        live::make_images(&xml);
        let input = canon::parse(&xml).expect("shape");
        let name = input
            .child("name")
            .and_then(|n| n.text.clone())
            .expect("name");
        let path = images.path().join(&file);
        std::fs::write(&path, &xml).expect("write shape");
        let l = libvirt_answers(&lv, &path, &name);
        let v = virtbus_answers(&conn, &xml).await;
        for ((k, l), (_, v)) in l.iter().zip(&v) {
            total += 1;
            if let Some(d) = &dump {
                let f = k.replace([' ', '|'], "_");
                let _ = std::fs::write(
                    d.join(format!("{name}.{f}.libvirt.xml")),
                    l.clone().unwrap_or_else(|e| e),
                );
                let _ = std::fs::write(
                    d.join(format!("{name}.{f}.virtbus.xml")),
                    v.clone().unwrap_or_else(|e| e),
                );
            }
            let outcome = match (l, v) {
                (Err(le), Err(ve)) => {
                    // both refuse: the same flags are refused
                    Ok(format!("both refused (libvirt: {le}; virtbus: {ve})"))
                }
                (Err(le), Ok(_)) => Err(format!("libvirt refused ({le}), virtbus answered")),
                (Ok(_), Err(ve)) => Err(format!("virtbus refused: {ve}")),
                (Ok(l), Ok(v)) => {
                    let mut l = canon::parse(l).expect("libvirt's answer");
                    let mut v = canon::parse(v)
                        .map_err(|e| e.to_string())
                        .expect("virtbus xml");
                    live::normalize_live(&mut l, &input);
                    live::normalize_live(&mut v, &input);
                    let d = canon::diff(&l, &v);
                    if d.is_empty() {
                        Ok("match".into())
                    } else {
                        Err(d.iter().map(|x| format!("\n        {x}")).collect())
                    }
                }
            };
            match outcome {
                Ok(m) => {
                    matched += 1;
                    report += &format!("{file} {k}: {m}\n");
                }
                Err(d) => report += &format!("{file} {k}: DIFFER {d}\n"),
            }
        }
    }
    report += &format!("\nGetXMLDesc flags: {matched} of {total} answers as libvirt's\n");
    println!("{report}");
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let out = target
        .parent()
        .unwrap_or(&target)
        .join("oracle-flags-report.txt");
    std::fs::write(&out, &report).expect("write report");
    assert_eq!(matched, total, "{report}");
}
