//! The public result tables (schemas documented in README.md, "Results"):
//! each is a small polars query over the input frames of [`frames`] plus the
//! list of its public columns. Column names and kinds are an interface: keep
//! them stable. A new table is a name in [`TABLES`], a query and its columns.
//! (The run history is built the same way, in [`crate::history`].)

use anyhow::{Context, Result};
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::{Results, frames};
use crate::dims::N_DIMS;
use crate::frame::{Col, Kind};
use crate::table::TableBuilder;

/// Names of the tables, each written to `data/out/results/<name>.parquet`.
pub const TABLES: [&str; 6] = [
    "summary",
    "per_fold",
    "per_dimension",
    "per_category",
    "predictions",
    "failed",
];

type Query = fn(&Results) -> PolarsResult<LazyFrame>;

/// Builds the table called `name` (one of [`TABLES`]) from every split's
/// results: each split's rows (ranked within the split) with a `split`
/// column, splits in order. `failed` is the same on every split: once.
pub fn build(name: &str, all: &[Results]) -> Result<TableBuilder> {
    let (query, columns): (Query, &[Col]) = match name {
        "summary" => (summary, SUMMARY),
        "per_fold" => (per_fold, PER_FOLD),
        "per_dimension" => (per_dimension, PER_DIMENSION),
        "per_category" => (per_category, PER_CATEGORY),
        "predictions" => (predictions, PREDICTIONS),
        "failed" => (failed, FAILED),
        other => anyhow::bail!("no result table named `{other}`"),
    };
    let stacked = || -> PolarsResult<LazyFrame> {
        if name == "failed" {
            return query(&all[0]);
        }
        let frames = all
            .iter()
            .map(|r| Ok(query(r)?.with_column(lit(r.split.name()).alias("split"))))
            .collect::<PolarsResult<Vec<_>>>()?;
        concat(frames, UnionArgs::default())
    };
    anyhow::ensure!(!all.is_empty(), "no results to tabulate");
    // Spelled out: polars' prelude has a `with_context` of its own.
    let df = anyhow::Context::with_context(stacked().and_then(LazyFrame::collect), || {
        format!("computing result table `{name}`")
    })?;
    Ok(crate::frame::to_table(&df, columns)
        .with_context(|| format!("result table `{name}`"))?
        .meta("pipe.metric_definitions", DEFINITIONS))
}

/// The metric definitions every result table carries (`pipe.metric_definitions`).
pub(super) const DEFINITIONS: &str = "r2: per fold, mean over the 19 dimensions of each dimension's R2 on the fold's held-out clips; \
experiment r2 = mean over folds. mae, pearson, dispersion (std(pred)/std(true), population std) are aggregated the same way. \
r2_ci_low/high: percentile bootstrap of exactly that statistic, resampling held-out ci_units within each fold (the split's clusters, whole: pieces, performers, or pieces and performers crossed); \
r2_ci_clip_low/high: the same resampling clips as if independent (too narrow on clustered data), where ci_unit is not the clip; \
delta_best, delta_best_ci_low/high: r2 of the best row validated on held-out pieces minus this row's, on the same clips, with a paired bootstrap resampling the same ci_units for both. \
r2_seeds_mean, r2_seeds_sd, n_seeds: where an experiment trained once per seed (seeds = [...]), the mean and sample standard deviation of r2 over its n_seeds runs (same folds: training noise only); r2, its CI and every comparison are its first seed's run. \
split: what no test clip shares with its model's training clips (piece: segment group; performer: performer; piece_performer: both, one model per cell of piece fold x performer fold, folds = piece folds; performer_published: PercePiano's published performer folds, its clips of no fold train every model and are not in the tables); ranks and delta_best are within a split. \
ci_unit on piece_performer: pieces within folds and performers across folds, crossed (the pigeonhole bootstrap, Owen 2007). \
r2_humans: r2 on the human performances only (renderings train but are not scored). label_only: a baseline that reads no audio and no MIDI. \
pairwise_acc: of the pairs of performances of one segment group whose labels differ by more than sqrt(se_i^2 + se_j^2) (se: the raters' std / sqrt(raters)), the share the predictions order the same way (ties half), n_pairs of them; summary: mean over dimensions.";

use Kind::{Bool, F32, F64, F64Opt, I32Opt, Utf8, Utf8Opt};

