//! train and evaluate: one node per experiment and split (item `id` on the
//! piece split, `id@split` on the others). Training is keyed by the
//! feature table, the manifest (labels, folds, pieces) and the head settings,
//! so changing a head parameter retrains only that experiment; evaluation is
//! keyed by the predictions and the bootstrap settings, so changing the
//! bootstrap retrains nothing.

use anyhow::{Context, Result};
use serde_json::json;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use super::{ALL, EVALUATE, FEATURE_TABLES, MANIFEST, TRAIN};
use crate::config::ExperimentConfig;
use crate::dag::{Node, NodeSpec, Source, Stage, StageDecl};
use crate::dataset::folds::Split;
use crate::experiment::label_only::{self, LabelOnly};
use crate::experiment::{self, FeatureTable, LabeledClips, TrainOutput};
use crate::metrics::{BootstrapConfig, Evaluation};

pub(crate) fn write_json<T: serde::Serialize>(value: &T, out: &Path) -> Result<()> {
    let mut w =
        BufWriter::new(File::create(out).with_context(|| format!("creating {}", out.display()))?);
    serde_json::to_writer(&mut w, value)
        .and_then(|()| w.flush().map_err(serde_json::Error::io))
        .with_context(|| format!("writing {}", out.display()))
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let r =
        BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?);
    serde_json::from_reader(r).with_context(|| format!("reading {}", path.display()))
}

/// What one train node computes: a head on an experiment's features, or a
/// label-only baseline, cross-validated on one split.
#[derive(Clone, Debug)]
pub enum TrainJob {
    Head {
        id: String,
        cfg: Box<ExperimentConfig>,
        split: Split,
    },
    LabelOnly(LabelOnly, Split),
}

impl TrainJob {
    /// Its experiment id in the tables.
    pub fn id(&self) -> String {
        match self {
            TrainJob::Head { id, .. } => id.clone(),
            TrainJob::LabelOnly(b, _) => b.id(),
        }
    }

    pub fn split(&self) -> Split {
        match self {
            TrainJob::Head { split, .. } | TrainJob::LabelOnly(_, split) => *split,
        }
    }

    /// Its train and evaluate nodes' item: the id, `@split` unless piece.
    pub fn item(&self) -> String {
        self.split().item(&self.id())
    }
}

/// train: out-of-fold predictions of one experiment on one split.
pub struct Train {
    jobs: Vec<TrainJob>,
}

impl Train {
    /// `jobs`: the experiments whose feature sets run, on each of their
    /// splits, and the label-only baselines.
    pub fn new(jobs: Vec<TrainJob>) -> Train {
        Train { jobs }
    }
}

impl Stage for Train {
    fn decl(&self) -> &'static StageDecl {
        &TRAIN
    }
    fn describe(&self) -> String {
        "per experiment and split: head trained with k-fold CV, out-of-fold predictions".into()
    }
    fn plan(&self) -> Result<Vec<NodeSpec>> {
        Ok(self
            .jobs
            .iter()
            .map(|job| {
                let manifest = ("manifest".to_string(), Source::node(&MANIFEST, ALL));
                // The piece split's params are as they were before splits
                // (its artifacts stay fresh).
                let split = job.split();
                let mut params = match job {
                    TrainJob::Head { cfg, .. } => json!({ "head": cfg.head }),
                    TrainJob::LabelOnly(b, _) => json!({ "label_only": b }),
                };
                // Further seeds are further runs (the first is `head.seed`).
                if let TrainJob::Head { cfg, .. } = job
                    && cfg.seeds.len() > 1
                {
                    params["seeds"] = json!(cfg.seeds);
                }
                if split != Split::Piece {
                    params["split"] = json!(split);
                }
                let inputs = match job {
                    TrainJob::Head { cfg, .. } => {
                        let mut inputs = vec![
                            (
                                "features".into(),
                                Source::node(&FEATURE_TABLES, cfg.features.clone()),
                            ),
                            manifest,
                        ];
                        // Two-input heads: the second feature set is one more input.
                        if let Some(second) = &cfg.second_features {
                            let table = Source::node(&FEATURE_TABLES, second.clone());
                            inputs.push(("second_features".into(), table));
                        }
                        inputs
                    }
                    TrainJob::LabelOnly(..) => vec![manifest],
                };
                NodeSpec::new(job.item(), params, inputs).with_plan(job.clone())
            })
            .collect())
    }
    fn run(&self, node: &Node, out: &Path) -> Result<()> {
        let job: &TrainJob = node.plan()?;
        let clips = LabeledClips::from_manifest(&node.input("manifest")?.path)?;
        let (cfg, split) = match job {
            TrainJob::Head { cfg, split, .. } => (cfg, *split),
            TrainJob::LabelOnly(b, split) => {
                return label_only::predict(*b, &clips, *split)
                    .with_context(|| format!("label-only baseline {}", node.item))?
                    .write(out);
            }
        };
        let features = FeatureTable::read(&node.input("features")?.path)?;
        let second = match &cfg.second_features {
            Some(_) => Some(FeatureTable::read(&node.input("second_features")?.path)?),
            None => None,
        };
        let extra_seeds = cfg.seeds.get(1..).unwrap_or_default();
        let trained = experiment::train(
            &cfg.head,
            &clips,
            &features,
            second.as_ref(),
            split,
            extra_seeds,
        )
        .with_context(|| match &cfg.second_features {
            Some(s) => format!(
                "experiment {} (features `{}`, second_features `{s}`)",
                node.item, cfg.features
            ),
            None => format!("experiment {} (features `{}`)", node.item, cfg.features),
        })?;
        trained.write(out)
    }
}

/// evaluate: every metric of one experiment's out-of-fold predictions on
/// one split, its CI resampling the split's clusters.
pub struct Evaluate {
    /// (item, split) of every train node.
    items: Vec<(String, Split)>,
    bootstrap: BootstrapConfig,
}

impl Evaluate {
    pub fn new(items: Vec<(String, Split)>, bootstrap: BootstrapConfig) -> Evaluate {
        Evaluate { items, bootstrap }
    }
}

impl Stage for Evaluate {
    fn decl(&self) -> &'static StageDecl {
        &EVALUATE
    }
    fn describe(&self) -> String {
        "per experiment and split: R2, MAE, Pearson (+p), dispersion per fold and dimension, clustered bootstrap CI"
            .into()
    }
    fn plan(&self) -> Result<Vec<NodeSpec>> {
        Ok(self
            .items
            .iter()
            .map(|(item, split)| {
                let inputs = vec![
                    ("train".into(), Source::node(&TRAIN, item.clone())),
                    ("manifest".into(), Source::node(&MANIFEST, ALL)),
                ];
                let params = json!({ "bootstrap": self.bootstrap, "ci_unit": split.ci_unit() });
                NodeSpec::new(item.clone(), params, inputs)
            })
            .collect())
    }
    fn run(&self, node: &Node, out: &Path) -> Result<()> {
        let trained = TrainOutput::read(&node.input("train")?.path)?;
        let clips = LabeledClips::from_manifest(&node.input("manifest")?.path)?;
        let evaluation: Evaluation = trained
            .evaluate_split(&self.bootstrap, &clips)
            .with_context(|| format!("evaluating experiment {}", node.item))?;
        write_json(&evaluation, out)
    }
}
