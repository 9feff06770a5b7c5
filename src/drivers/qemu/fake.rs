//! A recording fake of the seam, for unit tests: a monitor that logs every command with its
//! arguments, in order and as QMP's wire has them, and answers from a scripted table
//! (replies, QEMU errors, timeouts, and the events a command causes); processes that run
//! until terminated; and a spawner that hands them out the way QEMU would be launched.
//! Tests assert the log, so a change in the driver's command sequence fails them.

use std::{
    collections::{HashMap, VecDeque},
    fs::File,
    io,
    os::fd::OwnedFd,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::{
    QemuConfig, QemuDriver,
    caps::{Caps, CapsCache},
    kvm::KvmStatus,
    monitor::{self, Vm, VmParts},
    process::ProcessError,
    seam::{Monitor, QemuProcess, Spawner},
    snapshot::{hooks::Hooks, img::QemuImg},
    transport::{Error, Event, Events},
};
use crate::{
    drivers::{DomainCtx, DriverEvent, EventSink},
    model::DomainDef,
    util::lock,
};

type Compute = Arc<dyn Fn(&[Value]) -> Value + Send + Sync>;

#[derive(Clone)]
enum Outcome {
    Return(Value),
    /// A reply computed from the log so far (this command last), for ids QEMU echoes.
    Computed(Compute),
    Fail {
        class: String,
        desc: String,
    },
    Timeout,
}

/// What the fake does when a command comes: the events it sends first (QMP sends an
/// event before the reply of the command that caused it), then its reply.
#[derive(Clone)]
pub struct Answer {
    outcome: Outcome,
    events: Vec<(String, Value)>,
}

impl Answer {
    pub fn ok(reply: Value) -> Self {
        Self {
            outcome: Outcome::Return(reply),
            events: Vec::new(),
        }
    }

    /// A reply made from the commands logged so far.
    pub fn computed(f: impl Fn(&[Value]) -> Value + Send + Sync + 'static) -> Self {
        Self {
            outcome: Outcome::Computed(Arc::new(f)),
            events: Vec::new(),
        }
    }

    /// QEMU's error reply.
    pub fn error(class: &str, desc: &str) -> Self {
        Self {
            outcome: Outcome::Fail {
                class: class.to_owned(),
                desc: desc.to_owned(),
            },
            events: Vec::new(),
        }
    }

    /// No reply within the time allowed.
    pub fn timeout() -> Self {
        Self {
            outcome: Outcome::Timeout,
            events: Vec::new(),
        }
    }

    /// Send event `name` with `data` before the reply.
    pub fn with_event(mut self, name: &str, data: Value) -> Self {
        self.events.push((name.to_owned(), data));
        self
    }
}

#[derive(Default)]
struct Script {
    log: Vec<Value>,
    once: HashMap<String, VecDeque<Answer>>,
    always: HashMap<String, Answer>,
}

/// The recording fake monitor; clones share one log and one script.
#[derive(Clone)]
pub struct FakeMonitor {
    script: Arc<Mutex<Script>>,
    tx: Arc<Mutex<Option<mpsc::UnboundedSender<Event>>>>,
    events: Arc<Mutex<Option<Events>>>,
    sent: Arc<AtomicU64>,
}

impl Default for FakeMonitor {
    fn default() -> Self {
        let (tx, events) = Events::channel();
        Self {
            script: Arc::default(),
            tx: Arc::new(Mutex::new(Some(tx))),
            events: Arc::new(Mutex::new(Some(events))),
            sent: Arc::default(),
        }
    }
}

impl FakeMonitor {
    /// Answer every call of `command` so (after the one-off answers queued for it).
    /// Unscripted commands return `{}`, as most of QEMU's do.
    pub fn answer(&self, command: &str, a: Answer) -> &Self {
        lock(&self.script).always.insert(command.to_owned(), a);
        self
    }

    /// Answer the next call of `command` so, once.
    pub fn answer_once(&self, command: &str, a: Answer) -> &Self {
        lock(&self.script)
            .once
            .entry(command.to_owned())
            .or_default()
            .push_back(a);
        self
    }

    /// Every command so far, as `{"execute": ..., "arguments": ...}`.
    pub fn log(&self) -> Vec<Value> {
        lock(&self.script).log.clone()
    }

    /// The names of the commands so far.
    pub fn commands(&self) -> Vec<String> {
        self.log()
            .iter()
            .map(|c| c["execute"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Forget the log (after a test's setup).
    pub fn clear(&self) {
        lock(&self.script).log.clear();
    }

    /// Send an event now, as QEMU does on its own.
    pub fn emit(&self, name: &str, data: Value) {
        if let Some(tx) = lock(&self.tx).as_ref() {
            self.sent.fetch_add(1, Ordering::SeqCst);
            let _ = tx.send(Event {
                name: name.to_owned(),
                details: Some(data.to_string()),
                data,
                timestamp: Default::default(),
            });
        }
    }

    /// The connection closes, as when QEMU exits: events end, commands fail.
    pub fn close(&self) {
        lock(&self.tx).take();
    }

    /// The receiving end of the events; there is one.
    pub fn take_events(&self) -> Events {
        lock(&self.events).take().expect("events taken twice")
    }

    fn record(&self, command: &str, arguments: Option<Value>) -> Option<Answer> {
        let mut s = lock(&self.script);
        let mut line = json!({ "execute": command });
        if let Some(a) = arguments {
            line["arguments"] = a;
        }
        s.log.push(line);
        let once = s.once.get_mut(command).and_then(VecDeque::pop_front);
        once.or_else(|| s.always.get(command).cloned())
    }
}

#[async_trait]
impl Monitor for FakeMonitor {
    async fn execute(
        &self,
        command: &str,
        arguments: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, Error> {
        let answer = self.record(command, arguments);
        if lock(&self.tx).is_none() {
            return Err(Error::Disconnected);
        }
        let Some(a) = answer else {
            return Ok(json!({}));
        };
        for (name, data) in a.events {
            self.emit(&name, data);
        }
        match a.outcome {
            Outcome::Return(v) => Ok(v),
            Outcome::Computed(f) => Ok(f(&self.log())),
            Outcome::Fail { class, desc } => Err(Error::Qemu { class, desc }),
            Outcome::Timeout => Err(Error::Timeout {
                command: command.to_owned(),
                after: timeout,
            }),
        }
    }

    /// Logged like any command; the descriptor is dropped.
    async fn execute_with_fd(
        &self,
        command: &str,
        arguments: Option<Value>,
        _fd: OwnedFd,
        timeout: Duration,
    ) -> Result<Value, Error> {
        self.execute(command, arguments, timeout).await
    }

    fn events_received(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

/// A process that runs until terminated; its exit closes its monitor, as QEMU's does.
pub struct FakeProcess {
    exited: watch::Sender<bool>,
    monitor: FakeMonitor,
}

impl FakeProcess {
    pub fn new(monitor: &FakeMonitor) -> Self {
        Self {
            exited: watch::channel(false).0,
            monitor: monitor.clone(),
        }
    }
}

/// The pid a fake process claims; no process of ours has it.
pub const FAKE_PID: i32 = i32::MAX;

#[async_trait]
impl QemuProcess for FakeProcess {
    fn pid(&self) -> i32 {
        FAKE_PID
    }

    fn start_time(&self) -> u64 {
        1
    }

    fn has_exited(&self) -> bool {
        *self.exited.borrow()
    }

    async fn wait(&self) {
        let _ = self.exited.subscribe().wait_for(|e| *e).await;
    }

    async fn terminate(&self, _grace: Duration, _graceful: bool) -> io::Result<bool> {
        self.exited.send_replace(true);
        self.monitor.close();
        Ok(true)
    }
}

/// Launches fake QEMUs, all with the one fake monitor; records each command line.
#[derive(Clone, Default)]
pub struct FakeSpawner {
    pub monitor: FakeMonitor,
    spawned: Arc<Mutex<Vec<Vec<String>>>>,
}

impl FakeSpawner {
    /// The arguments of every launch so far.
    pub fn spawned(&self) -> Vec<Vec<String>> {
        lock(&self.spawned).clone()
    }
}

#[async_trait]
impl Spawner for FakeSpawner {
    /// Like QEMU, creates the monitor socket's path (a plain file here) named in `args`.
    fn spawn(
        &self,
        _program: &Path,
        args: &[String],
        _env: &[(String, String)],
        _log: &File,
    ) -> Result<Box<dyn QemuProcess>, ProcessError> {
        lock(&self.spawned).push(args.to_vec());
        let sock = args
            .iter()
            .find_map(|a| a.strip_prefix("socket,id=charmonitor,path="))
            .and_then(|a| a.split(",server").next());
        if let Some(p) = sock {
            File::create(p).map_err(|source| ProcessError::Spawn {
                program: p.into(),
                source,
            })?;
        }
        Ok(Box::new(FakeProcess::new(&self.monitor)))
    }

    fn adopt(&self, _pid: i32, _start_time: u64) -> Result<Box<dyn QemuProcess>, ProcessError> {
        Ok(Box::new(FakeProcess::new(&self.monitor)))
    }

    /// Logs the capabilities negotiation the real connection makes before it returns.
    async fn connect(
        &self,
        _path: &Path,
        _timeout: Duration,
    ) -> Result<(Box<dyn Monitor>, Events), Error> {
        self.monitor.record("qmp_capabilities", Some(json!({})));
        Ok((Box::new(self.monitor.clone()), self.monitor.take_events()))
    }
}

/// Keeps what the driver reports.
#[derive(Default)]
pub struct Sink(pub Mutex<Vec<DriverEvent>>);

impl EventSink for Sink {
    fn driver_event(&self, _uuid: Uuid, event: DriverEvent) {
        lock(&self.0).push(event);
    }
}

/// A context for domain `def`, and what is reported through it.
pub fn ctx(def: &DomainDef) -> (DomainCtx, Arc<Sink>) {
    let sink = Arc::new(Sink::default());
    let ctx = DomainCtx {
        uuid: def.uuid,
        name: def.name.clone(),
        sink: sink.clone(),
    };
    (ctx, sink)
}

/// A running guest of live definition `live` behind `monitor`, its events watched.
pub fn running_vm(monitor: &FakeMonitor, live: DomainDef) -> Arc<Vm> {
    let (ctx, _) = ctx(&live);
    // nothing is written there: the guest is not the driver's, so no cleanup runs
    let dir = std::path::PathBuf::from("/nonexistent/virtbus-fake");
    let vm = Vm::new(VmParts {
        uuid: live.uuid,
        name: live.name.clone(),
        id: 1,
        qmp: Box::new(monitor.clone()),
        agent: None,
        process: Box::new(FakeProcess::new(monitor)),
        log: dir.join("virtbus-fake.log"),
        monitor: dir.join("virtbus-fake.sock"),
        dir,
        emulator: "/nonexistent/qemu-system-x86_64".into(),
        live,
        timeout: Duration::from_secs(5),
        in_shutdown: false,
        dump_dir: std::env::temp_dir().join("vb-fake-dump"),
    });
    monitor::watch(vm.clone(), monitor.take_events(), ctx, |_| {});
    vm
}

/// A domain with `devices` (XML), for the tests' live definitions.
pub fn domain(devices: &str) -> DomainDef {
    DomainDef::from_xml(&format!(
        "<domain type='qemu'><name>g</name><uuid>6f2c1d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f</uuid>\
         <memory>131072</memory><os><type>hvm</type></os><devices>{devices}</devices></domain>"
    ))
    .expect("domain")
}

/// A driver whose QEMUs are launched by `spawner`, its files under `dir`, with a stand-in
/// emulator there that has QEMU 7.2's x86_64 capabilities.
pub fn driver(dir: &Path, spawner: FakeSpawner) -> QemuDriver {
    let emulator = dir.join("qemu-system-x86_64");
    File::create(&emulator).expect("emulator");
    let caps = CapsCache::default();
    caps.insert(Caps {
        emulator: emulator.clone(),
        ..super::caps::tests::x86_64()
    })
    .expect("caps");
    let runtime = dir.join("run");
    let log_dir = dir.join("log");
    for d in [&runtime, &log_dir] {
        super::mkdir_private(d).expect("dir");
    }
    QemuDriver {
        config: QemuConfig::default(),
        runtime,
        log_dir,
        cache_dir: dir.join("cache"),
        save_dir: dir.join("save"),
        nvram_dir: dir.join("nvram"),
        dump_dir: dir.join("dump"),
        swtpm: super::swtpm::Swtpm {
            state_root: dir.join("swtpm"),
            records: dir.join("run/swtpm"),
            log_dir: dir.join("log"),
        },
        default_emulator: emulator,
        caps,
        kvm: KvmStatus::Unusable("a test".into()),
        vms: Arc::default(),
        bandwidths: Default::default(),
        img: QemuImg::find(&super::caps::search_dirs(&[])),
        hooks: Hooks::default(),
        spawner: Arc::new(spawner),
    }
}
