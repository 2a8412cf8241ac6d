//! One experiment's training data and run: join a feature table (pooled
//! vectors or frame sequences; two tables for the two-input heads) with the
//! manifest's labels, folds and pieces, train a head with cross-validation
//! on one [`Split`], and keep the out-of-fold predictions. The label-only
//! baselines ([`label_only`]) make the same output without any features.

pub mod label_only;

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use arrow_array::{
    Array, FixedSizeListArray, Float32Array, Float64Array, Int32Array, ListArray, StringArray,
};
use serde::{Deserialize, Serialize};

use crate::dataset::folds::Split;
use crate::dataset::{FailedClip, failed};
use crate::dims::{DIMENSIONS, N_DIMS};
use crate::head::{
    Cells, FoldHead, FoldReport, FrameSet, HeadConfig, HeadDescriptor, HeadInput, train_cv_cells,
};
use crate::metrics::{BootstrapConfig, Clusters, Evaluation, SeedR2, evaluate};
use crate::table;
use crate::tensors::TensorFile;
use rayon::prelude::*;

/// The manifest's view of the clips: ids, pieces, performers, folds and labels.
#[derive(Clone, Debug)]
pub struct LabeledClips {
    pub clip_ids: Vec<String>,
    pub pieces: Vec<String>,
    /// Empty strings where the manifest has no such column.
    pub works: Vec<String>,
    pub performers: Vec<String>,
    pub is_rendering: Vec<bool>,
    /// `None`: never held out (PercePiano's performer split trains on these always).
    pub folds: Vec<Option<usize>>,
    /// Each clip's performer fold; `None` where the dataset has fewer
    /// performers than folds (or the manifest no such column).
    pub performer_folds: Vec<Option<usize>>,
    /// Each clip's fold in PercePiano's published performer split (`None`:
    /// it only trains); `None` for all where the manifest has no such
    /// column (no `dataset.folds.performer_split`).
    pub published_folds: Option<Vec<Option<usize>>>,
    /// `[n, 19]` standard errors of the labels, where the manifest has them.
    pub label_se: Option<Vec<f32>>,
    /// `[n, 19]` in canonical dimension order.
    pub labels: Vec<f32>,
    /// Clips of the dataset that are not in the manifest (their audio failed).
    pub failed: Vec<FailedClip>,
}

impl LabeledClips {
    /// Reads `manifest.parquet` (clip_id, piece, fold, and one column per
    /// dimension; work, performer, is_rendering and performer_fold where present).
    pub fn from_manifest(path: &Path) -> Result<LabeledClips> {
        let batch = table::read_single(path)?;
        let ctx = || format!("manifest {}", path.display());
        let ids = table::column::<StringArray>(&batch, "clip_id").with_context(ctx)?;
        let pieces = table::column::<StringArray>(&batch, "piece").with_context(ctx)?;
        let folds = table::column::<Int32Array>(&batch, "fold").with_context(ctx)?;
        let has = |name: &str| batch.schema().column_with_name(name).is_some();
        let n = batch.num_rows();
        let strings = |name: &str| -> Result<Vec<String>> {
            if !has(name) {
                return Ok(vec![String::new(); n]);
            }
            let c = table::column::<StringArray>(&batch, name).with_context(ctx)?;
            Ok((0..n).map(|i| c.value(i).to_string()).collect())
        };
        let is_rendering = if has("is_rendering") {
            let c = table::column::<arrow_array::BooleanArray>(&batch, "is_rendering")
                .with_context(ctx)?;
            (0..n).map(|i| c.value(i)).collect()
        } else {
            vec![false; n]
        };
        let optional_folds = |name: &str| -> Result<Option<Vec<Option<usize>>>> {
            if !has(name) {
                return Ok(None);
            }
            let c = table::column::<Int32Array>(&batch, name).with_context(ctx)?;
            Ok(Some(
                (0..n)
                    .map(|i| (!c.is_null(i)).then(|| c.value(i) as usize))
                    .collect(),
            ))
        };
        let performer_folds = optional_folds("performer_fold")?.unwrap_or(vec![None; n]);
        let published_folds = optional_folds("published_fold")?;
        let dims = DIMENSIONS
            .iter()
            .map(|d| table::column::<Float64Array>(&batch, d).with_context(ctx))
            .collect::<Result<Vec<_>>>()?;
        let label_se = if has("label_se") {
            let (dim, values) = table::f32_vectors(&batch, "label_se").with_context(ctx)?;
            anyhow::ensure!(
                dim == N_DIMS,
                "{}: label_se holds {dim} values per clip, expected {N_DIMS}",
                ctx()
            );
            Some(values)
        } else {
            None
        };
        let mut labels = Vec::with_capacity(n * N_DIMS);
        for i in 0..n {
            labels.extend(dims.iter().map(|c| c.value(i) as f32));
        }
        Ok(LabeledClips {
            clip_ids: (0..n).map(|i| ids.value(i).to_string()).collect(),
            pieces: (0..n).map(|i| pieces.value(i).to_string()).collect(),
            works: strings("work")?,
            performers: strings("performer")?,
            is_rendering,
            performer_folds,
            published_folds,
            label_se,
            folds: (0..n)
                .map(|i| (!folds.is_null(i)).then(|| folds.value(i) as usize))
                .collect(),
            labels,
            failed: failed::from_meta(batch.schema().metadata().get(failed::META_KEY), &ctx())?,
        })
    }

