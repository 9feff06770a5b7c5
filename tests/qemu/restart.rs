//! Guests outlive a `kill -9` of the daemon: the restarted daemon finds them, and marks the
//! ones that died meanwhile shut off, crashed.

use std::time::Duration;

use crate::{
    guest, guests, pid_alive, qemu_pid, support::proxies::*, support::*, wait_agent, wait_event,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_kill_9_keeps_two_guests_running() {
    let _permit = guests(2).await;
    let bus = Bus::start();
    let mut d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;
    let (disk_a, disk_b) = (
        bus.dir.path().join("a.qcow2"),
        bus.dir.path().join("b.qcow2"),
    );
    guest::data_disk(&disk_a);
    guest::data_disk(&disk_b);
    let pa = mgr
        .define_domain(&guest::domain_xml("keep-a", &disk_a, ""), no_opts())
        .await
        .expect("define a");
    let a = domain(&conn, &pa).await;
    a.start(no_opts()).await.expect("start a");
    let pb = mgr
        .create_domain(&guest::domain_xml("keep-b", &disk_b, ""), no_opts())
        .await
        .expect("create transient b");
    let b = domain(&conn, &pb).await;
    let (ta, tb) = tokio::join!(wait_agent(&a), wait_agent(&b));
    eprintln!("two guests booted side by side: {ta:?}, {tb:?}");
    b.suspend(no_opts()).await.expect("suspend b");
    let (ua, ub) = (a.uuid().await.expect("uuid"), b.uuid().await.expect("uuid"));
    let (ida, idb) = (a.id().await.expect("id"), b.id().await.expect("id"));
    let (live_a, live_b) = (
        a.get_xml(no_opts()).await.expect("xml"),
        b.get_xml(no_opts()).await.expect("xml"),
    );
    let (pid_a, pid_b) = (qemu_pid(&d.runtime, &ua), qemu_pid(&d.runtime, &ub));
    // the guest runs with the PCI addresses its definition was given
    let inactive_a = a
        .get_xml(opts([("inactive", zbus::Variant::from(true))]))
        .await
        .expect("inactive xml");
    let slots = pci_addresses(&inactive_a);
    assert!(slots.len() >= 4, "{inactive_a}");
    assert_eq!(pci_addresses(&live_a), slots, "{live_a}");

    d.kill();
    assert!(
        pid_alive(pid_a) && pid_alive(pid_b),
        "guests outlive the daemon"
    );
    d.restart(&bus).await;

    let conn = bus.connect().await;
    let mut sigs = Signals::new(&conn).await;
    let mgr = manager(&conn).await;
    let listed = mgr.list_domains(no_opts()).await.expect("list");
    assert_eq!(listed.len(), 2, "{listed:?}\n{}", d.log_text());
    let a = domain(&conn, &pa).await;
    let b = domain(&conn, &pb).await;
    assert_eq!(
        a.state().await.expect("state"),
        "running",
        "{}",
        d.log_text()
    );
    assert_eq!(b.state().await.expect("state"), "paused");
    assert!(
        !b.persistent().await.expect("persistent"),
        "b is still transient"
    );
    assert_eq!(a.id().await.expect("id"), ida);
    // and keeps them, live and in its definition, across the restart
    let live_again = a.get_xml(no_opts()).await.expect("xml");
    assert_eq!(pci_addresses(&live_again), slots, "{live_again}");
    let inactive_again = a
        .get_xml(opts([("inactive", zbus::Variant::from(true))]))
        .await
        .expect("inactive xml");
    assert_eq!(pci_addresses(&inactive_again), slots);
    assert_eq!(b.id().await.expect("id"), idb);
    assert_eq!(a.get_xml(no_opts()).await.expect("xml"), live_a);
    assert_eq!(b.get_xml(no_opts()).await.expect("xml"), live_b);

    // still controllable: the monitor and the agent are reconnected
    b.resume(no_opts()).await.expect("resume b");
    assert_eq!(
        lifecycle(&sigs.take().await),
        [("resumed".to_owned(), "unpaused".to_owned())]
    );
    wait_agent(&b).await;
    let info = a.get_guest_info(no_opts()).await.expect("agent of a");
    assert!(info.contains_key("hostname"));
    a.suspend(no_opts()).await.expect("suspend a");
    a.resume(no_opts()).await.expect("resume a");
    assert!(
        a.get_stats(no_opts())
            .await
            .expect("stats")
            .contains_key("cpu.time")
    );

    // A guest that dies while no daemon watches: its adopted process is watched by pidfd.
    // SAFETY: killing a QEMU this test started.
    unsafe { libc::kill(pid_b, libc::SIGKILL) };
    let got = wait_event(&mut sigs, "stopped", "crashed", Duration::from_secs(20)).await;
    assert!(
        got.iter()
            .any(|s| matches!(s, Sig::InterfacesRemoved { path, .. } if path == pb.as_str())),
        "transient b is gone: {got:?}"
    );

    // ids continue above those of the guests found again
    let disk_c = bus.dir.path().join("c.qcow2");
    guest::data_disk(&disk_c);
    let pc = mgr
        .create_domain(
            &guest::domain_xml("keep-c", &disk_c, ""),
            opts([("paused", zbus::Variant::Bool(true))]),
        )
        .await
        .expect("create c");
    let c = domain(&conn, &pc).await;
    let idc = c.id().await.expect("id");
    assert!(idc > ida.max(idb), "id {idc} after {ida} and {idb}");
    c.destroy(no_opts()).await.expect("destroy c");

    // Kill the daemon again, and the QEMU of a while it is down.
    d.kill();
    // SAFETY: as above.
    unsafe { libc::kill(pid_a, libc::SIGKILL) };
    while pid_alive(pid_a) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    d.restart(&bus).await;
    let conn = bus.connect().await;
    let a = domain(&conn, &pa).await;
    assert_eq!(a.state().await.expect("state"), "shut-off");
    assert_eq!(a.state_reason().await.expect("reason"), "crashed");
    assert!(d.log_text().contains("did not survive the daemon restart"));
    assert!(
        !d.runtime.join(format!("qemu/status/{ua}.json")).exists(),
        "its stale status file is removed"
    );
    a.start(opts([("paused", zbus::Variant::Bool(true))]))
        .await
        .expect("start again");
    a.destroy(no_opts()).await.expect("destroy");
}

/// The PCI addresses of a domain's XML, in document order.
fn pci_addresses(xml: &str) -> Vec<String> {
    xml.split("<address type='pci'")
        .skip(1)
        .map(|rest| rest.split("/>").next().unwrap_or_default().to_owned())
        .collect()
}
