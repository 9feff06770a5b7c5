//! QMP monitor client: greeting, capabilities negotiation, then commands
//! matched to replies by `id`, with events passed through raw and in order.

use std::path::Path;
use std::time::Duration;

use qapi::qmp::VersionInfo;
use serde::Deserialize;
use serde_json::Value;
use tokio::net::UnixStream;
use tokio::time::Instant;

use super::transport::{Error, Events, Transport, read_first_line};

/// QMP's greeting, `{"QMP": {"version": ..., "capabilities": [...]}}`.
///
/// Own type rather than `qapi::qmp::QapiCapabilities`: that one's untagged
/// `QmpCapability` enum never matches the string `"oob"`, so its
/// `supports_oob()` is always false.
#[derive(Debug, Clone, Deserialize)]
pub struct Greeting {
    pub version: VersionInfo,
    #[serde(default)]
    pub capabilities: Vec<Value>,
}

impl Greeting {
    /// Whether QEMU offered `name` (e.g. `"oob"`) in the greeting.
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities.iter().any(|c| c.as_str() == Some(name))
    }
}

#[derive(Deserialize)]
struct GreetingLine {
    #[serde(rename = "QMP")]
    qmp: Greeting,
}

/// A negotiated QMP connection (capabilities mode has been left).
#[derive(Debug)]
pub struct Qmp {
    transport: Transport,
    greeting: Greeting,
}

impl Qmp {
    /// Connects to a QMP unix socket, reads the greeting and runs
    /// `qmp_capabilities`, all within `timeout`. Events start flowing on the
    /// returned [`Events`] right after the greeting.
    pub async fn connect(
        path: impl AsRef<Path>,
        timeout: Duration,
    ) -> Result<(Qmp, Events), Error> {
        let deadline = Instant::now() + timeout;
        let stream =
            match tokio::time::timeout_at(deadline, UnixStream::connect(path.as_ref())).await {
                Ok(s) => s?,
                Err(_) => {
                    return Err(Error::Timeout {
                        command: "connect".into(),
                        after: timeout,
                    });
                }
            };
        Self::handshake(stream, deadline, timeout).await
    }

    /// Like [`Qmp::connect`] on an already connected stream.
    pub async fn from_stream(
        stream: UnixStream,
        timeout: Duration,
    ) -> Result<(Qmp, Events), Error> {
        Self::handshake(stream, Instant::now() + timeout, timeout).await
    }

