//! Registration with the real systemd-machined.
//!
//! machined runs here for real, on a private system bus, in a mount namespace with its own
//! /run/systemd (so its machine files stay in the test). What it cannot have is systemd as
//! PID 1: CreateMachine asks systemd to start a scope for the guest. A small stand-in for
//! org.freedesktop.systemd1 answers those requests (StartTransientUnit, StopUnit, the unit's
//! ActiveState and the JobRemoved signal) and records them, so the test checks both what
//! machined accepted from the daemon and what machined asked of systemd.
//!
//! The daemon's registrar is driven through the library: a driver that runs a real process
//! per guest (a `sleep`), wrapping the test driver, stands for QEMU.

use std::{
    collections::HashMap,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use uuid::Uuid;
use virtbus::{
    core::{Core, define::Caller, options::DestroyOptions, store::Store},
    drivers::{
        Completion, DeleteOutcome, DomainCtx, Driver, DriverCaps, DriverResult, ImageChains,
        RevertOutcome, RevertTarget, SnapshotOutcome, SnapshotRequest, Started, Stats,
        test::TestDriver,
    },
    model::{DomainDef, DomainType, SnapshotDef},
};
use zbus::{Connection, ObjectPath, OwnedObjectPath, OwnedVariant, object_server::SignalEmitter};

use crate::fixture::*;

const MACHINE1: &str = "org.freedesktop.machine1";

/// The test driver, plus a real process per running guest.
#[derive(Default)]
struct ProcDriver {
    inner: TestDriver,
    procs: Mutex<HashMap<Uuid, Child>>,
}

#[async_trait]
impl Driver for ProcDriver {
    fn name(&self) -> &'static str {
        "qemu"
    }
    fn capabilities(&self) -> DriverCaps {
        self.inner.capabilities()
    }
    async fn start(
        &self,
        ctx: &DomainCtx,
        def: &DomainDef,
        paused: bool,
        id: u32,
    ) -> DriverResult<Started> {
        let child = Command::new("sleep").arg("600").spawn().expect("sleep");
        self.procs.lock().expect("lock").insert(ctx.uuid, child);
        self.inner.start(ctx, def, paused, id).await
    }
    async fn shutdown(
        &self,
        ctx: &DomainCtx,
        m: virtbus::core::options::PowerMode,
    ) -> DriverResult<Completion> {
        self.inner.shutdown(ctx, m).await
    }
    async fn reboot(
        &self,
        ctx: &DomainCtx,
        m: virtbus::core::options::PowerMode,
    ) -> DriverResult<Completion> {
        self.inner.reboot(ctx, m).await
    }
    async fn destroy(&self, ctx: &DomainCtx, graceful: bool) -> DriverResult<()> {
        if let Some(mut c) = self.procs.lock().expect("lock").remove(&ctx.uuid) {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.inner.destroy(ctx, graceful).await
    }
    async fn reset(&self, ctx: &DomainCtx) -> DriverResult<()> {
        self.inner.reset(ctx).await
    }
    async fn suspend(&self, ctx: &DomainCtx) -> DriverResult<()> {
        self.inner.suspend(ctx).await
    }
    async fn resume(&self, ctx: &DomainCtx) -> DriverResult<()> {
        self.inner.resume(ctx).await
    }
    async fn stats(&self, ctx: &DomainCtx, live: &DomainDef) -> DriverResult<Stats> {
        self.inner.stats(ctx, live).await
    }
    async fn snapshot_create(
        &self,
        ctx: &DomainCtx,
        req: SnapshotRequest<'_>,
    ) -> DriverResult<SnapshotOutcome> {
        self.inner.snapshot_create(ctx, req).await
    }
    async fn snapshot_revert(
        &self,
        ctx: &DomainCtx,
        snap: &SnapshotDef,
        active_now: bool,
        target: RevertTarget,
        id: u32,
    ) -> DriverResult<RevertOutcome> {
        self.inner
            .snapshot_revert(ctx, snap, active_now, target, id)
            .await
    }
    async fn snapshot_delete(
        &self,
        ctx: &DomainCtx,
        snap: &SnapshotDef,
        active_now: bool,
        metadata_only: bool,
        remaining: &ImageChains,
    ) -> DriverResult<DeleteOutcome> {
        self.inner
            .snapshot_delete(ctx, snap, active_now, metadata_only, remaining)
            .await
    }
    async fn fs_freeze(&self, ctx: &DomainCtx, m: &[String]) -> DriverResult<u32> {
        self.inner.fs_freeze(ctx, m).await
    }
    async fn fs_thaw(&self, ctx: &DomainCtx, m: &[String]) -> DriverResult<u32> {
        self.inner.fs_thaw(ctx, m).await
    }
    fn leader_pid(&self, uuid: &Uuid) -> Option<u32> {
        self.procs.lock().ok()?.get(uuid).map(Child::id)
    }
}

/// What machined asked of systemd.
#[derive(Debug, Clone)]
enum Request {
    StartTransientUnit {
        name: String,
        properties: HashMap<String, OwnedVariant>,
    },
    StopUnit {
        name: String,
    },
}

type Requests = Arc<Mutex<Vec<Request>>>;

/// org.freedesktop.systemd1, as much of it as machined uses for machines.
struct FakeSystemd {
    requests: Requests,
    next_job: u32,
}

struct FakeUnit {
    active: &'static str,
}

/// systemd's object path of a unit: every byte but [A-Za-z0-9] as `_xx`.
fn unit_path(name: &str) -> String {
    let mut p = String::from("/org/freedesktop/systemd1/unit/");
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() {
            p.push(b as char);
        } else {
            p.push_str(&format!("_{b:02x}"));
        }
    }
    p
}

