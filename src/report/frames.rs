//! The inputs of the result tables as polars frames: what each configured
//! experiment is, its evaluation (overall, per fold, per dimension) and its
//! out-of-fold predictions, copied column by column from the structs the
//! train and evaluate stages wrote, plus the study's dimension and category
//! lists. No ordering, ranking or aggregation happens here: that is the
//! tables' queries' job ([`super::tables`]).

use polars::prelude::*;

use super::Results;
use crate::dims::{DIMENSIONS, STUDY_CATEGORIES};

/// Frames of one column kind are built from iterators over the experiments.
fn frame(columns: Vec<Column>) -> PolarsResult<LazyFrame> {
    Ok(DataFrame::new_infer_height(columns)?.lazy())
}

/// One row per configured experiment, the ones that ran first (in any order),
/// then the ones that did not (in configuration order, metrics null):
/// `experiment`, `description`, `features`, `encoder`, `control`, `status`
/// (`ran` / `not run` / `failed`), `note`, the study's published `study_r2`,
/// the evaluation's `r2`, `r2_ci_low`, `r2_ci_high` (resampling `ci_unit`s
/// within folds), `r2_ci_clip_low/high` (resampling clips, where `ci_unit`
/// is not the clip), `delta_best` and `delta_best_ci_low/high` (ΔR² = best
/// − this row, paired cluster bootstrap; null for the best row and rows not
/// comparable), `r2_seeds_mean`, `r2_seeds_sd` and `n_seeds` (over the
/// seeds of an experiment with `seeds`), `mae`, `pearson`,
/// `dispersion`, `train_seconds` and `n_clips`.
pub fn experiments(results: &Results) -> PolarsResult<LazyFrame> {
    let vs_best = results.vs_best();
    let infos: Vec<_> = results
        .ran
        .iter()
        .map(|r| &r.info)
        .chain(&results.not_run)
        .collect();
    let text = |name: &str, f: &dyn Fn(&super::ExperimentInfo) -> &str| {
        Column::new(name.into(), infos.iter().map(|i| f(i)).collect::<Vec<_>>())
    };
    let metric = |name: &str, f: &dyn Fn(&super::Ran) -> Option<f64>| {
        let ran = results.ran.iter().map(f);
        let not_run = results.not_run.iter().map(|_| None);
        Column::new(name.into(), ran.chain(not_run).collect::<Vec<_>>())
    };
    // ΔR² to the best row (rank 1), ran rows in rank order.
    let best_delta = |name: &str, f: &dyn Fn(&crate::metrics::Ci) -> f64| {
        let ran = vs_best.iter().map(|c| c.as_ref().map(f));
        let not_run = results.not_run.iter().map(|_| None);
        Column::new(name.into(), ran.chain(not_run).collect::<Vec<_>>())
    };
    frame(vec![
        text("experiment", &|i| &i.id),
        text("description", &|i| &i.description),
        text("features", &|i| &i.features),
        text("encoder", &|i| &i.encoder),
        Column::new(
            "control".into(),
            infos.iter().map(|i| i.control).collect::<Vec<_>>(),
        ),
        Column::new(
            "label_only".into(),
            infos.iter().map(|i| i.label_only).collect::<Vec<_>>(),
        ),
        text("status", &|i| match (&i.not_run, i.failed) {
            (_, true) => "failed",
            (Some(_), false) => "not run",
            (None, false) => "ran",
        }),
        text("note", &|i| i.not_run.as_deref().unwrap_or("")),
        metric("r2", &|r| Some(r.eval.r2)),
        metric("r2_ci_low", &|r| Some(r.eval.r2_ci.lo)),
        metric("r2_ci_high", &|r| Some(r.eval.r2_ci.hi)),
        Column::new(
            "ci_unit".into(),
            (results.ran.iter())
                .map(|r| Some(r.eval.ci_unit.as_deref().unwrap_or("clip")))
                .chain(results.not_run.iter().map(|_| None))
                .collect::<Vec<_>>(),
        ),
        metric("r2_ci_clip_low", &|r| {
            r.eval.clip_r2_ci.as_ref().map(|c| c.lo)
        }),
        metric("r2_ci_clip_high", &|r| {
            r.eval.clip_r2_ci.as_ref().map(|c| c.hi)
        }),
        best_delta("delta_best", &|c| c.estimate),
        best_delta("delta_best_ci_low", &|c| c.lo),
        best_delta("delta_best_ci_high", &|c| c.hi),
        metric("r2_seeds_mean", &|r| r.eval.seed_r2_mean_sd().map(|m| m.0)),
        metric("r2_seeds_sd", &|r| r.eval.seed_r2_mean_sd().map(|m| m.1)),
        Column::new(
            "n_seeds".into(),
            (results.ran.iter())
                .map(|r| (!r.eval.seed_r2.is_empty()).then_some(r.eval.seed_r2.len() as i32))
                .chain(results.not_run.iter().map(|_| None))
                .collect::<Vec<_>>(),
        ),
        metric("r2_humans", &|r| r.eval.r2_humans),
        metric("pairwise_acc", &|r| {
            r.eval.pairwise.as_ref().and_then(|p| p.mean)
        }),
        Column::new(
            "study_r2".into(),
            infos
                .iter()
                .map(|i| super::published::study_row(&i.id).map(|s| s.r2))
                .collect::<Vec<_>>(),
        ),
        metric("mae", &|r| Some(r.eval.mae)),
        metric("pearson", &|r| r.eval.pearson_r),
        metric("dispersion", &|r| Some(r.eval.dispersion)),
        metric("train_seconds", &|r| Some(r.train.train_seconds)),
        Column::new(
            "n_clips".into(),
            results
                .ran
                .iter()
                .map(|r| Some(r.train.clip_ids.len() as i32))
                .chain(results.not_run.iter().map(|_| None))
                .collect::<Vec<_>>(),
        ),
    ])
}

