//! Running a plan: stale batches on worker threads in the order the
//! [`Schedule`] picks (a clip's later stages start while other clips are still
//! in earlier ones). A node below a re-run one gets its key when its inputs
//! are settled: if an artifact already exists under it, the node is cut off
//! (fresh after all) instead of run. Artifacts are committed atomically,
//! failures collected (never aborting the good clips, unless `--strict`),
//! aggregates declared partial run on the inputs that exist, the record is
//! saved as each stage completes so an interrupted run keeps what it
//! finished, and `data/out` is swapped in as one publication at the end.

use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use super::filehash::FileHasher;
use super::legacy::LazyLegacy;
use super::plan::{
    Force, NodeId, NodeState, Plan, PlanContext, find_artifact, key_of, plan, select_stages,
};
use super::progress::Progress;
use super::publish::{self, Desired};
use super::record::{ConfigId, FailedRecord, NodeRecord, Record};
use super::runlock::RunLock;
use super::schedule::Schedule;
use super::shard::{SHARDS_FILE, Shard};
use super::store::{Artifact, StageIndex};
use super::{Key, Missing, Node, Stage, Store};

#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Stop after this stage (and its ancestors).
    pub until: Option<String>,
    /// Recompute these even if fresh: `STAGE` or `STAGE/ITEM`.
    pub force: Vec<String>,
    /// Plan and explain, run nothing.
    pub dry_run: bool,
    /// Worker threads for per-clip work (default: all cores).
    pub jobs: Option<usize>,
    /// Wait for another run on the same store instead of refusing.
    pub wait: bool,
    /// Stop at the first failure; no aggregate runs on partial inputs.
    pub strict: bool,
    /// The pipeline description this run belongs to (its record, and the
    /// owner of the publication).
    pub config: ConfigId,
    /// Seconds between progress lines; default: bars on a terminal, a line
    /// every 10 s otherwise.
    pub progress_every: Option<f64>,
    /// Run only this shard's per-clip nodes (see [`super::shard`]): no
    /// dataset-level node, no record, no publication.
    pub shard: Option<Shard>,
}

#[derive(Clone, Debug, Default)]
pub struct StageReport {
    pub name: &'static str,
    /// What one node is ("clips", "experiments").
    pub unit: &'static str,
    pub computed: usize,
    /// Fresh when planned.
    pub fresh: usize,
    /// Behind a re-run node whose output came out as before: fresh after all.
    pub cut_off: usize,
    /// (item, error with its context chain)
    pub failed: Vec<(String, String)>,
    /// Not run because an input failed: (item, the failure at the root).
    pub blocked: Vec<(String, String)>,
    /// Not run: after `--until`, or after a `--strict` stop.
    pub skipped: usize,
    /// Partial nodes that ran without some inputs: (item, how many missing).
    pub partial: Vec<(String, usize)>,
    pub seconds: f64,
}

#[derive(Clone, Debug, Default)]
pub struct RunReport {
    pub stages: Vec<StageReport>,
    /// The plan as it was before running (reasons included).
    pub plan: Option<Plan>,
    /// What became of `data/out` (not on a dry run).
    pub publication: Option<publish::Outcome>,
    /// A `--strict` run stopped at its first failure.
    pub stopped: bool,
}

impl RunReport {
    pub fn computed(&self) -> usize {
        self.stages.iter().map(|s| s.computed).sum()
    }
    pub fn cut_off(&self) -> usize {
        self.stages.iter().map(|s| s.cut_off).sum()
    }
    /// Nodes that failed themselves (not the ones blocked behind them).
    pub fn failed(&self) -> usize {
        self.stages.iter().map(|s| s.failed.len()).sum()
    }
    pub fn blocked(&self) -> usize {
        self.stages.iter().map(|s| s.blocked.len()).sum()
    }
    pub fn stage(&self, name: &str) -> Option<&StageReport> {
        self.stages.iter().find(|s| s.name == name)
    }
}

