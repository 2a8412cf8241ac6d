//! What each subcommand prints: the engine returns reports, this formats them.
//! The top of the crate: it may import anything; nothing imports it.

mod clean;
mod config;
mod graph;
mod predict;
mod status;
mod verify;

pub use clean::{CleanArgs, clean};
pub use config::{ConfigArgs, config};
pub use graph::{DagArgs, dag};
pub use predict::{ModelArgs, PredictArgs, ServeArgs, load_scorer, predict, serve};
pub use status::{StatusArgs, status};
pub use verify::{VerifyArgs, verify};

use anyhow::Result;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use crate::config::Config;
use crate::dag::{self, ConfigId, Plan, RunOptions, RunReport, Store, progress_rate};
use crate::stages;

mod history;
mod passes;
mod query;
pub use history::{show as history, show_diff as diff};
pub use query::{QueryArgs, query};

#[derive(clap::Args, Debug, Default, Clone)]
pub struct RunArgs {
    /// Stop after this stage (it and the stages it needs).
    #[arg(long, value_name = "STAGE")]
    pub until: Option<String>,
    /// Recompute a stage, or one item of it (`decode/CLIP`), even if fresh
    /// (repeatable). What changes propagates; what comes out the same does not.
    #[arg(long, value_name = "STAGE[/ITEM]")]
    pub force: Vec<String>,
    /// Say what would run and why; run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Worker threads for per-clip stages (default: all cores).
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<usize>,
    /// If another run holds the data folder, wait for it instead of refusing.
    #[arg(long)]
    pub wait: bool,
    /// Stop at the first failure, and build no table without every clip
    /// (default: bad clips are listed and the good ones reach every table).
    #[arg(long)]
    pub strict: bool,
    /// Run shard I of N of the per-clip work (render, decode, resample,
    /// features) and nothing dataset-level; `auto/N` reads I from
    /// JOB_COMPLETION_INDEX, SLURM_ARRAY_TASK_ID or PIPE_SHARD. Shards meet in
    /// the `store`; a plain `pipe run` afterwards finishes the study.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
}

/// Which config a run belongs to (its record; who owns `data/out`).
pub fn config_id(path: &Path, config: &Config) -> ConfigId {
    ConfigId::new(path, config.hash.clone())
}

