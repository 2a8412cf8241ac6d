//! One experiment's training data and run: join a feature table with the
//! manifest's labels, folds and pieces, train a head with piece-split
//! cross-validation, and keep the out-of-fold predictions.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use arrow_array::{Array, FixedSizeListArray, Float32Array, Float64Array, Int32Array, StringArray};
use serde::{Deserialize, Serialize};

use crate::dataset::{DIMENSIONS, FailedClip, N_DIMS, failed};
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
    /// Clips of the dataset that are not in the manifest (their audio failed).
    pub failed: Vec<FailedClip>,
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
            failed: failed::from_meta(batch.schema().metadata().get(failed::META_KEY), &ctx())?,
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
    /// Clips without a vector (they failed upstream or in the encoder).
    pub failed: Vec<FailedClip>,
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
            failed: failed::from_meta(batch.schema().metadata().get(failed::META_KEY), &ctx())?,
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
    /// Clips of the dataset left out because they failed (none: absent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<FailedClip>,
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
    // Clips the feature table lists as failed are left out (with the reason);
    // any other clip without a row is an error.
    let mut rows = Vec::with_capacity(clips.clip_ids.len());
    for (i, id) in clips.clip_ids.iter().enumerate() {
        match row_of.get(id.as_str()) {
            Some(&r) => rows.push((i, r)),
            None if features.failed.iter().any(|f| f.clip_id == *id) => {}
            None => bail!("the feature table has no row for clip {id}"),
        }
    }
    let mut x = Vec::with_capacity(rows.len() * d);
    let mut labels = Vec::with_capacity(rows.len() * N_DIMS);
    for &(i, r) in &rows {
        x.extend_from_slice(&features.values[r * d..(r + 1) * d]);
        labels.extend_from_slice(&clips.labels[i * N_DIMS..(i + 1) * N_DIMS]);
    }
    let clip_ids: Vec<String> = rows
        .iter()
        .map(|&(i, _)| clips.clip_ids[i].clone())
        .collect();
    let pieces: Vec<String> = rows.iter().map(|&(i, _)| clips.pieces[i].clone()).collect();
    let folds: Vec<usize> = rows
        .iter()
        .map(|&(i, _)| clips.folds[i].unwrap_or(0))
        .collect();
    let started = Instant::now();
    let out = train_cv(
        head,
        &CvData {
            features: &x,
            d_in: d,
            labels: &labels,
            folds: &folds,
            groups: &pieces,
        },
    )?;
    Ok(TrainOutput {
        clip_ids,
        folds,
        y_true: labels,
        y_pred: out.predictions,
        d_in: d,
        train_seconds: started.elapsed().as_secs_f64(),
        fold_reports: out.folds,
        failed: failed::merge(&clips.failed, &features.failed),
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

    #[test]
    fn a_clip_missing_from_the_feature_table_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (clips, mut feats) = write_tables(dir.path(), 24, true);
        feats.clip_ids[0] = "renamed".into();
        let err = train(&quick_head(), &clips, &feats).unwrap_err();
        assert!(err.to_string().contains("clip023"), "{err}");
    }
}
