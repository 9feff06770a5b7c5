//! Virtual networks with real components, as root, hermetically: every test makes network
//! namespaces of its own, runs the network driver inside one (a thread moved there with
//! setns, so its netlink sockets, `nft` and dnsmasq all live there) and never touches the
//! host's interfaces or firewall. A second namespace plays the guest: a veth into the
//! bridge and busybox's udhcpc.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use virtbus::network::netlink::Links;
use virtbus::network::{Dirs, NetError, NetworkDriver, firewall};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace, deleted (with whatever still runs in it) on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!(
            "vbt-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name]);
        run("ip", &["-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }

    /// Runs `cmd` inside the namespace; panics when it fails.
    fn exec(&self, cmd: &[&str]) -> String {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend_from_slice(cmd);
        run("ip", &args)
    }

    fn ip(&self, args: &[&str]) -> String {
        let mut a = vec!["-n", &self.name];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    /// Runs `f` on a thread inside this namespace, with a current-thread runtime so that
    /// every socket and child process of the driver is made in the namespace.
    fn within<T: Send + 'static, F: Future<Output = T> + 'static>(
        &self,
        f: impl FnOnce() -> F + Send + 'static,
    ) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap();
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(f())
        })
        .join()
        .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn dirs(tmp: &Path) -> Dirs {
    Dirs {
        config: Some(tmp.join("config")),
        run: tmp.join("run"),
    }
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// The driver restarted over the same directories, as a new daemon would be.
async fn reopen(d: &Dirs) -> (std::sync::Arc<NetworkDriver>, usize) {
    let drv = NetworkDriver::new(d.clone(), true).unwrap();
    let active = drv.load(true).await;
    (drv, active)
}

#[test]
fn default_nat_network_serves_a_guest_and_is_adopted_after_restart() {
    let host = Netns::new("h");
    let guest = Netns::new("g");
    let tmp = tempfile::tempdir().unwrap();
    let d = dirs(tmp.path());

    // first start: `default` is defined, not started; then start it
    let d1 = d.clone();
    let (pid, index) = host.within(move || async move {
        let (drv, active) = reopen(&d1).await;
        assert_eq!(active, 0);
        let list = drv.list().await;
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!((list[0].name.as_str(), list[0].active), ("default", false));
        assert!(list[0].persistent && !list[0].autostart);
        let info = drv.start("default").await.unwrap();
        assert_eq!(info.bridge, "virbr0");
        let addrs = drv.bridge_addresses("default").await.unwrap();
        assert!(
            addrs.contains(&("192.168.122.1".parse().unwrap(), 24)),
            "{addrs:?}"
        );
        let links = Links::open().unwrap();
        let br = links.get("virbr0").await.unwrap().unwrap();
        assert!(br.is_bridge && br.up);
        assert!(firewall::table_exists("virbr0").await);
        let xml = drv.xml("default", false).await.unwrap();
        assert!(
            xml.contains("<bridge name='virbr0' stp='on' delay='0'/>"),
            "{xml}"
        );
        assert!(xml.contains("<forward mode='nat'/>"), "{xml}");
        (drv.dnsmasq_pid("default").expect("dnsmasq runs"), br.index)
    });
    assert!(pid_alive(pid));
    let rules = host.exec(&["nft", "list", "table", "inet", "virtbus_virbr0"]);
    assert!(rules.contains("masquerade"), "{rules}");
    assert_eq!(
        host.exec(&["cat", "/proc/sys/net/ipv4/ip_forward"]).trim(),
        "1"
    );

    // the guest: a veth into the bridge, a DHCP lease, a ping to the bridge
    host.ip(&[
        "link",
        "add",
        "vg0",
        "type",
        "veth",
        "peer",
        "name",
        "vg1",
        "netns",
        &guest.name,
    ]);
    host.ip(&["link", "set", "vg0", "master", "virbr0", "up"]);
    guest.ip(&["link", "set", "vg1", "up"]);
    let mac = guest.ip(&["-br", "link", "show", "vg1"]);
    let mac = mac.split_whitespace().nth(2).unwrap().to_string();
    let script = tmp.path().join("udhcpc.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n[ \"$1\" = bound ] || exit 0\nip addr add \"$ip/$subnet\" dev \"$interface\"\n",
    )
    .unwrap();
    run("chmod", &["+x", script.to_str().unwrap()]);
    guest.exec(&[
        "busybox",
        "udhcpc",
        "-i",
        "vg1",
        "-n",
        "-q",
        "-f",
        "-t",
        "20",
        "-T",
        "1",
        "-s",
        script.to_str().unwrap(),
    ]);
    let got = guest.ip(&["-4", "-br", "addr", "show", "vg1"]);
    assert!(got.contains("192.168.122."), "{got}");
    guest.exec(&["busybox", "ping", "-c", "1", "-W", "3", "192.168.122.1"]);

    // the lease shows; a restarted driver adopts bridge and dnsmasq instead of recreating
    let d2 = d.clone();
    let mac2 = mac.clone();
    host.within(move || async move {
        let (drv, active) = reopen(&d2).await;
        assert_eq!(active, 1);
        assert!(drv.info("default").await.unwrap().active);
        assert_eq!(
            drv.dnsmasq_pid("default"),
            Some(pid),
            "dnsmasq was replaced"
        );
        let br = Links::open().unwrap().get("virbr0").await.unwrap().unwrap();
        assert_eq!(br.index, index, "the bridge was recreated");
        let leases = drv.leases("default", None).await.unwrap();
        assert_eq!(leases.len(), 1, "{leases:?}");
        let l = &leases[0];
        assert_eq!(l.mac.unwrap().to_string(), mac2);
        assert_eq!((l.iface.as_str(), l.prefix), ("virbr0", 24));
        assert!(l.ip.to_string().starts_with("192.168.122."));
        assert_eq!(drv.leases_for_mac(&mac2).await.len(), 1);
    });

    // a restart after dnsmasq died and the table was flushed puts both back
    run("kill", &["-9", &pid.to_string()]);
    for _ in 0..50 {
        if !pid_alive(pid) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    host.exec(&["nft", "delete", "table", "inet", "virtbus_virbr0"]);
    let d3 = d.clone();
    let new_pid = host.within(move || async move {
        let (drv, active) = reopen(&d3).await;
        assert_eq!(active, 1);
        assert!(firewall::table_exists("virbr0").await);
        let p = drv.dnsmasq_pid("default").expect("dnsmasq started again");
        // stop removes bridge, table and dnsmasq
        let info = drv.stop("default").await.unwrap();
        assert!(!info.active && info.persistent);
        assert!(
            Links::open()
                .unwrap()
                .get("virbr0")
                .await
                .unwrap()
                .is_none()
        );
        assert!(!firewall::table_exists("virbr0").await);
        assert!(drv.dnsmasq_pid("default").is_none());
        p
    });
    assert_ne!(new_pid, pid);
    std::thread::sleep(Duration::from_millis(100));
    assert!(!pid_alive(new_pid), "dnsmasq {new_pid} still runs");
    // and a restart now finds it defined and inactive
    let d4 = d.clone();
    host.within(move || async move {
        let (drv, active) = reopen(&d4).await;
        assert_eq!(active, 0);
        assert_eq!(drv.list().await.len(), 1);
    });
}

#[test]
fn every_mode_starts_with_its_rules_and_stops_clean() {
    let host = Netns::new("m");
    let tmp = tempfile::tempdir().unwrap();
    let d = dirs(tmp.path());
    host.ip(&["link", "add", "br-host", "type", "bridge"]);
    host.within(move || async move {
        let drv = NetworkDriver::new(d, true).unwrap();
        drv.load(false).await;
        let nets = [
            ("iso", "<network><name>iso</name><ip address='10.10.0.1' prefix='24'>\
                     <dhcp><range start='10.10.0.10' end='10.10.0.20'/>\
                     <host mac='52:54:00:00:00:01' name='a' ip='10.10.0.5'/></dhcp></ip></network>", true),
            ("routed", "<network><name>routed</name><forward mode='route'/>\
                        <ip address='10.11.0.1' prefix='24'/>\
                        <ip family='ipv6' address='fd00:11::1' prefix='64'/></network>", true),
            ("natted", "<network><name>natted</name><forward mode='nat'><nat>\
                        <address start='10.99.0.1' end='10.99.0.3'/><port start='2000' end='3000'/>\
                        </nat></forward><mtu size='1400'/><domain name='lab' localOnly='yes'/>\
                        <dns><txt name='t' value='v'/><host ip='10.12.0.9'><hostname>h</hostname></host></dns>\
                        <ip address='10.12.0.1' netmask='255.255.255.0'>\
                        <dhcp><range start='10.12.0.2' end='10.12.0.9'/></dhcp></ip></network>", true),
            ("open", "<network><name>open</name><forward mode='open'/>\
                      <ip address='10.13.0.1' prefix='24'/></network>", false),
            ("hostbr", "<network><name>hostbr</name><forward mode='bridge'/>\
                        <bridge name='br-host'/></network>", false),
        ];
        for (name, xml, table) in nets {
            let info = drv.define(xml).await.unwrap();
            let info2 = drv.start(name).await.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(info2.active);
            assert_eq!(firewall::table_exists(&info.bridge).await, table, "{name}");
            let link = Links::open().unwrap().get(&info.bridge).await.unwrap();
            // a host bridge is used as it is; the others are made and brought up
            assert!(
                link.is_some_and(|l| l.is_bridge && (l.up || name == "hostbr")),
                "{name}"
            );
        }
        // mtu, and every dnsmasq running
        assert!(drv.dnsmasq_pid("iso").is_some());
        assert!(drv.dnsmasq_pid("natted").is_some());
        for (name, _, table) in nets {
            let info = drv.info(name).await.unwrap();
            drv.stop(name).await.unwrap();
            let link = Links::open().unwrap().get(&info.bridge).await.unwrap();
            if name == "hostbr" {
                assert!(link.is_some(), "the host's bridge must stay");
            } else {
                assert!(link.is_none(), "{name}: bridge left behind");
            }
            if table {
                assert!(!firewall::table_exists(&info.bridge).await, "{name}");
            }
            assert!(drv.dnsmasq_pid(name).is_none(), "{name}");
        }
    });
}

#[test]
fn bad_input_is_refused_typed_and_creates_nothing() {
    let host = Netns::new("b");
    let tmp = tempfile::tempdir().unwrap();
    let d = dirs(tmp.path());
    let cfg: PathBuf = tmp.path().join("config");
    host.ip(&["link", "add", "taken0", "type", "bridge"]);
    host.within(move || async move {
        let drv = NetworkDriver::new(d, true).unwrap();
        drv.load(true).await;
        let stored = || {
            let mut v: Vec<String> = std::fs::read_dir(&cfg)
                .unwrap()
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".xml"))
                .collect();
            v.sort();
            v
        };
        assert_eq!(stored(), ["default.xml"]);
        // an overlapping subnet
        match drv
            .define("<network><name>over</name><ip address='192.168.0.1' prefix='16'/></network>")
            .await
        {
            Err(NetError::Conflict { path, other, .. }) => {
                assert_eq!((path.as_str(), other.as_str()), ("/network/ip[1]/@address", "default"))
            }
            r => panic!("{r:?}"),
        }
        // another network's bridge
        match drv
            .define("<network><name>br</name><bridge name='virbr0'/></network>")
            .await
        {
            Err(NetError::Conflict { path, value, .. }) => {
                assert_eq!((path.as_str(), value.as_str()), ("/network/bridge/@name", "virbr0"))
            }
            r => panic!("{r:?}"),
        }
        // a host interface
        match drv
            .define("<network><name>host</name><bridge name='taken0'/></network>")
            .await
        {
            Err(NetError::HostLinkExists(n)) => assert_eq!(n, "taken0"),
            r => panic!("{r:?}"),
        }
        // a range outside the subnet, a name with '/'
        let e = drv
            .define("<network><name>r</name><ip address='10.5.0.1' prefix='24'><dhcp>\
                     <range start='10.6.0.2' end='10.6.0.9'/></dhcp></ip></network>")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("/network/ip[1]/dhcp/range[1]"), "{e}");
        let e = drv.define("<network><name>a/b</name></network>").await.unwrap_err();
        assert!(e.to_string().contains("/network/name"), "{e}");
        assert_eq!(stored(), ["default.xml"]);
        assert_eq!(drv.list().await.len(), 1);

        // a host bridge that does not exist: refused at start, nothing runs
        drv.define("<network><name>nobr</name><forward mode='bridge'/><bridge name='nosuch0'/></network>")
            .await
            .unwrap();
        match drv.start("nobr").await {
            Err(NetError::NoHostBridge(n)) => assert_eq!(n, "nosuch0"),
            r => panic!("{r:?}"),
        }
        assert!(!drv.info("nobr").await.unwrap().active);
        // the bridge name taken by the host after the definition: refused at start
        let info = drv
            .define("<network><name>late</name><bridge name='late0'/><ip address='10.7.0.1' prefix='24'>\
                     <dhcp><range start='10.7.0.2' end='10.7.0.9'/></dhcp></ip></network>")
            .await
            .unwrap();
        assert_eq!(info.bridge, "late0");
        let status = tokio::process::Command::new("ip")
            .args(["link", "add", "late0", "type", "bridge"])
            .status()
            .await
            .unwrap();
        assert!(status.success());
        match drv.start("late").await {
            Err(NetError::HostLinkExists(n)) => assert_eq!(n, "late0"),
            r => panic!("{r:?}"),
        }
        assert!(!firewall::table_exists("late0").await);
        assert!(drv.dnsmasq_pid("late").is_none());
        // state errors
        assert!(matches!(drv.stop("default").await, Err(NetError::NotActive(_))));
        assert!(matches!(drv.start("nosuch").await, Err(NetError::NotFound(_))));
    });
}
