//! Stores written by pipe before content hashes (record format 1,
//! `<data>/pipe.lock`; artifacts named `<key>.<ext>`, keys built from
//! upstream node keys). Nothing is recomputed for them: a node with no
//! artifact under its new key adopts the old artifact of the same
//! (stage, item) when the old record shows it was computed by the same code
//! version from the same params and from inputs with the same bytes as now
//! (an old upstream key counts through the bytes of the artifact it named).
//! The old file is hashed once and hard-linked under its new name; the old
//! name stays until `pipe clean`.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::filehash::FileHasher;
use super::{Key, Node};

#[derive(Clone, Debug, Deserialize)]
struct V1Node {
    key: Key,
    version: u32,
    params: serde_json::Value,
    inputs: Vec<(String, Key)>,
}

#[derive(Clone, Debug, Deserialize)]
struct V1Record {
    format: u32,
    stages: BTreeMap<String, BTreeMap<String, V1Node>>,
}

/// The previous version's record, if the data folder has one.
pub(super) struct Legacy {
    record: V1Record,
}

/// [`Legacy`], read only when a node has no artifact under its key (a
/// no-op run never parses the old, megabytes-large record).
pub(super) struct LazyLegacy {
    root: PathBuf,
    cell: std::cell::OnceCell<Option<Legacy>>,
}

impl LazyLegacy {
    pub fn new(root: &Path) -> LazyLegacy {
        LazyLegacy {
            root: root.to_path_buf(),
            cell: std::cell::OnceCell::new(),
        }
    }

    pub fn get(&self) -> Result<Option<&Legacy>> {
        if let Some(l) = self.cell.get() {
            return Ok(l.as_ref());
        }
        if !Legacy::path(&self.root).is_file() {
            return Ok(self.cell.get_or_init(|| None).as_ref());
        }
        let loaded = Legacy::load(&self.root)?;
        Ok(self.cell.get_or_init(|| loaded).as_ref())
    }
}

impl Legacy {
    pub fn path(root: &Path) -> PathBuf {
        root.join("pipe.lock")
    }

    pub fn load(root: &Path) -> Result<Option<Legacy>> {
        let path = Self::path(root);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let record: V1Record = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} (the run record of pipe before content hashes) is unreadable; move it away to ignore it (its artifacts would then be recomputed)",
                path.display()
            )
        })?;
        if record.format != 1 {
            anyhow::bail!(
                "{}: record format {} is not one this pipe reads (1)",
                path.display(),
                record.format
            );
        }
        Ok(Some(Legacy { record }))
    }

    /// The code version the old record has for (stage, item), if any.
    pub fn version(&self, stage: &str, item: &str) -> Option<u32> {
        Some(self.record.stages.get(stage)?.get(item)?.version)
    }

    /// Every (stage, key) the old record references.
    pub fn keys(&self) -> Vec<(String, Key)> {
        self.record
            .stages
            .iter()
            .flat_map(|(stage, nodes)| nodes.values().map(move |n| (stage.clone(), n.key)))
            .collect()
    }

    /// The old artifact `node` (inputs resolved, key known) would have
    /// produced, with its content hash, if the old record vouches for it.
    /// `old_file(stage, key)` finds an old-named artifact of a stage.
    pub fn candidate(
        &self,
        node: &Node,
        old_file: &dyn Fn(&str, &Key) -> Option<PathBuf>,
        hasher: &FileHasher,
    ) -> Result<Option<(PathBuf, Key)>> {
        let Some(old) = self
            .record
            .stages
            .get(node.stage)
            .and_then(|s| s.get(&node.item))
        else {
            return Ok(None);
        };
        if old.version != node.version
            || !node.missing.is_empty()
            || old.inputs.len() != node.inputs.len()
            || !subset(&node.params, &old.params)
        {
            return Ok(None);
        }
        let Some(artifact) = old_file(node.stage, &old.key) else {
            return Ok(None);
        };
        for input in &node.inputs {
            let Some((_, old_key)) = old.inputs.iter().find(|(n, _)| *n == input.name) else {
                return Ok(None);
            };
            let same = match input.stage {
                // A file input was keyed by its bytes then too.
                None => *old_key == input.hash,
                // An upstream input was keyed by the upstream node's key: compare
                // the bytes of the artifact that key named.
                Some(up) => match old_file(up.name, old_key) {
                    Some(p) => hasher.key(&p)? == input.hash,
                    None => false,
                },
            };
            if !same {
                return Ok(None);
            }
        }
        let hash = hasher.key(&artifact)?;
        Ok(Some((artifact, hash)))
    }
}

/// Every leaf of `new` is in `old` with the same value (`old` may have more:
/// the names and descriptions this version keeps out of keys).
fn subset(new: &serde_json::Value, old: &serde_json::Value) -> bool {
    use serde_json::Value::Object;
    match (new, old) {
        (Object(a), Object(b)) => a
            .iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| subset(v, w))),
        (a, b) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn params_match_when_only_names_were_dropped() {
        let old = json!({"feature_set": {"name": "a", "spec": {"layers": "7-12"}}, "encoder": {"seed": 0}});
        let new = json!({"feature_set": {"spec": {"layers": "7-12"}}, "encoder": {"seed": 0}});
        assert!(subset(&new, &old));
        let changed = json!({"feature_set": {"spec": {"layers": "6-12"}}, "encoder": {"seed": 0}});
        assert!(!subset(&changed, &old));
        let added =
            json!({"feature_set": {"spec": {"layers": "7-12"}}, "encoder": {"seed": 0}, "x": 1});
        assert!(!subset(&added, &old));
    }
}
