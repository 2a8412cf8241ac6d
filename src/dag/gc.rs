//! What `pipe clean` may delete (like `dvc gc`): every artifact in the store
//! that no root keeps. The caller decides the roots (each live pipeline
//! description's fresh nodes and record); this lists the rest by stage and
//! item with sizes, and deletes it.

use anyhow::{Context, Result};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use super::legacy::Legacy;
use super::store::parse_name;
use super::{Key, Store};

/// What keeps artifacts alive.
#[derive(Clone, Debug, Default)]
pub struct Roots {
    /// (stage, artifact file name)
    pub files: HashSet<(String, String)>,
    /// (stage, key) of artifacts named by pipe before content hashes.
    pub legacy: HashSet<(String, Key)>,
    /// (stage, file) -> item, to say what an artifact was.
    pub items: HashMap<(String, String), String>,
}

impl Roots {
    pub fn keep(&mut self, stage: &str, file: &str) {
        self.files.insert((stage.to_string(), file.to_string()));
    }

    /// Keeps what the previous version's record (`data/pipe.lock`)
    /// references, while it exists: configs not yet run with this version
    /// adopt those artifacts instead of recomputing them. Returns how many.
    pub fn keep_legacy(&mut self, store: &Store) -> Result<usize> {
        let Some(legacy) = Legacy::load(store.root())? else {
            return Ok(0);
        };
        let keys = legacy.keys();
        let n = keys.len();
        self.legacy.extend(keys);
        Ok(n)
    }
}

/// An artifact no root keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Garbage {
    pub stage: String,
    pub file: String,
    pub path: PathBuf,
    pub bytes: u64,
    /// The item it was computed for, if a record says.
    pub item: Option<String>,
}

/// Every artifact in `store` that `roots` does not keep, sorted by stage and item.
pub fn collect(store: &Store, roots: &Roots) -> Result<Vec<Garbage>> {
    let mut out = Vec::new();
    for (stage, file, path) in store.list()? {
        let kept = match parse_name(&file) {
            Some((_, Some(_))) => roots.files.contains(&(stage.clone(), file.clone())),
            Some((key, None)) => roots.legacy.contains(&(stage.clone(), key)),
            // Not an artifact name: leave it alone.
            None => true,
        };
        if kept {
            continue;
        }
        let bytes = std::fs::symlink_metadata(&path).map_or(0, |m| m.len());
        let item = roots.items.get(&(stage.clone(), file.clone())).cloned();
        out.push(Garbage {
            stage,
            file,
            path,
            bytes,
            item,
        });
    }
    out.sort_by(|a, b| (&a.stage, &a.item, &a.file).cmp(&(&b.stage, &b.item, &b.file)));
    Ok(out)
}

/// Deletes the listed artifacts; returns the bytes freed. Hold the run lock.
pub fn delete(garbage: &[Garbage]) -> Result<u64> {
    let mut freed = 0;
    for g in garbage {
        std::fs::remove_file(&g.path).with_context(|| format!("removing {}", g.path.display()))?;
        freed += g.bytes;
    }
    Ok(freed)
}
