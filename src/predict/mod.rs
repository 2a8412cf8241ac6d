//! Scoring new recordings with a trained experiment: model bundles
//! ([`bundle`]), the per-file path from audio to scores through the code
//! the pipeline uses ([`score`]), segments of long recordings, outputs, and
//! the HTTP server.
//!
//! Must not import `stages`: a bundle is all it needs (of `dag`, only the
//! definition of a file's hash, which bundles record).

pub mod bench;
pub mod bundle;
pub mod output;
pub mod score;
pub mod serve;

pub use bundle::{Bundle, ModelCard};
pub use score::{LoadOptions, Scorer, Scores, Segmenting, Timings};
