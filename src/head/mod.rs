//! Regression heads on pooled encoder features: linear probe and MLPs with
//! hand-written backward passes, the study's losses, Adam with early
//! stopping, and piece-split k-fold training ([`train_cv`]).
//!
//! Everything is f32, single-threaded per training run and seeded, so a
//! config plus data gives bit-identical predictions.
//!
//! Choices, each explained where it lives:
//! - output activation sigmoid by default ([`OutputActivation`]);
//! - Adam with L2-coupled weight decay like `torch.optim.Adam` ([`adam`]);
//! - PyTorch `nn.Linear` init, exact-erf GELU, inverted dropout after the
//!   hidden activation only ([`net`]);
//! - validation split = whole pieces of the training folds, ~15%, seeded
//!   ([`split_train_val`]); early stopping on the configured loss over the
//!   whole validation split, best weights restored ([`fit`]);
//! - standardisation fitted on the training rows only ([`Standardizer`]).
//!
//! Must not import `dag`, `stages`, `encoder` or `features`: heads see
//! matrices of features and labels, nothing of where they came from.

pub mod act;
pub mod adam;
pub mod config;
pub mod cv;
pub mod gemm;
pub mod loss;
pub mod net;
pub mod train;

/// Number of PercePiano perceptual dimensions (outputs of every head).
pub const N_DIMS: usize = 19;

pub use config::{Activation, Arch, HeadConfig, LossKind, OutputActivation, WeightDecay};
pub use cv::{CvData, CvOutput, FoldReport, split_train_val, train_cv, train_final};
pub use train::{FitData, FitReport, Standardizer, TrainedHead, fit};

#[cfg(test)]
mod tests;