    /// The folds of `rows` (manifest rows) on `split`, as the trainer's
    /// [`Cells`] take them: the test folds (the evaluation's folds too),
    /// for `piece_performer` the crossed performer folds, and for
    /// `performer_published` the fold of the clips that only ever train.
    pub fn split_folds(&self, split: Split, rows: &[usize]) -> Result<SplitFolds> {
        if split == Split::PerformerPublished {
            let published = self.published_folds.as_ref().context(
                "split `performer_published` needs PercePiano's published performer split: \
                 set dataset.folds.performer_split (e.g. \"data/percepiano/splits/performer4fold.json\")",
            )?;
            let k = rows
                .iter()
                .filter_map(|&i| published[i])
                .max()
                .map_or(0, |f| f + 1);
            anyhow::ensure!(
                k >= 2,
                "split `performer_published`: the published split puts these clips in {k} fold(s); \
                 cross-validation needs 2"
            );
            return Ok(SplitFolds {
                folds: rows.iter().map(|&i| published[i].unwrap_or(k)).collect(),
                cross: None,
                train_only: Some(k),
            });
        }
        if let Some(&i) = rows.iter().find(|&&i| self.folds[i].is_none()) {
            bail!(
                "clip {} has no cross-validation fold (the published performer split's \
                 always-train clips): use dataset.folds.strategy = \"piece\" and the \
                 split `performer_published` for PercePiano's performer split",
                self.clip_ids[i]
            );
        }
        let piece: Vec<usize> = rows.iter().map(|&i| self.folds[i].unwrap_or(0)).collect();
        let performer = || -> Result<Vec<usize>> {
            rows.iter()
                .map(|&i| {
                    self.performer_folds[i].with_context(|| {
                        format!(
                            "split `{split}` needs each clip's performer fold, and clip {} has \
                             none: the dataset has fewer performers than folds (name a \
                             `performer` for each clip, or use fewer folds)",
                            self.clip_ids[i]
                        )
                    })
                })
                .collect()
        };
        let (folds, cross) = match split {
            Split::Piece => (piece, None),
            Split::Performer => (performer()?, None),
            Split::PiecePerformer => (piece, Some(performer()?)),
            Split::PerformerPublished => unreachable!("handled above"),
        };
        Ok(SplitFolds {
            folds,
            cross,
            train_only: None,
        })
    }
}

/// A split's folds over some rows (see [`LabeledClips::split_folds`]).
#[derive(Clone, Debug)]
pub struct SplitFolds {
    pub folds: Vec<usize>,
    pub cross: Option<Vec<usize>>,
    /// The fold whose clips train every model and are never scored.
    pub train_only: Option<usize>,
}

impl SplitFolds {
    pub fn cells(&self) -> Cells<'_> {
        Cells {
            folds: &self.folds,
            cross: self.cross.as_deref(),
            train_only: self.train_only,
        }
    }

    /// Positions (into the rows it was made of) of the clips that are scored.
    pub fn scored(&self) -> Vec<usize> {
        (0..self.folds.len())
            .filter(|&i| Some(self.folds[i]) != self.train_only)
            .collect()
    }
}

/// A feature set's table: one vector per clip, or one frame sequence per clip.
#[derive(Clone, Debug)]
pub struct FeatureTable {
    pub clip_ids: Vec<String>,
    /// Width of a vector (pooled) or of a frame (sequences).
    pub dim: usize,
    /// Pooled: `[n, dim]`. Sequences: clip i's `[frames[i], dim]` in order.
    pub values: Vec<f32>,
    /// Frame count of each clip for a sequence table (`pooling = "frames"`).
    pub frames: Option<Vec<usize>>,
    /// Clips without a vector (they failed upstream or in the encoder).
    pub failed: Vec<FailedClip>,
}

