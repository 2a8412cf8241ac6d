//! Evaluation metrics for out-of-fold predictions.
//!
//! Definitions (the study's, see DESIGN.md):
//! - Per fold, **R²** is the mean over the dimensions of each dimension's
//!   R² = 1 − SS_res/SS_tot on that fold's held-out clips (SS_tot around the
//!   fold's own mean of the true values). An experiment's R² is the mean over
//!   folds. MAE, Pearson r and dispersion ratio are aggregated the same way.
//! - **Pearson r** comes with a two-sided p-value from the t-test with n − 2
//!   degrees of freedom (identical to `scipy.stats.pearsonr`).
//! - **Dispersion ratio** = std(pred) / std(true) with population standard
//!   deviations (ddof = 0); the ratio is the same for any common ddof.
//! - The **bootstrap CI** (see [`bootstrap`]) resamples held-out units within
//!   each fold and recomputes exactly the fold-mean of dimension-mean R². The
//!   unit is the split's cluster when [`evaluate`] is given one (a segment
//!   group's performances share a score and most of their label variance),
//!   and that is `r2_ci`; the clip-level interval is kept beside it.
//!
//! Degenerate cases: if a dimension's true values are constant within a fold,
//! its R² (and Pearson r, dispersion ratio) are undefined. That is a data
//! error for the point estimate: [`evaluate`] fails and names the fold and
//! dimension instead of silently dropping or zeroing it (sklearn would report
//! 0 or 1, which biases the mean). Constant *predictions* are legitimate
//! (a collapsed model): R² is defined, dispersion is 0, Pearson r is `None`.
//! Inside the bootstrap a resample can make a dimension constant by chance
//! (only with tiny folds); such resamples are dropped and counted.
//!
//! Must not import any other module of the crate but `rng` and `dims`: metrics are plain
//! functions of predictions and labels.

pub mod bootstrap;
pub mod dist;

use anyhow::{Result, bail, ensure};
use serde::{Deserialize, Serialize};

pub use bootstrap::{
    BootstrapConfig, Ci, Resampling, bootstrap_ci, cluster_bootstrap_ci, clusters_by_fold,
    paired_delta_ci, percentile, resampled_ci,
};
pub use dist::{pearson_p_value, student_t_two_sided_p};

/// True if every value equals the first (an undefined-variance column).
fn is_constant(xs: &[f64]) -> bool {
    xs.iter().all(|&x| x == xs[0])
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Coefficient of determination 1 − SS_res/SS_tot. `None` when `y_true` is
/// empty or constant (SS_tot = 0).
pub fn r2_score(y_true: &[f64], y_pred: &[f64]) -> Option<f64> {
    assert_eq!(y_true.len(), y_pred.len(), "r2_score: length mismatch");
    if y_true.is_empty() || is_constant(y_true) {
        return None;
    }
    let m = mean(y_true);
    let (mut ss_res, mut ss_tot) = (0.0, 0.0);
    for (&t, &p) in y_true.iter().zip(y_pred) {
        ss_res += (t - p) * (t - p);
        ss_tot += (t - m) * (t - m);
    }
    Some(1.0 - ss_res / ss_tot)
}

/// Mean absolute error. `None` for empty input.
pub fn mae(y_true: &[f64], y_pred: &[f64]) -> Option<f64> {
    assert_eq!(y_true.len(), y_pred.len(), "mae: length mismatch");
    if y_true.is_empty() {
        return None;
    }
    Some(
        y_true
            .iter()
            .zip(y_pred)
            .map(|(t, p)| (t - p).abs())
            .sum::<f64>()
            / y_true.len() as f64,
    )
}

/// Pearson correlation with its two-sided p-value.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pearson {
    pub r: f64,
    pub p: f64,
}