/// Plans and (unless `dry_run`) runs the pipeline on `store`.
pub fn run(stages: &[Box<dyn Stage>], store: &Store, opts: &RunOptions) -> Result<RunReport> {
    run_with(stages, store, opts, &mut |_| {})
}

/// [`run`], calling `on_plan` with the plan before anything runs (the CLI
/// prints each stage's reasons there).
pub fn run_with(
    stages: &[Box<dyn Stage>],
    store: &Store,
    opts: &RunOptions,
    on_plan: &mut dyn FnMut(&Plan),
) -> Result<RunReport> {
    let selected = select_stages(stages, opts.until.as_deref())?;
    let force: Vec<Force> = opts.force.iter().map(|f| Force::parse(f)).collect();
    for f in &force {
        if let Some(i) = stages.iter().position(|s| s.name() == f.stage)
            && !selected[i]
        {
            bail!(
                "--force {}: stage `{}` is not in this run (it comes after --until {})",
                f.text,
                f.stage,
                opts.until.as_deref().unwrap_or("")
            );
        }
    }
    let refs: Vec<&dyn Stage> = stages.iter().map(|s| s.as_ref()).collect();
    let _lock = match (opts.dry_run, opts.shard) {
        (true, _) => None,
        (false, None) => Some(RunLock::acquire(store.root(), opts.wait)?),
        (false, Some(_)) => Some(RunLock::acquire_shared(store.root(), opts.wait)?),
    };
    if !opts.dry_run {
        match opts.shard {
            // Other shards may be writing temporaries here.
            Some(shard) => shard.claim(store)?,
            None => {
                store.remove_temporaries()?;
            }
        }
    }
    let hasher = FileHasher::open(store.root().join("cache").join("file-hashes.json"));
    let record = Record::load(store.root(), &opts.config)?;
    let legacy = LazyLegacy::new(store.root());
    let cx = PlanContext {
        store,
        hasher: &hasher,
        record: &record,
        legacy: &legacy,
        force: &force,
    };
    let (planned, mut indexes) = plan(&refs, &selected, &cx)?;
    hasher.save()?;
    on_plan(&planned);
    if opts.dry_run {
        return Ok(RunReport {
            plan: Some(planned),
            ..Default::default()
        });
    }
    for (si, sp) in planned.stages.iter().enumerate() {
        for pn in sp.nodes.iter().filter(|n| n.adopt.is_some()) {
            let old = pn.adopt.as_ref().expect("filtered");
            let n = &pn.node;
            store.adopt(old, n.stage, &n.key, &n.hash, refs[si].ext())?;
            indexes[si].insert(n.key, n.hash);
        }
    }
    let mut runner = Runner::new(&refs, &planned, store, indexes, record, opts, selected);
    runner.execute()?;
    // A shard publishes nothing: the finishing run does, once every shard is done.
    let publication = match opts.shard {
        Some(_) => None,
        None => Some(publish_and_close(&refs, &planned, &runner, store, opts)?),
    };
    let stopped = runner.stopped;
    let stages = runner.reports;
    Ok(RunReport {
        stages,
        plan: Some(planned),
        publication,
        stopped,
    })
}

/// Swaps in the publication of a plain run (fetching from a remote store
/// what it is built from), and closes a sharded run when this one completed it.
fn publish_and_close(
    stages: &[&dyn Stage],
    planned: &Plan,
    runner: &Runner,
    store: &Store,
    opts: &RunOptions,
) -> Result<publish::Outcome> {
    let desired = desired(
        stages,
        planned,
        |si, ni| runner.ok_node((si, ni)),
        &runner.left_out(),
    )?;
    let pins = store
        .fetch(desired.files.iter().map(|(_, p)| p.from.clone()))
        .context("fetching the artifacts data/out is published from")?;
    let publication =
        publish::publish(store.root(), &desired, &opts.config).context("publishing data/out")?;
    drop(pins);
    let failed = runner
        .reports
        .iter()
        .any(|s| !s.failed.is_empty() || !s.blocked.is_empty());
    if opts.until.is_none() && !failed && !runner.stopped {
        // A complete plain run closes a sharded one: the next may pick another N.
        store.delete_meta(SHARDS_FILE)?;
    }
    Ok(publication)
}

