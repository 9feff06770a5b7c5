//! Virtual networks through the client. The daemon runs inside a network namespace the test
//! creates (`ip netns exec`), so its bridges, firewall tables and dnsmasq never touch the
//! host's; a busybox DHCP client on a veth pair plugged into the bridge takes a real lease.

use std::{os::unix::fs::PermissionsExt, process::Command};

use crate::{Env, support::Launch};

/// A network namespace of the test's own, removed with everything in it.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("vbt-cli-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip")
            .success();
        assert!(ok, "ip netns add {name}");
        Netns(name)
    }

    /// Run `args` inside the namespace; (success, stdout + stderr).
    fn exec(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .output()
            .expect("ip netns exec");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
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

const LAB: &str = "<network><name>lab</name><forward mode='nat'/>\
    <bridge name='vbtcli0'/><ip address='10.78.0.1' prefix='24'>\
    <dhcp><range start='10.78.0.10' end='10.78.0.50'/></dhcp></ip></network>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_verbs_human_and_json_in_a_namespace() {
    let ns = Netns::new();
    let env = Env::start_launch(Launch {
        prefix: vec!["ip".into(), "netns".into(), "exec".into(), ns.0.clone()],
        ..Default::default()
    })
    .await;
    let lab = env.file("lab.xml", LAB);
    let lab = lab.to_str().expect("path");
    let out = env.run(&["net", "define", lab]);
    assert!(out.ok().starts_with("network lab defined ("), "{out:?}");
    assert_eq!(env.run(&["net", "list"]).ok(), "No active networks.\n");
    assert_eq!(env.run(&["net", "list", "--all", "--name"]).ok(), "lab\n");
    assert_eq!(
        env.run(&["net", "start", "lab"]).ok(),
        "network lab started\n"
    );
    let (up, addr) = ns.exec(&["ip", "-br", "addr", "show", "vbtcli0"]);
    assert!(up && addr.contains("10.78.0.1/24"), "{addr}");
    assert_eq!(
        env.run(&["net", "autostart", "lab", "on"]).ok(),
        "network lab starts at boot\n"
    );
    crate::golden("net-list.txt", env.run(&["net", "list"]).ok());
    let j = env.run(&["net", "info", "lab", "--json"]).json();
    let uuid = j["uuid"].as_str().expect("uuid").to_owned();
    assert_eq!(
        j,
        serde_json::json!({
            "name": "lab", "uuid": uuid, "state": "active", "active": true,
            "persistent": true, "autostart": true, "bridge": "vbtcli0",
        })
    );
    assert_eq!(
        env.run(&["net", "list", "--json"]).json(),
        serde_json::json!([j])
    );
    let info = env.run(&["net", "info", "lab"]).ok().to_owned();
    assert_eq!(
        info,
        format!(
            "lab\n       State: active\n        UUID: {uuid}\n      Bridge: vbtcli0\n  \
             Persistent: yes\n   Autostart: yes\n"
        )
    );
    assert_eq!(env.run(&["net", "info", &uuid]).ok(), info);
    // Starting it again: a state error.
    let r = env.run(&["net", "start", "lab"]);
    assert_eq!(r.code, 6, "{r:?}");
    assert!(r.stderr.ends_with("(InvalidState)\n"), "{r:?}");

    // A static DHCP host, inline and from a file, live and in the config.
    let host = "<host mac='52:54:00:12:34:56' name='db' ip='10.78.0.5'/>";
    assert_eq!(
        env.run(&[
            "net",
            "update",
            "lab",
            "add",
            "ip-dhcp-host",
            host,
            "--live",
            "--config"
        ])
        .ok(),
        "network lab updated (add-last ip-dhcp-host)\n"
    );
    for inactive in [&[][..], &["--inactive"][..]] {
        let mut args = vec!["net", "dumpxml", "lab"];
        args.extend_from_slice(inactive);
        let xml = env.run(&args).ok().to_owned();
        assert!(xml.contains(host), "{xml}");
    }
    let modified = env.file(
        "host.xml",
        "<host mac='52:54:00:12:34:56' name='db' ip='10.78.0.6'/>\n",
    );
    env.run(&[
        "net",
        "update",
        "lab",
        "modify",
        "ip-dhcp-host",
        modified.to_str().expect("path"),
        "--live",
        "--config",
    ])
    .ok();
    let j = env.run(&["net", "dumpxml", "lab", "--json"]).json();
    assert!(
        j["xml"]
            .as_str()
            .is_some_and(|x| x.contains("ip='10.78.0.6'")),
        "{j}"
    );
    let r = env.run(&["net", "update", "lab", "add", "bogus-section", host]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("bogus-section"), "{r:?}");
    let r = env.run(&["net", "update", "lab", "frobnicate", "ip-dhcp-host", host]);
    assert_eq!(r.code, 2, "{r:?}");

    // A real lease: a veth pair, one end on the bridge, busybox's DHCP client on the other.
    assert_eq!(
        env.run(&["net", "dhcp-leases", "lab"]).ok(),
        "No leases on lab.\n"
    );
    for cmd in [
        &[
            "ip", "link", "add", "vbtc0", "type", "veth", "peer", "name", "vbtc1",
        ][..],
        &["ip", "link", "set", "vbtc0", "master", "vbtcli0", "up"],
        &[
            "ip",
            "link",
            "set",
            "vbtc1",
            "address",
            "52:54:00:aa:bb:cc",
            "up",
        ],
    ] {
        let (ok, text) = ns.exec(cmd);
        assert!(ok, "{cmd:?}: {text}");
    }
    let (ok, text) = ns.exec(&[
        "busybox",
        "udhcpc",
        "-i",
        "vbtc1",
        "-n",
        "-q",
        "-t",
        "10",
        "-x",
        "hostname:client1",
        "-s",
        "/bin/true",
    ]);
    assert!(ok, "udhcpc: {text}");
    let leases = env.run(&["net", "dhcp-leases", "lab", "--json"]).json();
    let l = &leases[0];
    assert_eq!(leases.as_array().map(Vec::len), Some(1), "{leases}");
    assert_eq!(l["interface"], "vbtcli0");
    assert_eq!(l["type"], "ipv4");
    assert_eq!(l["mac"], "52:54:00:aa:bb:cc");
    assert_eq!(l["prefix"], 24);
    assert_eq!(l["hostname"], "client1");
    assert!(l["expiry_time"].as_i64().is_some_and(|t| t > 0), "{l}");
    assert!(
        l["address"]
            .as_str()
            .is_some_and(|a| a.starts_with("10.78.0.")),
        "{l}"
    );
    for k in ["iaid", "client_id"] {
        assert!(l.get(k).is_some(), "{k} missing: {l}");
    }
    let table = env.run(&["net", "dhcp-leases", "lab"]).ok().to_owned();
    assert!(table.starts_with("EXPIRES  "), "{table}");
    assert!(
        table.contains("52:54:00:aa:bb:cc  ipv4      10.78.0."),
        "{table}"
    );
    assert!(table.contains("client1"), "{table}");
    assert_eq!(
        env.run(&[
            "net",
            "dhcp-leases",
            "lab",
            "--mac",
            "52:54:00:00:00:01",
            "--json"
        ])
        .json(),
        serde_json::json!([])
    );

    // edit: the script first writes a definition the daemon refuses, then a good one.
    let script = env.file(
        "edit.sh",
        "#!/bin/sh\nn=$(ls \"$0\".seen.* 2>/dev/null | wc -l)\ntouch \"$0.seen.$n\"\n\
         if [ \"$n\" = 0 ]; then sed -i 's|<bridge |<bogus/><bridge |' \"$1\"; \
         else sed -i -e 's|<bogus/>||' -e \"s|end='10.78.0.50'|end='10.78.0.60'|\" \"$1\"; fi\n",
    );
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = env
        .command(&["net", "edit", "lab"])
        .env("EDITOR", &script)
        .env_remove("VISUAL")
        .output()
        .expect("edit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("refused") && stderr.contains("bogus"),
        "{stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "network lab redefined\n"
    );
    let xml = env
        .run(&["net", "dumpxml", "lab", "--inactive"])
        .ok()
        .to_owned();
    assert!(xml.contains("end='10.78.0.60'"), "{xml}");

    // Unknown networks and bad XML: one line, their exit codes, nothing changed.
    let r = env.run(&["net", "info", "nonet"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (3, "virtbusctl: no network named 'nonet'\n")
    );
    for verb in ["start", "stop", "undefine", "dumpxml", "dhcp-leases"] {
        assert_eq!(env.run(&["net", verb, "nonet"]).code, 3, "{verb}");
    }
    let bad = env.file("bad.xml", "<network><name>x</name><bogus/></network>");
    let r = env.run(&["net", "define", bad.to_str().expect("path")]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("/network/bogus"), "{r:?}");
    assert_eq!(env.run(&["net", "list", "--all", "--name"]).ok(), "lab\n");

    assert_eq!(
        env.run(&["net", "stop", "lab"]).ok(),
        "network lab stopped\n"
    );
    assert!(!ns.exec(&["ip", "link", "show", "vbtcli0"]).0);
    assert_eq!(
        env.run(&["net", "undefine", "lab"]).ok(),
        "network lab undefined\n"
    );
    assert_eq!(
        env.run(&["net", "list", "--all", "--json"]).json(),
        serde_json::json!([])
    );
    // A transient network: create starts it; stopping it removes it.
    let out = env.run(&["net", "create", lab]);
    assert!(out.ok().starts_with("network lab started ("), "{out:?}");
    let j = env.run(&["net", "info", "lab", "--json"]).json();
    assert_eq!(
        (j["active"].as_bool(), j["persistent"].as_bool()),
        (Some(true), Some(false))
    );
    env.run(&["net", "stop", "lab"]).ok();
    assert_eq!(env.run(&["net", "list", "--all", "--name"]).ok(), "");
}