/// Pearson r and p (t-test, n − 2 dof). `None` if n < 3 or either side is
/// constant.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<Pearson> {
    assert_eq!(x.len(), y.len(), "pearson: length mismatch");
    let n = x.len();
    if n < 3 || is_constant(x) || is_constant(y) {
        return None;
    }
    let (mx, my) = (mean(x), mean(y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (&a, &b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    let r = (sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0);
    Some(Pearson {
        r,
        p: pearson_p_value(r, n),
    })
}

/// Population standard deviation (ddof = 0).
pub fn std_pop(xs: &[f64]) -> f64 {
    let m = mean(xs);
    (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64).sqrt()
}

/// std(pred) / std(true), population std. `None` if `y_true` is empty or constant.
pub fn dispersion_ratio(y_true: &[f64], y_pred: &[f64]) -> Option<f64> {
    assert_eq!(
        y_true.len(),
        y_pred.len(),
        "dispersion_ratio: length mismatch"
    );
    if y_true.is_empty() || is_constant(y_true) {
        return None;
    }
    Some(std_pop(y_pred) / std_pop(y_true))
}

/// Metrics of one dimension on one set of clips.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DimMetrics {
    pub r2: f64,
    pub mae: f64,
    /// `None` when the predictions are constant.
    pub pearson: Option<Pearson>,
    pub dispersion: f64,
}

/// Metrics of one fold's held-out clips.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FoldMetrics {
    pub fold: usize,
    pub n_clips: usize,
    pub dims: Vec<DimMetrics>,
    /// Mean over dimensions.
    pub r2: f64,
    pub mae: f64,
    /// Mean r over dimensions whose r is defined; `None` if none is.
    pub pearson_r: Option<f64>,
    pub dispersion: f64,
}

/// Per-dimension summary across folds (means over folds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DimSummary {
    pub r2: f64,
    pub mae: f64,
    /// Mean over folds where r is defined.
    pub pearson_r: Option<f64>,
    pub dispersion: f64,
    /// Pearson r and p on all out-of-fold predictions pooled (one test on all
    /// n clips; averaging per-fold p-values would be meaningless).
    pub pooled_pearson: Option<Pearson>,
}

/// One training seed's R² (the fold mean over dimensions, as `r2`); `None`
/// where a dimension's labels are constant in a fold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeedR2 {
    pub seed: u64,
    pub r2: Option<f64>,
}

impl Evaluation {
    /// Mean and sample standard deviation of R² over the seeds (`None`
    /// with fewer than 2 seeds or an undefined R²).
    pub fn seed_r2_mean_sd(&self) -> Option<(f64, f64)> {
        let r2: Vec<f64> = self.seed_r2.iter().map(|s| s.r2).collect::<Option<_>>()?;
        let n = r2.len();
        if n < 2 {
            return None;
        }
        let mean = r2.iter().sum::<f64>() / n as f64;
        let var = r2.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        Some((mean, var.sqrt()))
    }
}

/// Everything [`evaluate`] computes for one experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub folds: Vec<FoldMetrics>,
    pub per_dim: Vec<DimSummary>,
    /// Mean over folds of the fold R² (the study's headline number).
    pub r2: f64,
    pub mae: f64,
    pub pearson_r: Option<f64>,
    pub dispersion: f64,
    /// Bootstrap CI of `r2`: resampling `ci_unit` clusters within folds, or
    /// clips where no cluster was given.
    pub r2_ci: Ci,
    /// What `r2_ci` resamples within folds (e.g. "segment group"); `None`: clips.
    #[serde(default)]
    pub ci_unit: Option<String>,
    /// Number of those clusters over all folds.
    #[serde(default)]
    pub n_clusters: Option<usize>,
    /// Each clip's cluster (in the predictions' clip order), so a paired
    /// comparison with another experiment resamples the same units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_of_clip: Option<Vec<usize>>,
    /// Each clip's crossed cluster (its performer on a split that keeps
    /// segment groups and performers apart), resampled with `cluster_of_clip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crossed_of_clip: Option<Vec<usize>>,
    /// The clip-level CI of `r2` (clips resampled within folds as if
    /// independent), beside a clustered `r2_ci` to show how much too narrow
    /// it is; `None` when `r2_ci` is clip-level itself.
    #[serde(default)]
    pub clip_r2_ci: Option<Ci>,
    /// The study's CI, reported beside ours as its defect: a percentile
    /// bootstrap of R² on the *pooled* out-of-fold predictions (all clips
    /// resampled together, folds ignored), same resamples, level and seed.
    /// Its estimate is the pooled R², not `r2`, which is why it can miss
    /// the number it is printed beside. `None` where R² is undefined.
    #[serde(default)]
    pub pooled_r2_ci: Option<Ci>,
    /// `r2` on the human performances only (the clips flagged as
    /// notation-software renderings left out of every fold's score; they
    /// still train), where the caller flagged any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r2_humans: Option<f64>,
    /// Pairwise accuracy within segment groups, where the caller has the
    /// labels' standard errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairwise: Option<PairwiseAccuracy>,
    /// R² (the same statistic as `r2`) of each seed an experiment trained
    /// with, its own first; empty when it trained once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seed_r2: Vec<SeedR2>,
}

/// Row-major `[n, n_dims]` labels and predictions plus the fold of each row:
/// the shape every experiment-level metric works on.
#[derive(Clone, Copy, Debug)]
pub struct OutOfFold<'a> {
    pub y_true: &'a [f32],
    pub y_pred: &'a [f32],
    pub n_dims: usize,
}

