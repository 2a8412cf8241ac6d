//! Content keys of input files, memoised by (size, mtime) so an unchanged
//! large file is hashed once, not on every `pipe run`.

use anyhow::{Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use super::Key;
use super::store::write_atomic;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Entry {
    size: u64,
    mtime_ns: u128,
    key: Key,
}

pub struct FileHasher {
    memo_path: PathBuf,
    memo: Mutex<BTreeMap<PathBuf, Entry>>,
    dirty: Mutex<bool>,
}

impl FileHasher {
    /// Loads the memo at `memo_path`; a missing or unreadable memo just means
    /// every file is hashed again.
    pub fn open(memo_path: PathBuf) -> FileHasher {
        let memo = std::fs::read(&memo_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        FileHasher {
            memo_path,
            memo: Mutex::new(memo),
            dirty: Mutex::new(false),
        }
    }

    /// The blake3 key of the file's content.
    pub fn key(&self, path: &Path) -> Result<Key> {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("input file {} is missing", path.display()))?;
        if !meta.is_file() {
            anyhow::bail!("input {} is not a file", path.display());
        }
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        if let Some(e) = self.memo.lock().unwrap().get(&abs)
            && e.size == meta.len()
            && e.mtime_ns == mtime_ns
        {
            return Ok(e.key);
        }
        let mut hasher = blake3::Hasher::new();
        let file = std::fs::File::open(path)
            .with_context(|| format!("opening input file {}", path.display()))?;
        hasher
            .update_reader(file)
            .with_context(|| format!("reading input file {}", path.display()))?;
        let key = Key(*hasher.finalize().as_bytes());
        self.memo.lock().unwrap().insert(
            abs,
            Entry {
                size: meta.len(),
                mtime_ns,
                key,
            },
        );
        *self.dirty.lock().unwrap() = true;
        Ok(key)
    }

    /// Hashes many files in parallel (first run on a new dataset).
    pub fn keys(&self, paths: &[PathBuf]) -> Result<Vec<Key>> {
        paths.par_iter().map(|p| self.key(p)).collect()
    }

    pub fn save(&self) -> Result<()> {
        if !*self.dirty.lock().unwrap() {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&*self.memo.lock().unwrap())?;
        write_atomic(&self.memo_path, &bytes)?;
        *self.dirty.lock().unwrap() = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_follows_content_and_memo_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.txt");
        std::fs::write(&file, b"abc").unwrap();
        let memo = dir.path().join("memo.json");
        let h = FileHasher::open(memo.clone());
        assert_eq!(h.key(&file).unwrap(), Key::of_bytes(b"abc"));
        h.save().unwrap();
        let h2 = FileHasher::open(memo.clone());
        assert_eq!(h2.memo.lock().unwrap().len(), 1);
        assert_eq!(h2.key(&file).unwrap(), Key::of_bytes(b"abc"));
        // A content change also changes size here, so the memo is bypassed.
        std::fs::write(&file, b"abcd").unwrap();
        assert_eq!(h2.key(&file).unwrap(), Key::of_bytes(b"abcd"));
    }

    #[test]
    fn missing_file_error_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let h = FileHasher::open(dir.path().join("memo.json"));
        let err = h.key(&dir.path().join("nope.mid")).unwrap_err();
        assert!(err.to_string().contains("nope.mid"), "{err}");
    }
}
