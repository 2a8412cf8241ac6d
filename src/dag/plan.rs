//! Planning: resolve every node's inputs and, where they are all known, its
//! key; decide (and explain) what is fresh, stale, or may be stale, without
//! running anything. A node below a stale one "may be stale": its key needs
//! the hashes of artifacts not yet written, and if they come out as before
//! it is fresh after all (early cutoff).

use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use super::filehash::FileHasher;
use super::key::node_key;
use super::legacy::LazyLegacy;
use super::reason::{param_changes, shorten};
use super::record::Record;
use super::store::StageIndex;
use super::{Input, Key, Node, Source, Stage, Store};

/// (stage index, node index) in a [`Plan`].
pub(super) type NodeId = (usize, usize);

/// A placeholder for what is not known yet (keys and hashes of nodes below
/// a stale one).
pub(super) const UNKNOWN: Key = Key([0; 32]);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// Its artifact exists.
    Fresh,
    /// Its key has no artifact (or it is forced): it runs.
    Stale,
    /// Behind a stale node: runs unless its inputs come out as before.
    Pending,
}

#[derive(Clone, Debug)]
pub struct PlannedNode {
    pub node: Node,
    pub state: NodeState,
    /// Empty when fresh; otherwise why it must (or may have to) be computed.
    pub reasons: Vec<String>,
    pub(super) partial: bool,
    pub(super) forced: bool,
    /// Per input: the upstream node, or `None` for an outside file.
    pub(super) sources: Vec<Option<NodeId>>,
    /// An artifact of the previous pipe version to link under the new name.
    pub(super) adopt: Option<PathBuf>,
    /// The stale stages this node waits behind (for "may be stale" reasons).
    roots: Vec<&'static str>,
    /// The clip of per-clip work (which shard runs it); `None`: dataset-level.
    pub shard_by: Option<String>,
}

impl PlannedNode {
    /// Stale or pending.
    pub fn is_stale(&self) -> bool {
        self.state != NodeState::Fresh
    }
}

#[derive(Clone, Debug)]
pub struct StagePlan {
    pub name: &'static str,
    /// What one node is ("clips", "experiments").
    pub unit: &'static str,
    pub nodes: Vec<PlannedNode>,
    /// Whether this run computes the stage (`--until` leaves later ones out).
    pub selected: bool,
    index: HashMap<String, usize>,
}

impl StagePlan {
    pub fn node(&self, item: &str) -> Option<&PlannedNode> {
        self.index.get(item).map(|&i| &self.nodes[i])
    }

    pub(super) fn position(&self, item: &str) -> Option<usize> {
        self.index.get(item).copied()
    }

    /// Nodes that run (their key has no artifact, or they are forced).
    pub fn stale_count(&self) -> usize {
        self.count(NodeState::Stale)
    }

    /// Nodes behind a stale one.
    pub fn pending_count(&self) -> usize {
        self.count(NodeState::Pending)
    }

    fn count(&self, state: NodeState) -> usize {
        self.nodes.iter().filter(|n| n.state == state).count()
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
    /// Nodes whose artifact of the previous pipe version is adopted (see `legacy`).
    pub adopted: usize,
}

impl Plan {
    pub fn stage(&self, name: &str) -> Option<&StagePlan> {
        self.stages.iter().find(|s| s.name == name)
    }

    pub(super) fn get(&self, id: NodeId) -> &PlannedNode {
        &self.stages[id.0].nodes[id.1]
    }

    /// Every artifact file this plan uses as (stage, file name): the fresh
    /// nodes', and the old-version files that adopted nodes link to.
    pub fn used_files(&self) -> Vec<(String, String)> {
        let name = |p: &PathBuf| p.file_name().map(|n| n.to_string_lossy().into_owned());
        self.stages
            .iter()
            .flat_map(|sp| {
                sp.nodes
                    .iter()
                    .filter(|n| !n.is_stale())
                    .flat_map(move |n| {
                        [Some(&n.node.path), n.adopt.as_ref()]
                            .into_iter()
                            .flatten()
                            .filter_map(name)
                            .map(move |f| (sp.name.to_string(), f))
                    })
            })
            .collect()
    }