/// What the publication holds: the files of every stage whose nodes are all
/// fresh (`ok` gives a node when it is), and `left_out` for the others.
pub(super) fn desired<'n>(
    stages: &[&dyn Stage],
    plan: &Plan,
    ok: impl Fn(usize, usize) -> Option<&'n Node>,
    left_out: &BTreeMap<String, String>,
) -> Result<Desired> {
    let mut d = Desired::default();
    for (si, stage) in stages.iter().enumerate() {
        if let Some(why) = left_out.get(stage.name()) {
            // Named only if the stage publishes at all: ask with every planned
            // node (publish only names files; nothing is read).
            let all: Vec<&Node> = plan.stages[si].nodes.iter().map(|n| &n.node).collect();
            if !stage.publish(&all).unwrap_or_default().is_empty() {
                d.left_out.insert(stage.name().to_string(), why.clone());
            }
            continue;
        }
        let mut nodes: Vec<&Node> = (0..plan.stages[si].nodes.len())
            .filter_map(|ni| ok(si, ni))
            .collect();
        nodes.sort_by(|a, b| a.item.cmp(&b.item));
        for p in stage
            .publish(&nodes)
            .with_context(|| format!("publishing outputs of `{}`", stage.name()))?
        {
            d.files.push((stage.name().to_string(), p));
        }
    }
    Ok(d)
}

/// What `data/out` would hold if published from `plan` now (fresh stages
/// only), for `pipe status`.
pub fn desired_from_plan(stages: &[Box<dyn Stage>], plan: &Plan) -> Result<Desired> {
    let refs: Vec<&dyn Stage> = stages.iter().map(|s| s.as_ref()).collect();
    let left_out: BTreeMap<String, String> = plan
        .stages
        .iter()
        .filter(|s| s.nodes.iter().any(|n| n.is_stale()))
        .map(|s| {
            let n = s.nodes.iter().filter(|n| n.is_stale()).count();
            (s.name.to_string(), format!("{n} stale"))
        })
        .collect();
    desired(
        &refs,
        plan,
        |si, ni| plan.stages[si].nodes.get(ni).map(|n| &n.node),
        &left_out,
    )
}

/// A node failure: the node that failed (its own error), carried down to
/// the nodes it blocks and the partial aggregates it leaves out.
#[derive(Debug)]
struct Failure {
    stage: &'static str,
    item: String,
    reason: String,
    key: Option<Key>,
}

enum Slot {
    Waiting,
    Fresh,
    Done(Box<Node>),
    /// The failure, and whether it is this node's own (not an upstream's).
    Failed(Arc<Failure>, bool),
    Skipped(Arc<str>),
}

enum Decision {
    Run(Box<Node>),
    Settle(Slot),
}

/// A batch handed to a worker.
struct Work<'a> {
    id: usize,
    stage: &'a dyn Stage,
    nodes: Arc<Vec<Node>>,
}

struct Runner<'a> {
    stages: &'a [&'a dyn Stage],
    plan: &'a Plan,
    store: &'a Store,
    indexes: Vec<StageIndex>,
    slots: Vec<Vec<Slot>>,
    record: Record,
    opts: &'a RunOptions,
    selected: Vec<bool>,
    reports: Vec<StageReport>,
    started: Vec<Option<Instant>>,
    progress: Progress,
    stopped: bool,
}