impl FakeSystemd {
    /// A new job that finishes (JobRemoved, "done") just after the call has returned.
    fn job(&mut self, conn: &Connection, unit: &str) -> OwnedObjectPath {
        self.next_job += 1;
        let id = self.next_job;
        let path = format!("/org/freedesktop/systemd1/job/{id}");
        let (conn, unit, job) = (conn.clone(), unit.to_owned(), path.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let emitter = SignalEmitter::new(&conn, "/org/freedesktop/systemd1").expect("emitter");
            let job = ObjectPath::try_from(job.as_str()).expect("job path");
            FakeSystemd::job_removed(&emitter, id, job, &unit, "done")
                .await
                .expect("JobRemoved");
        });
        OwnedObjectPath::try_from(path).expect("path")
    }
}

#[zbus::interface(name = "org.freedesktop.systemd1.Manager")]
impl FakeSystemd {
    async fn subscribe(&self) {}

    async fn start_transient_unit(
        &mut self,
        name: String,
        _mode: String,
        properties: Vec<(String, OwnedVariant)>,
        _aux: Vec<(String, Vec<(String, OwnedVariant)>)>,
        #[zbus(connection)] conn: &Connection,
    ) -> zbus::fdo::Result<OwnedObjectPath> {
        conn.object_server()
            .at(unit_path(&name), FakeUnit { active: "active" })
            .await?;
        self.requests
            .lock()
            .expect("lock")
            .push(Request::StartTransientUnit {
                name: name.clone(),
                properties: properties.into_iter().collect(),
            });
        Ok(self.job(conn, &name))
    }

    async fn stop_unit(
        &mut self,
        name: String,
        _mode: String,
        #[zbus(connection)] conn: &Connection,
    ) -> zbus::fdo::Result<OwnedObjectPath> {
        let unit = conn
            .object_server()
            .interface::<_, FakeUnit>(unit_path(&name))
            .await?;
        unit.get_mut().await.active = "inactive";
        self.requests
            .lock()
            .expect("lock")
            .push(Request::StopUnit { name: name.clone() });
        Ok(self.job(conn, &name))
    }

    #[zbus(signal)]
    async fn job_removed(
        emitter: &SignalEmitter<'_>,
        id: u32,
        job: ObjectPath<'_>,
        unit: &str,
        result: &str,
    ) -> zbus::Result<()>;
}

#[zbus::interface(name = "org.freedesktop.systemd1.Unit")]
impl FakeUnit {
    #[zbus(property)]
    fn active_state(&self) -> String {
        self.active.to_owned()
    }
}

/// A system bus with machined's and systemd's real bus policies.
fn system_bus(dir: &Path) -> SystemBus {
    SystemBus::start(
        dir,
        &[
            "/usr/share/dbus-1/system.d/org.freedesktop.systemd1.conf".into(),
            "/usr/share/dbus-1/system.d/org.freedesktop.machine1.conf".into(),
        ],
    )
}

fn start_machined(bus: &SystemBus, dir: &Path) -> Proc {
    let script = r#"mount -t tmpfs tmpfs /run/systemd && exec /lib/systemd/systemd-machined"#;
    Proc::spawn(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", script])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .env("SYSTEMD_LOG_LEVEL", "debug")
            .env("SYSTEMD_LOG_TARGET", "console")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("machined.log")).expect("log")),
    )
}

fn core(dir: &Path) -> Core {
    let drivers: Vec<(DomainType, Arc<dyn Driver>)> = vec![
        (DomainType::Qemu, Arc::new(ProcDriver::default())),
        (DomainType::Test, Arc::new(TestDriver::new())),
    ];
    Core::new(drivers, Store::open(&dir.join("state")).expect("store"))
}

async fn define(core: &Core, kind: &str, name: &str) -> Arc<virtbus::core::Domain> {
    let xml = format!(
        "<domain type='{kind}'><name>{name}</name><memory unit='MiB'>64</memory>\
         <vcpu>1</vcpu><os><type>hvm</type></os></domain>"
    );
    let def = core.parse_domain(&xml).expect("parse");
    core.define(def, Caller { uid: None })
        .await
        .expect("define")
}

