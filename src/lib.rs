//! `pipe`: score piano performances on the 19 PercePiano perceptual dimensions.
//!
//! The crate is a staged pipeline: `dag` knows keys, artifacts and planning but
//! nothing of audio; `stages` plugs the domain steps (render, decode, resample,
//! ...) into it; `audio` and `dataset` hold the domain logic the stages call.
//!
//! What each module may import, ground floor first, is the table in
//! `src/floors.rs`; `cargo test floors` checks every import against it and
//! that no two files import each other.

pub mod audio;
pub mod backend;
pub mod bench;
pub mod bounds;
pub mod cli;
pub mod config;
pub mod cpu;
pub mod dag;
pub mod dataset;
pub mod dims;
pub mod encoder;
pub mod experiment;
pub mod features;
#[cfg(test)]
mod floors;
pub mod frame;
pub mod gpu;
pub mod head;
pub mod history;
pub mod metrics;
pub mod ops;
pub mod predict;
pub mod query;
pub mod report;
pub mod rng;
pub mod stages;
pub mod table;
pub mod tensors;