const SUMMARY: &[Col] = &[
    ("rank", I32Opt),
    ("experiment", Utf8),
    ("split", Utf8),
    ("description", Utf8),
    ("features", Utf8),
    ("encoder", Utf8),
    ("control", Bool),
    ("label_only", Bool),
    ("r2", F64Opt),
    ("r2_ci_low", F64Opt),
    ("r2_ci_high", F64Opt),
    ("ci_unit", Utf8Opt),
    ("r2_ci_clip_low", F64Opt),
    ("r2_ci_clip_high", F64Opt),
    ("delta_best", F64Opt),
    ("delta_best_ci_low", F64Opt),
    ("delta_best_ci_high", F64Opt),
    ("r2_seeds_mean", F64Opt),
    ("r2_seeds_sd", F64Opt),
    ("n_seeds", I32Opt),
    ("r2_humans", F64Opt),
    ("pairwise_acc", F64Opt),
    ("study_r2", F64Opt),
    ("mae", F64Opt),
    ("pearson", F64Opt),
    ("dispersion", F64Opt),
    ("train_seconds", F64Opt),
    ("n_clips", I32Opt),
    ("status", Utf8),
    ("note", Utf8),
];

const PER_FOLD: &[Col] = &[
    ("experiment", Utf8),
    ("split", Utf8),
    ("fold", I32Opt),
    ("n_clips", I32Opt),
    ("r2", F64),
    ("mae", F64),
    ("pearson", F64Opt),
    ("dispersion", F64),
];

const PER_DIMENSION: &[Col] = &[
    ("experiment", Utf8),
    ("split", Utf8),
    ("dimension", Utf8),
    ("category", Utf8),
    ("r2", F64),
    ("mae", F64),
    ("pearson", F64Opt),
    ("pooled_pearson", F64Opt),
    ("pooled_pearson_p", F64Opt),
    ("dispersion", F64),
    ("pairwise_acc", F64Opt),
    ("n_pairs", I32Opt),
];

const PER_CATEGORY: &[Col] = &[
    ("experiment", Utf8),
    ("split", Utf8),
    ("category", Utf8),
    ("n_dimensions", I32Opt),
    ("r2", F64),
    ("mae", F64),
    ("pearson", F64Opt),
    ("dispersion", F64),
];

const PREDICTIONS: &[Col] = &[
    ("experiment", Utf8),
    ("split", Utf8),
    ("clip_id", Utf8),
    ("fold", I32Opt),
    ("dimension", Utf8),
    ("y_true", F32),
    ("y_pred", F32),
];

const FAILED: &[Col] = &[
    ("clip_id", Utf8),
    ("file", Utf8),
    ("stage", Utf8),
    ("reason", Utf8),
];

/// One row per configured experiment: the ones that ran ranked by R² (ties
/// by id), then the ones that did not, in configuration order, with a null
/// rank and metrics and a `note` saying why.
pub fn summary(results: &Results) -> PolarsResult<LazyFrame> {
    let ran = col("status").eq(lit("ran"));
    Ok(frames::experiments(results)?
        .sort_by_exprs(
            [
                col("r2"),
                when(ran).then(col("experiment")).otherwise(lit(NULL)),
            ],
            SortMultipleOptions::default()
                .with_order_descending_multi([true, false])
                .with_nulls_last(true)
                .with_maintain_order(true),
        )
        // Ordinal over rows already in rank order; null where r2 is null.
        .with_column(
            col("r2")
                .rank(
                    RankOptions {
                        method: RankMethod::Ordinal,
                        descending: true,
                    },
                    None,
                )
                .cast(DataType::Int32)
                .alias("rank"),
        ))
}

