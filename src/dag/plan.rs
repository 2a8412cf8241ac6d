//! Planning: resolve every node's inputs and key, and decide (and explain)
//! what is stale, without running anything.

use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, HashMap};

use super::filehash::FileHasher;
use super::key::node_key;
use super::record::{Record, param_changes};
use super::{Input, Key, Node, Source, Stage, Store};

#[derive(Clone, Debug)]
pub struct PlannedNode {
    pub node: Node,
    /// Empty when fresh; otherwise why it must be (re)computed.
    pub reasons: Vec<String>,
}

impl PlannedNode {
    pub fn is_stale(&self) -> bool {
        !self.reasons.is_empty()
    }
}

#[derive(Clone, Debug)]
pub struct StagePlan {
    pub name: &'static str,
    pub nodes: Vec<PlannedNode>,
    index: HashMap<String, usize>,
}

impl StagePlan {
    pub fn node(&self, item: &str) -> Option<&PlannedNode> {
        self.index.get(item).map(|&i| &self.nodes[i])
    }

    pub fn stale_count(&self) -> usize {
        self.nodes.iter().filter(|n| n.is_stale()).count()
    }

    /// Stale reasons grouped with counts, most common first, each with one
    /// example item: a readable answer to "why does this stage run?".
    pub fn reason_summary(&self) -> Vec<(String, usize, String)> {
        let mut groups: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
        for n in &self.nodes {
            for r in &n.reasons {
                let e = groups
                    .entry(r.as_str())
                    .or_insert((0, n.node.item.as_str()));
                e.0 += 1;
            }
        }
        let mut out: Vec<_> = groups
            .into_iter()
            .map(|(r, (c, ex))| (r.to_string(), c, ex.to_string()))
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub stages: Vec<StagePlan>,
}

impl Plan {
    pub fn stage(&self, name: &str) -> Option<&StagePlan> {
        self.stages.iter().find(|s| s.name == name)
    }
}

/// The names of the stages `stage` reads that this pipeline has.
fn reads_present(stage: &dyn Stage, names: &[&str]) -> Vec<&'static str> {
    stage
        .decl()
        .reads
        .iter()
        .map(|d| d.name)
        .filter(|n| names.contains(n))
        .collect()
}

/// The stages needed to materialize `until` (itself and its ancestors), in
/// pipeline order; all stages when `until` is `None`.
pub fn select_stages<'a>(
    stages: &'a [Box<dyn Stage>],
    until: Option<&str>,
) -> Result<Vec<&'a dyn Stage>> {
    let names: Vec<&str> = stages.iter().map(|s| s.name()).collect();
    for (i, s) in stages.iter().enumerate() {
        for up in reads_present(s.as_ref(), &names) {
            if !names[..i].contains(&up) {
                bail!(
                    "stage `{}` reads `{up}`, which is not an earlier stage",
                    s.name()
                );
            }
        }
    }
    let Some(target) = until else {
        return Ok(stages.iter().map(|s| s.as_ref()).collect());
    };
    if !names.contains(&target) {
        bail!("unknown stage `{target}`; stages are: {}", names.join(", "));
    }
    let mut needed = vec![target];
    for s in stages.iter().rev() {
        if needed.contains(&s.name()) {
            needed.extend(reads_present(s.as_ref(), &names));
        }
    }
    Ok(stages
        .iter()
        .filter(|s| needed.contains(&s.name()))
        .map(|s| s.as_ref())
        .collect())
}

