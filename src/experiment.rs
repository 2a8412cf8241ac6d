//! One experiment's training data and run: join a feature table with the
//! manifest's labels, folds and pieces, train a head with piece-split
//! cross-validation, and keep the out-of-fold predictions.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use arrow_array::{Array, FixedSizeListArray, Float32Array, Float64Array, Int32Array, StringArray};
use serde::{Deserialize, Serialize};

use crate::dataset::{DIMENSIONS, N_DIMS};
use crate::head::{CvData, FoldReport, HeadConfig, train_cv};
use crate::metrics::{BootstrapConfig, Evaluation, evaluate};
use crate::table;

/// The manifest's view of the clips: ids, pieces, folds and labels.
#[derive(Clone, Debug)]
pub struct LabeledClips {
    pub clip_ids: Vec<String>,
    pub pieces: Vec<String>,
    /// `None`: never held out (PercePiano's performer split trains on these always).
    pub folds: Vec<Option<usize>>,
    /// `[n, 19]` in canonical dimension order.
    pub labels: Vec<f32>,
}

impl LabeledClips {
    /// Reads `manifest.parquet` (clip_id, piece, fold, and one column per dimension).
    pub fn from_manifest(path: &Path) -> Result<LabeledClips> {
        let batch = table::read_single(path)?;
        let ctx = || format!("manifest {}", path.display());
        let ids = table::column::<StringArray>(&batch, "clip_id").with_context(ctx)?;
        let pieces = table::column::<StringArray>(&batch, "piece").with_context(ctx)?;
        let folds = table::column::<Int32Array>(&batch, "fold").with_context(ctx)?;
        let dims = DIMENSIONS
            .iter()
            .map(|d| table::column::<Float64Array>(&batch, d).with_context(ctx))
            .collect::<Result<Vec<_>>>()?;
        let n = batch.num_rows();
        let mut labels = Vec::with_capacity(n * N_DIMS);
        for i in 0..n {
            labels.extend(dims.iter().map(|c| c.value(i) as f32));
        }
        Ok(LabeledClips {
            clip_ids: (0..n).map(|i| ids.value(i).to_string()).collect(),
            pieces: (0..n).map(|i| pieces.value(i).to_string()).collect(),
            folds: (0..n)
                .map(|i| (!folds.is_null(i)).then(|| folds.value(i) as usize))
                .collect(),
            labels,
        })
    }
}

/// A feature set's table: one vector per clip.
#[derive(Clone, Debug)]
pub struct FeatureTable {
    pub clip_ids: Vec<String>,
    pub dim: usize,
    /// `[n, dim]`.
    pub values: Vec<f32>,
}

impl FeatureTable {
    /// Reads `<feature_set>.parquet` (clip_id, features: FixedSizeList<Float32, D>).
    pub fn read(path: &Path) -> Result<FeatureTable> {
        let batch = table::read_single(path)?;
        let ctx = || format!("feature table {}", path.display());
        let ids = table::column::<StringArray>(&batch, "clip_id").with_context(ctx)?;
        let list = table::column::<FixedSizeListArray>(&batch, "features").with_context(ctx)?;
        let dim = list.value_length() as usize;
        let values = list
            .values()
            .as_any()
            .downcast_ref::<Float32Array>()
            .with_context(|| format!("{}: features are not Float32", ctx()))?;
        Ok(FeatureTable {
            clip_ids: (0..batch.num_rows())
                .map(|i| ids.value(i).to_string())
                .collect(),
            dim,
            values: values.values()[..batch.num_rows() * dim].to_vec(),
        })
    }
}

/// What training an experiment produces: out-of-fold predictions for every
/// clip (each from the head that never saw its fold) and the true labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainOutput {
    pub clip_ids: Vec<String>,
    pub folds: Vec<usize>,
    /// `[n, 19]`.
    pub y_true: Vec<f32>,
    /// `[n, 19]`.
    pub y_pred: Vec<f32>,
    pub d_in: usize,
    /// Wall time of the whole cross-validation (all folds).
    pub train_seconds: f64,
    pub fold_reports: Vec<FoldReport>,
}