/// `frame` (with an `experiment` column) with the experiments' ranks,
/// ordered by rank, then by `then_by`, otherwise as it was.
fn in_rank_order(frame: LazyFrame, results: &Results, then_by: &[&str]) -> PolarsResult<LazyFrame> {
    // `results.ran` is in rank order already (R² descending, ties by id, as
    // `summary` ranks): no need to build the summary (and its paired
    // bootstraps) for the other tables.
    let ranks = DataFrame::new_infer_height(vec![
        Column::new(
            "experiment".into(),
            (results.ran.iter())
                .map(|r| r.info.id.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "rank".into(),
            (1..=results.ran.len() as i32).collect::<Vec<_>>(),
        ),
    ])?
    .lazy();
    let by: Vec<Expr> = std::iter::once(col("rank"))
        .chain(then_by.iter().map(|c| col(*c)))
        .collect();
    Ok(left_join(frame, ranks, &["experiment"])
        .sort_by_exprs(by, SortMultipleOptions::default().with_maintain_order(true)))
}

/// A left join on `on` that keeps the left frame's row order.
fn left_join(left: LazyFrame, right: LazyFrame, on: &[&str]) -> LazyFrame {
    let on: Vec<Expr> = on.iter().map(|c| col(*c)).collect();
    left.join_builder()
        .with(right)
        .on(on)
        .how(JoinType::Left)
        .maintain_order(MaintainOrderJoin::Left)
        .finish()
}

/// One row per (experiment, fold): the fold's held-out metrics, experiments
/// in rank order.
pub fn per_fold(results: &Results) -> PolarsResult<LazyFrame> {
    in_rank_order(frames::folds(results)?, results, &[])
}

/// One row per (experiment, dimension): means over folds, plus Pearson r and
/// p on all out-of-fold predictions pooled, and the dimension's category.
pub fn per_dimension(results: &Results) -> PolarsResult<LazyFrame> {
    let category = frames::categories()?.select([col("dimension"), col("category")]);
    let dims = left_join(frames::dimensions(results)?, category, &["dimension"])
        .with_column(col("category").fill_null(lit("")));
    in_rank_order(dims, results, &[])
}

/// One row per (experiment, category of the study's 7): means over the
/// category's dimensions of the per-dimension metrics (Pearson over the
/// dimensions where it is defined), summed left to right in the study's
/// member order: the last value of a running sum, over the count. (polars'
/// `mean` adds with compensation, which moved the last bit of 109 of the
/// default run's 1,176 category means against the left-to-right sums
/// everything else in pipe uses.)
pub fn per_category(results: &Results) -> PolarsResult<LazyFrame> {
    let members = frames::dimensions(results)?.join(
        frames::categories()?,
        [col("dimension")],
        [col("dimension")],
        JoinArgs::new(JoinType::Inner),
    );
    Ok(
        in_rank_order(members, results, &["category_pos", "member_pos"])?
            .group_by_stable([col("experiment"), col("category")])
            .agg([
                len().alias("n_dimensions"),
                sequential_mean("r2"),
                sequential_mean("mae"),
                sequential_mean("pearson"),
                sequential_mean("dispersion"),
            ]),
    )
}

/// The mean of a group's non-null values of `name`, added left to right
/// (null when there are none).
fn sequential_mean(name: &str) -> Expr {
    let values = col(name).drop_nulls();
    (values.clone().cum_sum(false).last() / values.count().cast(DataType::Float64)).alias(name)
}

/// Long form: one row per (experiment, clip, dimension), out-of-fold.
/// Experiments in id order (not rank), so the bytes depend only on the
/// predictions.
pub fn predictions(results: &Results) -> PolarsResult<LazyFrame> {
    // Cell c of a row-major [clips, 19] matrix is clip c / 19, dimension c % 19.
    let n = lit(N_DIMS as IdxSize);
    let cells = frames::out_of_fold(results)?.with_columns([
        col("cell").floor_div(n.clone()).alias("clip_index"),
        (col("cell") % n).alias("dimension_index"),
    ]);
    let with_clips = left_join(
        cells,
        frames::clips(results)?,
        &["experiment", "clip_index"],
    );
    Ok(
        left_join(with_clips, frames::dimension_names()?, &["dimension_index"]).sort(
            ["experiment"],
            SortMultipleOptions::default().with_maintain_order(true),
        ),
    )
}

/// One row per clip that failed before training: which file, at which stage,
/// and why (empty when every clip made it).
pub fn failed(results: &Results) -> PolarsResult<LazyFrame> {
    frames::failed(results)
}

/// Where the result tables come from: the pipeline description (a hash of
/// its text), every experiment's head settings and pipe's version. Written
/// into the published copies (not the store's tables, so editing a comment
/// in the config recomputes nothing).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub config_hash: String,
    pub pipe_version: String,
    /// experiment -> its head settings (defaults filled in).
    pub heads: BTreeMap<String, serde_json::Value>,
}

impl Provenance {
    /// `pipe.config_hash`, `pipe.heads` (JSON) and `pipe.version`.
    pub fn metadata(&self) -> Vec<(&'static str, String)> {
        vec![
            ("pipe.config_hash", self.config_hash.clone()),
            (
                "pipe.heads",
                serde_json::to_string(&self.heads).expect("JSON values serialize"),
            ),
            ("pipe.version", self.pipe_version.clone()),
        ]
    }
}
