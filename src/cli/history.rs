//! `pipe history`, `pipe diff`, and the hook that records a finished
//! `pipe run` into the run history ([`crate::history`]).

use anyhow::{Context, Result, bail};

use crate::config::Config;
use crate::dag::{NodeState, RunReport, Stage};
use crate::history::{self, Evaluated, Row, diff, time};
use crate::metrics::Evaluation;
use std::path::Path;

/// After a successful run: append its experiments' results to the history
/// when it trained or evaluated something or its results changed. A failure
/// here is a warning: the run's artifacts are all in place.
pub fn record_run(stages: &[Box<dyn Stage>], path: &Path, config: &Config, report: &RunReport) {
    match try_record(stages, path, config, report) {
        Ok(Some((id, n))) => {
            eprintln!("history: run {id} recorded ({n} experiment(s)); `pipe history`, `pipe diff`")
        }
        Ok(None) => {}
        Err(e) => eprintln!("warning: the run history was not updated: {e:#}"),
    }
    if let Err(e) = history::publish_copy(&config.data_dir) {
        eprintln!("warning: data/out/history.parquet not updated: {e:#}");
    }
}

fn try_record(
    stages: &[Box<dyn Stage>],
    path: &Path,
    config: &Config,
    report: &RunReport,
) -> Result<Option<(String, usize)>> {
    // The plan before the run cannot name the artifacts of nodes behind a
    // stale one (their keys wait for their inputs' bytes): plan again, now
    // that the run is over, and take every evaluation that exists.
    if report.stage("evaluate").is_none() {
        return Ok(None);
    }
    let plan = super::plan_of(stages, path, config)?;
    let Some(evaluate) = plan.stage("evaluate") else {
        return Ok(None);
    };
    let evals: Vec<(String, String, Evaluation)> = evaluate
        .nodes
        .iter()
        .filter(|n| n.state == NodeState::Fresh)
        // The history follows the configured experiments on their piece
        // split (item = the id); other splits and the label-only baselines
        // are in the result tables.
        .filter(|n| config.experiments.contains_key(&n.node.item))
        .map(|n| {
            let path = &n.node.path;
            let file =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let eval: Evaluation = serde_json::from_reader(std::io::BufReader::new(file))
                .with_context(|| format!("reading {}", path.display()))?;
            Ok((n.node.item.clone(), n.node.key.to_string(), eval))
        })
        .collect::<Result<_>>()?;
    let evaluated: Vec<Evaluated> = evals
        .iter()
        .map(|(id, key, eval)| Evaluated {
            experiment: id,
            result_key: key.clone(),
            eval,
        })
        .collect();
    let computed = ["train", "evaluate"]
        .iter()
        .any(|s| report.stage(s).is_some_and(|r| r.computed > 0));
    let path = history::path(&config.data_dir);
    let git = history::git::head_commit(&config.data_dir);
    let id = history::record(&path, config, &evaluated, computed, git, time::now_us())?;
    Ok(id.map(|id| (id, evaluated.len())))
}

pub fn show(config: &Config, experiment: Option<&str>) -> Result<()> {
    let path = history::path(&config.data_dir);
    let rows = history::read_table(&path)?;
    if rows.is_empty() {
        println!(
            "no runs recorded yet in {} (a `pipe run` that trains or evaluates records one)",
            path.display()
        );
        return Ok(());
    }
    if let Some(id) = experiment
        && !rows.iter().any(|r| r.experiment == id)
    {
        let mut known: Vec<&str> = rows.iter().map(|r| r.experiment.as_str()).collect();
        known.sort_unstable();
        known.dedup();
        bail!(
            "experiment `{id}` is in no recorded run (recorded: {})",
            known.join(", ")
        );
    }
    let runs = history::runs(&rows);
    let w = rows
        .iter()
        .map(|r| r.experiment.len())
        .chain([10])
        .max()
        .unwrap_or(10);
    let fw = rows
        .iter()
        .map(|r| r.features.len())
        .chain([8])
        .max()
        .unwrap_or(8);
    let mut shown = 0;
    for run in &runs {
        let mut picked: Vec<&Row> = run
            .rows
            .iter()
            .copied()
            .filter(|r| experiment.is_none_or(|e| r.experiment == e))
            .collect();
        if picked.is_empty() {
            continue;
        }
        picked.sort_by(|a, b| b.r2.total_cmp(&a.r2).then(a.experiment.cmp(&b.experiment)));
        if shown > 0 {
            println!();
        }
        shown += 1;
        println!(
            "run {}  {} UTC  config {}  git {}",
            run.id(),
            time::format_utc(run.time_us()),
            &run.config_hash()[..12.min(run.config_hash().len())],
            run.git_commit().map_or("none", |g| &g[..12.min(g.len())])
        );
        println!(
            "  {:<w$}  {:<fw$}  {:<8}  {:>7}  {:<18}  {:>6}  {:>6}  {:>5}  {:>5}",
            "experiment", "features", "params", "R²", "95% CI", "MAE", "r", "disp", "clips"
        );
        for r in picked {
            let ci = format!("[{:.4}, {:.4}]", r.r2_ci_low, r.r2_ci_high);
            let pearson = r.pearson.map_or("-".to_string(), |p| format!("{p:.3}"));
            println!(
                "  {:<w$}  {:<fw$}  {:<8}  {:>7.4}  {ci:<18}  {:>6.4}  {pearson:>6}  {:>5.3}  {:>5}",
                r.experiment,
                r.features,
                &r.params_hash[..8.min(r.params_hash.len())],
                r.r2,
                r.mae,
                r.dispersion,
                r.n_clips
            );
        }
    }
    println!("\n{shown} run(s) in {}", path.display());
    Ok(())
}

/// `pipe diff [RUN_A] [RUN_B]`: what changed from A to B (default: the run
/// before the latest to the latest; with one run named: it to the latest).
pub fn show_diff(config: &Config, a: Option<&str>, b: Option<&str>) -> Result<()> {
    let path = history::path(&config.data_dir);
    let rows = history::read_table(&path)?;
    let runs = history::runs(&rows);
    if runs.len() < 2 && (a.is_none() || b.is_none()) {
        bail!(
            "`pipe diff` needs two recorded runs; {} holds {}",
            path.display(),
            runs.len()
        );
    }
    let old = history::find_run(&runs, a.unwrap_or("~1"))?;
    let new = history::find_run(&runs, b.unwrap_or("~0"))?;
    print!("{}", diff::diff(old, new));
    Ok(())
}
