//! The whole daemon on a real private bus, driven by zbus clients and busctl.

#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod compat_network;
mod concurrency;
mod fairness;
mod features;
mod hardening;
mod host;
mod interop;
mod lifecycle;
mod manager;
mod network;
mod persistence;
mod snapshots;
mod storage;
