//! Guest-agent (qemu-ga) client over the agent's chardev socket.
//!
//! The agent protocol cannot be trusted to tie a reply to its command (old
//! agents echo no `id`, a paused guest answers minutes later, a restarted
//! agent forgets everything), so this client keeps exactly one command in
//! flight, behind a mutex, and before every command runs the sync handshake:
//! it sends `0xFF` (which resets qemu-ga's JSON parser; qemu-ga answers that
//! byte with a parse error) and `guest-sync-delimited` with a fresh random id,
//! then discards everything until the `0xFF`-delimited reply carrying that id.
//! Whatever was left over from commands that timed out is thereby dropped.
//! The command then carries an `id` of its own (qemu-ga 7.2 echoes it); a
//! reply with a different id is stale and skipped.
//!
//! Timeouts say where they happened: `Timeout { command: "guest-sync-delimited" }`
//! means the agent did not answer the handshake and the command was **not**
//! sent; `Timeout { command: <the command> }` means it was sent and may still
//! run later (a paused guest runs it after `cont`). [`Agent::execute_tracked`]
//! says so for every error, and [`Agent::thaw_always`] is the one command sent
//! without an answered handshake: a thaw must queue behind a freeze that a
//! stalled guest will still run.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use qapi::qga::{
    GuestAgentInfo, GuestFsfreezeStatus, GuestNetworkInterface, GuestOSInfo, GuestShutdownMode,
};
use serde_json::{Value, json};
use tokio::net::UnixStream;
use tokio::sync::{Mutex, mpsc};
use tokio::time::Instant;

use super::qmp::decode_reply;
use super::transport::{Error, Reply, SYNC_DELIMITER, Transport, command_line};

/// The sync command this client uses; also the `command` of a handshake timeout.
pub const SYNC_COMMAND: &str = "guest-sync-delimited";

/// A failed command, and whether it was written to the agent (and so may still run).
#[derive(Debug)]
pub struct CallError {
    pub error: Error,
    pub sent: bool,
}

impl CallError {
    fn unsent(error: Error) -> Self {
        Self { error, sent: false }
    }
    fn sent(error: Error) -> Self {
        Self { error, sent: true }
    }
}

/// A fault a test makes happen at one command, to stage what a real guest does only by
/// chance (armed by the QEMU driver's test hooks, never otherwise).
#[derive(Debug)]
pub enum Fault {
    /// Tell the sender once the command is written (a test stops the guest right then).
    NotifyWritten(tokio::sync::oneshot::Sender<()>),
    /// Drop the connection when the reply arrives, as if it broke just before: the
    /// command ran, and its answer is lost.
    DropReply,
}

/// A guest-agent client. Connects lazily and reconnects after the connection
/// is lost; commands are serialized.
#[derive(Debug)]
pub struct Agent {
    path: PathBuf,
    conn: Mutex<Option<Conn>>,
    fault: std::sync::Mutex<Option<(String, Fault)>>,
}

type FaultSlot = std::sync::Mutex<Option<(String, Fault)>>;

/// The fault armed for `command`, taken out of `slot`.
fn take_fault(slot: &FaultSlot, command: &str) -> Option<Fault> {
    let mut f = slot.lock().unwrap_or_else(|e| e.into_inner());
    if f.as_ref().is_some_and(|(c, _)| c == command) {
        return f.take().map(|(_, fault)| fault);
    }
    None
}

#[derive(Debug)]
struct Conn {
    transport: Transport,
    replies: mpsc::UnboundedReceiver<Reply>,
    /// A sync was answered over this connection: it reaches the agent.
    answered: bool,
    /// A thaw was written over this connection and not answered yet: closing the connection
    /// would lose it (QEMU drops what it has not handed to a stalled guest).
    holds_thaw: bool,
}

impl Conn {
    /// Whether to drop this connection after its handshake went unanswered. A connection
    /// opened after another one was closed while the guest was stopped may never deliver
    /// anything (seen with QEMU 7.2 and qemu-ga: the next connection works); one that
    /// holds a thaw is kept, so that the thaw still runs once the guest does.
    fn drop_after_sync_timeout(&self) -> bool {
        !self.holds_thaw
    }
}

