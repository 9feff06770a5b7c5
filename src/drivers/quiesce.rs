//! Quiesce: a snapshot taken while the guest agent holds the guest's filesystems frozen, by
//! rules that never leave a guest frozen. One implementation for every driver; each driver
//! provides a [`FreezeAgent`].
//!
//! - Before freezing, a fresh sync and the freeze status: filesystems already frozen (by the
//!   user's FSFreeze, or from inside the guest) are not ours, and the snapshot is taken
//!   without freezing or thawing them.
//! - Once a freeze has been **sent**, a thaw is always sent afterwards: after success, after
//!   the snapshot failed, after the freeze errored, timed out or lost its connection. A
//!   timed-out freeze stays queued in a stalled guest and runs when it resumes; the thaw
//!   queues behind it.
//! - After the thaw, a new sync and status confirm it. When they cannot, the caller reports
//!   that the guest may still be frozen and shows a warning, and a [`watch_thaw`] task keeps
//!   checking (and thawing a freeze of ours that ran late) until the agent says `thawed`.
//! - A failed freeze fails the snapshot with the agent's own words: no unquiesced snapshot is
//!   ever presented as quiesced.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;

use super::{DriverError, DriverResult};

/// The guest agent's freeze state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezeStatus {
    Thawed,
    Frozen,
}

/// A failed agent command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentFailure {
    /// What happened, with the agent's own text when it answered with an error.
    pub message: String,
    /// The command was written to the agent, so it may still run.
    pub sent: bool,
    /// No answer in time (rather than an error or a lost connection).
    pub timeout: bool,
}

/// The three agent commands quiesce needs. Each runs its own fresh sync first.
#[async_trait]
pub trait FreezeAgent: Send + Sync {
    async fn status(&self) -> Result<FreezeStatus, AgentFailure>;
    /// Freeze every freezable filesystem; returns how many froze.
    async fn freeze(&self) -> Result<u32, AgentFailure>;
    /// Thaw, sent even when the agent does not answer the sync (so that it queues behind a
    /// freeze a stalled guest will still run) and over a new connection when the old one is
    /// gone; returns how many filesystems were thawed.
    async fn thaw(&self) -> Result<u32, AgentFailure>;
}

/// Per guest: who may thaw, and whether a thaw of ours is unconfirmed.
#[derive(Default)]
pub struct FreezeOwner {
    /// Serializes every freeze, thaw and status check on the guest: a quiesced snapshot, the
    /// user's FSFreeze and FSThaw, and the background confirmation.
    pub lock: tokio::sync::Mutex<()>,
    /// A freeze of ours was sent and its thaw is not confirmed.
    unconfirmed: AtomicBool,
}

impl FreezeOwner {
    pub fn unconfirmed(&self) -> bool {
        self.unconfirmed.load(Ordering::SeqCst)
    }

    /// The user froze or thawed: whatever state the guest is in now is theirs.
    pub fn user_took_over(&self) {
        self.unconfirmed.store(false, Ordering::SeqCst);
    }

    /// A thaw of ours is unconfirmed (as recorded before a daemon restart).
    pub fn mark_unconfirmed(&self) {
        self.set_unconfirmed(true);
    }

    fn set_unconfirmed(&self, on: bool) {
        self.unconfirmed.store(on, Ordering::SeqCst);
    }
}

/// How the guest's filesystems were left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Thaw {
    /// Nothing of ours to undo: no freeze was sent, or they were frozen by someone else.
    NotOurs,
    /// Thawed, and the agent confirms it; how many the thaw reported.
    Confirmed(u32),
    /// The agent could not confirm the thaw: the guest may still be frozen (why).
    Unconfirmed(String),
}

/// The result of [`quiesced`].
#[derive(Debug)]
pub struct Quiesced<T> {
    /// The snapshot's result, or why no quiesced snapshot could be taken.
    pub result: DriverResult<T>,
    pub thaw: Thaw,
    /// The filesystems were already frozen by someone else; they were left so.
    pub found_frozen: bool,
}

