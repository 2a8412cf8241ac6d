//! Run records (like dvc.lock), one per pipeline description:
//! `<data>/runs/<config id>.json` says, node by node, what that config's last
//! runs materialized (key, params, input hashes, artifact and its hash) and
//! which nodes failed. Freshness never depends on it (artifact names do);
//! it lets `status` and `--dry-run` say *why* a node is stale, and
//! `pipe clean` keep every live config's work, not only the last run's.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Key;
use super::store::write_atomic;

/// The record format this version writes (1 was `data/pipe.lock`, keyed by
/// upstream node keys; see `legacy`).
pub const FORMAT: u32 = 2;

/// Which pipeline description a run belongs to: the file and a hash of what
/// it says. Runs through the library without one share the record `default`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigId {
    /// The description's file, absolute.
    pub path: Option<PathBuf>,
    /// blake3 of its text (short hex).
    pub hash: String,
}

impl ConfigId {
    pub fn new(path: &Path, hash: impl Into<String>) -> ConfigId {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        ConfigId {
            path: Some(abs),
            hash: hash.into(),
        }
    }

    /// The record's file stem: a hash of the description's path.
    pub fn stem(&self) -> String {
        match &self.path {
            Some(p) => Key::of_bytes(p.to_string_lossy().as_bytes()).hex()[..16].to_string(),
            None => "default".to_string(),
        }
    }

    /// For messages: the file, or "the default record".
    pub fn describe(&self) -> String {
        self.path
            .as_ref()
            .map_or("(no pipeline file)".to_string(), |p| {
                p.display().to_string()
            })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub key: Key,
    pub version: u32,
    pub params: serde_json::Value,
    /// Input name -> content hash, in declaration order.
    pub inputs: Vec<(String, Key)>,
    /// A partial node's absent inputs: (name, reason).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<(String, String)>,
    /// The artifact's file name in the stage's store folder.
    pub file: String,
    /// blake3 of the artifact's bytes.
    pub hash: Key,
}

/// A node that failed: with which key (if its inputs were all there) and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailedRecord {
    pub key: Option<Key>,
    pub reason: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Record {
    pub format: u32,
    /// The pipeline description (absolute), if runs named one.
    #[serde(default)]
    pub config: Option<PathBuf>,
    #[serde(default)]
    pub config_hash: String,
    /// Seconds since the Unix epoch of the last save.
    #[serde(default)]
    pub updated: u64,
    /// stage -> item -> node
    pub stages: BTreeMap<String, BTreeMap<String, NodeRecord>>,
    /// stage -> item -> failure of the last run that tried it
    #[serde(default)]
    pub failed: BTreeMap<String, BTreeMap<String, FailedRecord>>,
    /// stage -> artifact file -> item: artifacts this config used before and
    /// no longer does (so `pipe clean` can say what it deletes).
    #[serde(default)]
    pub superseded: BTreeMap<String, BTreeMap<String, String>>,
}

impl Record {
    pub fn dir(root: &Path) -> PathBuf {
        root.join("runs")
    }

    pub fn path(root: &Path, id: &ConfigId) -> PathBuf {
        Self::dir(root).join(format!("{}.json", id.stem()))
    }

    /// The record of `id`, or an empty one naming it.
    pub fn load(root: &Path, id: &ConfigId) -> Result<Record> {
        let path = Self::path(root, id);
        match read(&path)? {
            Some(r) => Ok(r),
            None => Ok(Record {
                format: FORMAT,
                config: id.path.clone(),
                config_hash: id.hash.clone(),
                ..Default::default()
            }),
        }
    }

