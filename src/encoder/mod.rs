//! Music foundation-model encoders (MERT-v1, MuQ), written once against [`backend::Backend`].

pub mod backend;
pub mod cli;
pub mod config;
pub mod conformance;
pub mod mert;
pub mod mert_weights;
pub mod model;
pub mod muq;
pub mod muq_config;
pub mod muq_weights;
pub mod weights;
pub mod window;

pub use backend::Backend;
pub use config::MertConfig;
pub use mert::{EncoderOutput, Mert, MertTrace, window_plan};
pub use mert_weights::MertWeights;
pub use model::{ArchConfig, Encoder, HostWeights, Prepared};
pub use muq::{Muq, MuqTrace};
pub use muq_config::MuqConfig;
pub use muq_weights::MuqWeights;