impl<'a> Runner<'a> {
    fn new(
        stages: &'a [&'a dyn Stage],
        plan: &'a Plan,
        store: &'a Store,
        indexes: Vec<StageIndex>,
        record: Record,
        opts: &'a RunOptions,
        selected: Vec<bool>,
    ) -> Runner<'a> {
        let slots = plan
            .stages
            .iter()
            .map(|sp| {
                sp.nodes
                    .iter()
                    .map(|n| match n.state {
                        NodeState::Fresh => Slot::Fresh,
                        _ => Slot::Waiting,
                    })
                    .collect()
            })
            .collect();
        let reports = plan
            .stages
            .iter()
            .map(|sp| StageReport {
                name: sp.name,
                unit: sp.unit,
                fresh: sp.nodes.len() - sp.stale_count() - sp.pending_count(),
                ..Default::default()
            })
            .collect();
        let progress = Progress::new(
            plan.stages
                .iter()
                .zip(&selected)
                .map(|(sp, &sel)| {
                    let todo = if sel {
                        sp.stale_count() + sp.pending_count()
                    } else {
                        0
                    };
                    (sp.name, sp.unit, todo as u64)
                })
                .collect(),
            opts.progress_every,
        );
        Runner {
            stages,
            plan,
            store,
            indexes,
            slots,
            record,
            opts,
            selected,
            reports,
            started: vec![None; stages.len()],
            progress,
            stopped: false,
        }
    }

    /// The node at `id` if it is fresh or was computed (or cut off) in this run.
    fn ok_node(&self, id: NodeId) -> Option<&Node> {
        match self.slots.get(id.0)?.get(id.1)? {
            Slot::Fresh => Some(&self.plan.get(id).node),
            Slot::Done(n) => Some(n),
            _ => None,
        }
    }

    /// Stages that cannot be published whole, and why.
    fn left_out(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (si, r) in self.reports.iter().enumerate() {
            if self.slots[si]
                .iter()
                .all(|s| matches!(s, Slot::Fresh | Slot::Done(_)))
            {
                continue;
            }
            let mut why = Vec::new();
            if !r.failed.is_empty() {
                why.push(format!("{} failed", r.failed.len()));
            }
            if !r.blocked.is_empty() {
                why.push(format!("{} blocked by failed inputs", r.blocked.len()));
            }
            if r.skipped > 0 {
                why.push(if self.stopped {
                    format!("{} not run (--strict stopped the run)", r.skipped)
                } else {
                    format!(
                        "{} not run (--until {})",
                        r.skipped,
                        self.opts.until.as_deref().unwrap_or("")
                    )
                });
            }
            out.insert(r.name.to_string(), why.join(", "));
        }
        out
    }

    /// Runs every job of the schedule to completion.
    fn execute(&mut self) -> Result<()> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.opts.jobs.unwrap_or(0))
            .build()
            .context("starting worker threads")?;
        let batches = self.batches();
        let mut schedule = Schedule::new(self.plan, batches);
        let width = pool.current_num_threads().max(1);
        let store = self.store;
        let (job_tx, job_rx) = mpsc::channel::<Work>();
        let (done_tx, done_rx) = mpsc::channel::<(usize, Vec<Result<Artifact>>)>();
        let job_rx = Mutex::new(job_rx);
        let mut in_flight: HashMap<usize, (Vec<usize>, Arc<Vec<Node>>)> = HashMap::new();
        std::thread::scope(|scope| -> Result<()> {
            for _ in 0..width {
                let (job_rx, done_tx, pool) = (&job_rx, done_tx.clone(), &pool);
                scope.spawn(move || worker(job_rx, done_tx, pool, store));
            }
            drop(done_tx);
            // Dropped on every way out of this closure, which lets the workers finish.
            let job_tx = job_tx;
            let mut abandoned = false;
            loop {
                for si in schedule.take_closed() {
                    self.close(si)?;
                }
                if self.stopped && !abandoned {
                    abandoned = true;
                    for id in schedule.abandon() {
                        let (si, nodes) = {
                            let job = schedule.job(id);
                            (job.stage, job.nodes.clone())
                        };
                        for ni in nodes {
                            let why: Arc<str> =
                                "not run: --strict stopped at the first failure".into();
                            self.settle(&mut schedule, (si, ni), Slot::Skipped(why));
                        }
                    }
                    continue;
                }
                while in_flight.len() < width && !self.stopped {
                    let Some(id) = schedule.next() else { break };
                    let (si, nodes) = {
                        let job = schedule.job(id);
                        (job.stage, job.nodes.clone())
                    };
                    let mut run: Vec<(usize, Node)> = Vec::new();
                    for ni in nodes {
                        match self.resolve((si, ni)) {
                            Decision::Run(node) => run.push((ni, *node)),
                            Decision::Settle(slot) => {
                                if matches!(slot, Slot::Done(_)) {
                                    self.reports[si].cut_off += 1;
                                }
                                self.settle(&mut schedule, (si, ni), slot)
                            }
                        }
                    }
                    if run.is_empty() {
                        schedule.finish(id);
                        continue;
                    }
                    if self.started[si].is_none() {
                        self.started[si] = Some(Instant::now());
                    }
                    self.progress.start(si);
                    let (ids, nodes): (Vec<usize>, Vec<Node>) = run.into_iter().unzip();
                    let nodes = Arc::new(nodes);
                    in_flight.insert(id, (ids, nodes.clone()));
                    let work = Work {
                        id,
                        stage: self.stages[si],
                        nodes,
                    };
                    job_tx
                        .send(work)
                        .map_err(|_| anyhow::anyhow!("the worker threads stopped"))?;
                }
                if in_flight.is_empty() {
                    if self.stopped && !abandoned {
                        continue;
                    }
                    debug_assert!(schedule.is_drained(), "jobs left waiting on nothing");
                    for si in schedule.take_closed() {
                        self.close(si)?;
                    }
                    return Ok(());
                }
                let (id, results) = match done_rx.recv_timeout(self.progress.wait()) {
                    Ok(r) => r,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.progress.tick();
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        bail!("the worker threads stopped")
                    }
                };
                let (ids, nodes) = in_flight.remove(&id).expect("a job in flight");
                let si = schedule.job(id).stage;
                for ((ni, node), result) in ids.into_iter().zip(nodes.iter()).zip(results) {
                    let slot = match result {
                        Ok(artifact) => {
                            self.indexes[si].insert(artifact.key, artifact.hash);
                            let mut node = node.clone();
                            node.hash = artifact.hash;
                            node.path = artifact.path;
                            self.reports[si].computed += 1;
                            Slot::Done(Box::new(node))
                        }
                        Err(e) => {
                            if self.opts.strict {
                                self.stopped = true;
                            }
                            Slot::Failed(
                                Arc::new(Failure {
                                    stage: node.stage,
                                    item: node.item.clone(),
                                    reason: format!("{e:#}"),
                                    key: Some(node.key),
                                }),
                                true,
                            )
                        }
                    };
                    self.settle(&mut schedule, (si, ni), slot);
                }
                schedule.finish(id);
                self.progress.tick();
            }
        })
    }

    /// Stale and pending nodes grouped into batches per stage (by the stage's
    /// batch key, in plan order), each with its exclusive group.
    fn batches(&self) -> Vec<Vec<(Vec<usize>, Option<String>)>> {
        self.stages
            .iter()
            .zip(&self.plan.stages)
            .zip(&self.selected)
            .map(|((stage, sp), &selected)| {
                let mut batches: Vec<Vec<usize>> = Vec::new();
                let mut by_key: HashMap<String, usize> = HashMap::new();
                for (ni, n) in sp.nodes.iter().enumerate().filter(|(_, n)| n.is_stale()) {
                    let key = if selected {
                        stage.batch_key(&n.node)
                    } else {
                        None
                    };
                    match key {
                        Some(k) => match by_key.get(&k) {
                            Some(&i) => batches[i].push(ni),
                            None => {
                                by_key.insert(k, batches.len());
                                batches.push(vec![ni]);
                            }
                        },
                        None => batches.push(vec![ni]),
                    }
                }
                batches
                    .into_iter()
                    .map(|b| {
                        let group = if selected {
                            stage.exclusive(&sp.nodes[b[0]].node)
                        } else {
                            None
                        };
                        (b, group)
                    })
                    .collect()
            })
            .collect()
    }

    /// A node whose upstream nodes are all settled: fill in their hashes,
    /// decide on failed inputs, key it, and cut it off if its artifact exists.
    fn resolve(&self, id: NodeId) -> Decision {
        let pn = self.plan.get(id);
        let mut node = pn.node.clone();
        let mut keep = vec![true; node.inputs.len()];
        for (k, src) in pn.sources.iter().enumerate() {
            let Some(up) = *src else { continue };
            let input = &mut node.inputs[k];
            match &self.slots[up.0][up.1] {
                Slot::Fresh | Slot::Done(_) => {
                    let n = self.ok_node(up).expect("settled ok");
                    input.hash = n.hash;
                    input.path = n.path.clone();
                }
                Slot::Failed(f, _) if pn.partial && !self.opts.strict => {
                    node.missing.push(Missing {
                        name: input.name.clone(),
                        stage: f.stage,
                        item: f.item.clone(),
                        reason: f.reason.clone(),
                    });
                    keep[k] = false;
                }
                Slot::Failed(f, _) => return Decision::Settle(Slot::Failed(f.clone(), false)),
                Slot::Skipped(why) => return Decision::Settle(Slot::Skipped(why.clone())),
                Slot::Waiting => unreachable!("a node runs only once its inputs are settled"),
            }
        }
        if !node.missing.is_empty() {
            // A partial node runs even with no input left: it lists what failed.
            let mut k = keep.iter();
            node.inputs
                .retain(|_| *k.next().expect("one flag per input"));
        }
        node.key = match key_of(&node) {
            Ok(k) => k,
            Err(e) => {
                return Decision::Settle(Slot::Failed(
                    Arc::new(Failure {
                        stage: node.stage,
                        item: node.item.clone(),
                        reason: format!("{e:#}"),
                        key: None,
                    }),
                    true,
                ));
            }
        };
        if !pn.forced
            && let Some((hash, path)) = find_artifact(
                self.store,
                &self.indexes[id.0],
                &self.record,
                &node,
                self.stages[id.0].ext(),
            )
        {
            node.hash = hash;
            node.path = path;
            return Decision::Settle(Slot::Done(Box::new(node)));
        }
        if !self.selected[id.0] {
            let why = format!(
                "not run (--until {})",
                self.opts.until.as_deref().unwrap_or("")
            );
            return Decision::Settle(Slot::Skipped(why.into()));
        }
        if let Some(shard) = self.opts.shard {
            let why = match &pn.shard_by {
                Some(clip) if shard.owns(clip) => None,
                Some(_) => Some("not run: another shard's clip"),
                None => Some("not run: dataset-level, left to the finishing `pipe run`"),
            };
            if let Some(why) = why {
                return Decision::Settle(Slot::Skipped(why.into()));
            }
        }
        Decision::Run(Box::new(node))
    }

    /// Settles a node: its outcome, the stage's counts, and the jobs waiting on it.
    fn settle(&mut self, schedule: &mut Schedule, id: NodeId, slot: Slot) {
        let (si, ni) = id;
        let r = &mut self.reports[si];
        let item = &self.plan.stages[si].nodes[ni].node.item;
        match &slot {
            Slot::Done(n) if !n.missing.is_empty() => {
                r.partial.push((item.clone(), n.missing.len()));
            }
            _ => {}
        }
        match &slot {
            // Computed nodes were counted when their result came in, cut-off ones on resolving.
            Slot::Done(_) => {}
            Slot::Failed(f, true) => r.failed.push((item.clone(), f.reason.clone())),
            Slot::Failed(f, false) => r.blocked.push((
                item.clone(),
                format!("{} {}: {}", f.stage, f.item, f.reason),
            )),
            Slot::Skipped(_) => r.skipped += 1,
            Slot::Waiting | Slot::Fresh => {}
        }
        if self.selected[si] {
            self.progress.inc(si, 1);
        }
        self.slots[si][ni] = slot;
        schedule.settled(id);
    }

    /// Every job of stage `si` is done: record its nodes (saving the record,
    /// so an interrupted run keeps what it finished).
    fn close(&mut self, si: usize) -> Result<()> {
        self.progress.finish(si);
        let stage = self.stages[si];
        let sp = &self.plan.stages[si];
        let name = sp.name;
        let mut changed = false;
        for (ni, slot) in self.slots[si].iter().enumerate() {
            let node = match slot {
                Slot::Fresh => &sp.nodes[ni].node,
                Slot::Done(n) => n.as_ref(),
                Slot::Failed(f, true) => {
                    changed |= self.record.set_failed(
                        name,
                        &sp.nodes[ni].node.item,
                        FailedRecord {
                            key: f.key,
                            reason: f.reason.clone(),
                        },
                    );
                    continue;
                }
                _ => continue,
            };
            if self
                .record
                .node(name, &node.item)
                .is_some_and(|r| r.key == node.key && r.hash == node.hash)
                && self.record.failure(name, &node.item).is_none()
            {
                continue;
            }
            changed |= self
                .record
                .set(name, &node.item, node_record(node, stage.ext()));
        }
        changed |= self.record.retain(name, |item| sp.node(item).is_some());
        // Saved after each stage that changed it (a crash keeps what finished),
        // and not at all on a run that changed nothing: it is large. Shards
        // keep none: the finishing run records the whole run.
        if changed && self.opts.shard.is_none() {
            self.record.save(self.store.root(), &self.opts.config)?;
        }
        let r = &mut self.reports[si];
        r.seconds = self.started[si].map_or(0.0, |t| t.elapsed().as_secs_f64());
        r.failed.sort();
        r.blocked.sort();
        Ok(())
    }
}