impl<T> Quiesced<T> {
    /// The result with the thaw's outcome added to an error's text. A snapshot that was
    /// taken but whose thaw is unconfirmed stays `Ok`: the caller records it and reports
    /// [`Thaw::Unconfirmed`] itself.
    pub fn error_with_thaw(self) -> (DriverResult<T>, Thaw) {
        let result = match self.result {
            Ok(v) => Ok(v),
            Err(e) => Err(match &self.thaw {
                Thaw::NotOurs => e,
                Thaw::Confirmed(n) => with_text(
                    e,
                    &format!(
                        "; a thaw was sent and the agent confirms the guest is thawed ({n} filesystem(s) thawed)"
                    ),
                ),
                Thaw::Unconfirmed(why) => with_text(
                    e,
                    &format!("; a thaw was sent, but the guest may still be frozen: {why}"),
                ),
            }),
        };
        (result, self.thaw)
    }
}

fn with_text(e: DriverError, more: &str) -> DriverError {
    match e {
        DriverError::InvalidArgument(m) => DriverError::InvalidArgument(m + more),
        DriverError::InvalidState(m) => DriverError::InvalidState(m + more),
        DriverError::NotSupported(m) => DriverError::NotSupported(m + more),
        DriverError::Unimplemented(m) => DriverError::Unimplemented(m + more),
        DriverError::Timeout(m) => DriverError::Timeout(m + more),
        DriverError::Failed(m) => DriverError::Failed(m + more),
        DriverError::ArgumentUnsupported(m) => DriverError::ArgumentUnsupported(m + more),
        DriverError::System(m) => DriverError::System(m + more),
    }
}

fn agent_error(what: &str, step: &str, f: &AgentFailure) -> DriverError {
    let m = format!(
        "cannot take a quiesced snapshot of {what}: {step}: {}",
        f.message
    );
    if f.timeout {
        DriverError::Timeout(m)
    } else {
        DriverError::Failed(m)
    }
}

/// Take a snapshot with `take` while the guest's filesystems are frozen, by the rules above.
/// `what` names the domain for messages. Hold `owner.lock` around the call.
pub async fn quiesced<T, F, Fut>(
    agent: &dyn FreezeAgent,
    owner: &FreezeOwner,
    what: &str,
    take: F,
) -> Quiesced<T>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = DriverResult<T>>,
{
    let status = match agent.status().await {
        Ok(s) => s,
        Err(f) => {
            return Quiesced {
                result: Err(agent_error(
                    what,
                    "the guest agent did not report its freeze status (nothing was frozen)",
                    &f,
                )),
                thaw: Thaw::NotOurs,
                found_frozen: false,
            };
        }
    };
    if status == FreezeStatus::Frozen && !owner.unconfirmed() {
        tracing::info!("{what}: filesystems already frozen by someone else; left frozen");
        return Quiesced {
            result: take().await,
            thaw: Thaw::NotOurs,
            found_frozen: true,
        };
    }
    let result = if status == FreezeStatus::Frozen {
        // a freeze of ours whose thaw was never confirmed ran late: it is ours to undo
        tracing::warn!("{what}: frozen by an earlier freeze of ours; snapshot, then thaw");
        take().await
    } else {
        owner.set_unconfirmed(true);
        match agent.freeze().await {
            Ok(n) => {
                tracing::debug!("{what}: {n} filesystem(s) frozen");
                take().await
            }
            Err(f) if !f.sent => {
                owner.set_unconfirmed(false);
                return Quiesced {
                    result: Err(agent_error(
                        what,
                        "the freeze could not be sent (nothing was frozen)",
                        &f,
                    )),
                    thaw: Thaw::NotOurs,
                    found_frozen: false,
                };
            }
            Err(f) => Err(agent_error(
                what,
                "the guest agent could not freeze the guest's filesystems",
                &f,
            )),
        }
    };
    let thaw = thaw_and_confirm(agent, owner, what).await;
    Quiesced {
        result,
        thaw,
        found_frozen: false,
    }
}

