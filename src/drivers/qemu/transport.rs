//! Line-delimited JSON transport shared by the QMP and guest-agent clients.
//!
//! One reader task splits the byte stream into lines and sorts each line into
//! an event (sent, in arrival order, to an unbounded channel) or a reply.
//! Replies whose `id` matches a pending [`Transport::request`] complete that
//! request; any other reply is dropped (QMP: a late answer to a request that
//! timed out) or, when the transport was made with [`Transport::with_reply_queue`],
//! queued for a client that does its own matching (the guest agent).
//!
//! One writer task writes whole lines, so a caller that gives up (timeout,
//! cancellation) never leaves half a command on the wire. The socket is never
//! half-closed: both tasks share the whole stream and it is closed only when
//! both are gone.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Longest line accepted from the peer; a longer one ends the connection.
pub const MAX_LINE: usize = 64 * 1024 * 1024;

/// The byte qemu-ga puts before the reply to `guest-sync-delimited` (and the
/// byte a client sends to make qemu-ga reset its JSON parser).
pub const SYNC_DELIMITER: u8 = 0xFF;

/// Errors of the QMP and guest-agent clients.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No reply within the time allowed. The request is forgotten: a reply
    /// that arrives later is discarded and the connection stays usable.
    #[error("no reply to {command} within {after:?}")]
    Timeout { command: String, after: Duration },
    /// The connection is gone (closed by the peer, or failed); every pending
    /// request fails with this and the event channel is closed.
    #[error("connection to QEMU closed")]
    Disconnected,
    /// QEMU (or qemu-ga) answered with an error; `class` and `desc` are its own.
    #[error("QEMU error {class}: {desc}")]
    Qemu { class: String, desc: String },
    /// The peer sent something this client cannot use.
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// An event's timestamp as QEMU sends it (host wall clock).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp {
    pub seconds: i64,
    pub microseconds: i64,
}

/// An asynchronous message from QEMU, passed through raw.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: String,
    /// The event's `data` member; `{}` when QEMU sent none.
    pub data: Value,
    pub timestamp: Timestamp,
    /// The `data` member as QEMU wrote it, without the whitespace between tokens (libvirt
    /// hands it on so, in QEMU's member order); `None` when QEMU sent none.
    pub details: Option<String>,
}

impl Event {
    /// The event decoded as the `qapi` crate's generated type, or `None` when
    /// the name differs or the data does not fit that (QEMU 9.1) schema; the
    /// raw [`Event::data`] is always there to fall back to.
    pub fn decode<E: qapi::Event>(&self) -> Option<E> {
        if self.name != E::NAME {
            return None;
        }
        serde_json::from_value(self.data.clone()).ok()
    }
}

/// Receiving end of a connection's events, in the order QEMU sent them.
/// `recv` returns `None` once the connection is gone and every event read
/// before that has been received.
#[derive(Debug)]
pub struct Events {
    rx: mpsc::UnboundedReceiver<Event>,
}

impl Events {
    /// Events that come from elsewhere than a socket: a test's fake monitor.
    #[cfg(test)]
    pub(crate) fn channel() -> (mpsc::UnboundedSender<Event>, Events) {
        let (tx, rx) = mpsc::unbounded_channel();
        (tx, Events { rx })
    }

    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// An event already received, without waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }

    /// The next event named `name`, skipping (and dropping) others, within `timeout`.
    pub async fn wait_for(&mut self, name: &str, timeout: Duration) -> Result<Event, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Err(_) => {
                    return Err(Error::Timeout {
                        command: format!("event {name}"),
                        after: timeout,
                    });
                }
                Ok(None) => return Err(Error::Disconnected),
                Ok(Some(ev)) if ev.name == name => return Ok(ev),
                Ok(Some(_)) => {}
            }
        }
    }
}

/// QEMU's error member of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    pub class: String,
    pub desc: String,
}

