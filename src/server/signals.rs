//! The signal pump: each core event handed to a front end's emitter, in the order the core
//! published them, with the sequence number of the last one signalled.

use std::{future::Future, sync::Arc};

use tokio::sync::{mpsc, watch};

use crate::core::Event;

/// What a front end does with each event of the core.
pub(crate) trait Emitter: Send + Sync + 'static {
    fn emit(&self, event: Event) -> impl Future<Output = zbus::Result<()>> + Send;
}

/// Turn each event into signals, in order, and tell `signalled` which was the last.
pub(crate) async fn pump<E: Emitter>(
    emitter: Arc<E>,
    mut events: mpsc::UnboundedReceiver<(u64, Event)>,
    signalled: watch::Sender<u64>,
) {
    while let Some((seq, event)) = events.recv().await {
        if let Err(e) = emitter.emit(event).await {
            tracing::warn!("cannot emit a signal: {e}");
        }
        signalled.send_replace(seq);
    }
}
