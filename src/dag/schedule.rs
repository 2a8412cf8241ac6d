//! Which batch runs next. Stages do not wait for each other: a batch is ready
//! as soon as every artifact it reads exists, so a clip can be encoded while
//! others are still being decoded and resampled. Among ready batches the
//! latest stage goes first (clips flow through to the end instead of every clip
//! piling up at a stage), then plan order. Batches that name the same exclusive
//! group (one GPU model) run one at a time, and a worker is given other work
//! rather than parked behind one. A node whose input failed is blocked, and so
//! is everything downstream of it; its siblings run.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::{Key, Node, Plan, Stage};

/// A batch of stale nodes of one stage, computed by one `run_batch` call.
pub(super) struct Job<'p> {
    pub stage: usize,
    pub nodes: Vec<&'p Node>,
    /// Input keys (distinct) still to be produced in this run.
    waiting: usize,
    group: Option<String>,
}

type Priority = (Reverse<usize>, usize);

pub(super) struct Schedule<'p> {
    jobs: Vec<Job<'p>>,
    /// Stale producers not yet finished, per key they produce.
    producing: HashMap<Key, usize>,
    /// Jobs waiting on each key still being produced.
    waiters: HashMap<Key, Vec<usize>>,
    failed: HashSet<Key>,
    /// Ready jobs per exclusive group (`None`: any number at once).
    ready: BTreeMap<Option<String>, BTreeSet<Priority>>,
    busy: HashSet<String>,
    /// Unresolved jobs per stage.
    open: Vec<usize>,
    /// Nodes not run because an input failed, per stage.
    blocked: Vec<usize>,
    /// Stages resolved since the last [`Schedule::take_closed`].
    closed: Vec<usize>,
}

impl<'p> Schedule<'p> {
    /// `stages` and `plan.stages` in the same (pipeline) order; `batches[i]` are
    /// stage `i`'s stale nodes grouped into batches.
    pub fn new(stages: &[&dyn Stage], plan: &'p Plan, batches: Vec<Vec<Vec<&'p Node>>>) -> Self {
        let mut producing: HashMap<Key, usize> = HashMap::new();
        for sp in &plan.stages {
            for n in sp.nodes.iter().filter(|n| n.is_stale()) {
                *producing.entry(n.node.key).or_default() += 1;
            }
        }
        let mut s = Schedule {
            jobs: Vec::new(),
            producing,
            waiters: HashMap::new(),
            failed: HashSet::new(),
            ready: BTreeMap::new(),
            busy: HashSet::new(),
            open: vec![0; stages.len()],
            blocked: vec![0; stages.len()],
            closed: Vec::new(),
        };
        for (si, stage_batches) in batches.into_iter().enumerate() {
            for nodes in stage_batches {
                let id = s.jobs.len();
                let inputs: BTreeSet<Key> = nodes
                    .iter()
                    .flat_map(|n| n.inputs.iter().map(|i| i.key))
                    .filter(|k| s.producing.contains_key(k))
                    .collect();
                for k in &inputs {
                    s.waiters.entry(*k).or_default().push(id);
                }
                let group = stages[si].exclusive(nodes[0]);
                s.jobs.push(Job {
                    stage: si,
                    nodes,
                    waiting: inputs.len(),
                    group,
                });
                s.open[si] += 1;
            }
        }
        for si in 0..stages.len() {
            if s.open[si] == 0 {
                s.closed.push(si);
            }
        }
        for id in 0..s.jobs.len() {
            if s.jobs[id].waiting == 0 {
                s.make_ready(id);
            }
        }
        s
    }

    pub fn job(&self, id: usize) -> &Job<'p> {
        &self.jobs[id]
    }

    pub fn blocked(&self, stage: usize) -> usize {
        self.blocked[stage]
    }

    /// Stages whose every job has run or been blocked, in the order they closed.
    pub fn take_closed(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.closed)
    }

    /// The best ready job whose group is free (the group is then busy until
    /// [`Schedule::finish`]).
    pub fn next(&mut self) -> Option<usize> {
        let (group, prio) = self
            .ready
            .iter()
            .filter(|(g, set)| !set.is_empty() && g.as_ref().is_none_or(|g| !self.busy.contains(g)))
            .map(|(g, set)| (g.clone(), *set.first().expect("non-empty")))
            .min_by_key(|(_, p)| *p)?;
        self.ready.get_mut(&group).expect("listed").remove(&prio);
        if let Some(g) = group {
            self.busy.insert(g);
        }
        Some(prio.1)
    }

    /// Records a job's outcome, one flag per node (`true`: its artifact was
    /// committed), and readies what waited on it.
    pub fn finish(&mut self, id: usize, ok: &[bool]) {
        if let Some(g) = &self.jobs[id].group {
            self.busy.remove(g);
        }
        let keys: Vec<(Key, bool)> = self.jobs[id]
            .nodes
            .iter()
            .zip(ok)
            .map(|(n, &ok)| (n.key, ok))
            .collect();
        for (key, ok) in keys {
            self.produced(key, ok);
        }
        self.close_job(id);
    }

    fn close_job(&mut self, id: usize) {
        let stage = self.jobs[id].stage;
        self.open[stage] -= 1;
        if self.open[stage] == 0 {
            self.closed.push(stage);
        }
    }

    /// One producer of `key` is done (or failed, or was blocked).
    fn produced(&mut self, key: Key, ok: bool) {
        if !ok {
            self.failed.insert(key);
        }
        let left = self
            .producing
            .get_mut(&key)
            .expect("only planned stale nodes produce");
        *left -= 1;
        if *left > 0 {
            return;
        }
        for id in self.waiters.remove(&key).unwrap_or_default() {
            self.jobs[id].waiting -= 1;
            if self.jobs[id].waiting == 0 {
                self.make_ready(id);
            }
        }
    }

    /// Every input of the job exists or failed: block the nodes with a failed
    /// input and queue the rest (or close the job when none is left).
    fn make_ready(&mut self, id: usize) {
        let failed = &self.failed;
        let (blocked, runnable): (Vec<&Node>, Vec<&Node>) = self.jobs[id]
            .nodes
            .iter()
            .partition(|n| n.inputs.iter().any(|i| failed.contains(&i.key)));
        self.jobs[id].nodes = runnable;
        self.blocked[self.jobs[id].stage] += blocked.len();
        if self.jobs[id].nodes.is_empty() {
            self.close_job(id);
        } else {
            let job = &self.jobs[id];
            self.ready
                .entry(job.group.clone())
                .or_default()
                .insert((Reverse(job.stage), id));
        }
        for n in blocked {
            self.produced(n.key, false);
        }
    }
}
