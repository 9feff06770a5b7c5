//! Shutdown and reboot modes as libvirt's LXC driver has them, on real containers, through
//! the native API, the libvirt-dbus facade and virsh over the RPC socket: `signal` (SIGTERM
//! to power off, SIGHUP to reboot), `initctl` (a runlevel request on the container's
//! /dev/initctl FIFO; refused without one), the default (initctl when there is a FIFO, the
//! signal otherwise), and the modes a container lacks refused by name.

use std::process::Command;

use zbus::OwnedObjectPath;

use super::*;

/// An init that records the signals it gets and, with `fifo`, reads one request from its
/// own /dev/initctl (open for reading before it says it is up, as sysvinit keeps it); it
/// ends after either.
fn responder(name: &str, fifo: bool) -> String {
    let reader = if fifo {
        format!(
            "mkfifo /dev/initctl; exec 3<>/dev/initctl; (dd bs=384 count=1 <&3 \
             > /out/{name}.req 2>/dev/null; echo req >> /out/{name}.ev) & "
        )
    } else {
        String::new()
    };
    format!(
        "{reader}trap 'echo TERM >> /out/{name}.ev' TERM; trap 'echo HUP >> /out/{name}.ev' HUP; \
         echo up > /out/{name}.up; while [ ! -s /out/{name}.ev ]; do sleep 0.05; done; \
         sleep 0.3; exit 0"
    )
}

/// The runlevel byte of the request a container read from its FIFO.
fn runlevel(out: &Path, name: &str) -> u8 {
    let req = std::fs::read(out.join(format!("{name}.req"))).expect("request");
    assert_eq!(req.len(), 384, "sysvinit's request size");
    assert_eq!(
        &req[0..4],
        &0x0309_1969i32.to_ne_bytes(),
        "sysvinit's magic"
    );
    req[8]
}

fn events(out: &Path, name: &str) -> String {
    std::fs::read_to_string(out.join(format!("{name}.ev")))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

async fn wait_off(dom: &DomainProxy<'_>, what: &str) {
    let t = Instant::now();
    while dom.state().await.expect("state") != "shut-off" {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{what} did not end it"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn mode(m: &str) -> std::collections::HashMap<&'static str, zbus::Variant<'static>> {
    opts([("mode", zbus::Variant::from(m.to_owned()))])
}

/// Native `Shutdown`/`Reboot` with each mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_modes() {
    let s = setup().await;
    let out = s.out();
    let start = |name: &'static str, fifo: bool| {
        let xml = rootfs::domain(name, &s.root, &responder(name, fifo), "", "");
        let s = &s;
        async move {
            let dom = s.start(&xml).await;
            read_when_there(&s.out().join(format!("{name}.up"))).await;
            dom
        }
    };

    // no FIFO: initctl is refused, and so are the modes a container lacks; it still runs
    let plain = start("pw-plain", false).await;
    for (m, want) in [
        ("initctl", "does not provide an initctl pipe"),
        ("acpi", "mode 'acpi'"),
        ("agent", "mode 'agent'"),
        ("paravirt", "mode 'paravirt'"),
    ] {
        let r = plain.shutdown(mode(m)).await;
        assert!(error_message(&r).contains(want), "{m}: {r:?}");
        let r = plain.reboot(mode(m)).await;
        assert!(error_message(&r).contains(want), "reboot {m}: {r:?}");
    }
    assert_eq!(plain.state().await.expect("state"), "running");
    assert_eq!(
        events(&out, "pw-plain"),
        "",
        "no mode that was refused reached it"
    );
    // signal: SIGTERM
    plain
        .shutdown(mode("signal"))
        .await
        .expect("shutdown signal");
    wait_off(&plain, "shutdown signal").await;
    assert_eq!(events(&out, "pw-plain"), "TERM");

    // a FIFO: the default takes it (runlevel 0), no signal
    let fifo = start("pw-fifo", true).await;
    fifo.shutdown(no_opts()).await.expect("shutdown default");
    wait_off(&fifo, "shutdown default").await;
    assert_eq!(events(&out, "pw-fifo"), "req");
    assert_eq!(runlevel(&out, "pw-fifo"), b'0');

    // reboot: initctl asks for runlevel 6; signal is SIGHUP
    let rb = start("pw-rb-ictl", true).await;
    rb.reboot(mode("initctl")).await.expect("reboot initctl");
    until("the request", Duration::from_secs(10), || {
        events(&out, "pw-rb-ictl") == "req"
    })
    .await;
    assert_eq!(runlevel(&out, "pw-rb-ictl"), b'6');
    rb.destroy(no_opts()).await.ok();
    let rs = start("pw-rb-sig", true).await;
    rs.reboot(mode("signal")).await.expect("reboot signal");
    until("SIGHUP", Duration::from_secs(10), || {
        events(&out, "pw-rb-sig") == "HUP"
    })
    .await;
    rs.destroy(no_opts()).await.ok();

    // an unknown mode is bad input naming the option
    let other = start("pw-other", false).await;
    let r = other.shutdown(mode("hard")).await;
    assert!(error_message(&r).contains("initctl, signal"), "{r:?}");
    other.destroy(no_opts()).await.expect("destroy");
}

