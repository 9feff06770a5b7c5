//! Cockpit's Machines page itself, in headless Chromium, against `virtbusd --system
//! --libvirt-compat`: Debian's cockpit-ws and cockpit-machines, a private system bus, real
//! QEMU guests (see `harness.rs`). The browser side is `page.mjs` (playwright-core from
//! `package-lock.json`, installed with `npm ci --prefix tests/cockpit` by scripts/test.sh).
//! Screenshots of every step go to `<target>/cockpit-artifacts/<test>/`, which each test
//! prints.

#[path = "../support/mod.rs"]
mod support;

#[path = "../qemu/guest.rs"]
mod guest;

mod harness;

use std::time::{Duration, Instant};

use zbus::{OwnedObjectPath, Variant};

use harness::{CONNECT, Cockpit, DOMAIN, Netns, QEMU, artifacts};
use support::proxies;

/// The harness end to end, as it works today: Cockpit's shell loads in the browser through
/// cockpit-ws's local session, lists the Machines page from its manifest, reaches virtbusd's
/// org.libvirt through the bridge on the private system bus, and serves the page's bundle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cockpit_shell_loads_in_the_browser() {
    let art = artifacts("shell");
    let cockpit = Cockpit::start().await;
    tokio::task::block_in_place(|| {
        cockpit.browse("shell", &art, &[], Duration::from_secs(90));
    });
    assert!(art.join("01-shell.png").exists(), "no screenshot");
}

const RUNNING: &str = "vb-on";
const OFF: &str = "vb-off";

/// Define the test guest `name` through the facade, over a fresh data disk.
async fn define(cockpit: &Cockpit, name: &str) -> OwnedObjectPath {
    let disk = cockpit.dir.path().join(format!("{name}.qcow2"));
    guest::data_disk(&disk);
    let xml = guest::domain_xml(name, &disk, "");
    cockpit
        .call(QEMU, CONNECT, "DomainDefineXML", &(xml.as_str(),))
        .await
}