impl From<ErrorReply> for Error {
    fn from(e: ErrorReply) -> Self {
        Error::Qemu {
            class: e.class,
            desc: e.desc,
        }
    }
}

/// A reply that matched no pending request (only seen with a reply queue).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The `id` the peer echoed, if any.
    pub id: Option<Value>,
    /// The line was preceded by [`SYNC_DELIMITER`].
    pub delimited: bool,
    pub result: Result<Value, ErrorReply>,
}

type Pending = oneshot::Sender<Result<Value, Error>>;
/// Bytes to write, a file descriptor to pass along with them, and where to say it is done.
type WriteJob = (Vec<u8>, Option<OwnedFd>, oneshot::Sender<Result<(), Error>>);

#[derive(Default)]
struct State {
    pending: HashMap<u64, Pending>,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Events read so far; an event precedes the reply of the command that caused it, so
    /// after a reply this counts every event the command caused (see [`Transport::events_received`]).
    events_seen: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // a poisoned lock only means another thread panicked while holding it;
        // the map itself is still consistent
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the connection dead and fails every pending request.
    fn close(&self) {
        let pending: Vec<Pending> = {
            let mut st = self.lock();
            st.closed = true;
            st.pending.drain().map(|(_, tx)| tx).collect()
        };
        for tx in pending {
            let _ = tx.send(Err(Error::Disconnected));
        }
    }
}

/// Removes a pending entry when the request is done, timed out or cancelled.
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.shared.lock().pending.remove(&self.id);
    }
}

/// A connection to a QMP monitor or a guest agent.
pub struct Transport {
    shared: Arc<Shared>,
    /// The socket, while the reader or writer task holds it.
    stream: Weak<UnixStream>,
    writes: mpsc::UnboundedSender<WriteJob>,
    next_id: AtomicU64,
    tasks: [JoinHandle<()>; 2],
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Starts the reader and writer tasks on `stream`. `leftover` holds bytes
    /// already read from it (after a greeting, say). Replies that match no
    /// pending request are dropped.
    pub fn new(stream: UnixStream, leftover: Vec<u8>) -> (Transport, Events) {
        let (t, events, _) = Self::start(stream, leftover, false);
        (t, events)
    }

    /// Like [`Transport::new`], but replies that match no pending request are
    /// queued on the returned receiver instead of being dropped.
    pub fn with_reply_queue(
        stream: UnixStream,
        leftover: Vec<u8>,
    ) -> (Transport, Events, mpsc::UnboundedReceiver<Reply>) {
        let (t, events, replies) = Self::start(stream, leftover, true);
        let replies = replies.unwrap_or_else(|| mpsc::unbounded_channel().1);
        (t, events, replies)
    }