/// Trains `head` on `features` with the manifest's piece folds.
pub fn train(
    head: &HeadConfig,
    clips: &LabeledClips,
    features: &FeatureTable,
) -> Result<TrainOutput> {
    let row_of: HashMap<&str, usize> = features
        .clip_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let unfolded = clips.folds.iter().filter(|f| f.is_none()).count();
    if unfolded > 0 {
        bail!(
            "{unfolded} clip(s) have no cross-validation fold (the performer split's always-train clips); \
             training supports folds that cover every clip: use dataset.folds.strategy = \"piece\""
        );
    }
    let d = features.dim;
    let n = clips.clip_ids.len();
    let mut x = Vec::with_capacity(n * d);
    for id in &clips.clip_ids {
        let Some(&r) = row_of.get(id.as_str()) else {
            bail!("the feature table has no row for clip {id}");
        };
        x.extend_from_slice(&features.values[r * d..(r + 1) * d]);
    }
    // Named here, where clip ids are known (the trainer sees row numbers).
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        bail!(
            "feature {} of clip `{}` is {}: the feature table holds a non-finite value",
            i % d,
            clips.clip_ids[i / d],
            x[i]
        );
    }
    let sigmoid = head.output == crate::head::OutputActivation::Sigmoid;
    for (i, id) in clips.clip_ids.iter().enumerate() {
        for (dim, &y) in DIMENSIONS
            .iter()
            .zip(&clips.labels[i * N_DIMS..(i + 1) * N_DIMS])
        {
            if !y.is_finite() || (sigmoid && !(0.0..=1.0).contains(&y)) {
                bail!(
                    "clip `{id}`: label `{dim}` = {y}{}",
                    if sigmoid {
                        " is outside the sigmoid output's range [0, 1]; scale labels to [0, 1] \
                         or set output = \"linear\""
                    } else {
                        " is not a finite number"
                    }
                );
            }
        }
    }
    let folds: Vec<usize> = clips.folds.iter().map(|f| f.unwrap_or(0)).collect();
    let started = Instant::now();
    let out = train_cv(
        head,
        &CvData {
            features: &x,
            d_in: d,
            labels: &clips.labels,
            folds: &folds,
            groups: &clips.pieces,
        },
    )?;
    Ok(TrainOutput {
        clip_ids: clips.clip_ids.clone(),
        folds,
        y_true: clips.labels.clone(),
        y_pred: out.predictions,
        d_in: d,
        train_seconds: started.elapsed().as_secs_f64(),
        fold_reports: out.folds,
    })
}

