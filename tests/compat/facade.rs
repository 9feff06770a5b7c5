//! The facade of the real daemon: each script against a fresh daemon, and the state of
//! `/org/libvirt/Test` across restarts.

use crate::{
    harness::{Facade, python},
    support::{proxies::*, *},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_methods_and_properties() {
    let f = Facade::start().await;
    python("test_connect.py", &[("BUS_ADDRESS", &f.bus.address)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_methods_properties_and_signals() {
    let f = Facade::start().await;
    python("test_domain.py", &[("BUS_ADDRESS", &f.bus.address)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_methods() {
    let f = Facade::start().await;
    python("test_snapshot.py", &[("BUS_ADDRESS", &f.bus.address)]);
}

/// Real dir pools and volumes through `/org/libvirt/QEMU`, in the daemon's state directory
/// (where pools may be); bad input refused with nothing created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_on_the_qemu_connect() {
    let f = Facade::start().await;
    let state = f.bus.dir.path().join("state");
    python(
        "test_storage_qemu.py",
        &[
            ("BUS_ADDRESS", &f.bus.address),
            ("STATE_DIR", &state.to_string_lossy()),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cockpit_load_sequence_on_test() {
    let f = Facade::start().await;
    python(
        "test_cockpit.py",
        &[
            ("BUS_ADDRESS", &f.bus.address),
            ("CONNECT", "/org/libvirt/Test"),
        ],
    );
}

/// `/org/libvirt/Test` starts as `test:///default` at every start, whatever was done to it,
/// and is apart from the native API's persistent domains (which `/org/libvirt/QEMU` does not
/// show either: they are test domains).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_default_is_in_memory_and_apart() {
    let mut f = Facade::start().await;
    let conn = f.bus.connect().await;
    manager(&conn)
        .await
        .define_domain(&test_domain("native"), no_opts())
        .await
        .expect("native define");
    python(
        "test_state.py",
        &[("BUS_ADDRESS", &f.bus.address), ("PHASE", "change")],
    );
    f.restart().await;
    python(
        "test_state.py",
        &[("BUS_ADDRESS", &f.bus.address), ("PHASE", "fresh")],
    );
    let native = manager(&conn)
        .await
        .list_domains(no_opts())
        .await
        .expect("native list");
    assert_eq!(native.len(), 2, "the native domains persist, alone");
    let files: Vec<_> = std::fs::read_dir(f.daemon.state.join("domains"))
        .expect("state dir")
        .collect();
    assert_eq!(files.len(), 2, "test:///default writes nothing");
}

/// A session instance serving `org.libvirt` does not exit when idle: nothing could start it
/// again for the facade's callers (it has no activation file, which would be libvirt-dbus's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_facade_stays_when_idle() {
    let bus = Bus::start();
    let d = bus.dir.path();
    let daemon = Daemon::start_with(
        &bus,
        &d.join("state"),
        &d.join("run"),
        &["--libvirt-compat", "--timeout", "1"],
    )
    .await;
    crate::harness::wait_for_name(&bus.address, crate::harness::LIBVIRT, &|| daemon.log_text())
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let conn = bus.connect().await;
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.expect("dbus");
    for name in [NAME, crate::harness::LIBVIRT] {
        assert!(
            dbus.name_has_owner(name.try_into().expect("name"))
                .await
                .expect("has owner"),
            "{name} gone:\n{}",
            daemon.log_text()
        );
    }
}

/// A change of the host name is signalled as the connects' `Hostname` changing (and the
/// native Manager's): the daemon runs in a UTS namespace of its own, whose host name the
/// test changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_changes_are_signalled() {
    use std::{pin::Pin, time::Duration};
    use zbus::{MatchRule, MessageStream, export::futures_core::Stream, message::Type};

    let bus = Bus::start();
    let d = bus.dir.path();
    let daemon = Daemon::launch(
        &bus.address,
        d,
        &d.join("state"),
        &d.join("run"),
        Launch {
            system: false,
            prefix: vec!["unshare".into(), "--uts".into()],
            extra: vec!["--libvirt-compat".into()],
            ..Default::default()
        },
    )
    .await;
    crate::harness::wait_for_name(&bus.address, crate::harness::LIBVIRT, &|| daemon.log_text())
        .await;
    let conn = bus.connect().await;
    let rule = MatchRule::builder()
        .msg_type(Type::Signal)
        .member("PropertiesChanged")
        .build()
        .expect("rule");
    let mut stream = MessageStream::for_match_rule(rule, &conn, None)
        .await
        .expect("stream");
    let name = "vb-uts-test";
    let status = std::process::Command::new("nsenter")
        .arg(format!("--uts=/proc/{}/ns/uts", daemon.pid()))
        .args(["hostname", name])
        .status()
        .expect("nsenter");
    assert!(status.success());
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    // /org/libvirt/LXC is served too when the LXC driver runs (as root)
    let lxc = nix::unistd::geteuid().is_root();
    let expected = if lxc { 4 } else { 3 };
    while seen.len() < expected && tokio::time::Instant::now() < deadline {
        let next = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx));
        let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(1), next).await else {
            continue;
        };
        let path = msg
            .header()
            .path()
            .map(|p| p.to_string())
            .unwrap_or_default();
        let (iface, changed, _): (
            String,
            std::collections::HashMap<String, zbus::OwnedVariant>,
            Vec<String>,
        ) = msg.body().deserialize().expect("PropertiesChanged");
        let host = changed
            .get("Hostname")
            .and_then(|v| String::try_from(v.try_clone().ok()?).ok());
        seen.push((path, iface, host));
    }
    seen.sort();
    let want = |p: &str, i: &str| (p.to_owned(), i.to_owned(), Some(name.to_owned()));
    let mut all = vec![
        want("/org/libvirt/QEMU", "org.libvirt.Connect"),
        want("/org/libvirt/Test", "org.libvirt.Connect"),
        want("/org/virtbus1", "org.virtbus1.Manager"),
    ];
    if lxc {
        all.insert(0, want("/org/libvirt/LXC", "org.libvirt.Connect"));
    }
    assert_eq!(seen, all);
}

/// Metadata nested too deep is an error through the facade too (libvirt's invalid-argument
/// error naming the limit), and the daemon keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_metadata_is_refused_and_the_daemon_survives() {
    let f = Facade::start().await;
    let conn = f.bus.connect().await;
    let dom = "/org/libvirt/Test/domain/_6695eb01_f6a4_8304_79aa_97f2502e193f";
    let call = |path: &'static str, iface: &'static str, method: &'static str| {
        let conn = conn.clone();
        move |body: (i32, String, String, String, u32)| {
            let conn = conn.clone();
            async move {
                conn.call_method(Some("org.libvirt"), path, Some(iface), method, &body)
                    .await
                    .map(|_| ())
            }
        }
    };
    let set = call(dom, "org.libvirt.Domain", "SetMetadata");
    for depth in [300, 5000, 100_000] {
        let deep = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
        let r = set((2, deep.clone(), "app".into(), "urn:app".into(), 0)).await;
        assert_eq!(error_name(&r), "org.libvirt.Error", "{r:?}");
        assert!(error_message(&r).contains("limit of"), "{r:?}");
        let xml = format!(
            "<domain type='test'><name>deep</name><memory>1024</memory><os><type>hvm</type></os>\
             <metadata><a xmlns='urn:app'>{deep}</a></metadata></domain>"
        );
        let r = conn
            .call_method(
                Some("org.libvirt"),
                "/org/libvirt/Test",
                Some("org.libvirt.Connect"),
                "DomainDefineXML",
                &(xml,),
            )
            .await;
        assert_eq!(error_name(&r), "org.libvirt.Error", "{r:?}");
        let r = conn
            .call_method(
                Some("org.libvirt"),
                dom,
                Some("org.libvirt.Domain"),
                "GetMetadata",
                &(2i32, "urn:app", 0u32),
            )
            .await;
        assert_eq!(error_name(&r), "org.libvirt.Error", "nothing stored: {r:?}");
    }
    let r = conn
        .call_method(
            Some("org.libvirt"),
            "/org/libvirt/Test",
            Some("org.libvirt.Connect"),
            "ListDomains",
            &(0u32,),
        )
        .await;
    assert!(r.is_ok(), "still answers: {r:?}");
}
