//! Regression heads: the linear probe and MLPs of any depth on pooled vectors
//! (per-dimension ones included) with hand-written backward passes ([`net`]);
//! every other head kind (attention, BiLSTM, transformer, mel-CNN, two-input
//! fusion, contrastive loss) on candle's autodiff ([`nn`] layers, [`kinds`]
//! heads, [`graph`]). Both train in one loop ([`train`]'s `fit_loop`) with the
//! study's losses ([`loss`]), Adam/AdamW, the cosine schedule and gradient
//! clipping ([`adam`]), early stopping, and piece-split k-fold training
//! ([`train_cv_input`]).
//!
//! Everything is f32 and seeded, so a config plus data gives bit-identical
//! predictions whatever the thread count.
//!
//! Choices, each explained where it lives:
//! - output activation sigmoid by default ([`OutputActivation`]);
//! - Adam with L2-coupled weight decay like `torch.optim.Adam`, or decoupled
//!   like `AdamW` ([`adam`]);
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
pub mod frames;
pub mod gemm;
pub mod graph;
pub mod kinds;
pub mod loss;
pub mod net;
pub mod nn;
pub mod saved;
pub mod train;

pub use config::{
    Activation, Arch, HeadConfig, Hidden, InputKind, LossKind, LrSchedule, OutputActivation,
    Validation, WeightDecay,
};
pub use cv::{
    Cells, CvData, CvOutput, FoldReport, mean_best_val_r2, split_train_val, train_cv,
    train_cv_cells, train_cv_input, train_final,
};
pub use frames::{FrameSet, HeadInput};
pub use graph::{GraphHead, fit_graph};
pub use saved::{FoldHead, HeadDescriptor};
pub use train::{FitData, FitReport, Standardizer, TrainedHead, fit};

#[cfg(test)]
mod graph_tests;
#[cfg(test)]
mod tests;
