//! The pipeline's stages, one file each, and the order they run in.
//! Each stage is a thin adapter: it declares nodes (params + inputs) for the
//! DAG engine and calls domain code (`audio`, `dataset`, `encoder`,
//! `features`) to compute them.

mod decode;
mod features;
mod manifest;
mod render;
mod resample;

pub use decode::Decode;
pub use features::{FeatureSet, FeatureTables, Features, read_vector};
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

/// The stages of one pipeline description, and what was left out and why.
pub struct Pipeline {
    pub stages: Vec<Box<dyn Stage>>,
    /// One line per skipped feature set (e.g. its encoder's weights are absent).
    pub notes: Vec<String>,
}

/// Builds every stage of the pipeline described by `config`, in run order.
pub fn build(config: &Config) -> Result<Pipeline> {
    let dataset = Arc::new(Dataset::load(&config.dataset)?);
    let mut notes = Vec::new();
    let mut sets = Vec::new();
    for (name, cfg) in &config.features {
        if let Some(enc) = config.encoders.get(&cfg.encoder)
            && let Some(dir) = &enc.weights
            && !(dir.join("config.json").is_file() && dir.join("model.safetensors").is_file())
        {
            let hint = enc
                .download_hint
                .as_deref()
                .unwrap_or("see README.md, \"Real encoder weights\"");
            notes.push(format!(
                "feature set `{name}` not run: encoder `{}` has no config.json + model.safetensors in {} ({hint})",
                cfg.encoder,
                dir.display()
            ));
            continue;
        }
        sets.push(FeatureSet::from_config(name, cfg)?);
    }
    let mut stages: Vec<Box<dyn Stage>> = vec![
        Box::new(Render::new(dataset.clone(), config.render.clone())),
        Box::new(Decode::new(dataset.clone(), config.decode.clone())),
        Box::new(Resample::new(dataset.clone(), config.resample.clone())),
        Box::new(Manifest::new(dataset.clone())),
    ];
    if !sets.is_empty() {
        stages.push(Box::new(FeatureTables::new(
            dataset.clone(),
            &sets,
            config.encoders.clone(),
        )?));
        stages.insert(
            4,
            Box::new(Features::new(dataset, sets, config.encoders.clone())),
        );
    }
    Ok(Pipeline { stages, notes })
}
