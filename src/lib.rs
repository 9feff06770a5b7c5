//! virtbus: virtual machines and containers managed over D-Bus.
//!
//! Layers, from the bus down: [`bus`] (the `org.virtbus1` API), [`core`] (registry, jobs,
//! persistence, events), [`model`] (libvirt XML and states) and [`drivers`] (hypervisors).

pub mod bus;
pub mod core;
pub mod daemon;
pub mod drivers;
pub mod model;
pub mod util;