    fn start(
        stream: UnixStream,
        leftover: Vec<u8>,
        queue: bool,
    ) -> (Transport, Events, Option<mpsc::UnboundedReceiver<Reply>>) {
        let stream = Arc::new(stream);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            events_seen: AtomicU64::new(0),
        });
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (replies_tx, replies_rx) = if queue {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let (writes_tx, writes_rx) = mpsc::unbounded_channel();
        let (gone_tx, gone_rx) = watch::channel(());
        let reader = tokio::spawn(read_loop(
            stream.clone(),
            leftover,
            shared.clone(),
            events_tx,
            replies_tx,
            gone_tx,
        ));
        let writer = tokio::spawn(write_loop(
            stream.clone(),
            writes_rx,
            shared.clone(),
            gone_rx,
        ));
        (
            Transport {
                shared,
                stream: Arc::downgrade(&stream),
                writes: writes_tx,
                next_id: AtomicU64::new(1),
                tasks: [reader, writer],
            },
            Events { rx: events_rx },
            replies_rx,
        )
    }

    /// Whether the connection is known to be gone.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// Sends `{"execute": command, "arguments": arguments, "id": <unique>}` and
    /// waits up to `timeout` (writing included) for the reply with that id.
    pub async fn request(
        &self,
        command: &str,
        arguments: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, Error> {
        self.exchange(command, arguments, None, timeout).await
    }

    /// Sends a command with `fd` attached and waits for its reply, like [`Transport::request`].
    pub async fn request_with_fd(
        &self,
        command: &str,
        arguments: Option<Value>,
        fd: OwnedFd,
        timeout: Duration,
    ) -> Result<Value, Error> {
        self.exchange(command, arguments, Some(fd), timeout).await
    }

    async fn exchange(
        &self,
        command: &str,
        arguments: Option<Value>,
        fd: Option<OwnedFd>,
        timeout: Duration,
    ) -> Result<Value, Error> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let line = command_line(command, arguments, Some(id))?;
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.shared.lock();
            if st.closed {
                return Err(Error::Disconnected);
            }
            st.pending.insert(id, tx);
        }
        let _guard = PendingGuard {
            shared: &self.shared,
            id,
        };
        let exchange = async {
            self.write_with(line, fd).await?;
            rx.await.unwrap_or(Err(Error::Disconnected))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => {
                tracing::debug!(command, id, ?timeout, "request timed out");
                Err(Error::Timeout {
                    command: command.to_owned(),
                    after: timeout,
                })
            }
        }
    }

    /// Queues `bytes` for writing and waits until they are written. The write
    /// itself is not cancelled when the caller gives up waiting.
    pub async fn write(&self, bytes: Vec<u8>) -> Result<(), Error> {
        self.write_with(bytes, None).await
    }

    /// Like [`Transport::write`], passing `fd` along (`SCM_RIGHTS`), as QMP's `getfd` wants.
    pub async fn write_with(&self, bytes: Vec<u8>, fd: Option<OwnedFd>) -> Result<(), Error> {
        let (ack_tx, ack_rx) = oneshot::channel();
        self.writes
            .send((bytes, fd, ack_tx))
            .map_err(|_| Error::Disconnected)?;
        ack_rx.await.unwrap_or(Err(Error::Disconnected))
    }

    /// A second descriptor for the connection's socket (to hand to another process, which
    /// then keeps the connection open); `Disconnected` once it is gone.
    pub fn dup_fd(&self) -> Result<OwnedFd, Error> {
        if self.is_closed() {
            return Err(Error::Disconnected);
        }
        let stream = self.stream.upgrade().ok_or(Error::Disconnected)?;
        Ok(stream.as_fd().try_clone_to_owned()?)
    }

    /// How many events were read so far, counting those already passed on.
    pub fn events_received(&self) -> u64 {
        self.shared.events_seen.load(Ordering::SeqCst)
    }

    /// A fresh number for the `id` member of a message.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Serializes one command line (with a trailing newline).
pub fn command_line(
    command: &str,
    arguments: Option<Value>,
    id: Option<u64>,
) -> Result<Vec<u8>, Error> {
    let mut msg = Map::new();
    msg.insert("execute".into(), Value::String(command.to_owned()));
    if let Some(args) = arguments {
        msg.insert("arguments".into(), args);
    }
    if let Some(id) = id {
        msg.insert("id".into(), Value::from(id));
    }
    let mut line = serde_json::to_vec(&Value::Object(msg))
        .map_err(|e| Error::Protocol(format!("cannot encode {command}: {e}")))?;
    line.push(b'\n');
    Ok(line)
}

/// Reads one line (without its newline) from `stream` before a transport owns
/// it, e.g. QMP's greeting. Returns the line and whatever was read past it.
/// Not receiving it by `deadline` is `Timeout { command: what, after }`.
pub async fn read_first_line(
    stream: &UnixStream,
    what: &str,
    deadline: Instant,
    after: Duration,
) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 8192];
    loop {
        if let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let rest = buf.split_off(pos + 1);
            buf.truncate(pos);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_LINE {
            return Err(Error::Protocol("first line too long".into()));
        }
        match tokio::time::timeout_at(deadline, stream.readable()).await {
            Err(_) => {
                return Err(Error::Timeout {
                    command: what.to_owned(),
                    after,
                });
            }
            Ok(r) => r?,
        }
        match stream.try_read(&mut chunk) {
            Ok(0) => return Err(Error::Disconnected),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(Error::Io(e)),
        }
    }
}

