//! k-fold cross-validation by piece: for each test fold, carve a validation
//! split from the other folds' pieces (or, under the study's protocol,
//! validate on the test fold itself), train, and predict the test fold.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use anyhow::{Context, Result, ensure};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::config::{HeadConfig, InputKind, OutputActivation, Validation};
use super::frames::{FrameSet, HeadInput};
use super::graph::fit_graph;
use super::saved::FoldHead;
use super::train::{FitData, FitReport, TrainedHead, fit};
use crate::dims::N_DIMS;
use crate::rng::Rng;

/// One experiment's data, all row-major with one row per clip.
#[derive(Clone, Copy, Debug)]
pub struct CvData<'a, G> {
    /// `[n, d_in]` pooled features.
    pub features: &'a [f32],
    pub d_in: usize,
    /// `[n, 19]` labels in PercePiano's dimension order.
    pub labels: &'a [f32],
    /// Test fold of each clip, `0..k`.
    pub folds: &'a [usize],
    /// Piece (group) of each clip; a piece must sit in a single fold.
    pub groups: &'a [G],
}

/// What happened in one fold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FoldReport {
    pub fold: usize,
    pub n_train: usize,
    pub n_val: usize,
    pub n_test: usize,
    /// Pieces early stopping looked at: held out of the training folds'
    /// pieces, or (`validation = "test_fold"`) the test fold's own.
    pub n_val_pieces: usize,
    pub fit: FitReport,
}

/// Out-of-fold predictions for every clip plus per-fold reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CvOutput {
    /// `[n, 19]`: clip i's prediction from the head that never saw its fold.
    pub predictions: Vec<f32>,
    pub folds: Vec<FoldReport>,
    /// Each fold's trained head, in fold order (kept by the train stage as
    /// tensors, not in JSON).
    #[serde(skip)]
    pub heads: Vec<FoldHead>,
}

/// The study's aggregate: the mean over folds of each fold's best
/// validation R² ([`FitReport::best_val_r2`]). Under `validation =
/// "test_fold"` each of those is the fold's test R² at the epoch chosen on
/// that very fold; under ours it is R² on the held-out pieces. `None` if a
/// fold's is undefined or there are no folds.
pub fn mean_best_val_r2(folds: &[FoldReport]) -> Option<f64> {
    let mut sum = 0.0;
    for f in folds {
        sum += f.fit.best_val_r2?;
    }
    (!folds.is_empty()).then(|| sum / folds.len() as f64)
}

/// Random stream of the validation split of fold f; training streams use
/// `16·(f+1) + …` so no two purposes share a stream.
const STREAM_VAL_SPLIT: u64 = 15;

/// Train and validation rows for test fold `test_fold`: the training folds'
/// pieces are sorted, shuffled with `(seed, fold)` and the first
/// round(val_fraction·pieces) (at least 1, leaving at least 1) become the
/// validation split. Whole pieces only, never from the test fold.
pub fn split_train_val<G: Ord>(
    groups: &[G],
    folds: &[usize],
    test_fold: usize,
    val_fraction: f32,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let rows: Vec<usize> = (0..folds.len())
        .filter(|&i| folds[i] != test_fold)
        .collect();
    split_rows(groups, &rows, test_fold, val_fraction, seed)
        .map_err(|e| anyhow::anyhow!("test fold {test_fold}: {e}"))
}

/// [`split_train_val`] of any set of rows a model may learn from: their
/// pieces are sorted, shuffled with the model's stream `(seed, model)` and
/// the first round(val_fraction·pieces) (at least 1, leaving at least 1)
/// hold out for validation.
fn split_rows<G: Ord>(
    groups: &[G],
    rows: &[usize],
    model: usize,
    val_fraction: f32,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let pieces: BTreeSet<&G> = rows.iter().map(|&r| &groups[r]).collect();
    let mut pieces: Vec<&G> = pieces.into_iter().collect();
    ensure!(
        pieces.len() >= 2,
        "the clips it may train on hold {} piece(s); need 2 to split off a validation piece",
        pieces.len()
    );
    Rng::new(seed, 16 * model as u64 + STREAM_VAL_SPLIT).shuffle(&mut pieces);
    let n_val =
        ((val_fraction as f64 * pieces.len() as f64).round() as usize).clamp(1, pieces.len() - 1);
    let val: BTreeSet<&G> = pieces[..n_val].iter().copied().collect();
    Ok(rows.iter().partition(|&&r| !val.contains(&groups[r])))
}

