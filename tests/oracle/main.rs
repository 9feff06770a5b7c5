//! libvirt as the oracle for domain XML: every file of `tests/oracle/corpus/` is defined in a
//! private Debian libvirtd (`virsh define`, read back with `virsh dumpxml --inactive
//! --security-info`) and in virtbusd's QEMU driver, through the native API (`DefineDomain`,
//! `GetXML` inactive and secure) and through the libvirt-dbus facade (`DomainDefineXML`,
//! `GetXMLDesc(INACTIVE|SECURE)`); the answers are compared structurally (see `canon`).
//!
//! The report (each file's status and differences, the totals, the most common differences)
//! is printed and saved to `target/oracle-report.txt`. `tests/oracle/expected.txt` records each
//! file's status; the test fails when one gets worse (refused < differ < match) or a file is
//! not recorded. `ORACLE_UPDATE=1` rewrites it from this run. `ORACLE_CORPUS=DIR` runs over
//! another directory (e.g. libvirt's tests/qemuxml2argvdata, to choose inputs) without the
//! check. See tests/oracle/README.md.

#[path = "../support/mod.rs"]
mod support;

mod canon;
mod flags;
mod live;
mod storage;

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    path::{Path, PathBuf},
    time::Instant,
};

use support::{libvirtd::Libvirtd, proxies};
use zbus::{OwnedObjectPath, Variant, proxy};

#[proxy(
    interface = "org.libvirt.Connect",
    default_service = "org.libvirt",
    default_path = "/org/libvirt/QEMU"
)]
trait Connect {
    #[zbus(name = "DomainDefineXML")]
    fn domain_define_xml(&self, xml: &str) -> zbus::Result<OwnedObjectPath>;
}

#[proxy(interface = "org.libvirt.Domain", default_service = "org.libvirt")]
trait LvDomain {
    #[zbus(name = "GetXMLDesc")]
    fn get_xml_desc(&self, flags: u32) -> zbus::Result<String>;
    fn create(&self, flags: u32) -> zbus::Result<()>;
    fn destroy(&self, flags: u32) -> zbus::Result<()>;
    fn undefine(&self, flags: u32) -> zbus::Result<()>;
}

const VIR_DOMAIN_XML_SECURE: u32 = 1;
const VIR_DOMAIN_XML_INACTIVE: u32 = 2;
const VIR_DOMAIN_XML_UPDATE_CPU: u32 = 4;
const VIR_DOMAIN_XML_MIGRATABLE: u32 = 8;
const VIR_DOMAIN_UNDEFINE_NVRAM: u32 = 4;

fn here() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracle"))
}

/// What one side made of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// libvirt refused it: nothing to compare with.
    LibvirtRefused(String),
    Refused(String),
    Differ(Vec<canon::Diff>),
    Match,
}

impl Outcome {
    /// `match`, `differ:N`, `refused` or `libvirt-refused`, as expected.txt has it.
    fn status(&self) -> String {
        match self {
            Outcome::LibvirtRefused(_) => "libvirt-refused".into(),
            Outcome::Refused(_) => "refused".into(),
            Outcome::Differ(d) => format!("differ:{}", d.len()),
            Outcome::Match => "match".into(),
        }
    }
}

/// How good a status is; `None` for libvirt-refused (not comparable).
fn rank(status: &str) -> Option<u8> {
    match status.split(':').next() {
        Some("match") => Some(3),
        Some("differ") => Some(2),
        Some("refused") => Some(1),
        _ => None,
    }
}

/// The canonical form of a daemon's answer, or why there is none.
fn canonical(out: &str, input: &canon::Node) -> Result<canon::Node, String> {
    let mut n = canon::parse(out).map_err(|e| format!("unparsable answer: {e}"))?;
    canon::normalize(&mut n, input);
    Ok(n)
}

fn compare(libvirt: &canon::Node, answer: Result<String, String>, input: &canon::Node) -> Outcome {
    match answer.and_then(|x| canonical(&x, input)) {
        Err(e) => Outcome::Refused(e),
        Ok(v) => {
            let d = canon::diff(libvirt, &v);
            if d.is_empty() {
                Outcome::Match
            } else {
                Outcome::Differ(d)
            }
        }
    }
}