impl FeatureTable {
    /// Reads `<feature_set>.parquet`: clip_id plus `features:
    /// FixedSizeList<Float32, D>` (pooled) or `frames: List<FixedSizeList<Float32, D>>`.
    pub fn read(path: &Path) -> Result<FeatureTable> {
        let batch = table::read_single(path)?;
        let ctx = || format!("feature table {}", path.display());
        let ids = table::column::<StringArray>(&batch, "clip_id").with_context(ctx)?;
        let failed = failed::from_meta(batch.schema().metadata().get(failed::META_KEY), &ctx())?;
        if batch.schema().column_with_name("frames").is_some() {
            let list = table::column::<ListArray>(&batch, "frames").with_context(ctx)?;
            let mut dim = 0;
            let mut values = Vec::new();
            let mut frames = Vec::with_capacity(batch.num_rows());
            for i in 0..batch.num_rows() {
                let clip = list.value(i);
                let fsl = clip
                    .as_any()
                    .downcast_ref::<FixedSizeListArray>()
                    .with_context(|| format!("{}: frames are not FixedSizeList", ctx()))?;
                dim = fsl.value_length() as usize;
                let v = fsl
                    .values()
                    .as_any()
                    .downcast_ref::<Float32Array>()
                    .with_context(|| format!("{}: frames are not Float32", ctx()))?;
                values.extend_from_slice(&v.values()[..fsl.len() * dim]);
                frames.push(fsl.len());
            }
            return Ok(FeatureTable {
                clip_ids: (0..batch.num_rows())
                    .map(|i| ids.value(i).to_string())
                    .collect(),
                dim,
                values,
                frames: Some(frames),
                failed,
            });
        }
        let (dim, values) = table::f32_vectors(&batch, "features").with_context(ctx)?;
        Ok(FeatureTable {
            clip_ids: (0..batch.num_rows())
                .map(|i| ids.value(i).to_string())
                .collect(),
            dim,
            values,
            frames: None,
            failed,
        })
    }

    /// Clip `r`'s values (a vector, or its frames flattened).
    fn row(&self, r: usize, starts: &[usize]) -> &[f32] {
        match &self.frames {
            None => &self.values[r * self.dim..(r + 1) * self.dim],
            Some(f) => &self.values[starts[r] * self.dim..(starts[r] + f[r]) * self.dim],
        }
    }

    /// An error naming the clip and the feature (and frame) of the first
    /// non-finite value.
    fn check_finite(&self) -> Result<()> {
        let Some(at) = self.values.iter().position(|v| !v.is_finite()) else {
            return Ok(());
        };
        let (row, col) = (at / self.dim.max(1), at % self.dim.max(1));
        let (clip, frame) = match &self.frames {
            None => (row, None),
            Some(f) => {
                let (mut clip, mut start) = (0, 0);
                while start + f[clip] <= row {
                    start += f[clip];
                    clip += 1;
                }
                (clip, Some(row - start))
            }
        };
        let frame = frame.map_or(String::new(), |t| format!(" (frame {t})"));
        bail!(
            "feature {col}{frame} of clip `{}` is {}: the feature table holds a non-finite value",
            self.clip_ids[clip],
            self.values[at]
        )
    }

    /// This table's rows in the order of `clip_ids`, as a head input.
    fn input_for(&self, clip_ids: &[String]) -> Result<HeadInput> {
        let row_of: HashMap<&str, usize> = self
            .clip_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        let starts: Vec<usize> = match &self.frames {
            None => Vec::new(),
            Some(f) => f
                .iter()
                .scan(0, |at, &n| {
                    let s = *at;
                    *at += n;
                    Some(s)
                })
                .collect(),
        };
        let mut rows = Vec::with_capacity(clip_ids.len());
        for id in clip_ids {
            let Some(&r) = row_of.get(id.as_str()) else {
                bail!("the feature table has no row for clip {id}");
            };
            rows.push(self.row(r, &starts));
        }
        Ok(match &self.frames {
            None => HeadInput::Pooled {
                values: rows.concat(),
                dim: self.dim,
            },
            Some(_) => HeadInput::Frames(FrameSet::new(self.dim, &rows)?),
        })
    }
}

/// What training an experiment produces: out-of-fold predictions for every
/// clip (each from the head that never saw its fold) and the true labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainOutput {
    pub clip_ids: Vec<String>,
    /// What its models' test clips never share with their training clips.
    #[serde(default, skip_serializing_if = "is_piece")]
    pub split: Split,
    /// Each clip's test fold on that split: the folds metrics average over
    /// (on `piece_performer` its piece fold; `fold_reports` has one model
    /// per cell of piece fold × performer fold).
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
    /// Each fold's trained head, in fold order: tensors of the artifact,
    /// loaded only by [`TrainOutput::read_heads`].
    #[serde(skip)]
    pub heads: Vec<FoldHead>,
    /// Every seed it trained with, its own first (`y_pred`, the heads and
    /// the reports are that run's); empty when it trained once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<u64>,
    /// `[n, 19]` out-of-fold predictions of each further seed (`seeds[1..]`),
    /// on the same folds: training noise, nothing else differs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seed_predictions: Vec<Vec<f32>>,
}

fn is_piece(s: &Split) -> bool {
    *s == Split::Piece
}

/// Metadata keys of the train artifact.
const META_TRAIN: &str = "pipe.train";
const META_HEADS: &str = "pipe.heads";

