//! The default way to shut a guest down or reboot it, as libvirt's QEMU driver does it: through
//! the guest agent when the domain has one, and by ACPI when it has none or the agent call
//! fails (no agent running in the guest, a timeout). Only an explicit `agent` mode reports the
//! agent's failure.

use std::future::Future;

use crate::drivers::DriverResult;

/// Which way the request went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Agent,
    Acpi,
}

/// Runs `agent` when there is one, then `acpi` unless the agent call succeeded.
pub async fn default_mode<A, P>(
    domain: &str,
    agent: Option<A>,
    acpi: impl FnOnce() -> P,
) -> DriverResult<Route>
where
    A: Future<Output = DriverResult<()>>,
    P: Future<Output = DriverResult<()>>,
{
    if let Some(call) = agent {
        match call.await {
            Ok(()) => return Ok(Route::Agent),
            Err(e) => tracing::info!("domain '{domain}': guest agent failed ({e}); using ACPI"),
        }
    }
    acpi().await.map(|()| Route::Acpi)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::drivers::DriverError;

    async fn run(
        agent: Option<DriverResult<()>>,
        acpi: DriverResult<()>,
    ) -> (DriverResult<Route>, usize) {
        let acpi_calls = AtomicUsize::new(0);
        let r = default_mode("d", agent.map(|r| async move { r }), || {
            acpi_calls.fetch_add(1, Ordering::SeqCst);
            async move { acpi }
        })
        .await;
        (r, acpi_calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn agent_first_then_acpi() {
        let timeout = || Err(DriverError::Timeout("guest-sync".into()));
        assert_eq!(run(Some(Ok(())), Ok(())).await, (Ok(Route::Agent), 0));
        assert_eq!(run(Some(timeout()), Ok(())).await, (Ok(Route::Acpi), 1));
        assert_eq!(run(None, Ok(())).await, (Ok(Route::Acpi), 1));
        let acpi_failed = Err(DriverError::Failed("monitor".into()));
        assert_eq!(
            run(Some(timeout()), acpi_failed.clone()).await,
            (acpi_failed.map(|()| Route::Acpi), 1)
        );
    }
}
