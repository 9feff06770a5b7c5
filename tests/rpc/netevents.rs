//! Network events and `virsh net-update` through libvirt's RPC protocol: an unchanged
//! `virsh net-event --loop` sees a network defined, started, stopped and undefined, and
//! `net-update … add ip-dhcp-host` changes the running network and its definition. The
//! daemon runs in a network namespace of the test's own.

use std::{
    io::Read,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::{Rpc, objects::Netns};

const QEMU: &str = "qemu:///system";

const NET: &str = "<network><name>evnet</name>\
    <uuid>6c1f7a2e-3d4b-4c5d-8e9f-0a1b2c3d4e60</uuid><forward mode='nat'/>\
    <bridge name='vbtev0'/><ip address='10.81.0.1' prefix='24'><dhcp>\
    <range start='10.81.0.10' end='10.81.0.50'/></dhcp></ip></network>";

#[tokio::test]
async fn virsh_net_event_and_net_update() {
    let ns = Netns::new("netev");
    let r = Rpc::start_in(&ns.0).await;
    let mut watcher = Command::new("virsh")
        .arg("-c")
        .arg(r.uri(QEMU))
        .args([
            "net-event",
            "--loop",
            "--timeout",
            "120",
            "--event",
            "lifecycle",
        ])
        .env("HOME", r.bus.dir.path())
        .env_remove("LIBVIRT_DEFAULT_URI")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("virsh net-event");
    // registered once the daemon has seen the call: wait for it rather than race
    let t = Instant::now();
    while !r.daemon.log_text().contains("opened qemu:///system")
        && t.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(700));

    let xml = r.bus.dir.path().join("evnet.xml");
    std::fs::write(&xml, NET).expect("xml");
    let xml = xml.to_string_lossy().into_owned();
    r.ok(QEMU, &["net-define", &xml]);
    r.ok(QEMU, &["net-start", "evnet"]);

    // a static DHCP host, live and in the definition
    let host = "<host mac='52:54:00:81:00:07' name='fixed' ip='10.81.0.77'/>";
    r.ok(
        QEMU,
        &[
            "net-update",
            "evnet",
            "add",
            "ip-dhcp-host",
            host,
            "--live",
            "--config",
        ],
    );
    for args in [
        &["net-dumpxml", "evnet"][..],
        &["net-dumpxml", "--inactive", "evnet"],
    ] {
        let x = r.ok(QEMU, args);
        assert!(x.contains("ip='10.81.0.77'"), "{args:?}: {x}");
    }
    // refused, typed, and nothing changed: an unknown section, a bad host
    let e = r.fails(
        QEMU,
        &[
            "net-update",
            "evnet",
            "add",
            "portgroup",
            "<portgroup name='p'/>",
        ],
    );
    assert!(e.contains("portgroup"), "{e}");
    let e = r.fails(
        QEMU,
        &[
            "net-update",
            "evnet",
            "add",
            "ip-dhcp-host",
            "<host mac='zz' ip='10.81.0.9'/>",
            "--live",
        ],
    );
    assert!(e.contains("zz"), "{e}");
    // read-only connections change nothing
    let e = r.fails(
        QEMU,
        &[
            "-r",
            "net-update",
            "evnet",
            "delete",
            "ip-dhcp-host",
            host,
            "--config",
        ],
    );
    assert!(e.contains("read only access prevents"), "{e}");
    r.ok(
        QEMU,
        &[
            "net-update",
            "evnet",
            "delete",
            "ip-dhcp-host",
            host,
            "--live",
            "--config",
        ],
    );
    assert!(!r.ok(QEMU, &["net-dumpxml", "evnet"]).contains("10.81.0.77"));

    r.ok(QEMU, &["net-destroy", "evnet"]);
    r.ok(QEMU, &["net-undefine", "evnet"]);

    // the watcher saw the four lifecycle events, in order
    let want = ["Defined", "Started", "Stopped", "Undefined"];
    let mut out = watcher.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let t = Instant::now();
    while seen.matches("event 'lifecycle'").count() < want.len()
        && t.elapsed() < Duration::from_secs(20)
    {
        if let Ok(b) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push_str(&String::from_utf8_lossy(&b));
        }
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    let got: Vec<&str> = seen
        .lines()
        .filter(|l| l.contains("event 'lifecycle' for network evnet"))
        .filter_map(|l| l.rsplit(' ').next())
        .collect();
    assert_eq!(got, want, "virsh net-event printed:\n{seen}");
}
