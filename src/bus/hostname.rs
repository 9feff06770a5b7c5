//! The host name, read fresh on every `Get`, and watched so that a change emits
//! PropertiesChanged: the kernel signals changes of `/proc/sys/kernel/hostname` to poll(2)
//! as priority events, so the watch costs no wake-ups.

use std::{
    io::{Read, Seek},
    sync::{Arc, Mutex},
};

use tokio::io::{Interest, unix::AsyncFd};
use zbus::Variant;

use super::{Ctx, paths, props::PropMap, schema::MANAGER_IFACE, signals::properties_changed};

const PATH: &str = "/proc/sys/kernel/hostname";

pub(super) struct Hostname {
    last: Mutex<String>,
}

impl Hostname {
    pub(super) fn new() -> Self {
        Self {
            last: Mutex::new(read()),
        }
    }

    pub(super) fn get(&self) -> String {
        read()
    }
}

fn read() -> String {
    std::fs::read_to_string(PATH)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

pub(super) fn watch(ctx: Arc<Ctx>) {
    tokio::spawn(async move {
        if let Err(e) = watch_loop(&ctx).await {
            tracing::debug!("not watching the host name: {e}");
        }
    });
}

async fn watch_loop(ctx: &Ctx) -> std::io::Result<()> {
    let mut file = std::fs::File::open(PATH)?;
    let mut buf = String::new();
    file.read_to_string(&mut buf)?;
    // SAFETY: the AsyncFd owns the file, so its descriptor stays open while registered.
    let fd = unsafe { AsyncFd::register_with_interest(file, Interest::PRIORITY) }
        .map_err(|e| e.into_parts().1)?;
    loop {
        let mut guard = fd.ready(Interest::PRIORITY).await?;
        guard.clear_ready();
        drop(guard);
        let mut f = fd.get_ref();
        f.rewind()?;
        buf.clear();
        f.read_to_string(&mut buf)?;
        let now = buf.trim().to_owned();
        let changed = {
            let mut last = crate::core::events::lock(&ctx.hostname.last);
            let changed = *last != now;
            *last = now.clone();
            changed
        };
        if changed {
            let values: PropMap<'_> = [("Hostname", Variant::from(now))].into_iter().collect();
            if let Err(e) = properties_changed(ctx, paths::MANAGER, MANAGER_IFACE, values).await {
                tracing::warn!("cannot signal the new host name: {e}");
            }
        }
    }
}