    /// Nothing stale or pending in any stage.
    pub fn is_fresh(&self) -> bool {
        self.stages
            .iter()
            .all(|s| s.nodes.iter().all(|n| !n.is_stale()))
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

/// Which of `stages` run when materializing `until` (itself and its
/// ancestors); all of them when `until` is `None`.
pub fn select_stages(stages: &[Box<dyn Stage>], until: Option<&str>) -> Result<Vec<bool>> {
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
        return Ok(vec![true; stages.len()]);
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
    Ok(stages.iter().map(|s| needed.contains(&s.name())).collect())
}

/// `--force STAGE` or `--force STAGE/ITEM`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Force {
    pub stage: String,
    pub item: Option<String>,
    pub text: String,
}

impl Force {
    pub fn parse(text: &str) -> Force {
        let (stage, item) = match text.split_once('/') {
            Some((s, i)) => (s.to_string(), Some(i.to_string())),
            None => (text.to_string(), None),
        };
        Force {
            stage,
            item,
            text: text.to_string(),
        }
    }

    /// Whether this names the node (an item matches whole, or as the clip
    /// or the set of a `set/clip` item).
    pub fn matches(&self, stage: &str, item: &str) -> bool {
        self.stage == stage
            && self.item.as_deref().is_none_or(|want| {
                item == want
                    || item
                        .strip_suffix(want)
                        .is_some_and(|rest| rest.ends_with('/'))
                    || item
                        .strip_prefix(want)
                        .is_some_and(|rest| rest.starts_with('/'))
            })
    }
}

/// Computes a node's key from its params, inputs and missing inputs.
pub(super) fn key_of(node: &Node) -> Result<Key> {
    let params_json = serde_json::to_string(&node.params)?;
    let inputs: Vec<(String, Key)> = node
        .inputs
        .iter()
        .map(|i| (i.name.clone(), i.hash))
        .collect();
    let missing: Vec<(String, String)> = node
        .missing
        .iter()
        .map(|m| {
            (
                m.name.clone(),
                format!("{} {}: {}", m.stage, m.item, m.reason),
            )
        })
        .collect();
    Ok(node_key(
        node.stage,
        node.version,
        &params_json,
        &inputs,
        &missing,
    ))
}

/// The artifact of a keyed node if the store has one: `(hash, path)`.
/// Two artifacts under one key (a forced re-run whose bytes changed): the
/// one this config's record names, else the newest.
pub(super) fn find_artifact(
    store: &Store,
    index: &StageIndex,
    record: &Record,
    node: &Node,
    ext: &str,
) -> Option<(Key, PathBuf)> {
    let hashes = index.hashes(&node.key);
    let path = |h: &Key| store.artifact_path(node.stage, &node.key, h, ext);
    match hashes {
        [] => None,
        [h] => Some((*h, path(h))),
        many => {
            let recorded = record
                .node(node.stage, &node.item)
                .filter(|r| r.key == node.key)
                .map(|r| r.hash);
            let pick = match recorded {
                Some(h) if many.contains(&h) => h,
                _ => *many
                    .iter()
                    .max_by_key(|h| std::fs::metadata(path(h)).and_then(|m| m.modified()).ok())
                    .expect("non-empty"),
            };
            Some((pick, path(&pick)))
        }
    }
}

/// Everything [`plan`] reads besides the stages.
pub(super) struct PlanContext<'a> {
    pub store: &'a Store,
    pub hasher: &'a FileHasher,
    pub record: &'a Record,
    pub legacy: &'a LazyLegacy,
    pub force: &'a [Force],
}

/// Plans `stages` (in pipeline order) against the store and this config's
/// record; `selected[i]` says whether stage `i` runs. Returns the plan and
/// each stage's store index.
pub(super) fn plan(
    stages: &[&dyn Stage],
    selected: &[bool],
    cx: &PlanContext,
) -> Result<(Plan, Vec<StageIndex>)> {
    for f in cx.force {
        if !stages.iter().any(|s| s.name() == f.stage) {
            bail!(
                "--force {}: no stage `{}` (stages: {})",
                f.text,
                f.stage,
                stages
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let mut planned: Vec<StagePlan> = Vec::with_capacity(stages.len());
    let mut indexes: Vec<StageIndex> = Vec::with_capacity(stages.len());
    let mut adopted = 0;
    for (si, stage) in stages.iter().enumerate() {
        let name = stage.name();
        let index = cx.store.index(name)?;
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
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let file_keys: HashMap<_, _> = files.iter().cloned().zip(cx.hasher.keys(&files)?).collect();

        let reads = stage.decl().reads;
        let mut nodes = Vec::with_capacity(specs.len());
        let mut item_index = HashMap::with_capacity(specs.len());
        for spec in specs {
            let mut inputs = Vec::with_capacity(spec.inputs.len());
            let mut sources = Vec::with_capacity(spec.inputs.len());
            let mut roots: BTreeSet<&'static str> = BTreeSet::new();
            for (input_name, src) in spec.inputs {
                match src {
                    Source::File(path) => {
                        inputs.push(Input {
                            name: input_name,
                            hash: file_keys[&path],
                            path,
                            stage: None,
                        });
                        sources.push(None);
                    }
                    Source::Node { stage: up, item } => {
                        if !reads.iter().any(|r| r.name == up.name) {
                            bail!("stage `{name}` reads `{}` without declaring it", up.name);
                        }
                        let up_si = planned
                            .iter()
                            .position(|p| p.name == up.name)
                            .with_context(|| {
                                format!("stage `{name}` needs `{}`, which was not planned", up.name)
                            })?;
                        let up_ni = planned[up_si].position(&item).with_context(|| {
                            format!(
                                "stage `{name}` needs `{}` node `{item}`, which does not exist",
                                up.name
                            )
                        })?;
                        let up_node = &planned[up_si].nodes[up_ni];
                        match up_node.state {
                            NodeState::Fresh => {}
                            NodeState::Stale => {
                                roots.insert(up.name);
                            }
                            NodeState::Pending => roots.extend(up_node.roots.iter().copied()),
                        }
                        inputs.push(Input {
                            name: input_name,
                            hash: up_node.node.hash,
                            path: up_node.node.path.clone(),
                            stage: Some(up),
                        });
                        sources.push(Some((up_si, up_ni)));
                    }
                }
            }
            let mut node = Node {
                stage: name,
                item: spec.item.clone(),
                version: stage.version(),
                params: spec.params,
                inputs,
                missing: Vec::new(),
                key: UNKNOWN,
                path: PathBuf::new(),
                hash: UNKNOWN,
                plan: spec.plan,
            };
            let forced = cx.force.iter().any(|f| f.matches(name, &spec.item));
            let mut adopt = None;
            let (state, reasons) = if !roots.is_empty() {
                let list: Vec<String> = roots.iter().map(|r| format!("`{r}`")).collect();
                let why = format!("may be stale: behind stale {}", list.join(", "));
                let mut reasons = vec![why];
                if forced {
                    reasons.insert(0, forced_reason(cx.force, name, &spec.item));
                }
                (NodeState::Pending, reasons)
            } else {
                node.key = key_of(&node)?;
                let found = if forced {
                    None
                } else {
                    find_artifact(cx.store, &index, cx.record, &node, stage.ext())
                };
                if let Some((hash, path)) = found {
                    node.hash = hash;
                    node.path = path;
                    (NodeState::Fresh, Vec::new())
                } else if let Some((old, hash)) = match (forced, cx.legacy.get()?) {
                    (false, Some(legacy)) => legacy.candidate(
                        &node,
                        &|stage, key| {
                            planned
                                .iter()
                                .zip(&indexes)
                                .find(|(p, _)| p.name == stage)
                                .map(|(_, ix)| ix)
                                .or((stage == name).then_some(&index))
                                .and_then(|ix| ix.legacy(key).cloned())
                        },
                        cx.hasher,
                    )?,
                    _ => None,
                } {
                    node.hash = hash;
                    node.path = cx.store.artifact_path(name, &node.key, &hash, stage.ext());
                    adopt = Some(old);
                    adopted += 1;
                    (NodeState::Fresh, Vec::new())
                } else if forced {
                    (
                        NodeState::Stale,
                        vec![forced_reason(cx.force, name, &spec.item)],
                    )
                } else {
                    let mut reasons = staleness(&node, cx.record);
                    let old = cx.legacy.get()?.and_then(|l| l.version(name, &spec.item));
                    if reasons == ["new: never computed"]
                        && let Some(v) = old
                    {
                        reasons = vec![if v == node.version {
                            "computed by pipe before content hashes from other params or inputs"
                                .to_string()
                        } else {
                            format!(
                                "code version {v} -> {} since pipe before content hashes",
                                node.version
                            )
                        }];
                    }
                    (NodeState::Stale, reasons)
                }
            };
            if item_index.insert(spec.item.clone(), nodes.len()).is_some() {
                bail!("stage `{name}` declared item `{}` twice", spec.item);
            }
            nodes.push(PlannedNode {
                node,
                state,
                reasons,
                partial: spec.partial,
                forced,
                sources,
                adopt,
                roots: roots.into_iter().collect(),
                shard_by: spec.shard_by,
            });
        }
        for f in cx
            .force
            .iter()
            .filter(|f| f.stage == name && f.item.is_some())
        {
            if !nodes.iter().any(|n| f.matches(name, &n.node.item)) {
                bail!(
                    "--force {}: stage `{name}` has no item `{}`",
                    f.text,
                    f.item.as_deref().unwrap_or("")
                );
            }
        }
        planned.push(StagePlan {
            name,
            unit: stage.decl().unit,
            nodes,
            selected: selected[si],
            index: item_index,
        });
        indexes.push(index);
    }
    Ok((
        Plan {
            stages: planned,
            adopted,
        },
        indexes,
    ))
}

fn forced_reason(force: &[Force], stage: &str, item: &str) -> String {
    let f = force
        .iter()
        .find(|f| f.matches(stage, item))
        .expect("forced nodes match a --force");
    format!("forced (--force {})", f.text)
}

/// Why a keyed node with no artifact runs, against this config's record.
pub(super) fn staleness(node: &Node, record: &Record) -> Vec<String> {
    if let Some(f) = record.failure(node.stage, &node.item)
        && f.key == Some(node.key)
    {
        return vec![format!(
            "failed in the last run, retried: {}",
            shorten(&f.reason, 100)
        )];
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
    // Input changes, counted per producing stage (an aggregate over 1,202
    // clips says "upstream `resample` output changed (3 inputs)").
    let old: HashMap<&str, &Key> = last.inputs.iter().map(|(n, k)| (n.as_str(), k)).collect();
    let mut changed: BTreeMap<String, usize> = BTreeMap::new();
    let mut added: BTreeMap<String, usize> = BTreeMap::new();
    for input in &node.inputs {
        let what = match input.stage {
            Some(up) => format!("upstream `{}` output", up.name),
            None => format!("input file `{}`", input.name),
        };
        match old.get(input.name.as_str()) {
            None => *added.entry(what).or_default() += 1,
            Some(k) if **k != input.hash => *changed.entry(what).or_default() += 1,
            Some(_) => {}
        }
    }
    let counted = |what: &str, n: usize, verb: &str| {
        if n == 1 {
            format!("{what} {verb}")
        } else {
            format!("{what} {verb} ({n} inputs)")
        }
    };
    for (what, n) in changed {
        reasons.push(counted(&what, n, "changed"));
    }
    for (what, n) in added {
        reasons.push(counted(&what, n, "added"));
    }
    let removed = last
        .inputs
        .iter()
        .filter(|(name, _)| !node.inputs.iter().any(|i| &i.name == name))
        .count();
    if removed > 0 {
        reasons.push(format!("{removed} input(s) removed"));
    }
    let was: BTreeSet<&str> = last.missing.iter().map(|(n, _)| n.as_str()).collect();
    let now: BTreeSet<&str> = node.missing.iter().map(|m| m.name.as_str()).collect();
    if was != now {
        reasons.push(format!("failed inputs: {} -> {}", was.len(), now.len()));
    }
    if reasons.is_empty() {
        reasons.push("key changed".to_string());
    }
    reasons
}
