//! Percentile bootstrap for fold-structured statistics.
//!
//! Each resample draws, independently for every fold, as many of that fold's
//! held-out units as it has, with replacement, and recomputes the statistic
//! on the resampled folds. Folds are never mixed, so a resample has the same
//! fold structure as the estimate. A unit is a clip ([`bootstrap_ci`]) or a
//! cluster of clips that share what makes their errors alike, e.g. a
//! segment group's performances ([`cluster_bootstrap_ci`]: every clip of a
//! drawn cluster enters the resample, the cluster bootstrap of Davison &
//! Hinkley 1997, §3.8, and Field & Welsh 2007, "Bootstrapping clustered
//! data", JRSS B 69(3)). Resampling clips that are not independent makes
//! the interval too narrow; `tests.rs` measures by how much on clustered
//! data with a known answer.
//!
//! Resample b uses its own random stream `(seed, b)`, so the result does not
//! depend on how rayon schedules resamples.
//!
//! The percentile interval does not mathematically guarantee that it contains
//! the point estimate: when the bootstrap distribution is shifted (e.g. a
//! biased statistic on very small folds) the estimate can fall outside.
//! [`Ci::contains_estimate`] reports it; callers should show it rather than
//! widen the interval. On realistic fold sizes (hundreds of clips) R²'s
//! bootstrap shift is far smaller than the interval width.

use anyhow::{Result, ensure};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// Bootstrap settings; defaults are the study's (1,000 resamples, 95%).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BootstrapConfig {
    pub resamples: usize,
    /// Central coverage, e.g. 0.95 for the 2.5th..97.5th percentiles.
    pub level: f64,
    pub seed: u64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        BootstrapConfig {
            resamples: 1000,
            level: 0.95,
            seed: 42,
        }
    }
}

/// A point estimate with its percentile-bootstrap interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ci {
    pub estimate: f64,
    pub lo: f64,
    pub hi: f64,
    pub level: f64,
    /// Resamples whose statistic was defined (the interval uses these).
    pub resamples_used: usize,
    /// Resamples dropped because the statistic was undefined on them.
    pub resamples_undefined: usize,
}

impl Ci {
    pub fn contains_estimate(&self) -> bool {
        self.lo <= self.estimate && self.estimate <= self.hi
    }
}

/// The q-quantile (0 ≤ q ≤ 1) of already sorted values by linear
/// interpolation between order statistics: position h = (m − 1)·q, value
/// x[⌊h⌋] + (h − ⌊h⌋)(x[⌊h⌋+1] − x[⌊h⌋]). This is Hyndman–Fan type 7,
/// numpy's default `percentile(method="linear")`.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "percentile of nothing");
    assert!((0.0..=1.0).contains(&q), "quantile {q} outside [0, 1]");
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Percentile-bootstrap CI of `statistic`, which maps per-fold row lists to
/// a value (or `None` where undefined), resampling clips within folds. The
/// estimate is `statistic(fold_rows)`.
pub fn bootstrap_ci<F>(fold_rows: &[Vec<usize>], cfg: &BootstrapConfig, statistic: F) -> Result<Ci>
where
    F: Fn(&[Vec<usize>]) -> Option<f64> + Sync,
{
    let singletons: Vec<Vec<Vec<usize>>> = fold_rows
        .iter()
        .map(|rows| rows.iter().map(|&r| vec![r]).collect())
        .collect();
    cluster_bootstrap_ci(&singletons, cfg, statistic)
}

/// What one bootstrap resample draws: whole clusters within each fold
/// (`fold_clusters[f]` lists fold f's clusters, each its rows), and
/// optionally a second clustering crossed with the first (`crossed[row]`,
/// e.g. performers across segment groups), drawn once over all folds. With
/// both, a row enters a resample (times its cluster was drawn) × (times its
/// crossed cluster was drawn): the pigeonhole bootstrap of Owen (2007, "The
/// pigeonhole bootstrap", Ann. Appl. Stat. 1(2)), whose variance covers
/// both ways the errors are shared (McCullagh 2000 shows no bootstrap is
/// exact for crossed designs; this one errs on the wide side).
#[derive(Clone, Debug)]
pub struct Resampling<'a> {
    pub fold_clusters: Vec<Vec<Vec<usize>>>,
    pub crossed: Option<&'a [usize]>,
}

