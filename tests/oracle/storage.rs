//! libvirt as the oracle for storage XML: one directory is a dir pool of Debian's libvirtd
//! and of virtbus's storage subsystem at once. Volumes libvirt created are read back by both
//! (`virsh vol-dumpxml` against `Storage::volume_xml`), and volumes each side creates from
//! the same XML are compared with the pool path and file times set aside. Access times are
//! masked everywhere: reading a header to probe it may move them.

use virtbus::storage::{CreateOptions, PoolDef, Settings, Storage, VolDef};

use super::support::libvirtd::Libvirtd;

fn virsh_ok(lv: &Libvirtd, args: &[&str]) -> String {
    let out = lv.virsh(args);
    assert!(
        out.status.success(),
        "virsh {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        lv.log_text()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The XML with every line naming an access time replaced, and `from` renamed to `to`.
fn masked(xml: &str, from: &str, to: &str) -> String {
    xml.lines()
        .map(|l| {
            if l.trim_start().starts_with("<atime>") {
                "<atime/>".to_string()
            } else {
                l.replace(from, to)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// As [`masked`], with the modification and change times set aside too.
fn masked_times(xml: &str, from: &str, to: &str) -> String {
    masked(xml, from, to)
        .lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with("<mtime>") || t.starts_with("<ctime>") {
                "<time/>".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The pool XML with its file system figures (which move between two reads) masked.
fn masked_pool(xml: &str) -> String {
    xml.lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with("<allocation") || t.starts_with("<available") {
                "<fs-figure/>".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const VOLUMES: &[(&str, &str)] = &[
    (
        "raw.img",
        "<volume><name>raw.img</name><capacity unit='M'>4</capacity>\
         <allocation unit='M'>4</allocation><target><format type='raw'/></target></volume>",
    ),
    (
        "sparse.img",
        "<volume><name>sparse.img</name><capacity unit='M'>8</capacity>\
         <allocation>0</allocation><target><format type='raw'/>\
         <permissions><mode>0640</mode></permissions></target></volume>",
    ),
    (
        "disk.qcow2",
        "<volume><name>disk.qcow2</name><capacity unit='M'>16</capacity>\
         <target><format type='qcow2'/></target></volume>",
    ),
    (
        "lazy.qcow2",
        "<volume><name>lazy.qcow2</name><capacity unit='M'>16</capacity>\
         <target><format type='qcow2'/><features><lazy_refcounts/></features></target></volume>",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_xml_against_libvirt() {
    let lv = Libvirtd::start();
    let tmp = tempfile::Builder::new()
        .prefix("vbpool")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let lvdir = tmp.path().join("lv");
    let ourdir = tmp.path().join("ours");
    let lvpath = lvdir.to_str().expect("utf-8").to_string();
    let ourpath = ourdir.to_str().expect("utf-8").to_string();

    // libvirt's pool, built and started, with volumes made from XML
    let pool_xml = format!(
        "<pool type='dir'><name>lvpool</name><uuid>0f5f7e4e-4b1c-4a39-9a55-3c0d5b8f0a11</uuid>\
         <target><path>{lvpath}/</path><permissions><mode>0750</mode></permissions></target></pool>"
    );
    let pf = tmp.path().join("pool.xml");
    std::fs::write(&pf, &pool_xml).expect("pool xml");
    virsh_ok(&lv, &["pool-define", pf.to_str().expect("utf-8")]);
    let lv_inactive = virsh_ok(&lv, &["pool-dumpxml", "--inactive", "lvpool"]);
    virsh_ok(&lv, &["pool-build", "lvpool"]);
    virsh_ok(&lv, &["pool-start", "lvpool"]);
    for (name, xml) in VOLUMES {
        let f = tmp.path().join(format!("{name}.xml"));
        std::fs::write(&f, xml).expect("vol xml");
        virsh_ok(&lv, &["vol-create", "lvpool", f.to_str().expect("utf-8")]);
    }
    // a child of disk.qcow2, a directory and an ISO image libvirt finds on refresh
    let child = format!(
        "<volume><name>child.qcow2</name><capacity unit='M'>16</capacity>\
         <target><format type='qcow2'/></target><backingStore><path>{lvpath}/disk.qcow2</path>\
         <format type='qcow2'/></backingStore></volume>"
    );
    let f = tmp.path().join("child.xml");
    std::fs::write(&f, &child).expect("vol xml");
    virsh_ok(&lv, &["vol-create", "lvpool", f.to_str().expect("utf-8")]);
    std::fs::create_dir(lvdir.join("subdir")).expect("subdir");
    let mut iso = vec![0u8; 64 << 10];
    iso[0x8001..0x8006].copy_from_slice(b"CD001");
    std::fs::write(lvdir.join("cd.iso"), &iso).expect("iso");
    virsh_ok(&lv, &["pool-refresh", "lvpool"]);

    // virtbus's view of the same directory, defined from libvirt's own dump
    let storage = Storage::new(Settings {
        state_dir: None,
        pool_dirs: vec![tmp.path().to_path_buf()],
        default_pool: None,
        run_dir: None,
    });
    let mut diffs = Vec::new();
    let parsed = PoolDef::parse(&lv_inactive).expect("libvirt's pool XML parses");
    assert_eq!(
        parsed.to_xml(Default::default(), None),
        lv_inactive,
        "pool XML round trip"
    );
    storage.define(&lv_inactive).await.expect("define");
    assert_eq!(
        storage.pool_xml("lvpool", true).expect("xml"),
        lv_inactive,
        "inactive pool XML"
    );
    storage.start("lvpool").await.expect("start");
    let lv_live = virsh_ok(&lv, &["pool-dumpxml", "lvpool"]);
    let ours_live = storage.pool_xml("lvpool", false).expect("xml");
    if masked_pool(&lv_live) != masked_pool(&ours_live) {
        diffs.push(format!("pool:\nlibvirt:\n{lv_live}\nvirtbus:\n{ours_live}"));
    }
    let names = virsh_ok(&lv, &["vol-list", "lvpool", "--details"]);
    let mut count = 0;
    for name in [
        "raw.img",
        "sparse.img",
        "disk.qcow2",
        "lazy.qcow2",
        "child.qcow2",
        "subdir",
        "cd.iso",
    ] {
        assert!(names.contains(name), "libvirt lists no {name}:\n{names}");
        let theirs = virsh_ok(&lv, &["vol-dumpxml", "--pool", "lvpool", name]);
        let round = VolDef::parse(&theirs)
            .unwrap_or_else(|e| panic!("libvirt's XML of {name} does not parse: {e}"))
            .to_xml();
        if round != theirs {
            diffs.push(format!(
                "{name} round trip:\nlibvirt:\n{theirs}\nvirtbus:\n{round}"
            ));
        }
        let ours = storage.volume_xml("lvpool", name).expect("volume xml");
        if masked(&theirs, "", "") != masked(&ours, "", "") {
            diffs.push(format!(
                "{name} read:\nlibvirt:\n{theirs}\nvirtbus:\n{ours}"
            ));
        }
        count += 1;
    }

    // the same requests made by each side in a pool of its own
    let our_pool = format!(
        "<pool type='dir'><name>ours</name><target><path>{ourpath}</path>\
         <permissions><mode>0750</mode></permissions></target></pool>"
    );
    storage.define(&our_pool).await.expect("define ours");
    storage.build("ours").await.expect("build ours");
    storage.start("ours").await.expect("start ours");
    let mut requests: Vec<(&str, String)> =
        VOLUMES.iter().map(|(n, x)| (*n, x.to_string())).collect();
    requests.push(("child.qcow2", child.replace(&lvpath, &ourpath)));
    for (name, xml) in &requests {
        storage
            .create_volume("ours", xml, CreateOptions::default(), None)
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
        let theirs = virsh_ok(&lv, &["vol-dumpxml", "--pool", "lvpool", name]);
        let ours = storage.volume_xml("ours", name).expect("xml");
        if masked_times(&theirs, &lvpath, "POOL") != masked_times(&ours, &ourpath, "POOL") {
            diffs.push(format!(
                "{name} created:\nlibvirt:\n{theirs}\nvirtbus:\n{ours}"
            ));
        }
        count += 1;
    }
    assert!(
        diffs.is_empty(),
        "{} of {count} volume comparisons differ from libvirt:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    eprintln!("storage oracle: {count} volume comparisons and 3 pool comparisons match libvirt");
    virsh_ok(&lv, &["pool-destroy", "lvpool"]);
}
