//! The pipeline's stages, one file each, and the order they run in.
//! Each stage is a thin adapter: it declares nodes (params + inputs) for the
//! DAG engine and calls domain code (`audio`, `dataset`) to compute them.

mod decode;
mod manifest;
mod render;
mod resample;

pub use decode::Decode;
pub use manifest::Manifest;
pub use render::Render;
pub use resample::Resample;

use anyhow::Result;
use std::sync::Arc;

use crate::config::Config;
use crate::dag::Stage;
use crate::dataset::Dataset;

/// Item name of the single node of a whole-dataset stage.
pub const ALL: &str = "all";

/// Builds every stage of the pipeline described by `config`, in run order.
pub fn build(config: &Config) -> Result<Vec<Box<dyn Stage>>> {
    let dataset = Arc::new(Dataset::load(&config.dataset)?);
    Ok(vec![
        Box::new(Render::new(dataset.clone(), config.render.clone())),
        Box::new(Decode::new(dataset.clone(), config.decode.clone())),
        Box::new(Resample::new(dataset.clone(), config.resample.clone())),
        Box::new(Manifest::new(dataset)),
    ])
}
