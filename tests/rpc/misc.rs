//! virsh's smaller domain commands through the socket: `send-key` (the keys seen by the
//! guest's kernel), `set-lifecycle-action` (a live change that decides the guest's next
//! reboot), `domdirtyrate-calc` with the `dirtyrate` statistics, `dompmsuspend` and
//! `dompmwakeup`, `domlaunchsecinfo`/`domsetlaunchsecstate`, and `domrename`, on a running
//! tiny guest; libvirt's errors for bad input and read-only connections; and
//! `test+unix:///default` against libvirt's own test driver.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use super::{Rpc, guest};

const TEST: &str = "test+unix:///default";
const QEMU: &str = "qemu:///system";

#[tokio::test]
async fn test_driver_answers_as_libvirts() {
    let r = Rpc::start().await;
    for cmd in [
        &["send-key", "test", "KEY_A", "KEY_LEFTSHIFT"][..],
        &["send-key", "test", "--codeset", "qnum", "0xc8"],
        &["send-key", "test", "--codeset", "rfb", "0x1e"],
        &[
            "send-key",
            "test",
            "--codeset",
            "usb",
            "4",
            "--holdtime",
            "50",
        ],
        &["send-key", "test", "--codeset", "usb", "999"],
        &["send-key", "test", "--codeset", "xt", "0xe048"],
        &["domlaunchsecinfo", "test"],
        &["domrename", "test", "test2"],
        &["dompmwakeup", "test"],
        &["dompmsuspend", "test", "mem"],
        &["domdirtyrate-calc", "test"],
        &["managedsave-dumpxml", "test"],
        &[
            "domsetlaunchsecstate",
            "test",
            "--secrethdr",
            "/etc/hostname",
            "--secret",
            "/etc/hostname",
        ],
        &["set-lifecycle-action", "test", "reboot", "coredump-destroy"],
        &["set-lifecycle-action", "test", "crash", "coredump-restart"],
        &[
            "set-lifecycle-action",
            "test",
            "reboot",
            "destroy",
            "--config",
        ],
    ] {
        r.assert_as_libvirt_test(cmd);
    }
    // the change took: the persistent definition answers a reboot with destroy
    let xml = r.ok(TEST, &["dumpxml", "--inactive", "test"]);
    assert!(xml.contains("<on_reboot>destroy</on_reboot>"), "{xml}");
    // renaming a shut-off domain, as libvirt's test driver does
    r.ok(TEST, &["destroy", "test"]);
    let e = r.fails(TEST, &["send-key", "test", "--codeset", "usb", "999"]);
    assert!(e.contains("domain is not running"), "{e}");
    r.ok(TEST, &["domrename", "test", "renamed"]);
    let list = r.ok(TEST, &["list", "--all", "--name"]);
    assert!(
        list.contains("renamed") && !list.lines().any(|l| l == "test"),
        "{list}"
    );
    let e = r.fails(TEST, &["domrename", "renamed", "renamed"]);
    assert!(e.contains("Can't rename domain to itself"), "{e}");
}

/// Run `cmd` in the guest through the test agent.
async fn sh(a: &guest::TestAgent, cmd: &str) -> String {
    a.sh(cmd).await
}

/// The key events (`EV_KEY`: code, value 1 press / 0 release, time in µs) in a dump of
/// `struct input_event`s (64-bit: seconds, microseconds, type, code, value).
fn key_events(hex: &str) -> Vec<(u16, i32, i64)> {
    let bytes: Vec<u8> = hex
        .as_bytes()
        .chunks(2)
        .filter_map(|c| u8::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok())
        .collect();
    bytes
        .chunks_exact(24)
        .filter_map(|e| {
            let word = |o: usize| i64::from_le_bytes(e[o..o + 8].try_into().unwrap_or([0; 8]));
            let ty = u16::from_le_bytes([e[16], e[17]]);
            let code = u16::from_le_bytes([e[18], e[19]]);
            let value = i32::from_le_bytes([e[20], e[21], e[22], e[23]]);
            // autorepeats (value 2) of a key held long are left out
            (ty == 1 && value != 2).then(|| (code, value, word(0) * 1_000_000 + word(8)))
        })
        .collect()
}