/// Runs batches until the sender is dropped; each batch inside the rayon pool
/// (so the stages' own parallel loops share its threads), a panic failing only
/// that batch's nodes.
fn worker(
    jobs: &Mutex<mpsc::Receiver<Work>>,
    done: mpsc::Sender<(usize, Vec<Result<Artifact>>)>,
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

/// Runs one batch into temporary files and commits each node that succeeded.
fn run_batch(stage: &dyn Stage, store: &Store, batch: &[Node]) -> Vec<Result<Artifact>> {
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
    // With a remote store, inputs another machine computed arrive here.
    let inputs = batch
        .iter()
        .flat_map(|n| n.inputs.iter().filter(|i| i.stage.is_some()))
        .map(|i| i.path.clone());
    let _pins = match store.fetch(inputs) {
        Ok(p) => p,
        Err(e) => {
            return batch
                .iter()
                .map(|_| Err(anyhow::anyhow!("fetching inputs: {e:#}")))
                .collect();
        }
    };
    let refs: Vec<&Node> = batch.iter().collect();
    let mut results = if batch.len() == 1 {
        vec![stage.run(refs[0], &temps[0])]
    } else {
        stage.run_batch(&refs, &temps)
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
    // A commit that fails after the stage succeeded (the store is down) fails
    // the rest of the batch at once instead of each waiting out its retries.
    let mut commit_failed: Option<String> = None;
    batch
        .iter()
        .zip(temps)
        .zip(results)
        .map(|((node, tmp), r)| {
            if let (Some(why), Ok(())) = (&commit_failed, &r) {
                let _ = std::fs::remove_file(&tmp);
                bail!("not committed: an earlier commit of its batch failed: {why}");
            }
            let ran = r.is_ok();
            let committed = store.finish(node.stage, &node.key, ext, &tmp, r);
            if let (true, Err(e)) = (ran, &committed) {
                commit_failed = Some(format!("{e:#}"));
            }
            committed
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
            .map(|i| (i.name.clone(), i.hash))
            .collect(),
        missing: node
            .missing
            .iter()
            .map(|m| {
                (
                    m.name.clone(),
                    format!("{} {}: {}", m.stage, m.item, m.reason),
                )
            })
            .collect(),
        file: super::store::artifact_name(&node.key, &node.hash, ext),
        hash: node.hash,
    }
}
