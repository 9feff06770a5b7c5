//! The libvirt-dbus compatible facade, driven as its real clients drive it: Python scripts
//! (dbus-python with proxies from introspection, GDBus from `gi`) against the real daemon on
//! a private bus, a fresh one per test; Debian's libvirt-dbus on a bus of its own where the
//! answers are compared; the QEMU connect in process over a stand-in driver.

#[path = "../support/mod.rs"]
mod support;

mod harness;

mod facade;
mod inprocess;
mod reference;