/// Thaw a freeze of ours and confirm it with a new sync and status; one more thaw when the
/// agent still reports `frozen` (a freeze that ran after the first thaw was lost).
pub async fn thaw_and_confirm(agent: &dyn FreezeAgent, owner: &FreezeOwner, what: &str) -> Thaw {
    let mut thawed = 0;
    for attempt in 0..2 {
        let sent = agent.thaw().await;
        match &sent {
            Ok(n) => thawed += n,
            Err(f) => tracing::warn!("{what}: thaw (sent: {}): {}", f.sent, f.message),
        }
        match agent.status().await {
            Ok(FreezeStatus::Thawed) => {
                owner.set_unconfirmed(false);
                return Thaw::Confirmed(thawed);
            }
            Ok(FreezeStatus::Frozen) if attempt == 0 => {
                tracing::warn!("{what}: still frozen after the thaw; thawing again");
            }
            Ok(FreezeStatus::Frozen) => {
                return Thaw::Unconfirmed("the guest agent still reports 'frozen'".into());
            }
            Err(f) => {
                let thaw = match sent {
                    Ok(n) => format!("the thaw thawed {n} filesystem(s)"),
                    Err(t) if t.sent => format!("the thaw was sent: {}", t.message),
                    Err(t) => format!("the thaw could not be sent: {}", t.message),
                };
                return Thaw::Unconfirmed(format!(
                    "{thaw}, and the guest agent did not confirm: {}",
                    f.message
                ));
            }
        }
    }
    Thaw::Unconfirmed("the guest agent still reports 'frozen'".into())
}

/// Keep checking, with growing pauses, a guest whose thaw is unconfirmed, until the agent
/// reports `thawed` (then `report(None)` clears the warning), thawing again when it reports
/// `frozen` while the freeze is still ours. Ends when `alive` says the guest is gone or the
/// user has taken over (FSFreeze or FSThaw).
pub fn watch_thaw(
    agent: Arc<dyn FreezeAgent>,
    owner: Arc<FreezeOwner>,
    what: String,
    alive: Box<dyn Fn() -> bool + Send + Sync>,
    report: Box<dyn Fn(Option<String>) + Send + Sync>,
) {
    tokio::spawn(async move {
        let mut pause = Duration::from_millis(500);
        loop {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(15));
            if !alive() {
                tracing::debug!("{what}: guest gone; thaw check ends");
                return;
            }
            let _g = owner.lock.lock().await;
            if !owner.unconfirmed() {
                tracing::info!("{what}: freeze state taken over by the user; thaw check ends");
                return;
            }
            match agent.status().await {
                Ok(FreezeStatus::Thawed) => {
                    owner.set_unconfirmed(false);
                    tracing::info!("{what}: the guest agent confirms the filesystems are thawed");
                    report(None);
                    return;
                }
                Ok(FreezeStatus::Frozen) => {
                    tracing::warn!("{what}: still frozen by our freeze; thawing");
                    if let Err(f) = agent.thaw().await {
                        tracing::warn!("{what}: thaw: {}", f.message);
                    }
                    pause = Duration::from_millis(200);
                }
                Err(f) => tracing::debug!("{what}: thaw not confirmed yet: {}", f.message),
            }
        }
    });
}

