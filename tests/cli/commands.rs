//! Every command against the test driver.

use std::{io::Write, os::unix::fs::PermissionsExt, time::Duration};

use crate::{Env, golden, mask_times};

const U1: &str = "11111111-1111-4111-8111-111111111111";
const U2: &str = "22222222-2222-4222-8222-222222222222";

/// Two domains: vm1 (2 vCPUs, 512 MiB) and web (4 vCPUs, 2 GiB).
async fn two_domains() -> Env {
    let env = Env::start().await;
    env.define("vm1", U1, 2, 512);
    env.define("web", U2, 4, 2048);
    env
}

#[tokio::test]
async fn list_shows_active_domains_or_all_with_filters() {
    let env = two_domains().await;
    golden("list-none-active.txt", env.run(&["list"]).ok());
    golden("list-all.txt", env.run(&["list", "--all"]).ok());
    env.run(&["start", "vm1"]).ok();
    env.run(&["autostart", "web", "on"]).ok();
    golden("list-one-running.txt", env.run(&["list"]).ok());
    assert_eq!(
        env.run(&["list", "--state", "shut-off", "--name"]).ok(),
        "web\n"
    );
    assert_eq!(env.run(&["list", "--autostart", "--name"]).ok(), "");
    assert_eq!(
        env.run(&["list", "--all", "--autostart", "--name"]).ok(),
        "web\n"
    );
    assert_eq!(env.run(&["list", "--all", "--name"]).ok(), "vm1\nweb\n");
    let j = env.run(&["list", "--all", "--json"]).json();
    let doms = j.as_array().expect("array");
    assert_eq!(doms.len(), 2);
    assert_eq!(doms[0]["name"], "vm1");
    assert_eq!(doms[0]["state"], "running");
    assert_eq!(doms[0]["uuid"], U1);
    assert!(doms[0]["id"].as_i64().is_some_and(|i| i > 0));
    assert_eq!(doms[0]["vcpus"], 2);
    assert_eq!(doms[0]["memory_kib"], 524288);
    assert_eq!(doms[1]["id"], serde_json::Value::Null);
    assert_eq!(doms[1]["autostart"], true);
    assert_eq!(doms[1]["snapshots"], 0);
    // Not a terminal: no colour codes.
    assert!(!env.run(&["list", "--all"]).stdout.contains('\x1b'));
}

#[tokio::test]
async fn status_by_name_or_uuid_human_and_json() {
    let env = two_domains().await;
    golden("status-shut-off.txt", env.run(&["status", "web"]).ok());
    assert_eq!(
        env.run(&["status", U2]).ok(),
        env.run(&["status", "web"]).ok()
    );
    env.run(&["start", "vm1"]).ok();
    let out = env.run(&["status", "vm1"]);
    let text = out.ok();
    assert!(text.starts_with("vm1\n"), "{text}");
    assert!(text.contains("State: running (booted)"), "{text}");
    assert!(text.contains("CPU time: "), "{text}");
    let j = env.run(&["status", "vm1", "--json"]).json();
    assert_eq!(j["state"], "running");
    assert_eq!(j["state_reason"], "booted");
    assert_eq!(j["driver"], "test");
    assert_eq!(j["active"], true);
    assert_eq!(j["job"], "");
    assert!(j["stats"]["cpu.time"].as_u64().is_some(), "{j}");
    assert!(j["interfaces"].as_array().is_some());
}

#[tokio::test]
async fn lifecycle_commands_change_the_state() {
    let env = two_domains().await;
    let state = |env: &Env| env.run(&["status", "vm1", "--json"]).json()["state"].clone();
    assert_eq!(env.run(&["start", "vm1"]).ok(), "vm1 started\n");
    assert_eq!(state(&env), "running");
    assert_eq!(env.run(&["suspend", "vm1"]).ok(), "vm1 suspended\n");
    assert_eq!(state(&env), "paused");
    assert_eq!(env.run(&["resume", U1]).ok(), "vm1 resumed\n");
    assert_eq!(state(&env), "running");
    env.run(&["reboot", "vm1"]).ok();
    env.run(&["reset", "vm1"]).ok();
    assert_eq!(state(&env), "running");
    assert_eq!(
        env.run(&["shutdown", "vm1", "--wait"]).ok(),
        "vm1 is shut off\n"
    );
    assert_eq!(state(&env), "shut-off");
    env.run(&["start", "vm1", "--paused"]).ok();
    assert_eq!(state(&env), "paused");
    assert_eq!(env.run(&["destroy", "vm1"]).ok(), "vm1 destroyed\n");
    assert_eq!(state(&env), "shut-off");
    env.run(&["autostart", "vm1", "on"]).ok();
    assert_eq!(
        env.run(&["status", "vm1", "--json"]).json()["autostart"],
        true
    );
    env.run(&["autostart", "vm1", "off"]).ok();
    assert_eq!(
        env.run(&["status", "vm1", "--json"]).json()["autostart"],
        false
    );
}

