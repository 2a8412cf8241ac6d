//! The pipeline's stages, one file each, and the order they run in.
//! Each stage is a thin adapter: it declares nodes (params + inputs + its typed
//! plan of the node) for the DAG engine and calls domain code (`audio`,
//! `dataset`, `encoder`, `features`, `experiment`, `report`) to compute them.
//!
//! Must not be imported by domain modules: only `cli` (and tests) build
//! pipelines.

mod decode;
mod encoder_passes;
mod experiments;
mod feature_tables;
mod features;
mod manifest;
mod models;
mod render;
mod report;
mod resample;

pub use decode::Decode;
pub use encoder_passes::EncoderPasses;
pub use experiments::{Evaluate, Train, TrainJob};
pub use feature_tables::FeatureTables;
pub use features::Features;
pub use manifest::Manifest;
pub use models::Models;
pub use render::Render;
pub use report::{Experiments, Plots, Report, ResultTables};
pub use resample::Resample;

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::Config;
use crate::dag::{Node, Stage, StageDecl};
use crate::dataset::folds::Split;
use crate::dataset::{Clip, Dataset, FailedClip, SourceKind};
use crate::encoder::{EncoderConfig, runtime};
use crate::experiment::label_only::LabelOnly;
use crate::features::{Extractor, FeatureSet};
use crate::report::ExperimentInfo;

// Every stage, declared once, in run order: name, code version (bump it when
// the stage's code changes its artifacts' bytes), artifact type, what it reads,
// and what one node is (for progress). Stages name each other by these, never
// by string.

/// performance MIDI -> 16-bit WAV (per clip; reads the MIDI and SoundFont files)
pub static RENDER: StageDecl = StageDecl::new("render", 1, "wav", &[]).per("clips");
/// audio file or rendered WAV -> mono f32 WAV at the source rate (per clip)
pub static DECODE: StageDecl = StageDecl::new("decode", 1, "wav", &[&RENDER]).per("clips");
/// -> mono f32 WAV at the encoders' rate (per clip)
pub static RESAMPLE: StageDecl = StageDecl::new("resample", 1, "wav", &[&DECODE]).per("clips");
/// the clip table with folds, durations and labels (one node; reads the label
/// files). v2: rows for the clips that made it, failed ones in `pipe.failed`;
/// its `audio` column names the store's `<key>.<hash>.wav` files. v3: each
/// clip's `performer_fold` (the performer and piece_performer splits). v4:
/// `label_se`, each label's standard error (PercePiano's raters' spread).
/// v5: `published_fold` where `dataset.folds.performer_split` names one.
pub static MANIFEST: StageDecl =
    StageDecl::new("manifest", 5, "parquet", &[&RESAMPLE]).per("tables");
/// one pooled vector per (feature set, clip)
pub static FEATURES: StageDecl = StageDecl::new("features", 1, "f32", &[&RESAMPLE]).per("vectors");
/// one Parquet table per feature set. v2: no names or descriptions inside
/// (they are added to the published copy), failed clips in `pipe.failed`.
pub static FEATURE_TABLES: StageDecl =
    StageDecl::new("feature_tables", 2, "parquet", &[&FEATURES]).per("tables");
/// out-of-fold predictions per experiment and split (k-fold CV; on the
/// piece split, items and artifacts as before splits). v2: each
/// fold's report holds its best validation R² (`best_val_r2`). v3: a
/// safetensors file: the fold heads as tensors, the predictions and reports
/// as JSON in its metadata (`pipe.train`). v4: pooled linear and MLP heads
/// train on the hand-written path whatever their depth, schedule and
/// clipping (they took the autodiff one; predictions agree within 1e-4).
/// v5: the mel-CNN's 3×3 convolutions as shifted copies and a matmul
/// (`head::nn::cnn::conv3x3`: the same sums in another order). v6: the
/// gradient's global norm summed in eight lanes (another order: the clip's
/// coefficient moves in its last bits), `validation = "held_out_epoch"`,
/// the further seeds' predictions of an experiment with `seeds`.
pub static TRAIN: StageDecl =
    StageDecl::new("train", 6, "safetensors", &[&FEATURE_TABLES, &MANIFEST]).per("experiments");
/// metrics per experiment. v2: the study's pooled CI (`pooled_r2_ci`),
/// which the report read by recomputing it. v3: on piece folds the CI
/// resamples pieces within folds (`ci_unit`), the clip-level CI beside it.
/// v4: each clip's cluster, for the paired comparisons of the results.
/// v5: one node per experiment and split, the split's clusters (performers;
/// pieces × performers crossed), R² on the human performances.
pub static EVALUATE: StageDecl =
    StageDecl::new("evaluate", 5, "json", &[&TRAIN, &MANIFEST]).per("experiments");
/// a model bundle per experiment (fold heads + model card), for `pipe predict`
pub static MODELS: StageDecl =
    StageDecl::new("models", 1, "safetensors", &[&TRAIN, &EVALUATE, &MANIFEST]).per("models");
