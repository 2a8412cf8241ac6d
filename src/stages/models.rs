//! models: one bundle per experiment that trained (its fold heads, the
//! feature sets and encoders they read, the audio settings, the label scale
//! and the cross-validated metrics), published as `data/out/models/<id>/`
//! for `pipe predict` and `pipe serve`. Keyed like train plus the card
//! without names: retraining or re-evaluating re-exports; editing a name or
//! a description only re-renders the published copies.

use anyhow::{Context, Result};
use arrow_array::Float64Array;
use serde_json::json;
use std::path::Path;

use super::experiments::read_json;
use super::{ALL, EVALUATE, MANIFEST, MODELS, TRAIN};
use crate::dag::{Node, NodeSpec, Publish, Source, Stage, StageDecl};
use crate::experiment::TrainOutput;
use crate::metrics::Evaluation;
use crate::predict::bundle::{
    self, Bundle, CARD_FILE, ClipLengths, CvMetrics, EncoderCard, HEADS_FILE, InputCard,
    LabelScale, ModelCard, README_FILE,
};
use crate::table;

/// Weight files of input `i`'s encoder, as node inputs.
fn weight_inputs(i: usize) -> [String; 2] {
    [format!("encoder{i}.config"), format!("encoder{i}.weights")]
}

pub struct Models {
    /// Per experiment that trains: its card without what comes from inputs
    /// (heads, metrics, clip lengths, weight hashes).
    cards: Vec<ModelCard>,
    /// Each card's train/evaluate item: its experiment on its first split.
    items: Vec<String>,
}

/// The names and descriptions of a card: not part of its key (renaming a
/// feature set or editing a description recomputes nothing); the store's
/// bundle has them blank and the published copies get them back.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
struct Names {
    experiment: String,
    description: String,
    /// Per input: feature set name, its description, its encoder's name.
    inputs: Vec<(String, String, Option<String>)>,
}

impl Names {
    fn of(card: &ModelCard) -> Names {
        Names {
            experiment: card.experiment.clone(),
            description: card.description.clone(),
            inputs: card
                .inputs
                .iter()
                .map(|i| {
                    let enc = i.encoder.as_ref().map(|e| e.name.clone());
                    (i.feature_set.clone(), i.config.description.clone(), enc)
                })
                .collect(),
        }
    }

    /// Writes these names into `card`.
    fn apply(&self, card: &mut ModelCard) {
        card.experiment.clone_from(&self.experiment);
        card.description.clone_from(&self.description);
        for (i, (set, desc, enc)) in card.inputs.iter_mut().zip(&self.inputs) {
            i.feature_set.clone_from(set);
            i.config.description.clone_from(desc);
            if let (Some(e), Some(name)) = (i.encoder.as_mut(), enc) {
                e.name.clone_from(name);
            }
        }
    }

    /// `card` with every name and description blank.
    fn blank(card: &ModelCard) -> ModelCard {
        let mut c = card.clone();
        let none = Names {
            experiment: String::new(),
            description: String::new(),
            inputs: card
                .inputs
                .iter()
                .map(|i| {
                    (
                        String::new(),
                        String::new(),
                        i.encoder.as_ref().map(|_| String::new()),
                    )
                })
                .collect(),
        };
        none.apply(&mut c);
        c
    }
}

impl Models {
    /// `cards` with the train item each bundles (the experiment on its first split).
    pub fn new(cards: Vec<(ModelCard, String)>) -> Models {
        let (cards, items) = cards.into_iter().unzip();
        Models { cards, items }
    }
}

