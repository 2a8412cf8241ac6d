//! Regression heads on pooled encoder features: linear probe and MLPs with
//! hand-written backward passes, the study's losses, Adam with early
//! stopping, and piece-split k-fold training ([`train_cv`]).
//!
//! Everything is f32, single-threaded per training run and seeded, so a
//! config plus data gives bit-identical predictions.

pub mod act;
pub mod adam;
pub mod config;
pub mod cv;
pub mod gemm;
pub mod loss;
pub mod net;
pub mod rng;
pub mod train;

/// Number of PercePiano perceptual dimensions (outputs of every head).
pub const N_DIMS: usize = 19;

pub use config::{Activation, Arch, HeadConfig, LossKind, OutputActivation, WeightDecay};
pub use cv::{CvData, CvOutput, FoldReport, split_train_val, train_cv};
pub use train::{FitData, FitReport, Standardizer, TrainedHead, fit};

#[cfg(test)]
mod tests;
