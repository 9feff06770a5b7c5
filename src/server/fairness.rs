//! Per-peer fairness: how many calls of one bus peer (by unique name) are handled at once, how
//! many may wait, and what happens to the rest.
//!
//! Every call runs in a task of its own. Without a bound, a peer that sends calls faster than
//! it reads the replies (say `GetManagedObjects` over hundreds of domains) makes the daemon
//! hold one task and one large reply per call, and every other peer's call queues behind that
//! work. Here each peer gets a few running slots and a bounded number of admitted calls;
//! beyond that its calls are answered `org.freedesktop.DBus.Error.LimitsExceeded` at once, and
//! when even those answers pile up, its calls are dropped unanswered. Memory and CPU spent on
//! one peer are therefore bounded, and other peers keep their latency.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use zbus::{Message, message::Flags};

/// The D-Bus error name for a refused call.
pub const LIMITS_EXCEEDED: &str = "org.freedesktop.DBus.Error.LimitsExceeded";

/// The bounds, per peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Calls handled at once (libvirt's `max_client_requests` is 5).
    pub running: usize,
    /// Calls running or waiting for a slot; one more is refused.
    pub admitted: usize,
    /// Refusals not yet sent; one more call is dropped without an answer.
    pub refusing: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            running: 4,
            admitted: 128,
            refusing: 1024,
        }
    }
}

/// The per-peer accounts of one front end.
#[derive(Clone)]
pub struct Fairness {
    inner: Arc<Inner>,
}

struct Inner {
    limits: Limits,
    peers: Mutex<HashMap<String, Peer>>,
}

/// One peer's account; removed when it has nothing admitted or being refused.
struct Peer {
    admitted: usize,
    refusing: usize,
    slots: Arc<Semaphore>,
}

impl Inner {
    fn peers(&self) -> MutexGuard<'_, HashMap<String, Peer>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives back what `peer` held and forgets a peer that holds nothing.
    fn release(&self, peer: &str, admitted: usize, refusing: usize) {
        let mut peers = self.peers();
        if let Some(p) = peers.get_mut(peer) {
            p.admitted = p.admitted.saturating_sub(admitted);
            p.refusing = p.refusing.saturating_sub(refusing);
            if p.admitted == 0 && p.refusing == 0 {
                peers.remove(peer);
            }
        }
    }
}

/// A call let in: it waits for a running slot with [`Admission::slot`]; dropping it gives its
/// place back.
pub struct Admission {
    inner: Arc<Inner>,
    peer: String,
    slots: Arc<Semaphore>,
}

impl Admission {
    /// Waits for one of the peer's running slots; the call runs while it is held.
    pub async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().acquire_owned().await.ok()
    }
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("peer", &self.peer)
            .finish()
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.inner.release(&self.peer, 1, 0);
    }
}

/// A call turned away; [`Refusal::send`] answers it (unless it must be dropped silently).
pub struct Refusal {
    inner: Arc<Inner>,
    peer: String,
    msg: Message,
    admitted: usize,
    /// Whether this refusal holds a place among the peer's refusals (else: drop the call).
    answered: bool,
}

impl Refusal {
    /// The reason given to the peer.
    pub fn reason(&self) -> String {
        format!(
            "peer {} already has {} calls running or waiting, the most one peer may have; \
             read the replies before sending more",
            self.peer, self.admitted
        )
    }

    /// Answers the call with `LimitsExceeded` (nothing when the caller expects no reply or
    /// too many refusals are still being sent).
    pub async fn send(self, conn: zbus::Connection) {
        let no_reply = self
            .msg
            .header()
            .primary()
            .flags()
            .contains(Flags::NO_REPLY_EXPECTED);
        if !self.answered || no_reply {
            tracing::debug!(
                "dropped a call of {} unanswered: {}",
                self.peer,
                self.reason()
            );
            return;
        }
        let reply = Message::error(&self.msg.header(), LIMITS_EXCEEDED).build(&(self.reason(),));
        match reply {
            Ok(m) => {
                if let Err(e) = conn.send(&m).await {
                    tracing::debug!("cannot send a refusal to {}: {e}", self.peer);
                }
            }
            Err(e) => tracing::error!("cannot build a refusal: {e}"),
        }
    }
}

