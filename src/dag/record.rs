//! `pipe.lock`: what the last run materialized, node by node (like dvc.lock).
//! It is not needed for correctness (keys decide freshness); it lets
//! `status` and `--dry-run` say *why* a node is stale, and `clean` know what
//! is still referenced.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Key;
use super::store::write_atomic;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub key: Key,
    pub version: u32,
    pub params: serde_json::Value,
    /// Input name -> content key, in declaration order.
    pub inputs: Vec<(String, Key)>,
    /// The artifact's file name in the stage's store folder.
    pub file: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Record {
    pub format: u32,
    /// stage -> item -> node
    pub stages: BTreeMap<String, BTreeMap<String, NodeRecord>>,
}

impl Record {
    pub fn path(root: &Path) -> PathBuf {
        root.join("pipe.lock")
    }

    pub fn load(root: &Path) -> Result<Record> {
        let path = Self::path(root);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is corrupt; delete it (artifacts are kept)",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Record {
                format: 1,
                ..Default::default()
            }),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn save(&self, root: &Path) -> Result<()> {
        // Compact: with one entry per (stage, clip) it runs to megabytes.
        let bytes = serde_json::to_vec(self)?;
        write_atomic(&Self::path(root), &bytes)
    }

    pub fn node(&self, stage: &str, item: &str) -> Option<&NodeRecord> {
        self.stages.get(stage)?.get(item)
    }
}

/// Human-readable differences between two param trees, as `path: old -> new`.
pub fn param_changes(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    diff_into("", old, new, &mut out);
    out
}

fn diff_into(path: &str, old: &serde_json::Value, new: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value::Object;
    match (old, new) {
        (Object(a), Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff_into(&p, x, y, out),
                    (None, Some(y)) => out.push(format!("{p}: (unset) -> {y}")),
                    (Some(x), None) => out.push(format!("{p}: {x} -> (unset)")),
                    (None, None) => {}
                }
            }
        }
        (a, b) if a != b => out.push(format!(
            "{}: {} -> {}",
            if path.is_empty() { "params" } else { path },
            show(a),
            show(b)
        )),
        _ => {}
    }
}

/// A leaf for people: an f32 setting (stored widened to f64, e.g.
/// 0.00009999999747378752) prints as the f32 it was (0.0001).
fn show(v: &serde_json::Value) -> String {
    match v.as_f64() {
        Some(x) if v.is_f64() && f64::from(x as f32) == x => format!("{}", x as f32),
        _ => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn widened_f32_settings_print_as_written() {
        let old = json!({ "lr": 1e-4f32, "epochs": 200, "gain": 0.1 });
        let new = json!({ "lr": 3e-4f32, "epochs": 300, "gain": 0.2 });
        assert_eq!(
            param_changes(&old, &new),
            [
                "epochs: 200 -> 300",
                "gain: 0.1 -> 0.2",
                "lr: 0.0001 -> 0.0003"
            ]
        );
    }

    #[test]
    fn param_changes_name_the_changed_leaf() {
        let old = json!({"quality": "high", "rate": 24000, "nested": {"a": 1}});
        let new = json!({"quality": "fast", "rate": 24000, "nested": {"a": 2, "b": true}});
        assert_eq!(
            param_changes(&old, &new),
            vec![
                "nested.a: 1 -> 2".to_string(),
                "nested.b: (unset) -> true".to_string(),
                "quality: \"high\" -> \"fast\"".to_string(),
            ]
        );
        assert!(param_changes(&old, &old).is_empty());
    }

    #[test]
    fn record_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Record::load(dir.path()).unwrap();
        let node = NodeRecord {
            key: Key::of_bytes(b"k"),
            version: 3,
            params: json!({"x": 1}),
            inputs: vec![("midi".into(), Key::of_bytes(b"m"))],
            file: "k.wav".into(),
        };
        r.stages
            .entry("render".into())
            .or_default()
            .insert("clip".into(), node.clone());
        r.save(dir.path()).unwrap();
        assert_eq!(
            Record::load(dir.path()).unwrap().node("render", "clip"),
            Some(&node)
        );
    }
}