/// Write the first bytes of `bytes` together with `fd`, returning how many went.
async fn send_with_fd(stream: &UnixStream, bytes: &[u8], fd: &OwnedFd) -> io::Result<usize> {
    loop {
        stream.writable().await?;
        let r = stream.try_io(tokio::io::Interest::WRITABLE, || {
            let raw = fd.as_raw_fd();
            let mut iov = libc::iovec {
                iov_base: bytes.as_ptr() as *mut libc::c_void,
                iov_len: bytes.len(),
            };
            // SAFETY: CMSG_SPACE only computes a size.
            let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) };
            let mut cbuf = vec![0u8; space as usize];
            // SAFETY: msghdr is plain data; every pointer set below outlives the call.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
            msg.msg_controllen = space as _;
            // SAFETY: msg_control points at a buffer of CMSG_SPACE(sizeof(int)) bytes, so the
            // first header exists and has room for one descriptor.
            unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(&msg);
                (*cmsg).cmsg_level = libc::SOL_SOCKET;
                (*cmsg).cmsg_type = libc::SCM_RIGHTS;
                (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut libc::c_int, raw);
            }
            // SAFETY: a valid socket and a message built above.
            let n = unsafe { libc::sendmsg(stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match r {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

async fn write_job(stream: &UnixStream, bytes: &[u8], fd: Option<&OwnedFd>) -> io::Result<()> {
    let sent = match fd {
        Some(fd) if !bytes.is_empty() => send_with_fd(stream, bytes, fd).await?,
        _ => 0,
    };
    write_all(stream, &bytes[sent..]).await
}

async fn write_all(stream: &UnixStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn write_loop(
    stream: Arc<UnixStream>,
    mut jobs: mpsc::UnboundedReceiver<WriteJob>,
    shared: Arc<Shared>,
    mut reader_gone: watch::Receiver<()>,
) {
    loop {
        // the reader ending (peer closed, or a protocol violation) ends the writer
        // too, so that the last reference to the socket goes and it is closed
        let job = tokio::select! {
            job = jobs.recv() => job,
            _ = reader_gone.changed() => None,
        };
        let Some((bytes, fd, ack)) = job else { break };
        let result = tokio::select! {
            r = write_job(&stream, &bytes, fd.as_ref()) => r.map_err(Error::Io),
            _ = reader_gone.changed() => Err(Error::Disconnected),
        };
        let failed = result.is_err();
        if let Err(e) = &result {
            tracing::debug!(error = %e, "write failed; closing connection");
        }
        let _ = ack.send(result);
        if failed {
            break;
        }
    }
    shared.close();
    // fail writes already queued; later ones see the closed channel
    jobs.close();
    while let Ok((_, _, ack)) = jobs.try_recv() {
        let _ = ack.send(Err(Error::Disconnected));
    }
}

async fn read_loop(
    stream: Arc<UnixStream>,
    mut buf: Vec<u8>,
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<Event>,
    replies: Option<mpsc::UnboundedSender<Reply>>,
    _gone: watch::Sender<()>,
) {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut scanned = 0;
    loop {
        while let Some(pos) = buf[scanned..].iter().position(|&b| b == b'\n') {
            let end = scanned + pos;
            handle_line(&buf[..end], &shared, &events, replies.as_ref());
            buf.drain(..=end);
            scanned = 0;
        }
        scanned = buf.len();
        if buf.len() > MAX_LINE {
            tracing::warn!(
                len = buf.len(),
                "line from peer too long; closing connection"
            );
            break;
        }
        if let Err(e) = stream.readable().await {
            tracing::debug!(error = %e, "read failed; closing connection");
            break;
        }
        match stream.try_read(&mut chunk) {
            Ok(0) => {
                tracing::debug!("peer closed the connection");
                break;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                tracing::debug!(error = %e, "read failed; closing connection");
                break;
            }
        }
    }
    shared.close();
    // dropping `events` and `replies` closes both channels; dropping `_gone`
    // stops the writer
}

/// The index just past the JSON string that opens at `i`.
fn string_end(t: &[u8], mut i: usize) -> usize {
    i += 1;
    while i < t.len() {
        match t[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    t.len()
}

/// The text of member `key` of the JSON object `t` (valid JSON, already parsed), with the
/// whitespace between its tokens removed.
fn compact_member(t: &[u8], key: &[u8]) -> Option<String> {
    let ws = |i: &mut usize| {
        while t.get(*i).is_some_and(u8::is_ascii_whitespace) {
            *i += 1;
        }
    };
    let mut i = t.iter().position(|&b| b == b'{')? + 1;
    loop {
        ws(&mut i);
        if t.get(i) != Some(&b'"') {
            return None;
        }
        let end = string_end(t, i);
        let name = &t[i + 1..end.saturating_sub(1)];
        i = end;
        ws(&mut i);
        i += 1; // the colon
        ws(&mut i);
        // the value: up to the comma or brace that closes it at this level
        let (start, mut depth, mut out) = (i, 0i32, Vec::new());
        while i < t.len() {
            match t[i] {
                b'"' => {
                    let e = string_end(t, i);
                    out.extend_from_slice(&t[i..e]);
                    i = e;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth == 0 => break,
                b'}' | b']' => depth -= 1,
                b',' if depth == 0 => break,
                b if b.is_ascii_whitespace() => {
                    i += 1;
                    continue;
                }
                _ => {}
            }
            out.push(t[i]);
            i += 1;
        }
        if name == key {
            return String::from_utf8(out).ok();
        }
        if i == start || t.get(i) != Some(&b',') {
            return None;
        }
        i += 1;
    }
}

/// Sorts one line into an event or a reply. Never fails: anything unusable is
/// logged and skipped.
fn handle_line(
    line: &[u8],
    shared: &Shared,
    events: &mpsc::UnboundedSender<Event>,
    replies: Option<&mpsc::UnboundedSender<Reply>>,
) {
    let (delimited, line) = match line.iter().rposition(|&b| b == SYNC_DELIMITER) {
        Some(pos) => (true, &line[pos + 1..]),
        None => (false, line),
    };
    if line.iter().all(|b| b.is_ascii_whitespace()) {
        return;
    }
    let mut obj = match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(obj)) => obj,
        Ok(other) => {
            tracing::warn!(message = %other, "ignoring non-object message from peer");
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, line = %String::from_utf8_lossy(line), "ignoring unparsable line from peer");
            return;
        }
    };

    if let Some(Value::String(name)) = obj.remove("event") {
        let data = match obj.remove("data") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(d) => d,
        };
        let timestamp = obj
            .remove("timestamp")
            .and_then(|t| serde_json::from_value(t).ok())
            .unwrap_or_default();
        tracing::trace!(event = %name, "event");
        shared.events_seen.fetch_add(1, Ordering::SeqCst);
        // a dropped receiver just means nobody listens
        let _ = events.send(Event {
            name,
            data,
            timestamp,
            details: compact_member(line, b"data"),
        });
        return;
    }

    let result = if let Some(ret) = obj.remove("return") {
        Ok(ret)
    } else if let Some(err) = obj.remove("error") {
        Err(error_reply(err))
    } else {
        let message = Value::Object(obj);
        tracing::debug!(%message, "ignoring message that is neither event nor reply");
        return;
    };
    let id = obj.remove("id");

    if let Some(num) = id.as_ref().and_then(Value::as_u64) {
        let waiter = shared.lock().pending.remove(&num);
        if let Some(tx) = waiter {
            let _ = tx.send(result.map_err(Error::from));
            return;
        }
    }
    match replies {
        Some(q) => {
            let _ = q.send(Reply {
                id,
                delimited,
                result,
            });
        }
        None => tracing::debug!(?id, "dropping reply that matches no pending request"),
    }
}

fn error_reply(err: Value) -> ErrorReply {
    let field = |name: &str| err.get(name).and_then(Value::as_str).map(str::to_owned);
    match (field("class"), field("desc")) {
        (Some(class), Some(desc)) => ErrorReply { class, desc },
        (class, desc) => ErrorReply {
            class: class.unwrap_or_else(|| "Unknown".into()),
            desc: desc.unwrap_or_else(|| err.to_string()),
        },
    }
}

/// The `arguments` of a command typed by the `qapi` crate: `None` when it has none.
pub fn command_arguments<C: serde::Serialize>(
    name: &str,
    command: &C,
) -> Result<Option<Value>, Error> {
    match serde_json::to_value(command) {
        Ok(Value::Object(m)) if m.is_empty() => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(e) => Err(Error::Protocol(format!("cannot encode {name}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn event_data_is_kept_compact_in_qemus_order() {
        let line = br#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "X", "data": {"z": 1, "a": {"s": "a, b }", "l": [1, 2]}}}"#;
        assert_eq!(
            super::compact_member(line, b"data").as_deref(),
            Some(r#"{"z":1,"a":{"s":"a, b }","l":[1,2]}}"#)
        );
        let line = br#"{"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 2}}"#;
        assert_eq!(super::compact_member(line, b"data"), None);
        let line = br#"{"event": "Q\"x", "data": {"offset": -5}}"#;
        assert_eq!(
            super::compact_member(line, b"data").as_deref(),
            Some(r#"{"offset":-5}"#)
        );
    }

    use super::*;
    use serde_json::json;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    const T: Duration = Duration::from_secs(2);

    async fn next_request(r: &mut BufReader<tokio::net::unix::OwnedReadHalf>) -> Value {
        let mut line = String::new();
        r.read_line(&mut line).await.expect("read");
        serde_json::from_str(&line).expect("json")
    }

    // Fake peer: garbage of every kind in the stream. No real QEMU sends this;
    // the reader must survive it and keep serving requests.
    #[tokio::test]
    async fn survives_garbage() {
        let (ours, theirs) = UnixStream::pair().expect("pair");
        let (t, mut events) = Transport::new(ours, Vec::new());
        let (r, mut w) = theirs.into_split();
        let mut r = BufReader::new(r);
        let server = tokio::spawn(async move {
            let req = next_request(&mut r).await;
            let junk: &[&[u8]] = &[
                b"not json\n",
                b"\xc3\x28\xa0\xa1 invalid utf-8\n",
                b"[1,2,3]\n",
                b"42\n",
                b"\"str\"\n",
                b"{}\n",
                b"{\"return\": 1}\n",
                b"{\"return\": 1, \"id\": \"not-ours\"}\n",
                b"{\"return\": 1, \"id\": 999999}\n",
                b"{\"error\": 7, \"id\": 999998}\n",
                b"{\"event\": 5}\n",
                b"{\"event\": \"X\", \"data\": null, \"timestamp\": \"bad\"}\n",
                b"\r\n\n   \n",
                b"{\"return\": {\"nested\": [",
                b"1]}, \"id\": ",
            ];
            for j in junk {
                w.write_all(j).await.expect("write");
            }
            let id = req["id"].clone();
            w.write_all(format!("{id}}}\n").as_bytes())
                .await
                .expect("write");
            w.write_all(b"{\"error\": {\"class\": \"GenericError\"}, \"id\": 5}\n")
                .await
                .expect("write");
            (r, w)
        });
        let v = t.request("x", None, T).await.expect("reply");
        assert_eq!(v, json!({"nested": [1]}));
        let ev = events.recv().await.expect("event");
        assert_eq!(ev.name, "X");
        assert_eq!(ev.data, json!({}));
        assert_eq!(ev.timestamp, Timestamp::default());
        let _keep = server.await.expect("server");
        assert!(!t.is_closed());
    }

    // Fake peer: receives the descriptor the way QEMU's getfd does (SCM_RIGHTS with the
    // command's bytes) and checks it is the pipe we sent.
    #[tokio::test]
    async fn command_with_a_descriptor() {
        use std::io::{Read, Write};
        use std::os::fd::FromRawFd;
        let (ours, theirs) = UnixStream::pair().expect("pair");
        let (t, _events) = Transport::new(ours, Vec::new());
        let theirs = theirs.into_std().expect("std");
        theirs.set_nonblocking(false).expect("blocking");
        let peer = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; 4096];
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr() as *mut libc::c_void,
                iov_len: buf.len(),
            };
            let mut cbuf = vec![0u8; 64];
            // SAFETY: plain data, pointers valid for the call.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
            msg.msg_controllen = cbuf.len() as _;
            // SAFETY: a connected socket and the message above.
            let n = unsafe { libc::recvmsg(theirs.as_raw_fd(), &mut msg, 0) };
            assert!(n > 0, "recvmsg");
            // SAFETY: the kernel filled the control buffer; one SCM_RIGHTS header expected.
            let fd = unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(&msg);
                assert!(!cmsg.is_null(), "a descriptor came");
                assert_eq!((*cmsg).cmsg_type, libc::SCM_RIGHTS);
                std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::c_int)
            };
            let req: Value = serde_json::from_slice(&buf[..n as usize]).expect("json");
            // SAFETY: the descriptor was just received and is ours.
            let mut pipe_w = unsafe { std::fs::File::from_raw_fd(fd) };
            pipe_w
                .write_all(b"through")
                .expect("write to the passed pipe");
            let mut theirs = theirs;
            theirs
                .write_all(format!("{{\"return\": {{}}, \"id\": {}}}\n", req["id"]).as_bytes())
                .expect("reply");
            (req, theirs)
        });
        let mut fds = [0; 2];
        // SAFETY: a two-int array for pipe().
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: pipe() just made both descriptors.
        let (mut r, w) = unsafe {
            (
                std::fs::File::from_raw_fd(fds[0]),
                OwnedFd::from_raw_fd(fds[1]),
            )
        };
        let v = t
            .request_with_fd("getfd", Some(json!({"fdname": "x"})), w, T)
            .await
            .expect("reply");
        assert_eq!(v, json!({}));
        let (req, _keep) = peer.await.expect("peer");
        assert_eq!(req["execute"], "getfd");
        let mut got = [0u8; 7];
        r.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"through");
        assert!(t.dup_fd().is_ok());
    }

    // Fake peer: an error member without the usual fields. QEMU always sends
    // class and desc; this checks the fallback text.
    #[test]
    fn odd_error_reply() {
        let e = error_reply(json!({"desc": "boom"}));
        assert_eq!(e.class, "Unknown");
        assert_eq!(e.desc, "boom");
        let e = error_reply(json!(3));
        assert_eq!(e.desc, "3");
    }

    #[tokio::test]
    async fn too_long_line_closes() {
        // Fake peer: an endless line, which no real peer sends.
        let (ours, theirs) = UnixStream::pair().expect("pair");
        let (t, mut events) = Transport::new(ours, Vec::new());
        let writer = tokio::spawn(async move {
            let mut theirs = theirs;
            let block = vec![b'x'; 1 << 20];
            for _ in 0..(MAX_LINE >> 20) + 2 {
                if theirs.write_all(&block).await.is_err() {
                    break;
                }
            }
            theirs
        });
        assert!(events.recv().await.is_none());
        assert!(t.is_closed());
        assert!(matches!(
            t.request("x", None, T).await,
            Err(Error::Disconnected)
        ));
        drop(writer.await);
    }
}
