//! Helpers shared by the test modules (a folder, so it is no test of its own).

pub mod bin;
pub mod folder;
pub mod golden;
pub mod gpu;
pub mod pipeline;
pub mod tones;
