//! Clip-level feature vectors: encoder hidden states → layer selection → pooling
//! over time (one vector per feature set), plus weight-free audio baselines.
//!
//! - [`layers`]: which hidden states, averaged or concatenated per frame.
//! - [`pool`]: pooling a `[frames, D]` sequence over time.
//! - [`spec`]: a feature set (layers × pooling × max_frames) and [`pool_many`],
//!   which computes many feature sets from one encoder pass.
//! - [`device`]: the same pooling on the encoder's backend (GPU), window by
//!   window, so only statistics leave the device.
//! - [`stft`]: the STFT both baselines share.
//! - [`baseline`]: raw audio statistics (18 named values).
//! - [`mel`]: log-mel statistics (128-band mean + std, 256 values).

pub mod baseline;
pub mod device;
pub mod layers;
pub mod mel;
pub mod pool;
pub mod spec;
pub mod stft;

pub use baseline::{audio_stats, audio_stats_names};
pub use layers::{FrameSeq, HiddenStates, LayerSelection};
pub use mel::{logmel_stats, logmel_stats_names};
pub use pool::{MULTISCALE_WINDOWS, Pooling};
pub use spec::{DEFAULT_MAX_FRAMES, FeatureSetSpec, pool_hidden_states, pool_many};
