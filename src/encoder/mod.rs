//! Music foundation-model encoders (MERT-v1, MuQ), each written once against
//! the op set of [`crate::backend::Backend`] and run on any backend (`crate::cpu`,
//! `crate::gpu`).
//!
//! Layout (as candle's `models/<model>/`): a folder per model (`mert/`,
//! `muq/`: config, weight walk, forward pass; MuQ's mel front end), what they
//! share beside them ([`nn`] layers and activations, [`window`] windowing,
//! [`vars`] the one weight walk over a [`checkpoint`] or a seeded initialiser),
//! the handle over both architectures ([`model`]), a loaded encoder on the
//! device a pipeline entry picks ([`runtime`]), and `pipe encode` ([`cli`]).
//!
//! Must not import `stages`, `dag`, `config`, `features`, `head` or `report`:
//! encoders know nothing of pipelines or pooling (an `[encoders.NAME]` entry,
//! [`EncoderConfig`], is defined here and parsed by `config`).

pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod conformance;
pub mod mert;
pub mod model;
pub mod muq;
pub mod nn;
pub mod runtime;
pub mod vars;
pub mod window;

pub use config::{Device, EncoderConfig};
pub use mert::{Mert, MertConfig, MertTrace, MertWeights, window_plan};
pub use model::{ArchConfig, Encoder, HostWeights, Prepared};
pub use muq::{Muq, MuqConfig, MuqTrace, MuqWeights};
pub use runtime::{EncoderRuntime, OnDevice};
pub use window::{EncoderOutput, Window};