/// Wait until the guest agent of `name` answers (through the native API): the guest has
/// booted, with acpid for the page's Shut down.
async fn wait_booted(cockpit: &Cockpit, name: &str) {
    let conn = support::connect(&cockpit.address).await;
    let path = proxies::manager(&conn)
        .await
        .lookup_domain(name)
        .await
        .expect("lookup");
    let dom = proxies::domain(&conn, &path).await;
    let t = Instant::now();
    let limit = Duration::from_secs(120);
    loop {
        let r = dom
            .get_guest_info(support::opts([("types", Variant::from(vec!["hostname"]))]))
            .await;
        match r {
            Ok(_) => break,
            Err(e) => assert!(
                t.elapsed() < limit,
                "{name}'s agent did not answer within {limit:?}: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("{name} booted in {:?}", t.elapsed());
}

/// The Machines page with a running and a shut-off QEMU guest: the list shows both with
/// their states; the running one's overview, disks, network interfaces, consoles and
/// snapshots open; Shut down, Run and Force off work from the list; and nothing on the way
/// shows "Ooops!", a danger alert, "undefined", a page error or a console error.
///
/// The page depends on what libvirt always writes: without `<currentMemory>` it crashed while
/// loading (`TypeError: Cannot read properties of undefined (reading 'getAttribute')` in its
/// XML parser); without the `machine` of `<os><type>` in the inactive XML the shut-off VM
/// dropped out of the list; without `listen` on the live `<graphics type='vnc'>` the VNC
/// console could not connect; without `<cpu mode=…>` it showed "CPU type: undefined".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machines_page_shows_and_controls_vms() {
    let art = artifacts("machines");
    // The guest's kernel and initramfs are built (or found built) while the stack starts.
    let built = tokio::task::spawn_blocking(guest::dir);
    let cockpit = Cockpit::start().await;
    built.await.expect("guest build");
    let on = define(&cockpit, RUNNING).await;
    define(&cockpit, OFF).await;
    cockpit
        .call::<_, ()>(on.as_str(), DOMAIN, "Create", &(0u32,))
        .await;
    wait_booted(&cockpit, RUNNING).await;
    tokio::task::block_in_place(|| {
        cockpit.browse(
            "machines",
            &art,
            &[("VM_RUNNING", RUNNING), ("VM_OFF", OFF)],
            Duration::from_secs(240),
        );
    });
}

const NETWORK: &str = "org.libvirt.Network";

/// The Networks page over the system connection, with the daemon in a network namespace of
/// the test's own: the `default` network (defined on the system instance's first start,
/// started here) is listed with its bridge, NAT and state, and its details show its address
/// and DHCP range; a network created through the page's dialog is activated (its bridge
/// appears in the namespace), deactivated (the bridge goes) and deleted; and nothing on the
/// way shows "Ooops!", a danger alert, "undefined", a page error or a console error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_page_shows_and_controls_networks() {
    let art = artifacts("networks");
    let ns = Netns::new("networks");
    let cockpit = Cockpit::start_with(Some(&ns)).await;
    let default: OwnedObjectPath = cockpit
        .call(QEMU, CONNECT, "NetworkLookupByName", &("default",))
        .await;
    cockpit
        .call::<_, ()>(default.as_str(), NETWORK, "Create", &())
        .await;
    assert!(
        ns.ip(&["-br", "link", "show", "virbr0"]).contains("virbr0"),
        "default's bridge is not in the namespace"
    );
    const MADE: &str = "vbnet";
    // the page's dialog gives its network the lowest free virbrN: virbr1 after default's
    let watch = {
        let ns_name = ns.0.clone();
        std::thread::spawn(move || {
            // seen while active, gone afterwards: polled while the page runs
            let t = Instant::now();
            let mut seen = false;
            while t.elapsed() < Duration::from_secs(200) {
                let out = std::process::Command::new("ip")
                    .args(["-n", &ns_name, "-br", "link", "show", "virbr1"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                if out.contains("virbr1") {
                    seen = true;
                } else if seen {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            seen
        })
    };
    tokio::task::block_in_place(|| {
        cockpit.browse(
            "networks",
            &art,
            &[("NET_NEW", MADE)],
            Duration::from_secs(180),
        );
    });
    assert!(
        watch.join().expect("watcher"),
        "{MADE}'s bridge never appeared in the namespace, or stayed"
    );
    let names: Vec<OwnedObjectPath> = cockpit.call(QEMU, CONNECT, "ListNetworks", &(0u32,)).await;
    assert_eq!(names.len(), 1, "only default is left: {names:?}");
    assert!(
        !ns.ip(&["-br", "link"]).contains("virbr1"),
        "{MADE}'s bridge is left in the namespace"
    );
}

const POOL: &str = "org.libvirt.StoragePool";

/// The Storage pools page over the system connection: a dir pool in a directory of the
/// test's (under the state's images), with a raw and a qcow2 volume made through the facade, is listed active with its
/// size, and its details show its target path, type and both volumes (the raw one's 1 GB); one
/// volume deleted through the page leaves the pool (its file goes); a dir pool created through
/// the page's dialog is activated, deactivated and deleted (undefined: its directory stays).
/// The page checks the daemon's state after every step (through the bridge), and nothing on
/// the way shows "Ooops!", a danger alert, "undefined", a page error or a console error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_page_shows_and_controls_pools() {
    let art = artifacts("storage");
    let cockpit = Cockpit::start().await;
    const NAME: &str = "vbpool";
    const MADE: &str = "vbmade";
    // pools may live only under the directories virtbusd.toml allows: the state's images
    let images = cockpit.dir.path().join("state/images");
    let dir = images.join("pool");
    let made_dir = images.join("made");
    for d in [&dir, &made_dir] {
        std::fs::create_dir_all(d).expect("pool dir");
    }
    let xml = format!(
        "<pool type='dir'><name>{NAME}</name><target><path>{}</path></target></pool>",
        dir.display()
    );
    let pool: OwnedObjectPath = cockpit
        .call(QEMU, CONNECT, "StoragePoolDefineXML", &(xml.as_str(), 0u32))
        .await;
    cockpit
        .call::<_, ()>(pool.as_str(), POOL, "Create", &(0u32,))
        .await;
    let vol = |name: &str, format: &str, mib: u64| {
        format!(
            "<volume><name>{name}</name><capacity unit='MiB'>{mib}</capacity>\
             <target><format type='{format}'/></target></volume>"
        )
    };
    for (name, format, mib) in [("keep.img", "raw", 1024), ("drop.qcow2", "qcow2", 512)] {
        let _: OwnedObjectPath = cockpit
            .call(
                pool.as_str(),
                POOL,
                "StorageVolCreateXML",
                &(vol(name, format, mib).as_str(), 0u32),
            )
            .await;
        assert!(dir.join(name).exists(), "{name} was not created");
    }
    let dir_s = dir.display().to_string();
    let made_s = made_dir.display().to_string();
    tokio::task::block_in_place(|| {
        cockpit.browse(
            "storage",
            &art,
            &[
                ("POOL", NAME),
                ("POOL_PATH", &dir_s),
                ("VOL_KEEP", "keep.img"),
                ("VOL_DROP", "drop.qcow2"),
                ("POOL_NEW", MADE),
                ("POOL_NEW_PATH", &made_s),
            ],
            Duration::from_secs(240),
        );
    });
    assert!(dir.join("keep.img").exists(), "the kept volume's file went");
    assert!(
        !dir.join("drop.qcow2").exists(),
        "the deleted volume's file is left"
    );
    assert!(
        made_dir.is_dir(),
        "deleting an inactive pool removed its directory"
    );
    let pools: Vec<OwnedObjectPath> = cockpit
        .call(QEMU, CONNECT, "ListStoragePools", &(0u32,))
        .await;
    assert!(pools.contains(&pool), "{NAME} went: {pools:?}");
    for p in &pools {
        let name: String = cockpit.call(p.as_str(), POOL, "GetXMLDesc", &(0u32,)).await;
        assert!(!name.contains(MADE), "{MADE} is still defined: {name}");
    }
}