impl<'a> OutOfFold<'a> {
    /// Checks shapes and finiteness and returns the view.
    pub fn new(y_true: &'a [f32], y_pred: &'a [f32], n_dims: usize) -> Result<Self> {
        ensure!(n_dims > 0, "n_dims must be positive");
        ensure!(
            y_true.len().is_multiple_of(n_dims),
            "labels have {} values, not a multiple of {n_dims} dimensions",
            y_true.len()
        );
        ensure!(
            y_pred.len() == y_true.len(),
            "predictions have {} values but labels have {} ({} clips x {n_dims} dimensions)",
            y_pred.len(),
            y_true.len(),
            y_true.len() / n_dims
        );
        for (what, m) in [("label", y_true), ("prediction", y_pred)] {
            if let Some(i) = m.iter().position(|x| !x.is_finite()) {
                bail!(
                    "{what} of clip {}, dimension {} is {}",
                    i / n_dims,
                    i % n_dims,
                    m[i]
                );
            }
        }
        Ok(OutOfFold {
            y_true,
            y_pred,
            n_dims,
        })
    }

    pub fn n_clips(&self) -> usize {
        self.y_true.len() / self.n_dims
    }

    /// Column `dim` of labels and predictions over `rows`, as f64.
    pub fn column(&self, rows: &[usize], dim: usize) -> (Vec<f64>, Vec<f64>) {
        let t = rows
            .iter()
            .map(|&r| self.y_true[r * self.n_dims + dim] as f64)
            .collect();
        let p = rows
            .iter()
            .map(|&r| self.y_pred[r * self.n_dims + dim] as f64)
            .collect();
        (t, p)
    }

    /// Mean over dimensions of each dimension's R² on `rows`; `None` if any
    /// dimension is undefined there. The same sums in the same order as
    /// [`r2_score`] on each column (bit for bit), in two passes over the
    /// rows' contiguous values instead of gathering 2 × 19 columns: the
    /// bootstraps call it a few thousand times per experiment.
    pub fn dim_mean_r2(&self, rows: &[usize]) -> Option<f64> {
        let nd = self.n_dims;
        if rows.is_empty() {
            return None;
        }
        let row = |r: usize| {
            (
                &self.y_true[r * nd..(r + 1) * nd],
                &self.y_pred[r * nd..(r + 1) * nd],
            )
        };
        let mut sum = vec![0.0f64; nd];
        let first = row(rows[0]).0;
        let mut constant = vec![true; nd];
        for &r in rows {
            for (d, &t) in row(r).0.iter().enumerate() {
                sum[d] += t as f64;
                constant[d] &= t == first[d];
            }
        }
        if constant.iter().any(|&c| c) {
            return None;
        }
        let n = rows.len() as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let (mut ss_res, mut ss_tot) = (vec![0.0f64; nd], vec![0.0f64; nd]);
        for &r in rows {
            let (t, p) = row(r);
            for d in 0..nd {
                let (t, p) = (t[d] as f64, p[d] as f64);
                ss_res[d] += (t - p) * (t - p);
                ss_tot[d] += (t - mean[d]) * (t - mean[d]);
            }
        }
        let mut total = 0.0;
        for d in 0..nd {
            total += 1.0 - ss_res[d] / ss_tot[d];
        }
        Some(total / nd as f64)
    }

    /// The experiment statistic: mean over folds of [`Self::dim_mean_r2`].
    pub fn fold_mean_r2(&self, fold_rows: &[Vec<usize>]) -> Option<f64> {
        let mut sum = 0.0;
        for rows in fold_rows {
            sum += self.dim_mean_r2(rows)?;
        }
        Some(sum / fold_rows.len() as f64)
    }
}

/// Pairwise accuracy: of the pairs of clips in the same group (a segment
/// group's performances) whose labels differ by more than the standard
/// error of their difference, sqrt(se_i² + se_j²), the share the
/// predictions order the same way (a tie in the predictions counts half).
/// The question a student asks of two takes of the same passage: is this
/// one better than that one? Differences within the raters' own noise are
/// not asked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairwiseAccuracy {
    /// Per dimension; `None` where no pair differs enough.
    pub per_dim: Vec<Option<f64>>,
    /// Pairs counted per dimension.
    pub n_pairs: Vec<usize>,
    /// Mean over the dimensions where it is defined.
    pub mean: Option<f64>,
}

