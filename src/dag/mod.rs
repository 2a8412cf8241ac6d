//! The staged, content-hashed DAG engine. It knows keys, artifacts, planning
//! and running; it knows nothing of audio (must not import `audio`, `encoder`,
//! `features`, `stages` or any other domain module).
//!
//! A [`Stage`] is declared once as a [`StageDecl`] (name, code version,
//! artifact extension, the stages it reads — like a `dvc.yaml` entry) and
//! plans its nodes (one per clip, or one for the whole dataset) as
//! [`NodeSpec`]s: params for the key, inputs, and the stage's own typed plan
//! of the node ([`NodeSpec::with_plan`], read back by [`Node::plan`]).
//!
//! A node's key is `blake3(stage, version, params, the content hashes of its
//! inputs)`: input files by their bytes, upstream artifacts by the content
//! hash recorded when they were written (never the upstream node's key). An
//! upstream re-run that writes the same bytes therefore leaves everything
//! below it fresh (early cutoff). Artifacts are named `<key>.<hash>.<ext>`
//! ([`store`]), so one directory listing per stage says which keys exist and
//! what each artifact's bytes hash to. Keys below a stale node are only known
//! once it has run: the plan calls those nodes "may be stale" and the runner
//! resolves them as their inputs appear.

mod cache;
mod exec;
pub mod filehash;
pub mod gc;
pub mod key;
mod legacy;
mod plan;
mod progress;
pub mod publish;
pub mod reason;
pub mod record;
pub mod remote;
pub mod runlock;
mod schedule;
pub mod shard;
pub mod store;
pub mod verify;

pub use exec::{RunOptions, RunReport, StageReport, desired_from_plan, run, run_with};
pub use key::Key;
pub use plan::{NodeState, Plan, PlannedNode, StagePlan, select_stages};
pub use progress::rate as progress_rate;
pub use publish::Publish;
pub use record::ConfigId;
pub use remote::Remote;
pub use shard::Shard;
pub use store::Store;

use anyhow::{Result, anyhow};
use std::any::Any;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A stage, declared once: what it is called, its code version, what its
/// artifacts are and which stages it reads. Stages name each other by these
/// declarations (`&DECODE`), never by string, so a typo is a compile error.
#[derive(Debug)]
pub struct StageDecl {
    pub name: &'static str,
    /// Bump when the stage's code changes its output: every node re-keys.
    pub version: u32,
    /// File extension of the artifacts.
    pub ext: &'static str,
    /// Stages whose artifacts this stage may read (they must come earlier in
    /// a pipeline that has them).
    pub reads: &'static [&'static StageDecl],
    /// What one node is, plural, for progress lines ("clips", "experiments").
    pub unit: &'static str,
}

impl StageDecl {
    pub const fn new(
        name: &'static str,
        version: u32,
        ext: &'static str,
        reads: &'static [&'static StageDecl],
    ) -> StageDecl {
        StageDecl {
            name,
            version,
            ext,
            reads,
            unit: "nodes",
        }
    }

    /// Names what one node is, plural (progress bars and lines say "12/40 clips").
    pub const fn per(mut self, unit: &'static str) -> StageDecl {
        self.unit = unit;
        self
    }
}

/// Where a node input comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A file outside the store, keyed by its content.
    File(PathBuf),
    /// The artifact of another stage's node.
    Node {
        stage: &'static StageDecl,
        item: String,
    },
}

impl Source {
    pub fn node(stage: &'static StageDecl, item: impl Into<String>) -> Source {
        Source::Node {
            stage,
            item: item.into(),
        }
    }
}

/// A stage's own typed plan of one node, carried from [`Stage::plan`] to
/// [`Stage::run`] so a stage never parses its params or item back.
#[derive(Clone)]
pub struct NodePlan(Arc<dyn Any + Send + Sync>);

impl fmt::Debug for NodePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodePlan(..)")
    }
}

/// What a stage declares for one of its nodes.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Clip id for per-clip stages; a fixed name (e.g. `all`) otherwise.
    pub item: String,
    /// Everything besides inputs that determines the output's bytes (never a
    /// name or a description). Serialized canonically (sorted keys) into the
    /// key; never read back by the stage.
    pub params: serde_json::Value,
    pub inputs: Vec<(String, Source)>,
    pub plan: Option<NodePlan>,
    /// An aggregate that runs on the inputs that exist when some upstream
    /// nodes failed (see [`NodeSpec::partial`]).
    pub partial: bool,
    /// Per-clip work: the clip that decides which shard runs it (see
    /// [`shard`]); `None` for a dataset-level node, which sharded runs leave
    /// to the finishing run.
    pub shard_by: Option<String>,
}

impl NodeSpec {
    pub fn new(
        item: impl Into<String>,
        params: serde_json::Value,
        inputs: Vec<(String, Source)>,
    ) -> NodeSpec {
        NodeSpec {
            item: item.into(),
            params,
            inputs,
            plan: None,
            partial: false,
            shard_by: None,
        }
    }

    /// Per-clip work on `clip` (see [`NodeSpec::shard_by`]).
    pub fn per_clip(mut self, clip: impl Into<String>) -> NodeSpec {
        self.shard_by = Some(clip.into());
        self
    }