/// the public result tables (their published copies carry the config hash,
/// heads and pipe version). v2: `n_clips` and status `failed` in the
/// summary, the `failed` table. v3: `study_r2` in the summary. v4: the
/// summary's `ci_unit`, clip-level CI and paired ΔR² to the best row. v5:
/// a `split` column in every table but `failed`, `label_only` and
/// `r2_humans` in the summary. v6: `r2_seeds_mean`, `r2_seeds_sd` and
/// `n_seeds` in the summary.
pub static RESULTS: StageDecl =
    StageDecl::new("results", 6, "parquet", &[&TRAIN, &EVALUATE]).per("tables");
/// PNG figures. v2: the bar chart's legend in its own strip, axis titles on
/// the scatter panels.
pub static PLOTS: StageDecl = StageDecl::new("plots", 2, "png", &[&TRAIN, &EVALUATE]).per("plots");
/// report.md. v2: clips per experiment, the failed clips. v3: "The study's
/// protocol", links to README sections. v4: the clip-level CI and the paired
/// ΔR² to the best row in the ranked table. v5: a ranked table per split,
/// "What a model gets without listening", R² on humans. v6: the study's
/// inflation with its paired CI, decomposed where a fixed-epoch copy ran;
/// "Training noise across seeds".
pub static REPORT: StageDecl =
    StageDecl::new("report", 6, "md", &[&TRAIN, &EVALUATE]).per("reports");

/// A partial aggregate's clips (its inputs are named by clip id): those whose
/// input exists, in dataset order, and the failed ones with where and why.
fn present_and_failed<'a>(dataset: &'a Dataset, node: &Node) -> (Vec<&'a Clip>, Vec<FailedClip>) {
    let present = dataset
        .clips
        .iter()
        .filter(|c| node.present(&c.id).is_some())
        .collect();
    let failed = node
        .missing
        .iter()
        .map(|m| dataset.failed_clip(&m.name, m.stage, &m.reason))
        .collect();
    (present, failed)
}

/// Item name of the single node of a whole-dataset stage.
pub const ALL: &str = "all";