/// Whether `e` is a handshake that went unanswered.
fn is_sync_timeout(e: &Error) -> bool {
    matches!(e, Error::Timeout { command, .. } if command == SYNC_COMMAND)
}

fn timeout_error(command: &str, after: Duration) -> Error {
    Error::Timeout {
        command: command.to_owned(),
        after,
    }
}

impl Conn {
    async fn open(path: &Path, deadline: Instant, after: Duration) -> Result<Conn, Error> {
        let stream = tokio::time::timeout_at(deadline, UnixStream::connect(path))
            .await
            .map_err(|_| timeout_error("connect", after))??;
        let (transport, _events, replies) = Transport::with_reply_queue(stream, Vec::new());
        Ok(Conn {
            transport,
            replies,
            answered: false,
            holds_thaw: false,
        })
    }

    async fn write(
        &self,
        line: Vec<u8>,
        command: &str,
        deadline: Instant,
        after: Duration,
    ) -> Result<(), Error> {
        tokio::time::timeout_at(deadline, self.transport.write(line))
            .await
            .map_err(|_| timeout_error(command, after))?
    }

    async fn next_reply(
        &mut self,
        command: &str,
        deadline: Instant,
        after: Duration,
    ) -> Result<Reply, Error> {
        match tokio::time::timeout_at(deadline, self.replies.recv()).await {
            Err(_) => Err(timeout_error(command, after)),
            Ok(None) => Err(Error::Disconnected),
            Ok(Some(r)) => Ok(r),
        }
    }

    async fn sync(&mut self, deadline: Instant, after: Duration) -> Result<(), Error> {
        // answers to commands that timed out earlier
        while let Ok(stale) = self.replies.try_recv() {
            tracing::debug!(?stale, "discarding stale agent reply");
        }
        let sync_id = fresh_sync_id();
        let mut line = vec![SYNC_DELIMITER];
        line.extend(command_line(
            SYNC_COMMAND,
            Some(json!({ "id": sync_id })),
            None,
        )?);
        self.write(line, SYNC_COMMAND, deadline, after).await?;
        loop {
            let r = self.next_reply(SYNC_COMMAND, deadline, after).await?;
            let ours = r.delimited && matches!(&r.result, Ok(v) if v.as_u64() == Some(sync_id));
            if ours {
                // everything written before the sync has been read by the agent
                self.answered = true;
                self.holds_thaw = false;
                return Ok(());
            }
            // the parse error for our 0xFF, or leftovers from earlier commands
            tracing::debug!(skipped = ?r, "skipping agent output before sync reply");
        }
    }

    /// Sync, then send the command and wait for its reply. The error says whether the
    /// command was written: anything after the handshake counts as sent.
    async fn command(
        &mut self,
        name: &str,
        args: Option<Value>,
        want_reply: bool,
        deadline: Instant,
        after: Duration,
        faults: &FaultSlot,
    ) -> Result<Option<Value>, CallError> {
        self.sync(deadline, after)
            .await
            .map_err(CallError::unsent)?;
        self.send_and_wait(name, args, want_reply, deadline, after, faults)
            .await
    }

    /// Send a command without a handshake of its own and wait for its reply.
    async fn send_and_wait(
        &mut self,
        name: &str,
        args: Option<Value>,
        want_reply: bool,
        deadline: Instant,
        after: Duration,
        faults: &FaultSlot,
    ) -> Result<Option<Value>, CallError> {
        let id = self.transport.next_id();
        let line = command_line(name, args, Some(id)).map_err(CallError::unsent)?;
        // from here on the line may reach the agent, even if the write times out
        self.write(line, name, deadline, after)
            .await
            .map_err(CallError::sent)?;
        let fault = take_fault(faults, name);
        let drop_reply = match fault {
            Some(Fault::NotifyWritten(tx)) => {
                let _ = tx.send(());
                false
            }
            Some(Fault::DropReply) => true,
            None => false,
        };
        if !want_reply {
            return Ok(None);
        }
        loop {
            let r = self
                .next_reply(name, deadline, after)
                .await
                .map_err(CallError::sent)?;
            let stale = r.delimited || r.id.as_ref().is_some_and(|v| v.as_u64() != Some(id));
            if stale {
                tracing::debug!(skipped = ?r, "skipping stale agent reply");
                continue;
            }
            if drop_reply {
                tracing::warn!("test fault: dropping the agent connection at the reply to {name}");
                return Err(CallError::sent(Error::Disconnected));
            }
            return r.result.map(Some).map_err(|e| CallError::sent(e.into()));
        }
    }
}

