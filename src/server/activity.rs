//! How busy the front end is: calls in flight and when the last one ended, so that a session
//! instance can exit when idle. Two atomics, touched twice per call.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

#[derive(Debug)]
pub struct Activity {
    in_flight: AtomicUsize,
    /// Milliseconds from `base` to the last call's start or end.
    last_ms: AtomicU64,
    base: Instant,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
            base: Instant::now(),
        }
    }
}

impl Activity {
    /// Count a call until the guard drops.
    pub fn begin(self: &Arc<Self>) -> CallGuard {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.touch();
        CallGuard(self.clone())
    }

    fn touch(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::SeqCst);
    }

    /// How long no call has been in flight; `None` while one is.
    pub fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::SeqCst));
        Some(self.base.elapsed().saturating_sub(last))
    }
}

/// One call being handled.
pub struct CallGuard(Arc<Activity>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_calls_are_never_idle() {
        let a = Arc::new(Activity::default());
        let g = a.begin();
        assert_eq!(a.idle_for(), None);
        drop(g);
        let idle = a.idle_for().expect("idle");
        assert!(idle < Duration::from_secs(1), "{idle:?}");
    }
}