impl std::fmt::Debug for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refusal")
            .field("peer", &self.peer)
            .field("answered", &self.answered)
            .finish()
    }
}

impl Drop for Refusal {
    fn drop(&mut self) {
        if self.answered {
            self.inner.release(&self.peer, 0, 1);
        }
    }
}

impl Fairness {
    pub fn new(limits: Limits) -> Self {
        Self {
            inner: Arc::new(Inner {
                limits,
                peers: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Lets `msg` in, or says why not. Its sender (the unique name; "" on a peer-to-peer
    /// connection) is the peer it is counted against.
    pub fn admit(&self, msg: Message) -> Result<Admission, Refusal> {
        let peer = msg
            .header()
            .sender()
            .map(|s| s.to_string())
            .unwrap_or_default();
        self.admit_from(peer, msg)
    }

    fn admit_from(&self, peer: String, msg: Message) -> Result<Admission, Refusal> {
        let limits = self.inner.limits;
        let mut peers = self.inner.peers();
        let p = peers.entry(peer.clone()).or_insert_with(|| Peer {
            admitted: 0,
            refusing: 0,
            slots: Arc::new(Semaphore::new(limits.running.max(1))),
        });
        if p.admitted < limits.admitted {
            p.admitted += 1;
            let slots = p.slots.clone();
            drop(peers);
            return Ok(Admission {
                inner: self.inner.clone(),
                peer,
                slots,
            });
        }
        let answered = p.refusing < limits.refusing;
        if answered {
            p.refusing += 1;
        }
        let admitted = p.admitted;
        drop(peers);
        Err(Refusal {
            inner: self.inner.clone(),
            peer,
            msg,
            admitted,
            answered,
        })
    }

    /// Peers with calls admitted or being refused (for tests and logs).
    pub fn peers(&self) -> usize {
        self.inner.peers().len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn call() -> Message {
        Message::method_call("/org/virtbus1", "GetManagedObjects")
            .build(&())
            .expect("message")
    }

    fn limits() -> Limits {
        Limits {
            running: 2,
            admitted: 3,
            refusing: 1,
        }
    }

    #[test]
    fn admits_up_to_the_limit_then_refuses_then_drops() {
        let f = Fairness::new(limits());
        let a: Vec<_> = (0..3)
            .map(|_| f.admit_from("a".into(), call()).expect("admitted"))
            .collect();
        let refused = f.admit_from("a".into(), call()).expect_err("refused");
        assert!(refused.answered);
        assert!(refused.reason().contains("3 calls"), "{}", refused.reason());
        let dropped = f.admit_from("a".into(), call()).expect_err("refused");
        assert!(!dropped.answered, "too many refusals pending: dropped");
        // Another peer is not affected.
        let b = f.admit_from("b".into(), call()).expect("other peer");
        drop(refused);
        drop(dropped);
        drop(a);
        drop(b);
        assert_eq!(f.peers(), 0, "accounts of idle peers are forgotten");
        assert!(f.admit_from("a".into(), call()).is_ok());
    }

    #[tokio::test]
    async fn at_most_running_calls_hold_a_slot() {
        let f = Fairness::new(limits());
        let a1 = f.admit_from("a".into(), call()).expect("1");
        let a2 = f.admit_from("a".into(), call()).expect("2");
        let a3 = f.admit_from("a".into(), call()).expect("3");
        let s1 = a1.slot().await;
        let _s2 = a2.slot().await;
        let waiting = tokio::time::timeout(Duration::from_millis(50), a3.slot()).await;
        assert!(waiting.is_err(), "the third waits");
        drop(s1);
        let s3 = tokio::time::timeout(Duration::from_secs(1), a3.slot()).await;
        assert!(matches!(s3, Ok(Some(_))), "and runs once a slot is free");
    }
}
