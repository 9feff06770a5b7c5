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
pub mod ip;
pub mod netlink;

#[cfg(test)]
mod tests;

pub use def::{ForwardMode, NetworkDef};
pub use driver::{Dirs, NetEvent, NetEventKind, NetworkDriver, NetworkInfo};
pub use error::{NetError, Result};