/// The warning a domain shows while its thaw is unconfirmed.
pub fn warning_text(why: &str) -> String {
    format!(
        "the guest's filesystems may still be frozen after a quiesced snapshot ({why}); the \
         daemon keeps checking and thawing"
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A scripted agent: answers from queues, records the commands it got.
    #[derive(Default)]
    struct Script {
        calls: Mutex<Vec<&'static str>>,
        status: Mutex<Vec<Result<FreezeStatus, AgentFailure>>>,
        freeze: Mutex<Vec<Result<u32, AgentFailure>>>,
        thaw: Mutex<Vec<Result<u32, AgentFailure>>>,
    }

    fn next<T: Clone>(q: &Mutex<Vec<T>>, default: T) -> T {
        let mut q = q.lock().expect("lock");
        if q.is_empty() { default } else { q.remove(0) }
    }

    #[async_trait]
    impl FreezeAgent for Script {
        async fn status(&self) -> Result<FreezeStatus, AgentFailure> {
            self.calls.lock().expect("lock").push("status");
            next(&self.status, Ok(FreezeStatus::Thawed))
        }
        async fn freeze(&self) -> Result<u32, AgentFailure> {
            self.calls.lock().expect("lock").push("freeze");
            next(&self.freeze, Ok(1))
        }
        async fn thaw(&self) -> Result<u32, AgentFailure> {
            self.calls.lock().expect("lock").push("thaw");
            next(&self.thaw, Ok(1))
        }
    }

    fn failure(sent: bool, timeout: bool, m: &str) -> AgentFailure {
        AgentFailure {
            message: m.into(),
            sent,
            timeout,
        }
    }

    impl Script {
        fn calls(&self) -> Vec<&'static str> {
            self.calls.lock().expect("lock").clone()
        }
    }

    async fn run(agent: &Script, snap: DriverResult<()>) -> (Quiesced<()>, bool) {
        let owner = FreezeOwner::default();
        let taken = AtomicBool::new(false);
        let q = quiesced(agent, &owner, "domain 'g'", || async {
            taken.store(true, Ordering::SeqCst);
            snap
        })
        .await;
        (q, taken.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn freeze_snapshot_thaw_confirm() {
        let a = Script::default();
        let (q, taken) = run(&a, Ok(())).await;
        assert!(taken && q.result.is_ok());
        assert_eq!(q.thaw, Thaw::Confirmed(1));
        assert_eq!(a.calls(), ["status", "freeze", "thaw", "status"]);
    }

    #[tokio::test]
    async fn found_frozen_is_left_alone() {
        let a = Script::default();
        a.status
            .lock()
            .expect("lock")
            .push(Ok(FreezeStatus::Frozen));
        let (q, taken) = run(&a, Ok(())).await;
        assert!(taken && q.result.is_ok() && q.found_frozen);
        assert_eq!(q.thaw, Thaw::NotOurs);
        assert_eq!(a.calls(), ["status"], "neither freeze nor thaw");
    }

    #[tokio::test]
    async fn unanswered_status_sends_nothing_else() {
        let a = Script::default();
        a.status.lock().expect("lock").push(Err(failure(
            false,
            true,
            "no answer to guest-sync-delimited",
        )));
        let (q, taken) = run(&a, Ok(())).await;
        assert!(!taken);
        assert!(matches!(q.result, Err(DriverError::Timeout(_))));
        assert_eq!(a.calls(), ["status"]);
    }

    #[tokio::test]
    async fn unsent_freeze_needs_no_thaw() {
        let a = Script::default();
        a.freeze.lock().expect("lock").push(Err(failure(
            false,
            true,
            "no answer to guest-sync-delimited",
        )));
        let (q, taken) = run(&a, Ok(())).await;
        assert!(!taken && q.result.is_err());
        assert_eq!(q.thaw, Thaw::NotOurs);
        assert_eq!(a.calls(), ["status", "freeze"]);
    }

    #[tokio::test]
    async fn timed_out_freeze_is_thawed_and_fails_the_snapshot() {
        let a = Script::default();
        a.freeze.lock().expect("lock").push(Err(failure(
            true,
            true,
            "no answer to guest-fsfreeze-freeze",
        )));
        let (q, taken) = run(&a, Ok(())).await;
        assert!(!taken, "no snapshot without a confirmed freeze");
        assert_eq!(a.calls(), ["status", "freeze", "thaw", "status"]);
        let (r, thaw) = q.error_with_thaw();
        assert_eq!(thaw, Thaw::Confirmed(1));
        let Err(DriverError::Timeout(m)) = r else {
            panic!("{r:?}")
        };
        assert!(
            m.contains("guest-fsfreeze-freeze") && m.contains("a thaw was sent"),
            "{m}"
        );
    }

    #[tokio::test]
    async fn freeze_error_carries_the_agents_words() {
        let a = Script::default();
        a.freeze.lock().expect("lock").push(Err(failure(
            true,
            false,
            "fsfreeze hook has failed with status 3",
        )));
        let (q, taken) = run(&a, Ok(())).await;
        assert!(!taken);
        let (r, _) = q.error_with_thaw();
        let Err(DriverError::Failed(m)) = r else {
            panic!("{r:?}")
        };
        assert!(m.contains("fsfreeze hook has failed with status 3"), "{m}");
        assert_eq!(a.calls(), ["status", "freeze", "thaw", "status"]);
    }

    #[tokio::test]
    async fn failed_snapshot_still_thaws() {
        let a = Script::default();
        let (q, taken) = run(&a, Err(DriverError::Failed("transaction failed".into()))).await;
        assert!(taken);
        assert_eq!(a.calls(), ["status", "freeze", "thaw", "status"]);
        let (r, _) = q.error_with_thaw();
        assert!(matches!(r, Err(DriverError::Failed(m)) if m.starts_with("transaction failed")));
    }

    #[tokio::test]
    async fn unconfirmed_thaw_is_reported() {
        let a = Script::default();
        {
            let mut st = a.status.lock().expect("lock");
            st.push(Ok(FreezeStatus::Thawed));
            st.push(Err(failure(
                false,
                true,
                "no answer to guest-sync-delimited",
            )));
        }
        a.thaw.lock().expect("lock").push(Err(failure(
            true,
            true,
            "no answer to guest-fsfreeze-thaw",
        )));
        let (q, _) = run(&a, Ok(())).await;
        let (r, thaw) = q.error_with_thaw();
        assert!(r.is_ok(), "the snapshot itself was taken");
        let Thaw::Unconfirmed(why) = thaw else {
            panic!("{thaw:?}")
        };
        assert!(
            why.contains("the thaw was sent") && why.contains("did not confirm"),
            "{why}"
        );
    }

    #[tokio::test]
    async fn still_frozen_after_thaw_thaws_again() {
        let a = Script::default();
        {
            let mut st = a.status.lock().expect("lock");
            st.push(Ok(FreezeStatus::Thawed));
            st.push(Ok(FreezeStatus::Frozen));
        }
        let (q, _) = run(&a, Ok(())).await;
        assert_eq!(q.thaw, Thaw::Confirmed(2));
        assert_eq!(
            a.calls(),
            ["status", "freeze", "thaw", "status", "thaw", "status"]
        );
    }

    #[tokio::test]
    async fn our_late_freeze_is_thawed_by_the_next_quiesce() {
        let a = Script::default();
        a.status
            .lock()
            .expect("lock")
            .push(Ok(FreezeStatus::Frozen));
        let owner = FreezeOwner::default();
        owner.set_unconfirmed(true);
        let q = quiesced(&a, &owner, "domain 'g'", || async { Ok(()) }).await;
        assert!(q.result.is_ok() && !q.found_frozen);
        assert_eq!(a.calls(), ["status", "thaw", "status"]);
        assert!(!owner.unconfirmed());
    }

    #[tokio::test(start_paused = true)]
    async fn watch_thaws_a_late_freeze_and_clears_the_warning() {
        let a = Arc::new(Script::default());
        {
            let mut st = a.status.lock().expect("lock");
            st.push(Err(failure(false, true, "paused")));
            st.push(Ok(FreezeStatus::Frozen));
            st.push(Ok(FreezeStatus::Thawed));
        }
        let owner = Arc::new(FreezeOwner::default());
        owner.set_unconfirmed(true);
        let reports = Arc::new(Mutex::new(Vec::new()));
        let r2 = reports.clone();
        watch_thaw(
            a.clone(),
            owner.clone(),
            "domain 'g'".into(),
            Box::new(|| true),
            Box::new(move |w| r2.lock().expect("lock").push(w)),
        );
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert_eq!(*reports.lock().expect("lock"), [None::<String>]);
        assert_eq!(a.calls(), ["status", "status", "thaw", "status"]);
        assert!(!owner.unconfirmed());
    }

    #[tokio::test(start_paused = true)]
    async fn watch_stops_when_the_user_takes_over() {
        let a = Arc::new(Script::default());
        a.status
            .lock()
            .expect("lock")
            .push(Ok(FreezeStatus::Frozen));
        let owner = Arc::new(FreezeOwner::default());
        owner.set_unconfirmed(true);
        owner.user_took_over();
        watch_thaw(
            a.clone(),
            owner,
            "domain 'g'".into(),
            Box::new(|| true),
            Box::new(|_| {}),
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(
            a.calls().is_empty(),
            "the user's freeze is not ours to undo"
        );
    }
}