impl TrainOutput {
    /// All metrics of these out-of-fold predictions.
    pub fn evaluate(&self, boot: &BootstrapConfig) -> Result<Evaluation> {
        evaluate(&self.y_true, &self.y_pred, N_DIMS, &self.folds, boot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::TableBuilder;

    /// A manifest and a feature table on disk where the features determine the labels.
    fn write_tables(dir: &Path, n: usize, learnable: bool) -> (LabeledClips, FeatureTable) {
        let ids: Vec<String> = (0..n).map(|i| format!("clip{i:03}")).collect();
        let pieces: Vec<String> = (0..n).map(|i| format!("piece{}", i / 3)).collect();
        let folds: Vec<Option<i32>> = (0..n).map(|i| Some(((i / 3) % 4) as i32)).collect();
        let d = 8;
        let mut rng = crate::rng::Rng::new(7, 0);
        let x: Vec<f32> = (0..n * d).map(|_| rng.uniform_f32() * 2.0 - 1.0).collect();
        let mut m = TableBuilder::new()
            .utf8("clip_id", &ids)
            .utf8("piece", &pieces)
            .i32_opt("fold", folds);
        for (k, name) in DIMENSIONS.iter().enumerate() {
            let col = (0..n)
                .map(|i| {
                    let src = if learnable { i } else { (i * 37 + 11) % n };
                    // Linear in the features, inside (0, 1).
                    let z: f32 = (0..d)
                        .map(|j| x[src * d + j] * (((j + k) % 5) as f32 - 2.0))
                        .sum();
                    (0.55 + 0.04 * z) as f64
                })
                .collect();
            m = m.f64(name, col);
        }
        m.write(&dir.join("manifest.parquet")).unwrap();
        // Feature rows in reverse order: the join must go by clip id.
        let rev: Vec<usize> = (0..n).rev().collect();
        let rev_ids: Vec<&str> = rev.iter().map(|&i| ids[i].as_str()).collect();
        let rev_x: Vec<f32> = rev
            .iter()
            .flat_map(|&i| x[i * d..(i + 1) * d].to_vec())
            .collect();
        TableBuilder::new()
            .utf8("clip_id", &rev_ids)
            .f32_vectors("features", d, rev_x)
            .unwrap()
            .write(&dir.join("features.parquet"))
            .unwrap();
        (
            LabeledClips::from_manifest(&dir.join("manifest.parquet")).unwrap(),
            FeatureTable::read(&dir.join("features.parquet")).unwrap(),
        )
    }

    fn quick_head() -> HeadConfig {
        HeadConfig {
            arch: crate::head::Arch::Linear,
            lr: 1e-2,
            max_epochs: 300,
            patience: 30,
            batch_size: 32,
            ..Default::default()
        }
    }

    #[test]
    fn learnable_features_reach_high_r2_and_shuffled_labels_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let (clips, feats) = write_tables(dir.path(), 240, true);
        let out = train(&quick_head(), &clips, &feats).unwrap();
        assert_eq!(out.clip_ids, clips.clip_ids);
        let ev = out.evaluate(&BootstrapConfig::default()).unwrap();
        assert!(ev.r2 > 0.95, "learnable case: R2 {}", ev.r2);
        assert!(ev.r2_ci.contains_estimate());

        let shuffled = tempfile::tempdir().unwrap();
        let (clips, feats) = write_tables(shuffled.path(), 240, false);
        let ev = train(&quick_head(), &clips, &feats)
            .unwrap()
            .evaluate(&BootstrapConfig::default())
            .unwrap();
        assert!(ev.r2 < 0.05, "shuffled labels: R2 {}", ev.r2);
        assert!(ev.r2_ci.contains_estimate());
    }

    /// Bad labels and features are named by clip id and dimension, not by
    /// row and column index ("label dimension 16 of clip 7 is 1.7").
    #[test]
    fn bad_labels_and_features_name_the_clip_and_dimension() {
        let dir = tempfile::tempdir().unwrap();
        let (mut clips, mut feats) = write_tables(dir.path(), 24, true);
        clips.labels[7 * N_DIMS + 16] = 1.7;
        let err = train(&quick_head(), &clips, &feats)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("clip `clip007`") && err.contains("`mood_energy` = 1.7"),
            "{err}"
        );
        clips.labels[7 * N_DIMS + 16] = 0.5;
        let row = feats.clip_ids.iter().position(|c| c == "clip010").unwrap();
        feats.values[row * feats.dim + 3] = f32::NAN;
        let err = train(&quick_head(), &clips, &feats)
            .unwrap_err()
            .to_string();
        assert!(err.contains("feature 3 of clip `clip010` is NaN"), "{err}");
    }

    #[test]
    fn a_clip_missing_from_the_feature_table_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (clips, mut feats) = write_tables(dir.path(), 24, true);
        feats.clip_ids[0] = "renamed".into();
        let err = train(&quick_head(), &clips, &feats).unwrap_err();
        assert!(err.to_string().contains("clip023"), "{err}");
    }
}
