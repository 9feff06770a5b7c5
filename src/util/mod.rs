//! Small helpers shared by several layers.

pub mod escape;
pub mod fs;