/// One row per (experiment that ran, fold), in evaluation order:
/// `experiment`, `fold`, `n_clips`, `r2`, `mae`, `pearson`, `dispersion`.
pub fn folds(results: &Results) -> PolarsResult<LazyFrame> {
    let rows: Vec<_> = results
        .ran
        .iter()
        .flat_map(|r| r.eval.folds.iter().map(move |f| (r.info.id.as_str(), f)))
        .collect();
    frame(vec![
        Column::new(
            "experiment".into(),
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        ),
        Column::new(
            "fold".into(),
            rows.iter().map(|r| r.1.fold as i32).collect::<Vec<_>>(),
        ),
        Column::new(
            "n_clips".into(),
            rows.iter().map(|r| r.1.n_clips as i32).collect::<Vec<_>>(),
        ),
        Column::new("r2".into(), rows.iter().map(|r| r.1.r2).collect::<Vec<_>>()),
        Column::new(
            "mae".into(),
            rows.iter().map(|r| r.1.mae).collect::<Vec<_>>(),
        ),
        Column::new(
            "pearson".into(),
            rows.iter().map(|r| r.1.pearson_r).collect::<Vec<_>>(),
        ),
        Column::new(
            "dispersion".into(),
            rows.iter().map(|r| r.1.dispersion).collect::<Vec<_>>(),
        ),
    ])
}

/// One row per (experiment that ran, dimension), dimensions in canonical
/// order: `experiment`, `dimension`, `r2`, `mae`, `pearson` (means over folds),
/// `pooled_pearson`, `pooled_pearson_p`, `dispersion`.
pub fn dimensions(results: &Results) -> PolarsResult<LazyFrame> {
    let rows: Vec<_> = results
        .ran
        .iter()
        .flat_map(|r| {
            let pairwise = r.eval.pairwise.as_ref();
            r.eval
                .per_dim
                .iter()
                .zip(DIMENSIONS)
                .enumerate()
                .map(move |(k, (s, d))| {
                    let pairs = pairwise.map(|p| (p.per_dim[k], p.n_pairs[k] as i32));
                    (r.info.id.as_str(), d, s, pairs)
                })
        })
        .collect();
    let metric = |name: &str, f: &dyn Fn(&crate::metrics::DimSummary) -> Option<f64>| {
        Column::new(name.into(), rows.iter().map(|r| f(r.2)).collect::<Vec<_>>())
    };
    frame(vec![
        Column::new(
            "experiment".into(),
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        ),
        Column::new(
            "dimension".into(),
            rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        ),
        Column::new("r2".into(), rows.iter().map(|r| r.2.r2).collect::<Vec<_>>()),
        Column::new(
            "mae".into(),
            rows.iter().map(|r| r.2.mae).collect::<Vec<_>>(),
        ),
        metric("pearson", &|s| s.pearson_r),
        metric("pooled_pearson", &|s| s.pooled_pearson.map(|p| p.r)),
        metric("pooled_pearson_p", &|s| s.pooled_pearson.map(|p| p.p)),
        Column::new(
            "dispersion".into(),
            rows.iter().map(|r| r.2.dispersion).collect::<Vec<_>>(),
        ),
        Column::new(
            "pairwise_acc".into(),
            rows.iter()
                .map(|r| r.3.and_then(|p| p.0))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "n_pairs".into(),
            rows.iter().map(|r| r.3.map(|p| p.1)).collect::<Vec<_>>(),
        ),
    ])
}

