//! virtbus: virtual machines and containers managed over D-Bus.
//!
//! Layers, from the bus down: [`bus`] (the `org.virtbus1` API), [`compat`] (the
//! libvirt-dbus compatible `org.libvirt` facade) and [`rpc`] (libvirt's RPC protocol on a
//! Unix socket, for libvirt.so's clients), [`core`] (registry, jobs,
//! persistence, events), [`model`] (libvirt XML and states) and [`drivers`] (hypervisors).
//! Around them: [`daemon`] (start-up, systemd integration), [`config`] (the configuration file)
//! and [`machined`] (guests registered with systemd-machined).

// The daemon never panics on input: no unwrap, expect or panic outside tests, checked by clippy.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::await_holding_lock
    )
)]

pub mod compat;
pub mod config;
pub mod core;
pub mod daemon;
pub mod drivers;
pub mod host;
pub mod machined;
pub mod model;
pub mod native;
pub mod network;
pub mod rpc;
pub mod server;
pub mod storage;
pub mod util;
