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
//! run later (a paused guest runs it after `cont`).

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

/// A guest-agent client. Connects lazily and reconnects after the connection
/// is lost; commands are serialized.
#[derive(Debug)]
pub struct Agent {
    path: PathBuf,
    conn: Mutex<Option<Conn>>,
}

#[derive(Debug)]
struct Conn {
    transport: Transport,
    replies: mpsc::UnboundedReceiver<Reply>,
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
        Ok(Conn { transport, replies })
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
                return Ok(());
            }
            // the parse error for our 0xFF, or leftovers from earlier commands
            tracing::debug!(skipped = ?r, "skipping agent output before sync reply");
        }
    }

    async fn command(
        &mut self,
        name: &str,
        args: Option<Value>,
        want_reply: bool,
        deadline: Instant,
        after: Duration,
    ) -> Result<Option<Value>, Error> {
        self.sync(deadline, after).await?;
        let id = self.transport.next_id();
        self.write(command_line(name, args, Some(id))?, name, deadline, after)
            .await?;
        if !want_reply {
            return Ok(None);
        }
        loop {
            let r = self.next_reply(name, deadline, after).await?;
            let stale = r.delimited || r.id.as_ref().is_some_and(|v| v.as_u64() != Some(id));
            if stale {
                tracing::debug!(skipped = ?r, "skipping stale agent reply");
                continue;
            }
            return r.result.map(Some).map_err(Error::from);
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
        }
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
        let deadline = Instant::now() + timeout;
        let mut slot = self.lock_conn(name, deadline, timeout).await?;
        let Some(conn) = slot.as_mut() else {
            return Err(Error::Disconnected);
        };
        let result = conn
            .command(name, args, want_reply, deadline, timeout)
            .await;
        if matches!(result, Err(Error::Disconnected | Error::Io(_))) {
            *slot = None;
        }
        result
    }

    /// Only the sync handshake: proves the agent is alive and answering.
    pub async fn sync(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let mut slot = self.lock_conn(SYNC_COMMAND, deadline, timeout).await?;
        let Some(conn) = slot.as_mut() else {
            return Err(Error::Disconnected);
        };
        let result = conn.sync(deadline, timeout).await;
        if matches!(result, Err(Error::Disconnected | Error::Io(_))) {
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