/// A random id for the sync handshake, in 1..2^53 so that any JSON reader
/// keeps it exact.
fn fresh_sync_id() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    h.write_u128(nanos);
    (h.finish() & ((1u64 << 53) - 1)).max(1)
}

impl Agent {
    /// A client for the agent socket at `path`; nothing is opened yet.
    pub fn new(path: impl Into<PathBuf>) -> Agent {
        Agent {
            path: path.into(),
            conn: Mutex::new(None),
            fault: std::sync::Mutex::new(None),
        }
    }

    /// Arm `fault` for the next `command` (see [`Fault`]); replaces one armed before.
    pub fn arm_fault(&self, command: &str, fault: Fault) {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner()) = Some((command.to_owned(), fault));
    }

    /// Give up the open connection and return a descriptor of it, for another process to
    /// keep it open (with what is queued on it). This client stops reading it first (a
    /// receiver may change the descriptor's blocking mode, which the copies share); its
    /// next command opens a new connection.
    pub async fn hand_over(&self) -> Result<std::os::fd::OwnedFd, Error> {
        let conn = self.conn.lock().await.take().ok_or(Error::Disconnected)?;
        let fd = conn.transport.dup_fd();
        drop(conn);
        fd
    }

    /// Disarm whatever fault is armed.
    pub fn disarm_fault(&self) {
        self.fault.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// A client that has already connected to the socket (the agent itself may
    /// not be running yet: QEMU holds the socket, not the guest).
    pub async fn connect(path: impl Into<PathBuf>, timeout: Duration) -> Result<Agent, Error> {
        let agent = Agent::new(path);
        let conn = Conn::open(&agent.path, Instant::now() + timeout, timeout).await?;
        *agent.conn.lock().await = Some(conn);
        Ok(agent)
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the connection (if any); the next command opens a new one.
    pub async fn disconnect(&self) {
        self.conn.lock().await.take();
    }

    /// Takes the command lock and makes sure a connection is open, all
    /// before `deadline`; a timeout is reported under `command`.
    async fn lock_conn(
        &self,
        command: &str,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<tokio::sync::MutexGuard<'_, Option<Conn>>, Error> {
        let mut slot = tokio::time::timeout_at(deadline, self.conn.lock())
            .await
            .map_err(|_| timeout_error(command, timeout))?;
        if slot.as_ref().is_some_and(|c| c.transport.is_closed()) {
            *slot = None;
        }
        if slot.is_none() {
            *slot = Some(Conn::open(&self.path, deadline, timeout).await?);
        }
        Ok(slot)
    }

    async fn call(
        &self,
        name: &str,
        args: Option<Value>,
        want_reply: bool,
        timeout: Duration,
    ) -> Result<Option<Value>, Error> {
        self.call_tracked(name, args, want_reply, timeout)
            .await
            .map_err(|e| e.error)
    }

    async fn call_tracked(
        &self,
        name: &str,
        args: Option<Value>,
        want_reply: bool,
        timeout: Duration,
    ) -> Result<Option<Value>, CallError> {
        let deadline = Instant::now() + timeout;
        let mut slot = self
            .lock_conn(name, deadline, timeout)
            .await
            .map_err(CallError::unsent)?;
        let Some(conn) = slot.as_mut() else {
            return Err(CallError::unsent(Error::Disconnected));
        };
        let result = conn
            .command(name, args, want_reply, deadline, timeout, &self.fault)
            .await;
        if let Err(e) = &result
            && (matches!(e.error, Error::Disconnected | Error::Io(_))
                || is_sync_timeout(&e.error) && conn.drop_after_sync_timeout())
        {
            *slot = None;
        }
        result
    }

    /// Runs a command by name; an error says whether the command was sent.
    pub async fn execute_tracked(
        &self,
        command: &str,
        arguments: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        Ok(self
            .call_tracked(command, arguments, true, timeout)
            .await?
            .unwrap_or(Value::Null))
    }

    /// Sends `guest-fsfreeze-thaw` whatever the agent's state, within `timeout`: over a new
    /// connection when the old one is gone, and after a handshake that is not answered (a
    /// stalled guest), so that the thaw queues behind a freeze the guest will still run.
    /// Returns how many filesystems were thawed; an error with `sent` means the thaw is on
    /// its way but its effect is not known.
    pub async fn thaw_always(&self, timeout: Duration) -> Result<i64, CallError> {
        const THAW: &str = "guest-fsfreeze-thaw";
        let deadline = Instant::now() + timeout;
        let mut last = Error::Disconnected;
        let mut fresh_tried = false;
        while Instant::now() < deadline {
            let mut slot = match self.lock_conn(THAW, deadline, timeout).await {
                Ok(s) => s,
                Err(e) => {
                    // cannot even connect: try again shortly, within the time given
                    last = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(conn) = slot.as_mut() else {
                continue;
            };
            // a third of the time for the handshake; without an answer the thaw goes anyway
            let left = deadline.saturating_duration_since(Instant::now());
            let sync_deadline = Instant::now() + left / 3;
            match conn.sync(sync_deadline, timeout).await {
                Ok(()) => {}
                Err(Error::Timeout { .. })
                    if !conn.answered && !conn.holds_thaw && !fresh_tried =>
                {
                    // maybe a connection that delivers nothing: one more, then regardless
                    fresh_tried = true;
                    *slot = None;
                    continue;
                }
                Err(Error::Timeout { .. }) => {
                    tracing::warn!("guest agent does not answer; sending the thaw regardless");
                }
                Err(e) => {
                    // the connection is gone: a new one, and the thaw over it
                    last = e;
                    *slot = None;
                    continue;
                }
            }
            let r = conn
                .send_and_wait(THAW, None, true, deadline, timeout, &self.fault)
                .await;
            match &r {
                Err(e) if matches!(e.error, Error::Disconnected | Error::Io(_)) => *slot = None,
                Err(e) if e.sent => conn.holds_thaw = true,
                _ => {}
            }
            return r.and_then(|v| {
                decode_reply::<i64>(THAW, v.unwrap_or(Value::Null)).map_err(CallError::sent)
            });
        }
        Err(CallError::unsent(match last {
            Error::Disconnected => timeout_error(THAW, timeout),
            e => e,
        }))
    }

    /// Only the sync handshake: proves the agent is alive and answering.
    pub async fn sync(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let mut slot = self.lock_conn(SYNC_COMMAND, deadline, timeout).await?;
        let Some(conn) = slot.as_mut() else {
            return Err(Error::Disconnected);
        };
        let result = conn.sync(deadline, timeout).await;
        if let Err(e) = &result
            && (matches!(e, Error::Disconnected | Error::Io(_))
                || is_sync_timeout(e) && conn.drop_after_sync_timeout())
        {
            *slot = None;
        }
        result
    }

    /// Runs a command typed by the `qapi` crate (QEMU 9.1 schema). A reply
    /// that does not fit the generated type is a [`Error::Protocol`].
    pub async fn execute<C: qapi::qga::QgaCommand>(
        &self,
        command: C,
        timeout: Duration,
    ) -> Result<C::Ok, Error> {
        let args = super::transport::command_arguments(C::NAME, &command)?;
        let reply = self
            .call(C::NAME, args, true, timeout)
            .await?
            .unwrap_or(Value::Null);
        decode_reply::<C::Ok>(C::NAME, reply)
    }

    /// Runs a command by name with raw JSON arguments; returns the raw `return`.
    pub async fn execute_raw(
        &self,
        command: &str,
        arguments: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, Error> {
        Ok(self
            .call(command, arguments, true, timeout)
            .await?
            .unwrap_or(Value::Null))
    }

    /// Sends a command that qemu-ga does not answer on success
    /// (`success-response: false` in `guest-info`: guest-shutdown, guest-suspend-*).
    /// Returns once the agent has answered the sync and the command is written.
    pub async fn execute_no_reply(
        &self,
        command: &str,
        arguments: Option<Value>,
        timeout: Duration,
    ) -> Result<(), Error> {
        self.call(command, arguments, false, timeout)
            .await
            .map(|_| ())
    }

    pub async fn ping(&self, timeout: Duration) -> Result<(), Error> {
        self.execute(qapi::qga::guest_ping {}, timeout)
            .await
            .map(|_| ())
    }

    pub async fn info(&self, timeout: Duration) -> Result<GuestAgentInfo, Error> {
        self.execute(qapi::qga::guest_info {}, timeout).await
    }

    pub async fn fsfreeze_status(&self, timeout: Duration) -> Result<GuestFsfreezeStatus, Error> {
        self.execute(qapi::qga::guest_fsfreeze_status {}, timeout)
            .await
    }

    /// Freezes every freezable filesystem; returns how many were frozen.
    /// After a `Timeout` naming `guest-fsfreeze-freeze` the freeze may still
    /// happen later: always follow up with a thaw.
    pub async fn fsfreeze_freeze(&self, timeout: Duration) -> Result<i64, Error> {
        self.execute(qapi::qga::guest_fsfreeze_freeze {}, timeout)
            .await
    }

    /// Thaws; returns how many filesystems were thawed (0 if none were frozen).
    pub async fn fsfreeze_thaw(&self, timeout: Duration) -> Result<i64, Error> {
        self.execute(qapi::qga::guest_fsfreeze_thaw {}, timeout)
            .await
    }

    pub async fn network_get_interfaces(
        &self,
        timeout: Duration,
    ) -> Result<Vec<GuestNetworkInterface>, Error> {
        self.execute(qapi::qga::guest_network_get_interfaces {}, timeout)
            .await
    }

    pub async fn get_host_name(&self, timeout: Duration) -> Result<String, Error> {
        self.execute(qapi::qga::guest_get_host_name {}, timeout)
            .await
            .map(|h| h.host_name)
    }

    pub async fn get_osinfo(&self, timeout: Duration) -> Result<GuestOSInfo, Error> {
        self.execute(qapi::qga::guest_get_osinfo {}, timeout).await
    }

    /// Asks the guest to shut down. qemu-ga sends no reply on success, so this
    /// returns once the request is written; watch QMP's `SHUTDOWN` event or
    /// the QEMU process to know it happened.
    pub async fn shutdown(&self, mode: GuestShutdownMode, timeout: Duration) -> Result<(), Error> {
        let args = serde_json::to_value(qapi::qga::guest_shutdown { mode: Some(mode) })
            .map_err(|e| Error::Protocol(format!("cannot encode guest-shutdown: {e}")))?;
        self.execute_no_reply("guest-shutdown", Some(args), timeout)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixListener;

    const T: Duration = Duration::from_secs(2);

    /// What the fake agent writes back for one request.
    enum Out {
        Line(Value),
        Delimited(Value),
        Close,
    }

    type Handler = Box<dyn FnMut(usize, &Value) -> Vec<Out> + Send>;

    struct FakeAgent {
        path: PathBuf,
        seen: Arc<std::sync::Mutex<Vec<(usize, Value)>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for FakeAgent {
        fn drop(&mut self) {
            self.task.abort();
            let _ = std::fs::remove_file(&self.path);
        }
    }

    fn sock_path() -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        std::env::temp_dir().join(format!(
            "vbqemu-fakega-{}-{}.sock",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// The usual qemu-ga answer to a sync: `0xFF` then `{"return": id}`.
    fn sync_reply(req: &Value) -> Out {
        Out::Delimited(json!({"return": req["arguments"]["id"]}))
    }

    fn reply(req: &Value, ret: Value) -> Out {
        match req.get("id") {
            Some(id) => Out::Line(json!({"return": ret, "id": id})),
            None => Out::Line(json!({"return": ret})),
        }
    }

    /// A fake qemu-ga on a unix socket. Like the real one it answers a `0xFF`
    /// byte with a JSON parse error; everything else is up to `handler`,
    /// called with the connection number and each request.
    fn fake_agent(mut handler: Handler) -> FakeAgent {
        let path = sock_path();
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).expect("bind");
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            let mut conn_no = 0;
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                'conn: loop {
                    let n = match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=pos).collect();
                        let mut body = &line[..];
                        let mut out = Vec::new();
                        if let Some(p) = body.iter().rposition(|&b| b == 0xFF) {
                            out.push(Out::Line(json!({"error": {"class": "GenericError", "desc": "JSON parse error, stray '\\uFFFD'"}})));
                            body = &body[p + 1..];
                        }
                        let Ok(req) = serde_json::from_slice::<Value>(body) else {
                            continue;
                        };
                        seen2.lock().expect("lock").push((conn_no, req.clone()));
                        out.extend(handler(conn_no, &req));
                        for o in out {
                            let bytes = match o {
                                Out::Line(v) => format!("{v}\n").into_bytes(),
                                Out::Delimited(v) => {
                                    let mut b = vec![0xFF];
                                    b.extend(format!("{v}\n").into_bytes());
                                    b
                                }
                                Out::Close => break 'conn,
                            };
                            if s.write_all(&bytes).await.is_err() {
                                break 'conn;
                            }
                        }
                    }
                }
                conn_no += 1;
            }
        });
        FakeAgent { path, seen, task }
    }

    fn commands(fake: &FakeAgent) -> Vec<String> {
        fake.seen
            .lock()
            .expect("lock")
            .iter()
            .map(|(_, v)| v["execute"].as_str().unwrap_or("?").to_owned())
            .collect()
    }

    /// A well-behaved agent for the common commands.
    fn normal(_conn: usize, req: &Value) -> Vec<Out> {
        match req["execute"].as_str() {
            Some(SYNC_COMMAND) => vec![sync_reply(req)],
            Some("guest-ping") => vec![reply(req, json!({}))],
            Some("guest-fsfreeze-status") => vec![reply(req, json!("thawed"))],
            Some("guest-get-host-name") => vec![reply(req, json!({"host-name": "vbguest"}))],
            Some("guest-shutdown") => vec![],
            _ => vec![Out::Line(
                json!({"error": {"class": "CommandNotFound", "desc": "nope"}}),
            )],
        }
    }

    // Fake agent: the real qemu-ga does send the parse-error preamble, but the
    // stale replies and foreign sync answers mixed in before ours cannot be
    // staged on cue with a real guest.
    #[tokio::test]
    async fn skips_preamble_and_stale_output_before_sync() {
        let fake = fake_agent(Box::new(|_, req| match req["execute"].as_str() {
            Some(SYNC_COMMAND) => vec![
                Out::Line(json!({"return": 1})),
                Out::Delimited(json!({"return": 12345})),
                Out::Line(json!({"return": {}, "id": 99})),
                sync_reply(req),
            ],
            _ => normal(0, req),
        }));
        let agent = Agent::new(&fake.path);
        agent.ping(T).await.expect("ping");
        assert_eq!(agent.get_host_name(T).await.expect("host name"), "vbguest");
        assert_eq!(
            commands(&fake),
            [
                SYNC_COMMAND,
                "guest-ping",
                SYNC_COMMAND,
                "guest-get-host-name"
            ]
        );
    }

    // Fake agent: a reply that never comes and then arrives late cannot be
    // produced on cue by a real guest.
    #[tokio::test]
    async fn timeout_then_late_reply_is_discarded() {
        let late: Arc<std::sync::Mutex<Option<Value>>> = Arc::default();
        let late2 = late.clone();
        let fake = fake_agent(Box::new(move |_, req| match req["execute"].as_str() {
            Some("guest-fsfreeze-freeze") => {
                // no answer now; remember it
                *late2.lock().expect("lock") = Some(req.clone());
                vec![]
            }
            Some(SYNC_COMMAND) => {
                let mut out = Vec::new();
                if let Some(old) = late2.lock().expect("lock").take() {
                    out.push(reply(&old, json!(1)));
                }
                out.push(sync_reply(req));
                out
            }
            _ => normal(0, req),
        }));
        let agent = Agent::new(&fake.path);
        let short = Duration::from_millis(150);
        match agent.fsfreeze_freeze(short).await {
            Err(Error::Timeout { command, after }) => {
                assert_eq!(command, "guest-fsfreeze-freeze");
                assert_eq!(after, short);
            }
            other => panic!("expected timeout, got {other:?}"),
        }
        assert!(late.lock().expect("lock").is_some());
        // the late `{"return": 1}` must not be taken as the status
        assert_eq!(
            agent.fsfreeze_status(T).await.expect("status"),
            GuestFsfreezeStatus::thawed
        );
        assert!(late.lock().expect("lock").is_none(), "late reply was sent");
    }

    // Fake agent: an old agent that echoes no ids, whose late reply arrives
    // while the next command is already waiting (after our sync answer). Only
    // a fake can order output like that.
    #[tokio::test]
    async fn stale_reply_with_foreign_id_is_skipped() {
        let fake = fake_agent(Box::new(|_, req| match req["execute"].as_str() {
            Some("guest-ping") => vec![
                Out::Line(json!({"return": 7, "id": 424242})),
                Out::Delimited(json!({"return": 5})),
                reply(req, json!({})),
            ],
            _ => normal(0, req),
        }));
        let agent = Agent::new(&fake.path);
        agent.ping(T).await.expect("ping");
    }

    // Fake agent: a paused guest is the real case, but a fake shows exactly
    // that the command is not sent when the handshake is not answered.
    #[tokio::test]
    async fn unanswered_sync_times_out_without_sending_the_command() {
        let fake = fake_agent(Box::new(|_, _| vec![]));
        let agent = Agent::new(&fake.path);
        let short = Duration::from_millis(150);
        match agent.fsfreeze_freeze(short).await {
            Err(Error::Timeout { command, .. }) => assert_eq!(command, SYNC_COMMAND),
            other => panic!("expected sync timeout, got {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(commands(&fake), [SYNC_COMMAND]);
    }

    // Fake agent: dropping the connection right after a command arrives is not
    // something a real QEMU does on cue.
    #[tokio::test]
    async fn disconnect_mid_command_then_reconnect() {
        let fake = fake_agent(Box::new(|conn, req| {
            match (conn, req["execute"].as_str()) {
                (0, Some("guest-ping")) => vec![Out::Close],
                _ => normal(conn, req),
            }
        }));
        let agent = Agent::new(&fake.path);
        assert!(matches!(agent.ping(T).await, Err(Error::Disconnected)));
        // the next command opens a new connection
        agent.ping(T).await.expect("ping after reconnect");
        let conns: Vec<usize> = fake
            .seen
            .lock()
            .expect("lock")
            .iter()
            .map(|(c, _)| *c)
            .collect();
        assert_eq!(conns, [0, 0, 1, 1]);
    }

    // Fake agent: a peer that answers the sync but reports an error.
    #[tokio::test]
    async fn agent_error_and_no_reply_command() {
        let fake = fake_agent(Box::new(normal));
        let agent = Agent::connect(&fake.path, T).await.expect("connect");
        match agent.execute_raw("guest-bogus", None, T).await {
            Err(Error::Qemu { class, desc }) => {
                assert_eq!(class, "CommandNotFound");
                assert_eq!(desc, "nope");
            }
            other => panic!("{other:?}"),
        }
        agent
            .shutdown(GuestShutdownMode::Powerdown, T)
            .await
            .expect("shutdown");
        agent.ping(T).await.expect("ping after shutdown request");
        let seen = fake.seen.lock().expect("lock").clone();
        let shutdown = seen
            .iter()
            .find(|(_, v)| v["execute"] == "guest-shutdown")
            .expect("shutdown sent");
        assert_eq!(shutdown.1["arguments"], json!({"mode": "powerdown"}));
    }

    /// The connection number and command of each request the fake saw.
    fn seen(fake: &FakeAgent) -> Vec<(usize, String)> {
        fake.seen
            .lock()
            .expect("lock")
            .iter()
            .map(|(c, v)| (*c, v["execute"].as_str().unwrap_or("?").to_owned()))
            .collect()
    }

    // Fake agent: a connection that never delivers (QEMU's first connection after one was
    // closed while the guest was stopped) is not something to stage on cue with QEMU.
    #[tokio::test]
    async fn unanswered_connection_is_replaced() {
        let fake = fake_agent(Box::new(|conn, req| match conn {
            0 => vec![],
            _ => normal(conn, req),
        }));
        let agent = Agent::new(&fake.path);
        let short = Duration::from_millis(150);
        assert!(matches!(
            agent.fsfreeze_status(short).await,
            Err(Error::Timeout { .. })
        ));
        assert_eq!(
            agent
                .fsfreeze_status(T)
                .await
                .expect("over a new connection"),
            GuestFsfreezeStatus::thawed
        );
        assert_eq!(
            seen(&fake),
            [
                (0, SYNC_COMMAND.to_owned()),
                (1, SYNC_COMMAND.to_owned()),
                (1, "guest-fsfreeze-status".to_owned())
            ]
        );
    }

    // Fake agent: a stalled guest that answers nothing, then everything in order (what a
    // paused guest does after `cont`), scripted so the order is exact.
    #[tokio::test]
    async fn thaw_is_sent_to_a_stalled_agent_and_its_connection_kept() {
        let stalled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stalled.clone();
        let fake = fake_agent(Box::new(move |conn, req| {
            if s2.load(Ordering::SeqCst) {
                return vec![];
            }
            match req["execute"].as_str() {
                Some("guest-fsfreeze-freeze") => {
                    // the guest stops right after the freeze arrives
                    s2.store(true, Ordering::SeqCst);
                    vec![]
                }
                _ => normal(conn, req),
            }
        }));
        let agent = Agent::new(&fake.path);
        let short = Duration::from_millis(300);
        agent.ping(T).await.expect("ping");
        let e = agent
            .execute_tracked("guest-fsfreeze-freeze", None, short)
            .await
            .expect_err("stalled");
        assert!(e.sent);
        let e = agent.thaw_always(short).await.expect_err("no answer");
        assert!(e.sent, "the thaw was written: {e:?}");
        // a check that goes unanswered keeps the connection that holds the thaw
        assert!(agent.fsfreeze_status(short).await.is_err());
        let conns: Vec<usize> = seen(&fake).iter().map(|(c, _)| *c).collect();
        assert!(
            conns.iter().all(|c| *c == 0),
            "one connection: {:?}",
            seen(&fake)
        );
        let cmds: Vec<String> = seen(&fake).into_iter().map(|(_, c)| c).collect();
        assert_eq!(
            cmds,
            [
                SYNC_COMMAND,
                "guest-ping",
                SYNC_COMMAND,
                "guest-fsfreeze-freeze",
                SYNC_COMMAND,
                "guest-fsfreeze-thaw",
                SYNC_COMMAND
            ]
        );
    }

    // Fake agent: as above, on a connection that has never answered: one fresh connection
    // is tried, then the thaw goes regardless.
    #[tokio::test]
    async fn thaw_tries_one_fresh_connection_then_sends_anyway() {
        let fake = fake_agent(Box::new(|_, _| vec![]));
        let agent = Agent::new(&fake.path);
        let e = agent
            .thaw_always(Duration::from_millis(600))
            .await
            .expect_err("no answer");
        assert!(e.sent);
        assert_eq!(
            seen(&fake),
            [
                (0, SYNC_COMMAND.to_owned()),
                (1, SYNC_COMMAND.to_owned()),
                (1, "guest-fsfreeze-thaw".to_owned())
            ]
        );
    }

    #[tokio::test]
    async fn sync_ids_are_fresh() {
        let a = fresh_sync_id();
        let b = fresh_sync_id();
        assert_ne!(a, b);
        assert!(a > 0 && a < (1 << 53));
    }

    #[tokio::test]
    async fn missing_socket_is_io_error() {
        let agent = Agent::new(sock_path());
        assert!(matches!(agent.ping(T).await, Err(Error::Io(_))));
    }
}
