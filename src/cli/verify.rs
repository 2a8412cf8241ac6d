//! `pipe verify`: rehash artifacts against the hash recorded in their name
//! (and `data/out` against its publication record); `--repair` deletes the
//! corrupt ones and runs the pipeline, which recomputes them.

use anyhow::Result;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use super::{RunArgs, config_id, plan};
use crate::config::Config;
use crate::dag::{self, Plan, Store, publish, runlock::RunLock, verify::Corrupt};

#[derive(clap::Args, Debug, Default, Clone)]
pub struct VerifyArgs {
    /// Delete corrupt artifacts and recompute them (a `pipe run`).
    #[arg(long)]
    pub repair: bool,
    /// Every artifact in the store, not only those this config uses.
    #[arg(long)]
    pub all: bool,
}

/// Rehashes every fresh artifact of `plan`: (corrupt ones, bytes read, count).
pub(super) fn check_plan(plan: &Plan) -> (Vec<Corrupt>, u64, usize) {
    let artifacts: Vec<(String, PathBuf)> = plan
        .stages
        .iter()
        .flat_map(|s| {
            s.nodes
                .iter()
                .filter(|n| !n.is_stale())
                .map(move |n| (s.name.to_string(), n.node.path.clone()))
        })
        .collect();
    let (bad, bytes) = dag::verify::check(&artifacts);
    (bad, bytes, artifacts.len())
}

pub(super) fn print_corrupt(bad: &[Corrupt]) {
    for c in bad {
        let got = c.actual.map_or("unreadable".to_string(), |h| h.short());
        eprintln!(
            "  corrupt: {} {} (bytes hash to {got}, recorded {})",
            c.stage,
            c.path.display(),
            c.expected.short()
        );
    }
}

pub fn verify(path: &Path, config: &Config, args: &VerifyArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let (stages, plan) = plan(path, config)?;
    let store = Store::new(&config.data_dir);
    let (bad, bytes, n) = if args.all {
        let all = dag::verify::all_artifacts(&store)?;
        let (bad, bytes) = dag::verify::check(&all);
        (bad, bytes, all.len())
    } else {
        check_plan(&plan)
    };
    let missing: Vec<(String, String)> = plan
        .stages
        .iter()
        .flat_map(|s| {
            s.nodes
                .iter()
                .filter(|n| {
                    n.reasons
                        .iter()
                        .any(|r| r == "artifact missing from the store")
                })
                .map(move |n| (s.name.to_string(), n.node.item.clone()))
        })
        .collect();
    let desired = dag::desired_from_plan(&stages, &plan)?;
    let out = publish::compare(&config.data_dir, &desired, &config_id(path, config));
    println!(
        "verified {n} artifact(s), {:.1} MB, in {:.1} s: {} corrupt, {} missing, {} edited in data/out",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        bad.len(),
        missing.len(),
        out.edited.len()
    );
    print_corrupt(&bad);
    for (stage, item) in &missing {
        eprintln!("  missing: {stage} {item} (recorded, not in the store)");
    }
    for f in &out.edited {
        eprintln!("  edited: data/out/{f} (differs from what was published)");
    }
    if bad.is_empty() && missing.is_empty() && out.edited.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    if !args.repair {
        eprintln!("run `pipe verify --repair` to recompute them");
        return Ok(ExitCode::FAILURE);
    }
    {
        let _lock = RunLock::acquire(store.root(), false)?;
        for c in &bad {
            std::fs::remove_file(&c.path)
                .map_err(|e| anyhow::anyhow!("removing {}: {e}", c.path.display()))?;
        }
    }
    eprintln!(
        "repair: {} corrupt artifact(s) deleted; recomputing",
        bad.len()
    );
    super::run(path, config, &RunArgs::default())
}
