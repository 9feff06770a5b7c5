//! One guest through its whole life, with the signals of each step.

use std::time::Duration;

use zbus::Variant;

use crate::{
    BOOT, define_guest, guest, guests, pid_alive, qemu_pid, s, support::proxies::*, support::*,
    u64_of, until, wait_agent, wait_event,
};

fn states(sigs: &[Sig], path: &str) -> Vec<String> {
    changes_of(sigs, path, "State")
        .iter()
        .map(crate::s)
        .collect()
}

fn reasons(sigs: &[Sig], path: &str) -> Vec<String> {
    changes_of(sigs, path, "StateReason")
        .iter()
        .map(crate::s)
        .collect()
}

fn ev(e: &str, d: &str) -> (String, String) {
    (e.to_owned(), d.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_lifecycle_agent_stats_and_signals() {
    let _permit = guests(1).await;
    let bus = Bus::start();
    let d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mut sigs = Signals::new(&conn).await;
    let mgr = manager(&conn).await;
    let disk = bus.dir.path().join("life.qcow2");
    guest::data_disk(&disk);

    // Define: a MAC address is generated and kept.
    let path = mgr
        .define_domain(
            &guest::domain_xml("life", &disk, guest::TEST_CHANNEL),
            no_opts(),
        )
        .await
        .expect("define");
    let p = path.as_str().to_owned();
    let dom = domain(&conn, &path).await;
    assert_eq!(dom.driver().await.expect("Driver"), "qemu");
    let xml = dom.get_xml(no_opts()).await.expect("xml");
    let mac = xml
        .split("<mac address='")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .expect("a MAC address was generated")
        .to_owned();
    assert!(mac.starts_with("52:54:00:"), "{mac}");
    sigs.take().await;

    // Start: started/booted, running, an id; the live XML has runtime facts.
    dom.start(no_opts()).await.expect("start");
    let got = sigs.take().await;
    assert_eq!(lifecycle(&got), [ev("started", "booted")]);
    assert_eq!(states(&got, &p), ["running"]);
    assert_eq!(reasons(&got, &p), ["booted"]);
    let id = dom.id().await.expect("Id");
    assert!(id >= 1);
    let live = dom.get_xml(no_opts()).await.expect("live xml");
    assert!(live.contains(&format!("id='{id}'")), "{live}");
    assert!(live.contains(&format!("<mac address='{mac}'/>")), "{live}");
    assert!(live.contains("<alias name='virtio-disk0'/>"), "{live}");
    assert!(live.contains("<alias name='net0'/>"), "{live}");
    assert!(live.contains("<source path='/dev/pts/"), "pty path: {live}");
    assert!(live.contains("tty='/dev/pts/"), "console tty: {live}");
    let port = live
        .split("<graphics type='vnc' port='")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .and_then(|p| p.parse::<i32>().ok())
        .expect("VNC port in the live XML");
    assert!(port >= 5900, "{port}");
    assert!(live.contains("channel0.sock"), "agent socket path: {live}");
    assert!(
        live.contains("machine='pc-i440fx-"),
        "resolved machine: {live}"
    );
    let inactive = dom
        .get_xml(opts([("inactive", Variant::Bool(true))]))
        .await
        .expect("inactive xml");
    assert!(!inactive.contains("/dev/pts"), "{inactive}");
    // the canonical port='-1' of an automatic VNC port, never the one QEMU took
    assert!(!inactive.contains(" port='59"), "{inactive}");
    assert!(inactive.contains("port='-1' autoport='yes'"), "{inactive}");
    assert!(!inactive.contains("<alias"), "{inactive}");

    // The agent answers: host name, OS, and the guest's IP address.
    let took = wait_agent(&dom).await;
    eprintln!("agent answered {took:?} after Start returned");
    let info = dom.get_guest_info(no_opts()).await.expect("guest info");
    assert_eq!(s(&info["hostname"]), "vbguest");
    assert_eq!(s(&info["os.id"]), "vbguest");
    assert!(s(&info["os.kernel-release"]).starts_with("6."), "{info:?}");
    assert!(info.contains_key("timezone.offset"));
    until(
        "the guest's DHCP address",
        Duration::from_secs(60),
        async || {
            dom.interface_addresses(no_opts())
                .await
                .expect("addresses")
                .iter()
                .any(|(_, hw, addrs)| {
                    hw == &mac
                        && addrs
                            .iter()
                            .any(|(t, a, p)| *t == 0 && a == "10.0.2.15" && *p == 24)
                })
        },
    )
    .await;
    // Leases come from virtual networks' DHCP servers; a user-networking NIC has none.
    let leases = dom
        .interface_addresses(opts([("source", Variant::from("lease"))]))
        .await
        .expect("lease addresses");
    assert!(leases.is_empty(), "{leases:?}");

    // Stats from QMP, /proc and the agent.
    let st = dom.get_stats(no_opts()).await.expect("stats");
    assert!(u64_of(&st, "cpu.time") > 0);
    assert_eq!(u64_of(&st, "balloon.maximum"), 256 * 1024);
    assert!(u64_of(&st, "balloon.current") > 0);
    assert_eq!(u64_of(&st, "vcpu.current"), 1);
    assert!(u64_of(&st, "vcpu.0.time") > 0);
    assert_eq!(u64_of(&st, "block.count"), 1);
    assert_eq!(s(&st["block.0.name"]), "vda");
    assert!(
        u64_of(&st, "block.0.rd.reqs") > 0,
        "the guest read its disk"
    );
    assert!(u64_of(&st, "block.0.wr.bytes") > 0, "and formatted it");
    assert_eq!(u64_of(&st, "net.count"), 1);
    assert!(u64_of(&st, "net.0.rx.bytes") > 0, "DHCP reply received");
    assert!(u64_of(&st, "net.0.tx.bytes") > 0, "DHCP request sent");

    // Memory statistics: the balloon's size, what the guest's balloon driver reports (every
    // second, as <stats period='1'/> asks), QEMU's RSS.
    let t = std::time::Instant::now();
    let ms = loop {
        let ms = dom.memory_stats(no_opts()).await.expect("memory stats");
        if ms.contains_key("unused") || t.elapsed() > Duration::from_secs(30) {
            break ms;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(ms.get("actual"), Some(&(256 * 1024)), "{ms:?}");
    assert!(ms.get("rss").is_some_and(|r| *r > 0), "{ms:?}");
    let available = ms.get("available").copied().unwrap_or(0);
    assert!(
        available > 128 * 1024 && available <= 256 * 1024,
        "the guest sees its memory: {ms:?}"
    );
    assert!(
        ms.get("unused").is_some_and(|u| *u > 0 && *u < available),
        "{ms:?}"
    );
    assert!(ms.get("last_update").is_some_and(|t| *t > 0), "{ms:?}");

    // An NMI reaches the guest's kernel, which logs it.
    let ga = guest::TestAgent::of(&live).await;
    let nmis = || async {
        ga.sh("dmesg | grep -c 'NMI received' || true")
            .await
            .trim()
            .parse::<u32>()
            .unwrap_or(0)
    };
    assert_eq!(nmis().await, 0);
    dom.inject_nmi(no_opts()).await.expect("NMI");
    let t = std::time::Instant::now();
    while nmis().await == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no NMI in the guest's log"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Suspend and resume.
    dom.suspend(no_opts()).await.expect("suspend");
    let got = sigs.take().await;
    assert_eq!(lifecycle(&got), [ev("suspended", "paused")]);
    assert_eq!(states(&got, &p), ["paused"]);
    assert_eq!(reasons(&got, &p), ["user"]);
    dom.resume(no_opts()).await.expect("resume");
    let got = sigs.take().await;
    assert_eq!(lifecycle(&got), [ev("resumed", "unpaused")]);
    assert_eq!(states(&got, &p), ["running"]);

    // Reset: a Rebooted signal before the reply, no state change.
    dom.reset(no_opts()).await.expect("reset");
    let got = sigs.take().await;
    assert!(
        got.iter().any(
            |s| matches!(s, Sig::Other { member, path } if member == "Rebooted" && path == &p)
        ),
        "{got:?}"
    );
    assert!(lifecycle(&got).is_empty(), "{got:?}");
    wait_agent(&dom).await;

    // Reboot through ACPI: the guest powers off, QEMU holds it and resets it. (By default
    // the agent would be asked, as the guest has one.)
    sigs.take().await;
    dom.reboot(opts([("mode", Variant::from("acpi"))]))
        .await
        .expect("reboot");
    let t = std::time::Instant::now();
    loop {
        let got = sigs.drain(Duration::from_millis(300)).await;
        assert!(
            lifecycle(&got).is_empty(),
            "a reboot is no state change: {got:?}"
        );
        if got
            .iter()
            .any(|s| matches!(s, Sig::Other { member, .. } if member == "Rebooted"))
        {
            break;
        }
        assert!(t.elapsed() < BOOT, "no Rebooted signal");
    }
    assert_eq!(dom.state().await.expect("state"), "running");
    wait_agent(&dom).await;
    eprintln!("ACPI reboot to agent answer: {:?}", t.elapsed());

    // Shutdown through ACPI: the guest powers itself off cleanly.
    let pid = qemu_pid(&d.runtime, &dom.uuid().await.expect("uuid"));
    dom.shutdown(opts([("mode", Variant::from("acpi"))]))
        .await
        .expect("shutdown");
    let got = wait_event(&mut sigs, "stopped", "shutdown", BOOT).await;
    assert_eq!(
        lifecycle(&got),
        [ev("shutdown", "guest"), ev("stopped", "shutdown")],
        "the guest itself powered off"
    );
    assert!(
        d.log_text().contains("domain 'life': QMP event POWERDOWN"),
        "ACPI it was"
    );
    assert_eq!(states(&got, &p), ["shutdown", "shut-off"]);
    assert_eq!(dom.state_reason().await.expect("reason"), "shutdown");
    assert_eq!(dom.id().await.expect("Id"), -1);
    assert!(!pid_alive(pid), "QEMU is gone");
    let log = std::fs::read_to_string(d.runtime.join("qemu/log/life.log")).expect("log");
    assert!(
        log.contains("-no-shutdown"),
        "the log has the command line: {log}"
    );
    assert!(
        !d.runtime
            .join("qemu/status")
            .read_dir()
            .expect("status dir")
            .any(|_| true)
    );

    // Start again and destroy: stopped/destroyed, at once.
    dom.start(no_opts()).await.expect("start 2");
    let id2 = dom.id().await.expect("Id");
    assert!(id2 > id, "ids are not reused: {id2} after {id}");
    sigs.take().await;
    let t = std::time::Instant::now();
    dom.destroy(no_opts()).await.expect("destroy");
    eprintln!("destroy took {:?}", t.elapsed());
    let got = sigs.take().await;
    assert_eq!(lifecycle(&got), [ev("stopped", "destroyed")]);
    assert_eq!(dom.state_reason().await.expect("reason"), "destroyed");

    // Start paused, then kill -9 QEMU: shut off, crashed.
    dom.start(opts([("paused", Variant::Bool(true))]))
        .await
        .expect("start paused");
    let got = sigs.take().await;
    assert_eq!(
        lifecycle(&got),
        [ev("started", "booted"), ev("suspended", "paused")]
    );
    assert_eq!(dom.state().await.expect("state"), "paused");
    let pid = qemu_pid(&d.runtime, &dom.uuid().await.expect("uuid"));
    // SAFETY: killing the QEMU this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let got = wait_event(&mut sigs, "stopped", "crashed", Duration::from_secs(20)).await;
    assert_eq!(lifecycle(&got), [ev("stopped", "crashed")]);
    assert_eq!(dom.state().await.expect("state"), "shut-off");
    assert_eq!(dom.state_reason().await.expect("reason"), "crashed");
    let log = std::fs::read_to_string(d.runtime.join("qemu/log/life.log")).expect("log");
    assert!(log.contains("QEMU exited unexpectedly"), "{log}");

    // The guest agent of a stopped domain: a typed error.
    let e = dom.get_guest_info(no_opts()).await;
    assert_eq!(error_name(&e), "org.virtbus1.Error.InvalidState");
}

/// on_reboot=destroy: a reboot from inside the guest stops it; mode=agent uses the agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_power_modes_and_on_reboot_destroy() {
    let _permit = guests(1).await;
    let bus = Bus::start();
    let d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mut sigs = Signals::new(&conn).await;
    let mgr = manager(&conn).await;
    let disk = bus.dir.path().join("agent.qcow2");
    guest::data_disk(&disk);
    let xml = guest::domain_xml("agentpower", &disk, "").replace(
        "<features><acpi/></features>",
        "<features><acpi/></features>\n  <on_reboot>destroy</on_reboot>",
    );
    let path = mgr.create_domain(&xml, no_opts()).await.expect("create");
    let dom = domain(&conn, &path).await;
    wait_agent(&dom).await;
    sigs.take().await;
    // the guest reboots itself (qemu-ga's guest-shutdown mode=reboot); on_reboot=destroy
    dom.reboot(opts([("mode", Variant::from("agent"))]))
        .await
        .expect("agent reboot");
    let got = wait_event(&mut sigs, "stopped", "shutdown", BOOT).await;
    assert_eq!(
        lifecycle(&got),
        [ev("shutdown", "guest"), ev("stopped", "shutdown")]
    );
    // transient: gone with its guest
    assert!(
        got.iter()
            .any(|s| matches!(s, Sig::InterfacesRemoved { path: p, .. } if p == path.as_str())),
        "{got:?}"
    );

    // Shutdown through the agent, on a persistent domain.
    let disk2 = bus.dir.path().join("agent2.qcow2");
    guest::data_disk(&disk2);
    let path = mgr
        .define_domain(&guest::domain_xml("agentpower2", &disk2, ""), no_opts())
        .await
        .expect("define");
    let dom = domain(&conn, &path).await;
    dom.start(no_opts()).await.expect("start");
    wait_agent(&dom).await;
    sigs.take().await;
    dom.shutdown(opts([("mode", Variant::from("agent"))]))
        .await
        .expect("agent shutdown");
    let got = wait_event(&mut sigs, "stopped", "shutdown", BOOT).await;
    assert_eq!(
        lifecycle(&got),
        [ev("shutdown", "guest"), ev("stopped", "shutdown")]
    );
    let e = dom.shutdown(opts([("mode", Variant::from("agent"))])).await;
    assert_eq!(error_name(&e), "org.virtbus1.Error.InvalidState");

    // By default, as libvirt: through the agent, as the guest has one (ACPI would show as
    // QEMU's POWERDOWN event).
    dom.start(no_opts()).await.expect("start again");
    wait_agent(&dom).await;
    sigs.take().await;
    dom.shutdown(no_opts()).await.expect("default shutdown");
    let got = wait_event(&mut sigs, "stopped", "shutdown", BOOT).await;
    assert_eq!(
        lifecycle(&got),
        [ev("shutdown", "guest"), ev("stopped", "shutdown")]
    );
    assert!(
        !d.log_text()
            .contains("domain 'agentpower2': QMP event POWERDOWN"),
        "the agent, not ACPI:\n{}",
        d.log_text()
    );
}

/// Managed save: the guest's memory goes to an image under the state dir and QEMU stops;
/// the next start brings the same guest back (a file that lived only in its RAM is still
/// there), and the image is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_save_brings_back_the_same_guest() {
    let _permit = guests(1).await;
    let g = define_guest("saved", guest::TEST_CHANNEL).await;
    let (d, conn, path) = (&g.daemon, &g.conn, &g.path);
    let mut sigs = Signals::new(conn).await;
    let p = path.as_str().to_owned();
    let dom = domain(conn, path).await;
    let uuid = dom.uuid().await.expect("uuid");
    dom.start(no_opts()).await.expect("start");
    wait_agent(&dom).await;
    let live = dom.get_xml(no_opts()).await.expect("live");
    let ga = guest::TestAgent::of(&live).await;
    // the guest's root is its initramfs: this file lives in its RAM only
    ga.sh("echo kept > /root/ram-marker").await;
    let pid = qemu_pid(&d.runtime, &uuid);
    sigs.take().await;

    dom.managed_save(no_opts()).await.expect("managed save");
    let got = sigs.take().await;
    assert_eq!(lifecycle(&got), [ev("stopped", "saved")]);
    assert_eq!(states(&got, &p), ["shut-off"]);
    assert_eq!(reasons(&got, &p), ["saved"]);
    assert!(dom.has_managed_save().await.expect("HasManagedSave"));
    let image = d.state.join(format!("qemu/save/{uuid}.save"));
    let size = std::fs::metadata(&image).expect("the image").len();
    assert!(size > 1 << 20, "{size} bytes");
    until("QEMU gone", Duration::from_secs(10), async || {
        !pid_alive(pid)
    })
    .await;

    dom.start(no_opts()).await.expect("restore");
    let got = sigs.take().await;
    assert_eq!(lifecycle(&got), [ev("started", "restored")]);
    assert_eq!(states(&got, &p), ["running"]);
    assert_eq!(reasons(&got, &p), ["restored"]);
    assert!(!dom.has_managed_save().await.expect("HasManagedSave"));
    assert!(!image.exists(), "the image is removed once restored");
    let live = dom.get_xml(no_opts()).await.expect("live");
    let ga = guest::TestAgent::of(&live).await;
    assert_eq!(ga.sh("cat /root/ram-marker").await, "kept\n");
    wait_agent(&dom).await;

    // saved paused, restored paused; then a save that is dropped boots afresh
    dom.suspend(no_opts()).await.expect("suspend");
    dom.managed_save(no_opts()).await.expect("save paused");
    dom.start(no_opts()).await.expect("restore paused");
    assert_eq!(dom.state().await.expect("State"), "paused");
    dom.resume(no_opts()).await.expect("resume");
    assert_eq!(ga.sh("cat /root/ram-marker").await, "kept\n");
    dom.managed_save(no_opts()).await.expect("save again");
    dom.managed_save_remove(no_opts()).await.expect("remove");
    assert!(!image.exists());
    dom.start(no_opts()).await.expect("boot afresh");
    assert_eq!(dom.state_reason().await.expect("reason"), "booted");
    dom.destroy(no_opts()).await.expect("destroy");
}

/// Devices of a running guest: media into, between and out of a CD-ROM, read by the guest
/// from its drive; a virtio disk and a NIC hot-plugged and unplugged; an interface's link
/// going down and up, seen by the guest; a change that cannot happen in place refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_change_in_a_running_guest() {
    let _permit = guests(1).await;
    let cdrom = "<disk type='file' device='cdrom'><target dev='sdb' bus='sata'/></disk>";
    let g = define_guest("media", &format!("{}{cdrom}", guest::TEST_CHANNEL)).await;
    let dir = g.bus.dir.path();
    let media = |n: u32| {
        let p = dir.join(format!("m{n}.img"));
        let mut data = format!("VIRTBUS-MEDIA-{n}").into_bytes();
        data.resize(64 * 2048, 0);
        std::fs::write(&p, data).expect("medium");
        p
    };
    let (m1, m2) = (media(1), media(2));
    let dom = domain(&g.conn, &g.path).await;
    dom.start(no_opts()).await.expect("start");
    wait_agent(&dom).await;
    let live = dom.get_xml(no_opts()).await.expect("live");
    let ga = guest::TestAgent::of(&live).await;
    let read = async || {
        ga.sh("dd if=/dev/sr0 bs=2048 count=1 2>/dev/null | head -c 15")
            .await
    };
    let with = |m: Option<&std::path::Path>| {
        let src = m.map_or(String::new(), |p| {
            format!("<source file='{}'/>", p.display())
        });
        format!("<disk type='file' device='cdrom'>{src}<target dev='sdb' bus='sata'/></disk>")
    };
    until("the guest sees its CD-ROM drive", BOOT, async || {
        ga.sh("test -b /dev/sr0 && echo yes || true").await.trim() == "yes"
    })
    .await;
    assert_eq!(read().await, "", "an empty drive");

    for m in [&m1, &m2] {
        dom.update_device(&with(Some(m)), no_opts())
            .await
            .expect("insert");
        let want = std::fs::read(m).expect("medium")[..15].to_vec();
        let want = String::from_utf8(want).expect("text");
        until(
            "the guest reads the new medium",
            Duration::from_secs(20),
            async || read().await == want,
        )
        .await;
        let live = dom.get_xml(no_opts()).await.expect("live");
        assert!(
            live.contains(&format!("<source file='{}'/>", m.display())),
            "{live}"
        );
    }
    dom.update_device(&with(None), no_opts())
        .await
        .expect("eject");
    until(
        "the guest finds no medium",
        Duration::from_secs(20),
        async || read().await.is_empty(),
    )
    .await;

    // not in place: a hard disk's source
    let r = dom
        .update_device(
            &format!(
                "<disk type='file' device='disk'><source file='{}'/>\
                 <target dev='vda' bus='virtio'/></disk>",
                m1.display()
            ),
            no_opts(),
        )
        .await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.NotSupported", "{r:?}");
    assert!(error_message(&r).contains("disk 'vda'"), "{r:?}");

    // hot-plug: a virtio disk and a NIC in, seen by the guest; then out again
    let extra = dir.join("extra.img");
    let mut data = b"VIRTBUS-HOTPLUG".to_vec();
    data.resize(1 << 20, 0);
    std::fs::write(&extra, data).expect("image");
    let vdc = format!(
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
         <source file='{}'/><target dev='vdc' bus='virtio'/><serial>HOTPLUG1</serial></disk>",
        extra.display()
    );
    dom.attach_device(&vdc, no_opts())
        .await
        .expect("attach a disk");
    let live = dom.get_xml(no_opts()).await.expect("live");
    assert!(
        live.contains("<target dev='vdc' bus='virtio'/>")
            && live.contains("<alias name='virtio-disk2'/>"),
        "{live}"
    );
    // the slot it took is recorded in the live definition
    let hotplug_slot = |xml: &str| -> String {
        let serial = xml
            .find("HOTPLUG1")
            .unwrap_or_else(|| panic!("HOTPLUG1 in {xml}"));
        let start = xml[..serial].rfind("<disk").expect("its <disk>");
        let end = serial + xml[serial..].find("</disk>").expect("its </disk>");
        let dev = &xml[start..end];
        let at = dev
            .find("slot='")
            .unwrap_or_else(|| panic!("a slot in {dev}"));
        dev[at + 6..at + 10].to_owned()
    };
    let first_slot = hotplug_slot(&live);
    // the guest names disks in the order it finds them: this one by its serial
    let find = "for d in /sys/block/vd*; do [ \"$(cat $d/serial 2>/dev/null)\" = HOTPLUG1 ] \
                && echo ${d##*/}; done; true";
    until(
        "the guest reads the new disk",
        Duration::from_secs(30),
        async || {
            let dev = ga.sh(find).await.trim().to_owned();
            !dev.is_empty()
                && ga
                    .sh(&format!(
                        "dd if=/dev/{dev} bs=512 count=1 2>/dev/null | head -c 15"
                    ))
                    .await
                    == "VIRTBUS-HOTPLUG"
        },
    )
    .await;
    let nic2 = "<interface type='user'><mac address='52:54:00:aa:bb:cc'/>\
                <model type='virtio'/></interface>";
    dom.attach_device(nic2, no_opts())
        .await
        .expect("attach a NIC");
    until(
        "the guest has the new NIC",
        Duration::from_secs(30),
        async || {
            ga.sh("cat /sys/class/net/eth1/address 2>/dev/null || true")
                .await
                .trim()
                == "52:54:00:aa:bb:cc"
        },
    )
    .await;
    dom.detach_device(&vdc, no_opts())
        .await
        .expect("detach the disk");
    assert_eq!(
        ga.sh(find).await.trim(),
        "",
        "the disk is gone from the guest"
    );
    dom.detach_device(nic2, no_opts())
        .await
        .expect("detach the NIC");
    assert_eq!(
        ga.sh("test -e /sys/class/net/eth1 || echo gone")
            .await
            .trim(),
        "gone"
    );
    let live = dom.get_xml(no_opts()).await.expect("live");
    assert!(
        !live.contains("vdc") && !live.contains("52:54:00:aa:bb:cc"),
        "{live}"
    );
    // detach freed the slot: plugged again, the disk takes it again
    dom.attach_device(&vdc, no_opts())
        .await
        .expect("attach the disk again");
    let live = dom.get_xml(no_opts()).await.expect("live");
    assert_eq!(hotplug_slot(&live), first_slot, "{live}");
    dom.detach_device(&vdc, no_opts())
        .await
        .expect("detach the disk again");
    let inactive = dom
        .get_xml(opts([("inactive", Variant::from(true))]))
        .await
        .expect("xml");
    assert!(
        !inactive.contains("m2.img") && !inactive.contains("vdc"),
        "only the running guest changed: {inactive}"
    );

    // the link of the NIC, by its MAC address
    let live = dom.get_xml(no_opts()).await.expect("live");
    let mac = live
        .split("<mac address='")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .expect("mac")
        .to_owned();
    let carrier = async || {
        ga.sh("cat /sys/class/net/eth0/carrier")
            .await
            .trim()
            .to_owned()
    };
    assert_eq!(carrier().await, "1");
    for (state, want) in [("down", "0"), ("up", "1")] {
        let nic = format!(
            "<interface type='user'><mac address='{mac}'/><model type='virtio'/>\
             <link state='{state}'/></interface>"
        );
        dom.update_device(&nic, no_opts()).await.expect("link");
        until(
            "the guest sees the link change",
            Duration::from_secs(10),
            async || carrier().await == want,
        )
        .await;
    }
    dom.destroy(no_opts()).await.expect("destroy");
}