const LIBVIRT: &str = "org.libvirt";

/// The facade's `Shutdown`/`Reboot` flags and virsh's `--mode` over the RPC socket (libvirt's
/// VIR_DOMAIN_SHUTDOWN_INITCTL = 4, _SIGNAL = 8; the LXC driver takes no other).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facade_and_virsh_modes() {
    let bus = Bus::start();
    let sock = bus.dir.path().join("libvirt-sock");
    let sock_arg = sock.to_string_lossy().into_owned();
    let daemon = Daemon::start_with(
        &bus,
        &bus.dir.path().join("state"),
        &bus.dir.path().join("run"),
        &["--libvirt-compat", "--libvirt-rpc-socket", &sock_arg],
    )
    .await;
    let conn = bus.connect().await;
    let root = rootfs::build(bus.dir.path());
    let out = root.join("out");
    let mgr = manager(&conn).await;
    until("the RPC socket", Duration::from_secs(20), || sock.exists()).await;
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.expect("dbus");
    let t = Instant::now();
    while !dbus
        .name_has_owner(LIBVIRT.try_into().expect("name"))
        .await
        .unwrap_or(false)
    {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no facade:\n{}",
            daemon.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start = |name: &'static str, fifo: bool| {
        let xml = rootfs::domain(name, &root, &responder(name, fifo), "", "");
        let (mgr, conn, out) = (&mgr, &conn, &out);
        async move {
            let path = mgr.define_domain(&xml, no_opts()).await.expect("define");
            let dom = domain(conn, &path).await;
            dom.start(no_opts()).await.expect("start");
            read_when_there(&out.join(format!("{name}.up"))).await;
            dom
        }
    };
    let facade = |name: &str, member: &'static str, flags: u32| {
        let conn = conn.clone();
        let name = name.to_owned();
        async move {
            let p: OwnedObjectPath = conn
                .call_method(
                    Some(LIBVIRT),
                    "/org/libvirt/LXC",
                    Some("org.libvirt.Connect"),
                    "DomainLookupByName",
                    &(name,),
                )
                .await
                .expect("lookup")
                .body()
                .deserialize()
                .expect("path");
            conn.call_method(
                Some(LIBVIRT),
                p.as_str(),
                Some("org.libvirt.Domain"),
                member,
                &(flags,),
            )
            .await
            .map(drop)
        }
    };

    // facade: SIGNAL (8) shuts down with SIGTERM; ACPI (1) is not the LXC driver's flag
    let a = start("fw-sig", false).await;
    let e = facade("fw-sig", "Shutdown", 1).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("unsupported flags (0x1) in function lxcDomainShutdownFlags"),
        "{e}"
    );
    let e = facade("fw-sig", "Shutdown", 4).await.unwrap_err();
    assert!(e.to_string().contains("initctl pipe"), "{e}");
    facade("fw-sig", "Shutdown", 8)
        .await
        .expect("shutdown signal");
    wait_off(&a, "facade shutdown signal").await;
    assert_eq!(events(&out, "fw-sig"), "TERM");
    // facade: Reboot INITCTL (4) on a FIFO: runlevel 6
    let b = start("fw-ictl", true).await;
    facade("fw-ictl", "Reboot", 4)
        .await
        .expect("reboot initctl");
    until("the request", Duration::from_secs(10), || {
        events(&out, "fw-ictl") == "req"
    })
    .await;
    assert_eq!(runlevel(&out, "fw-ictl"), b'6');
    b.destroy(no_opts()).await.ok();

    // virsh over the RPC socket (DOMAIN_SHUTDOWN_FLAGS, DOMAIN_REBOOT)
    let virsh = |args: &[&str]| {
        let o = Command::new("virsh")
            .arg("-c")
            .arg(format!("lxc:///system?socket={}", sock.display()))
            .args(args)
            .env("HOME", bus.dir.path())
            .env_remove("LIBVIRT_DEFAULT_URI")
            .output()
            .expect("virsh (package libvirt-clients)");
        (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    };
    let c = start("vw-ictl", true).await;
    let (ok, text) = virsh(&["shutdown", "--mode", "acpi", "vw-ictl"]);
    assert!(!ok && text.contains("unsupported flags (0x1)"), "{text}");
    let (ok, text) = virsh(&["shutdown", "--mode", "initctl", "vw-ictl"]);
    assert!(ok, "{text}\n{}", daemon.log_text());
    wait_off(&c, "virsh shutdown initctl").await;
    assert_eq!(runlevel(&out, "vw-ictl"), b'0');
    let d = start("vw-sig", true).await;
    let (ok, text) = virsh(&["reboot", "--mode", "signal", "vw-sig"]);
    assert!(ok, "{text}");
    until("SIGHUP", Duration::from_secs(10), || {
        events(&out, "vw-sig") == "HUP"
    })
    .await;
    d.destroy(no_opts()).await.ok();
}
