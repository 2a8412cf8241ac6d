//! `pipe clean`: delete what no live pipeline description needs, with the
//! guarantees of `dvc gc`. Roots are this config and every config whose
//! recorded runs still have their file (plus `--keep FILE`s); for each, the
//! artifacts its plan uses now and those its record names (so an
//! interrupted run's finished work and the last run's outputs both stay).
//! It shows what it deletes by stage and item with sizes, and asks first.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::config_id;
use crate::config::Config;
use crate::dag::{
    self, RunOptions, Store,
    gc::{self, Garbage, Roots},
    record::Record,
    runlock::RunLock,
};

#[derive(clap::Args, Debug, Default, Clone)]
pub struct CleanArgs {
    /// List what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Delete without asking.
    #[arg(long, short)]
    pub yes: bool,
    /// Also keep what this pipeline description needs (repeatable).
    #[arg(long, value_name = "FILE")]
    pub keep: Vec<PathBuf>,
    /// Also keep the recorded work of descriptions whose file is gone.
    #[arg(long)]
    pub all_configs: bool,
    /// List every item (default: the first 10 per stage).
    #[arg(long, short)]
    pub verbose: bool,
}

/// Adds what `path`'s description uses now to `roots`; returns a line for the user.
fn keep_config(path: &Path, roots: &mut Roots, root: &Path) -> Result<String> {
    let config = Config::load(path)?;
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    if canon(&config.data_dir) != canon(root) {
        return Ok(format!("{} (uses another data folder)", path.display()));
    }
    let pipeline = crate::stages::build(&config)?;
    let opts = RunOptions {
        dry_run: true,
        config: config_id(path, &config),
        ..Default::default()
    };
    let plan = dag::run(&pipeline.stages, &Store::new(root), &opts)?
        .plan
        .expect("a dry run returns its plan");
    let used = plan.used_files();
    let n = used.len();
    for (stage, file) in used {
        roots.keep(&stage, &file);
    }
    Ok(format!("{} ({n} artifacts in use)", path.display()))
}

pub fn clean(path: &Path, config: &Config, args: &CleanArgs) -> Result<ExitCode> {
    let root = config.data_dir.clone();
    let store = Store::new(&root);
    let _lock = if args.dry_run {
        None
    } else {
        Some(RunLock::acquire(&root, false)?)
    };
    let mut roots = Roots::default();
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    kept.push(keep_config(path, &mut roots, &root)?);
    let me = Record::path(&root, &config_id(path, config));
    let mut gone_records = Vec::new();
    for (file, record) in Record::all(&root)? {
        for (stage, nodes) in &record.stages {
            for (item, n) in nodes {
                roots
                    .items
                    .insert((stage.clone(), n.file.clone()), item.clone());
            }
        }
        for (stage, files) in &record.superseded {
            for (f, item) in files {
                roots
                    .items
                    .entry((stage.clone(), f.clone()))
                    .or_insert_with(|| item.clone());
            }
        }
        let live = record.config.as_ref().is_some_and(|p| p.is_file());
        if file == me || live || args.all_configs {
            for (stage, f) in record.files() {
                roots.keep(stage, f);
            }
        }
        if file == me {
            continue;
        }
        match (&record.config, live) {
            (Some(p), true) => match keep_config(p, &mut roots, &root) {
                Ok(line) => kept.push(line),
                Err(e) => kept.push(format!(
                    "{} (its recorded work only: it does not plan: {e:#})",
                    p.display()
                )),
            },
            (p, _) => {
                let name = p
                    .as_ref()
                    .map_or("(no file)".to_string(), |p| p.display().to_string());
                if args.all_configs {
                    kept.push(format!(
                        "{name} (file gone; its recorded work, --all-configs)"
                    ));
                } else {
                    dropped.push(name);
                    gone_records.push(file);
                }
            }
        }
    }
    for k in &args.keep {
        kept.push(
            keep_config(k, &mut roots, &root).with_context(|| format!("--keep {}", k.display()))?,
        );
    }
    let legacy = roots.keep_legacy(&store)?;
    println!("keeping what these pipeline descriptions need:");
    for k in &kept {
        println!("  {k}");
    }
    if legacy > 0 {
        println!(
            "  {} (the record of pipe before content hashes: {legacy} artifacts; delete it once every config has run with this version)",
            root.join("pipe.lock").display()
        );
    }
    for d in &dropped {
        println!("  not kept: {d} (its file is gone; --all-configs keeps its work)");
    }
    let garbage = gc::collect(&store, &roots)?;
    let total: u64 = garbage.iter().map(|g| g.bytes).sum();
    let verb = if args.dry_run {
        "would delete"
    } else {
        "to delete"
    };
    println!("{verb}: {} artifact(s), {}", garbage.len(), size(total));
    print_garbage(&garbage, args.verbose);
    if args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    if garbage.is_empty() && gone_records.is_empty() {
        store.remove_temporaries()?;
        return Ok(ExitCode::SUCCESS);
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            bail!("not asking on a non-terminal: pass --yes to delete (or --dry-run to list)");
        }
        print!("delete them? [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("nothing deleted");
            return Ok(ExitCode::SUCCESS);
        }
    }
    let freed = gc::delete(&garbage)?;
    for r in &gone_records {
        std::fs::remove_file(r).with_context(|| format!("removing {}", r.display()))?;
    }
    store.remove_temporaries()?;
    println!(
        "deleted {} artifact(s), freed {}",
        garbage.len(),
        size(freed)
    );
    Ok(ExitCode::SUCCESS)
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000_000 => format!("{:.1} GB", b as f64 / 1e9),
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b => format!("{:.1} kB", b as f64 / 1e3),
    }
}

/// By stage: count and size, then items with sizes.
fn print_garbage(garbage: &[Garbage], verbose: bool) {
    let mut by_stage: BTreeMap<&str, Vec<&Garbage>> = BTreeMap::new();
    for g in garbage {
        by_stage.entry(g.stage.as_str()).or_default().push(g);
    }
    for (stage, list) in by_stage {
        let bytes: u64 = list.iter().map(|g| g.bytes).sum();
        println!("  {stage}: {} artifact(s), {}", list.len(), size(bytes));
        let shown = if verbose {
            list.len()
        } else {
            list.len().min(10)
        };
        for g in &list[..shown] {
            let item = g.item.as_deref().unwrap_or("(item unknown)");
            println!("      {item}  {}  {}", size(g.bytes), g.file);
        }
        if shown < list.len() {
            println!("      ... and {} more (-v lists all)", list.len() - shown);
        }
    }
}