/// libvirt's answer: define, dump, undefine.
fn libvirt(lv: &Libvirtd, file: &Path, name: &str) -> Result<String, String> {
    virsh_dump(
        lv,
        &["define", &file.to_string_lossy()],
        &["dumpxml", "--inactive", "--security-info", name],
        &["undefine", "--nvram", name],
    )
}

/// libvirt's XML of a domain `load` brings in (virsh `define` or `create`), read with `dump`
/// and taken away again with `remove`, which must work; libvirt's refusal in one line.
fn virsh_dump(
    lv: &Libvirtd,
    load: &[&str],
    dump: &[&str],
    remove: &[&str],
) -> Result<String, String> {
    let out = lv.virsh(load);
    if !out.status.success() {
        return Err(one_line(&String::from_utf8_lossy(&out.stderr)));
    }
    let out = lv.virsh(dump);
    let gone = lv.virsh(remove);
    assert!(
        gone.status.success(),
        "libvirt: {}: {}",
        remove.join(" "),
        String::from_utf8_lossy(&gone.stderr)
    );
    if !out.status.success() {
        return Err(one_line(&String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn zerr(e: zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, Some(msg), _) => format!("{name}: {}", one_line(&msg)),
        e => one_line(&e.to_string()),
    }
}

/// virtbus's answer through the native API.
async fn native(conn: &zbus::Connection, xml: &str) -> Result<String, String> {
    let m = proxies::manager(conn).await;
    let path = m
        .define_domain(xml, support::no_opts())
        .await
        .map_err(zerr)?;
    let d = proxies::domain(conn, &path).await;
    let out = d
        .get_xml(support::opts([
            ("inactive", Variant::from(true)),
            ("secure", Variant::from(true)),
        ]))
        .await
        .map_err(zerr);
    // (a domain left defined is harmless: every corpus file names its own)
    let _ = d.undefine(support::no_opts()).await;
    out
}

/// `xml` defined through the libvirt-dbus facade's QEMU connection: the new domain.
async fn facade_define(
    conn: &zbus::Connection,
    xml: &str,
) -> Result<LvDomainProxy<'static>, String> {
    let c = ConnectProxy::new(conn).await.expect("proxy");
    let path = c.domain_define_xml(xml).await.map_err(zerr)?;
    Ok(LvDomainProxy::builder(conn)
        .path(path)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .expect("proxy"))
}

/// virtbus's answer through the libvirt-dbus facade.
async fn facade(conn: &zbus::Connection, xml: &str) -> Result<String, String> {
    let d = facade_define(conn, xml).await?;
    let out = d
        .get_xml_desc(VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE)
        .await
        .map_err(zerr);
    if d.undefine(0).await.is_err() {
        let _ = d.undefine(VIR_DOMAIN_UNDEFINE_NVRAM).await;
    }
    out
}

struct FileResult {
    file: String,
    native: Outcome,
    facade: Outcome,
}

/// The corpus files, sorted.
fn corpus(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    files.sort();
    files
}

fn report(results: &[FileResult], elapsed: std::time::Duration) -> String {
    let mut r = String::new();
    let _ = writeln!(
        r,
        "libvirt 9.0 (virsh dumpxml --inactive --security-info) as the oracle for virtbus \
         (native: GetXML inactive+secure; facade: GetXMLDesc INACTIVE|SECURE)\n"
    );
    for f in results {
        let _ = writeln!(
            r,
            "{}  native={}  facade={}",
            f.file,
            f.native.status(),
            f.facade.status()
        );
        let mut show = |label: &str, o: &Outcome| match o {
            Outcome::LibvirtRefused(e) => {
                let _ = writeln!(r, "    libvirt refused: {e}");
            }
            Outcome::Refused(e) => {
                let _ = writeln!(r, "    {label} refused: {e}");
            }
            Outcome::Differ(d) => {
                for x in d {
                    let _ = writeln!(r, "    {label}: {x}");
                }
            }
            Outcome::Match => {}
        };
        show("native", &f.native);
        if f.facade != f.native {
            show("facade", &f.facade);
        }
    }
    let _ = writeln!(r, "\ntotals over {} files ({elapsed:.1?}):", results.len());
    for (label, pick) in [
        (
            "native",
            (|f: &FileResult| &f.native) as fn(&FileResult) -> &Outcome,
        ),
        ("facade", |f: &FileResult| &f.facade),
    ] {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for f in results {
            let k = match pick(f) {
                Outcome::Match => "match",
                Outcome::Differ(_) => "differ",
                Outcome::Refused(_) => "refused by virtbus",
                Outcome::LibvirtRefused(_) => "refused by libvirt",
            };
            *counts.entry(k).or_default() += 1;
        }
        let line: Vec<String> = [
            "match",
            "differ",
            "refused by virtbus",
            "refused by libvirt",
        ]
        .iter()
        .map(|k| format!("{k} {}", counts.get(k).copied().unwrap_or(0)))
        .collect();
        let _ = writeln!(r, "  {label}: {}", line.join(", "));
    }
    // The most common differences (native API), by the number of files they occur in.
    let mut common: HashMap<String, (usize, usize)> = HashMap::new();
    for f in results {
        if let Outcome::Differ(d) = &f.native {
            let mut seen = std::collections::HashSet::new();
            for x in d {
                let g = x.general();
                let e = common.entry(g.clone()).or_default();
                e.1 += 1;
                if seen.insert(g) {
                    e.0 += 1;
                }
            }
        }
    }
    let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
    for f in results {
        if let Outcome::Refused(e) = &f.native {
            *refusals.entry(without_domain_name(e)).or_default() += 1;
        }
    }
    let mut refusals: Vec<(String, usize)> = refusals.into_iter().collect();
    refusals.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let _ = writeln!(r, "\nwhy virtbus refused (native; files):");
    for (e, n) in &refusals {
        let _ = writeln!(r, "  {n:4}  {e}");
    }
    let mut common: Vec<(String, (usize, usize))> = common.into_iter().collect();
    common.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let _ = writeln!(r, "\nmost common differences (native; files, occurrences):");
    for (g, (files, n)) in common.iter().take(40) {
        let _ = writeln!(r, "  {files:4} {n:5}  {g}");
    }
    r
}

/// An error message without the domain's name (`domain 'x': …`), to group alike ones.
fn without_domain_name(e: &str) -> String {
    match e.find("domain '") {
        Some(i) => match e[i + 8..].find("': ") {
            Some(j) => format!("{}{}", &e[..i], &e[i + 8 + j + 3..]),
            None => e.to_owned(),
        },
        None => e.to_owned(),
    }
}

/// expected.txt: `file native=STATUS facade=STATUS` lines.
fn read_expected(path: &Path) -> BTreeMap<String, (String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut w = l.split_whitespace();
            let file = w.next().unwrap_or_default().to_owned();
            let mut get = |k: &str| {
                w.next()
                    .and_then(|x| x.strip_prefix(k))
                    .unwrap_or_else(|| panic!("{}: bad line {l:?}", path.display()))
                    .to_owned()
            };
            let n = get("native=");
            let f = get("facade=");
            (file, (n, f))
        })
        .collect()
}

