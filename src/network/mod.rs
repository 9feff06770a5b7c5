//! Virtual networks: libvirt's network XML ([`def`]), its defaults and cross-network checks
//! ([`defaults`]), and the [`driver`] that runs them as root — a bridge made through
//! rtnetlink ([`netlink`]), an nftables table ([`firewall`]) and a dnsmasq ([`dnsmasq`]).

pub mod def;
pub mod defaults;
pub mod dns;
pub mod dnsmasq;
pub mod driver;
pub mod error;
pub mod firewall;
pub mod host;
pub mod ip;
pub mod netlink;
pub mod update;

#[cfg(test)]
mod tests;

pub use def::{ForwardMode, NetworkDef};
pub use driver::{Dirs, Flavour, NetEvent, NetEventKind, NetworkDriver, NetworkInfo};
pub use error::{NetError, Result};

/// Sets up the network driver under the daemon's state and runtime directories and gives it
/// to `core`: networks running from before are adopted, and the system instance defines
/// libvirt's `default` network on its first start. Only root can start networks; a failure
/// here leaves the daemon without networks, logged.
pub async fn attach(
    core: &crate::core::Core,
    state: &std::path::Path,
    runtime: &std::path::Path,
    system: bool,
) {
    // SAFETY: geteuid cannot fail.
    let privileged = unsafe { libc::geteuid() } == 0;
    let dirs = Dirs {
        config: Some(state.join("networks")),
        run: runtime.join("networks"),
    };
    match NetworkDriver::new(dirs, privileged) {
        Ok(drv) => {
            let active = drv.load(system && privileged).await;
            if active > 0 {
                tracing::info!("{active} network(s) still active from before");
            }
            core.attach_networks(drv);
        }
        Err(e) => tracing::error!("virtual networks are unavailable: {e}"),
    }
}
