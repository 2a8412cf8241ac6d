//! Running a plan: stale nodes of each stage in parallel, artifacts committed
//! atomically, failures collected (never aborting the good clips), the record
//! saved after every stage so an interrupted run keeps what it finished.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use super::filehash::FileHasher;
use super::plan::{Plan, plan, select_stages};
use super::record::{NodeRecord, Record};
use super::runlock::RunLock;
use super::{Node, Stage, Store};

#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Stop after this stage (and its ancestors).
    pub until: Option<String>,
    /// Recompute these stages' nodes even if fresh.
    pub force: Vec<String>,
    /// Plan and explain, run nothing.
    pub dry_run: bool,
    /// Worker threads for per-clip work (default: all cores).
    pub jobs: Option<usize>,
    /// Wait for another run on the same store instead of refusing.
    pub wait: bool,
}

#[derive(Clone, Debug, Default)]
pub struct StageReport {
    pub name: &'static str,
    pub computed: usize,
    pub fresh: usize,
    /// (item, error with its context chain)
    pub failed: Vec<(String, String)>,
    /// Nodes not run because an input failed.
    pub blocked: usize,
    pub seconds: f64,
    pub published: Vec<PathBuf>,
}

#[derive(Clone, Debug, Default)]
pub struct RunReport {
    pub stages: Vec<StageReport>,
    /// The plan as it was before running (reasons included).
    pub plan: Option<Plan>,
}

impl RunReport {
    pub fn computed(&self) -> usize {
        self.stages.iter().map(|s| s.computed).sum()
    }
    pub fn failed(&self) -> usize {
        self.stages.iter().map(|s| s.failed.len() + s.blocked).sum()
    }
    pub fn stage(&self, name: &str) -> Option<&StageReport> {
        self.stages.iter().find(|s| s.name == name)
    }
}

/// Plans and (unless `dry_run`) runs the pipeline on `store`.
pub fn run(stages: &[Box<dyn Stage>], store: &Store, opts: &RunOptions) -> Result<RunReport> {
    let selected = select_stages(stages, opts.until.as_deref())?;
    for f in &opts.force {
        if !selected.iter().any(|s| s.name() == f) {
            anyhow::bail!(
                "--force {f}: no such stage in this run (stages: {})",
                names(&selected)
            );
        }
    }
    let _lock = if opts.dry_run {
        None
    } else {
        Some(RunLock::acquire(store.root(), opts.wait)?)
    };
    if !opts.dry_run {
        store.remove_temporaries()?;
    }
    let hasher = FileHasher::open(store.root().join("cache").join("file-hashes.json"));
    let mut record = Record::load(store.root())?;
    let planned = plan(&selected, store, &hasher, &record, &opts.force)?;
    hasher.save()?;
    let mut report = RunReport {
        stages: Vec::new(),
        plan: None,
    };
    if opts.dry_run {
        report.plan = Some(planned);
        return Ok(report);
    }

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.unwrap_or(0))
        .build()
        .context("starting worker threads")?;
    let mut failed_keys: HashSet<super::Key> = HashSet::new();
    for (stage, stage_plan) in selected.iter().zip(&planned.stages) {
        let started = Instant::now();
        let mut sr = StageReport {
            name: stage.name(),
            ..Default::default()
        };
        let (stale, fresh): (Vec<_>, Vec<_>) = stage_plan.nodes.iter().partition(|n| n.is_stale());
        sr.fresh = fresh.len();
        let (blocked, runnable): (Vec<_>, Vec<_>) = stale
            .into_iter()
            .partition(|n| n.node.inputs.iter().any(|i| failed_keys.contains(&i.key)));
        sr.blocked = blocked.len();
        failed_keys.extend(blocked.iter().map(|n| n.node.key));

        let bar = progress_bar(stage.name(), runnable.len());
        let batches = group_batches(*stage, runnable.iter().map(|pn| &pn.node).collect());
        let results: Vec<(&Node, Result<()>)> = pool.install(|| {
            batches
                .par_iter()
                .flat_map_iter(|batch| {
                    let results = run_batch(*stage, store, batch);
                    bar.inc(batch.len() as u64);
                    batch.iter().copied().zip(results).collect::<Vec<_>>()
                })
                .collect()
        });
        bar.finish_and_clear();

        let entries = record.stages.entry(stage.name().to_string()).or_default();
        let mut ok_nodes: Vec<&Node> = fresh.iter().map(|n| &n.node).collect();
        for (node, r) in results {
            match r {
                Ok(()) => {
                    sr.computed += 1;
                    ok_nodes.push(node);
                }
                Err(e) => {
                    failed_keys.insert(node.key);
                    sr.failed.push((node.item.clone(), format!("{e:#}")));
                }
            }
        }
        let mut changed = false;
        for node in &ok_nodes {
            let rec = node_record(node, stage.ext());
            if entries.get(&node.item) != Some(&rec) {
                entries.insert(node.item.clone(), rec);
                changed = true;
            }
        }
        // Nodes no longer planned (e.g. a clip removed from the dataset) leave the record.
        let before = entries.len();
        entries.retain(|item, _| stage_plan.node(item).is_some());
        changed |= entries.len() != before;
        // Saved after each stage that changed it (a crash keeps what finished),
        // and not at all on a run that changed nothing: it is large.
        if changed {
            record.save(store.root())?;
        }

        if sr.failed.is_empty() && sr.blocked == 0 {
            ok_nodes.sort_by(|a, b| a.item.cmp(&b.item));
            sr.published = stage
                .publish(&ok_nodes, &store.root().join("out"))
                .with_context(|| format!("publishing outputs of `{}`", stage.name()))?;
        }
        sr.failed.sort();
        sr.seconds = started.elapsed().as_secs_f64();
        report.stages.push(sr);
    }
    report.plan = Some(planned);
    Ok(report)
}