/// A sigmoid output lives in (0, 1): labels outside [0, 1] cannot be fitted.
fn check_label_range(cfg: &HeadConfig, labels: &[f32]) -> Result<()> {
    if cfg.output == OutputActivation::Sigmoid
        && let Some(i) = labels.iter().position(|&y| !(0.0..=1.0).contains(&y))
    {
        anyhow::bail!(
            "label dimension {} of clip {} is {}, outside the sigmoid output's range [0, 1]; \
             scale labels to [0, 1] (PercePiano's are in [1/7, 1]) or set output = \"linear\"",
            i % N_DIMS,
            i / N_DIMS,
            labels[i]
        );
    }
    Ok(())
}

/// Checks the pooled features' shape and finiteness; returns the clip count.
fn check_features(features: &[f32], d_in: usize) -> Result<usize> {
    ensure!(d_in > 0, "feature width is 0");
    ensure!(
        features.len().is_multiple_of(d_in),
        "features have {} values, not a multiple of the width {}",
        features.len(),
        d_in
    );
    let n = features.len() / d_in;
    ensure!(n > 0, "no clips");
    if let Some(i) = features.iter().position(|x| !x.is_finite()) {
        anyhow::bail!(
            "feature {} of clip {} is {}",
            i % d_in,
            i / d_in,
            features[i]
        );
    }
    Ok(n)
}

/// Checks a head input's clip count and finiteness.
fn check_input(input: &HeadInput) -> Result<usize> {
    let frames = |f: &FrameSet, which: &str| -> Result<()> {
        if let Some(i) = f.values.iter().position(|x| !x.is_finite()) {
            let frame = i / f.dim;
            let clip = f.offsets.partition_point(|&o| o <= frame) - 1;
            anyhow::bail!(
                "{which}: value {} of frame {} of clip {clip} is {}",
                i % f.dim,
                frame - f.offsets[clip],
                f.values[i]
            );
        }
        Ok(())
    };
    match input {
        HeadInput::Pooled { values, dim } => check_features(values, *dim),
        HeadInput::Frames(f) => {
            frames(f, "frames")?;
            Ok(f.n_clips())
        }
        HeadInput::Two(a, b) => {
            ensure!(
                a.n_clips() == b.n_clips(),
                "the two inputs hold {} and {} clips",
                a.n_clips(),
                b.n_clips()
            );
            frames(a, "first input")?;
            frames(b, "second input")?;
            Ok(a.n_clips())
        }
    }
}

/// Checks labels, folds and the piece split for `n` clips; returns k.
fn check_split<G: Ord + Debug>(
    n: usize,
    labels: &[f32],
    folds: &[usize],
    groups: &[G],
) -> Result<usize> {
    ensure!(n > 0, "no clips");
    ensure!(
        labels.len() == n * N_DIMS,
        "labels have {} values; expected {n} clips x {N_DIMS} PercePiano dimensions = {}",
        labels.len(),
        n * N_DIMS
    );
    ensure!(folds.len() == n, "{} fold ids for {n} clips", folds.len());
    ensure!(
        groups.len() == n,
        "{} piece ids for {n} clips",
        groups.len()
    );
    if let Some(i) = labels.iter().position(|x| !x.is_finite()) {
        anyhow::bail!(
            "label dimension {} of clip {} is {}",
            i % N_DIMS,
            i / N_DIMS,
            labels[i]
        );
    }
    let k = folds.iter().max().copied().unwrap_or(0) + 1;
    ensure!(k >= 2, "cross-validation needs at least 2 folds, got {k}");
    let mut count = vec![0usize; k];
    for &f in folds {
        count[f] += 1;
    }
    if let Some(f) = count.iter().position(|&c| c == 0) {
        anyhow::bail!("fold {f} of 0..{k} has no clips");
    }
    Ok(k)
}