    /// Every record under `root`, with its file.
    pub fn all(root: &Path) -> Result<Vec<(PathBuf, Record)>> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(Self::dir(root)) else {
            return Ok(out);
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json")
                && let Some(r) = read(&p)?
            {
                out.push((p, r));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    pub fn save(&mut self, root: &Path, id: &ConfigId) -> Result<()> {
        self.format = FORMAT;
        self.config = id.path.clone();
        self.config_hash = id.hash.clone();
        self.updated = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // Compact: with one entry per (stage, clip) it runs to megabytes.
        let bytes = serde_json::to_vec(self)?;
        write_atomic(&Self::path(root, id), &bytes)
    }

    pub fn node(&self, stage: &str, item: &str) -> Option<&NodeRecord> {
        self.stages.get(stage)?.get(item)
    }

    pub fn failure(&self, stage: &str, item: &str) -> Option<&FailedRecord> {
        self.failed.get(stage)?.get(item)
    }

    /// Every artifact the record names as in use: (stage, file name).
    pub fn files(&self) -> impl Iterator<Item = (&str, &str)> {
        self.stages.iter().flat_map(|(stage, nodes)| {
            nodes
                .values()
                .map(move |n| (stage.as_str(), n.file.as_str()))
        })
    }

    /// Records `node` as the current output of (stage, item), remembering the
    /// artifact it replaces; returns whether anything changed.
    pub fn set(&mut self, stage: &str, item: &str, node: NodeRecord) -> bool {
        let mut changed = false;
        if let Some(f) = self.failed.get_mut(stage) {
            changed |= f.remove(item).is_some();
        }
        let nodes = self.stages.entry(stage.to_string()).or_default();
        if nodes.get(item) == Some(&node) {
            return changed;
        }
        let file = node.file.clone();
        if let Some(old) = nodes.insert(item.to_string(), node)
            && old.file != file
        {
            self.superseded
                .entry(stage.to_string())
                .or_default()
                .insert(old.file, item.to_string());
        }
        if let Some(s) = self.superseded.get_mut(stage) {
            s.remove(&file);
        }
        true
    }

    /// Records that (stage, item) failed; its last good artifact stays listed.
    pub fn set_failed(&mut self, stage: &str, item: &str, failure: FailedRecord) -> bool {
        let f = self.failed.entry(stage.to_string()).or_default();
        if f.get(item) == Some(&failure) {
            return false;
        }
        f.insert(item.to_string(), failure);
        true
    }

    /// Drops (stage, item)s that are no longer planned (a clip left the
    /// dataset); returns whether anything changed.
    pub fn retain(&mut self, stage: &str, keep: impl Fn(&str) -> bool) -> bool {
        let mut changed = false;
        if let Some(nodes) = self.stages.get_mut(stage) {
            let gone: Vec<String> = nodes.keys().filter(|i| !keep(i)).cloned().collect();
            for item in gone {
                let old = nodes.remove(&item).expect("listed");
                self.superseded
                    .entry(stage.to_string())
                    .or_default()
                    .insert(old.file, item);
                changed = true;
            }
        }
        if let Some(f) = self.failed.get_mut(stage) {
            let before = f.len();
            f.retain(|i, _| keep(i));
            changed |= f.len() != before;
        }
        changed
    }
}

fn read(path: &Path) -> Result<Option<Record>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).with_context(|| {
            format!(
                "{} is corrupt; delete it (artifacts are kept; `pipe status` then cannot say why nodes are stale)",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(file: &str) -> NodeRecord {
        NodeRecord {
            key: Key::of_bytes(file.as_bytes()),
            version: 3,
            params: json!({"x": 1}),
            inputs: vec![("midi".into(), Key::of_bytes(b"m"))],
            missing: vec![],
            file: file.into(),
            hash: Key::of_bytes(b"bytes"),
        }
    }

    #[test]
    fn record_round_trips_per_config() {
        let dir = tempfile::tempdir().unwrap();
        let a = ConfigId::new(&dir.path().join("a.toml"), "h1");
        let b = ConfigId::new(&dir.path().join("b.toml"), "h2");
        assert_ne!(a.stem(), b.stem());
        let mut r = Record::load(dir.path(), &a).unwrap();
        assert!(r.set("render", "clip", node("k.wav")));
        assert!(
            !r.set("render", "clip", node("k.wav")),
            "same entry: no change"
        );
        r.save(dir.path(), &a).unwrap();
        let back = Record::load(dir.path(), &a).unwrap();
        assert_eq!(back.node("render", "clip"), Some(&node("k.wav")));
        assert_eq!(back.config.as_deref(), a.path.as_deref());
        assert!(Record::load(dir.path(), &b).unwrap().stages.is_empty());
        assert_eq!(Record::all(dir.path()).unwrap().len(), 1);
    }

    #[test]
    fn replaced_and_dropped_artifacts_are_remembered_by_item() {
        let mut r = Record::default();
        r.set("decode", "c1", node("old.wav"));
        r.set("decode", "c1", node("new.wav"));
        r.set("decode", "c2", node("c2.wav"));
        assert_eq!(r.superseded["decode"]["old.wav"], "c1");
        assert!(r.retain("decode", |i| i == "c1"));
        assert_eq!(r.superseded["decode"]["c2.wav"], "c2");
        assert_eq!(r.files().count(), 1);
        // Going back to an old artifact takes it off the superseded list.
        r.set("decode", "c1", node("old.wav"));
        assert!(!r.superseded["decode"].contains_key("old.wav"));
    }
}
