//! Running a plan: stale batches on worker threads in the order the
//! [`Schedule`] picks (a clip's later stages start while other clips are still
//! in earlier ones), artifacts committed atomically, failures collected (never
//! aborting the good clips), the record saved as each stage completes so an
//! interrupted run keeps what it finished.

use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::PathBuf;
use std::sync::{Mutex, mpsc};
use std::time::Instant;

use super::filehash::FileHasher;
use super::plan::{Plan, StagePlan, plan, select_stages};
use super::record::{NodeRecord, Record};
use super::runlock::RunLock;
use super::schedule::Schedule;
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
    let batches: Vec<Vec<Vec<&Node>>> = selected
        .iter()
        .zip(&planned.stages)
        .map(|(stage, sp)| {
            let stale = sp.nodes.iter().filter(|n| n.is_stale()).map(|n| &n.node);
            group_batches(*stage, stale.collect())
        })
        .collect();
    let mut schedule = Schedule::new(&selected, &planned, batches);
    let mut stages: Vec<StageRun> = selected
        .iter()
        .zip(&planned.stages)
        .map(|(stage, sp)| StageRun::new(*stage, sp))
        .collect();
    let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let mut reports: Vec<Option<StageReport>> = vec![None; selected.len()];
    let width = pool.current_num_threads().max(1);

    // Workers run batches as the main thread hands them out, one each at a
    // time, so the schedule picks every next batch with the latest knowledge.
    let (job_tx, job_rx) = mpsc::channel::<Work>();
    let (done_tx, done_rx) = mpsc::channel::<(usize, Vec<Result<()>>)>();
    let job_rx = Mutex::new(job_rx);
    let outcome: Result<()> = std::thread::scope(|scope| {
        for _ in 0..width {
            let (job_rx, done_tx, pool) = (&job_rx, done_tx.clone(), &pool);
            scope.spawn(move || worker(job_rx, done_tx, pool, store));
        }
        drop(done_tx);
        // Dropped on every way out of this closure, which lets the workers finish.
        let job_tx = job_tx;
        let mut in_flight = 0;
        loop {
            for si in schedule.take_closed() {
                let closed = stages[si].close(schedule.blocked(si), &mut record, store)?;
                reports[si] = Some(closed);
            }
            while in_flight < width {
                let Some(id) = schedule.next() else { break };
                let job = schedule.job(id);
                stages[job.stage].start(&bars);
                let work = Work {
                    id,
                    stage: selected[job.stage],
                    nodes: job.nodes.clone(),
                };
                job_tx
                    .send(work)
                    .map_err(|_| anyhow::anyhow!("the worker threads stopped"))?;
                in_flight += 1;
            }
            if in_flight == 0 {
                return Ok(());
            }
            let (id, results) = done_rx
                .recv()
                .map_err(|_| anyhow::anyhow!("the worker threads stopped"))?;
            in_flight -= 1;
            let job = schedule.job(id);
            let ok: Vec<bool> = results.iter().map(|r| r.is_ok()).collect();
            for (node, r) in job.nodes.iter().zip(results) {
                stages[job.stage].record_result(node, r);
            }
            schedule.finish(id, &ok);
        }
    });
    outcome?;
    drop((schedule, stages, job_rx, done_rx));
    report.stages = reports
        .into_iter()
        .map(|r| r.expect("every stage closes once its jobs are done"))
        .collect();
    report.plan = Some(planned);
    Ok(report)
}

/// A batch handed to a worker.
struct Work<'a> {
    id: usize,
    stage: &'a dyn Stage,
    nodes: Vec<&'a Node>,
}

/// Runs batches until the sender is dropped; each batch inside the rayon pool
/// (so the stages' own parallel loops share its threads), a panic failing only
/// that batch's nodes.
fn worker(
    jobs: &Mutex<mpsc::Receiver<Work>>,
    done: mpsc::Sender<(usize, Vec<Result<()>>)>,
    pool: &rayon::ThreadPool,
    store: &Store,
) {
    loop {
        let next = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(work) = next else { return };
        let run = || pool.install(|| run_batch(work.stage, store, &work.nodes));
        let results =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|panic| {
                let msg = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("no message");
                work.nodes
                    .iter()
                    .map(|_| {
                        Err(anyhow::anyhow!(
                            "stage `{}` panicked: {msg}",
                            work.stage.name()
                        ))
                    })
                    .collect()
            });
        // The main thread stops listening only on its way out after an error.
        let _ = done.send((work.id, results));
    }
}

/// One stage's progress through a run: what it computed or failed, its bar,
/// and, once its last batch is done, its record entries and published copies.
struct StageRun<'p> {
    stage: &'p dyn Stage,
    plan: &'p StagePlan,
    ok_nodes: Vec<&'p Node>,
    computed: usize,
    failed: Vec<(String, String)>,
    started: Option<Instant>,
    bar: Option<ProgressBar>,
}

impl<'p> StageRun<'p> {
    fn new(stage: &'p dyn Stage, plan: &'p StagePlan) -> Self {
        StageRun {
            stage,
            plan,
            ok_nodes: plan
                .nodes
                .iter()
                .filter(|n| !n.is_stale())
                .map(|n| &n.node)
                .collect(),
            computed: 0,
            failed: Vec::new(),
            started: None,
            bar: None,
        }
    }

    /// A batch of this stage is handed out: the clock and the bar start with the first.
    fn start(&mut self, bars: &MultiProgress) {
        if self.started.is_none() {
            self.started = Some(Instant::now());
            self.bar = Some(bars.add(progress_bar(self.stage.name(), self.plan.stale_count())));
        }
    }

    fn record_result(&mut self, node: &'p Node, r: Result<()>) {
        match r {
            Ok(()) => {
                self.computed += 1;
                self.ok_nodes.push(node);
            }
            Err(e) => self.failed.push((node.item.clone(), format!("{e:#}"))),
        }
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    /// Every batch has run or been blocked: record the stage's nodes (saving the
    /// record, so an interrupted run keeps what it finished) and publish.
    fn close(&mut self, blocked: usize, record: &mut Record, store: &Store) -> Result<StageReport> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let name = self.stage.name();
        let entries = record.stages.entry(name.to_string()).or_default();
        let mut changed = false;
        for node in &self.ok_nodes {
            let rec = node_record(node, self.stage.ext());
            if entries.get(&node.item) != Some(&rec) {
                entries.insert(node.item.clone(), rec);
                changed = true;
            }
        }
        // Nodes no longer planned (e.g. a clip removed from the dataset) leave the record.
        let before = entries.len();
        entries.retain(|item, _| self.plan.node(item).is_some());
        changed |= entries.len() != before;
        // Saved after each stage that changed it (a crash keeps what finished),
        // and not at all on a run that changed nothing: it is large.
        if changed {
            record.save(store.root())?;
        }
        let mut sr = StageReport {
            name,
            computed: self.computed,
            fresh: self.plan.nodes.len() - self.plan.stale_count(),
            failed: std::mem::take(&mut self.failed),
            blocked,
            seconds: self.started.map_or(0.0, |t| t.elapsed().as_secs_f64()),
            published: Vec::new(),
        };
        if sr.failed.is_empty() && sr.blocked == 0 {
            self.ok_nodes.sort_by(|a, b| a.item.cmp(&b.item));
            sr.published = self
                .stage
                .publish(&self.ok_nodes, &store.root().join("out"))
                .with_context(|| format!("publishing outputs of `{name}`"))?;
        }
        sr.failed.sort();
        Ok(sr)
    }
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
    let bar = ProgressBar::new(len as u64);
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