/// Checks shapes, finiteness and the piece split; returns k.
fn check<G: Ord + Debug>(data: &CvData<G>) -> Result<usize> {
    let n = check_features(data.features, data.d_in)?;
    check_split(n, data.labels, data.folds, data.groups)
}

/// Test predictions `[test.len(), 19]`, the fit report and the head of one fold.
type FoldFit = (Vec<f32>, FitReport, FoldHead);

/// The models of a cross-validation and the clips each scores: one per
/// test fold, or with a second axis (`cross`, e.g. performer folds beside
/// piece folds) one per non-empty cell (fold, cross fold), row-major.
/// A model learns only from clips that share neither key with its cell.
/// Clips of the `train_only` fold learn in every model and are scored by
/// none (their predictions stay NaN).
#[derive(Clone, Copy, Debug)]
pub struct Cells<'a> {
    pub folds: &'a [usize],
    pub cross: Option<&'a [usize]>,
    pub train_only: Option<usize>,
}

impl Cells<'_> {
    /// Each non-empty cell's keys (fold, cross fold; 0 without a second
    /// axis) with its test rows, in row-major order.
    pub fn models(&self) -> Vec<((usize, usize), Vec<usize>)> {
        let mut cells: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
        for (i, &f) in self.folds.iter().enumerate() {
            if Some(f) == self.train_only {
                continue;
            }
            let c = self.cross.map_or(0, |x| x[i]);
            cells.entry((f, c)).or_default().push(i);
        }
        cells.into_iter().collect()
    }

    /// Rows the model of cell `key` may learn from: no shared key.
    pub fn learn_rows(&self, key: (usize, usize)) -> Vec<usize> {
        (0..self.folds.len())
            .filter(|&i| self.folds[i] != key.0 && self.cross.is_none_or(|x| x[i] != key.1))
            .collect()
    }
}

/// Train and validation rows of model `model` (cell `key`) under
/// `cfg.validation`: held-out pieces of the rows it may learn from
/// ([`split_train_val`]), or the study's protocol, where those rows all
/// train and the test cell itself validates.
fn train_val_rows<G: Ord>(
    cfg: &HeadConfig,
    groups: &[G],
    cells: &Cells,
    model: usize,
    key: (usize, usize),
    test_rows: &[usize],
) -> Result<(Vec<usize>, Vec<usize>)> {
    let learn = cells.learn_rows(key);
    match cfg.validation {
        Validation::HeldOutPieces | Validation::HeldOutEpoch => {
            split_rows(groups, &learn, model, cfg.val_fraction, cfg.seed)
        }
        Validation::TestFold => Ok((learn, test_rows.to_vec())),
    }
}

