//! The guest ends of console and graphics connections: a serial port's pty, and a socket
//! QEMU's VNC or SPICE server takes as a client (QMP `getfd` + `add_client`, as libvirt).

use std::{
    os::{fd::OwnedFd, unix::net::UnixStream},
    sync::atomic::{AtomicU64, Ordering},
};

use serde_json::json;

use super::monitor::Vm;
use crate::{
    drivers::{DriverError, DriverResult},
    model::devices::{CharDevice, CharSourceType, Graphics, GraphicsType},
};

/// Open the pty QEMU made for `dev` (its path is in the live definition since start).
pub fn open_pty(domain: &str, alias: &str, dev: &CharDevice) -> DriverResult<OwnedFd> {
    if dev.source_type != CharSourceType::Pty {
        return Err(DriverError::NotSupported(format!(
            "character device '{alias}' of domain '{domain}' is of type '{}'; only a pty \
             can be opened as a console",
            dev.source_type.as_str()
        )));
    }
    let Some(path) = dev.source_path.as_deref() else {
        return Err(DriverError::Failed(format!(
            "QEMU told no pty path for character device '{alias}' of domain '{domain}'"
        )));
    };
    crate::drivers::open_console_pty(path)
}

/// A socket the graphics server of `vm` serves as a new client.
pub async fn open_graphics(
    vm: &Vm,
    index: u32,
    g: &Graphics,
    skipauth: bool,
) -> DriverResult<OwnedFd> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let protocol = match g.graphics_type {
        GraphicsType::Vnc => "vnc",
        GraphicsType::Spice => "spice",
        // local displays and D-Bus have no network server a client could join
        GraphicsType::Sdl | GraphicsType::Dbus | GraphicsType::EglHeadless => {
            return Err(DriverError::NotSupported(format!(
                "graphics {index}: a '{}' display cannot be opened as a connection",
                g.graphics_type
            )));
        }
    };
    let (ours, theirs) =
        UnixStream::pair().map_err(|e| DriverError::Failed(format!("graphics socket: {e}")))?;
    let fdname = format!("graphicsfd{index}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    vm.qmp
        .execute_with_fd(
            "getfd",
            Some(json!({ "fdname": fdname })),
            OwnedFd::from(theirs),
            vm.timeout,
        )
        .await
        .map_err(|e| DriverError::Failed(format!("getfd: {e}")))?;
    vm.command(
        "add_client",
        Some(json!({ "protocol": protocol, "fdname": fdname, "skipauth": skipauth })),
    )
    .await?;
    Ok(OwnedFd::from(ours))
}
