//! A model bundle: everything needed to score a new recording with one
//! experiment, in one safetensors file (`heads.safetensors`: the fold heads'
//! tensors, the model card as JSON in its metadata), published beside a
//! readable copy of the card (`model.json`) and a `README.md`.
//!
//! The predictor is the mean of the experiment's K cross-validation fold
//! heads, not a refit on every clip: each fold head is exactly what the
//! cross-validated metrics measured (trained on 3/4 of the pieces, early
//! stopped on held-out pieces); a refit would have no held-out pieces to
//! stop on and would need a second training run per experiment. Averaging K
//! heads trained on different pieces also lowers the variance of the scores;
//! the metrics in the card are those of single fold heads on unseen pieces,
//! so the mean's accuracy is not measured, only expected to be no worse.

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::config::{DecodeConfig, ResampleConfig};
use crate::dims::{DIMENSIONS, N_DIMS};
use crate::encoder::EncoderConfig;
use crate::features::FeatureSetConfig;
use crate::head::{FoldHead, HeadDescriptor};
use crate::tensors::TensorFile;

/// Bundle format; bumped when the card or tensor layout changes.
pub const FORMAT: &str = "pipe-model-v1";
/// Metadata key of the card in `heads.safetensors`.
pub const META_CARD: &str = "pipe.model";
/// The bundle's files under `data/out/models/<experiment>/`.
pub const HEADS_FILE: &str = "heads.safetensors";
pub const CARD_FILE: &str = "model.json";
pub const README_FILE: &str = "README.md";

/// What a bundle predicts, from what, and how well.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub format: String,
    pub experiment: String,
    pub description: String,
    pub pipe_version: String,
    /// How the K fold heads make one prediction.
    pub predictor: String,
    /// The 19 outputs, in order.
    pub dimensions: Vec<String>,
    pub labels: LabelScale,
    /// One feature set, or two for a fusion head (in the head's order).
    pub inputs: Vec<InputCard>,
    /// How a file becomes the encoders' audio (as the pipeline decoded and resampled).
    pub decode: DecodeConfig,
    pub resample: ResampleConfig,
    /// Durations of the clips it was trained on (seconds).
    pub clips: ClipLengths,
    /// Cross-validated metrics of the experiment (piece-split folds).
    pub cv: CvMetrics,
    pub heads: Vec<HeadDescriptor>,
}

/// The scale of the labels the heads were trained on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelScale {
    pub description: String,
    /// Multiply a label-scale score by this for the rating scale (PercePiano:
    /// 7, its labels being mean ratings / 7); `None` where the dataset's
    /// labels have no other scale.
    pub rating_multiplier: Option<f64>,
    pub rating_scale: Option<String>,
}

/// One feature set the head reads and the encoder that makes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputCard {
    pub feature_set: String,
    pub config: FeatureSetConfig,
    /// `None` for a weight-free baseline or a symbolic set.
    pub encoder: Option<EncoderCard>,
    /// The pipeline pooled it from f16-rounded hidden states (`cache_states`):
    /// predict rounds the same way, so features match.
    pub f16_states: Option<Vec<usize>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EncoderCard {
    pub name: String,
    pub config: EncoderConfig,
    /// `CONTROL (...)` for seeded random weights, else `blake3:<hex>` of the
    /// weights file: predict refuses weights whose hash differs.
    pub identity: String,
    /// blake3 of `config.json` and `model.safetensors` (real weights only).
    pub config_hash: Option<String>,
    pub weights_hash: Option<String>,
}

