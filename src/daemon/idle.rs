//! When a session instance may exit: no guest active, no call in flight, and neither for the
//! whole timeout. Bus activation starts a new instance on the next call, and all state is on
//! disk, so exiting costs the next caller a start-up and nothing else.

use std::time::{Duration, Instant};

use crate::{core::Core, server::activity::Activity};

/// Resolve once the instance has been idle for `timeout`.
pub async fn wait(core: &Core, activity: &Activity, timeout: Duration) {
    // Checks are cheap but not free (one lock per domain): a tenth of the timeout, within
    // 50 ms..1 s, exits at most 10 % late.
    let tick = (timeout / 10).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut quiet_since = Instant::now();
    loop {
        tokio::time::sleep(tick).await;
        let running = core.domains().iter().any(|d| d.info().status.is_active());
        let calls_idle = activity.idle_for();
        match calls_idle {
            Some(idle) if !running => {
                if quiet_since.elapsed().min(idle) >= timeout {
                    return;
                }
            }
            _ => quiet_since = Instant::now(),
        }
    }
}