/// [`PairwiseAccuracy`] of `oof`'s clips: `group[i]` is clip i's group,
/// `se` the labels' standard errors, `[n, n_dims]` like the labels.
pub fn pairwise_accuracy(oof: &OutOfFold, group: &[usize], se: &[f32]) -> Result<PairwiseAccuracy> {
    let (n, nd) = (oof.n_clips(), oof.n_dims);
    ensure!(group.len() == n, "{} group ids for {n} clips", group.len());
    ensure!(
        se.len() == n * nd,
        "{} standard errors for {n} clips x {nd} dimensions",
        se.len()
    );
    let mut members: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, &g) in group.iter().enumerate() {
        members.entry(g).or_default().push(i);
    }
    let (mut right, mut n_pairs) = (vec![0.0f64; nd], vec![0usize; nd]);
    for clips in members.values() {
        for (a, &i) in clips.iter().enumerate() {
            for &j in &clips[a + 1..] {
                for d in 0..nd {
                    let (k, l) = (i * nd + d, j * nd + d);
                    let dy = oof.y_true[k] as f64 - oof.y_true[l] as f64;
                    let bar = (se[k] as f64).hypot(se[l] as f64);
                    if dy.abs() <= bar {
                        continue;
                    }
                    let dp = oof.y_pred[k] as f64 - oof.y_pred[l] as f64;
                    n_pairs[d] += 1;
                    right[d] += if dp == 0.0 {
                        0.5
                    } else if dp.signum() == dy.signum() {
                        1.0
                    } else {
                        0.0
                    };
                }
            }
        }
    }
    let per_dim: Vec<Option<f64>> = (right.iter().zip(&n_pairs))
        .map(|(&r, &m)| (m > 0).then(|| r / m as f64))
        .collect();
    let mean = mean_defined(per_dim.iter().copied());
    Ok(PairwiseAccuracy {
        per_dim,
        n_pairs,
        mean,
    })
}

/// Rows of each fold `0..k`, with k = max fold + 1. Every fold must be non-empty.
pub fn rows_by_fold(folds: &[usize]) -> Result<Vec<Vec<usize>>> {
    ensure!(!folds.is_empty(), "no clips to evaluate");
    let k = folds.iter().max().copied().unwrap_or(0) + 1;
    let mut out = vec![Vec::new(); k];
    for (i, &f) in folds.iter().enumerate() {
        out[f].push(i);
    }
    for (f, rows) in out.iter().enumerate() {
        ensure!(!rows.is_empty(), "fold {f} of 0..{k} has no clips");
    }
    Ok(out)
}

fn mean_defined(xs: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let (mut s, mut n) = (0.0, 0usize);
    for x in xs.flatten() {
        s += x;
        n += 1;
    }
    (n > 0).then(|| s / n as f64)
}

/// Metrics of one dimension on `rows`; errors if the true values are constant.
fn dim_metrics(oof: &OutOfFold, rows: &[usize], dim: usize, fold: usize) -> Result<DimMetrics> {
    let (t, p) = oof.column(rows, dim);
    let Some(r2) = r2_score(&t, &p) else {
        // PercePiano's dimensions by name; any other width by index.
        let name = match crate::dims::DIMENSIONS.get(dim) {
            Some(n) if oof.n_dims == crate::dims::N_DIMS => format!("`{n}`"),
            _ => dim.to_string(),
        };
        bail!(
            "fold {fold}, dimension {name}: the {} held-out true values are all {}, so R² is undefined",
            t.len(),
            t.first().copied().unwrap_or(f64::NAN)
        );
    };
    Ok(DimMetrics {
        r2,
        mae: mae(&t, &p).unwrap_or(f64::NAN),
        pearson: pearson(&t, &p),
        dispersion: dispersion_ratio(&t, &p).unwrap_or(f64::NAN),
    })
}

/// The clusters a bootstrap resamples whole: each clip's cluster id, and
/// what a cluster is (for the tables: "segment group", "performer"); with
/// `crossed`, a second clustering crossed with the first (performers
/// across segment groups), resampled too ([`Resampling`]).
#[derive(Clone, Copy, Debug)]
pub struct Clusters<'a> {
    pub of_clip: &'a [usize],
    pub crossed: Option<&'a [usize]>,
    pub unit: &'a str,
}

impl<'a> Clusters<'a> {
    /// How a resample of these out-of-fold rows is drawn.
    pub fn resampling(&self, fold_rows: &[Vec<usize>]) -> Resampling<'a> {
        Resampling {
            fold_clusters: clusters_by_fold(fold_rows, self.of_clip),
            crossed: self.crossed,
        }
    }
}