impl EncoderCard {
    pub fn is_control(&self) -> bool {
        self.config.random.is_some()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClipLengths {
    pub n: usize,
    pub median_s: f64,
    pub min_s: f64,
    pub max_s: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CvMetrics {
    pub folds: usize,
    pub clips: usize,
    /// Mean over folds of the fold R² (the ranking's number).
    pub r2: f64,
    pub r2_ci: [f64; 2],
    pub mae: f64,
    pub pearson_r: Option<f64>,
    /// Mean over folds of each fold's best validation R²: the study's own
    /// aggregate (optimistic under `validation = "test_fold"`).
    pub study_r2: Option<f64>,
    pub validation: String,
    /// Per dimension, in `dimensions` order.
    pub r2_per_dimension: Vec<f64>,
}

/// A loaded bundle: the card and the fold heads.
#[derive(Clone, Debug)]
pub struct Bundle {
    pub card: ModelCard,
    pub heads: Vec<FoldHead>,
    /// Where it was read from (for messages).
    pub path: PathBuf,
}

impl ModelCard {
    /// Whether any input comes from a seeded random-init control encoder.
    pub fn uses_control(&self) -> bool {
        self.inputs
            .iter()
            .any(|i| i.encoder.as_ref().is_some_and(EncoderCard::is_control))
    }
}

impl Bundle {
    /// The bundle's single file: heads as tensors, the card in the metadata.
    pub fn to_file(card: &ModelCard, heads: &[FoldHead]) -> Result<TensorFile> {
        let mut file = TensorFile::new();
        let mut card = card.clone();
        card.heads = FoldHead::save_all(heads, &mut file);
        file.meta(META_CARD, serde_json::to_string(&card)?);
        Ok(file)
    }

    /// Reads a bundle from its folder or its `heads.safetensors`.
    pub fn read(path: &Path) -> Result<Bundle> {
        let file_path = if path.is_dir() {
            path.join(HEADS_FILE)
        } else {
            path.to_path_buf()
        };
        let what = file_path.display().to_string();
        let file = TensorFile::read(&file_path).context("reading the model bundle")?;
        let card: ModelCard = serde_json::from_str(file.meta_str(META_CARD, &what)?)
            .with_context(|| format!("{what}: its model card (metadata `{META_CARD}`)"))?;
        ensure!(
            card.format == FORMAT,
            "{what}: bundle format `{}`, this pipe reads `{FORMAT}`: run `pipe run` again to re-export it",
            card.format
        );
        ensure!(
            card.dimensions.len() == N_DIMS,
            "{what}: the card lists {} dimensions, expected {N_DIMS}",
            card.dimensions.len()
        );
        ensure!(!card.heads.is_empty(), "{what}: the bundle holds no heads");
        let heads = FoldHead::load_all(&card.heads, &file, &what)?;
        let n_inputs = if heads[0].dims().b.is_some() { 2 } else { 1 };
        if card.inputs.len() != n_inputs {
            bail!(
                "{what}: the heads read {n_inputs} input(s), the card lists {}",
                card.inputs.len()
            );
        }
        Ok(Bundle {
            card,
            heads,
            path: file_path,
        })
    }
}

/// The card as `model.json` (pretty-printed, heads' configs included).
pub fn card_json(card: &ModelCard) -> Result<String> {
    Ok(serde_json::to_string_pretty(card)? + "\n")
}

/// The bundle's `README.md`: what it predicts, from what, how well, how to use it.
pub fn readme(card: &ModelCard) -> String {
    let mut s = format!("# Model bundle: {}\n\n", card.experiment);
    if !card.description.is_empty() {
        s += &format!("{}\n\n", card.description);
    }
    if card.uses_control() {
        s += "**CONTROL.** Its features come from a seeded random-init encoder, never \
              pre-trained: scores from it measure what the architecture alone gives, not a \
              foundation model. Point `pipeline.toml` at real weights (README.md, \"Real \
              encoder weights\") and run `pipe run` for a real model.\n\n";
    }
    let scale = match (&card.labels.rating_scale, card.labels.rating_multiplier) {
        (Some(r), Some(m)) => {
            format!("{r} (label × {m}); `--label-scale` gives the labels' own scale")
        }
        _ => card.labels.description.clone(),
    };
    s += &format!(
        "Predicts the {} PercePiano dimensions on {scale}.\n\n",
        card.dimensions.len()
    );
    s += "## Inputs\n\n";
    for i in &card.inputs {
        let enc = match &i.encoder {
            Some(e) => format!("encoder `{}` ({}), {}", e.name, e.config.arch, e.identity),
            None => format!("weight-free `{}`", i.config.encoder),
        };
        s += &format!(
            "- feature set `{}`: {enc}; layers {}, pooling {}, max frames {}{}\n",
            i.feature_set,
            i.config.layers.as_deref().unwrap_or("-"),
            i.config.pooling.as_deref().unwrap_or("-"),
            i.config.max_frames,
            if i.config.description.is_empty() {
                String::new()
            } else {
                format!(" ({})", i.config.description)
            }
        );
    }
    s += &format!(
        "- audio: decoded to mono, resampled to {} Hz ({:?} sinc); clips shorter than {} s are refused\n",
        card.resample.sample_rate, card.resample.quality, card.decode.min_seconds
    );
    s += &format!(
        "- trained on {} clips of {:.1}-{:.1} s (median {:.1} s): longer recordings are scored in segments of the median length\n\n",
        card.clips.n, card.clips.min_s, card.clips.max_s, card.clips.median_s
    );
    let cv = &card.cv;
    s += "## How well (cross-validated)\n\n";
    s += &format!(
        "{}-fold piece-split cross-validation on {} clips, early stopping on {}: \
         R² {:.3} (95% CI {:.3} to {:.3}), MAE {:.4}, Pearson r {}{}.\n\n",
        cv.folds,
        cv.clips,
        cv.validation,
        cv.r2,
        cv.r2_ci[0],
        cv.r2_ci[1],
        cv.mae,
        cv.pearson_r.map_or("-".into(), |r| format!("{r:.3}")),
        cv.study_r2
            .map_or(String::new(), |r| format!(", study aggregate R² {r:.3}"))
    );
    s += "| dimension | R² |\n|---|---:|\n";
    for (d, r) in card.dimensions.iter().zip(&cv.r2_per_dimension) {
        s += &format!("| {d} | {r:.3} |\n");
    }
    s += &format!("\n## Predictor\n\n{}\n\n", card.predictor);
    s += &format!(
        "## Use\n\n```sh\npipe predict --model data/out/models/{0} take1.wav\npipe serve --model data/out/models/{0}\n```\n\n\
         Files: `{HEADS_FILE}` (the {1} fold heads as tensors `fold<k>.params`, \
         `fold<k>.standardizer.<i>.mean|inv_std`, with this card in its metadata under \
         `{META_CARD}`; any safetensors reader opens it), `{CARD_FILE}` (this card as JSON), \
         `{README_FILE}`.\n",
        card.experiment,
        card.heads.len()
    );
    s
}

/// The canonical dimension names, for cards.
pub fn dimension_names() -> Vec<String> {
    DIMENSIONS.iter().map(|d| d.to_string()).collect()
}

/// A card of a weight-free experiment, for tests.
#[cfg(test)]
pub(crate) fn sample_card() -> ModelCard {
    ModelCard {
        format: FORMAT.into(),
        experiment: "X".into(),
        description: "a test".into(),
        pipe_version: "0".into(),
        predictor: "mean".into(),
        dimensions: dimension_names(),
        labels: LabelScale {
            description: "mean rating / 7".into(),
            rating_multiplier: Some(7.0),
            rating_scale: Some("1-7".into()),
        },
        inputs: vec![InputCard {
            feature_set: "raw".into(),
            config: FeatureSetConfig {
                encoder: "raw_stats".into(),
                layers: None,
                pooling: None,
                max_frames: 1000,
                description: String::new(),
            },
            encoder: None,
            f16_states: None,
        }],
        decode: DecodeConfig::default(),
        resample: ResampleConfig::default(),
        clips: ClipLengths {
            n: 10,
            median_s: 10.0,
            min_s: 5.0,
            max_s: 20.0,
        },
        cv: CvMetrics {
            folds: 4,
            clips: 10,
            r2: 0.1,
            r2_ci: [0.0, 0.2],
            mae: 0.1,
            pearson_r: None,
            study_r2: None,
            validation: "held_out_pieces".into(),
            r2_per_dimension: vec![0.1; N_DIMS],
        },
        heads: Vec::new(),
    }
}
