//! train and evaluate: one node per experiment. Training is keyed by the
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

/// train: out-of-fold predictions of one experiment (piece-split CV).
pub struct Train {
    experiments: Vec<(String, ExperimentConfig)>,
}

impl Train {
    /// `experiments`: the ones whose feature sets run.
    pub fn new(experiments: Vec<(String, ExperimentConfig)>) -> Train {
        Train { experiments }
    }
}

impl Stage for Train {
    fn decl(&self) -> &'static StageDecl {
        &TRAIN
    }
    fn describe(&self) -> String {
        "per experiment: head trained with k-fold piece-split CV, out-of-fold predictions".into()
    }
    fn plan(&self) -> Result<Vec<NodeSpec>> {
        Ok(self
            .experiments
            .iter()
            .map(|(id, cfg)| {
                let mut inputs = vec![
                    (
                        "features".into(),
                        Source::node(&FEATURE_TABLES, cfg.features.clone()),
                    ),
                    ("manifest".into(), Source::node(&MANIFEST, ALL)),
                ];
                // Two-input heads: the second feature set is one more input.
                if let Some(second) = &cfg.second_features {
                    let table = Source::node(&FEATURE_TABLES, second.clone());
                    inputs.push(("second_features".into(), table));
                }
                NodeSpec::new(id.clone(), json!({ "head": cfg.head }), inputs)
                    .with_plan(cfg.clone())
            })
            .collect())
    }
    fn run(&self, node: &Node, out: &Path) -> Result<()> {
        let cfg: &ExperimentConfig = node.plan()?;
        let clips = LabeledClips::from_manifest(&node.input("manifest")?.path)?;
        let features = FeatureTable::read(&node.input("features")?.path)?;
        let second = match &cfg.second_features {
            Some(_) => Some(FeatureTable::read(&node.input("second_features")?.path)?),
            None => None,
        };
        let trained = experiment::train(&cfg.head, &clips, &features, second.as_ref())
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

/// evaluate: every metric of one experiment's out-of-fold predictions.
pub struct Evaluate {
    ids: Vec<String>,
    bootstrap: BootstrapConfig,
    /// The folds keep each piece whole: the CI resamples pieces within folds.
    by_piece: bool,
}

impl Evaluate {
    pub fn new(ids: Vec<String>, bootstrap: BootstrapConfig, by_piece: bool) -> Evaluate {
        Evaluate {
            ids,
            bootstrap,
            by_piece,
        }
    }
}

impl Stage for Evaluate {
    fn decl(&self) -> &'static StageDecl {
        &EVALUATE
    }
    fn describe(&self) -> String {
        "per experiment: R2, MAE, Pearson (+p), dispersion per fold and dimension, bootstrap CI"
            .into()
    }
    fn plan(&self) -> Result<Vec<NodeSpec>> {
        let ci_unit = if self.by_piece { "piece" } else { "clip" };
        Ok(self
            .ids
            .iter()
            .map(|id| {
                let mut inputs = vec![("train".into(), Source::node(&TRAIN, id.clone()))];
                if self.by_piece {
                    inputs.push(("manifest".into(), Source::node(&MANIFEST, ALL)));
                }
                let params = json!({ "bootstrap": self.bootstrap, "ci_unit": ci_unit });
                NodeSpec::new(id.clone(), params, inputs)
            })
            .collect())
    }
    fn run(&self, node: &Node, out: &Path) -> Result<()> {
        let trained = TrainOutput::read(&node.input("train")?.path)?;
        let evaluation: Evaluation = if self.by_piece {
            let clips = LabeledClips::from_manifest(&node.input("manifest")?.path)?;
            trained.evaluate_by_piece(&self.bootstrap, &clips)
        } else {
            trained.evaluate(&self.bootstrap)
        }
        .with_context(|| format!("evaluating experiment {}", node.item))?;
        write_json(&evaluation, out)
    }
}
