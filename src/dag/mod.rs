//! The staged, content-hashed DAG engine. It knows keys, artifacts, planning
//! and running; it knows nothing of audio. A [`Stage`] declares its nodes
//! (one per clip, or one for the whole dataset) with their params and inputs;
//! a node's key is `blake3(stage, version, params, input keys)`, so the whole
//! plan, and what is stale in it, is known before anything runs.

mod exec;
pub mod filehash;
pub mod key;
mod plan;
pub mod record;
pub mod runlock;
mod schedule;
pub mod store;

pub use exec::{RunOptions, RunReport, StageReport, run};
pub use key::Key;
pub use plan::{Plan, PlannedNode, StagePlan, plan, select_stages};
pub use store::Store;

use anyhow::{Result, anyhow};
use std::path::{Path, PathBuf};

/// Where a node input comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A file outside the store, keyed by its content.
    File(PathBuf),
    /// The artifact of another stage's node.
    Node { stage: &'static str, item: String },
}

/// What a stage declares for one of its nodes.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Clip id for per-clip stages; a fixed name (e.g. `all`) otherwise.
    pub item: String,
    /// Everything besides inputs that determines the output. Serialized
    /// canonically (sorted keys) into the key.
    pub params: serde_json::Value,
    pub inputs: Vec<(String, Source)>,
}

/// A resolved input: its content key and where to read it.
#[derive(Clone, Debug)]
pub struct Input {
    pub name: String,
    pub key: Key,
    pub path: PathBuf,
    /// The producing stage, or `None` for an outside file.
    pub stage: Option<&'static str>,
}

/// A planned node with its key and artifact path.
#[derive(Clone, Debug)]
pub struct Node {
    pub stage: &'static str,
    pub item: String,
    pub version: u32,
    pub params: serde_json::Value,
    pub inputs: Vec<Input>,
    pub key: Key,
    pub path: PathBuf,
}

impl Node {
    pub fn input(&self, name: &str) -> Result<&Input> {
        self.inputs.iter().find(|i| i.name == name).ok_or_else(|| {
            anyhow!(
                "{} node `{}` has no input named `{name}`",
                self.stage,
                self.item
            )
        })
    }
}

/// One step of the pipeline.
pub trait Stage: Send + Sync {
    fn name(&self) -> &'static str;
    /// Bump when the stage's code changes its output: every node re-keys.
    fn version(&self) -> u32;
    /// File extension of the artifacts.
    fn ext(&self) -> &'static str;
    /// One line for `pipe dag`.
    fn describe(&self) -> String;
    /// Stages whose artifacts this stage reads (must come earlier).
    fn upstream(&self) -> Vec<&'static str>;
    /// The nodes to materialize.
    fn plan(&self) -> Result<Vec<NodeSpec>>;
    /// Computes one node, writing its artifact to `out` (a temporary path
    /// that the engine renames into the store on success).
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
    /// Friendly copies under `out_dir` once every node of the stage is fresh.
    fn publish(&self, _nodes: &[&Node], _out_dir: &Path) -> Result<Vec<PathBuf>> {
        Ok(Vec::new())
    }
}
