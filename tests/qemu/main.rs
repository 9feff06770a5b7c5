//! The QEMU driver with real QEMU (TCG) and a real guest, through the real daemon on a
//! private bus. At most two guests run at once across these tests (the machine has two
//! cores): each test takes one permit of [`GUESTS`] per guest it runs.

#[path = "../support/mod.rs"]
mod support;

mod guest;

#[cfg(feature = "cli")]
mod console;
mod facade;
mod failures;
mod features;
mod firmware;
mod lifecycle;
mod network;
mod pci;
mod platform;
mod restart;
mod snapshots;
mod storage;
mod tpm;
mod tuning;
mod usb;
mod watchdog;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use tokio::sync::{Semaphore, SemaphorePermit};
use zbus::{OwnedObjectPath, OwnedVariant, Variant};

use support::{Sig, Signals, proxies::DomainProxy};

/// Guests that may run at once.
static GUESTS: Semaphore = Semaphore::const_new(2);

pub async fn guests(n: u32) -> SemaphorePermit<'static> {
    GUESTS.acquire_many(n).await.expect("semaphore")
}

/// A generous bound for a TCG boot with another guest booting beside it.
pub const BOOT: Duration = Duration::from_secs(120);

/// Wait until the guest agent answers through the daemon; returns how long it took.
pub async fn wait_agent(dom: &DomainProxy<'_>) -> Duration {
    let t = Instant::now();
    loop {
        let r = dom
            .get_guest_info(support::opts([("types", Variant::from(vec!["hostname"]))]))
            .await;
        match r {
            Ok(_) => return t.elapsed(),
            Err(e) => {
                assert!(
                    t.elapsed() < BOOT,
                    "the guest agent did not answer within {BOOT:?}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Collect signals until the lifecycle event `(event, detail)` arrives; returns all seen.
pub async fn wait_event(
    sigs: &mut Signals,
    event: &str,
    detail: &str,
    within: Duration,
) -> Vec<Sig> {
    let t = Instant::now();
    let mut seen = Vec::new();
    loop {
        let got = sigs.drain(Duration::from_millis(200)).await;
        let found = got.iter().any(|s| {
            matches!(s, Sig::DomainEvent { event: e, detail: d, .. } if e == event && d == detail)
        });
        seen.extend(got);
        if found {
            // and whatever follows at once
            seen.extend(sigs.take().await);
            return seen;
        }
        assert!(
            t.elapsed() < within,
            "no {event}/{detail} within {within:?}; saw {:?}",
            support::lifecycle(&seen)
        );
    }
}

/// Wait until `f` holds, polling.
pub async fn until(what: &str, within: Duration, mut f: impl AsyncFnMut() -> bool) {
    let t = Instant::now();
    while !f().await {
        assert!(t.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The pid of a domain's QEMU, from the driver's status file.
pub fn qemu_pid(runtime: &Path, uuid: &str) -> i32 {
    let p = runtime.join(format!("qemu/status/{uuid}.json"));
    let text = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let v: serde_json::Value = serde_json::from_slice(&text).expect("status JSON");
    v["pid"].as_i64().expect("pid") as i32
}

pub fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

pub fn s(v: &OwnedVariant) -> String {
    String::try_from(v.try_clone().expect("clone")).unwrap_or_default()
}

pub fn u64_of(m: &HashMap<String, OwnedVariant>, k: &str) -> u64 {
    m.get(k)
        .and_then(|v| u64::try_from(v.try_clone().ok()?).ok())
        .unwrap_or_else(|| panic!("no u64 {k} in {:?}", m.keys().collect::<Vec<_>>()))
}

/// A daemon on a private bus with the test guest `name` defined on it (`extra` devices
/// besides the guest's own) over a fresh data disk; not started.
pub struct Defined {
    pub bus: support::Bus,
    pub daemon: support::Daemon,
    pub conn: zbus::Connection,
    pub path: OwnedObjectPath,
    pub disk: PathBuf,
}

pub async fn define_guest(name: &str, extra: &str) -> Defined {
    define_guest_with(name, extra, |xml| xml).await
}

/// [`define_guest`] with the domain XML changed by `edit` first.
pub async fn define_guest_with(
    name: &str,
    extra: &str,
    edit: impl FnOnce(String) -> String,
) -> Defined {
    let bus = support::Bus::start();
    let daemon = support::Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let disk = bus.dir.path().join(format!("{name}.qcow2"));
    guest::data_disk(&disk);
    let path = support::proxies::manager(&conn)
        .await
        .define_domain(
            &edit(guest::domain_xml(name, &disk, extra)),
            support::no_opts(),
        )
        .await
        .expect("define");
    Defined {
        bus,
        daemon,
        conn,
        path,
        disk,
    }
}