/// Wait until `virsh domstate` says `want`.
fn state_becomes(r: &Rpc, dom: &str, want: &str, limit: Duration) {
    let t = Instant::now();
    loop {
        let st = r.ok(QEMU, &["domstate", dom]);
        if st.trim() == want {
            return;
        }
        assert!(
            t.elapsed() < limit,
            "{dom} is '{}', not '{want}' after {limit:?}\n{}",
            st.trim(),
            r.daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test]
async fn domain_commands_on_a_running_guest() {
    let r = Rpc::start().await;
    let disk = r.bus.dir.path().join("data.qcow2");
    guest::data_disk(&disk);
    let xml_path = r.bus.dir.path().join("keys.xml");
    std::fs::write(
        &xml_path,
        guest::domain_xml("keys", &disk, guest::TEST_CHANNEL),
    )
    .expect("write xml");
    r.ok(QEMU, &["define", &xml_path.to_string_lossy()]);

    // inactive: keys need a running guest; launch security is simply absent
    let e = r.fails(QEMU, &["send-key", "keys", "KEY_A"]);
    assert!(e.contains("domain is not running"), "{e}");
    assert_eq!(r.ok(QEMU, &["domlaunchsecinfo", "keys"]).trim(), "");

    r.ok(QEMU, &["start", "keys"]);
    let live = r.ok(QEMU, &["dumpxml", "keys"]);
    let agent = guest::TestAgent::of(&live).await;

    // send-key: what the guest's kernel reads from its keyboard
    let ev = sh(
        &agent,
        "for e in /sys/class/input/event*; do case \"$(cat $e/device/name)\" in \
         *keyboard*) echo ${e##*/};; esac; done",
    )
    .await;
    let ev = ev.lines().next().unwrap_or_default().trim().to_owned();
    assert!(ev.starts_with("event"), "no keyboard event device: {ev:?}");
    sh(
        &agent,
        &format!(
            "setsid sh -c 'exec cat /dev/input/{ev} > /tmp/keys' </dev/null >/dev/null 2>&1 &"
        ),
    )
    .await;
    std::thread::sleep(Duration::from_millis(500));
    for cmd in [
        &["send-key", "keys", "KEY_A"][..],
        // USB usage 0x52: the up arrow, an extended key (e0 48)
        &["send-key", "keys", "--codeset", "usb", "0x52"],
        &["send-key", "keys", "--codeset", "qnum", "0x1f"],
        &["send-key", "keys", "--codeset", "xt", "0x20"],
        &["send-key", "keys", "--codeset", "rfb", "0x21"],
        &["send-key", "keys", "--holdtime", "600", "KEY_B"],
    ] {
        r.ok(QEMU, cmd);
    }
    // QEMU releases the held key 600 ms after the call returned
    std::thread::sleep(Duration::from_millis(2000));
    let hex = sh(&agent, "od -An -v -tx1 /tmp/keys | tr -d ' \\n'").await;
    let events = key_events(hex.trim());
    let codes: Vec<(u16, i32)> = events.iter().map(|(c, v, _)| (*c, *v)).collect();
    // KEY_A 30, KEY_UP 103, KEY_S 31, KEY_D 32, KEY_F 33, KEY_B 48: pressed, released
    let want: Vec<(u16, i32)> = [30, 103, 31, 32, 33, 48]
        .iter()
        .flat_map(|c| [(*c, 1), (*c, 0)])
        .collect();
    assert_eq!(codes, want, "key events in the guest: {events:?}");
    let held = events[11].2 - events[10].2;
    assert!(
        held >= 450_000,
        "KEY_B held {held} µs, not the 600 ms asked"
    );
    let quick = events[1].2 - events[0].2;
    assert!(quick < 450_000, "KEY_A held {quick} µs");

    // bad keys and code sets: libvirt's words, nothing sent
    let e = r.fails(QEMU, &["send-key", "keys", "--codeset", "usb", "999"]);
    assert!(
        e.contains("internal error: cannot translate keycode 999 of usb codeset to qnum keycode"),
        "{e}"
    );
    let e = r.fails(QEMU, &["send-key", "keys", "--codeset", "atset2", "0x1c"]);
    assert!(e.contains("keycode set 'atset2' is not supported"), "{e}");
    let e = r.fails(QEMU, &["send-key", "keys", "KEY_NOSUCH"]);
    assert!(e.contains("invalid keycode: 'KEY_NOSUCH'"), "{e}");

    // read-only connections change nothing
    for cmd in [
        &["-r", "send-key", "keys", "KEY_A"][..],
        &["-r", "set-lifecycle-action", "keys", "reboot", "destroy"],
        &["-r", "domdirtyrate-calc", "keys"],
        &["-r", "dompmwakeup", "keys"],
        &["-r", "domrename", "keys", "other"],
    ] {
        let e = r.fails(QEMU, cmd);
        assert!(e.contains("read only access prevents"), "{cmd:?}: {e}");
    }

    // launch security: none here, and refused as libvirtd refuses a non-SEV domain
    assert_eq!(r.ok(QEMU, &["domlaunchsecinfo", "keys"]).trim(), "");
    let secret = r.bus.dir.path().join("secret");
    std::fs::write(&secret, "c2VjcmV0").expect("secret");
    let sp = secret.to_string_lossy().into_owned();
    let e = r.fails(
        QEMU,
        &[
            "domsetlaunchsecstate",
            "keys",
            "--secrethdr",
            &sp,
            "--secret",
            &sp,
        ],
    );
    assert!(
        e.contains(
            "Operation not supported: setting a launch secret is only supported in SEV-enabled \
             domains"
        ),
        "{e}"
    );

    // the dirty page rate: measured by QEMU, reported as libvirt's typed parameters
    let e = r.fails(QEMU, &["domdirtyrate-calc", "keys", "--seconds", "61"]);
    assert!(
        e.contains("seconds=61 is invalid, please choose value within [1, 60]."),
        "{e}"
    );
    r.ok(QEMU, &["domdirtyrate-calc", "keys", "--seconds", "1"]);
    let t = Instant::now();
    let stats = loop {
        let st = r.ok(QEMU, &["domstats", "keys", "--dirtyrate"]);
        if st.contains("dirtyrate.calc_status=2") || t.elapsed() > Duration::from_secs(20) {
            break st;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    for want in [
        "dirtyrate.calc_status=2",
        "dirtyrate.calc_period=1",
        "dirtyrate.calc_mode=page-sampling",
        "dirtyrate.megabytes_per_second=",
        "dirtyrate.calc_start_time=",
    ] {
        assert!(stats.contains(want), "{want} not in:\n{stats}");
    }

    let e = r.fails(QEMU, &["domdirtyrate-calc", "keys", "--mode", "dirty-ring"]);
    assert!(
        e.contains("dirty-ring calculation mode requires dirty-ring feature enabled."),
        "{e}"
    );
    // QEMU 7.2 dies measuring dirty bitmaps under TCG (the tiny guest's accelerator): refused
    let e = r.fails(
        QEMU,
        &[
            "domdirtyrate-calc",
            "keys",
            "--seconds",
            "1",
            "--mode",
            "dirty-bitmap",
        ],
    );
    assert!(e.contains("dirty-bitmap calculation mode needs KVM"), "{e}");
    assert_eq!(r.ok(QEMU, &["domstate", "keys"]).trim(), "running");

    // lifecycle actions: refused as libvirt refuses them, nothing changed
    let e = r.fails(
        QEMU,
        &["set-lifecycle-action", "keys", "reboot", "coredump-destroy"],
    );
    assert!(
        e.contains("unsupported configuration: Lifecycle event 'reboot' doesn't support 'coredump-destroy' action"),
        "{e}"
    );
    let e = r.fails(
        QEMU,
        &["set-lifecycle-action", "keys", "reboot", "preserve"],
    );
    assert!(
        e.contains("qemu driver doesn't support the 'preserve' action"),
        "{e}"
    );
    r.ok(
        QEMU,
        &[
            "set-lifecycle-action",
            "keys",
            "poweroff",
            "restart",
            "--config",
        ],
    );
    let inactive = r.ok(QEMU, &["dumpxml", "--inactive", "keys"]);
    assert!(
        inactive.contains("<on_poweroff>restart</on_poweroff>"),
        "{inactive}"
    );
    let live = r.ok(QEMU, &["dumpxml", "keys"]);
    assert!(
        live.contains("<on_poweroff>destroy</on_poweroff>"),
        "{live}"
    );

    // a live on_reboot=destroy: the guest's own reboot now stops it
    let e = r.fails(QEMU, &["domrename", "keys", "other"]);
    assert!(e.contains("cannot rename active domain"), "{e}");
    r.ok(
        QEMU,
        &[
            "set-lifecycle-action",
            "keys",
            "reboot",
            "destroy",
            "--live",
        ],
    );
    let live = r.ok(QEMU, &["dumpxml", "keys"]);
    assert!(live.contains("<on_reboot>destroy</on_reboot>"), "{live}");
    let agent = guest::TestAgent::of(&live).await;
    let _ = agent.try_sh("reboot -f").await;
    state_becomes(&r, "keys", "shut off", Duration::from_secs(60));

    // PM suspend to RAM through the agent (once it answers again), and the wakeup
    r.ok(QEMU, &["start", "keys"]);
    r.ok_eventually(&["dompmsuspend", "keys", "mem"]);
    state_becomes(&r, "keys", "pmsuspended", Duration::from_secs(30));
    r.ok(QEMU, &["dompmwakeup", "keys"]);
    state_becomes(&r, "keys", "running", Duration::from_secs(30));
    let e = r.fails(QEMU, &["dompmsuspend", "keys", "mem", "--duration", "5"]);
    assert!(e.contains("Duration not supported. Use 0 for now"), "{e}");

    // the XML kept with a managed save image
    let e = r.fails(QEMU, &["managedsave-dumpxml", "keys"]);
    assert!(
        e.contains("Requested operation is not valid: domain does not have managed save image"),
        "{e}"
    );
    r.ok(QEMU, &["managedsave", "keys"]);
    let saved = r.ok(QEMU, &["managedsave-dumpxml", "keys"]);
    assert!(saved.contains("<name>keys</name>"), "{saved}");
    let e = r.fails(QEMU, &["domrename", "keys", "other"]);
    assert!(
        e.contains("domain with a managed saved state can't be renamed"),
        "{e}"
    );
    // more memory is another guest: refused, nothing changed
    let bigger = r.bus.dir.path().join("bigger.xml");
    std::fs::write(
        &bigger,
        saved.replace(
            "<memory unit='KiB'>262144</memory>",
            "<memory unit='KiB'>524288</memory>",
        ),
    )
    .expect("write");
    assert_ne!(
        std::fs::read_to_string(&bigger).ok().as_deref(),
        Some(&*saved)
    );
    let e = r.fails(
        QEMU,
        &["managedsave-define", "keys", &bigger.to_string_lossy()],
    );
    assert!(e.contains("changes the memory"), "{e}");
    // a title is not the guest's business; and it comes back paused
    let titled = r.bus.dir.path().join("titled.xml");
    std::fs::write(
        &titled,
        saved.replace(
            "<name>keys</name>",
            "<name>keys</name>\n  <title>restored</title>",
        ),
    )
    .expect("write");
    r.ok(
        QEMU,
        &[
            "managedsave-define",
            "keys",
            &titled.to_string_lossy(),
            "--paused",
        ],
    );
    let saved = r.ok(QEMU, &["managedsave-dumpxml", "keys"]);
    assert!(saved.contains("<title>restored</title>"), "{saved}");
    // managedsave-edit: virsh dumps, the editor changes, virsh defines
    let out = Command::new("virsh")
        .arg("-c")
        .arg(r.uri(QEMU))
        .args(["managedsave-edit", "keys"])
        .env("HOME", r.bus.dir.path())
        .env("EDITOR", "sed -i 's/<title>restored</<title>edited</'")
        .env_remove("LIBVIRT_DEFAULT_URI")
        .output()
        .expect("virsh");
    assert!(
        out.status.success(),
        "managedsave-edit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved = r.ok(QEMU, &["managedsave-dumpxml", "keys"]);
    assert!(saved.contains("<title>edited</title>"), "{saved}");
    r.ok(QEMU, &["start", "keys"]);
    assert_eq!(r.ok(QEMU, &["domstate", "keys"]).trim(), "paused");
    let live = r.ok(QEMU, &["dumpxml", "keys"]);
    assert!(live.contains("<title>edited</title>"), "{live}");
    r.ok(QEMU, &["destroy", "keys"]);

    // renaming: shut off, not to itself, not onto another domain
    let e = r.fails(QEMU, &["domrename", "keys", "keys"]);
    assert!(e.contains("Can't rename domain to itself"), "{e}");
    let e = r.fails(QEMU, &["domrename", "keys", "a/b"]);
    assert!(e.contains("name a/b cannot contain '/'"), "{e}");
    r.ok(QEMU, &["domrename", "keys", "renamed"]);
    let list = r.ok(QEMU, &["list", "--all", "--name"]);
    assert!(list.lines().any(|l| l == "renamed"), "{list}");
    assert!(!list.lines().any(|l| l == "keys"), "{list}");
    let info = r.ok(QEMU, &["dominfo", "renamed"]);
    assert!(info.contains("renamed"), "{info}");
    r.ok(QEMU, &["undefine", "renamed"]);
}

/// The errors of an inactive QEMU domain and of bad input, compared with Debian's libvirtd
/// (its QEMU driver) for the same domain.
#[tokio::test]
async fn qemu_errors_are_libvirtds() {
    if let Err(why) = crate::support::libvirtd::Libvirtd::available() {
        panic!("Debian's libvirtd is needed as the oracle: {why}");
    }
    let r = Rpc::start().await;
    let lv = crate::support::libvirtd::Libvirtd::start();
    let disk = r.bus.dir.path().join("none.qcow2");
    let xml = r.bus.dir.path().join("quiet.xml");
    std::fs::write(&xml, guest::domain_xml("quiet", &disk, "")).expect("write xml");
    let xml = xml.to_string_lossy().into_owned();
    r.ok(QEMU, &["define", &xml]);
    let out = lv.virsh(&["define", &xml]);
    assert!(out.status.success(), "{}", lv.log_text());
    let secret = r.bus.dir.path().join("secret");
    std::fs::write(&secret, "c2VjcmV0").expect("secret");
    let sp = secret.to_string_lossy().into_owned();
    for cmd in [
        &["send-key", "quiet", "KEY_A"][..],
        &["send-key", "quiet", "--codeset", "usb", "999"],
        &["domlaunchsecinfo", "quiet"],
        &[
            "domsetlaunchsecstate",
            "quiet",
            "--secrethdr",
            &sp,
            "--secret",
            &sp,
        ],
        &["managedsave-dumpxml", "quiet"],
        &["managedsave-define", "quiet", &xml],
        &["domrename", "quiet", "quiet"],
        &["domrename", "quiet", "a/b"],
        &["dompmwakeup", "quiet"],
        &["dompmsuspend", "quiet", "mem"],
        &["dompmsuspend", "quiet", "mem", "--duration", "3"],
        &["domdirtyrate-calc", "quiet", "--seconds", "61"],
        &["domdirtyrate-calc", "quiet"],
        &[
            "set-lifecycle-action",
            "quiet",
            "reboot",
            "coredump-destroy",
        ],
        &[
            "set-lifecycle-action",
            "quiet",
            "reboot",
            "destroy",
            "--live",
        ],
    ] {
        let theirs = lv.virsh(cmd);
        let (ok, _, ours) = r.virsh(QEMU, cmd);
        assert_eq!(
            (ok, ours.trim()),
            (
                theirs.status.success(),
                String::from_utf8_lossy(&theirs.stderr).trim()
            ),
            "virsh {cmd:?}: ours (left) differs from libvirtd's"
        );
    }
    // the comparison compares something: a rename libvirtd does too
    r.ok(QEMU, &["domrename", "quiet", "calm"]);
    assert!(lv.virsh(&["domrename", "quiet", "calm"]).status.success());
    r.ok(QEMU, &["undefine", "calm"]);
}