impl Stage for Models {
    fn decl(&self) -> &'static StageDecl {
        &MODELS
    }
    fn describe(&self) -> String {
        "per experiment: a model bundle (fold heads, feature sets, encoder identity, CV metrics) for pipe predict".into()
    }
    fn plan(&self) -> Result<Vec<NodeSpec>> {
        Ok(self
            .cards
            .iter()
            .zip(&self.items)
            .map(|(card, item)| {
                let id = &card.experiment;
                let mut inputs = vec![
                    ("train".into(), Source::node(&TRAIN, item.clone())),
                    ("evaluate".into(), Source::node(&EVALUATE, item.clone())),
                    ("manifest".into(), Source::node(&MANIFEST, ALL)),
                ];
                for (i, input) in card.inputs.iter().enumerate() {
                    if let Some(dir) = input
                        .encoder
                        .as_ref()
                        .and_then(|e| e.config.weights.as_ref())
                    {
                        let [c, w] = weight_inputs(i);
                        inputs.push((c, Source::File(dir.join("config.json"))));
                        inputs.push((w, Source::File(dir.join("model.safetensors"))));
                    }
                }
                let blank = Names::blank(card);
                NodeSpec::new(id.clone(), json!({ "card": blank }), inputs).with_plan(blank)
            })
            .collect())
    }
    fn run(&self, node: &Node, out: &Path) -> Result<()> {
        let mut card: ModelCard = node.plan::<ModelCard>()?.clone();
        let train = TrainOutput::read_with_heads(&node.input("train")?.path)?;
        let heads = &train.heads;
        let eval: Evaluation = read_json(&node.input("evaluate")?.path)?;
        card.clips = clip_lengths(&node.input("manifest")?.path, &train.clip_ids)?;
        card.cv = CvMetrics {
            folds: eval.folds.len(),
            clips: train.clip_ids.len(),
            r2: eval.r2,
            r2_ci: [eval.r2_ci.lo, eval.r2_ci.hi],
            mae: eval.mae,
            pearson_r: eval.pearson_r,
            study_r2: crate::head::mean_best_val_r2(&train.fold_reports),
            // How its heads were trained (`held_out_pieces` or `test_fold`).
            validation: serde_json::to_value(
                heads
                    .first()
                    .context("the train artifact holds no heads")?
                    .config()
                    .validation,
            )?
            .as_str()
            .unwrap_or_default()
            .to_string(),
            r2_per_dimension: eval.per_dim.iter().map(|d| d.r2).collect(),
        };
        for (i, input) in card.inputs.iter_mut().enumerate() {
            let Some(enc) = input.encoder.as_mut() else {
                continue;
            };
            let [c, w] = weight_inputs(i);
            if let (Ok(c), Ok(w)) = (node.input(&c), node.input(&w)) {
                enc.config_hash = Some(c.hash.to_string());
                enc.weights_hash = Some(w.hash.to_string());
                enc.identity = format!("blake3:{} (model.safetensors)", w.hash);
            }
        }
        Bundle::to_file(&card, heads)?.write(out)
    }
    fn publish(&self, nodes: &[&Node]) -> Result<Vec<Publish>> {
        let mut files = Vec::new();
        for n in nodes {
            let Some(card) = self.cards.iter().find(|c| c.experiment == n.item) else {
                continue;
            };
            let names = Names::of(card);
            let extra = serde_json::to_string(&names)?;
            let dir = format!("models/{}/", n.item);
            let with_names = names.clone();
            files.push(Publish::rendered(
                format!("{dir}{HEADS_FILE}"),
                &n.path,
                extra.clone(),
                move |src, dest| {
                    let mut file = crate::tensors::TensorFile::read(src)?;
                    let mut card: ModelCard =
                        serde_json::from_str(file.meta_str(bundle::META_CARD, "bundle")?)?;
                    with_names.apply(&mut card);
                    file.meta(bundle::META_CARD, serde_json::to_string(&card)?);
                    file.write(dest)
                },
            ));
            let with_names = names.clone();
            files.push(Publish::rendered(
                format!("{dir}{CARD_FILE}"),
                &n.path,
                extra.clone(),
                move |src, dest| write_card(src, dest, &with_names, bundle::card_json),
            ));
            files.push(Publish::rendered(
                format!("{dir}{README_FILE}"),
                &n.path,
                extra,
                move |src, dest| write_card(src, dest, &names, |c| Ok(bundle::readme(c))),
            ));
        }
        Ok(files)
    }
}

/// Renders a published file from the bundle's card.
fn write_card(
    src: &Path,
    dest: &Path,
    names: &Names,
    render: impl Fn(&ModelCard) -> Result<String>,
) -> Result<()> {
    let mut card: ModelCard = crate::tensors::read_metadata_json(src, bundle::META_CARD)?;
    names.apply(&mut card);
    std::fs::write(dest, render(&card)?).with_context(|| format!("writing {}", dest.display()))
}

