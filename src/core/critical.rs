//! Critical sections: operations that must never be cut in half once begun.
//!
//! A quiesced snapshot that froze a guest's filesystems must thaw them; a disk switch must be
//! recorded once QEMU has made it. Such an operation runs in a task of its own (so that no
//! caller going away can cancel it) and is counted here, and the daemon, asked to stop,
//! waits for the count to reach zero (bounded) before it exits. Once stopping has begun no
//! new section may start.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::watch;

use super::{
    error::{Error, Result},
    events::lock,
};

/// The critical sections running now; cheap to clone.
#[derive(Clone)]
pub struct Critical {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// How many sections run; the daemon waits for zero.
    count: watch::Sender<usize>,
}

#[derive(Default)]
struct State {
    next: u64,
    running: BTreeMap<u64, String>,
    closed: bool,
}

/// One running section; ends when dropped.
pub struct CriticalGuard {
    inner: Arc<Inner>,
    id: u64,
}

impl Drop for CriticalGuard {
    fn drop(&mut self) {
        let n = {
            let mut st = lock(&self.inner.state);
            st.running.remove(&self.id);
            st.running.len()
        };
        self.inner.count.send_replace(n);
    }
}

impl Default for Critical {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                count: watch::channel(0).0,
            }),
        }
    }
}

impl Critical {
    /// Begin a section described by `what` (for the log); refused once the daemon stops.
    pub fn enter(&self, what: impl Into<String>) -> Result<CriticalGuard> {
        let what = what.into();
        let (id, n) = {
            let mut st = lock(&self.inner.state);
            if st.closed {
                return Err(Error::InvalidState(format!(
                    "cannot begin {what}: the daemon is stopping"
                )));
            }
            st.next += 1;
            let id = st.next;
            st.running.insert(id, what);
            (id, st.running.len())
        };
        self.inner.count.send_replace(n);
        Ok(CriticalGuard {
            inner: self.inner.clone(),
            id,
        })
    }

    /// Run `fut` as a section in its own task and wait for its result. Dropping the returned
    /// future (a caller that went away) leaves the task running to its end.
    pub async fn run<T, F>(&self, what: impl Into<String>, fut: F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        let what = what.into();
        let guard = self.enter(what.clone())?;
        let task = tokio::spawn(async move {
            let r = fut.await;
            drop(guard);
            r
        });
        match task.await {
            Ok(r) => r,
            Err(e) => Err(Error::Failed(format!("{what} failed: {e}"))),
        }
    }

    /// What runs now, in the order it began.
    pub fn running(&self) -> Vec<String> {
        lock(&self.inner.state).running.values().cloned().collect()
    }

    /// Refuse new sections, then wait up to `limit` for the running ones to end. Returns
    /// those still running at the limit (empty when all ended).
    pub async fn close_and_wait(&self, limit: Duration) -> Vec<String> {
        lock(&self.inner.state).closed = true;
        let mut rx = self.inner.count.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|n| *n == 0)).await;
        self.running()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dropped_caller_does_not_cancel_the_section() {
        let c = Critical::default();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let call = c.run("slow", async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = tx.send(());
            Ok(())
        });
        // the caller gives up long before the section ends
        assert!(
            tokio::time::timeout(Duration::from_millis(10), call)
                .await
                .is_err()
        );
        assert_eq!(c.running(), ["slow"]);
        assert!(c.close_and_wait(Duration::from_secs(5)).await.is_empty());
        rx.await.expect("the section ran to its end");
    }

    #[tokio::test]
    async fn closing_refuses_new_sections_and_bounds_the_wait() {
        let c = Critical::default();
        let g = c.enter("stuck").expect("enter");
        let left = c.close_and_wait(Duration::from_millis(20)).await;
        assert_eq!(left, ["stuck"]);
        assert!(matches!(c.enter("late"), Err(Error::InvalidState(_))));
        drop(g);
        assert!(c.running().is_empty());
    }
}