    async fn handshake(
        stream: UnixStream,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(Qmp, Events), Error> {
        let (line, rest) = read_first_line(&stream, "QMP greeting", deadline, timeout).await?;
        let GreetingLine { qmp: greeting } = serde_json::from_slice(&line).map_err(|e| {
            Error::Protocol(format!(
                "not a QMP greeting ({e}): {}",
                String::from_utf8_lossy(&line)
            ))
        })?;
        let (transport, events) = Transport::new(stream, rest);
        let remaining = deadline.saturating_duration_since(Instant::now());
        match transport
            .request(
                "qmp_capabilities",
                Some(Value::Object(Default::default())),
                remaining,
            )
            .await
        {
            Err(Error::Timeout { command, .. }) => Err(Error::Timeout {
                command,
                after: timeout,
            }),
            Err(e) => Err(e),
            Ok(_) => Ok((
                Qmp {
                    transport,
                    greeting,
                },
                events,
            )),
        }
    }

    /// The greeting QEMU sent.
    pub fn greeting(&self) -> &Greeting {
        &self.greeting
    }

    /// QEMU's version from the greeting.
    pub fn version(&self) -> &VersionInfo {
        &self.greeting.version
    }

    /// How many events were read so far (see [`Transport::events_received`]).
    pub fn events_received(&self) -> u64 {
        self.transport.events_received()
    }

    /// Whether the connection is known to be gone.
    pub fn is_closed(&self) -> bool {
        self.transport.is_closed()
    }

    /// Runs a command typed by the `qapi` crate. A reply that does not fit the
    /// generated type (its schema is QEMU 9.1's) is a [`Error::Protocol`]; use
    /// [`Qmp::execute_raw`] for such commands.
    pub async fn execute<C: qapi::qmp::QmpCommand>(
        &self,
        command: C,
        timeout: Duration,
    ) -> Result<C::Ok, Error> {
        let args = super::transport::command_arguments(C::NAME, &command)?;
        let reply = self.transport.request(C::NAME, args, timeout).await?;
        decode_reply::<C::Ok>(C::NAME, reply)
    }

    /// Runs a command that takes a file descriptor (`getfd`), passed along with it.
    pub async fn execute_with_fd(
        &self,
        command: &str,
        arguments: Option<Value>,
        fd: std::os::fd::OwnedFd,
        timeout: Duration,
    ) -> Result<Value, Error> {
        self.transport
            .request_with_fd(command, arguments, fd, timeout)
            .await
    }

    /// Runs a command by name with raw JSON arguments and returns the raw `return`.
    pub async fn execute_raw(
        &self,
        command: &str,
        arguments: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, Error> {
        self.transport.request(command, arguments, timeout).await
    }
}

pub(super) fn decode_reply<T: serde::de::DeserializeOwned>(
    command: &str,
    reply: Value,
) -> Result<T, Error> {
    serde_json::from_value::<T>(reply.clone())
        .map_err(|e| Error::Protocol(format!("unexpected reply to {command} ({e}): {reply}")))
}

#[cfg(test)]
mod tests {
    use super::super::transport::Event;
    use super::*;
    use serde_json::json;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

    const T: Duration = Duration::from_secs(2);
    const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}"#;

    struct Fake {
        r: BufReader<OwnedReadHalf>,
        w: OwnedWriteHalf,
    }

    impl Fake {
        async fn recv(&mut self) -> Value {
            let mut line = String::new();
            self.r.read_line(&mut line).await.expect("read");
            serde_json::from_str(&line).expect("request is JSON")
        }
        async fn send(&mut self, v: Value) {
            let mut b = serde_json::to_vec(&v).expect("json");
            b.push(b'\n');
            self.w.write_all(&b).await.expect("write");
        }
    }

    /// A connected client and the fake monitor's end, past capabilities negotiation.
    async fn setup() -> (Qmp, Events, Fake) {
        let (ours, theirs) = UnixStream::pair().expect("pair");
        let (r, w) = theirs.into_split();
        let mut fake = Fake {
            r: BufReader::new(r),
            w,
        };
        fake.w
            .write_all(format!("{GREETING}\n").as_bytes())
            .await
            .expect("greeting");
        let (client, fake) = tokio::join!(Qmp::from_stream(ours, T), async move {
            let req = fake.recv().await;
            assert_eq!(req["execute"], "qmp_capabilities");
            fake.send(json!({"return": {}, "id": req["id"]})).await;
            fake
        });
        let (qmp, events) = client.expect("handshake");
        (qmp, events, fake)
    }

    fn event(name: &str, data: Value) -> Value {
        json!({"event": name, "data": data, "timestamp": {"seconds": 1700000000, "microseconds": 5}})
    }

    #[tokio::test]
    async fn greeting_and_typed_command() {
        let (qmp, _events, mut fake) = setup().await;
        assert_eq!(qmp.version().qemu.major, 7);
        assert_eq!(qmp.version().qemu.minor, 2);
        assert!(qmp.greeting().has_capability("oob"));
        // the qapi crate's own greeting type misses "oob"
        let theirs: qapi::qmp::QapiCapabilities =
            serde_json::from_str(GREETING).expect("qapi greeting");
        assert!(!theirs.supports_oob());
        let (status, _) = tokio::join!(qmp.execute(qapi::qmp::query_status {}, T), async {
            let req = fake.recv().await;
            assert_eq!(req["execute"], "query-status");
            assert!(req.get("arguments").is_none());
            // 7.2 still reports "singlestep", which 9.1's StatusInfo lacks
            fake.send(json!({"return": {"status": "running", "singlestep": false, "running": true}, "id": req["id"]}))
                .await;
        });
        let status = status.expect("status");
        assert!(status.running);
    }

    // Fake monitor: QEMU always answers eventually, so a reply that never
    // comes (and then comes late) can only be staged by a fake.
    #[tokio::test]
    async fn timeout_then_late_reply_is_dropped() {
        let (qmp, _events, mut fake) = setup().await;
        let short = Duration::from_millis(100);
        let (r, first) = tokio::join!(qmp.execute_raw("slow", None, short), fake.recv());
        match r {
            Err(Error::Timeout { command, after }) => {
                assert_eq!(command, "slow");
                assert_eq!(after, short);
            }
            other => panic!("expected timeout, got {other:?}"),
        }
        let (r, ()) = tokio::join!(qmp.execute_raw("fast", None, T), async {
            let second = fake.recv().await;
            assert_ne!(first["id"], second["id"], "ids must be unique");
            // the late reply to the first command arrives first
            fake.send(json!({"return": "late", "id": first["id"]}))
                .await;
            fake.send(json!({"return": "fresh", "id": second["id"]}))
                .await;
        });
        assert_eq!(r.expect("second command"), json!("fresh"));
        // and the connection is still fine
        let (r, ()) = tokio::join!(qmp.execute_raw("third", None, T), async {
            let req = fake.recv().await;
            fake.send(json!({"return": 3, "id": req["id"]})).await;
        });
        assert_eq!(r.expect("third"), json!(3));
    }

    // Fake monitor: this QEMU sends no unknown events; a future one may.
    #[tokio::test]
    async fn unknown_and_mismatched_events_pass_through_in_order() {
        let (_qmp, mut events, mut fake) = setup().await;
        fake.send(event("STOP", json!(null))).await;
        fake.send(event("VB_FUTURE_EVENT", json!({"x": [1, 2]})))
            .await;
        // An RTC_CHANGE without qom-path, which 9.1's schema requires (reported
        // from a QEMU 7.2; Debian's 7.2.22 does send qom-path). A fake: no
        // QEMU at hand produces this shape.
        fake.send(event("RTC_CHANGE", json!({"offset": 12}))).await;
        fake.send(json!({"event": "RESUME", "timestamp": {"seconds": 1, "microseconds": 2}}))
            .await;
        let names: Vec<Event> = [
            events.recv().await,
            events.recv().await,
            events.recv().await,
            events.recv().await,
        ]
        .into_iter()
        .map(|e| e.expect("event"))
        .collect();
        assert_eq!(
            names.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
            ["STOP", "VB_FUTURE_EVENT", "RTC_CHANGE", "RESUME"]
        );
        assert_eq!(names[1].data, json!({"x": [1, 2]}));
        assert_eq!(names[2].data, json!({"offset": 12}));
        assert!(names[2].decode::<qapi::qmp::RTC_CHANGE>().is_none());
        assert!(names[0].decode::<qapi::qmp::STOP>().is_some());
        assert!(names[0].decode::<qapi::qmp::RESUME>().is_none());
        assert_eq!(names[3].timestamp.seconds, 1);
        assert_eq!(names[3].timestamp.microseconds, 2);
    }

    // Fake monitor: dropping the connection at an exact point mid-command is
    // not something a real QEMU can be made to do on cue.
    #[tokio::test]
    async fn disconnect_mid_command_fails_pending_and_closes_events() {
        let (qmp, mut events, mut fake) = setup().await;
        let (r1, r2, ()) = tokio::join!(
            qmp.execute_raw("a", None, T),
            qmp.execute_raw("b", None, T),
            async {
                fake.recv().await;
                fake.recv().await;
                fake.send(event("STOP", json!({}))).await;
                drop(fake);
            }
        );
        assert!(matches!(r1, Err(Error::Disconnected)), "{r1:?}");
        assert!(matches!(r2, Err(Error::Disconnected)), "{r2:?}");
        // events read before the loss are still delivered, then the channel ends
        assert_eq!(events.recv().await.map(|e| e.name).as_deref(), Some("STOP"));
        assert!(events.recv().await.is_none());
        assert!(qmp.is_closed());
        assert!(matches!(
            qmp.execute_raw("c", None, T).await,
            Err(Error::Disconnected)
        ));
    }

    #[tokio::test]
    async fn qemu_error_carries_class_and_desc() {
        let (qmp, _events, mut fake) = setup().await;
        let (r, ()) = tokio::join!(qmp.execute_raw("nope", None, T), async {
            let req = fake.recv().await;
            fake.send(json!({"error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}, "id": req["id"]}))
                .await;
        });
        match r {
            Err(Error::Qemu { class, desc }) => {
                assert_eq!(class, "CommandNotFound");
                assert_eq!(desc, "The command nope has not been found");
            }
            other => panic!("{other:?}"),
        }
    }

    // Fake peer: not a QMP monitor at all.
    #[tokio::test]
    async fn bad_or_missing_greeting() {
        let (ours, mut theirs) = UnixStream::pair().expect("pair");
        theirs.write_all(b"hello\n").await.expect("write");
        assert!(matches!(
            Qmp::from_stream(ours, T).await,
            Err(Error::Protocol(_))
        ));
        let (ours, theirs) = UnixStream::pair().expect("pair");
        drop(theirs);
        assert!(matches!(
            Qmp::from_stream(ours, T).await,
            Err(Error::Disconnected)
        ));
        let (ours, _theirs) = UnixStream::pair().expect("pair");
        assert!(matches!(
            Qmp::from_stream(ours, Duration::from_millis(50)).await,
            Err(Error::Timeout { .. })
        ));
    }

    // Fake monitor: a reply that does not fit the generated type.
    #[tokio::test]
    async fn mismatched_reply_is_protocol_error_and_connection_survives() {
        let (qmp, _events, mut fake) = setup().await;
        let (r, ()) = tokio::join!(qmp.execute(qapi::qmp::query_status {}, T), async {
            let req = fake.recv().await;
            fake.send(json!({"return": {"status": 5}, "id": req["id"]}))
                .await;
        });
        assert!(matches!(r, Err(Error::Protocol(_))), "{r:?}");
        let (r, ()) = tokio::join!(qmp.execute_raw("x", None, T), async {
            let req = fake.recv().await;
            fake.send(json!({"return": {}, "id": req["id"]})).await;
        });
        assert!(r.is_ok());
    }
}
