//! OpenConsole on a container: the host end of its `<console type='pty'>`, the pty its
//! controller relays the container's console to (its path is the live XML's
//! `<source path>`). The controller keeps that pty across reboots, so a session opened
//! here outlives a reboot of the init.

use std::os::fd::OwnedFd;

use crate::{
    drivers::{DriverError, DriverResult},
    model::devices::{CharDevice, CharSourceType},
};

/// Open the console pty of `dev` (`alias` of domain `domain`) for the core to pump.
pub fn open(domain: &str, alias: &str, dev: &CharDevice) -> DriverResult<OwnedFd> {
    if dev.source_type != CharSourceType::Pty {
        return Err(DriverError::NotSupported(format!(
            "console '{alias}' of domain '{domain}' is of type '{}'; the LXC driver's \
             consoles are ptys",
            dev.source_type.as_str()
        )));
    }
    let Some(path) = dev.source_path.as_deref() else {
        return Err(DriverError::Failed(format!(
            "console '{alias}' of domain '{domain}' has no pty (its controller gave none)"
        )));
    };
    crate::drivers::open_console_pty(path)
}
