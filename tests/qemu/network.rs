//! A real guest on the `default` NAT network: the whole daemon (with the libvirt-dbus
//! facade) runs inside a network namespace this test creates (`ip netns exec`), so its
//! bridge, taps, nftables table and dnsmasq never touch the host's. The guest gets a lease
//! from dnsmasq, reaches the bridge, resolves a DNS entry of the network; its addresses
//! show from the leases and the neighbour table on both APIs; a NIC is hot-plugged onto
//! the network and out again; a `kill -9` of the daemon leaves the guest's network working
//! and everything is adopted, not duplicated, by the next daemon; stopping guest and
//! network removes tap, bridge, table and dnsmasq.

use std::{collections::HashMap, process::Command, time::Duration};

use zbus::{OwnedObjectPath, OwnedVariant, Variant};

use crate::{guest, guests, qemu_pid, support::proxies::*, support::*, until, wait_agent};

/// libvirt's `default` network, with a DNS host entry for the guest to resolve.
const DEFAULT_NET: &str = "<network><name>default</name><forward mode='nat'/>\
    <bridge name='virbr0' stp='on' delay='0'/>\
    <dns><host ip='192.168.122.250'><hostname>printer.lab</hostname></host></dns>\
    <ip address='192.168.122.1' netmask='255.255.255.0'>\
    <dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip></network>";
const NET_PATH: &str = "/org/virtbus1/network/default";
const NET_IFACE: &str = "org.virtbus1.Network";
const MAC: &str = "52:54:00:4e:00:01";
const MAC2: &str = "52:54:00:4e:00:02";
const LIBVIRT: &str = "org.libvirt";
const QEMU: &str = "/org/libvirt/QEMU";

