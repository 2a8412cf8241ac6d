//! Run history: every `pipe run` that trained or evaluated something (or whose
//! results differ from the last recorded run, e.g. after reverting a change)
//! appends one row per experiment to `data/runs/history.parquet`, like
//! `dvc exp show`; [`diff`] compares two runs like `dvc metrics diff`.
//!
//! The history is not a DAG artifact: it lives outside the content-addressed
//! store (nothing there names it, so `pipe clean` never drops it) and is
//! rewritten whole, atomically (temporary file + rename), on each append.
//! [`write_table`] / [`read_table`] are the only code that knows its Parquet
//! layout.
//!
//! Must not import `stages` or `cli`, nor `dag` beyond
//! `record::param_changes` (the one wording of a param change): the caller
//! hands over each experiment's evaluation and key.

pub mod diff;
pub mod git;
pub mod time;

use anyhow::{Context, Result, bail};
use arrow_array::{Float64Array, Int32Array, StringArray, TimestampMicrosecondArray};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::{Config, ExperimentConfig};
use crate::features::FeatureSet;
use crate::frame::{Col, Kind};
use crate::metrics::Evaluation;
use crate::table;
use polars::prelude::{Column, DataFrame, NamedFrom, PolarsResult, Series, TimeUnit, TimeZone};

/// Bumped when the table's columns change.
const FORMAT: &str = "1";

/// One experiment of one recorded run.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub run_id: String,
    /// Microseconds since the Unix epoch, UTC.
    pub time_us: i64,
    /// [`Config::hash`] of the pipeline description that ran.
    pub config_hash: String,
    /// `HEAD` of the git work tree holding the data folder, if any.
    pub git_commit: Option<String>,
    pub experiment: String,
    /// The feature set's name (a label: not part of `params`).
    pub features: String,
    /// blake3 of `params`.
    pub params_hash: String,
    /// What determines the experiment's result besides the data: feature
    /// set spec, encoder entry, head (canonical JSON, sorted keys).
    pub params: String,
    /// Key of the evaluation artifact: equal keys, equal results.
    pub result_key: String,
    pub r2: f64,
    pub r2_ci_low: f64,
    pub r2_ci_high: f64,
    pub mae: f64,
    pub pearson: Option<f64>,
    pub dispersion: f64,
    pub n_clips: i32,
}

/// Where the history of a data folder lives: beside the run records, since
/// `data/out` is swapped whole on each publication ([`publish_copy`] puts a
/// copy there).
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("runs").join("history.parquet")
}

/// Copies the history into the current publication as
/// `data/out/history.parquet` (atomically), if both exist.
pub fn publish_copy(data_dir: &Path) -> Result<()> {
    let (from, out) = (path(data_dir), data_dir.join("out"));
    if !from.is_file() || !out.is_dir() {
        return Ok(());
    }
    let bytes = std::fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
    crate::dag::store::write_atomic(&out.join("history.parquet"), &bytes)
}

/// What shapes an experiment's result besides its input data: the feature
/// set's spec, its encoder entry (minus where it runs and how to download
/// it) and every head setting, defaults included, so a diff names `head.lr`.
pub fn experiment_params(config: &Config, exp: &ExperimentConfig) -> Result<serde_json::Value> {
    let fs_cfg = config
        .features
        .get(&exp.features)
        .with_context(|| format!("no feature set `{}`", exp.features))?;
    let set = FeatureSet::from_config(&exp.features, fs_cfg)?;
    let encoder = match config.encoders.get(&fs_cfg.encoder) {
        Some(enc) => {
            let mut v = serde_json::to_value(enc)?;
            if let Some(m) = v.as_object_mut() {
                m.remove("device");
                m.remove("download_hint");
            }
            v
        }
        None => serde_json::Value::Null,
    };
    Ok(serde_json::json!({
        "features": { "encoder": fs_cfg.encoder, "spec": set.spec() },
        "encoder": encoder,
        "head": exp.head,
    }))
}

/// One evaluated experiment of a finished run, as the caller found it.
pub struct Evaluated<'a> {
    pub experiment: &'a str,
    /// The evaluation artifact's key (hex).
    pub result_key: String,
    pub eval: &'a Evaluation,
}

/// A run as recorded: its rows share id, time, config and commit.
#[derive(Clone, Debug)]
pub struct Run<'a> {
    pub rows: Vec<&'a Row>,
}

impl Run<'_> {
    pub fn id(&self) -> &str {
        &self.rows[0].run_id
    }
    pub fn time_us(&self) -> i64 {
        self.rows[0].time_us
    }
    pub fn config_hash(&self) -> &str {
        &self.rows[0].config_hash
    }
    pub fn git_commit(&self) -> Option<&str> {
        self.rows[0].git_commit.as_deref()
    }
    pub fn row(&self, experiment: &str) -> Option<&Row> {
        self.rows
            .iter()
            .copied()
            .find(|r| r.experiment == experiment)
    }
}