/// The stages of one pipeline description, and what was left out and why.
pub struct Pipeline {
    pub stages: Vec<Box<dyn Stage>>,
    /// One line per skipped feature set (e.g. its encoder's weights are absent).
    pub notes: Vec<String>,
    /// The features stage's encoder work (states caches, pass times), if it has one.
    pub passes: Option<Arc<EncoderPasses>>,
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
        if let Some(why) = (config.encoders.get(&cfg.encoder))
            .and_then(|enc| runtime::unavailable(&cfg.encoder, enc))
        {
            skipped.insert(name, why.clone());
            absent
                .entry(cfg.encoder.as_str())
                .or_insert((why, Vec::new()))
                .1
                .push(name);
            continue;
        }
        let set = FeatureSet::from_config(name, cfg)?;
        // Symbolic sets need every clip's performance MIDI: skipped (with a
        // note, their experiments listed as not run) on a dataset of recordings.
        if set.is_symbolic()
            && let Some(c) = dataset
                .clips
                .iter()
                .find(|c| c.source_kind != SourceKind::Midi)
        {
            let why = format!(
                "feature set `{name}` (encoder = \"{}\") reads the performance MIDI, but clip {} is a recording",
                cfg.encoder, c.id
            );
            notes.push(format!("{why}: not run"));
            skipped.insert(name, why);
            continue;
        }
        sets.push(Arc::new(set));
    }
    // Every encoder that will run is checked once, before any work: its
    // architecture (weights' config.json or preset) and window, its weights'
    // tensors and shapes, and the layers each of its feature sets reads. A
    // bad encoder is one error here, not one per clip later.
    let used: std::collections::BTreeSet<&str> =
        sets.iter().map(|s| s.cfg.encoder.as_str()).collect();
    for name in used {
        if let Some(enc) = config.encoders.get(name) {
            let arch = runtime::validate(name, enc)?;
            for set in sets.iter().filter(|s| s.cfg.encoder == name) {
                if let Some(spec) = set.spec() {
                    spec.validate(arch.num_hidden_states()).with_context(|| {
                        format!("features.{}.layers (encoder `{name}`)", set.name)
                    })?;
                }
            }
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
    let mut passes = None;
    if !sets.is_empty() {
        let tables = FeatureTables::new(dataset.clone(), sets.clone(), config.encoders.clone());
        // The encoders the sets use (a states cache needs the architecture).
        let used: BTreeMap<String, EncoderConfig> = (config.encoders.iter())
            .filter(|(name, _)| sets.iter().any(|s| s.cfg.encoder == **name))
            .map(|(name, e)| (name.clone(), e.clone()))
            .collect();
        let states_dir = config.data_dir.join("cache").join("states");
        let extractor = Arc::new(Extractor::new(used, Some(&states_dir))?);
        passes = Some(Arc::new(EncoderPasses::new(
            &config.data_dir,
            extractor.clone(),
        )));
        stages.push(Box::new(Features::new(dataset.clone(), sets, extractor)));
        stages.push(Box::new(tables));
    }
    if config.experiments.is_empty() {
        return Ok(Pipeline {
            stages,
            notes,
            passes,
        });
    }
    // One info per experiment and split (a not-run experiment once, on its
    // first split), then the label-only baselines on [evaluation]'s splits.
    let mut infos: Vec<ExperimentInfo> = Vec::new();
    for (id, exp) in &config.experiments {
        let fs = &config.features[&exp.features];
        let info = ExperimentInfo {
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
            failed: false,
            validation: exp.head.validation,
            setup: crate::report::setup_fingerprint(
                &exp.features,
                exp.second_features.as_deref(),
                &exp.head,
            ),
            split: exp.splits()[0],
            label_only: false,
            symbolic: crate::features::Symbolic::ALL
                .iter()
                .any(|s| s.name() == fs.encoder),
        };
        let splits = if info.not_run.is_some() {
            &exp.splits()[..1]
        } else {
            exp.splits()
        };
        for &split in splits {
            infos.push(ExperimentInfo {
                split,
                ..info.clone()
            });
        }
    }
    // Baselines for the rows that run: none when no experiment does.
    let label_only: &[LabelOnly] = if infos.iter().any(|i| i.not_run.is_none()) {
        &config.evaluation.label_only
    } else {
        &[]
    };
    // ... on every split anything runs on.
    let mut label_only_splits: Vec<Split> = config.evaluation.splits.clone();
    label_only_splits.extend(
        infos
            .iter()
            .filter(|i| i.not_run.is_none())
            .map(|i| i.split),
    );
    label_only_splits.sort();
    label_only_splits.dedup();
    for &b in label_only {
        for &split in &label_only_splits {
            infos.push(ExperimentInfo {
                id: b.id(),
                description: b.description().to_string(),
                features: "labels".into(),
                encoder: "none (label-only)".into(),
                control: false,
                not_run: None,
                failed: false,
                validation: Default::default(),
                setup: String::new(),
                split,
                label_only: true,
                symbolic: false,
            });
        }
    }
    let not_run: Vec<&str> = infos
        .iter()
        .filter(|i| i.not_run.is_some())
        .map(|i| i.id.as_str())
        .collect();
    // Splits on performers need each clip's performer fold.
    let needs_performers = infos.iter().any(|i| {
        i.not_run.is_none() && matches!(i.split, Split::Performer | Split::PiecePerformer)
    });
    if needs_performers && let Some(c) = dataset.clips.iter().find(|c| c.performer_fold.is_none()) {
        anyhow::bail!(
            "a split on performers (\"performer\", \"piece_performer\") needs at least \
             dataset.folds.k = {} performers; clip {} has none assigned (the dataset names \
             fewer performers than folds): name a performer for each clip or use splits = [\"piece\"]",
            config.dataset.folds().k,
            c.id
        );
    }
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
    let provenance = crate::report::tables::Provenance {
        config_hash: config.hash.clone(),
        pipe_version: env!("CARGO_PKG_VERSION").to_string(),
        heads: config
            .experiments
            .iter()
            .map(|(id, e)| Ok((id.clone(), serde_json::to_value(&e.head)?)))
            .collect::<Result<_>>()?,
    };
    let any_ran = infos.iter().any(|i| i.not_run.is_none());
    let experiments = Experiments {
        infos,
        report,
        provenance,
        bootstrap: config.evaluation.bootstrap(),
    };
    // With nothing runnable, the tables and report still list what did not run.
    if any_ran {
        // What training needs of the labels and folds, before any work.
        dataset.check_trainable()?;
        for (id, exp) in &runnable {
            if exp.head.output == crate::head::OutputActivation::Sigmoid {
                dataset.check_label_range(
                    0.0..=1.0,
                    &format!(
                        "the range of experiments.{id}'s sigmoid output: scale the labels to \
                         [0, 1] or set its head output = \"linear\""
                    ),
                )?;
            }
        }
        let cards = runnable
            .iter()
            .map(|(id, exp)| {
                let card = models::card_from_config(config, id, exp, passes.as_deref())?;
                Ok((card, exp.splits()[0].item(id)))
            })
            .collect::<Result<_>>()?;
        let mut jobs: Vec<TrainJob> = Vec::new();
        for (id, cfg) in &runnable {
            for &split in cfg.splits() {
                jobs.push(TrainJob::Head {
                    id: id.clone(),
                    cfg: Box::new(cfg.clone()),
                    split,
                });
            }
        }
        for &b in label_only {
            for &split in &label_only_splits {
                jobs.push(TrainJob::LabelOnly(b, split));
            }
        }
        let items = jobs.iter().map(|j| (j.item(), j.split())).collect();
        stages.push(Box::new(Train::new(jobs)));
        stages.push(Box::new(Evaluate::new(
            items,
            config.evaluation.bootstrap(),
        )));
        stages.push(Box::new(Models::new(cards)));
    }
    stages.push(Box::new(ResultTables(experiments.clone())));
    if any_ran {
        stages.push(Box::new(Plots(experiments.clone())));
    }
    stages.push(Box::new(Report(experiments)));
    Ok(Pipeline {
        stages,
        notes,
        passes,
    })
}
