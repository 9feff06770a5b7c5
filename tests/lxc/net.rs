//! Containers' `<interface>`s as veth pairs, with the daemon inside a network namespace
//! the test creates (`nsenter --net`): bridges, veths, dnsmasq and firewall rules never
//! touch the host's.

use std::process::Command;

use super::*;

/// A network namespace of the test's own, deleted (with what runs in it) on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("vbt-lxc{tag}-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        assert!(
            Command::new("ip")
                .args(["netns", "add", &name])
                .status()
                .expect("ip")
                .success()
        );
        let ns = Netns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NS ARGS`, which must succeed; its output.
    fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["-n", &self.0])
            .args(args)
            .output()
            .expect("ip");
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn has_link(&self, name: &str) -> bool {
        Command::new("ip")
            .args(["-n", &self.0, "link", "show", name])
            .output()
            .is_ok_and(|o| o.status.success())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.0]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

async fn setup_in(ns: &Netns) -> Setup {
    let bus = Bus::start();
    let launch = Launch {
        // nsenter, not `ip netns exec`: that would mount a sysfs of its own over /sys,
        // hiding the cgroup hierarchies the containers need
        prefix: vec![
            "nsenter".into(),
            format!("--net=/run/netns/{}", ns.0),
            "--".into(),
        ],
        ..Default::default()
    };
    let daemon = Daemon::start_launch(&bus, launch).await;
    let conn = bus.connect().await;
    let root = rootfs::build(bus.dir.path());
    Setup {
        bus,
        daemon,
        conn,
        root,
    }
}

fn attr_of(xml: &str, tag: &str, attr: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(xml).expect("xml");
    doc.descendants()
        .filter(|n| n.has_tag_name(tag))
        .filter_map(|n| n.attribute(attr).map(str::to_owned))
        .collect()
}

fn stat_u64(stats: &std::collections::HashMap<String, zbus::OwnedVariant>, k: &str) -> u64 {
    u64::try_from(
        stats
            .get(k)
            .unwrap_or_else(|| panic!("no {k} in {:?}", stats.keys()))
            .clone(),
    )
    .expect("u64")
}

/// A `bridge` interface with an address and a route, and an `ethernet` one named by
/// `<guest dev>`: the container sees `eth0` (with the MAC, address and route, up; it
/// pings the bridge) and `ext0` (down: no address, no link state), the host ends are in
/// the daemon's namespace (one in the bridge), counted in the statistics, and gone after
/// the container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_and_ethernet_interfaces_are_veth_pairs() {
    let ns = Netns::new("br");
    ns.ip(&["link", "add", "vbtbr0", "type", "bridge"]);
    ns.ip(&["addr", "add", "10.99.0.1/24", "dev", "vbtbr0"]);
    ns.ip(&["link", "set", "vbtbr0", "up"]);
    let s = setup_in(&ns).await;
    let script = "echo $(ls /sys/class/net) > /out/net; \
        cat /sys/class/net/eth0/address > /out/mac; \
        cat /sys/class/net/eth0/operstate > /out/eth0_state; \
        cat /sys/class/net/ext0/operstate > /out/ext0_state; \
        ip route > /out/routes; \
        for i in 1 2 3 4 5; do ping -c 1 -W 2 10.99.0.1 > /out/ping_out 2>&1 && break; done; \
        echo $? > /out/ping; while true; do sleep 1; done";
    let xml = rootfs::domain(
        "lxc-net",
        &s.root,
        script,
        "",
        "<interface type='bridge'><mac address='52:54:00:aa:00:01'/>\
         <source bridge='vbtbr0'/><ip address='10.99.0.2' prefix='24'/>\
         <route address='10.98.0.0' prefix='16' gateway='10.99.0.1'/></interface>\
         <interface type='ethernet'><mac address='52:54:00:aa:00:02'/><guest dev='ext0'/>\
         </interface>",
    );
    let dom = s.start(&xml).await;
    let out = s.out();
    assert_eq!(read_when_there(&out.join("net")).await, "eth0 ext0 lo");
    assert_eq!(read_when_there(&out.join("mac")).await, "52:54:00:aa:00:01");
    assert_eq!(read_when_there(&out.join("eth0_state")).await, "up");
    assert_eq!(read_when_there(&out.join("ext0_state")).await, "down");
    let routes = read_when_there(&out.join("routes")).await;
    assert!(
        routes.contains("10.98.0.0/16 via 10.99.0.1 dev eth0"),
        "{routes}"
    );
    let ping = read_when_there(&out.join("ping")).await;
    assert_eq!(
        ping,
        "0",
        "the container cannot ping the bridge: {}",
        std::fs::read_to_string(out.join("ping_out")).unwrap_or_default()
    );

    // the live XML names both ends, as libvirt's does
    let live = dom.get_xml(no_opts()).await.expect("xml");
    let hosts = attr_of(&live, "target", "dev");
    let guests = attr_of(&live, "guest", "dev");
    assert_eq!(guests, ["eth0", "ext0"], "{live}");
    assert_eq!(hosts.len(), 2, "{live}");
    assert_eq!(attr_of(&live, "guest", "actual").len(), 2, "{live}");
    // host ends live in the daemon's namespace only; the bridge's is its port, both up
    let ports = ns.ip(&["-br", "link", "show", "master", "vbtbr0"]);
    assert!(ports.contains(&hosts[0]), "{ports}");
    assert!(!ports.contains(&hosts[1]), "{ports}");
    for h in &hosts {
        assert!(ns.has_link(h));
        assert!(
            !Path::new("/sys/class/net").join(h).exists(),
            "{h} is in the host's namespace"
        );
    }
    // statistics: the bridge interface's counters, from the container's point of view
    let stats = dom.get_stats(no_opts()).await.expect("stats");
    assert_eq!(stat_u64(&stats, "net.count"), 2);
    assert!(stat_u64(&stats, "net.0.rx.pkts") >= 1, "{stats:?}");
    assert!(stat_u64(&stats, "net.0.tx.pkts") >= 1, "{stats:?}");

    dom.destroy(no_opts()).await.expect("destroy");
    until("the host ends to go", Duration::from_secs(5), || {
        hosts.iter().all(|h| !ns.has_link(h))
    })
    .await;
    assert!(ns.has_link("vbtbr0"), "the bridge is not the container's");
}

/// `type='network'`: refused with a typed error while the network is inactive (nothing
/// left running); on the active `default` network the container's udhcpc gets a lease
/// from the network's dnsmasq and pings the bridge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_interface_gets_a_lease_on_the_default_network() {
    let ns = Netns::new("dn");
    let s = setup_in(&ns).await;
    let mgr = manager(&s.conn).await;
    let net: zbus::OwnedObjectPath = s
        .conn
        .call_method(
            Some(NAME),
            MANAGER,
            Some("org.virtbus1.Manager"),
            "DefineNetwork",
            &(
                "<network><name>default</name><forward mode='nat'/>\
                 <bridge name='virbr0' stp='on' delay='0'/>\
                 <ip address='192.168.122.1' netmask='255.255.255.0'><dhcp>\
                 <range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip></network>",
                no_opts(),
            ),
        )
        .await
        .expect("define network")
        .body()
        .deserialize()
        .expect("path");
    std::fs::write(
        s.root.join("bin/lease"),
        "#!/bin/sh\n[ \"$1\" = bound ] || exit 0\n\
         ifconfig \"$interface\" \"$ip\" netmask \"$subnet\"\necho \"$ip\" > /out/lease\n",
    )
    .expect("script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        s.root.join("bin/lease"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    let script = "ip link set eth0 up; \
        udhcpc -i eth0 -n -q -f -t 20 -T 1 -s /bin/lease > /out/dhcp_out 2>&1; \
        echo $? > /out/dhcp; ping -c 1 -W 3 192.168.122.1 > /out/ping_out 2>&1; \
        echo $? > /out/ping; while true; do sleep 1; done";
    let xml = rootfs::domain(
        "lxc-dhcp",
        &s.root,
        script,
        "",
        "<interface type='network'><source network='default'/></interface>",
    );
    let path = mgr.define_domain(&xml, no_opts()).await.expect("define");
    let dom = domain(&s.conn, &path).await;
    let r = dom.start(no_opts()).await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.InvalidState", "{r:?}");
    assert!(
        error_message(&r).contains("network 'default' is not active"),
        "{r:?}"
    );
    assert_eq!(dom.state().await.expect("state"), "shut-off");
    assert!(!cgroup_dir("unified", "lxc-dhcp").exists());

    let () = s
        .conn
        .call_method(
            Some(NAME),
            net.as_str(),
            Some("org.virtbus1.Network"),
            "Start",
            &(),
        )
        .await
        .expect("start network")
        .body()
        .deserialize()
        .expect("unit");
    dom.start(no_opts())
        .await
        .unwrap_or_else(|e| panic!("start: {e}\n{}", s.daemon.log_text()));
    let out = s.out();
    let rc = read_when_there(&out.join("dhcp")).await;
    assert_eq!(
        rc,
        "0",
        "udhcpc: {}",
        std::fs::read_to_string(out.join("dhcp_out")).unwrap_or_default()
    );
    let lease = read_when_there(&out.join("lease")).await;
    assert!(lease.starts_with("192.168.122."), "{lease}");
    assert_eq!(
        read_when_there(&out.join("ping")).await,
        "0",
        "{}",
        std::fs::read_to_string(out.join("ping_out")).unwrap_or_default()
    );
    let live = dom.get_xml(no_opts()).await.expect("xml");
    assert_eq!(attr_of(&live, "source", "bridge"), ["virbr0"], "{live}");
    let host = attr_of(&live, "target", "dev").remove(0);
    let ports = ns.ip(&["-br", "link", "show", "master", "virbr0"]);
    assert!(ports.contains(&host), "{ports}");
    dom.destroy(no_opts()).await.expect("destroy");
    until("the host end to go", Duration::from_secs(5), || {
        !ns.has_link(&host)
    })
    .await;
}

/// `type='ethernet'` with host-side `<source><ip>`/`<route>` (libvirt's lxc-ethernet-hostip):
/// the host end gets the point-to-point address and the route, the container end its own;
/// the container pings the host end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ethernet_interface_gets_host_side_addresses_and_routes() {
    let ns = Netns::new("eh");
    let s = setup_in(&ns).await;
    let script = "for i in 1 2 3 4 5; do ping -c 1 -W 2 10.97.0.1 > /out/ping_out 2>&1 && break; \
        done; echo $? > /out/ping; while true; do sleep 1; done";
    let xml = rootfs::domain(
        "lxc-hostip",
        &s.root,
        script,
        "",
        "<interface type='ethernet'><mac address='52:54:00:aa:00:03'/>\
         <source><ip address='10.97.0.1' family='ipv4' prefix='32' peer='10.97.0.2'/>\
         <route family='ipv4' address='10.96.0.0' prefix='16' gateway='10.97.0.2'/></source>\
         <ip address='10.97.0.2' family='ipv4' prefix='32' peer='10.97.0.1'/>\
         <target dev='vbthost0'/><guest dev='eth0'/></interface>",
    );
    let dom = s.start(&xml).await;
    let out = s.out();
    let ping = read_when_there(&out.join("ping")).await;
    assert_eq!(
        ping,
        "0",
        "the container cannot ping the host end: {}",
        std::fs::read_to_string(out.join("ping_out")).unwrap_or_default()
    );
    let addrs = ns.ip(&["-4", "addr", "show", "dev", "vbthost0"]);
    assert!(
        addrs.contains("inet 10.97.0.1 peer 10.97.0.2/32"),
        "{addrs}"
    );
    let routes = ns.ip(&["route"]);
    assert!(
        routes.contains("10.96.0.0/16 via 10.97.0.2 dev vbthost0"),
        "{routes}"
    );
    // the definition's <source> is kept
    let live = dom.get_xml(no_opts()).await.expect("xml");
    assert!(
        live.contains("<route family='ipv4' address='10.96.0.0' prefix='16' gateway='10.97.0.2'/>"),
        "{live}"
    );
    dom.destroy(no_opts()).await.expect("destroy");
    until("the host end to go", Duration::from_secs(5), || {
        !ns.has_link("vbthost0")
    })
    .await;
}