    /// Attach the stage's typed plan of this node (see [`Node::plan`]).
    pub fn with_plan<T: Any + Send + Sync>(mut self, plan: T) -> NodeSpec {
        self.plan = Some(NodePlan(Arc::new(plan)));
        self
    }

    /// An aggregate (a table over clips) that accepts partial inputs: when
    /// some upstream nodes fail, it runs on the others (even none) and sees
    /// the failed ones in [`Node::missing`]; its key covers exactly what it
    /// read (the present inputs' hashes and the missing ones' names and
    /// reasons). Not in a `--strict` run: there a failed input blocks it.
    pub fn partial(mut self) -> NodeSpec {
        self.partial = true;
        self
    }
}

/// A resolved input: its content hash and where to read it.
#[derive(Clone, Debug)]
pub struct Input {
    pub name: String,
    /// blake3 of the input's bytes (an outside file's, or the upstream
    /// artifact's as recorded when it was written).
    pub hash: Key,
    pub path: PathBuf,
    /// The producing stage, or `None` for an outside file.
    pub stage: Option<&'static StageDecl>,
}

/// An input of a partial node that is absent because an upstream node
/// failed: the input and the failure at its root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    /// The input's name in the node spec.
    pub name: String,
    /// The stage and item that failed (the input's producer, or further up).
    pub stage: &'static str,
    pub item: String,
    /// That node's error, with its context chain.
    pub reason: String,
}

/// A planned node. Its key, artifact path and hash are known once its
/// inputs are (always so inside [`Stage::run`] and [`Stage::publish`]).
#[derive(Clone, Debug)]
pub struct Node {
    pub stage: &'static str,
    pub item: String,
    pub version: u32,
    pub params: serde_json::Value,
    /// The inputs present (for a partial node: those that did not fail).
    pub inputs: Vec<Input>,
    /// A partial node's inputs whose upstream failed.
    pub missing: Vec<Missing>,
    pub key: Key,
    /// The artifact (`<key>.<hash>.<ext>`) once it exists; empty before.
    pub path: PathBuf,
    /// blake3 of the artifact's bytes once it exists.
    pub hash: Key,
    plan: Option<NodePlan>,
}

impl Node {
    /// The typed plan the stage attached to this node's spec.
    pub fn plan<T: Any + Send + Sync>(&self) -> Result<&T> {
        self.plan
            .as_ref()
            .and_then(|p| p.0.downcast_ref::<T>())
            .ok_or_else(|| {
                anyhow!(
                    "{} node `{}` has no plan of type {}",
                    self.stage,
                    self.item,
                    std::any::type_name::<T>()
                )
            })
    }

    pub fn input(&self, name: &str) -> Result<&Input> {
        self.inputs.iter().find(|i| i.name == name).ok_or_else(|| {
            anyhow!(
                "{} node `{}` has no input named `{name}`",
                self.stage,
                self.item
            )
        })
    }

    /// The input called `name`, or `None` when it is absent (a partial
    /// node's failed input).
    pub fn present(&self, name: &str) -> Option<&Input> {
        self.inputs.iter().find(|i| i.name == name)
    }
}

/// One step of the pipeline.
pub trait Stage: Send + Sync {
    /// The stage's declaration (see [`StageDecl`]).
    fn decl(&self) -> &'static StageDecl;
    fn name(&self) -> &'static str {
        self.decl().name
    }
    fn version(&self) -> u32 {
        self.decl().version
    }
    fn ext(&self) -> &'static str {
        self.decl().ext
    }
    /// One line for `pipe dag`.
    fn describe(&self) -> String;
    /// The nodes to materialize.
    fn plan(&self) -> Result<Vec<NodeSpec>>;
    /// Computes one node, writing its artifact to `out` (a temporary path
    /// that the engine hashes and renames into the store on success).
    fn run(&self, node: &Node, out: &Path) -> Result<()>;
    /// Nodes with the same batch key are computed together by one
    /// [`Stage::run_batch`] call: e.g. every stale feature set of one clip
    /// from a single encoder pass, while each keeps its own key.
    fn batch_key(&self, _node: &Node) -> Option<String> {
        None
    }
    /// Batches naming the same group run one at a time (one clip at a time on a
    /// GPU): the engine gives other work to the worker instead of letting it
    /// wait for the device. Asked once per stale batch, of its first node.
    fn exclusive(&self, _node: &Node) -> Option<String> {
        None
    }
    /// Computes several nodes at once; `outs[i]` is `nodes[i]`'s temporary
    /// path. Returns one result per node, in order.
    fn run_batch(&self, nodes: &[&Node], outs: &[PathBuf]) -> Vec<Result<()>> {
        nodes
            .iter()
            .zip(outs)
            .map(|(n, o)| self.run(n, o))
            .collect()
    }
    /// The files this stage contributes to `data/out` once every node of it
    /// is fresh (nodes sorted by item). The engine builds and swaps in the
    /// whole publication at once ([`publish`]).
    fn publish(&self, _nodes: &[&Node]) -> Result<Vec<Publish>> {
        Ok(Vec::new())
    }
}
