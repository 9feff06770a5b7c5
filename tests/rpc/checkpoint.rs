//! virsh's `checkpoint-*` commands through the RPC socket: the test flavor against libvirt's
//! own test driver (one virsh session each, since `test:///default` forgets between runs),
//! and on the running tiny guest with a qcow2 disk of the test's own: persistent dirty
//! bitmaps seen by QEMU (`query-named-block-nodes`) and, shut off, in the image
//! (`qemu-img info`), the tree, deletes with children, metadata-only delete and redefine,
//! the undefine rule, and a daemon restart that keeps them.

use std::path::Path;

use super::{Rpc, guest, libvirt_test};

const TEST: &str = "test+unix:///default";
const QEMU: &str = "qemu:///system";

/// `<creationTime>` differs between two runs: drop it.
fn no_times(s: &str) -> String {
    s.lines()
        .filter(|l| !l.contains("<creationTime>"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn test_uri_checkpoints_are_libvirts_test_driver() {
    let r = Rpc::start().await;
    let script = "checkpoint-create-as test c1 --description first; \
                  checkpoint-create-as test c2; \
                  checkpoint-create-as test c3 --diskspec vda,checkpoint=no; \
                  checkpoint-list test --name; \
                  checkpoint-list test --tree; \
                  checkpoint-list test --roots --name; \
                  checkpoint-list test --leaves --name; \
                  checkpoint-list test --no-leaves --name; \
                  checkpoint-list test --topological --name; \
                  checkpoint-list test --from c1 --name; \
                  checkpoint-list test --from c1 --descendants --name; \
                  checkpoint-parent test c2; \
                  checkpoint-dumpxml test c2 --no-domain; \
                  checkpoint-dumpxml test c3 --no-domain --size; \
                  checkpoint-delete test c2; \
                  checkpoint-parent test c3; \
                  checkpoint-delete test c1 --children-only; \
                  checkpoint-list test --name; \
                  checkpoint-delete test c1; \
                  checkpoint-list test --name";
    let (ok, out, err) = r.virsh(TEST, &[script]);
    let (lok, lout, lerr) = libvirt_test(&[script]);
    assert_eq!(
        (ok, no_times(&out), err),
        (lok, no_times(&lout), lerr),
        "ours (left) differs from libvirt's test driver\n{}",
        r.daemon.log_text()
    );
    // the comparison compares something
    assert!(out.contains("c3"), "{out}");
    // errors, each in a session of its own
    for cmd in [
        // (our daemon keeps what the script made: these names are new to both)
        "checkpoint-create-as test r1; checkpoint-parent test r1",
        "checkpoint-dumpxml test nope",
        "checkpoint-delete test nope",
        "checkpoint-create-as test d1; checkpoint-create-as test d1",
        "checkpoint-create-as test x --diskspec vdz",
        "checkpoint-create test /nonexistent.xml",
    ] {
        let (ok, out, err) = r.virsh(TEST, &[cmd]);
        let (lok, lout, lerr) = libvirt_test(&[cmd]);
        assert_eq!(
            (ok, no_times(&out), err),
            (lok, no_times(&lout), lerr),
            "virsh {cmd}: ours (left) differs from libvirt's test driver"
        );
    }
}

fn bitmaps_in_image(img: &Path) -> Vec<String> {
    let info = guest::image_info(img, false);
    info["format-specific"]["data"]["bitmaps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| {
            b["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "auto"))
        })
        .filter_map(|b| b["name"].as_str().map(str::to_owned))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The persistent bitmaps of vda's node as the running QEMU has them.
fn bitmaps_live(r: &Rpc) -> Vec<String> {
    let out = r.ok(
        QEMU,
        &[
            "qemu-monitor-command",
            "tiny",
            r#"{"execute":"query-named-block-nodes","arguments":{"flat":true}}"#,
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let mut names: Vec<String> = v["return"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["node-name"] == "vb-vda")
        .flat_map(|n| n["dirty-bitmaps"].as_array().cloned().unwrap_or_default())
        .filter(|b| b["persistent"] == true)
        .filter_map(|b| b["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

fn names(r: &Rpc, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["checkpoint-list", "tiny", "--name"];
    args.extend_from_slice(extra);
    r.ok(QEMU, &args)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn checkpoints_on_a_running_guest_are_qcow2_bitmaps() {
    let mut r = Rpc::start().await;
    let dir = r.bus.dir.path().to_owned();
    let img = dir.join("vda.qcow2");
    guest::data_disk(&img);
    let xml_path = dir.join("tiny.xml");
    std::fs::write(&xml_path, guest::domain_xml("tiny", &img, "")).expect("write xml");
    let img_s = img.to_string_lossy().into_owned();
    r.ok(QEMU, &["define", &xml_path.to_string_lossy()]);

    // shut off: refused as libvirt 9.0 refuses
    let e = r.fails(QEMU, &["checkpoint-create-as", "tiny", "c0"]);
    assert!(
        e.contains("Operation not supported: cannot create checkpoint for inactive domain"),
        "{e}"
    );

    r.ok(QEMU, &["start", "tiny"]);
    r.ok(
        QEMU,
        &["checkpoint-create-as", "tiny", "c1", "--description", "one"],
    );
    r.ok(QEMU, &["checkpoint-create-as", "tiny", "c2"]);
    r.ok(QEMU, &["checkpoint-create-as", "tiny", "c3"]);
    assert_eq!(bitmaps_live(&r), ["c1", "c2", "c3"]);
    assert_eq!(names(&r, &[]), ["c1", "c2", "c3"]);
    assert_eq!(names(&r, &["--roots"]), ["c1"]);
    assert_eq!(names(&r, &["--leaves"]), ["c3"]);
    assert_eq!(names(&r, &["--from", "c1", "--descendants"]), ["c2", "c3"]);
    let tree = r.ok(QEMU, &["checkpoint-list", "tiny", "--tree"]);
    assert!(
        tree.contains("c1\n  |\n  +- c2\n      |\n      +- c3"),
        "{tree}"
    );
    assert_eq!(
        r.ok(QEMU, &["checkpoint-parent", "tiny", "c3"]).trim(),
        "c2"
    );
    let e = r.fails(QEMU, &["checkpoint-parent", "tiny", "c1"]);
    // virsh's own words for libvirt's VIR_ERR_NO_DOMAIN_CHECKPOINT here
    assert!(e.contains("checkpoint 'c1' has no parent"), "{e}");

    let xml = r.ok(
        QEMU,
        &["checkpoint-dumpxml", "tiny", "c2", "--no-domain", "--size"],
    );
    assert!(xml.contains("<parent>\n    <name>c1</name>"), "{xml}");
    assert!(
        xml.contains("<disk name='vda' checkpoint='bitmap' bitmap='c2' size='"),
        "{xml}"
    );
    assert!(!xml.contains("<domain "), "{xml}");
    let full = r.ok(QEMU, &["checkpoint-dumpxml", "tiny", "c1"]);
    assert!(full.contains("<description>one</description>"), "{full}");
    assert!(full.contains("<domain type='qemu'>"), "{full}");

    // bitmap names other than the checkpoint's are libvirt's refusal
    let e = r.fails(
        QEMU,
        &[
            "checkpoint-create-as",
            "tiny",
            "c9",
            "--diskspec",
            "vda,bitmap=other",
        ],
    );
    assert!(
        e.contains("bitmap for disk 'vda' must match checkpoint name 'c9'"),
        "{e}"
    );
    let e = r.fails(QEMU, &["checkpoint-dumpxml", "tiny", "nope"]);
    assert!(
        e.contains("Domain checkpoint not found: no domain checkpoint with matching name 'nope'"),
        "{e}"
    );

    // deleting the middle one moves its child up and removes its bitmap only
    r.ok(QEMU, &["checkpoint-delete", "tiny", "c2"]);
    assert_eq!(bitmaps_live(&r), ["c1", "c3"]);
    assert_eq!(
        r.ok(QEMU, &["checkpoint-parent", "tiny", "c3"]).trim(),
        "c1"
    );

    // metadata only: the bitmap stays, and a redefinition brings the checkpoint back
    let saved = r.ok(QEMU, &["checkpoint-dumpxml", "tiny", "c3"]);
    let saved_path = dir.join("c3.xml");
    std::fs::write(&saved_path, &saved).expect("write");
    r.ok(QEMU, &["checkpoint-delete", "tiny", "c3", "--metadata"]);
    assert_eq!(names(&r, &[]), ["c1"]);
    assert_eq!(bitmaps_live(&r), ["c1", "c3"]);
    r.ok(
        QEMU,
        &[
            "checkpoint-create",
            "tiny",
            &saved_path.to_string_lossy(),
            "--redefine",
            "--redefine-validate",
        ],
    );
    assert_eq!(names(&r, &[]), ["c1", "c3"]);
    assert_eq!(
        no_times(&r.ok(QEMU, &["checkpoint-dumpxml", "tiny", "c3"])),
        no_times(&saved)
    );

    // a restart of the daemon keeps them
    r.daemon.restart(&r.bus).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !r.virsh(QEMU, &["checkpoint-list", "tiny"]).0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            r.daemon.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(names(&r, &[]), ["c1", "c3"]);

    // with children: all bitmaps go
    r.ok(QEMU, &["checkpoint-delete", "tiny", "c1", "--children"]);
    assert!(names(&r, &[]).is_empty());
    assert!(bitmaps_live(&r).is_empty());

    // one more, then shut off: the bitmap is in the image, persistent
    r.ok(QEMU, &["checkpoint-create-as", "tiny", "last"]);
    r.ok(QEMU, &["destroy", "tiny"]);
    assert_eq!(bitmaps_in_image(&img), ["last"], "{img_s}");
    let e = r.fails(QEMU, &["checkpoint-delete", "tiny", "last"]);
    assert!(
        e.contains("cannot delete checkpoint for inactive domain"),
        "{e}"
    );
    let e = r.fails(QEMU, &["undefine", "tiny"]);
    assert!(
        e.contains(
            "Requested operation is not valid: cannot delete inactive domain with 1 checkpoints"
        ),
        "{e}"
    );
    r.ok(QEMU, &["undefine", "tiny", "--checkpoints-metadata"]);
}

/// The same checkpoint commands on Debian's libvirtd (the same domain XML, an image of its
/// own made the same way) and on virtbus: equal status, output (without creationTime) and
/// errors, and the same persistent bitmaps in each image once shut off.
#[tokio::test]
async fn checkpoints_answer_as_libvirtd() {
    use crate::support::libvirtd::Libvirtd;
    if let Err(why) = Libvirtd::available() {
        panic!("Debian's libvirtd is needed as the oracle: {why}");
    }
    let r = Rpc::start().await;
    let dir = r.bus.dir.path().to_owned();
    let (ours, theirs) = (dir.join("ours"), dir.join("theirs"));
    let lv = Libvirtd::start();
    let mut images = Vec::new();
    for side in [&ours, &theirs] {
        std::fs::create_dir_all(side).expect("mkdir");
        let img = side.join("vda.qcow2");
        guest::data_disk(&img);
        std::fs::write(side.join("tiny.xml"), guest::domain_xml("tiny", &img, "")).expect("xml");
        images.push(img);
    }
    let run = |args: &[&str]| -> [(bool, String, String); 2] {
        let side = |d: &Path| {
            args.iter()
                .map(|a| a.replace("SIDE", &d.to_string_lossy()))
                .collect::<Vec<_>>()
        };
        let mine = side(&ours);
        let mut q = vec!["-q"];
        q.extend(mine.iter().map(String::as_str));
        let (ok, out, err) = r.virsh(QEMU, &q);
        let theirs_args = side(&theirs);
        let t: Vec<&str> = theirs_args.iter().map(String::as_str).collect();
        let o = lv.virsh(&t);
        [
            (ok, no_times(&out), err),
            (
                o.status.success(),
                no_times(&String::from_utf8_lossy(&o.stdout)),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            ),
        ]
    };
    let same = |args: &[&str]| {
        let [a, b] = run(args);
        assert_eq!(
            a,
            b,
            "virsh {args:?}: ours (left) differs from libvirtd's\n{}",
            lv.log_text()
        );
        a.1
    };
    same(&["define", "SIDE/tiny.xml"]);
    same(&["checkpoint-create-as", "tiny", "c0"]);
    same(&["start", "tiny"]);
    same(&["checkpoint-create-as", "tiny", "c1", "--description", "one"]);
    same(&["checkpoint-create-as", "tiny", "c2"]);
    same(&["checkpoint-create-as", "tiny", "c3"]);
    same(&[
        "checkpoint-create-as",
        "tiny",
        "c9",
        "--diskspec",
        "vda,bitmap=other",
    ]);
    same(&["checkpoint-create-as", "tiny", "c9", "--diskspec", "vdz"]);
    same(&["checkpoint-create-as", "tiny", "c1"]);
    for list in [
        &["checkpoint-list", "tiny", "--name"][..],
        &["checkpoint-list", "tiny", "--tree"],
        &["checkpoint-list", "tiny", "--roots", "--name"],
        &["checkpoint-list", "tiny", "--leaves", "--name"],
        &["checkpoint-list", "tiny", "--no-leaves", "--name"],
        &["checkpoint-list", "tiny", "--topological", "--name"],
        &[
            "checkpoint-list",
            "tiny",
            "--from",
            "c1",
            "--descendants",
            "--name",
        ],
        &["checkpoint-parent", "tiny", "c2"],
        &["checkpoint-parent", "tiny", "c1"],
        &["checkpoint-dumpxml", "tiny", "c2", "--no-domain"],
        &["checkpoint-dumpxml", "tiny", "nope"],
    ] {
        same(list);
    }
    assert!(same(&["checkpoint-list", "tiny", "--name"]).contains("c3"));
    same(&["checkpoint-delete", "tiny", "c2"]);
    same(&["checkpoint-parent", "tiny", "c3"]);
    same(&["checkpoint-delete", "tiny", "c3", "--metadata"]);
    same(&["checkpoint-list", "tiny", "--name"]);
    same(&["checkpoint-delete", "tiny", "c1", "--children"]);
    same(&["checkpoint-create-as", "tiny", "last"]);
    same(&["destroy", "tiny"]);
    same(&["checkpoint-delete", "tiny", "last"]);
    same(&["undefine", "tiny"]);
    // c3's bitmap stayed (metadata-only delete), c1's went, `last` is there
    assert_eq!(bitmaps_in_image(&images[0]), bitmaps_in_image(&images[1]));
    assert_eq!(bitmaps_in_image(&images[0]), ["c3", "last"]);
    same(&["undefine", "tiny", "--checkpoints-metadata"]);
}