/// Full evaluation of out-of-fold predictions: per fold and dimension
/// metrics, their means, pooled Pearson tests and the bootstrap CI of R²
/// (resampling `clusters` within folds where given, and clips).
///
/// `y_true`, `y_pred`: row-major `[n, n_dims]`; `folds[i]` is clip i's test fold.
pub fn evaluate(
    y_true: &[f32],
    y_pred: &[f32],
    n_dims: usize,
    folds: &[usize],
    clusters: Option<Clusters>,
    boot: &BootstrapConfig,
) -> Result<Evaluation> {
    let oof = OutOfFold::new(y_true, y_pred, n_dims)?;
    ensure!(
        folds.len() == oof.n_clips(),
        "{} fold ids for {} clips",
        folds.len(),
        oof.n_clips()
    );
    let fold_rows = rows_by_fold(folds)?;
    let mut fold_metrics = Vec::with_capacity(fold_rows.len());
    for (f, rows) in fold_rows.iter().enumerate() {
        let dims = (0..n_dims)
            .map(|d| dim_metrics(&oof, rows, d, f))
            .collect::<Result<Vec<_>>>()?;
        let nd = n_dims as f64;
        fold_metrics.push(FoldMetrics {
            fold: f,
            n_clips: rows.len(),
            r2: dims.iter().map(|m| m.r2).sum::<f64>() / nd,
            mae: dims.iter().map(|m| m.mae).sum::<f64>() / nd,
            pearson_r: mean_defined(dims.iter().map(|m| m.pearson.map(|p| p.r))),
            dispersion: dims.iter().map(|m| m.dispersion).sum::<f64>() / nd,
            dims,
        });
    }
    let k = fold_metrics.len() as f64;
    let all_rows: Vec<usize> = (0..oof.n_clips()).collect();
    let per_dim = (0..n_dims)
        .map(|d| {
            let (t, p) = oof.column(&all_rows, d);
            DimSummary {
                r2: fold_metrics.iter().map(|f| f.dims[d].r2).sum::<f64>() / k,
                mae: fold_metrics.iter().map(|f| f.dims[d].mae).sum::<f64>() / k,
                pearson_r: mean_defined(
                    fold_metrics.iter().map(|f| f.dims[d].pearson.map(|p| p.r)),
                ),
                dispersion: fold_metrics
                    .iter()
                    .map(|f| f.dims[d].dispersion)
                    .sum::<f64>()
                    / k,
                pooled_pearson: pearson(&t, &p),
            }
        })
        .collect();
    let statistic = |rows: &[Vec<usize>]| oof.fold_mean_r2(rows);
    let clip_r2_ci = bootstrap_ci(&fold_rows, boot, statistic)?;
    let (r2_ci, clip_r2_ci, ci_unit, n_clusters) = match clusters {
        None => (clip_r2_ci, None, None, None),
        Some(c) => {
            ensure!(
                c.of_clip.len() == oof.n_clips(),
                "{} cluster ids for {} clips",
                c.of_clip.len(),
                oof.n_clips()
            );
            if let Some(x) = c.crossed {
                ensure!(
                    x.len() == oof.n_clips(),
                    "{} crossed cluster ids for {} clips",
                    x.len(),
                    oof.n_clips()
                );
            }
            let resampling = c.resampling(&fold_rows);
            let n = resampling.fold_clusters.iter().map(Vec::len).sum();
            let ci = resampled_ci(&resampling, boot, statistic)?;
            (ci, Some(clip_r2_ci), Some(c.unit.to_string()), Some(n))
        }
    };
    let pooled_r2_ci = bootstrap_ci(std::slice::from_ref(&all_rows), boot, |rows| {
        oof.dim_mean_r2(&rows[0])
    })
    .ok();
    Ok(Evaluation {
        r2: fold_metrics.iter().map(|f| f.r2).sum::<f64>() / k,
        mae: fold_metrics.iter().map(|f| f.mae).sum::<f64>() / k,
        pearson_r: mean_defined(fold_metrics.iter().map(|f| f.pearson_r)),
        dispersion: fold_metrics.iter().map(|f| f.dispersion).sum::<f64>() / k,
        folds: fold_metrics,
        per_dim,
        r2_ci,
        ci_unit,
        n_clusters,
        cluster_of_clip: clusters.map(|c| c.of_clip.to_vec()),
        crossed_of_clip: clusters.and_then(|c| c.crossed.map(<[usize]>::to_vec)),
        clip_r2_ci,
        pooled_r2_ci,
        r2_humans: None,
        seed_r2: Vec::new(),
        pairwise: None,
    })
}

#[cfg(test)]
mod tests;
