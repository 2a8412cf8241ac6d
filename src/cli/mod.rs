//! What each subcommand prints: the engine returns reports, this formats them.
//! The top of the crate: it may import anything; nothing imports it.

use anyhow::Result;
use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Instant;

use crate::config::Config;
use crate::dag::{self, Plan, RunOptions, Store, record::Record};
use crate::stages;

mod history;
mod passes;
pub use history::{show as history, show_diff as diff};

#[derive(clap::Args, Debug, Default)]
pub struct RunArgs {
    /// Stop after this stage (it and the stages it needs).
    #[arg(long, value_name = "STAGE")]
    pub until: Option<String>,
    /// Recompute this stage even if fresh (repeatable).
    #[arg(long, value_name = "STAGE")]
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
}

pub fn run(config: &Config, args: &RunArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let pipeline = build_pipeline(config)?;
    let (stages, encoder_passes) = (&pipeline.stages, pipeline.passes.as_deref());
    let store = Store::new(&config.data_dir);
    let opts = RunOptions {
        until: args.until.clone(),
        force: args.force.clone(),
        dry_run: args.dry_run,
        jobs: args.jobs,
        wait: args.wait,
    };
    let report = dag::run(stages, &store, &opts)?;
    let plan = report.plan.as_ref().expect("run returns its plan");
    if args.dry_run {
        print_plan(plan, "would run");
        passes::print_estimate(encoder_passes, plan);
        return Ok(ExitCode::SUCCESS);
    }
    let artifacts: usize = plan.stages.iter().map(|s| s.nodes.len()).sum();
    for s in &report.stages {
        if s.computed + s.failed.len() + s.blocked == 0 {
            eprintln!("{:>10}: {} fresh", s.name, s.fresh);
        } else {
            let rate = if s.seconds > 0.0 {
                s.computed as f64 / s.seconds
            } else {
                0.0
            };
            eprintln!(
                "{:>10}: {} computed, {} fresh, {} failed, {} blocked in {:.1} s ({rate:.1}/s)",
                s.name,
                s.computed,
                s.fresh,
                s.failed.len(),
                s.blocked,
                s.seconds
            );
        }
    }
    passes::after_run(encoder_passes);
    let elapsed = started.elapsed().as_secs_f64();
    let stale_stages = report
        .stages
        .iter()
        .filter(|s| s.computed + s.failed.len() + s.blocked > 0)
        .count();
    let fresh_stages = report.stages.len() - stale_stages;
    if report.computed() == 0 && report.failed() == 0 {
        println!(
            "up to date: {fresh_stages} stages fresh ({artifacts} artifacts), 0 stale, in {elapsed:.2} s"
        );
    } else {
        println!(
            "done: {} stages ({stale_stages} ran, {fresh_stages} fresh), {} artifacts computed, {} failed, in {elapsed:.1} s",
            report.stages.len(),
            report.computed(),
            report.failed()
        );
    }
    let published: Vec<_> = report
        .stages
        .iter()
        .flat_map(|s| s.published.iter())
        .collect();
    if !published.is_empty() {
        println!("outputs:");
        for p in &published {
            println!("  {}", p.display());
        }
    }
    println!("artifacts: {}", store.root().join("store").display());
    if let Some(md) = published.iter().find(|p| p.ends_with("report.md"))
        && let Ok(text) = std::fs::read_to_string(md)
        && let Some(table) = crate::report::markdown::ranked_section(&text)
    {
        println!("\n{table}");
    }
    history::record_run(config, &report);
    if report.failed() == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "\n{} clip(s) failed:",
        report.stages.iter().map(|s| s.failed.len()).sum::<usize>()
    );
    for s in &report.stages {
        for (item, err) in &s.failed {
            eprintln!("  {} {item}: {err}", s.name);
        }
        if s.blocked > 0 {
            eprintln!(
                "  {}: {} node(s) not run because an input failed",
                s.name, s.blocked
            );
        }
    }
    Ok(ExitCode::FAILURE)
}

pub fn status(config: &Config) -> Result<()> {
    let (_, plan) = plan(config)?;
    print_plan(&plan, "stale");
    Ok(())
}

/// The pipeline's stages and their plan against the store, running nothing.
fn plan(config: &Config) -> Result<(Vec<Box<dyn crate::dag::Stage>>, Plan)> {
    let stages = build(config)?;
    let store = Store::new(&config.data_dir);
    let opts = RunOptions {
        dry_run: true,
        ..Default::default()
    };
    let plan = dag::run(&stages, &store, &opts)?
        .plan
        .expect("a dry run returns its plan");
    Ok((stages, plan))
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

fn print_plan(plan: &Plan, verb: &str) {
    let mut stale_total = 0;
    for s in &plan.stages {
        let stale = s.stale_count();
        stale_total += stale;
        if stale == 0 {
            println!("{:>10}: fresh ({} artifacts)", s.name, s.nodes.len());
            continue;
        }
        println!("{:>10}: {stale} of {} {verb}", s.name, s.nodes.len());
        let summary = s.reason_summary();
        for (reason, count, example) in summary.iter().take(5) {
            println!("{:>12}{reason}  [{count} node(s), e.g. {example}]", "");
        }
        if summary.len() > 5 {
            println!("{:>12}... and {} more reasons", "", summary.len() - 5);
        }
    }
    let fresh = plan.stages.iter().filter(|s| s.stale_count() == 0).count();
    println!(
        "{fresh} stages fresh, {} stale ({stale_total} artifacts to compute)",
        plan.stages.len() - fresh
    );
}

pub fn dag(config: &Config) -> Result<()> {
    let (stages, plan) = plan(config)?;
    for (stage, sp) in stages.iter().zip(&plan.stages) {
        // The stages it reads that this pipeline has.
        let ups: Vec<&str> = (stage.decl().reads.iter())
            .map(|d| d.name)
            .filter(|n| stages.iter().any(|s| s.name() == *n))
            .collect();
        let from = if ups.is_empty() {
            "inputs".to_string()
        } else {
            ups.join(", ")
        };
        let n = sp.nodes.len();
        let shape = format!("{n} node{}", if n == 1 { "" } else { "s" });
        println!("{from} ─▶ {} ({shape}, v{})", stage.name(), stage.version());
        println!("{:>8}{}", "", stage.describe());
    }
    Ok(())
}

pub fn clean(config: &Config, dry_run: bool) -> Result<()> {
    let store = Store::new(&config.data_dir);
    let _lock = if dry_run {
        None
    } else {
        Some(dag::runlock::RunLock::acquire(store.root(), false)?)
    };
    let record = Record::load(store.root())?;
    let keep: HashSet<(String, String)> = record
        .stages
        .iter()
        .flat_map(|(stage, nodes)| nodes.values().map(move |n| (stage.clone(), n.file.clone())))
        .collect();
    let mut removed = 0usize;
    let mut bytes = 0u64;
    for (stage, file, path) in store.list()? {
        if keep.contains(&(stage, file)) {
            continue;
        }
        bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        removed += 1;
        if dry_run {
            println!("would delete {}", path.display());
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    if !dry_run {
        store.remove_temporaries()?;
    }
    let verb = if dry_run { "would free" } else { "freed" };
    println!(
        "{removed} unreferenced artifact(s), {verb} {:.1} MB",
        bytes as f64 / 1e6
    );
    Ok(())
}