/// The fold loop both trainers share: for each model (in parallel), the
/// validation split, `fit_fold(cfg, train, val, test, stream)`, and the
/// out-of-fold predictions put back in clip order. Under `validation =
/// "held_out_epoch"` each model fits twice: on the training rows to find
/// the epoch (by R² on the held-out pieces), then on training and
/// held-out rows together for exactly that many epochs; the second fit
/// predicts, its report keeping the first's validation figures.
fn cross_validate<G, F>(
    cfg: &HeadConfig,
    cells: &Cells,
    groups: &[G],
    fit_fold: F,
) -> Result<CvOutput>
where
    G: Ord + Debug + Sync,
    F: Fn(&HeadConfig, &[usize], &[usize], &[usize], u64) -> Result<FoldFit> + Sync,
{
    let models = cells.models();
    let m = models.len();
    let results: Vec<(Vec<usize>, Vec<f32>, FoldReport, FoldHead)> = (models.into_par_iter())
        .enumerate()
        .map(|(model, (key, test_rows))| -> Result<_> {
            let what = || match cells.cross {
                None => format!("training fold {model} of {m}"),
                Some(_) => format!(
                    "training model {model} of {m} (fold {}, cross fold {})",
                    key.0, key.1
                ),
            };
            let (train_rows, val_rows) =
                train_val_rows(cfg, groups, cells, model, key, &test_rows).with_context(what)?;
            let stream = 16 * (model as u64 + 1);
            let (mut pred, mut report, mut head) =
                fit_fold(cfg, &train_rows, &val_rows, &test_rows, stream).with_context(what)?;
            let mut n_train = train_rows.len();
            if cfg.validation == Validation::HeldOutEpoch {
                let refit = HeadConfig {
                    run_epochs: Some(report.best_epoch),
                    ..cfg.clone()
                };
                let all = cells.learn_rows(key);
                let (p, r, h) = fit_fold(&refit, &all, &[], &test_rows, stream)
                    .with_context(|| format!("{}, refit on all its training clips", what()))?;
                report = FitReport {
                    train_seconds: report.train_seconds + r.train_seconds,
                    ..report
                };
                (pred, head, n_train) = (p, h, all.len());
            }
            let n_val_pieces = val_rows
                .iter()
                .map(|&r| &groups[r])
                .collect::<BTreeSet<_>>()
                .len();
            let fold_report = FoldReport {
                fold: model,
                n_train,
                n_val: val_rows.len(),
                n_test: test_rows.len(),
                n_val_pieces,
                fit: report,
            };
            Ok((test_rows, pred, fold_report, head))
        })
        .collect::<Result<_>>()?;
    let mut predictions = vec![f32::NAN; cells.folds.len() * N_DIMS];
    let mut reports = Vec::with_capacity(m);
    let mut heads = Vec::with_capacity(m);
    for (rows, pred, report, head) in results {
        for (j, &r) in rows.iter().enumerate() {
            predictions[r * N_DIMS..(r + 1) * N_DIMS]
                .copy_from_slice(&pred[j * N_DIMS..(j + 1) * N_DIMS]);
        }
        reports.push(report);
        heads.push(head);
    }
    Ok(CvOutput {
        predictions,
        folds: reports,
        heads,
    })
}

/// Cross-validated training: for each test fold, train on the other folds
/// (minus a validation split of whole pieces), predict the test fold.
///
/// Folds train in parallel (rayon), each single-threaded with random
/// streams derived from `(cfg.seed, fold)`, so predictions are
/// bit-identical whatever the thread count.
pub fn train_cv<G: Ord + Debug + Sync>(cfg: &HeadConfig, data: &CvData<G>) -> Result<CvOutput> {
    cfg.validate()?;
    check(data)?;
    check_label_range(cfg, data.labels)?;
    let cells = Cells {
        folds: data.folds,
        cross: None,
        train_only: None,
    };
    cross_validate(
        cfg,
        &cells,
        data.groups,
        |cfg, train_rows, val_rows, test_rows, stream| {
            fit_pooled(cfg, data, train_rows, val_rows, test_rows, stream)
        },
    )
}

/// One model of the hand-written pooled path: fit on `train_rows`
/// (early-stopped on `val_rows`), predict `test_rows`.
fn fit_pooled<G>(
    cfg: &HeadConfig,
    data: &CvData<G>,
    train_rows: &[usize],
    val_rows: &[usize],
    test_rows: &[usize],
    stream: u64,
) -> Result<FoldFit> {
    let fit_data = FitData {
        features: data.features,
        d_in: data.d_in,
        labels: data.labels,
        n_out: N_DIMS,
        train_rows,
        val_rows,
    };
    let (head, report) = fit(cfg, &fit_data, stream)?;
    let mut x_test = Vec::with_capacity(test_rows.len() * data.d_in);
    for &r in test_rows {
        x_test.extend_from_slice(&data.features[r * data.d_in..(r + 1) * data.d_in]);
    }
    Ok((head.predict(&x_test)?, report, FoldHead::Net(head)))
}