#[tokio::test]
async fn save_and_restore_a_managed_save_image() {
    let env = two_domains().await;
    env.run(&["start", "vm1"]).ok();
    env.run(&["save", "vm1"]).ok();
    let j = env.run(&["status", "vm1", "--json"]).json();
    assert_eq!(
        (j["state"].as_str(), j["managed_save"].as_bool()),
        (Some("shut-off"), Some(true))
    );
    assert_eq!(env.run(&["list", "--managed-save", "--name"]).ok(), "vm1\n");
    assert_eq!(env.run(&["restore", "vm1"]).ok(), "vm1 restored\n");
    let j = env.run(&["status", "vm1", "--json"]).json();
    assert_eq!(
        (j["state"].as_str(), j["managed_save"].as_bool()),
        (Some("running"), Some(false))
    );
    // Nothing to restore: a state error, exit code 6.
    env.run(&["destroy", "vm1"]).ok();
    let r = env.run(&["restore", "vm1"]);
    assert_eq!(r.code, 6, "{r:?}");
    assert_eq!(r.stderr, "virtbusctl: vm1 has no saved state to restore\n");
    env.run(&["start", "vm1"]).ok();
    env.run(&["save", "vm1", "--paused"]).ok();
    env.run(&["save", "vm1", "--remove"]).ok();
    assert_eq!(
        env.run(&["status", "vm1", "--json"]).json()["managed_save"],
        false
    );
}