/// Lengths of the clips an experiment trained on, from the manifest.
fn clip_lengths(manifest: &Path, clip_ids: &[String]) -> Result<ClipLengths> {
    let batch = table::read_single(manifest)?;
    let ctx = || format!("manifest {}", manifest.display());
    let ids = table::column::<arrow_array::StringArray>(&batch, "clip_id").with_context(ctx)?;
    let dur = table::column::<Float64Array>(&batch, "duration_s").with_context(ctx)?;
    let wanted: std::collections::HashSet<&str> = clip_ids.iter().map(String::as_str).collect();
    let mut d: Vec<f64> = (0..batch.num_rows())
        .filter(|&i| wanted.contains(ids.value(i)))
        .map(|i| dur.value(i))
        .collect();
    anyhow::ensure!(!d.is_empty(), "{}: none of the trained clips", ctx());
    d.sort_by(f64::total_cmp);
    Ok(ClipLengths {
        n: d.len(),
        median_s: crate::metrics::percentile(&d, 0.5),
        min_s: d[0],
        max_s: d[d.len() - 1],
    })
}

/// An experiment's model card as far as the config says: the models stage
/// fills in the heads, metrics, clip lengths and weight hashes.
pub(super) fn card_from_config(
    config: &crate::config::Config,
    id: &str,
    exp: &crate::config::ExperimentConfig,
    passes: Option<&super::EncoderPasses>,
) -> Result<ModelCard> {
    let inputs = std::iter::once(&exp.features)
        .chain(exp.second_features.as_ref())
        .map(|name| {
            let fs = &config.features[name];
            let set = crate::features::FeatureSet::from_config(name, fs)?;
            let f16_states = match (set.spec(), passes) {
                (Some(spec), Some(p)) => p.extractor().cached_states(&fs.encoder, spec),
                _ => None,
            };
            Ok(InputCard {
                feature_set: name.clone(),
                config: fs.clone(),
                encoder: config
                    .encoders
                    .get(&fs.encoder)
                    .map(|e| encoder_card(&fs.encoder, e)),
                f16_states,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let labels = match &config.dataset {
        crate::dataset::DatasetConfig::Percepiano { .. } => LabelScale {
            description: "PercePiano labels: mean rating / 7, in [1/7, 1]".into(),
            rating_multiplier: Some(7.0),
            rating_scale: Some("PercePiano's 1-7 rating scale".into()),
        },
        crate::dataset::DatasetConfig::AudioFolder { labels, .. } => LabelScale {
            description: format!("the scale of the training labels ({})", labels.display()),
            rating_multiplier: None,
            rating_scale: None,
        },
    };
    Ok(ModelCard {
        format: bundle::FORMAT.into(),
        experiment: id.to_string(),
        description: exp.description.clone(),
        pipe_version: env!("CARGO_PKG_VERSION").into(),
        predictor: "the mean of the K cross-validation fold heads' outputs: each fold head is \
                    what the cross-validated metrics measured (early stopped on held-out \
                    pieces), no second training run is needed, and averaging heads trained on \
                    different pieces lowers the variance of the scores"
            .into(),
        dimensions: bundle::dimension_names(),
        labels,
        inputs,
        decode: config.decode.clone(),
        resample: config.resample.clone(),
        // Filled in from the node's inputs when it runs.
        clips: ClipLengths::default(),
        cv: CvMetrics::default(),
        heads: Vec::new(),
    })
}

/// A control encoder's identity line.
fn control_identity(enc: &crate::encoder::EncoderConfig) -> String {
    format!(
        "CONTROL (seeded random-init, never pre-trained: {} preset `{}`, seed {})",
        enc.arch,
        enc.random.as_deref().unwrap_or("?"),
        enc.seed
    )
}

/// An encoder's card before its weights are hashed.
fn encoder_card(name: &str, enc: &crate::encoder::EncoderConfig) -> EncoderCard {
    EncoderCard {
        name: name.to_string(),
        config: enc.clone(),
        identity: if enc.random.is_some() {
            control_identity(enc)
        } else {
            "weights not hashed yet".into()
        },
        config_hash: None,
        weights_hash: None,
    }
}
