//! The host name, read fresh on every `Get`, and watched so that a change emits
//! PropertiesChanged: the kernel signals changes of `/proc/sys/kernel/hostname` to poll(2)
//! as priority events, so the watch costs no wake-ups.

use std::io::{Read, Seek};

use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::watch,
};

const PATH: &str = "/proc/sys/kernel/hostname";

/// The host name now.
pub(crate) fn read() -> String {
    std::fs::read_to_string(PATH)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// A channel that holds the host name and changes when it does; watching stops when every
/// receiver is gone.
pub(crate) fn watch() -> watch::Receiver<String> {
    let (tx, rx) = watch::channel(read());
    tokio::spawn(async move {
        if let Err(e) = watch_loop(&tx).await {
            tracing::debug!("not watching the host name: {e}");
        }
    });
    rx
}

async fn watch_loop(tx: &watch::Sender<String>) -> std::io::Result<()> {
    let mut file = std::fs::File::open(PATH)?;
    let mut buf = String::new();
    file.read_to_string(&mut buf)?;
    // SAFETY: the AsyncFd owns the file, so its descriptor stays open while registered.
    let fd = unsafe { AsyncFd::register_with_interest(file, Interest::PRIORITY) }
        .map_err(|e| e.into_parts().1)?;
    loop {
        let mut guard = tokio::select! {
            g = fd.ready(Interest::PRIORITY) => g?,
            () = tx.closed() => return Ok(()),
        };
        guard.clear_ready();
        drop(guard);
        let mut f = fd.get_ref();
        f.rewind()?;
        buf.clear();
        f.read_to_string(&mut buf)?;
        let now = buf.trim().to_owned();
        tx.send_if_modified(|last| {
            let changed = *last != now;
            if changed {
                *last = now;
            }
            changed
        });
    }
}