/// Cross-validated training of any head kind on `input`: pooled vectors
/// with only the classic options take the hand-written path ([`train_cv`]),
/// everything else the autodiff one ([`fit_graph`]). Same folds, splits and
/// random streams either way.
pub fn train_cv_input<G: Ord + Debug + Sync>(
    cfg: &HeadConfig,
    input: &HeadInput,
    labels: &[f32],
    folds: &[usize],
    groups: &[G],
) -> Result<CvOutput> {
    let cells = Cells {
        folds,
        cross: None,
        train_only: None,
    };
    train_cv_cells(cfg, input, labels, &cells, groups)
}

/// [`train_cv_input`] over any [`Cells`]: one model per test cell, each
/// learning only from clips that share no key with it.
pub fn train_cv_cells<G: Ord + Debug + Sync>(
    cfg: &HeadConfig,
    input: &HeadInput,
    labels: &[f32],
    cells: &Cells,
    groups: &[G],
) -> Result<CvOutput> {
    cfg.validate()?;
    let folds = cells.folds;
    if let Some(cross) = cells.cross {
        ensure!(
            cross.len() == folds.len(),
            "{} cross-fold ids for {} clips",
            cross.len(),
            folds.len()
        );
    }
    if let (HeadInput::Pooled { values, dim }, false) = (input, cfg.uses_autodiff()) {
        let data = CvData {
            features: values,
            d_in: *dim,
            labels,
            folds,
            groups,
        };
        check(&data)?;
        check_label_range(cfg, labels)?;
        return cross_validate(
            cfg,
            cells,
            groups,
            |cfg, train_rows, val_rows, test_rows, stream| {
                fit_pooled(cfg, &data, train_rows, val_rows, test_rows, stream)
            },
        );
    }
    let want = cfg.arch.input();
    let got = match input {
        HeadInput::Pooled { .. } => InputKind::Pooled,
        HeadInput::Frames(_) => InputKind::Frames,
        HeadInput::Two(..) => InputKind::TwoFrames,
    };
    ensure!(
        want == got,
        "head.arch = {:?} reads {want:?} input, got {got:?}",
        cfg.arch.name()
    );
    let n = check_input(input)?;
    check_split(n, labels, folds, groups)?;
    check_label_range(cfg, labels)?;
    cross_validate(
        cfg,
        cells,
        groups,
        |cfg, train_rows, val_rows, test_rows, stream| {
            let (head, report) =
                fit_graph(cfg, input, labels, N_DIMS, train_rows, val_rows, stream)?;
            Ok((
                head.predict(input, test_rows)?,
                report,
                FoldHead::Graph(head),
            ))
        },
    )
}

/// Trains one head on every clip (for scoring new recordings), holding out
/// a validation split of whole pieces for early stopping exactly as
/// [`train_cv`] does inside a fold. `folds` are not needed: nothing is
/// held out for testing, so there is no test fold to validate on and
/// `validation` is ignored (always held-out pieces).
pub fn train_final<G: Ord + Debug + Sync>(
    cfg: &HeadConfig,
    features: &[f32],
    d_in: usize,
    labels: &[f32],
    groups: &[G],
) -> Result<(TrainedHead, FitReport)> {
    cfg.validate()?;
    ensure!(
        d_in > 0 && features.len().is_multiple_of(d_in),
        "features are not [n, {d_in}]"
    );
    let n = features.len() / d_in;
    ensure!(
        labels.len() == n * N_DIMS,
        "labels have {} values; expected {n} clips x {N_DIMS} PercePiano dimensions = {}",
        labels.len(),
        n * N_DIMS
    );
    ensure!(
        groups.len() == n,
        "{} piece ids for {n} clips",
        groups.len()
    );
    // All clips in fold 1 and test fold 0 empty: the split draws its
    // validation pieces from all pieces.
    let all_train = vec![1usize; n];
    let (train_rows, val_rows) =
        split_train_val(groups, &all_train, 0, cfg.val_fraction, cfg.seed)?;
    let data = FitData {
        features,
        d_in,
        labels,
        n_out: N_DIMS,
        train_rows: &train_rows,
        val_rows: &val_rows,
    };
    fit(cfg, &data, 0).context("training the final head on all clips")
}