async fn list_machines(conn: &Connection) -> Vec<(String, String, String, OwnedObjectPath)> {
    let reply = conn
        .call_method(
            Some(MACHINE1),
            "/org/freedesktop/machine1",
            Some("org.freedesktop.machine1.Manager"),
            "ListMachines",
            &(),
        )
        .await
        .expect("ListMachines");
    reply.body().deserialize().expect("a(ssso)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_guests_with_a_process_are_machines_while_they_run() {
    let dir = open_tempdir();
    let bus = system_bus(dir.path());
    let conn = connect(&bus.address).await;
    let requests = Requests::default();
    conn.object_server()
        .at(
            "/org/freedesktop/systemd1",
            FakeSystemd {
                requests: requests.clone(),
                next_job: 0,
            },
        )
        .await
        .expect("serve");
    conn.request_name("org.freedesktop.systemd1")
        .await
        .expect("systemd1 name");
    let _machined = start_machined(&bus, dir.path());
    let machined_log =
        || std::fs::read_to_string(dir.path().join("machined.log")).unwrap_or_default();
    assert!(
        eventually(Duration::from_secs(10), async || has_owner(&conn, MACHINE1)
            .await)
        .await,
        "machined did not start:\n{}",
        machined_log()
    );

    let core = core(dir.path());
    let registrar = connect(&bus.address).await;
    let task = virtbus::machined::spawn(&registrar, core.clone());
    let vm = define(&core, "qemu", "web 1").await;
    let plain = define(&core, "test", "plain").await;
    core.start(&vm, Default::default()).await.expect("start vm");
    core.start(&plain, Default::default())
        .await
        .expect("start plain");
    let leader = vm.leader_pid().expect("a process");
    let want = virtbus::machined::machine_name("qemu", "web 1", &vm.uuid());
    assert!(want.starts_with("qemu-web-1-"), "{want}");

    assert!(
        eventually(Duration::from_secs(10), async || {
            list_machines(&conn).await.iter().any(|m| m.0 == want)
        })
        .await,
        "not registered:\n{}",
        machined_log()
    );
    let machines = list_machines(&conn).await;
    let names: Vec<&str> = machines.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(
        names.len(),
        2,
        "only the host and the guest with a process: {names:?}"
    );
    let (_, class, service, path) = machines
        .iter()
        .find(|m| m.0 == want)
        .expect("listed")
        .clone();
    assert_eq!((class.as_str(), service.as_str()), ("vm", "virtbus"));
    let machine = zbus::Proxy::new(&conn, MACHINE1, path, "org.freedesktop.machine1.Machine")
        .await
        .expect("machine");
    assert_eq!(
        machine.get_property::<u32>("Leader").await.expect("Leader"),
        leader
    );
    assert_eq!(
        machine.get_property::<Vec<u8>>("Id").await.expect("Id"),
        vm.uuid().as_bytes().to_vec()
    );

    // machined asked systemd for a scope holding the guest's process, ordered after us.
    let started = requests.lock().expect("lock").clone();
    let Some(Request::StartTransientUnit {
        name: scope,
        properties,
    }) = started.first()
    else {
        panic!("no scope requested: {started:?}");
    };
    assert!(
        scope.starts_with("machine-") && scope.ends_with(".scope"),
        "{scope}"
    );
    let prop = |k: &str| {
        properties
            .get(k)
            .map(|v| format!("{:?}", &**v))
            .unwrap_or_default()
    };
    assert!(prop("PIDs").contains(&leader.to_string()), "{properties:?}");
    assert!(prop("Slice").contains("machine.slice"), "{properties:?}");
    assert!(prop("After").contains("virtbusd.service"), "{properties:?}");

    // Stopped: machined is told, stops the scope and forgets the machine.
    core.destroy(&vm, DestroyOptions::default())
        .await
        .expect("destroy");
    assert!(
        eventually(Duration::from_secs(10), async || {
            !list_machines(&conn).await.iter().any(|m| m.0 == want)
        })
        .await,
        "still registered:\n{}",
        machined_log()
    );
    let stops: Vec<String> = requests
        .lock()
        .expect("lock")
        .iter()
        .filter_map(|r| match r {
            Request::StopUnit { name } => Some(name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(&stops, std::slice::from_ref(scope));
    assert!(!task.is_finished());
}

/// Without machined on the bus guests start and stop as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_machined_nothing_breaks() {
    let dir = open_tempdir();
    let bus = system_bus(dir.path());
    let core = core(dir.path());
    let conn = connect(&bus.address).await;
    let task = virtbus::machined::spawn(&conn, core.clone());
    let vm = define(&core, "qemu", "alone").await;
    for _ in 0..2 {
        core.start(&vm, Default::default()).await.expect("start");
        assert!(vm.leader_pid().is_some());
        core.destroy(&vm, DestroyOptions::default())
            .await
            .expect("destroy");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!task.is_finished(), "the registrar keeps following events");
}