/// The study's 7 categories, one row per member dimension, in the study's
/// order: `category`, `category_pos`, `member_pos` (order within the
/// category), `dimension`.
pub fn categories() -> PolarsResult<LazyFrame> {
    let rows: Vec<_> = STUDY_CATEGORIES
        .iter()
        .enumerate()
        .flat_map(|(c, (name, dims))| {
            dims.iter()
                .enumerate()
                .map(move |(m, d)| (*name, c as u32, m as u32, *d))
        })
        .collect();
    frame(vec![
        Column::new(
            "category".into(),
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        ),
        Column::new(
            "category_pos".into(),
            rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        ),
        Column::new(
            "member_pos".into(),
            rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        ),
        Column::new(
            "dimension".into(),
            rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        ),
    ])
}

/// The 19 dimensions in canonical order, numbered: `dimension_index`, `dimension`.
pub fn dimension_names() -> PolarsResult<LazyFrame> {
    Ok(frame(vec![Column::new("dimension".into(), DIMENSIONS)])?
        .with_row_index("dimension_index", None))
}

/// Each experiment's clips (`clip_index` = row of its prediction matrix):
/// `experiment`, `clip_index`, `clip_id`, `fold`.
pub fn clips(results: &Results) -> PolarsResult<LazyFrame> {
    let one = |id: &str, clip_ids: &[String], folds: &[usize]| -> PolarsResult<LazyFrame> {
        Ok(frame(vec![
            Column::new("clip_id".into(), clip_ids),
            Column::new(
                "fold".into(),
                folds.iter().map(|&f| f as i32).collect::<Vec<_>>(),
            ),
        ])?
        .with_row_index("clip_index", None)
        .with_column(lit(id).alias("experiment")))
    };
    per_experiment(results, one("", &[], &[])?, |r| {
        one(&r.info.id, &r.train.clip_ids, &r.train.folds)
    })
}

/// The out-of-fold prediction matrices, flat: `experiment`, `cell` (index into
/// its row-major `[clips, 19]` matrix), `y_true`, `y_pred` (float32).
pub fn out_of_fold(results: &Results) -> PolarsResult<LazyFrame> {
    let one = |id: &str, y_true: &[f32], y_pred: &[f32]| -> PolarsResult<LazyFrame> {
        Ok(frame(vec![
            Column::new("y_true".into(), y_true),
            Column::new("y_pred".into(), y_pred),
        ])?
        .with_row_index("cell", None)
        .with_column(lit(id).alias("experiment")))
    };
    per_experiment(results, one("", &[], &[])?, |r| {
        one(&r.info.id, &r.train.y_true, &r.train.y_pred)
    })
}

/// The frames of every experiment that ran, stacked; `empty` (a frame of
/// the same columns and no rows) when none did.
fn per_experiment(
    results: &Results,
    empty: LazyFrame,
    one: impl Fn(&super::Ran) -> PolarsResult<LazyFrame>,
) -> PolarsResult<LazyFrame> {
    if results.ran.is_empty() {
        return Ok(empty);
    }
    let frames = results
        .ran
        .iter()
        .map(one)
        .collect::<PolarsResult<Vec<_>>>()?;
    concat(frames, UnionArgs::default())
}

/// The clips that failed before training, as the results list them:
/// `clip_id`, `file`, `stage`, `reason`.
pub fn failed(results: &Results) -> PolarsResult<LazyFrame> {
    let f = &results.failed;
    let text = |name: &str, get: &dyn Fn(&crate::dataset::FailedClip) -> &str| {
        Column::new(name.into(), f.iter().map(get).collect::<Vec<_>>())
    };
    frame(vec![
        text("clip_id", &|c| &c.clip_id),
        text("file", &|c| &c.file),
        text("stage", &|c| &c.stage),
        text("reason", &|c| &c.reason),
    ])
}
