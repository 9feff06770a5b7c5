//! Authorization against a real polkitd, hermetically (see `support::polkit`): every method
//! checked against the real caller, the shipped example rules, interactive authorization,
//! cache invalidation, and many concurrent checks.

#[path = "../support/mod.rs"]
mod support;

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Write},
    process::Stdio,
    time::Duration,
};

use support::{polkit::*, proxies::*, *};
use zbus::OwnedObjectPath;

const CLIENT: &str = include_str!("client.py");

/// The GDBus client script, where the test users can read it.
fn client_path(env: &PolkitEnv) -> String {
    let p = env.workdir().join("client.py");
    if !p.exists() {
        std::fs::write(&p, CLIENT).expect("client");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    p.display().to_string()
}

/// Make `calls` at once as `user`; the result of each ("ok" or an error name).
fn calls_as(env: &PolkitEnv, user: &str, calls: &[String]) -> Vec<String> {
    calls_to(env, user, "org.virtbus1", calls)
}

/// As [`calls_as`], to the bus name `dest`.
fn calls_to(env: &PolkitEnv, user: &str, dest: &str, calls: &[String]) -> Vec<String> {
    let out = env
        .command_as(user, "/usr/bin/python3")
        .arg(client_path(env))
        .env("CLIENT_DEST", dest)
        .arg("burst")
        .args(calls)
        .output()
        .expect("client");
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("client prints JSON");
    v["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r.as_str().unwrap_or_default().to_owned())
        .collect()
}

fn call(path: &str, method: &str, sig: &str, args: &str) -> String {
    format!("{path} {method} {sig} {args}")
}

fn opts_call(path: &str, method: &str) -> String {
    call(path, method, "(a{sv})", "({},)")
}

const DENIED: &str = "org.virtbus1.Error.AccessDenied";
const NEEDS_AUTH: &str = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired";

async fn root_domain(conn: &zbus::Connection, name: &str) -> OwnedObjectPath {
    manager(conn)
        .await
        .define_domain(&test_domain(name), no_opts())
        .await
        .expect("root defines")
}

/// Every mutating method of `dom` (and of its snapshot `snap`), with the action it needs.
fn mutating_calls(dom: &str, snap: &str) -> Vec<(&'static str, String)> {
    vec![
        ("start", opts_call(dom, "org.virtbus1.Domain.Start")),
        (
            "init-control",
            opts_call(dom, "org.virtbus1.Domain.Shutdown"),
        ),
        ("init-control", opts_call(dom, "org.virtbus1.Domain.Reboot")),
        ("stop", opts_call(dom, "org.virtbus1.Domain.Destroy")),
        ("reset", opts_call(dom, "org.virtbus1.Domain.Reset")),
        ("suspend", opts_call(dom, "org.virtbus1.Domain.Suspend")),
        ("suspend", opts_call(dom, "org.virtbus1.Domain.Resume")),
        ("delete", opts_call(dom, "org.virtbus1.Domain.Undefine")),
        ("fs-freeze", opts_call(dom, "org.virtbus1.Domain.FSFreeze")),
        ("fs-freeze", opts_call(dom, "org.virtbus1.Domain.FSThaw")),
        (
            "open-console",
            call(
                dom,
                "org.virtbus1.Domain.OpenConsole",
                "(sa{sv})",
                "('', {})",
            ),
        ),
        (
            "open-console",
            opts_call(dom, "org.virtbus1.Domain.OpenGraphicsFD"),
        ),
        (
            "snapshot",
            call(
                dom,
                "org.virtbus1.Domain.CreateSnapshot",
                "(sa{sv})",
                "('<domainsnapshot/>', {})",
            ),
        ),
        (
            "read-secure",
            call(
                dom,
                "org.virtbus1.Domain.GetXML",
                "(a{sv})",
                "({'secure': <true>},)",
            ),
        ),
        (
            "write",
            call(
                dom,
                "org.freedesktop.DBus.Properties.Set",
                "(ssv)",
                "('org.virtbus1.Domain', 'Autostart', <true>)",
            ),
        ),
        ("snapshot", opts_call(snap, "org.virtbus1.Snapshot.Revert")),
        ("snapshot", opts_call(snap, "org.virtbus1.Snapshot.Delete")),
        (
            "write",
            call(
                "/org/virtbus1",
                "org.virtbus1.Manager.DefineDomain",
                "(sa{sv})",
                &format!("(\"{}\", {{}})", test_domain("intruder")),
            ),
        ),
        (
            "write",
            call(
                "/org/virtbus1",
                "org.virtbus1.Manager.CreateDomain",
                "(sa{sv})",
                &format!("(\"{}\", {{}})", test_domain("intruder2")),
            ),
        ),
    ]
}

fn read_calls(dom: &str, snap: &str) -> Vec<String> {
    vec![
        call(
            "/org/virtbus1",
            "org.virtbus1.Manager.ListDomains",
            "(a{sv})",
            "({},)",
        ),
        call(
            "/org/virtbus1",
            "org.virtbus1.Manager.LookupDomain",
            "(s)",
            "('web',)",
        ),
        call(
            "/org/virtbus1",
            "org.virtbus1.Manager.GetCapabilities",
            "()",
            "",
        ),
        call(
            "/org/virtbus1",
            "org.freedesktop.DBus.ObjectManager.GetManagedObjects",
            "()",
            "",
        ),
        call(
            "/org/virtbus1",
            "org.freedesktop.DBus.Properties.GetAll",
            "(s)",
            "('org.virtbus1.Manager',)",
        ),
        opts_call("/org/virtbus1", "org.virtbus1.Manager.ListHostInterfaces"),
        opts_call("/org/virtbus1", "org.virtbus1.Manager.ListNodeDevices"),
        opts_call(
            "/org/virtbus1/host/device/computer",
            "org.virtbus1.NodeDevice.GetXML",
        ),
        opts_call(
            "/org/virtbus1/host/interface/lo",
            "org.virtbus1.HostInterface.GetXML",
        ),
        opts_call(dom, "org.virtbus1.Domain.GetXML"),
        opts_call(dom, "org.virtbus1.Domain.GetStats"),
        opts_call(dom, "org.virtbus1.Domain.ListSnapshots"),
        call(dom, "org.virtbus1.Domain.LookupSnapshot", "(s)", "('s',)"),
        call(
            dom,
            "org.freedesktop.DBus.Properties.Get",
            "(ss)",
            "('org.virtbus1.Domain', 'State')",
        ),
        call(
            dom,
            "org.freedesktop.DBus.Properties.GetAll",
            "(s)",
            "('org.virtbus1.Domain',)",
        ),
        opts_call(snap, "org.virtbus1.Snapshot.GetXML"),
        opts_call(snap, "org.virtbus1.Snapshot.ListChildren"),
        call(
            snap,
            "org.freedesktop.DBus.Properties.GetAll",
            "(s)",
            "('org.virtbus1.Snapshot',)",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_may_do_anything_others_only_read() {
    let env = PolkitEnv::start(&[]);
    let d = env.daemon(&[]).await;
    let conn = connect(&env.address).await;
    let web = root_domain(&conn, "web").await;
    let dom = domain(&conn, &web).await;
    dom.start(no_opts()).await.expect("root starts");
    let snap = dom
        .create_snapshot("<domainsnapshot><name>s</name></domainsnapshot>", no_opts())
        .await
        .expect("root snapshots");

    // Reads are allowed for anyone.
    let reads = read_calls(web.as_str(), snap.as_str());
    let got = calls_as(&env, "carol", &reads);
    for (c, r) in reads.iter().zip(&got) {
        assert_eq!(r, "ok", "{c}");
    }

    // Each mutating method is refused for an ordinary user, before anything is done: without
    // interaction allowed, polkit's challenge is InteractiveAuthorizationRequired...
    let muts = mutating_calls(web.as_str(), snap.as_str());
    let plain: Vec<String> = muts.iter().map(|(_, c)| c.clone()).collect();
    let got = calls_as(&env, "carol", &plain);
    for ((action, c), r) in muts.iter().zip(&got) {
        assert_eq!(r, NEEDS_AUTH, "{action}: {c}");
    }
    // ...and with interaction allowed but no agent to ask, AccessDenied naming the action.
    let interactive: Vec<String> = plain.iter().map(|c| format!("{c} interactive")).collect();
    let got = calls_as(&env, "carol", &interactive);
    for ((action, c), r) in muts.iter().zip(&got) {
        assert_eq!(r, DENIED, "{action}: {c}");
    }
    let out = env.busctl_as(
        "carol",
        true,
        &[
            "call",
            "org.virtbus1",
            web.as_str(),
            "org.virtbus1.Domain",
            "Destroy",
            "a{sv}",
            "0",
        ],
    );
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("org.virtbus1.domain.stop") && msg.contains("'web'"),
        "{msg}"
    );

    // Nothing happened.
    assert_eq!(dom.state().await.expect("state"), "running");
    assert_eq!(dom.snapshot_count().await.expect("count"), 1);
    assert!(!dom.autostart().await.expect("autostart"));
    assert_eq!(
        manager(&conn)
            .await
            .list_domains(no_opts())
            .await
            .expect("list")
            .len(),
        1
    );

    // Root, through the same path, may do each.
    let got = calls_as(
        &env,
        "root",
        &[opts_call(web.as_str(), "org.virtbus1.Domain.Suspend")],
    );
    assert_eq!(got, ["ok"]);
    drop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_rule_gives_group_members_their_own_domains_only() {
    let env = PolkitEnv::start(&[(
        "50-virtbus-owners.rules",
        project_file("polkit/examples/50-virtbus-owners.rules"),
    )]);
    let _d = env.daemon(&[]).await;
    let conn = connect(&env.address).await;
    let web = root_domain(&conn, "web").await;

    // alice (in virtbus-users) defines a domain: it becomes hers.
    let define = |name: &str| {
        call(
            "/org/virtbus1",
            "org.virtbus1.Manager.DefineDomain",
            "(sa{sv})",
            &format!("(\"{}\", {{}})", test_domain(name)),
        )
    };
    assert_eq!(calls_as(&env, "alice", &[define("alice-vm")]), ["ok"]);
    let mine = manager(&conn)
        .await
        .lookup_domain("alice-vm")
        .await
        .expect("lookup");
    let xml = domain(&conn, &mine)
        .await
        .get_xml(no_opts())
        .await
        .expect("xml");
    assert!(xml.contains("uid='61001'"), "owner recorded: {xml}");
    // bob is not in the group: he may not define.
    assert_eq!(calls_as(&env, "bob", &[define("bob-vm")]), [NEEDS_AUTH]);

    // alice controls her domain through its whole life...
    let m = mine.as_str();
    let life = [
        opts_call(m, "org.virtbus1.Domain.Start"),
        opts_call(m, "org.virtbus1.Domain.Suspend"),
        opts_call(m, "org.virtbus1.Domain.Resume"),
        call(
            m,
            "org.virtbus1.Domain.CreateSnapshot",
            "(sa{sv})",
            "('<domainsnapshot><name>a</name></domainsnapshot>', {})",
        ),
        call(
            m,
            "org.virtbus1.Domain.GetXML",
            "(a{sv})",
            "({'secure': <true>},)",
        ),
        opts_call(m, "org.virtbus1.Domain.Reboot"),
        opts_call(m, "org.virtbus1.Domain.Destroy"),
    ];
    for c in &life {
        assert_eq!(
            calls_as(&env, "alice", std::slice::from_ref(c)),
            ["ok"],
            "{c}"
        );
    }
    // ...but not root's, and dave (also in the group) not hers.
    assert_eq!(
        calls_as(
            &env,
            "alice",
            &[opts_call(web.as_str(), "org.virtbus1.Domain.Start")]
        ),
        [NEEDS_AUTH]
    );
    assert_eq!(
        calls_as(&env, "dave", &[opts_call(m, "org.virtbus1.Domain.Start")]),
        [NEEDS_AUTH]
    );
    // Her snapshot and the undefine too.
    let snap = format!("{m}/snapshot/a");
    assert_eq!(
        calls_as(
            &env,
            "alice",
            &[opts_call(&snap, "org.virtbus1.Snapshot.Delete")]
        ),
        ["ok"]
    );
    assert_eq!(
        calls_as(
            &env,
            "alice",
            &[opts_call(m, "org.virtbus1.Domain.Undefine")]
        ),
        ["ok"]
    );
    // A redefinition by root keeps alice's ownership.
    assert_eq!(calls_as(&env, "alice", &[define("alice-vm2")]), ["ok"]);
    let vm2 = manager(&conn)
        .await
        .lookup_domain("alice-vm2")
        .await
        .expect("lookup");
    let uuid = domain(&conn, &vm2).await.uuid().await.expect("uuid");
    let xml = test_domain("alice-vm2").replace(
        "<vcpu>2</vcpu>",
        &format!("<uuid>{uuid}</uuid><vcpu>3</vcpu>"),
    );
    manager(&conn)
        .await
        .define_domain(&xml, no_opts())
        .await
        .expect("root redefines");
    assert_eq!(
        calls_as(
            &env,
            "alice",
            &[opts_call(vm2.as_str(), "org.virtbus1.Domain.Start")]
        ),
        ["ok"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_domain_rule_allows_exactly_start_and_stop_of_one_domain() {
    let env = PolkitEnv::start(&[(
        "60-virtbus-user-domain.rules",
        project_file("polkit/examples/60-virtbus-user-domain.rules"),
    )]);
    let _d = env.daemon(&[]).await;
    let conn = connect(&env.address).await;
    let web = root_domain(&conn, "web").await;
    let other = root_domain(&conn, "other").await;
    let w = web.as_str();
    assert_eq!(
        calls_as(&env, "bob", &[opts_call(w, "org.virtbus1.Domain.Start")]),
        ["ok"]
    );
    assert_eq!(
        calls_as(
            &env,
            "bob",
            &[
                opts_call(w, "org.virtbus1.Domain.Shutdown"),
                opts_call(w, "org.virtbus1.Domain.Suspend"),
                opts_call(w, "org.virtbus1.Domain.Undefine"),
                opts_call(other.as_str(), "org.virtbus1.Domain.Start"),
            ]
        ),
        [NEEDS_AUTH; 4]
    );
    assert_eq!(
        calls_as(&env, "bob", &[opts_call(w, "org.virtbus1.Domain.Destroy")]),
        ["ok"]
    );
    // carol gets nothing from bob's rule.
    assert_eq!(
        calls_as(&env, "carol", &[opts_call(w, "org.virtbus1.Domain.Start")]),
        [NEEDS_AUTH]
    );
    assert_eq!(
        domain(&conn, &web).await.state().await.expect("state"),
        "shut-off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_rule_takes_effect_without_restart() {
    let env = PolkitEnv::start(&[]);
    let _d = env.daemon(&[]).await;
    let conn = connect(&env.address).await;
    let web = root_domain(&conn, "web").await;
    // One connection: the first answer (denied) is cached for it; the rule change must drop
    // that cache entry.
    let mut child = env
        .command_as("carol", "/usr/bin/python3")
        .arg(client_path(&env))
        .arg("retry")
        .arg(opts_call(web.as_str(), "org.virtbus1.Domain.Start"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("client");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("first answer");
    assert_eq!(first.trim(), NEEDS_AUTH);
    env.add_rule(
        "70-carol.rules",
        "polkit.addRule(function(action, subject) {\n  if (subject.user == \"carol\") return polkit.Result.YES;\n});\n",
    );
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("go");
    let mut second = String::new();
    out.read_line(&mut second).expect("second answer");
    let v: serde_json::Value = serde_json::from_str(&second).expect("json");
    assert_eq!(v["result"], "ok", "{second}");
    assert!(v["seconds"].as_f64().unwrap_or(99.0) < 5.0, "{second}");
    child.wait().expect("wait");
    assert_eq!(
        domain(&conn, &web).await.state().await.expect("state"),
        "running"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_checks_all_right() {
    let env = PolkitEnv::start(&[(
        "50-virtbus-owners.rules",
        project_file("polkit/examples/50-virtbus-owners.rules"),
    )]);
    let _d = env.daemon(&[]).await;
    let conn = connect(&env.address).await;
    // 25 domains of alice's and 25 of root's: reading their secrets is allowed for her own
    // only, so each answer depends on the domain.
    let mut alice_paths = Vec::new();
    let defines: Vec<String> = (0..25)
        .map(|i| {
            call(
                "/org/virtbus1",
                "org.virtbus1.Manager.DefineDomain",
                "(sa{sv})",
                &format!("(\"{}\", {{}})", test_domain(&format!("a{i}"))),
            )
        })
        .collect();
    assert!(calls_as(&env, "alice", &defines).iter().all(|r| r == "ok"));
    let mgr = manager(&conn).await;
    for i in 0..25 {
        alice_paths.push(mgr.lookup_domain(&format!("a{i}")).await.expect("a"));
    }
    let mut root_paths = Vec::new();
    for i in 0..25 {
        root_paths.push(root_domain(&conn, &format!("r{i}")).await);
    }
    let secure = |p: &OwnedObjectPath| {
        call(
            p.as_str(),
            "org.virtbus1.Domain.GetXML",
            "(a{sv})",
            "({'secure': <true>},)",
        )
    };
    let mut calls = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..2 {
        for (a, r) in alice_paths.iter().zip(&root_paths) {
            calls.push(secure(a));
            calls.push(secure(r));
        }
    }
    for (user, own) in [
        ("alice", true),
        ("alice", true),
        ("alice", true),
        ("dave", false),
        ("dave", false),
    ] {
        expected.push(
            (0..100)
                .map(|i| if own && i % 2 == 0 { "ok" } else { NEEDS_AUTH })
                .collect::<Vec<_>>(),
        );
        let _ = user;
    }
    let clients: Vec<_> = ["alice", "alice", "alice", "dave", "dave"]
        .iter()
        .map(|user| {
            env.command_as(user, "/usr/bin/python3")
                .arg(client_path(&env))
                .arg("burst")
                .args(&calls)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("client")
        })
        .collect();
    let mut total: HashMap<String, usize> = HashMap::new();
    for (child, want) in clients.into_iter().zip(expected) {
        let out = child.wait_with_output().expect("client");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let got: Vec<&str> = v["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|r| r.as_str().unwrap_or_default())
            .collect();
        for r in &got {
            *total.entry((*r).to_owned()).or_default() += 1;
        }
        assert_eq!(got, want, "wrong decisions");
    }
    assert_eq!(total.values().sum::<usize>(), 500);
    assert!(
        !total.keys().any(|k| k.contains("LimitsExceeded")),
        "{total:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_policy_lets_only_root_own_the_name_and_anyone_call() {
    let env = PolkitEnv::start(&[]);
    // Before the daemon runs, an ordinary user cannot take its name.
    let out = env
        .command_as("carol", "/usr/bin/python3")
        .arg(client_path(&env))
        .args(["own", "org.virtbus1"])
        .output()
        .expect("client");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "org.freedesktop.DBus.Error.AccessDenied"
    );
    let _d = env.daemon(&[]).await;
    let out = env.busctl_as(
        "carol",
        false,
        &[
            "get-property",
            "org.virtbus1",
            "/org/virtbus1",
            "org.virtbus1.Manager",
            "Version",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("s \"{}\"", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_polkitd_only_root_is_allowed() {
    let env = PolkitEnv::start(&[]);
    let d = env.daemon(&[]).await;
    let conn = connect(&env.address).await;
    let web = root_domain(&conn, "web").await;
    env.stop_polkitd();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = calls_as(
        &env,
        "carol",
        &[
            opts_call(web.as_str(), "org.virtbus1.Domain.GetXML"),
            opts_call(web.as_str(), "org.virtbus1.Domain.Start"),
        ],
    );
    assert_eq!(got, [DENIED, DENIED]);
    domain(&conn, &web)
        .await
        .start(no_opts())
        .await
        .expect("root still may");
    assert!(
        d.log_text().contains("only root is authorized"),
        "{}",
        d.log_text()
    );
}

/// The libvirt facade (`org.libvirt`) asks polkit exactly as the native API does, against the
/// real caller of each call: reads for anyone, the rest per the rules, refusals in libvirt's
/// words (`org.libvirt.Error`, "access denied: …").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facade_calls_are_authorized_as_native_ones() {
    let env = PolkitEnv::start(&[(
        "60-virtbus-user-domain.rules",
        project_file("polkit/examples/60-virtbus-user-domain.rules"),
    )]);
    let out = env
        .command_as("carol", "/usr/bin/python3")
        .arg(client_path(&env))
        .args(["own", "org.libvirt"])
        .output()
        .expect("client");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "org.freedesktop.DBus.Error.AccessDenied"
    );
    let d = env.daemon(&["--libvirt-compat"]).await;
    let conn = connect(&env.address).await;
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.expect("dbus");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !dbus
        .name_has_owner("org.libvirt".try_into().expect("name"))
        .await
        .unwrap_or(false)
    {
        assert!(std::time::Instant::now() < deadline, "{}", d.log_text());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let reply = conn
        .call_method(
            Some("org.libvirt"),
            "/org/libvirt/Test",
            Some("org.libvirt.Connect"),
            "DomainDefineXML",
            &(test_domain("web"),),
        )
        .await
        .expect("root defines");
    let web: OwnedObjectPath = reply.body().deserialize().expect("path");
    let w = web.as_str();
    let t = "/org/libvirt/Test/domain/_6695eb01_f6a4_8304_79aa_97f2502e193f";

    let reads = [
        call(
            "/org/libvirt/Test",
            "org.libvirt.Connect.ListDomains",
            "(u)",
            "(0,)",
        ),
        call(
            "/org/libvirt/QEMU",
            "org.libvirt.Connect.ListDomains",
            "(u)",
            "(0,)",
        ),
        call(
            "/org/libvirt/Test",
            "org.libvirt.Connect.DomainLookupByName",
            "(s)",
            "('web',)",
        ),
        call(
            "/org/libvirt/Test",
            "org.libvirt.Connect.GetCapabilities",
            "()",
            "",
        ),
        call(
            "/org/libvirt/Test",
            "org.libvirt.Connect.NodeGetMemoryStats",
            "(iu)",
            "(-1, 0)",
        ),
        call(w, "org.libvirt.Domain.GetXMLDesc", "(u)", "(0,)"),
        call(w, "org.libvirt.Domain.GetState", "(u)", "(0,)"),
        call(w, "org.libvirt.Domain.ListDomainSnapshots", "(u)", "(0,)"),
        call(
            w,
            "org.freedesktop.DBus.Properties.GetAll",
            "(s)",
            "('org.libvirt.Domain',)",
        ),
        call(t, "org.libvirt.Domain.GetStats", "(uu)", "(45, 0)"),
    ];
    for (c, r) in reads
        .iter()
        .zip(calls_to(&env, "carol", "org.libvirt", &reads))
    {
        assert_eq!(r, "ok", "{c}");
    }
    let muts = [
        call(w, "org.libvirt.Domain.Create", "(u)", "(0,)"),
        call(t, "org.libvirt.Domain.Destroy", "(u)", "(0,)"),
        call(t, "org.libvirt.Domain.Shutdown", "(u)", "(0,)"),
        call(t, "org.libvirt.Domain.Suspend", "()", ""),
        call(t, "org.libvirt.Domain.Reset", "(u)", "(0,)"),
        call(t, "org.libvirt.Domain.ManagedSave", "(u)", "(0,)"),
        call(w, "org.libvirt.Domain.Undefine", "(u)", "(0,)"),
        call(w, "org.libvirt.Domain.GetXMLDesc", "(u)", "(1,)"),
        call(
            w,
            "org.libvirt.Domain.SetMetadata",
            "(isssu)",
            "(1, 'x', '', '', 0)",
        ),
        call(w, "org.libvirt.Domain.SetVcpus", "(uu)", "(1, 2)"),
        call(
            w,
            "org.libvirt.Domain.SnapshotCreateXML",
            "(su)",
            "('<domainsnapshot/>', 0)",
        ),
        call(
            w,
            "org.freedesktop.DBus.Properties.Set",
            "(ssv)",
            "('org.libvirt.Domain', 'Autostart', <true>)",
        ),
        call(
            "/org/libvirt/Test",
            "org.libvirt.Connect.DomainDefineXML",
            "(s)",
            &format!("(\"{}\",)", test_domain("intruder")),
        ),
    ];
    for (c, r) in muts
        .iter()
        .zip(calls_to(&env, "carol", "org.libvirt", &muts))
    {
        assert_eq!(r, NEEDS_AUTH, "{c}");
    }
    let interactive: Vec<String> = muts.iter().map(|c| format!("{c} interactive")).collect();
    for (c, r) in muts
        .iter()
        .zip(calls_to(&env, "carol", "org.libvirt", &interactive))
    {
        assert_eq!(r, "org.libvirt.Error", "{c}");
    }
    let out = env.busctl_as(
        "carol",
        true,
        &[
            "call",
            "org.libvirt",
            w,
            "org.libvirt.Domain",
            "Create",
            "u",
            "0",
        ],
    );
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("access denied: not authorized for org.virtbus1.domain.start on domain 'web'"),
        "{msg}"
    );
    // bob's rule lets him start and stop web, and nothing else.
    assert_eq!(
        calls_to(
            &env,
            "bob",
            "org.libvirt",
            &[call(w, "org.libvirt.Domain.Create", "(u)", "(0,)")]
        ),
        ["ok"]
    );
    assert_eq!(
        calls_to(
            &env,
            "bob",
            "org.libvirt",
            &[
                call(w, "org.libvirt.Domain.Suspend", "()", ""),
                call(t, "org.libvirt.Domain.Destroy", "(u)", "(0,)"),
            ]
        ),
        [NEEDS_AUTH, NEEDS_AUTH]
    );
    assert_eq!(
        calls_to(
            &env,
            "bob",
            "org.libvirt",
            &[call(w, "org.libvirt.Domain.Destroy", "(u)", "(0,)")]
        ),
        ["ok"]
    );
    // The test domain still runs: nothing carol asked for was done.
    let state = conn
        .call_method(
            Some("org.libvirt"),
            t,
            Some("org.libvirt.Domain"),
            "GetState",
            &(0u32,),
        )
        .await
        .expect("state");
    let (s, _): (i32, i32) = state.body().deserialize().expect("(ii)");
    assert_eq!(s, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiesced_snapshot_needs_fs_freeze_too() {
    let env = PolkitEnv::start(&[(
        "60-test-snapshot.rules",
        r#"polkit.addRule(function(action, subject) {
    if (action.id == "org.virtbus1.domain.snapshot" && subject.user == "bob") {
        return polkit.Result.YES;
    }
    if (action.id == "org.virtbus1.domain.fs-freeze" && subject.user == "carol") {
        return polkit.Result.YES;
    }
    if (action.id == "org.virtbus1.domain.snapshot" && subject.user == "carol") {
        return polkit.Result.YES;
    }
});
"#
        .to_owned(),
    )]);
    let _d = env.daemon(&[]).await;
    let conn = connect(&env.address).await;
    let web = root_domain(&conn, "web").await;
    let dom = domain(&conn, &web).await;
    dom.start(no_opts()).await.expect("start");
    let snap = |name: &str, quiesce: bool| {
        let opts = if quiesce {
            "{'disk-only': <true>, 'quiesce': <true>}"
        } else {
            "{'disk-only': <true>}"
        };
        call(
            web.as_str(),
            "org.virtbus1.Domain.CreateSnapshot",
            "(sa{sv})",
            &format!("('<domainsnapshot><name>{name}</name></domainsnapshot>', {opts})"),
        )
    };
    // bob may snapshot, but not freeze: the quiesced one is denied, the plain one is fine
    assert_eq!(calls_as(&env, "bob", &[snap("q", true)]), [NEEDS_AUTH]);
    assert_eq!(dom.snapshot_count().await.expect("count"), 0);
    assert_eq!(calls_as(&env, "bob", &[snap("plain", false)]), ["ok"]);
    // carol may do both
    assert_eq!(calls_as(&env, "carol", &[snap("q", true)]), ["ok"]);
    assert_eq!(dom.snapshot_count().await.expect("count"), 2);
    // and the user's freeze was not left behind: the test guest thaws nothing
    assert_eq!(dom.fs_thaw(no_opts()).await.expect("thaw"), 0);
}

/// Defining a domain whose QEMU gets arguments of the user's own (`<qemu:commandline>`) takes
/// its own permission: alice, whom the owner rule lets define domains, is refused unless a
/// rule grants `org.virtbus1.domain.qemu-passthrough`; the domain is marked tainted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_passthrough_needs_its_own_permission() {
    let mut rules = project_file("polkit/examples/50-virtbus-owners.rules");
    rules.push_str(
        r#"
polkit.addRule(function(action, subject) {
    if ((action.id == "org.virtbus1.domain.qemu-passthrough" ||
         action.id == "org.virtbus1.domain.write") && subject.user == "carol") {
        return polkit.Result.YES;
    }
});
"#,
    );
    let env = PolkitEnv::start(&[("50-virtbus-owners.rules", rules)]);
    let _d = env.daemon(&[]).await;
    let conn = connect(&env.address).await;
    let with_args = |name: &str| {
        let xml = format!(
            "<domain type='test' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\
             <name>{name}</name><memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os>\
             <qemu:commandline><qemu:arg value='-no-hpet'/></qemu:commandline></domain>"
        );
        call(
            "/org/virtbus1",
            "org.virtbus1.Manager.DefineDomain",
            "(sa{sv})",
            &format!("(\"{xml}\", {{}})"),
        )
    };
    // alice may define domains, but not this one
    assert_eq!(calls_as(&env, "alice", &[with_args("a")]), [NEEDS_AUTH]);
    assert!(manager(&conn).await.lookup_domain("a").await.is_err());
    // carol is granted it, and defining
    assert_eq!(calls_as(&env, "carol", &[with_args("c")]), ["ok"]);
    let c = manager(&conn).await.lookup_domain("c").await.expect("c");
    let warning = domain(&conn, &c).await.warning().await.expect("warning");
    assert!(warning.starts_with("tainted:"), "{warning}");
}

/// `<qemu:capabilities>` and `<qemu:override>` overrule what QEMU was found to do, so they
/// take the same permission as `<qemu:commandline>`: alice, whom the owner rule lets define
/// domains, is refused for each; carol, granted `org.virtbus1.domain.qemu-passthrough`,
/// defines them, and the domains are marked tainted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_capabilities_and_overrides_need_the_passthrough_permission() {
    let mut rules = project_file("polkit/examples/50-virtbus-owners.rules");
    rules.push_str(
        r#"
polkit.addRule(function(action, subject) {
    if ((action.id == "org.virtbus1.domain.qemu-passthrough" ||
         action.id == "org.virtbus1.domain.write") && subject.user == "carol") {
        return polkit.Result.YES;
    }
});
"#,
    );
    let env = PolkitEnv::start(&[("50-virtbus-owners.rules", rules)]);
    let _d = env.daemon(&[]).await;
    let conn = connect(&env.address).await;
    let define = |name: &str, ns: &str| {
        let xml = format!(
            "<domain type='test' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\
             <name>{name}</name><memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os>\
             {ns}</domain>"
        );
        call(
            "/org/virtbus1",
            "org.virtbus1.Manager.DefineDomain",
            "(sa{sv})",
            &format!("(\"{xml}\", {{}})"),
        )
    };
    let caps = "<qemu:capabilities><qemu:del capability='pcie-pci-bridge'/></qemu:capabilities>";
    let over = "<qemu:override><qemu:device alias='net0'><qemu:frontend>\
                <qemu:property name='mac' type='string' value='52:54:00:aa:bb:cc'/>\
                </qemu:frontend></qemu:device></qemu:override>";
    assert_eq!(
        calls_as(&env, "alice", &[define("a1", caps), define("a2", over)]),
        [NEEDS_AUTH, NEEDS_AUTH]
    );
    for name in ["a1", "a2"] {
        assert!(manager(&conn).await.lookup_domain(name).await.is_err());
    }
    assert_eq!(
        calls_as(&env, "carol", &[define("c1", caps), define("c2", over)]),
        ["ok", "ok"]
    );
    for name in ["c1", "c2"] {
        let c = manager(&conn).await.lookup_domain(name).await.expect(name);
        let warning = domain(&conn, &c).await.warning().await.expect("warning");
        assert!(warning.starts_with("tainted:"), "{warning}");
    }
}

/// Wait until the libvirt facade owns its name.
async fn wait_for_facade(conn: &zbus::Connection, d: &Daemon) {
    let dbus = zbus::fdo::DBusProxy::new(conn).await.expect("dbus");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !dbus
        .name_has_owner("org.libvirt".try_into().expect("name"))
        .await
        .unwrap_or(false)
    {
        assert!(std::time::Instant::now() < deadline, "{}", d.log_text());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The owner records of the pool `default`, as the daemon keeps them.
fn volume_owners(d: &Daemon) -> serde_json::Value {
    let dir = d.state.join("storage/owners");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(files.len() <= 1, "one pool: {files:?}");
    files.first().map_or(serde_json::json!({}), |f| {
        serde_json::from_str(&std::fs::read_to_string(f).expect("owners")).expect("JSON")
    })
}

/// With the example owner rule, members of virtbus-users create volumes, which become
/// theirs and which they then fully manage; not root's, not another member's, not a file
/// found in the pool's directory, not the pool itself, and they cannot copy the bytes of a
/// volume that is not theirs (clone, backing store). A user outside the group creates
/// nothing. Ownership survives a daemon restart, and the facade decides as the native API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_rule_gives_group_members_their_own_volumes_only() {
    let env = PolkitEnv::start(&[(
        "50-virtbus-owners.rules",
        project_file("polkit/examples/50-virtbus-owners.rules"),
    )]);
    let d = env.daemon(&["--libvirt-compat"]).await;
    let images = d.state.join("images");
    let pool = "/org/virtbus1/pool/default";
    let vol = |n: &str| format!("{pool}/volume/{n}");
    let create_xml = |xml: String| {
        call(
            pool,
            "org.virtbus1.StoragePool.CreateVolume",
            "(sa{sv})",
            &format!("(\"{xml}\", {{}})"),
        )
    };
    let create = |n: &str| {
        create_xml(format!(
            "<volume><name>{n}</name><capacity>1048576</capacity></volume>"
        ))
    };
    let clone = |n: &str, src: &str| {
        call(
            pool,
            "org.virtbus1.StoragePool.CloneVolume",
            "(soa{sv})",
            &format!(
                "(\"<volume><name>{n}</name></volume>\", objectpath '{}', {{}})",
                vol(src)
            ),
        )
    };
    let delete = |n: &str| opts_call(&vol(n), "org.virtbus1.StorageVolume.Delete");
    let wipe = |n: &str| opts_call(&vol(n), "org.virtbus1.StorageVolume.Wipe");
    let resize = |n: &str| {
        call(
            &vol(n),
            "org.virtbus1.StorageVolume.Resize",
            "(ta{sv})",
            "(2097152, {})",
        )
    };
    let refresh = opts_call(pool, "org.virtbus1.StoragePool.Refresh");

    assert_eq!(calls_as(&env, "root", &[create("root1")]), ["ok"]);
    // alice and dave (virtbus-users) create volumes, bob (outside the group) may not
    assert_eq!(calls_as(&env, "alice", &[create("alice1")]), ["ok"]);
    assert_eq!(calls_as(&env, "dave", &[create("dave1")]), ["ok"]);
    assert_eq!(calls_as(&env, "bob", &[create("bob1")]), [NEEDS_AUTH]);
    assert!(!images.join("bob1").exists());
    let owners = volume_owners(&d);
    assert_eq!(owners["alice1"]["uid"], 61001, "{owners}");
    assert_eq!(owners["dave1"]["uid"], 61004, "{owners}");
    assert!(owners.get("root1").is_none(), "{owners}");

    // alice manages hers (one call at a time: a volume takes one job)...
    for c in [resize("alice1"), wipe("alice1")] {
        assert_eq!(
            calls_as(&env, "alice", std::slice::from_ref(&c)),
            ["ok"],
            "{c}"
        );
    }
    // ...but not root's, not dave's, not the pool; bob not hers
    let others = [
        delete("root1"),
        wipe("root1"),
        resize("dave1"),
        delete("dave1"),
        refresh.clone(),
    ];
    assert_eq!(calls_as(&env, "alice", &others), [NEEDS_AUTH; 5]);
    assert_eq!(
        calls_as(&env, "alice", &[format!("{} interactive", delete("dave1"))]),
        [DENIED]
    );
    assert_eq!(calls_as(&env, "bob", &[delete("alice1")]), [NEEDS_AUTH]);

    // copying bytes needs them to be hers: a clone of her own volume, not of root's, and
    // no backing store of root's
    assert_eq!(
        calls_as(&env, "alice", &[clone("alice2", "alice1")]),
        ["ok"]
    );
    assert_eq!(
        calls_as(&env, "alice", &[clone("alice3", "root1")]),
        [NEEDS_AUTH]
    );
    let backed = format!(
        "<volume><name>alice4</name><target><format type='qcow2'/></target>\
         <backingStore><path>{}</path><format type='raw'/></backingStore></volume>",
        images.join("root1").display()
    );
    assert_eq!(calls_as(&env, "alice", &[create_xml(backed)]), [NEEDS_AUTH]);
    assert!(!images.join("alice3").exists() && !images.join("alice4").exists());

    // a file that appears in the directory is nobody's
    std::fs::write(images.join("found1"), vec![0u8; 4096]).expect("file");
    assert_eq!(
        calls_as(&env, "root", std::slice::from_ref(&refresh)),
        ["ok"]
    );
    assert_eq!(calls_as(&env, "alice", &[delete("found1")]), [NEEDS_AUTH]);

    // after a restart the owners are the same
    drop(d);
    let d = env.daemon(&["--libvirt-compat"]).await;
    assert_eq!(calls_as(&env, "dave", &[delete("alice1")]), [NEEDS_AUTH]);
    assert_eq!(calls_as(&env, "alice", &[delete("root1")]), [NEEDS_AUTH]);
    assert_eq!(calls_as(&env, "alice", &[delete("alice1")]), ["ok"]);
    assert!(!images.join("alice1").exists());
    let owners = volume_owners(&d);
    assert!(owners.get("alice1").is_none(), "{owners}");
    assert_eq!(owners["alice2"]["uid"], 61001, "{owners}");

    // the facade decides the same: dave's volume is his, not alice's
    let conn = connect(&env.address).await;
    wait_for_facade(&conn, &d).await;
    let reply = conn
        .call_method(
            Some("org.libvirt"),
            "/org/libvirt/QEMU",
            Some("org.libvirt.Connect"),
            "StorageVolLookupByPath",
            &(images.join("dave1").display().to_string(),),
        )
        .await
        .expect("lookup");
    let dave1: OwnedObjectPath = reply.body().deserialize().expect("path");
    let del = call(
        dave1.as_str(),
        "org.libvirt.StorageVol.Delete",
        "(u)",
        "(0,)",
    );
    assert_eq!(
        calls_to(&env, "alice", "org.libvirt", std::slice::from_ref(&del)),
        [NEEDS_AUTH]
    );
    assert_eq!(calls_to(&env, "dave", "org.libvirt", &[del]), ["ok"]);
    assert!(!images.join("dave1").exists());
    assert!(images.join("root1").exists() && images.join("found1").exists());
}
