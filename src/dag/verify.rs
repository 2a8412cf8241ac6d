//! `pipe verify`: rehash artifacts and compare with the hash in their name
//! (recorded when they were written). A corrupt artifact would otherwise
//! stay "fresh" and be read downstream; deleting it makes its node stale,
//! and the next run recomputes it (its bytes come back as recorded, so only
//! the node itself runs again).

use anyhow::Result;
use rayon::prelude::*;
use std::path::PathBuf;

use super::store::{hash_file, parse_name};
use super::{Key, Store};

/// An artifact whose bytes do not hash to its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corrupt {
    pub stage: String,
    pub path: PathBuf,
    pub expected: Key,
    /// `None`: unreadable.
    pub actual: Option<Key>,
}

/// Rehashes `artifacts` ((stage, path), named `<key>.<hash>.<ext>`) in
/// parallel; returns the ones whose bytes differ, and how many bytes were read.
pub fn check(artifacts: &[(String, PathBuf)]) -> (Vec<Corrupt>, u64) {
    let results: Vec<(Option<Corrupt>, u64)> = artifacts
        .par_iter()
        .filter_map(|(stage, path)| {
            let name = path.file_name()?.to_str()?;
            let (_, Some(expected)) = parse_name(name)? else {
                return None;
            };
            let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
            let actual = hash_file(path).ok();
            let bad = (actual != Some(expected)).then(|| Corrupt {
                stage: stage.clone(),
                path: path.clone(),
                expected,
                actual,
            });
            Some((bad, bytes))
        })
        .collect();
    let bytes = results.iter().map(|r| r.1).sum();
    let mut bad: Vec<Corrupt> = results.into_iter().filter_map(|r| r.0).collect();
    bad.sort_by(|a, b| a.path.cmp(&b.path));
    (bad, bytes)
}

/// Every content-named artifact in the store, as (stage, path).
pub fn all_artifacts(store: &Store) -> Result<Vec<(String, PathBuf)>> {
    Ok(store
        .list()?
        .into_iter()
        .filter(|(_, f, _)| matches!(parse_name(f), Some((_, Some(_)))))
        .map(|(s, _, p)| (s, p))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_byte_is_found_and_intact_artifacts_pass() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let a = store
            .commit_with("s", &Key::of_bytes(b"a"), "bin", |p| {
                Ok(std::fs::write(p, b"vector")?)
            })
            .unwrap();
        let b = store
            .commit_with("s", &Key::of_bytes(b"b"), "bin", |p| {
                Ok(std::fs::write(p, b"other")?)
            })
            .unwrap();
        let all = all_artifacts(&store).unwrap();
        assert_eq!(all.len(), 2);
        assert!(check(&all).0.is_empty());
        std::fs::write(&b.path, b"0ther").unwrap();
        let (bad, bytes) = check(&all);
        assert_eq!(bytes, 11);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].path, b.path);
        assert_eq!(bad[0].expected, Key::of_bytes(b"other"));
        assert_eq!(bad[0].actual, Some(Key::of_bytes(b"0ther")));
        assert_ne!(bad[0].path, a.path);
    }
}