#[tokio::test]
async fn define_dumpxml_undefine_and_create() {
    let env = Env::start().await;
    let xml = format!(
        "<domain type='test'><name>fromstdin</name><uuid>{U1}</uuid><memory unit='MiB'>256</memory>\
         <vcpu>1</vcpu><os><type>hvm</type></os></domain>"
    );
    let mut child = env
        .command(&["define", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(xml.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("fromstdin defined ({U1})\n")
    );
    let dumped = env.run(&["dumpxml", "fromstdin"]);
    golden("dumpxml.xml", dumped.ok());
    let j = env.run(&["dumpxml", "fromstdin", "--json"]).json();
    assert_eq!(j["xml"].as_str(), Some(dumped.stdout.as_str()));
    assert_eq!(
        env.run(&["undefine", "fromstdin"]).ok(),
        "fromstdin undefined\n"
    );
    assert_eq!(env.run(&["status", "fromstdin"]).code, 3);
    let f = env.file("t.xml", &xml.replace("fromstdin", "transient"));
    assert!(
        env.run(&["create", f.to_str().expect("path")])
            .ok()
            .starts_with("transient started")
    );
    let j = env.run(&["status", "transient", "--json"]).json();
    assert_eq!(
        (j["persistent"].as_bool(), j["state"].as_str()),
        (Some(false), Some("running"))
    );
}

#[tokio::test]
async fn exit_codes_and_one_line_errors_per_kind() {
    let env = two_domains().await;
    // Not found: 3.
    let r = env.run(&["start", "nope"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            3,
            "virtbusctl: no domain with name or UUID 'nope' (NotFound)\n"
        )
    );
    let r = env.run(&["snapshot", "show", "vm1", "nope"]);
    assert_eq!(r.code, 3, "{r:?}");
    let r = env.run(&["define", "/nonexistent/file.xml"]);
    assert_eq!(r.code, 3, "{r:?}");
    // Invalid input: 4, with the daemon's message.
    let bad = env.file(
        "bad.xml",
        "<domain type='test'><name>x</name><bogus/></domain>",
    );
    let r = env.run(&["define", bad.to_str().expect("path")]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr.starts_with("virtbusctl: ") && r.stderr.ends_with("(InvalidArgument)\n"),
        "{r:?}"
    );
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    // Wrong state: 6.
    let r = env.run(&["resume", "vm1"]);
    assert_eq!(r.code, 6, "{r:?}");
    assert!(r.stderr.ends_with("(InvalidState)\n"), "{r:?}");
    // Usage: 2.
    assert_eq!(env.run(&["start"]).code, 2);
    assert_eq!(env.run(&["autostart", "vm1", "maybe"]).code, 2);
    assert_eq!(env.run(&["frobnicate"]).code, 2);
    // No daemon on the bus: 1.
    let mut c = env.command(&["list"]);
    c.env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    let out = c.output().expect("run");
    assert_eq!(out.status.code(), Some(1));
}

/// A bus whose policy refuses Domain.Start to everyone: the refusal is AccessDenied, the
/// same kind polkit's refusals have, exit code 5.
#[tokio::test]
async fn denied_is_exit_code_five() {
    let dir = tempfile::Builder::new()
        .prefix("vbcli")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let sock = dir.path().join("bus");
    let conf = dir.path().join("bus.conf");
    let deny = "\n    <deny send_destination=\"org.virtbus1\" send_interface=\"org.virtbus1.Domain\" \
                send_member=\"Start\"/>";
    std::fs::write(&conf, crate::support::session_bus_config(&sock, deny)).expect("conf");
    let mut bus = std::process::Command::new("dbus-daemon")
        .arg(format!("--config-file={}", conf.display()))
        .arg("--nofork")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("dbus-daemon");
    let address = format!("unix:path={}", sock.display());
    let daemon = crate::support::Daemon::launch(
        &address,
        dir.path(),
        &dir.path().join("state"),
        &dir.path().join("run"),
        Default::default(),
    )
    .await;
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_virtbusctl"))
            .arg("--user")
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let f = dir.path().join("d.xml");
    std::fs::write(&f, crate::support::test_domain("d")).expect("xml");
    assert_eq!(run(&["define", f.to_str().expect("path")]).0, Some(0));
    let (code, err) = run(&["start", "d"]);
    assert_eq!(code, Some(5), "{err}");
    assert!(
        err.ends_with("(AccessDenied)\n") && err.lines().count() == 1,
        "{err}"
    );
    drop(daemon);
    let _ = bus.kill();
    let _ = bus.wait();
}

#[tokio::test]
async fn snapshots_create_list_as_tree_show_revert_delete() {
    let env = two_domains().await;
    env.run(&["start", "vm1"]).ok();
    assert_eq!(
        env.run(&[
            "snapshot",
            "create",
            "vm1",
            "base",
            "--description",
            "clean install"
        ])
        .ok(),
        "snapshot base of vm1 created\n"
    );
    env.run(&["snapshot", "create", "vm1", "a"]).ok();
    env.run(&["snapshot", "create", "vm1", "a2"]).ok();
    env.run(&["snapshot", "revert", "vm1", "base"]).ok();
    env.run(&["snapshot", "create", "vm1", "b"]).ok();
    golden(
        "snapshot-list.txt",
        &mask_times(env.run(&["snapshot", "list", "vm1"]).ok()),
    );
    golden(
        "snapshot-show.txt",
        &mask_times(env.run(&["snapshot", "show", "vm1", "a"]).ok()),
    );
    let j = env.run(&["snapshot", "list", "vm1", "--json"]).json();
    let names: Vec<&str> = j
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["base", "a", "a2", "b"]);
    assert_eq!(j[1]["parent"], "base");
    assert_eq!(j[0]["parent"], serde_json::Value::Null);
    assert_eq!(j[3]["current"], true);
    assert_eq!(j[0]["description"], "clean install");
    let x = env.run(&["snapshot", "show", "vm1", "a", "--xml"]);
    assert!(x.ok().contains("<name>a</name>"), "{x:?}");
    assert_eq!(
        env.run(&["status", "vm1", "--json"]).json()["current_snapshot"],
        "b"
    );
    env.run(&["snapshot", "delete", "vm1", "a", "--children"])
        .ok();
    let j = env.run(&["snapshot", "list", "vm1", "--json"]).json();
    assert_eq!(j.as_array().map(Vec::len), Some(2));
    assert_eq!(
        env.run(&["list", "--with-snapshot", "--name"]).ok(),
        "vm1\n"
    );
}

#[tokio::test]
async fn attach_and_detach_a_device_in_the_definition() {
    let env = two_domains().await;
    let disk = env.file(
        "disk.xml",
        "<disk type='file' device='disk'><source file='/var/lib/x.img'/>\
         <target dev='vdb' bus='virtio'/></disk>",
    );
    let d = disk.to_str().expect("path");
    assert_eq!(
        env.run(&["attach-device", "vm1", d, "--config"]).ok(),
        "device attached\n"
    );
    assert!(
        env.run(&["dumpxml", "vm1", "--inactive"])
            .ok()
            .contains("<target dev='vdb' bus='virtio'/>")
    );
    assert_eq!(
        env.run(&["detach-device", "vm1", d, "--config"]).ok(),
        "device detached\n"
    );
    assert!(
        !env.run(&["dumpxml", "vm1", "--inactive"])
            .ok()
            .contains("vdb")
    );
}

#[tokio::test]
async fn edit_reopens_a_refused_definition_with_the_error_until_fixed() {
    let env = two_domains().await;
    // The editor: first breaks the XML; shown the daemon's error, it restores it with 4 vCPUs.
    let script = env.file(
        "editor.sh",
        r#"#!/bin/sh
f="$1"
n=$(cat "$0.count" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "$0.count"
cp "$f" "$0.seen.$n"
if [ $n = 1 ]; then
    sed -i 's|<vcpu|<vcpux|' "$f"
else
    sed -i -e '/<!-- virtbusctl:/,/-->/d' -e 's|<vcpux[^>]*>2</vcpu>|<vcpu placement='"'"'static'"'"'>4</vcpu>|' "$f"
fi
"#,
    );
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut c = env.command(&["edit", "vm1"]);
    c.env("EDITOR", &script).env_remove("VISUAL");
    let r = crate::Run::from(c.output().expect("run"));
    assert_eq!(r.ok(), "vm1 redefined\n", "{r:?}");
    assert!(
        r.stderr
            .starts_with("virtbusctl: the daemon refused the definition: "),
        "{r:?}"
    );
    let seen2 = std::fs::read_to_string(script.with_extension("sh.seen.2")).expect("second open");
    assert!(
        seen2.starts_with("<!-- virtbusctl: the daemon refused this definition:"),
        "{seen2}"
    );
    assert!(seen2.contains("vcpux"), "the user's edit is kept: {seen2}");
    assert_eq!(env.run(&["status", "vm1", "--json"]).json()["vcpus"], 4);

    // An editor that changes nothing: nothing is defined.
    let mut c = env.command(&["edit", "web"]);
    c.env("EDITOR", "true").env_remove("VISUAL");
    assert_eq!(
        crate::Run::from(c.output().expect("run")).ok(),
        "web's XML was not changed\n"
    );
    // One that leaves a refused file as it is gives up with the error's exit code.
    let breaker = env.file(
        "break.sh",
        "#!/bin/sh\ngrep -q virtbusctl \"$1\" || sed -i 's|<vcpu|<vcpux|' \"$1\"\n",
    );
    std::fs::set_permissions(&breaker, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut c = env.command(&["edit", "web"]);
    c.env("EDITOR", &breaker).env_remove("VISUAL");
    let r = crate::Run::from(c.output().expect("run"));
    assert_eq!(r.code, 4, "{r:?}");
    assert_eq!(env.run(&["status", "web", "--json"]).json()["vcpus"], 4);
}

#[tokio::test]
async fn events_follow_lifecycle_and_properties_until_interrupted() {
    let env = two_domains().await;
    for json in [false, true] {
        let mut args = vec!["events"];
        if json {
            args.push("--json");
        }
        let child = env
            .command(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        tokio::time::sleep(Duration::from_millis(700)).await;
        env.run(&["start", "vm1"]).ok();
        env.run(&["destroy", "vm1"]).ok();
        tokio::time::sleep(Duration::from_millis(300)).await;
        // SAFETY: interrupting the child this test started.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let out = child.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8_lossy(&out.stdout);
        if json {
            let events: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
                .collect();
            let lifecycle: Vec<(&str, &str)> = events
                .iter()
                .filter(|e| e["kind"] == "lifecycle")
                .filter_map(|e| Some((e["domain"].as_str()?, e["event"].as_str()?)))
                .collect();
            assert_eq!(
                lifecycle,
                [("vm1", "started"), ("vm1", "stopped")],
                "{text}"
            );
            assert!(
                events
                    .iter()
                    .any(|e| e["kind"] == "properties" && e["properties"]["State"] == "running"),
                "{text}"
            );
        } else {
            assert!(
                text.lines().any(|l| l.contains(" vm1 lifecycle: started")),
                "{text}"
            );
            assert!(
                text.lines()
                    .any(|l| l.contains(" vm1 properties: ") && l.contains("State=running")),
                "{text}"
            );
        }
    }
}

#[tokio::test]
async fn stats_and_top_read_every_active_domain() {
    let env = two_domains().await;
    assert_eq!(env.run(&["stats"]).ok(), "No active domains.\n");
    env.run(&["start", "vm1"]).ok();
    let j = env.run(&["stats", "--json"]).json();
    assert!(j["vm1"]["cpu.time"].as_u64().is_some(), "{j}");
    assert!(j.get("web").is_none());
    let text = env.run(&["stats"]).ok().to_owned();
    assert!(text.starts_with("NAME  STATE    CPU TIME"), "{text}");
    let top = env.run(&["top", "-n", "2", "-d", "0.2"]);
    let text = top.ok();
    assert_eq!(
        text.matches("1 domain active, every 0.2s").count(),
        2,
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().take(2).eq(["vm1", "running"])),
        "{text}"
    );
}

#[test]
fn completions_and_man_page_are_generated() {
    let bin = env!("CARGO_BIN_EXE_virtbusctl");
    for shell in ["bash", "zsh", "fish"] {
        let out = std::process::Command::new(bin)
            .args(["completions", shell])
            .output()
            .expect("run");
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("snapshot") && text.contains("attach-device"),
            "{shell}"
        );
    }
    // The bash script parses and completes domain names from `list --all --name`.
    let out = std::process::Command::new(bin)
        .args(["completions", "bash"])
        .output()
        .expect("run");
    let check = std::process::Command::new("bash")
        .args(["-n", "/dev/stdin"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().expect("stdin").write_all(&out.stdout)?;
            c.wait()
        })
        .expect("bash -n");
    assert!(check.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("list --all --name"));
    let man = std::process::Command::new(bin)
        .arg("manpage")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&man.stdout);
    assert!(
        text.starts_with(".ie") || text.contains(".TH virtbusctl"),
        "{text}"
    );
    assert!(text.contains("snapshot"));
}

#[test]
fn help_lists_the_commands_in_groups() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_virtbusctl"))
        .arg("--help")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    for heading in ["Domains:", "Lifecycle:", "Definitions:", "Snapshots:"] {
        assert!(text.contains(heading), "{text}");
    }
    assert!(!text.contains("completions"), "hidden commands stay hidden");
}