/// The recorded runs, latest first (rows keep their order within a run).
pub fn runs(rows: &[Row]) -> Vec<Run<'_>> {
    let mut by_id: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        by_id.entry(&r.run_id).or_default().push(r);
    }
    let mut out: Vec<Run> = by_id.into_values().map(|rows| Run { rows }).collect();
    out.sort_by(|a, b| b.time_us().cmp(&a.time_us()).then(b.id().cmp(a.id())));
    out
}

/// A run named on the command line: its id, a unique prefix of it, or
/// `~N` (N runs before the latest; `~0` is the latest).
pub fn find_run<'r, 'a>(runs: &'r [Run<'a>], name: &str) -> Result<&'r Run<'a>> {
    if let Some(back) = name.strip_prefix('~') {
        let n: usize = back
            .parse()
            .with_context(|| format!("run `{name}`: expected ~N with N a number"))?;
        return runs
            .get(n)
            .with_context(|| format!("run `{name}`: the history holds {} run(s)", runs.len()));
    }
    if let Some(r) = runs.iter().find(|r| r.id() == name) {
        return Ok(r);
    }
    let matches: Vec<&Run> = runs.iter().filter(|r| r.id().starts_with(name)).collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => bail!(
            "no run `{name}` in the history (latest: {})",
            runs.first().map_or("none", |r| r.id())
        ),
        many => bail!(
            "run `{name}` is ambiguous: {}",
            many.iter().map(|r| r.id()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Appends a run of `evaluated` experiments to the history at `path` if the
/// run trained or evaluated something (`computed`), or if its results differ
/// from the latest recorded run's (a revert to an earlier, still stored
/// result computes nothing, yet changes what the outputs show). Returns the
/// new run's id, or `None` if nothing was appended.
pub fn record(
    path: &Path,
    config: &Config,
    evaluated: &[Evaluated],
    computed: bool,
    git_commit: Option<String>,
    now_us: i64,
) -> Result<Option<String>> {
    if evaluated.is_empty() {
        return Ok(None);
    }
    let mut rows = read_table(path)?;
    let mut new_rows = Vec::with_capacity(evaluated.len());
    let run_id = time::run_id(now_us, &config.hash);
    for e in evaluated {
        let exp = config
            .experiments
            .get(e.experiment)
            .with_context(|| format!("no experiment `{}` in the config", e.experiment))?;
        let params = serde_json::to_string(&experiment_params(config, exp)?)?;
        let ev = e.eval;
        new_rows.push(Row {
            run_id: run_id.clone(),
            time_us: now_us,
            config_hash: config.hash.clone(),
            git_commit: git_commit.clone(),
            experiment: e.experiment.to_string(),
            features: exp.features.clone(),
            params_hash: blake3::hash(params.as_bytes()).to_hex().to_string(),
            params,
            result_key: e.result_key.clone(),
            r2: ev.r2,
            r2_ci_low: ev.r2_ci.lo,
            r2_ci_high: ev.r2_ci.hi,
            mae: ev.mae,
            pearson: ev.pearson_r,
            dispersion: ev.dispersion,
            n_clips: i32::try_from(ev.folds.iter().map(|f| f.n_clips).sum::<usize>())?,
        });
    }
    if !computed && same_results(runs(&rows).first(), &new_rows) {
        return Ok(None);
    }
    if rows.iter().any(|r| r.run_id == run_id) {
        bail!("run id {run_id} is already in {}", path.display());
    }
    rows.extend(new_rows);
    write_table(&rows, path)?;
    Ok(Some(run_id))
}

/// The same experiments with the same params and result keys.
fn same_results(last: Option<&Run>, rows: &[Row]) -> bool {
    let Some(last) = last else { return false };
    let key = |r: &Row| {
        (
            r.experiment.clone(),
            r.params_hash.clone(),
            r.result_key.clone(),
        )
    };
    let mut a: Vec<_> = last.rows.iter().map(|r| key(r)).collect();
    let mut b: Vec<_> = rows.iter().map(key).collect();
    a.sort();
    b.sort();
    a == b
}

/// The history's columns, in order (README, "Run history").
const COLUMNS: &[Col] = &[
    ("run_id", Kind::Utf8),
    ("time_utc", Kind::TimestampUtc),
    ("config_hash", Kind::Utf8),
    ("git_commit", Kind::Utf8Opt),
    ("experiment", Kind::Utf8),
    ("features", Kind::Utf8),
    ("params_hash", Kind::Utf8),
    ("params", Kind::Utf8),
    ("result_key", Kind::Utf8),
    ("r2", Kind::F64),
    ("r2_ci_low", Kind::F64),
    ("r2_ci_high", Kind::F64),
    ("mae", Kind::F64),
    ("pearson", Kind::F64Opt),
    ("dispersion", Kind::F64),
    ("n_clips", Kind::I32Opt),
];

/// The rows as a polars frame of [`COLUMNS`] (the published tables are all
/// built by polars and written by arrow-rs through [`crate::frame`]).
fn frame(rows: &[Row]) -> PolarsResult<DataFrame> {
    let text = |name: &str, f: fn(&Row) -> &str| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let number = |name: &str, f: fn(&Row) -> f64| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let time = Series::new(
        "time_utc".into(),
        rows.iter().map(|r| r.time_us).collect::<Vec<_>>(),
    )
    .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC));
    DataFrame::new_infer_height(vec![
        text("run_id", |r| &r.run_id),
        time.into(),
        text("config_hash", |r| &r.config_hash),
        Column::new(
            "git_commit".into(),
            rows.iter()
                .map(|r| r.git_commit.as_deref())
                .collect::<Vec<_>>(),
        ),
        text("experiment", |r| &r.experiment),
        text("features", |r| &r.features),
        text("params_hash", |r| &r.params_hash),
        text("params", |r| &r.params),
        text("result_key", |r| &r.result_key),
        number("r2", |r| r.r2),
        number("r2_ci_low", |r| r.r2_ci_low),
        number("r2_ci_high", |r| r.r2_ci_high),
        number("mae", |r| r.mae),
        Column::new(
            "pearson".into(),
            rows.iter().map(|r| r.pearson).collect::<Vec<_>>(),
        ),
        number("dispersion", |r| r.dispersion),
        Column::new(
            "n_clips".into(),
            rows.iter().map(|r| r.n_clips).collect::<Vec<_>>(),
        ),
    ])
}

/// Writes the whole history to `path` atomically. The one place that writes
/// its Parquet layout.
pub fn write_table(rows: &[Row], path: &Path) -> Result<()> {
    let df = frame(rows).context("the run history as a frame")?;
    let builder = crate::frame::to_table(&df, COLUMNS)?
        .meta("pipe.history_format", FORMAT)
        .meta(
            "pipe.description",
            "one row per experiment per recorded `pipe run`; see README, \"Run history\"",
        );
    crate::dag::store::write_atomic(path, &crate::table::to_bytes(&builder.batch()?)?)
}

/// Reads the history at `path` (empty if there is none yet).
pub fn read_table(path: &Path) -> Result<Vec<Row>> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let context = || format!("reading the run history {}", path.display());
    let batch = table::read_single(path).with_context(context)?;
    let format = batch
        .schema()
        .metadata()
        .get("pipe.history_format")
        .cloned();
    if format.as_deref() != Some(FORMAT) {
        bail!(
            "{}: history format {:?}, this pipe reads {FORMAT:?} (move the file away to start a new history)",
            path.display(),
            format.unwrap_or_default()
        );
    }
    let s = |name| table::column::<StringArray>(&batch, name).with_context(context);
    let f = |name| table::column::<Float64Array>(&batch, name).with_context(context);
    let (run_id, config_hash, git) = (s("run_id")?, s("config_hash")?, s("git_commit")?);
    let (experiment, features) = (s("experiment")?, s("features")?);
    let (params_hash, params, result_key) = (s("params_hash")?, s("params")?, s("result_key")?);
    let (r2, lo, hi, mae, pearson, disp) = (
        f("r2")?,
        f("r2_ci_low")?,
        f("r2_ci_high")?,
        f("mae")?,
        f("pearson")?,
        f("dispersion")?,
    );
    let time =
        table::column::<TimestampMicrosecondArray>(&batch, "time_utc").with_context(context)?;
    let n_clips = table::column::<Int32Array>(&batch, "n_clips").with_context(context)?;
    use arrow_array::Array;
    Ok((0..batch.num_rows())
        .map(|i| Row {
            run_id: run_id.value(i).to_string(),
            time_us: time.value(i),
            config_hash: config_hash.value(i).to_string(),
            git_commit: (!git.is_null(i)).then(|| git.value(i).to_string()),
            experiment: experiment.value(i).to_string(),
            features: features.value(i).to_string(),
            params_hash: params_hash.value(i).to_string(),
            params: params.value(i).to_string(),
            result_key: result_key.value(i).to_string(),
            r2: r2.value(i),
            r2_ci_low: lo.value(i),
            r2_ci_high: hi.value(i),
            mae: mae.value(i),
            pearson: (!pearson.is_null(i)).then(|| pearson.value(i)),
            dispersion: disp.value(i),
            n_clips: n_clips.value(i),
        })
        .collect())
}

#[cfg(test)]
mod tests;