/// Groups nodes by the stage's batch key (unbatched nodes run alone), in plan order.
fn group_batches<'a>(stage: &dyn Stage, nodes: Vec<&'a Node>) -> Vec<Vec<&'a Node>> {
    let mut batches: Vec<Vec<&Node>> = Vec::new();
    let mut by_key: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for node in nodes {
        match stage.batch_key(node) {
            Some(k) => match by_key.get(&k) {
                Some(&i) => batches[i].push(node),
                None => {
                    by_key.insert(k, batches.len());
                    batches.push(vec![node]);
                }
            },
            None => batches.push(vec![node]),
        }
    }
    batches
}

/// Runs one batch into temporary files and commits each node that succeeded.
fn run_batch(stage: &dyn Stage, store: &Store, batch: &[&Node]) -> Vec<Result<()>> {
    let ext = stage.ext();
    let temps: Result<Vec<PathBuf>> = batch
        .iter()
        .map(|n| store.temp_path(n.stage, ext))
        .collect();
    let temps = match temps {
        Ok(t) => t,
        Err(e) => {
            return batch
                .iter()
                .map(|_| Err(anyhow::anyhow!("{e:#}")))
                .collect();
        }
    };
    let mut results = if batch.len() == 1 {
        vec![stage.run(batch[0], &temps[0])]
    } else {
        stage.run_batch(batch, &temps)
    };
    if results.len() != batch.len() {
        results = batch
            .iter()
            .map(|_| {
                Err(anyhow::anyhow!(
                    "stage `{}` returned the wrong number of batch results",
                    stage.name()
                ))
            })
            .collect();
    }
    batch
        .iter()
        .zip(temps)
        .zip(results)
        .map(|((node, tmp), r)| {
            store
                .finish(node.stage, &node.key, ext, &tmp, r)
                .map(|_| ())
        })
        .collect()
}

fn node_record(node: &Node, ext: &str) -> NodeRecord {
    NodeRecord {
        key: node.key,
        version: node.version,
        params: node.params.clone(),
        inputs: node
            .inputs
            .iter()
            .map(|i| (i.name.clone(), i.key))
            .collect(),
        file: format!("{}.{ext}", node.key),
    }
}

fn progress_bar(stage: &str, len: usize) -> ProgressBar {
    // indicatif draws only to a terminal, so logs and CI stay clean.
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>10} [{bar:30}] {pos}/{len} clips  {per_sec}  ETA {eta}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar.set_prefix(stage.to_string());
    bar
}

fn names(stages: &[&dyn Stage]) -> String {
    stages
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(", ")
}