#[tokio::test]
async fn ctrl_c_stops_waiting_and_says_the_operation_goes_on() {
    let env = Env::start().await;
    let f = env.file("slow.xml", &crate::support::slow_domain("slow", 2000));
    env.run(&["define", f.to_str().expect("path")]).ok();
    let child = env
        .command(&["start", "slow"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    tokio::time::sleep(Duration::from_millis(700)).await;
    // SAFETY: interrupting the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert_eq!(
        err,
        "virtbusctl: interrupted: starting of slow goes on in the daemon \
         (`virtbusctl status slow` shows its state)\n"
    );
    // And it does: the domain comes up.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while env.run(&["status", "slow", "--json"]).json()["state"] != "running" {
        assert!(
            std::time::Instant::now() < deadline,
            "the start did not go on"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn console_needs_a_running_domain_and_a_driver_with_consoles() {
    let env = two_domains().await;
    let r = env.run(&["console", "vm1"]);
    assert_eq!(r.code, 6, "{r:?}");
    assert!(
        r.stderr.contains("cannot open a console of domain 'vm1'"),
        "{r:?}"
    );
    env.run(&["start", "vm1"]).ok();
    let r = env.run(&["console", "vm1"]);
    assert_eq!(r.code, 7, "{r:?}");
    assert!(
        r.stderr
            .contains("domain 'vm1' has no console or serial port"),
        "{r:?}"
    );
    let r = env.run(&["console", "vm1", "--device", "serial1"]);
    assert_eq!(r.code, 4, "{r:?}");
    // The test driver has no guest behind its serial ports.
    let xml = "<domain type='test'><name>ser</name><memory unit='MiB'>64</memory>\
               <vcpu>1</vcpu><os><type>hvm</type></os><devices><serial type='pty'/>\
               <console type='pty'/></devices></domain>";
    let f = env.file("ser.xml", xml);
    env.run(&["create", f.to_str().expect("path")]).ok();
    let r = env.run(&["console", "ser", "--device", "serial0"]);
    assert_eq!(r.code, 7, "{r:?}");
    assert!(
        r.stderr
            .contains("the test driver cannot open a console of domain 'ser'"),
        "{r:?}"
    );
    assert_eq!(env.run(&["console", "nosuch"]).code, 3);
}
