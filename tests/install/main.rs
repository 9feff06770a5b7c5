//! The installed service: `meson install` into a temporary root, then every installed file
//! checked with the tool that consumes it (dbus-daemon, systemd-analyze, systemd-tmpfiles,
//! systemd-sysusers, xmllint), and the daemon's systemd integration (sd_notify, journald,
//! idle exit, SIGTERM, configuration errors, systemd-machined); then all of it together
//! under a real systemd booted in a container.
//!
//! Needs root (mount namespaces, other uids) and: meson ninja-build dbus-daemon systemd
//! systemd-container libxml2-utils util-linux busctl (systemd) qemu-system-x86.

#[path = "../support/mod.rs"]
mod support;

mod activation;
mod boot;
mod config;
mod files;
mod fixture;
mod journal;
mod machined;

mod notify;
mod policy;
mod shutdown;
mod units;