/// A network namespace of the test's own, with whatever still runs in it killed on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        Netns::named("qnet")
    }

    fn named(tag: &str) -> Netns {
        let name = format!("vbt-{tag}-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip netns add");
        assert!(ok.success(), "ip netns add {name}");
        // as on a host: VNC listens on the loopback
        let ok = Command::new("ip")
            .args(["-n", &name, "link", "set", "lo", "up"])
            .status()
            .expect("ip link");
        assert!(ok.success(), "lo up in {name}");
        Netns(name)
    }

    /// Runs `cmd` inside the namespace: (success, stdout + stderr).
    fn exec(&self, cmd: &[&str]) -> (bool, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(cmd)
            .output()
            .expect("ip netns exec");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }

    /// The namespace's links as (name, index), sorted.
    fn links(&self) -> Vec<(String, u32)> {
        let (ok, out) = self.exec(&["ip", "-o", "link", "show"]);
        assert!(ok, "{out}");
        let mut v: Vec<(String, u32)> = out
            .lines()
            .filter_map(|l| {
                let mut f = l.split(": ");
                let index = f.next()?.trim().parse().ok()?;
                let name = f.next()?.split('@').next()?.to_owned();
                Some((name, index))
            })
            .collect();
        v.sort();
        v
    }

    /// The names of the namespace's taps (`vb<id>n<i>`).
    fn taps(&self) -> Vec<String> {
        self.links()
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| n.starts_with("vb") && n.contains('n'))
            .collect()
    }

    /// The processes in the namespace as (pid, command name), sorted.
    fn processes(&self) -> Vec<(u32, String)> {
        let out = Command::new("ip")
            .args(["netns", "pids", &self.0])
            .output()
            .expect("ip netns pids");
        let mut v: Vec<(u32, String)> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| {
                let pid: u32 = p.parse().ok()?;
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
                Some((pid, comm.trim().to_owned()))
            })
            .collect();
        v.sort();
        v
    }

    fn pids_of(&self, comm: &str) -> Vec<u32> {
        self.processes()
            .into_iter()
            .filter(|(_, c)| c == comm)
            .map(|(p, _)| p)
            .collect()
    }

    fn nft_ruleset(&self) -> String {
        let (ok, out) = self.exec(&["nft", "list", "ruleset"]);
        assert!(ok, "{out}");
        out
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

async fn call<B, R>(
    conn: &zbus::Connection,
    dest: &str,
    path: &str,
    iface: &str,
    member: &str,
    body: &B,
) -> zbus::Result<R>
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
    R: for<'d> zbus::zvariant::DynamicDeserialize<'d>,
{
    conn.call_method(Some(dest), path, Some(iface), member, body)
        .await?
        .body()
        .deserialize()
}

type Lease = HashMap<String, OwnedVariant>;
type Iface = (String, String, Vec<(i32, String, u32)>);
/// libvirt-dbus's lease: (interface, expiry, type, mac, iaid, address, prefix, hostname,
/// client id).
type FacadeLease = (
    String,
    i64,
    i32,
    String,
    String,
    String,
    u32,
    String,
    String,
);

async fn native_leases(conn: &zbus::Connection, mac: Option<&str>) -> Vec<Lease> {
    let mut o: HashMap<&str, Variant<'_>> = HashMap::new();
    if let Some(m) = mac {
        o.insert("mac", Variant::from(m));
    }
    call(conn, NAME, NET_PATH, NET_IFACE, "GetDHCPLeases", &(o,))
        .await
        .expect("GetDHCPLeases")
}

fn text(m: &Lease, k: &str) -> String {
    crate::s(m.get(k).unwrap_or_else(|| panic!("no {k} in {m:?}")))
}

/// The facade's answers, once org.libvirt is owned (a moment after org.virtbus1).
async fn facade_domain(conn: &zbus::Connection, name: &str) -> OwnedObjectPath {
    let t = std::time::Instant::now();
    loop {
        match call(
            conn,
            LIBVIRT,
            QEMU,
            "org.libvirt.Connect",
            "DomainLookupByName",
            &(name,),
        )
        .await
        {
            Ok(p) => return p,
            Err(e) => {
                assert!(t.elapsed() < Duration::from_secs(10), "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Leases and lease addresses of the guest's first NIC on the native API and the facade,
/// all naming `ip` on `tap`.
async fn check_leases(conn: &zbus::Connection, dom: &DomainProxy<'_>, ip: &str, tap: &str) {
    let leases = native_leases(conn, Some(MAC)).await;
    assert_eq!(leases.len(), 1, "{leases:?}");
    let l = &leases[0];
    assert_eq!(
        (
            text(l, "address"),
            text(l, "mac"),
            text(l, "interface"),
            text(l, "type")
        ),
        (ip.into(), MAC.into(), "virbr0".into(), "ipv4".into())
    );
    let all = native_leases(conn, None).await;
    assert!(
        all.iter().any(|l| text(l, "mac") == MAC),
        "unfiltered: {all:?}"
    );
    let want: Vec<Iface> = vec![(tap.into(), MAC.into(), vec![(0, ip.into(), 24)])];
    let got = dom
        .interface_addresses(opts([("source", Variant::from("lease"))]))
        .await
        .expect("lease addresses");
    assert_eq!(got, want);

    // the facade: Network.GetDHCPLeases and Domain.InterfaceAddresses(source lease = 0)
    let net: OwnedObjectPath = call(
        conn,
        LIBVIRT,
        QEMU,
        "org.libvirt.Connect",
        "NetworkLookupByName",
        &("default",),
    )
    .await
    .expect("facade network");
    let fl: Vec<FacadeLease> = call(
        conn,
        LIBVIRT,
        net.as_str(),
        "org.libvirt.Network",
        "GetDHCPLeases",
        &(MAC, 0u32),
    )
    .await
    .expect("facade leases");
    assert_eq!(fl.len(), 1, "{fl:?}");
    let (iface, expiry, kind, mac, _, addr, prefix, _, _) = &fl[0];
    assert_eq!(
        (iface.as_str(), *kind, mac.as_str(), addr.as_str(), *prefix),
        ("virbr0", 0, MAC, ip, 24)
    );
    assert!(*expiry > 0);
    let fdom = facade_domain(conn, "netguest").await;
    let fa: Vec<Iface> = call(
        conn,
        LIBVIRT,
        fdom.as_str(),
        "org.libvirt.Domain",
        "InterfaceAddresses",
        &(0u32, 0u32),
    )
    .await
    .expect("facade lease addresses");
    assert_eq!(fa, want);
}

/// The guest's IPv4 address on `dev`, once its DHCP client has configured one.
async fn guest_ip(ga: &guest::TestAgent, dev: &str) -> String {
    let mut ip = String::new();
    until(
        &format!("the guest has a lease on {dev}"),
        Duration::from_secs(60),
        async || {
            let out = ga
                .sh(&format!("ip -4 -o addr show {dev} 2>/dev/null; true"))
                .await;
            ip = out
                .split_whitespace()
                .skip_while(|w| *w != "inet")
                .nth(1)
                .and_then(|a| a.split('/').next())
                .unwrap_or_default()
                .to_owned();
            ip.starts_with("192.168.122.")
        },
    )
    .await;
    ip
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_on_the_default_network_survives_a_daemon_kill() {
    let _permit = guests(1).await;
    let ns = Netns::new();
    let bus = Bus::start();
    let launch = Launch {
        prefix: vec!["ip".into(), "netns".into(), "exec".into(), ns.0.clone()],
        extra: vec!["--libvirt-compat".into()],
        ..Default::default()
    };
    let mut d = Daemon::start_launch(&bus, launch).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;

    let net: OwnedObjectPath = call(
        &conn,
        NAME,
        MANAGER,
        "org.virtbus1.Manager",
        "DefineNetwork",
        &(DEFAULT_NET, no_opts()),
    )
    .await
    .expect("define the default network");
    assert_eq!(net.as_str(), NET_PATH);
    let disk = bus.dir.path().join("net.qcow2");
    guest::data_disk(&disk);
    let nic = format!(
        "<interface type='network'><mac address='{MAC}'/><source network='default'/>\
         <model type='virtio'/></interface>"
    );
    let xml = guest::domain_xml("netguest", &disk, guest::TEST_CHANNEL).replace(
        "<interface type='user'><model type='virtio'/></interface>",
        &nic,
    );
    assert!(xml.contains("type='network'"));
    let path = mgr.define_domain(&xml, no_opts()).await.expect("define");
    let dom = domain(&conn, &path).await;

    // Bad input: the network is defined but not active. The start is refused, typed and
    // naming the network, before any tap exists.
    let links_before = ns.links();
    let files_before = state_files(&d.state);
    let r = dom.start(no_opts()).await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.InvalidState", "{r:?}");
    assert!(
        error_message(&r).contains("network 'default' is not active"),
        "{r:?}"
    );
    assert_eq!(dom.state().await.expect("state"), "shut-off");
    // the facade says it as libvirt does: an invalid operation naming the network
    let fdom = facade_domain(&conn, "netguest").await;
    let r = conn
        .call_method(
            Some(LIBVIRT),
            fdom.as_str(),
            Some("org.libvirt.Domain"),
            "Create",
            &(0u32,),
        )
        .await;
    match &r {
        Err(zbus::Error::MethodError(name, Some(msg), _)) => {
            assert_eq!(name.as_str(), "org.libvirt.Error");
            assert!(msg.contains("network 'default' is not active"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(dom.state().await.expect("state"), "shut-off");
    assert_eq!(ns.links(), links_before, "nothing was made");
    assert!(ns.pids_of("qemu-system-x86").is_empty());
    assert_eq!(state_files(&d.state), files_before, "nothing was changed");

    // The network starts through the API; the guest boots on it.
    let _: () = call(&conn, NAME, NET_PATH, NET_IFACE, "Start", &())
        .await
        .expect("start the network");
    let dnsmasq = ns.pids_of("dnsmasq");
    assert_eq!(dnsmasq.len(), 1, "{:?}", ns.processes());
    dom.start(no_opts()).await.expect("start the guest");
    let live = dom.get_xml(no_opts()).await.expect("live xml");
    assert!(
        live.contains("<source network='default' bridge='virbr0'/>"),
        "{live}"
    );
    let taps = ns.taps();
    assert_eq!(taps.len(), 1, "{:?}", ns.links());
    let tap = taps[0].clone();
    assert!(live.contains(&format!("<target dev='{tap}'/>")), "{live}");
    let (ok, master) = ns.exec(&["ip", "-o", "link", "show", &tap]);
    assert!(ok && master.contains("master virbr0"), "{master}");
    let ga = guest::TestAgent::of(&live).await;
    wait_agent(&dom).await;

    // A lease, the bridge reached, the network's DNS entry resolved.
    let ip = guest_ip(&ga, "eth0").await;
    ga.sh("ping -c 1 -W 5 192.168.122.1").await;
    let answer = ga.sh("nslookup -type=a printer.lab 192.168.122.1").await;
    assert!(answer.contains("192.168.122.250"), "{answer}");
    check_leases(&conn, &dom, &ip, &tap).await;

    // NAT: a namespace beyond the host's uplink, with no route back to the guests' subnet,
    // answers the guest only because the network masquerades it.
    let outside = Netns::named("qout");
    let ok = Command::new("ip")
        .args([
            "-n", &ns.0, "link", "add", "vbtup0", "type", "veth", "peer", "name",
        ])
        .args(["vbtup1", "netns", &outside.0])
        .status()
        .expect("ip link add");
    assert!(ok.success());
    for (n, args) in [
        (&ns, ["addr", "add", "10.200.0.1/24", "dev", "vbtup0"]),
        (&outside, ["addr", "add", "10.200.0.2/24", "dev", "vbtup1"]),
    ] {
        assert!(
            n.exec(&["ip"].into_iter().chain(args).collect::<Vec<_>>())
                .0
        );
    }
    assert!(ns.exec(&["ip", "link", "set", "vbtup0", "up"]).0);
    assert!(outside.exec(&["ip", "link", "set", "vbtup1", "up"]).0);
    let (ok, out) = ga.try_sh("ping -c 1 -W 5 10.200.0.2").await.expect("ping");
    assert_eq!(ok, 0, "the guest reaches beyond the host: {out}");
    let (_, routes) = outside.exec(&["ip", "route"]);
    assert!(!routes.contains("192.168.122"), "{routes}");
    assert!(ns.exec(&["ip", "link", "del", "vbtup0"]).0);
    drop(outside);

    // The neighbour table: the host pings the guest, then source ARP finds its MAC.
    let (ok, out) = ns.exec(&["busybox", "ping", "-c", "1", "-W", "5", &ip]);
    assert!(ok, "the host reaches the guest: {out}");
    let want: Vec<Iface> = vec![(tap.clone(), MAC.into(), vec![(0, ip.clone(), 0)])];
    let arp = dom
        .interface_addresses(opts([("source", Variant::from("arp"))]))
        .await
        .expect("arp addresses");
    assert_eq!(arp, want);
    let fdom = facade_domain(&conn, "netguest").await;
    let farp: Vec<Iface> = call(
        &conn,
        LIBVIRT,
        fdom.as_str(),
        "org.libvirt.Domain",
        "InterfaceAddresses",
        &(2u32, 0u32),
    )
    .await
    .expect("facade arp addresses");
    assert_eq!(farp, want);
    let bad = dom
        .interface_addresses(opts([("source", Variant::from("neighbours"))]))
        .await;
    assert_eq!(error_name(&bad), "org.virtbus1.Error.InvalidArgument");
    assert!(error_message(&bad).contains("'neighbours'"), "{bad:?}");

    // Hot-plug a second NIC onto the network: the guest sees it and gets a lease there.
    let nic2 = format!(
        "<interface type='network'><mac address='{MAC2}'/><source network='default'/>\
         <model type='virtio'/></interface>"
    );
    // not onto a network that does not exist or does not run: typed, and no tap
    let r = dom
        .attach_device(
            "<interface type='network'><mac address='52:54:00:4e:00:09'/>\
             <source network='nosuch'/><model type='virtio'/></interface>",
            no_opts(),
        )
        .await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.NotFound", "{r:?}");
    assert!(
        error_message(&r).contains("no network named 'nosuch'"),
        "{r:?}"
    );
    let _: OwnedObjectPath = call(
        &conn,
        NAME,
        MANAGER,
        "org.virtbus1.Manager",
        "DefineNetwork",
        &(
            "<network><name>idle</name><bridge name='vbtidle0'/>\
             <ip address='10.66.0.1' prefix='24'/></network>",
            no_opts(),
        ),
    )
    .await
    .expect("define an idle network");
    let r = dom
        .attach_device(
            "<interface type='network'><mac address='52:54:00:4e:00:09'/>\
             <source network='idle'/><model type='virtio'/></interface>",
            no_opts(),
        )
        .await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.InvalidState", "{r:?}");
    assert!(
        error_message(&r).contains("network 'idle' is not active"),
        "{r:?}"
    );
    assert_eq!(
        ns.taps(),
        std::slice::from_ref(&tap),
        "no tap for a refused NIC"
    );
    let live = dom.get_xml(no_opts()).await.expect("live xml");
    assert!(!live.contains("52:54:00:4e:00:09"), "{live}");
    let _: () = call(
        &conn,
        NAME,
        "/org/virtbus1/network/idle",
        NET_IFACE,
        "Undefine",
        &(),
    )
    .await
    .expect("undefine idle");

    dom.attach_device(&nic2, no_opts())
        .await
        .expect("hot-plug a network NIC");
    let taps2 = ns.taps();
    assert_eq!(taps2.len(), 2, "{:?}", ns.links());
    let tap2 = taps2.iter().find(|t| **t != tap).expect("new tap").clone();
    let (ok, master) = ns.exec(&["ip", "-o", "link", "show", &tap2]);
    assert!(ok && master.contains("master virbr0"), "{master}");
    let live = dom.get_xml(no_opts()).await.expect("live xml");
    assert_eq!(
        live.matches("<source network='default' bridge='virbr0'/>")
            .count(),
        2,
        "{live}"
    );
    let dev2 = format!(
        "for n in /sys/class/net/*; do [ \"$(cat $n/address)\" = {MAC2} ] && echo ${{n##*/}}; done; true"
    );
    let mut eth = String::new();
    until(
        "the guest has the new NIC",
        Duration::from_secs(30),
        async || {
            eth = ga.sh(&dev2).await.trim().to_owned();
            !eth.is_empty()
        },
    )
    .await;
    ga.sh(&format!(
        "udhcpc -i {eth} -s /etc/udhcpc.script -n -q -t 10 -T 1 >/dev/null 2>&1"
    ))
    .await;
    let ip2 = guest_ip(&ga, &eth).await;
    assert_ne!(ip2, ip);
    let l2 = native_leases(&conn, Some(MAC2)).await;
    assert_eq!(l2.len(), 1, "{l2:?}");
    assert_eq!(text(&l2[0], "address"), ip2);
    let both = dom
        .interface_addresses(opts([("source", Variant::from("lease"))]))
        .await
        .expect("lease addresses");
    assert_eq!(
        both,
        vec![
            (tap.clone(), MAC.into(), vec![(0, ip.clone(), 24)]),
            (tap2.clone(), MAC2.into(), vec![(0, ip2.clone(), 24)]),
        ]
    );
    dom.detach_device(&nic2, no_opts())
        .await
        .expect("hot-unplug the NIC");
    assert_eq!(
        ga.sh(&format!("test -e /sys/class/net/{eth} || echo gone"))
            .await
            .trim(),
        "gone"
    );
    assert_eq!(
        ns.taps(),
        std::slice::from_ref(&tap),
        "the second tap is gone"
    );
    let live = dom.get_xml(no_opts()).await.expect("live xml");
    assert!(!live.contains(MAC2), "{live}");
    let inactive = dom
        .get_xml(opts([("inactive", Variant::from(true))]))
        .await
        .expect("inactive xml");
    assert!(!inactive.contains(MAC2), "only the live guest changed");

    // kill -9: the guest keeps its network.
    let uuid = dom.uuid().await.expect("uuid");
    let qemu = qemu_pid(&d.runtime, &uuid) as u32;
    let links = ns.links();
    let ruleset = ns.nft_ruleset();
    assert!(ruleset.contains("table inet virtbus_virbr0"), "{ruleset}");
    let daemon_pid = d.pid();
    let others = |ps: Vec<(u32, String)>, daemon: u32| -> Vec<(u32, String)> {
        ps.into_iter().filter(|(p, _)| *p != daemon).collect()
    };
    let procs = others(ns.processes(), daemon_pid);
    assert_eq!(
        procs.iter().map(|(_, c)| c.as_str()).collect::<Vec<_>>(),
        ["dnsmasq", "qemu-system-x86"],
        "{procs:?}"
    );
    assert!(procs.contains(&(qemu, "qemu-system-x86".into())));
    d.kill();
    ga.sh("ping -c 1 -W 5 192.168.122.1").await;
    let answer = ga.sh("nslookup -type=a printer.lab 192.168.122.1").await;
    assert!(answer.contains("192.168.122.250"), "{answer}");

    // The next daemon adopts bridge, dnsmasq and guest: nothing is made twice.
    d.restart(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;
    let nets: Vec<OwnedObjectPath> = call(
        &conn,
        NAME,
        MANAGER,
        "org.virtbus1.Manager",
        "ListNetworks",
        &(),
    )
    .await
    .expect("list networks");
    assert_eq!(nets, std::slice::from_ref(&net));
    assert_eq!(
        mgr.list_domains(no_opts()).await.expect("list"),
        std::slice::from_ref(&path)
    );
    let dom = domain(&conn, &path).await;
    assert_eq!(
        dom.state().await.expect("state"),
        "running",
        "{}",
        d.log_text()
    );
    assert_eq!(ns.links(), links, "the same links, the same indexes");
    assert_eq!(ns.nft_ruleset(), ruleset);
    assert_eq!(
        others(ns.processes(), d.pid()),
        procs,
        "the same dnsmasq and QEMU"
    );
    ga.sh("ping -c 1 -W 5 192.168.122.1").await;
    check_leases(&conn, &dom, &ip, &tap).await;
    // and plugs into the adopted bridge
    dom.attach_device(&nic2, no_opts())
        .await
        .expect("hot-plug after the restart");
    let taps2 = ns.taps();
    assert_eq!(taps2.len(), 2, "{:?}", ns.links());
    let tap2 = taps2.iter().find(|t| **t != tap).expect("new tap").clone();
    let (ok, master) = ns.exec(&["ip", "-o", "link", "show", &tap2]);
    assert!(ok && master.contains("master virbr0"), "{master}");
    dom.detach_device(&nic2, no_opts())
        .await
        .expect("hot-unplug after the restart");
    assert_eq!(ns.taps(), std::slice::from_ref(&tap));

    // Network.Update: a static DHCP host for the guest's MAC, live; the guest's next
    // DHCP exchange gets that address, and dnsmasq's lease says so.
    let _: () = call(
        &conn,
        NAME,
        NET_PATH,
        NET_IFACE,
        "Update",
        &(
            "add-last",
            "ip-dhcp-host",
            format!("<host mac='{MAC}' name='fixed' ip='192.168.122.77'/>"),
            opts([("live", Variant::from(true))]),
        ),
    )
    .await
    .expect("add a DHCP host");
    ga.sh("udhcpc -i eth0 -s /etc/udhcpc.script -n -q -t 10 -T 1 >/dev/null 2>&1")
        .await;
    let got = ga.sh("ip -4 -o addr show eth0").await;
    assert!(got.contains("192.168.122.77/24"), "{got}");
    ga.sh("ping -c 1 -W 5 192.168.122.1").await;
    until(
        "the fixed address's lease",
        Duration::from_secs(10),
        async || {
            native_leases(&conn, Some(MAC))
                .await
                .iter()
                .any(|l| text(l, "address") == "192.168.122.77")
        },
    )
    .await;

    // Stopping the guest removes its tap; stopping the network, bridge, table and dnsmasq.
    dom.destroy(no_opts()).await.expect("destroy");
    assert!(ns.taps().is_empty(), "{:?}", ns.links());
    assert!(ns.pids_of("qemu-system-x86").is_empty());
    let _: () = call(&conn, NAME, NET_PATH, NET_IFACE, "Stop", &())
        .await
        .expect("stop the network");
    let names: Vec<String> = ns.links().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["lo"], "bridge and taps removed");
    let rules = ns.nft_ruleset();
    assert!(!rules.contains("virtbus"), "{rules}");
    assert!(ns.pids_of("dnsmasq").is_empty(), "{:?}", ns.processes());
    let active: OwnedVariant = call(
        &conn,
        NAME,
        NET_PATH,
        "org.freedesktop.DBus.Properties",
        "Get",
        &(NET_IFACE, "Active"),
    )
    .await
    .expect("Active");
    assert!(!bool::try_from(active).expect("b"));
}
