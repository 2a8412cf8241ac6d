//! Clip-level feature vectors: encoder hidden states → layer selection → pooling
//! over time (one vector per feature set), plus weight-free audio baselines.
//!
//! - [`extractor`]: the one place a clip's vectors are computed, for the
//!   features stage and `pipe predict`: encoders loaded once, one pass
//!   pooled for every set of an encoder, the states cache, pass times.
//! - [`set`]: a configured feature set and what computes it.
//! - [`extract`]: the weight-free sets: a [`Baseline`] on the audio, a
//!   [`Symbolic`] set on the performance MIDI.
//! - [`backend_pool`]: that pooling, on the encoder's backend, window by
//!   window (on a GPU only statistics leave the device).
//! - [`spec`]: layers × pooling × max_frames, and [`pool_many`], the host
//!   pooling of downloaded states: the oracle `backend_pool` is tested against.
//! - [`layers`]: which hidden states, averaged or concatenated per frame.
//! - [`pool`]: pooling a `[frames, D]` sequence over time.
//! - [`baseline`]: raw audio statistics (18 named values).
//! - [`mel`]: log-mel statistics (128-band mean + std, 256 values).
//! - [`librosa49`]: the study's 49 librosa statistics (A3).
//! - [`notes`]: a performance MIDI as notes, onset groups and a pedal curve;
//!   [`midi_stats`] (39 statistics) and [`midi_notes`] (a per-note sequence)
//!   are the symbolic feature sets built on it (E3).
//! - [`vector`]: the per-clip artifact format.
//! - [`states_cache`]: the opt-in f16 hidden-state cache (`cache_states`).
//!
//! Must not import `stages` or `dag` internals: the stage adapts this to the DAG.

pub mod backend_pool;
pub mod baseline;
pub mod extract;
pub mod extractor;
pub mod layers;
pub mod librosa49;
pub mod mel;
pub mod midi_notes;
pub mod midi_stats;
pub mod notes;
pub mod pool;
pub mod set;
pub mod spec;
pub mod states_cache;
pub mod vector;

pub use baseline::{audio_stats, audio_stats_names};
pub use extract::{Baseline, Symbolic, weight_free_names};
pub use extractor::{ClipInput, Extractor, PassTotals, StatesOf};
pub use layers::{FrameSeq, HiddenStates, LayerSelection};
pub use librosa49::{librosa49_names, librosa49_stats};
pub use mel::{logmel_stats, logmel_stats_names};
pub use midi_notes::{NOTE_COLUMNS, midi_notes, midi_notes_names};
pub use midi_stats::{midi_stats, midi_stats_names};
pub use pool::{MULTISCALE_WINDOWS, Pooling};
pub use set::{FeatureKind, FeatureSet, FeatureSetConfig};
pub use spec::{DEFAULT_MAX_FRAMES, FeatureSetSpec, pool_hidden_states, pool_many};
pub use vector::{read_vector, write_vector};