/// Seconds between progress lines when stderr is not a terminal:
/// `PIPE_PROGRESS_SECS`, else the engine's default (10).
fn progress_every() -> Option<f64> {
    std::env::var("PIPE_PROGRESS_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
}

/// The artifact store `config` names: `data_dir/store`, or a remote one
/// (checked reachable now, before any work) cached there.
pub fn open_store(config: &Config) -> Result<Store> {
    let Some(url) = &config.store else {
        return Ok(Store::new(&config.data_dir));
    };
    let remote = dag::Remote::open(url, config.store_retry_seconds)?;
    let cache_bytes = (config.store_cache_gb * 1e9) as u64;
    Ok(Store::with_remote(&config.data_dir, remote, cache_bytes))
}

pub fn run(path: &Path, config: &Config, args: &RunArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let shard = args
        .shard
        .as_deref()
        .map(|s| dag::Shard::parse(s, |v| std::env::var(v).ok()))
        .transpose()?;
    let store = open_store(config)?;
    let pipeline = build_pipeline(config)?;
    let (stages, encoder_passes) = (&pipeline.stages, pipeline.passes.as_deref());
    let opts = RunOptions {
        until: args.until.clone(),
        force: args.force.clone(),
        dry_run: args.dry_run,
        jobs: args.jobs,
        wait: args.wait,
        strict: args.strict,
        config: config_id(path, config),
        progress_every: progress_every(),
        shard,
    };
    if let Some(shard) = shard {
        eprintln!(
            "pipe: shard {shard}: this shard's clips' per-clip stages only; a plain `pipe run` finishes the study"
        );
    }
    let report = dag::run_with(stages, &store, &opts, &mut |plan| {
        if args.dry_run {
            return;
        }
        announce(plan);
    })?;
    let plan = report.plan.as_ref().expect("run returns its plan");
    if args.dry_run {
        print_plan(plan, "would run", false);
        passes::print_estimate(encoder_passes, plan);
        return Ok(ExitCode::SUCCESS);
    }
    summary(&report, &store, started.elapsed().as_secs_f64());
    passes::after_run(encoder_passes);
    if shard.is_none() {
        // One history entry per study run: the finishing run's.
        history::record_run(stages, path, config, &report);
    }
    let bad = report.failed() + report.blocked();
    if bad == 0 && !report.stopped {
        return Ok(ExitCode::SUCCESS);
    }
    failures(&report);
    Ok(ExitCode::FAILURE)
}

/// Before running: what runs, stage by stage, one line per reason, counted.
fn announce(plan: &Plan) {
    if plan.adopted > 0 {
        eprintln!(
            "pipe: this store was written by pipe before content hashes: {} artifact(s) adopted by their content (hashed once, nothing recomputed for them)",
            plan.adopted
        );
    }
    for s in plan.stages.iter().filter(|s| s.selected) {
        let (stale, pending) = (s.stale_count(), s.pending_count());
        if stale + pending == 0 {
            continue;
        }
        eprintln!("{}", stage_line(s, "to run"));
        for line in reason_lines(s, 5) {
            eprintln!("{line}");
        }
    }
}

/// `decode: 3 of 1202 to run, 37 may be stale` (per stage, with its unit's count).
fn stage_line(s: &dag::StagePlan, verb: &str) -> String {
    let (stale, pending) = (s.stale_count(), s.pending_count());
    let n = s.nodes.len();
    match (stale, pending) {
        (0, p) => format!("{:>14}: {p} of {n} may be stale", s.name),
        (st, 0) => format!("{:>14}: {st} of {n} {verb}", s.name),
        (st, p) => format!("{:>14}: {st} of {n} {verb}, {p} may be stale", s.name),
    }
}

/// One line per distinct reason, with how many nodes it concerns.
fn reason_lines(s: &dag::StagePlan, max: usize) -> Vec<String> {
    let summary = s.reason_summary();
    let mut out: Vec<String> = summary
        .iter()
        .take(max)
        .map(|(reason, count, example)| {
            if *count == 1 {
                format!("{:>16}{reason}  [{example}]", "")
            } else {
                format!("{:>16}{reason}  [{count} {}, e.g. {example}]", "", s.unit)
            }
        })
        .collect();
    if summary.len() > max {
        out.push(format!(
            "{:>16}... and {} more reasons (`pipe status --all` lists every item)",
            "",
            summary.len() - max
        ));
    }
    out
}

fn summary(report: &RunReport, store: &Store, elapsed: f64) {
    let plan = report.plan.as_ref().expect("run returns its plan");
    let artifacts: usize = plan.stages.iter().map(|s| s.nodes.len()).sum();
    for s in &report.stages {
        let worked = s.computed + s.cut_off + s.failed.len() + s.blocked.len() + s.skipped;
        if worked == 0 {
            eprintln!("{:>14}: {} fresh", s.name, s.fresh);
            continue;
        }
        let mut line = format!("{:>14}: {} computed, {} fresh", s.name, s.computed, s.fresh);
        for (n, what) in [
            (s.failed.len(), "failed"),
            (s.blocked.len(), "blocked"),
            (s.cut_off, "cut off (inputs came out as before)"),
            (s.skipped, "not run"),
        ] {
            if n > 0 {
                line.push_str(&format!(", {n} {what}"));
            }
        }
        if s.computed > 0 {
            let rate = progress_rate(s.computed as f64 / s.seconds.max(1e-9), s.unit);
            line.push_str(&format!(" in {:.1} s ({rate})", s.seconds));
        }
        eprintln!("{line}");
        for (item, missing) in &s.partial {
            eprintln!("{:>16}{item}: built without {missing} failed input(s)", "");
        }
    }
    let ran = report
        .stages
        .iter()
        .filter(|s| s.computed + s.failed.len() + s.blocked.len() > 0)
        .count();
    let fresh_stages = report.stages.len() - ran;
    if report.computed() == 0 && report.failed() + report.blocked() == 0 {
        let cut = match report.cut_off() {
            0 => String::new(),
            n => format!(", {n} cut off"),
        };
        println!(
            "up to date: {fresh_stages} stages fresh ({artifacts} artifacts){cut}, 0 stale, in {elapsed:.2} s"
        );
    } else {
        println!(
            "done: {} stages ({ran} ran, {fresh_stages} fresh), {} artifacts computed, {} cut off, {} failed, {} blocked, in {elapsed:.1} s",
            report.stages.len(),
            report.computed(),
            report.cut_off(),
            report.failed(),
            report.blocked()
        );
    }
    if let Some(p) = &report.publication {
        if let Some((owner, when)) = &p.replaced_owner {
            let who = owner
                .as_ref()
                .map_or("another run".to_string(), |o| o.display().to_string());
            eprintln!(
                "note: data/out held the outputs of {who} (published {}); it now holds this config's",
                crate::dag::publish::when(*when)
            );
        }
        for (stage, why) in &p.left_out {
            eprintln!("note: data/out has no {stage} outputs: {why}");
        }
        if !p.files.is_empty() {
            println!("outputs:");
            for f in &p.files {
                println!("  {}", f.display());
            }
        }
    }
    println!("artifacts: {}", store.root().join("store").display());
    if let Some(remote) = store.remote() {
        let (bytes, evicted) = store.cache_usage().unwrap_or_default();
        println!(
            "store: {} ({}); local cache {:.1} MB, {evicted} evicted",
            remote.url(),
            remote.traffic,
            bytes as f64 / 1e6
        );
    }
    let report_md = report
        .publication
        .as_ref()
        .and_then(|p| p.files.iter().find(|f| f.ends_with("report.md")));
    if let Some(md) = report_md
        && let Ok(text) = std::fs::read_to_string(md)
        && let Some(table) = crate::report::markdown::ranked_section(&text)
    {
        println!("\n{table}");
    }
}

fn failures(report: &RunReport) {
    if report.stopped {
        eprintln!("\n--strict: stopped at the first failure; the rest was not run");
    }
    let failed: Vec<_> = report
        .stages
        .iter()
        .flat_map(|s| s.failed.iter().map(move |f| (s.name, f)))
        .collect();
    if !failed.is_empty() {
        eprintln!(
            "\n{} node(s) failed (the good ones went on: see report.md \"Failed clips\" and results/failed.parquet):",
            failed.len()
        );
        for (stage, (item, err)) in failed {
            eprintln!("  {stage} {item}: {err}");
        }
    }
    for s in &report.stages {
        if !s.blocked.is_empty() {
            eprintln!(
                "  {}: {} node(s) not run because an input failed",
                s.name,
                s.blocked.len()
            );
        }
    }
}

/// The pipeline's stages, after saying on stderr what it leaves out and why.
fn build(config: &Config) -> Result<Vec<Box<dyn crate::dag::Stage>>> {
    Ok(build_pipeline(config)?.stages)
}

/// [`build`], with what the stages share with the command (encoder work).
fn build_pipeline(config: &Config) -> Result<stages::Pipeline> {
    let pipeline = stages::build(config)?;
    for note in &pipeline.notes {
        eprintln!("note: {note}");
    }
    Ok(pipeline)
}

/// The pipeline's stages and their plan against the store, running nothing.
fn plan(path: &Path, config: &Config) -> Result<(Vec<Box<dyn crate::dag::Stage>>, Plan)> {
    let stages = build(config)?;
    let plan = plan_of(&stages, path, config)?;
    Ok((stages, plan))
}

/// The plan of stages already built, against the store, running nothing.
fn plan_of(stages: &[Box<dyn crate::dag::Stage>], path: &Path, config: &Config) -> Result<Plan> {
    let store = open_store(config)?;
    let opts = RunOptions {
        dry_run: true,
        config: config_id(path, config),
        ..Default::default()
    };
    Ok(dag::run(stages, &store, &opts)?
        .plan
        .expect("a dry run returns its plan"))
}

fn print_plan(plan: &Plan, verb: &str, all: bool) {
    let mut stale_total = 0;
    let mut pending_total = 0;
    for s in &plan.stages {
        let (stale, pending) = (s.stale_count(), s.pending_count());
        stale_total += stale;
        pending_total += pending;
        if stale + pending == 0 {
            println!("{:>14}: fresh ({} {})", s.name, s.nodes.len(), s.unit);
            continue;
        }
        println!("{}", stage_line(s, verb));
        if all {
            for n in s.nodes.iter().filter(|n| n.is_stale()) {
                println!("{:>16}{}: {}", "", n.node.item, n.reasons.join("; "));
            }
        } else {
            for line in reason_lines(s, 5) {
                println!("{line}");
            }
        }
    }
    let fresh = plan
        .stages
        .iter()
        .filter(|s| !s.nodes.iter().any(|n| n.is_stale()))
        .count();
    let may = match pending_total {
        0 => String::new(),
        n => format!(", {n} may be stale: they run only if their inputs change"),
    };
    println!(
        "{fresh} stages fresh, {} stale ({stale_total} artifacts to compute{may})",
        plan.stages.len() - fresh
    );
}
