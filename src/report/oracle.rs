//! main's hand-built result tables over arrow-rs (as of 55934cf), kept as the
//! oracle the polars queries of [`super::tables`] are tested against (test
//! builds only). Do not extend: new tables are polars queries.

use super::{Results, category_of};
use crate::dims::{DIMENSIONS, Grouping, N_DIMS, STUDY_CATEGORIES};
use crate::metrics::DimSummary;
use crate::table::TableBuilder;

/// The table called `name` as main built it.
pub fn build(name: &str, results: &Results) -> TableBuilder {
    match name {
        "summary" => summary(results),
        "per_fold" => per_fold(results),
        "per_dimension" => per_dimension(results),
        "per_category" => per_category(results),
        "predictions" => predictions(results),
        "failed" => failed(results),
        other => panic!("no result table named `{other}`"),
    }
    .meta("pipe.metric_definitions", super::tables::DEFINITIONS)
}

/// One row per configured experiment: the ran ones ranked by R², then the
/// ones that did not run (metrics null, `note` says why).
fn summary(results: &Results) -> TableBuilder {
    let ran = &results.ran;
    let infos = ran
        .iter()
        .map(|r| &r.info)
        .chain(&results.not_run)
        .collect::<Vec<_>>();
    let metric = |f: &dyn Fn(&super::Ran) -> Option<f64>| -> Vec<Option<f64>> {
        ran.iter()
            .map(f)
            .chain(results.not_run.iter().map(|_| None))
            .collect()
    };
    TableBuilder::new()
        .i32_opt(
            "rank",
            (1..=ran.len() as i32)
                .map(Some)
                .chain(results.not_run.iter().map(|_| None))
                .collect(),
        )
        .utf8(
            "experiment",
            &infos.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        )
        .utf8(
            "description",
            &infos
                .iter()
                .map(|i| i.description.as_str())
                .collect::<Vec<_>>(),
        )
        .utf8(
            "features",
            &infos
                .iter()
                .map(|i| i.features.as_str())
                .collect::<Vec<_>>(),
        )
        .utf8(
            "encoder",
            &infos.iter().map(|i| i.encoder.as_str()).collect::<Vec<_>>(),
        )
        .bool("control", infos.iter().map(|i| i.control).collect())
        .f64_opt("r2", metric(&|r| Some(r.eval.r2)))
        .f64_opt("r2_ci_low", metric(&|r| Some(r.eval.r2_ci.lo)))
        .f64_opt("r2_ci_high", metric(&|r| Some(r.eval.r2_ci.hi)))
        .f64_opt(
            "study_r2",
            infos
                .iter()
                .map(|i| super::published::study_row(&i.id).map(|s| s.r2))
                .collect(),
        )
        .f64_opt("mae", metric(&|r| Some(r.eval.mae)))
        .f64_opt("pearson", metric(&|r| r.eval.pearson_r))
        .f64_opt("dispersion", metric(&|r| Some(r.eval.dispersion)))
        .f64_opt("train_seconds", metric(&|r| Some(r.train.train_seconds)))
        .i32_opt(
            "n_clips",
            ran.iter()
                .map(|r| Some(r.train.clip_ids.len() as i32))
                .chain(results.not_run.iter().map(|_| None))
                .collect(),
        )
        .utf8(
            "status",
            &infos
                .iter()
                .map(|i| match (&i.not_run, i.failed) {
                    (_, true) => "failed",
                    (Some(_), false) => "not run",
                    (None, false) => "ran",
                })
                .collect::<Vec<_>>(),
        )
        .utf8(
            "note",
            &infos
                .iter()
                .map(|i| i.not_run.as_deref().unwrap_or(""))
                .collect::<Vec<_>>(),
        )
}

/// One row per (experiment, fold): the fold's held-out metrics.
fn per_fold(results: &Results) -> TableBuilder {
    let rows: Vec<_> = results
        .ran
        .iter()
        .flat_map(|r| r.eval.folds.iter().map(move |f| (r.info.id.as_str(), f)))
        .collect();
    TableBuilder::new()
        .utf8("experiment", &rows.iter().map(|r| r.0).collect::<Vec<_>>())
        .i32_opt("fold", rows.iter().map(|r| Some(r.1.fold as i32)).collect())
        .i32_opt(
            "n_clips",
            rows.iter().map(|r| Some(r.1.n_clips as i32)).collect(),
        )
        .f64("r2", rows.iter().map(|r| r.1.r2).collect())
        .f64("mae", rows.iter().map(|r| r.1.mae).collect())
        .f64_opt("pearson", rows.iter().map(|r| r.1.pearson_r).collect())
        .f64("dispersion", rows.iter().map(|r| r.1.dispersion).collect())
}