impl Resampling<'_> {
    /// Resampling whole clusters within folds, nothing crossed.
    pub fn clusters(fold_clusters: Vec<Vec<Vec<usize>>>) -> Resampling<'static> {
        Resampling {
            fold_clusters,
            crossed: None,
        }
    }

    fn check(&self) -> Result<()> {
        ensure!(
            (self.fold_clusters.iter())
                .all(|c| !c.is_empty() && c.iter().all(|rows| !rows.is_empty())),
            "bootstrap: a fold (or a cluster) has no clips"
        );
        Ok(())
    }

    /// Every row once: the data itself.
    fn whole(&self) -> Vec<Vec<usize>> {
        self.fold_clusters.iter().map(|c| c.concat()).collect()
    }

    /// Resample `b`'s rows per fold, from its own stream `(seed, b)`.
    pub(crate) fn draw(&self, seed: u64, b: usize) -> Vec<Vec<usize>> {
        let mut rng = Rng::new(seed, b as u64);
        let drawn: Vec<Vec<usize>> = (self.fold_clusters.iter())
            .map(|clusters| {
                (0..clusters.len())
                    .map(|_| rng.below(clusters.len()))
                    .collect()
            })
            .collect();
        let Some(crossed) = self.crossed else {
            return (self.fold_clusters.iter().zip(&drawn))
                .map(|(clusters, picks)| {
                    picks
                        .iter()
                        .flat_map(|&c| clusters[c].iter().copied())
                        .collect()
                })
                .collect();
        };
        // The crossed clusters' draw counts, one draw over all folds.
        let n = crossed.iter().max().map_or(0, |m| m + 1);
        let mut times = vec![0usize; n];
        for _ in 0..n {
            times[rng.below(n)] += 1;
        }
        (self.fold_clusters.iter().zip(&drawn))
            .map(|(clusters, picks)| {
                let mut rows = Vec::new();
                for &c in picks {
                    for &r in &clusters[c] {
                        rows.extend(std::iter::repeat_n(r, times[crossed[r]]));
                    }
                }
                rows
            })
            .collect()
    }
}

/// [`bootstrap_ci`] resampling whole clusters within folds:
/// `fold_clusters[f]` lists fold f's clusters, each its rows. A resample of
/// a fold draws as many clusters as it has, with replacement, and takes all
/// their rows. With one clip per cluster this is [`bootstrap_ci`], draw for draw.
pub fn cluster_bootstrap_ci<F>(
    fold_clusters: &[Vec<Vec<usize>>],
    cfg: &BootstrapConfig,
    statistic: F,
) -> Result<Ci>
where
    F: Fn(&[Vec<usize>]) -> Option<f64> + Sync,
{
    resampled_ci(
        &Resampling::clusters(fold_clusters.to_vec()),
        cfg,
        statistic,
    )
}

/// The percentile interval of `statistic` over resamples drawn as
/// `resampling` says; the estimate is the statistic on the data itself.
pub fn resampled_ci<F>(resampling: &Resampling, cfg: &BootstrapConfig, statistic: F) -> Result<Ci>
where
    F: Fn(&[Vec<usize>]) -> Option<f64> + Sync,
{
    ensure!(
        cfg.resamples >= 2,
        "bootstrap needs at least 2 resamples, got {}",
        cfg.resamples
    );
    ensure!(
        cfg.level > 0.0 && cfg.level < 1.0,
        "bootstrap level must be in (0, 1), got {}",
        cfg.level
    );
    resampling.check()?;
    let estimate = statistic(&resampling.whole()).ok_or_else(|| {
        anyhow::anyhow!("bootstrap: the statistic is undefined on the data itself")
    })?;
    let draws: Vec<Option<f64>> = (0..cfg.resamples)
        .into_par_iter()
        .map(|b| statistic(&resampling.draw(cfg.seed, b)))
        .collect();
    let mut values: Vec<f64> = draws.iter().filter_map(|v| *v).collect();
    let undefined = cfg.resamples - values.len();
    ensure!(
        values.len() >= 2,
        "bootstrap: the statistic was undefined on {undefined} of {} resamples",
        cfg.resamples
    );
    values.sort_by(f64::total_cmp);
    let alpha = 1.0 - cfg.level;
    Ok(Ci {
        estimate,
        lo: percentile(&values, alpha / 2.0),
        hi: percentile(&values, 1.0 - alpha / 2.0),
        level: cfg.level,
        resamples_used: values.len(),
        resamples_undefined: undefined,
    })
}

/// The paired difference `statistic_a − statistic_b` of two predictors on
/// the same clips and folds, resampled as `resampling` says: each resample
/// draws the units once and recomputes both, so what the two share (which
/// pieces were drawn) cancels. A difference is shown when its interval
/// excludes 0.
pub fn paired_delta_ci<A, B>(
    resampling: &Resampling,
    cfg: &BootstrapConfig,
    statistic_a: A,
    statistic_b: B,
) -> Result<Ci>
where
    A: Fn(&[Vec<usize>]) -> Option<f64> + Sync,
    B: Fn(&[Vec<usize>]) -> Option<f64> + Sync,
{
    resampled_ci(resampling, cfg, |rows| {
        Some(statistic_a(rows)? - statistic_b(rows)?)
    })
}

/// Each fold's rows grouped by `cluster[row]`, clusters in order of first
/// appearance (so the grouping, and every resample, is deterministic).
pub fn clusters_by_fold(fold_rows: &[Vec<usize>], cluster: &[usize]) -> Vec<Vec<Vec<usize>>> {
    fold_rows
        .iter()
        .map(|rows| {
            let mut order: Vec<usize> = Vec::new();
            let mut groups: std::collections::HashMap<usize, Vec<usize>> = Default::default();
            for &r in rows {
                let g = groups.entry(cluster[r]).or_insert_with(|| {
                    order.push(cluster[r]);
                    Vec::new()
                });
                g.push(r);
            }
            order.iter().map(|c| groups.remove(c).unwrap()).collect()
        })
        .collect()
}