fn write_expected(path: &Path, results: &[FileResult]) {
    let mut t = String::from(
        "# Each corpus file's status against libvirt, native API then facade: match, \
         differ:N (N differences),\n# refused (by virtbus) or libvirt-refused. The oracle \
         test fails when one gets worse;\n# regenerate with ORACLE_UPDATE=1 cargo test --test \
         oracle (see tests/oracle/README.md).\n",
    );
    for f in results {
        let _ = writeln!(
            t,
            "{} native={} facade={}",
            f.file,
            f.native.status(),
            f.facade.status()
        );
    }
    std::fs::write(path, t).expect("write expected.txt");
}

/// What got worse from `expected` to this run.
fn regressions(
    expected: &BTreeMap<String, (String, String)>,
    results: &[FileResult],
) -> Vec<String> {
    let mut bad = Vec::new();
    for f in results {
        let Some((en, ef)) = expected.get(&f.file) else {
            bad.push(format!("{}: not in expected.txt", f.file));
            continue;
        };
        for (label, was, now) in [
            ("native", en, f.native.status()),
            ("facade", ef, f.facade.status()),
        ] {
            let worse = match (rank(was), rank(&now)) {
                (Some(a), Some(b)) => b < a,
                // libvirt itself answers otherwise than recorded
                (None, None) => false,
                (None, Some(_)) | (Some(_), None) => true,
            };
            if worse {
                bad.push(format!("{}: {label} was {was}, now {now}", f.file));
            }
        }
    }
    for file in expected.keys() {
        if !results.iter().any(|f| &f.file == file) {
            bad.push(format!("{file}: in expected.txt, not in the corpus"));
        }
    }
    bad
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_against_libvirt() {
    let t0 = Instant::now();
    let custom = std::env::var_os("ORACLE_CORPUS").map(PathBuf::from);
    let dir = custom.clone().unwrap_or_else(|| here().join("corpus"));
    let files = corpus(&dir);
    assert!(!files.is_empty(), "no corpus in {}", dir.display());

    // On this thread, which lives as long as the test (libvirtd gets SIGTERM when the thread
    // that started it ends).
    let lv = std::sync::Arc::new(Libvirtd::start());
    let bus = support::Bus::start();
    let state = bus.dir.path().join("state");
    let runtime = bus.dir.path().join("run");
    let daemon = support::Daemon::start_with(&bus, &state, &runtime, &["--libvirt-compat"]).await;
    let conn = bus.connect().await;
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.expect("dbus");
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    while !dbus
        .name_has_owner("org.libvirt".try_into().expect("name"))
        .await
        .unwrap_or(false)
    {
        assert!(
            Instant::now() < deadline,
            "no org.libvirt:\n{}",
            daemon.log_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    eprintln!("libvirtd and virtbusd ready in {:.1?}", t0.elapsed());

    let mut results = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let xml = std::fs::read_to_string(file).expect("read corpus file");
        let input = canon::parse(&xml).unwrap_or_else(|e| panic!("{name}: {e}"));
        let dom_name = input
            .child("name")
            .and_then(|n| n.text.clone())
            .unwrap_or_else(|| panic!("{name}: no <name>"));
        // libvirt in a thread while virtbus answers
        let lv2 = lv.clone();
        let path = file.clone();
        let lv_job = tokio::task::spawn_blocking(move || libvirt(&lv2, &path, &dom_name));
        let native = native(&conn, &xml).await;
        let facade = facade(&conn, &xml).await;
        let (native, facade) = match lv_job.await.expect("libvirt job") {
            Err(e) => (
                Outcome::LibvirtRefused(e.clone()),
                Outcome::LibvirtRefused(e),
            ),
            Ok(out) => {
                let l = canonical(&out, &input).expect("libvirt's answer");
                (compare(&l, native, &input), compare(&l, facade, &input))
            }
        };
        results.push(FileResult {
            file: name,
            native,
            facade,
        });
    }
    let text = report(&results, t0.elapsed());
    println!("{text}");
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let out = target.parent().unwrap_or(&target).join("oracle-report.txt");
    std::fs::write(&out, &text).expect("write report");
    eprintln!("report saved to {}", out.display());

    if custom.is_some() {
        return;
    }
    let expected = here().join("expected.txt");
    if std::env::var_os("ORACLE_UPDATE").is_some_and(|v| v != "0") {
        write_expected(&expected, &results);
        eprintln!("{} rewritten", expected.display());
        return;
    }
    let bad = regressions(&read_expected(&expected), &results);
    assert!(
        bad.is_empty(),
        "worse than tests/oracle/expected.txt (ORACLE_UPDATE=1 records the current state):\n  {}",
        bad.join("\n  ")
    );
}

#[test]
fn statuses_only_move_forward() {
    let r = |n: Outcome| FileResult {
        file: "a.xml".into(),
        native: n,
        facade: Outcome::Match,
    };
    let exp: BTreeMap<String, (String, String)> = [(
        "a.xml".to_string(),
        ("differ:3".to_string(), "match".to_string()),
    )]
    .into();
    assert!(regressions(&exp, &[r(Outcome::Match)]).is_empty());
    assert!(regressions(&exp, &[r(Outcome::Differ(vec![]))]).is_empty());
    assert_eq!(
        regressions(&exp, &[r(Outcome::Refused("x".into()))]).len(),
        1
    );
    assert_eq!(
        regressions(&exp, &[r(Outcome::LibvirtRefused("x".into()))]).len(),
        1
    );
    assert_eq!(regressions(&BTreeMap::new(), &[r(Outcome::Match)]).len(), 1);
}