/// Trains `head` on `features` (and `second`, for a two-input head) with the
/// manifest's folds on `split`; once more per `extra_seeds` (each in place
/// of `head.seed`, same folds), the runs in parallel.
pub fn train(
    head: &HeadConfig,
    clips: &LabeledClips,
    features: &FeatureTable,
    second: Option<&FeatureTable>,
    split: Split,
    extra_seeds: &[u64],
) -> Result<TrainOutput> {
    // Clips a feature table lists as failed are left out (with the reason);
    // any other clip without a row is an error.
    let failed_in = |t: &FeatureTable, id: &str| t.failed.iter().any(|f| f.clip_id == id);
    let keep: Vec<usize> = (0..clips.clip_ids.len())
        .filter(|&i| {
            let id = clips.clip_ids[i].as_str();
            !failed_in(features, id) && !second.is_some_and(|s| failed_in(s, id))
        })
        .collect();
    let clip_ids: Vec<String> = keep.iter().map(|&i| clips.clip_ids[i].clone()).collect();
    let pieces: Vec<String> = keep.iter().map(|&i| clips.pieces[i].clone()).collect();
    let split_folds = clips.split_folds(split, &keep)?;
    let mut labels = Vec::with_capacity(keep.len() * N_DIMS);
    for &i in &keep {
        labels.extend_from_slice(&clips.labels[i * N_DIMS..(i + 1) * N_DIMS]);
    }
    let mut input = features.input_for(&clip_ids)?;
    let mut failed = failed::merge(&clips.failed, &features.failed);
    if let Some(second) = second {
        // Clips that failed in either set do not count as a difference.
        let ok = |id: &&String| !failed_in(features, id) && !failed_in(second, id);
        let a_set: std::collections::BTreeSet<&String> =
            features.clip_ids.iter().filter(ok).collect();
        let b_set: std::collections::BTreeSet<&String> =
            second.clip_ids.iter().filter(ok).collect();
        if let Some(id) = a_set.symmetric_difference(&b_set).next() {
            let which = if a_set.contains(id) {
                "first"
            } else {
                "second"
            };
            bail!(
                "the two feature sets cover different clips ({} and {} clips; {id} is only in the {which})",
                a_set.len(),
                b_set.len()
            );
        }
        let HeadInput::Frames(fa) = input else {
            bail!("a two-input head needs frame sequences (pooling = \"frames\") in both sets");
        };
        let HeadInput::Frames(fb) = second.input_for(&clip_ids).context("second feature set")?
        else {
            bail!("a two-input head needs frame sequences (pooling = \"frames\") in both sets");
        };
        input = HeadInput::Two(fa, fb);
        failed = failed::merge(&failed, &second.failed);
    }
    // Named here, where clip ids are known (the trainer sees row numbers).
    features.check_finite()?;
    if let Some(second) = second {
        second.check_finite().context("second feature set")?;
    }
    let sigmoid = head.output == crate::head::OutputActivation::Sigmoid;
    for (id, row) in clip_ids.iter().zip(labels.chunks_exact(N_DIMS)) {
        for (dim, &y) in DIMENSIONS.iter().zip(row) {
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
    let started = Instant::now();
    let cells = split_folds.cells();
    let seeds: Vec<u64> = std::iter::once(head.seed)
        .chain(extra_seeds.iter().copied())
        .collect();
    let mut runs = (seeds.par_iter())
        .map(|&seed| {
            let cfg = HeadConfig {
                seed,
                ..head.clone()
            };
            train_cv_cells(&cfg, &input, &labels, &cells, &pieces)
                .with_context(|| format!("seed {seed}"))
        })
        .collect::<Result<Vec<_>>>()?
        .into_iter();
    let out = runs.next().context("no training run")?;
    let seed_predictions: Vec<Vec<f32>> = runs.map(|r| r.predictions).collect();
    let trained = TrainOutput {
        clip_ids,
        split,
        folds: split_folds.folds.clone(),
        y_true: labels,
        y_pred: out.predictions,
        d_in: features.dim,
        train_seconds: started.elapsed().as_secs_f64(),
        fold_reports: out.folds,
        failed,
        heads: out.heads,
        seeds: if extra_seeds.is_empty() {
            Vec::new()
        } else {
            seeds
        },
        seed_predictions,
    };
    Ok(trained.only_rows(&split_folds.scored()))
}

impl TrainOutput {
    /// The output on rows `keep` only (positions into its clips, in
    /// order): clips that trained but are not scored leave the
    /// predictions, labels and folds; reports and heads stay.
    pub fn only_rows(mut self, keep: &[usize]) -> TrainOutput {
        if keep.len() == self.clip_ids.len() {
            return self;
        }
        let rows = |v: &[f32]| -> Vec<f32> {
            (keep.iter())
                .flat_map(|&r| v[r * N_DIMS..(r + 1) * N_DIMS].iter().copied())
                .collect()
        };
        self.clip_ids = keep.iter().map(|&r| self.clip_ids[r].clone()).collect();
        self.folds = keep.iter().map(|&r| self.folds[r]).collect();
        self.y_true = rows(&self.y_true);
        self.y_pred = rows(&self.y_pred);
        self.seed_predictions = self.seed_predictions.iter().map(|p| rows(p)).collect();
        self
    }

    /// Writes the train artifact: a safetensors file whose tensors are the
    /// fold heads (`fold<k>.params` ...) and whose metadata holds everything
    /// else as JSON (`pipe.train`) and the heads' descriptors (`pipe.heads`),
    /// so the report reads the predictions without the weights.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut file = TensorFile::new();
        let descriptors = FoldHead::save_all(&self.heads, &mut file);
        file.meta(META_TRAIN, serde_json::to_string(self)?);
        file.meta(META_HEADS, serde_json::to_string(&descriptors)?);
        file.write(path)
    }

    /// Reads a train artifact's predictions and reports (not its heads).
    pub fn read(path: &Path) -> Result<TrainOutput> {
        crate::tensors::read_metadata_json(path, META_TRAIN)
    }

    /// Reads a whole train artifact, its fold heads (in fold order) included.
    pub fn read_with_heads(path: &Path) -> Result<TrainOutput> {
        let what = path.display().to_string();
        let file = TensorFile::read(path)?;
        let json = |key: &str| -> Result<&str> { file.meta_str(key, &what) };
        let mut out: TrainOutput = serde_json::from_str(json(META_TRAIN)?)
            .with_context(|| format!("{what}: metadata `{META_TRAIN}`"))?;
        let descriptors: Vec<HeadDescriptor> = serde_json::from_str(json(META_HEADS)?)
            .with_context(|| format!("{what}: metadata `{META_HEADS}`"))?;
        out.heads = FoldHead::load_all(&descriptors, &file, &what)?;
        Ok(out)
    }

    /// All metrics of these out-of-fold predictions.
    pub fn evaluate(&self, boot: &BootstrapConfig) -> Result<Evaluation> {
        evaluate(&self.y_true, &self.y_pred, N_DIMS, &self.folds, None, boot)
    }

    /// [`Self::evaluate`] with a CI that resamples the split's clusters
    /// within folds (`clips` gives each clip's piece and performer): whole
    /// pieces on `piece` (a piece's performances share a score and most of
    /// their label variance), performers on `performer`, and both, crossed,
    /// on `piece_performer`. The clip-level CI stays beside it, and R² on
    /// the human performances only (`r2_humans`) where renderings are among
    /// the clips.
    pub fn evaluate_split(
        &self,
        boot: &BootstrapConfig,
        clips: &LabeledClips,
    ) -> Result<Evaluation> {
        let row_of: HashMap<&str, usize> = (clips.clip_ids.iter().enumerate())
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        let rows = (self.clip_ids.iter())
            .map(|c| {
                (row_of.get(c.as_str()).copied())
                    .with_context(|| format!("clip {c} of the predictions is not in the manifest"))
            })
            .collect::<Result<Vec<usize>>>()?;
        // Dense ids in order of first appearance.
        let ids = |column: &[String]| -> Vec<usize> {
            let mut seen: HashMap<&str, usize> = HashMap::new();
            rows.iter()
                .map(|&r| {
                    let next = seen.len();
                    *seen.entry(column[r].as_str()).or_insert(next)
                })
                .collect()
        };
        let piece = ids(&clips.pieces);
        let performer = ids(&clips.performers);
        let (of_clip, crossed) = match self.split {
            Split::Piece => (&piece, None),
            Split::Performer | Split::PerformerPublished => (&performer, None),
            Split::PiecePerformer => (&piece, Some(performer.as_slice())),
        };
        let clusters = Clusters {
            of_clip,
            crossed,
            unit: self.split.ci_unit(),
        };
        let mut ev = evaluate(
            &self.y_true,
            &self.y_pred,
            N_DIMS,
            &self.folds,
            Some(clusters),
            boot,
        )?;
        let oof = crate::metrics::OutOfFold::new(&self.y_true, &self.y_pred, N_DIMS)?;
        if let Some(se) = &clips.label_se {
            let se: Vec<f32> = (rows.iter())
                .flat_map(|&r| se[r * N_DIMS..(r + 1) * N_DIMS].iter().copied())
                .collect();
            ev.pairwise = Some(crate::metrics::pairwise_accuracy(&oof, &piece, &se)?);
        }
        if rows.iter().any(|&r| clips.is_rendering[r]) {
            let humans: Vec<Vec<usize>> = crate::metrics::rows_by_fold(&self.folds)?
                .into_iter()
                .map(|f| {
                    f.into_iter()
                        .filter(|&i| !clips.is_rendering[rows[i]])
                        .collect()
                })
                .collect();
            ev.r2_humans = oof.fold_mean_r2(&humans);
        }
        if !self.seeds.is_empty() {
            let by_fold = crate::metrics::rows_by_fold(&self.folds)?;
            let preds = std::iter::once(&self.y_pred).chain(&self.seed_predictions);
            ev.seed_r2 = (self.seeds.iter().zip(preds))
                .map(|(&seed, y_pred)| -> Result<SeedR2> {
                    let oof = crate::metrics::OutOfFold::new(&self.y_true, y_pred, N_DIMS)?;
                    Ok(SeedR2 {
                        seed,
                        r2: oof.fold_mean_r2(&by_fold),
                    })
                })
                .collect::<Result<_>>()?;
        }
        Ok(ev)
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
        let out = train(&quick_head(), &clips, &feats, None, Split::Piece, &[]).unwrap();
        assert_eq!(out.clip_ids, clips.clip_ids);
        let ev = out.evaluate(&BootstrapConfig::default()).unwrap();
        assert!(ev.r2 > 0.95, "learnable case: R2 {}", ev.r2);
        assert!(ev.r2_ci.contains_estimate());

        let shuffled = tempfile::tempdir().unwrap();
        let (clips, feats) = write_tables(shuffled.path(), 240, false);
        let ev = train(&quick_head(), &clips, &feats, None, Split::Piece, &[])
            .unwrap()
            .evaluate(&BootstrapConfig::default())
            .unwrap();
        assert!(ev.r2 < 0.05, "shuffled labels: R2 {}", ev.r2);
        assert!(ev.r2_ci.contains_estimate());
    }

    /// Further seeds are further runs on the same folds: the first run is
    /// bit for bit the single-seed one, each other differs, and the
    /// evaluation's per-seed R² is the same statistic as `r2` on each run,
    /// the first equal to `r2` itself.
    #[test]
    fn extra_seeds_train_again_on_the_same_folds_and_report_r2_per_seed() {
        let dir = tempfile::tempdir().unwrap();
        let (clips, feats) = write_tables(dir.path(), 96, true);
        let head = HeadConfig {
            max_epochs: 20,
            ..quick_head()
        };
        let one = train(&head, &clips, &feats, None, Split::Piece, &[]).unwrap();
        let three = train(&head, &clips, &feats, None, Split::Piece, &[7, 8]).unwrap();
        assert!(one.seeds.is_empty() && one.seed_predictions.is_empty());
        assert_eq!(three.seeds, [head.seed, 7, 8]);
        assert_eq!(three.y_pred, one.y_pred);
        let fits = |o: &TrainOutput| -> Vec<_> {
            (o.fold_reports.iter())
                .map(|f| (f.fit.best_epoch, f.fit.best_val_r2))
                .collect()
        };
        assert_eq!(fits(&three), fits(&one));
        assert_eq!(three.seed_predictions.len(), 2);
        for p in &three.seed_predictions {
            assert_ne!(p, &three.y_pred);
            assert_eq!(p.len(), three.y_pred.len());
        }
        let boot = BootstrapConfig {
            resamples: 50,
            ..Default::default()
        };
        let ev = three.evaluate_split(&boot, &clips).unwrap();
        let seeds: Vec<u64> = ev.seed_r2.iter().map(|s| s.seed).collect();
        assert_eq!(seeds, [head.seed, 7, 8]);
        assert_eq!(ev.seed_r2[0].r2, Some(ev.r2));
        let again = TrainOutput {
            y_pred: three.seed_predictions[1].clone(),
            seeds: Vec::new(),
            seed_predictions: Vec::new(),
            ..three.clone()
        };
        let r2_8 = again.evaluate_split(&boot, &clips).unwrap().r2;
        assert_eq!(ev.seed_r2[2].r2, Some(r2_8));
        assert!(
            one.evaluate_split(&boot, &clips)
                .unwrap()
                .seed_r2
                .is_empty()
        );
        // Written and read back with the artifact.
        let path = dir.path().join("train.safetensors");
        three.write(&path).unwrap();
        let back = TrainOutput::read(&path).unwrap();
        assert_eq!(
            (back.seeds, back.seed_predictions),
            (three.seeds, three.seed_predictions)
        );
    }

    #[test]
    fn the_piece_ci_resamples_the_manifests_pieces_and_keeps_the_clip_ci_beside() {
        let dir = tempfile::tempdir().unwrap();
        let (clips, feats) = write_tables(dir.path(), 120, true);
        let out = train(&quick_head(), &clips, &feats, None, Split::Piece, &[]).unwrap();
        let boot = BootstrapConfig::default();
        let (by_clip, by_piece) = (
            out.evaluate(&boot).unwrap(),
            out.evaluate_split(&boot, &clips).unwrap(),
        );
        assert_eq!(by_piece.r2, by_clip.r2);
        assert_eq!(by_piece.clip_r2_ci.as_ref(), Some(&by_clip.r2_ci));
        assert_eq!(by_clip.ci_unit, None);
        // 120 clips in pieces of 3.
        assert_eq!(
            (by_piece.ci_unit.as_deref(), by_piece.n_clusters),
            (Some("piece"), Some(40))
        );
        assert_ne!(by_piece.r2_ci, by_clip.r2_ci);
        let mut missing = clips.clone();
        missing.clip_ids[5] = "other".into();
        let e = out.evaluate_split(&boot, &missing).unwrap_err().to_string();
        assert!(
            e.contains("clip clip005 of the predictions is not in the manifest"),
            "{e}"
        );
    }

    /// 200 clips: 40 pieces of 5 performances by 5 of 12 performers (a
    /// sparse crossing, as in PercePiano), folds as the dataset packs them.
    fn crossed_clips() -> LabeledClips {
        let n = 200;
        let pieces: Vec<String> = (0..n).map(|i| format!("piece{}", i / 5)).collect();
        let performers: Vec<String> = (0..n)
            .map(|i| format!("player{}", (i / 5 * 7 + i % 5) % 12))
            .collect();
        let fold_of = |names: &[String]| {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let f = crate::dataset::folds::piece_folds(&refs, 4, 42);
            names
                .iter()
                .map(|p| Some(f[p] as usize))
                .collect::<Vec<_>>()
        };
        // The published split tests players 0-7 (fold = number mod 4);
        // players 8-11 only train.
        let published = (performers.iter())
            .map(|p| {
                let k: usize = p["player".len()..].parse().unwrap();
                (k < 8).then_some(k % 4)
            })
            .collect();
        LabeledClips {
            clip_ids: (0..n).map(|i| format!("c{i:03}")).collect(),
            folds: fold_of(&pieces),
            performer_folds: fold_of(&performers),
            published_folds: Some(published),
            works: pieces.clone(),
            is_rendering: vec![false; n],
            label_se: None,
            labels: (0..n * N_DIMS).map(|k| (k % 7) as f32 / 7.0).collect(),
            failed: Vec::new(),
            pieces,
            performers,
        }
    }

    /// Every split scores every clip exactly once (on `performer_published`
    /// every clip of a published fold once, the others never, though they
    /// train every model), and no model learns from a clip that shares what
    /// the split keeps apart with any clip it scores.
    #[test]
    fn every_split_keeps_its_clusters_apart_and_scores_each_clip_once() {
        let c = crossed_clips();
        let rows: Vec<usize> = (0..c.clip_ids.len()).collect();
        for split in Split::ALL {
            let sf = c.split_folds(split, &rows).unwrap();
            let (folds, cross, cells) = (&sf.folds, &sf.cross, sf.cells());
            let published = split == Split::PerformerPublished;
            let train_only =
                |i: usize| published && c.published_folds.as_ref().unwrap()[i].is_none();
            let models = cells.models();
            assert_eq!(
                models.len(),
                if split == Split::PiecePerformer {
                    16
                } else {
                    4
                }
            );
            let mut scored = vec![0; rows.len()];
            for (key, test) in &models {
                let learn = cells.learn_rows(*key);
                for &t in test {
                    scored[t] += 1;
                    for &l in &learn {
                        let piece = c.pieces[t] == c.pieces[l];
                        let player = c.performers[t] == c.performers[l];
                        let shared = match split {
                            Split::Piece => piece,
                            Split::Performer | Split::PerformerPublished => player,
                            Split::PiecePerformer => piece || player,
                        };
                        assert!(!shared, "{split}: clip {t} shares with training clip {l}");
                    }
                }
                // Everything not shared trains: the piece split learns from the other folds' pieces.
                let blocked = |l: usize| {
                    test.iter().any(|&t| match split {
                        Split::Piece | Split::Performer | Split::PerformerPublished => {
                            folds[t] == folds[l]
                        }
                        Split::PiecePerformer => {
                            folds[t] == folds[l]
                                || cross.as_ref().unwrap()[t] == cross.as_ref().unwrap()[l]
                        }
                    })
                };
                assert_eq!(learn.len(), rows.iter().filter(|&&l| !blocked(l)).count());
                assert!(rows.iter().all(|&l| !train_only(l) || learn.contains(&l)));
            }
            for (i, &s) in scored.iter().enumerate() {
                assert_eq!(s, usize::from(!train_only(i)), "{split}: clip {i}");
            }
            let tested = c.published_folds.as_ref().unwrap().iter().flatten().count();
            assert!(tested > 0 && tested < 200);
            assert_eq!(sf.scored().len(), if published { tested } else { 200 });
            // A label-only baseline goes through the same cells, and
            // only the scored clips reach its output.
            let out = label_only::predict(label_only::LabelOnly::GlobalMean, &c, split).unwrap();
            assert!(out.y_pred.iter().all(|p| p.is_finite()));
            let kept: Vec<usize> = sf.scored().iter().map(|&i| folds[i]).collect();
            assert_eq!(out.folds, kept);
            assert_eq!(out.clip_ids.len(), kept.len());
            let boot = BootstrapConfig {
                resamples: 50,
                ..Default::default()
            };
            let ev = out.evaluate_split(&boot, &c).unwrap();
            assert_eq!(ev.ci_unit.as_deref(), Some(split.ci_unit()));
            assert_eq!(ev.crossed_of_clip.is_some(), split == Split::PiecePerformer);
        }
        // Without performer folds, the performer splits say why.
        let mut none = c.clone();
        none.performer_folds = vec![None; rows.len()];
        let e = none
            .split_folds(Split::Performer, &rows)
            .unwrap_err()
            .to_string();
        assert!(e.contains("fewer performers than folds"), "{e}");
        none.published_folds = None;
        let e = none
            .split_folds(Split::PerformerPublished, &rows)
            .unwrap_err()
            .to_string();
        assert!(e.contains("set dataset.folds.performer_split"), "{e}");
    }

    /// Bad labels and features are named by clip id and dimension, not by
    /// row and column index ("label dimension 16 of clip 7 is 1.7").
    #[test]
    fn bad_labels_and_features_name_the_clip_and_dimension() {
        let dir = tempfile::tempdir().unwrap();
        let (mut clips, mut feats) = write_tables(dir.path(), 24, true);
        clips.labels[7 * N_DIMS + 16] = 1.7;
        let err = train(&quick_head(), &clips, &feats, None, Split::Piece, &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("clip `clip007`") && err.contains("`mood_energy` = 1.7"),
            "{err}"
        );
        clips.labels[7 * N_DIMS + 16] = 0.5;
        let row = feats.clip_ids.iter().position(|c| c == "clip010").unwrap();
        feats.values[row * feats.dim + 3] = f32::NAN;
        let err = train(&quick_head(), &clips, &feats, None, Split::Piece, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("feature 3 of clip `clip010` is NaN"), "{err}");
    }

    #[test]
    fn a_clip_missing_from_the_feature_table_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (clips, mut feats) = write_tables(dir.path(), 24, true);
        feats.clip_ids[0] = "renamed".into();
        let err = train(&quick_head(), &clips, &feats, None, Split::Piece, &[]).unwrap_err();
        assert!(err.to_string().contains("clip023"), "{err}");
    }

    /// A frame table: clip i has 2 + i % 3 frames of width 3.
    fn frame_table(dir: &Path, name: &str, ids: &[String]) -> FeatureTable {
        let rows: Vec<Vec<f32>> = (0..ids.len())
            .map(|i| {
                (0..(2 + i % 3) * 3)
                    .map(|k| (i * 7 + k) as f32 * 0.01)
                    .collect()
            })
            .collect();
        let path = dir.join(name);
        TableBuilder::new()
            .utf8("clip_id", ids)
            .f32_sequences("frames", 3, &rows)
            .unwrap()
            .write(&path)
            .unwrap();
        FeatureTable::read(&path).unwrap()
    }

    #[test]
    fn frame_tables_read_back_and_two_inputs_must_cover_the_same_clips() {
        let dir = tempfile::tempdir().unwrap();
        let (clips, _) = write_tables(dir.path(), 24, true);
        let a = frame_table(dir.path(), "a.parquet", &clips.clip_ids);
        assert_eq!(a.dim, 3);
        assert_eq!(a.frames.as_ref().unwrap()[..4], [2, 3, 4, 2]);
        assert_eq!(
            a.values.len(),
            a.frames.as_ref().unwrap().iter().sum::<usize>() * 3
        );
        // Clip 1's frames start after clip 0's 2 frames.
        assert_eq!(a.values[6], 7.0 * 0.01);
        let mut fewer = clips.clip_ids.clone();
        fewer.pop();
        let b = frame_table(dir.path(), "b.parquet", &fewer);
        let head = HeadConfig {
            arch: crate::head::Arch::Ensemble,
            max_epochs: 2,
            ..Default::default()
        };
        let err = format!(
            "{:#}",
            train(&head, &clips, &a, Some(&b), Split::Piece, &[]).unwrap_err()
        );
        assert!(
            err.contains("cover different clips") && err.contains("clip023"),
            "{err}"
        );
        // The same clips in another order are fine.
        let mut shuffled = clips.clip_ids.clone();
        shuffled.reverse();
        let c = frame_table(dir.path(), "c.parquet", &shuffled);
        let out = train(&head, &clips, &a, Some(&c), Split::Piece, &[]).unwrap();
        assert!(out.y_pred.iter().all(|p| p.is_finite()));
    }
}