/// One row per (experiment, dimension): means over folds, plus Pearson r and
/// p on all out-of-fold predictions pooled.
fn per_dimension(results: &Results) -> TableBuilder {
    let rows: Vec<_> = results
        .ran
        .iter()
        .flat_map(|r| {
            r.eval
                .per_dim
                .iter()
                .enumerate()
                .map(move |(d, s)| (r.info.id.as_str(), DIMENSIONS[d], s))
        })
        .collect();
    TableBuilder::new()
        .utf8("experiment", &rows.iter().map(|r| r.0).collect::<Vec<_>>())
        .utf8("dimension", &rows.iter().map(|r| r.1).collect::<Vec<_>>())
        .utf8(
            "category",
            &rows.iter().map(|r| category_of(r.1)).collect::<Vec<_>>(),
        )
        .f64("r2", rows.iter().map(|r| r.2.r2).collect())
        .f64("mae", rows.iter().map(|r| r.2.mae).collect())
        .f64_opt("pearson", rows.iter().map(|r| r.2.pearson_r).collect())
        .f64_opt(
            "pooled_pearson",
            rows.iter()
                .map(|r| r.2.pooled_pearson.map(|p| p.r))
                .collect(),
        )
        .f64_opt(
            "pooled_pearson_p",
            rows.iter()
                .map(|r| r.2.pooled_pearson.map(|p| p.p))
                .collect(),
        )
        .f64("dispersion", rows.iter().map(|r| r.2.dispersion).collect())
}

/// One row per (experiment, category of the study's 7).
fn per_category(results: &Results) -> TableBuilder {
    let rows: Vec<_> = results
        .ran
        .iter()
        .flat_map(|r| {
            categories(&r.eval.per_dim, STUDY_CATEGORIES)
                .into_iter()
                .map(move |c| (r.info.id.as_str(), c))
        })
        .collect();
    TableBuilder::new()
        .utf8("experiment", &rows.iter().map(|r| r.0).collect::<Vec<_>>())
        .utf8(
            "category",
            &rows.iter().map(|r| r.1.category).collect::<Vec<_>>(),
        )
        .i32_opt(
            "n_dimensions",
            rows.iter().map(|r| Some(r.1.n_dimensions as i32)).collect(),
        )
        .f64("r2", rows.iter().map(|r| r.1.r2).collect())
        .f64("mae", rows.iter().map(|r| r.1.mae).collect())
        .f64_opt("pearson", rows.iter().map(|r| r.1.pearson_r).collect())
        .f64("dispersion", rows.iter().map(|r| r.1.dispersion).collect())
}

/// Long form: one row per (experiment, clip, dimension), out-of-fold.
/// Experiments in id order (not rank), so the bytes depend only on the
/// predictions.
fn predictions(results: &Results) -> TableBuilder {
    let mut ran: Vec<_> = results.ran.iter().collect();
    ran.sort_by(|a, b| a.info.id.cmp(&b.info.id));
    let (mut exp, mut clip, mut fold, mut dim) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut y_true, mut y_pred) = (Vec::new(), Vec::new());
    for r in ran {
        let t = &r.train;
        for (i, id) in t.clip_ids.iter().enumerate() {
            for (d, name) in DIMENSIONS.iter().enumerate() {
                exp.push(r.info.id.as_str());
                clip.push(id.as_str());
                fold.push(Some(t.folds[i] as i32));
                dim.push(*name);
                y_true.push(t.y_true[i * N_DIMS + d]);
                y_pred.push(t.y_pred[i * N_DIMS + d]);
            }
        }
    }
    TableBuilder::new()
        .utf8("experiment", &exp)
        .utf8("clip_id", &clip)
        .i32_opt("fold", fold)
        .utf8("dimension", &dim)
        .f32("y_true", y_true)
        .f32("y_pred", y_pred)
}

/// One row per clip that failed before training: which file, at which stage,
/// and why (empty when every clip made it).
fn failed(results: &Results) -> TableBuilder {
    let f = &results.failed;
    TableBuilder::new()
        .utf8(
            "clip_id",
            &f.iter().map(|c| c.clip_id.as_str()).collect::<Vec<_>>(),
        )
        .utf8(
            "file",
            &f.iter().map(|c| c.file.as_str()).collect::<Vec<_>>(),
        )
        .utf8(
            "stage",
            &f.iter().map(|c| c.stage.as_str()).collect::<Vec<_>>(),
        )
        .utf8(
            "reason",
            &f.iter().map(|c| c.reason.as_str()).collect::<Vec<_>>(),
        )
}

/// Means over a category's dimensions of the per-dimension summaries.
#[derive(Clone, Debug, PartialEq)]
struct CategoryMetrics {
    category: &'static str,
    n_dimensions: usize,
    r2: f64,
    mae: f64,
    pearson_r: Option<f64>,
    dispersion: f64,
}

/// Category averages of `per_dim` (one entry per dimension, canonical order).
fn categories(per_dim: &[DimSummary], grouping: &Grouping) -> Vec<CategoryMetrics> {
    grouping
        .iter()
        .map(|(category, dims)| {
            let idx: Vec<usize> = dims
                .iter()
                .map(|d| {
                    DIMENSIONS
                        .iter()
                        .position(|x| x == d)
                        .expect("category names a known dimension")
                })
                .collect();
            let n = idx.len() as f64;
            let mean = |f: &dyn Fn(&DimSummary) -> f64| {
                idx.iter().map(|&i| f(&per_dim[i])).sum::<f64>() / n
            };
            let rs: Vec<f64> = idx.iter().filter_map(|&i| per_dim[i].pearson_r).collect();
            CategoryMetrics {
                category,
                n_dimensions: idx.len(),
                r2: mean(&|d| d.r2),
                mae: mean(&|d| d.mae),
                pearson_r: (!rs.is_empty()).then(|| rs.iter().sum::<f64>() / rs.len() as f64),
                dispersion: mean(&|d| d.dispersion),
            }
        })
        .collect()
}