/// Plans `stages` (already in pipeline order) against the store and the
/// record of the last run. `force` names stages whose nodes are stale anyway.
pub fn plan(
    stages: &[&dyn Stage],
    store: &Store,
    hasher: &FileHasher,
    record: &Record,
    force: &[String],
) -> Result<Plan> {
    let mut planned: Vec<StagePlan> = Vec::with_capacity(stages.len());
    for stage in stages {
        let name = stage.name();
        let specs = stage
            .plan()
            .with_context(|| format!("planning stage `{name}`"))?;
        // Hash all outside files of this stage up front, in parallel.
        let files: Vec<_> = specs
            .iter()
            .flat_map(|s| s.inputs.iter())
            .filter_map(|(_, src)| match src {
                Source::File(p) => Some(p.clone()),
                Source::Node { .. } => None,
            })
            .collect();
        let file_keys: HashMap<_, _> = files.iter().cloned().zip(hasher.keys(&files)?).collect();

        let reads = stage.decl().reads;
        let mut nodes = Vec::with_capacity(specs.len());
        let mut index = HashMap::with_capacity(specs.len());
        for spec in specs {
            let mut inputs = Vec::with_capacity(spec.inputs.len());
            for (input_name, src) in spec.inputs {
                let input = match src {
                    Source::File(path) => Input {
                        name: input_name,
                        key: file_keys[&path],
                        path,
                        stage: None,
                    },
                    Source::Node { stage: up, item } => {
                        if !reads.iter().any(|r| r.name == up.name) {
                            bail!("stage `{name}` reads `{}` without declaring it", up.name);
                        }
                        let up_plan =
                            planned
                                .iter()
                                .find(|p| p.name == up.name)
                                .with_context(|| {
                                    format!(
                                        "stage `{name}` needs `{}`, which was not planned",
                                        up.name
                                    )
                                })?;
                        let up_node = up_plan.node(&item).with_context(|| {
                            format!(
                                "stage `{name}` needs `{}` node `{item}`, which does not exist",
                                up.name
                            )
                        })?;
                        Input {
                            name: input_name,
                            key: up_node.node.key,
                            path: up_node.node.path.clone(),
                            stage: Some(up),
                        }
                    }
                };
                inputs.push(input);
            }
            let params_json = serde_json::to_string(&spec.params)?;
            let pairs: Vec<(String, Key)> =
                inputs.iter().map(|i| (i.name.clone(), i.key)).collect();
            let key = node_key(name, stage.version(), &params_json, &pairs);
            let path = store.artifact_path(name, &key, stage.ext());
            let node = Node {
                stage: name,
                item: spec.item.clone(),
                version: stage.version(),
                params: spec.params,
                inputs,
                key,
                path,
                plan: spec.plan,
            };
            let reasons = staleness(&node, record, force.iter().any(|f| f == name));
            if index.insert(spec.item.clone(), nodes.len()).is_some() {
                bail!("stage `{name}` declared item `{}` twice", spec.item);
            }
            nodes.push(PlannedNode { node, reasons });
        }
        planned.push(StagePlan { name, nodes, index });
    }
    Ok(Plan { stages: planned })
}

fn staleness(node: &Node, record: &Record, forced: bool) -> Vec<String> {
    if forced {
        return vec![format!("forced (--force {})", node.stage)];
    }
    if node.path.is_file() {
        return Vec::new();
    }
    let Some(last) = record.node(node.stage, &node.item) else {
        return vec!["new: never computed".to_string()];
    };
    if last.key == node.key {
        return vec!["artifact missing from the store".to_string()];
    }
    let mut reasons = Vec::new();
    if last.version != node.version {
        reasons.push(format!("code version {} -> {}", last.version, node.version));
    }
    reasons.extend(
        param_changes(&last.params, &node.params)
            .into_iter()
            .map(|c| format!("param {c}")),
    );
    let old: HashMap<&str, &Key> = last.inputs.iter().map(|(n, k)| (n.as_str(), k)).collect();
    for input in &node.inputs {
        match old.get(input.name.as_str()) {
            None => reasons.push(format!("new input `{}`", input.name)),
            Some(k) if **k != input.key => reasons.push(match input.stage {
                Some(up) => format!("upstream `{}` changed", up.name),
                None => format!(
                    "input file `{}` changed ({})",
                    input.name,
                    input.path.display()
                ),
            }),
            Some(_) => {}
        }
    }
    for (name, _) in &last.inputs {
        if !node.inputs.iter().any(|i| &i.name == name) {
            reasons.push(format!("input `{name}` removed"));
        }
    }
    if reasons.is_empty() {
        reasons.push("key changed".to_string());
    }
    // An aggregate node with many changed inputs from one stage says it once.
    let mut seen = std::collections::HashSet::new();
    reasons.retain(|r| seen.insert(r.clone()));
    reasons
}
