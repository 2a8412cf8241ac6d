//! The pipeline's stages, one file each, and the order they run in.
//! Each stage is a thin adapter: it declares nodes (params + inputs) for the
//! DAG engine and calls domain code (`audio`, `dataset`, `encoder`,
//! `features`) to compute them.

mod decode;
mod experiments;
mod features;
mod manifest;
mod render;
mod report;
mod resample;

pub use decode::Decode;
pub use experiments::{Evaluate, Train};
pub use features::{FeatureSet, FeatureTables, Features, read_vector};
pub use manifest::Manifest;
pub use render::Render;
pub use report::{Experiments, Plots, Report, ResultTables};
pub use resample::Resample;

use anyhow::Result;
use std::sync::Arc;

use crate::config::Config;
use crate::dag::Stage;
use crate::dataset::Dataset;
use crate::report::ExperimentInfo;

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
    // Feature set -> why it does not run.
    let mut skipped: std::collections::BTreeMap<&str, String> = Default::default();
    // Encoder -> (why, its skipped feature sets), for one note per encoder.
    let mut absent: std::collections::BTreeMap<&str, (String, Vec<&str>)> = Default::default();
    for (name, cfg) in &config.features {
        if let Some(enc) = config.encoders.get(&cfg.encoder)
            && let Some(dir) = &enc.weights
            && !(dir.join("config.json").is_file() && dir.join("model.safetensors").is_file())
        {
            let hint = enc
                .download_hint
                .as_deref()
                .unwrap_or("see README.md, \"Real encoder weights\"");
            let why = format!(
                "no config.json + model.safetensors for encoder `{}` in {} ({hint})",
                cfg.encoder,
                dir.display()
            );
            skipped.insert(name, why.clone());
            absent
                .entry(cfg.encoder.as_str())
                .or_insert((why, Vec::new()))
                .1
                .push(name);
            continue;
        }
        sets.push(FeatureSet::from_config(name, cfg)?);
    }
    // Every encoder that will run reads as the architecture it claims (its
    // weights' config.json, or its preset), before any work starts.
    let used: std::collections::BTreeSet<&str> =
        sets.iter().map(|s| s.cfg.encoder.as_str()).collect();
    for name in used {
        if let Some(enc) = config.encoders.get(name) {
            features::arch_config(name, enc)?;
        }
    }
    for (why, names) in absent.values() {
        notes.push(format!(
            "{why}: {} feature set(s) not run: {}",
            names.len(),
            names.join(", ")
        ));
    }
    let mut stages: Vec<Box<dyn Stage>> = vec![
        Box::new(Render::new(dataset.clone(), config.render.clone())),
        Box::new(Decode::new(dataset.clone(), config.decode.clone())),
        Box::new(Resample::new(dataset.clone(), config.resample.clone())),
        Box::new(Manifest::new(dataset.clone())),
    ];
    if !sets.is_empty() {
        let tables = FeatureTables::new(dataset.clone(), &sets, config.encoders.clone())?;
        stages.push(Box::new(Features::new(
            dataset,
            sets,
            config.encoders.clone(),
        )));
        stages.push(Box::new(tables));
    }
    if config.experiments.is_empty() {
        return Ok(Pipeline { stages, notes });
    }
    let infos: Vec<ExperimentInfo> = config
        .experiments
        .iter()
        .map(|(id, exp)| {
            let fs = &config.features[&exp.features];
            ExperimentInfo {
                id: id.clone(),
                description: exp.description.clone(),
                features: exp.features.clone(),
                encoder: fs.encoder.clone(),
                control: config
                    .encoders
                    .get(&fs.encoder)
                    .is_some_and(|e| e.random.is_some()),
                // A two-input experiment needs both of its feature sets.
                not_run: skipped
                    .get(exp.features.as_str())
                    .or_else(|| exp.second_features.as_deref().and_then(|f| skipped.get(f)))
                    .cloned(),
            }
        })
        .collect();
    let not_run: Vec<&str> = infos
        .iter()
        .filter(|i| i.not_run.is_some())
        .map(|i| i.id.as_str())
        .collect();
    if !not_run.is_empty() {
        notes.push(format!(
            "{} experiment(s) not run, their feature sets are skipped (listed in report.md): {}",
            not_run.len(),
            not_run.join(", ")
        ));
    }
    let mut report = config.report.clone();
    if let Some(id) = &report.scatter
        && not_run.contains(&id.as_str())
    {
        notes.push(format!(
            "report.scatter = {id:?} did not run; the scatter shows the best experiment"
        ));
        report.scatter = None;
    }
    let runnable: Vec<_> = config
        .experiments
        .iter()
        .filter(|(id, _)| !not_run.contains(&id.as_str()))
        .map(|(id, e)| (id.clone(), e.clone()))
        .collect();
    let experiments = Experiments { infos, report };
    // With nothing runnable, the tables and report still list what did not run.
    let any_ran = !runnable.is_empty();
    if any_ran {
        let ids = runnable.iter().map(|(id, _)| id.clone()).collect();
        stages.push(Box::new(Train::new(runnable)));
        stages.push(Box::new(Evaluate::new(ids, config.evaluation.clone())));
    }
    stages.push(Box::new(ResultTables(experiments.clone())));
    if any_ran {
        stages.push(Box::new(Plots(experiments.clone())));
    }
    stages.push(Box::new(Report(experiments)));
    Ok(Pipeline { stages, notes })
}
