//! Which batch runs next. Stages do not wait for each other: a batch is ready
//! as soon as every upstream node it reads is settled (computed, found fresh
//! after all, failed or skipped), so a clip can be encoded while others are
//! still being decoded and resampled. Among ready batches the latest stage
//! goes first (clips flow through to the end instead of every clip piling up
//! at a stage), then plan order. Batches that name the same exclusive group
//! (one GPU model) run one at a time, and a worker is given other work rather
//! than parked behind one. What a ready batch does with failed inputs
//! (block, or run partially) is the runner's business.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::plan::{NodeId, NodeState, Plan};

/// A batch of stale or pending nodes of one stage (indices into the stage's
/// plan), computed by one `run_batch` call.
pub(super) struct Job {
    pub stage: usize,
    pub nodes: Vec<usize>,
    /// Upstream nodes (distinct) not settled yet.
    waiting: usize,
    group: Option<String>,
    state: JobState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum JobState {
    Waiting,
    Ready,
    Taken,
    Done,
}

type Priority = (Reverse<usize>, usize);

pub(super) struct Schedule {
    jobs: Vec<Job>,
    /// Jobs waiting on each upstream node.
    waiters: HashMap<NodeId, Vec<usize>>,
    /// Ready jobs per exclusive group (`None`: any number at once).
    ready: BTreeMap<Option<String>, BTreeSet<Priority>>,
    busy: HashSet<String>,
    /// Unfinished jobs per stage.
    open: Vec<usize>,
    /// Stages finished since the last [`Schedule::take_closed`].
    closed: Vec<usize>,
}

impl Schedule {
    /// `batches[i]` are stage `i`'s stale and pending nodes grouped into
    /// batches, each with its exclusive group.
    pub fn new(plan: &Plan, batches: Vec<Vec<(Vec<usize>, Option<String>)>>) -> Schedule {
        let mut s = Schedule {
            jobs: Vec::new(),
            waiters: HashMap::new(),
            ready: BTreeMap::new(),
            busy: HashSet::new(),
            open: vec![0; plan.stages.len()],
            closed: Vec::new(),
        };
        for (si, stage_batches) in batches.into_iter().enumerate() {
            for (nodes, group) in stage_batches {
                let id = s.jobs.len();
                let ups: BTreeSet<NodeId> = nodes
                    .iter()
                    .flat_map(|&ni| plan.stages[si].nodes[ni].sources.iter().flatten().copied())
                    .filter(|&up| plan.get(up).state != NodeState::Fresh)
                    .collect();
                for up in &ups {
                    s.waiters.entry(*up).or_default().push(id);
                }
                s.jobs.push(Job {
                    stage: si,
                    nodes,
                    waiting: ups.len(),
                    group,
                    state: JobState::Waiting,
                });
                s.open[si] += 1;
            }
        }
        for si in 0..plan.stages.len() {
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

    pub fn job(&self, id: usize) -> &Job {
        &self.jobs[id]
    }

    /// Stages whose every job has finished, in the order they finished.
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
        self.jobs[prio.1].state = JobState::Taken;
        Some(prio.1)
    }

    /// One upstream node is settled: ready the jobs that waited only on it.
    pub fn settled(&mut self, node: NodeId) {
        for id in self.waiters.remove(&node).unwrap_or_default() {
            self.jobs[id].waiting -= 1;
            if self.jobs[id].waiting == 0 && self.jobs[id].state == JobState::Waiting {
                self.make_ready(id);
            }
        }
    }

    /// A taken job is done (its nodes settled by the caller).
    pub fn finish(&mut self, id: usize) {
        if let Some(g) = &self.jobs[id].group {
            self.busy.remove(g);
        }
        self.close(id);
    }

    /// Every job not taken yet, closed without running (a `--strict` stop):
    /// the caller settles their nodes.
    pub fn abandon(&mut self) -> Vec<usize> {
        let ids: Vec<usize> = (0..self.jobs.len())
            .filter(|&id| matches!(self.jobs[id].state, JobState::Waiting | JobState::Ready))
            .collect();
        for set in self.ready.values_mut() {
            set.clear();
        }
        for &id in &ids {
            self.close(id);
        }
        ids
    }

    /// No job is ready or waiting.
    pub fn is_drained(&self) -> bool {
        self.jobs
            .iter()
            .all(|j| matches!(j.state, JobState::Taken | JobState::Done))
    }

    fn close(&mut self, id: usize) {
        self.jobs[id].state = JobState::Done;
        let stage = self.jobs[id].stage;
        self.open[stage] -= 1;
        if self.open[stage] == 0 {
            self.closed.push(stage);
        }
    }

    fn make_ready(&mut self, id: usize) {
        let job = &mut self.jobs[id];
        job.state = JobState::Ready;
        self.ready
            .entry(job.group.clone())
            .or_default()
            .insert((Reverse(job.stage), id));
    }
}
