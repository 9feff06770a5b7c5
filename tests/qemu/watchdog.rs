//! A guest's i6300esb watchdog with `action='dump'`: when the guest lets it expire, the
//! domain is paused (suspended/watchdog), the `Watchdog` signal says "pause" (QEMU's action;
//! libvirt's event carries the same), the guest's memory lands in `<state>/qemu/dump/` as an
//! ELF core named `<id>-<name>-<local time>`, and the guest runs again (resumed/unpaused).

use crate::{BOOT, define_guest, guest, guests, support::*, wait_agent, wait_event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_dump_pauses_dumps_memory_and_resumes() {
    let _permit = guests(1).await;
    let extra = format!(
        "{}<watchdog model='i6300esb' action='dump'/>",
        guest::TEST_CHANNEL
    );
    let g = define_guest("wd", &extra).await;
    let dom = proxies::domain(&g.conn, &g.path).await;
    let inactive = dom.get_xml(no_opts()).await.expect("xml");
    assert!(
        inactive.contains("<watchdog model='i6300esb' action='dump'>"),
        "{inactive}"
    );
    dom.start(no_opts()).await.expect("start");
    wait_agent(&dom).await;
    let live = dom.get_xml(no_opts()).await.expect("live");
    let ga = guest::TestAgent::of(&live).await;
    let mut sigs = Signals::new(&g.conn).await;
    // arm the watchdog with a 1 s timeout and never feed it again (busybox's daemon feeds
    // only every 1000 s; the module was loaded at boot with its 30 s default)
    ga.sh("watchdog -T 1 -t 1000 /dev/watchdog && echo armed")
        .await;
    let seen = wait_event(&mut sigs, "resumed", "unpaused", BOOT).await;
    let order: Vec<String> = seen
        .iter()
        .filter_map(|s| match s {
            Sig::DomainEvent { event, detail, .. } => Some(format!("{event}/{detail}")),
            Sig::Other { member, .. } if member == "Watchdog" => Some(member.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        order,
        ["suspended/watchdog", "Watchdog", "resumed/unpaused"],
        "{seen:?}"
    );
    let dumps: Vec<_> = std::fs::read_dir(g.daemon.state.join("qemu/dump"))
        .expect("the dump directory")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(dumps.len(), 1, "{dumps:?}");
    let name = dumps[0]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    // the first domain of this daemon has id 1
    assert!(name.starts_with("1-wd-20"), "{name}");
    let core = std::fs::read(&dumps[0]).expect("read the dump");
    assert_eq!(&core[..4], b"\x7fELF", "an ELF core");
    assert!(
        core.len() > 64 << 20,
        "the guest's memory: {} bytes",
        core.len()
    );
    // and the guest runs on
    let up = ga.sh("cat /proc/uptime").await;
    assert!(!up.trim().is_empty());
    dom.destroy(no_opts()).await.expect("destroy");
}
