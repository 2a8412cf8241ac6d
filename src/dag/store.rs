//! The artifact store: `<root>/store/<stage>/<key>.<hash>.<ext>`.
//!
//! An artifact's name carries both its key (what computed it) and the blake3
//! of its bytes, so one listing of a stage's folder tells which keys exist
//! and what each artifact hashes to, without opening any of them. That is
//! what early cutoff needs (downstream keys are built from input hashes),
//! and it works unchanged where the store is an object-store prefix shared
//! by shards on many machines: a finishing run learns every hash from one
//! LIST per stage prefix, the name and the bytes arrive in one atomic put
//! (no sidecar that can go missing, no shared index to contend for), and a
//! put is create-if-absent by name.
//!
//! Every write goes to a temporary file in the same directory, is hashed,
//! and is renamed into place, so a killed run leaves either the whole
//! artifact or none.

use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Key;
use super::cache::{Cache, Pins};
use super::remote::Remote;

const TMP_PREFIX: &str = ".tmp-";

#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
    /// `store = "s3://…"`: the object store every commit goes to, with the
    /// local `store/` folder as its bounded cache.
    remote: Option<(Arc<Remote>, Arc<Cache>)>,
}

/// One artifact in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    pub key: Key,
    /// blake3 of the bytes.
    pub hash: Key,
    pub path: PathBuf,
}

/// What one stage folder holds, by key (a forced re-run whose bytes differ
/// leaves two artifacts under one key).
#[derive(Clone, Debug, Default)]
pub struct StageIndex {
    by_key: HashMap<Key, Vec<Key>>,
    /// Artifacts named `<key>.<ext>` by pipe before content hashes.
    legacy: HashMap<Key, PathBuf>,
}

impl StageIndex {
    /// The content hashes stored under `key`.
    pub fn hashes(&self, key: &Key) -> &[Key] {
        self.by_key.get(key).map_or(&[], Vec::as_slice)
    }

    pub fn insert(&mut self, key: Key, hash: Key) {
        let v = self.by_key.entry(key).or_default();
        if !v.contains(&hash) {
            v.push(hash);
        }
    }

    pub fn remove(&mut self, key: &Key, hash: &Key) {
        if let Some(v) = self.by_key.get_mut(key) {
            v.retain(|h| h != hash);
        }
    }

    pub fn legacy(&self, key: &Key) -> Option<&PathBuf> {
        self.legacy.get(key)
    }

    pub fn has_legacy(&self) -> bool {
        !self.legacy.is_empty()
    }
}

/// The file name of an artifact.
pub fn artifact_name(key: &Key, hash: &Key, ext: &str) -> String {
    format!("{key}.{hash}.{ext}")
}

/// `(key, hash)` of an artifact file name; `(key, None)` for a name from
/// before content hashes (`<key>.<ext>`); `None` for anything else.
pub fn parse_name(name: &str) -> Option<(Key, Option<Key>)> {
    let key = Key::from_hex(name.get(..64)?)?;
    let rest = name.get(64..)?.strip_prefix('.')?;
    match rest.get(..64).and_then(Key::from_hex) {
        Some(hash) if rest.as_bytes().get(64) == Some(&b'.') => Some((key, Some(hash))),
        _ => Some((key, None)),
    }
}

/// blake3 of a file's bytes.
pub fn hash_file(path: &Path) -> Result<Key> {
    let mut h = blake3::Hasher::new();
    let file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    h.update_reader(file)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(Key(*h.finalize().as_bytes()))
}

impl Store {
    /// `root` is the data folder (e.g. `data/`); artifacts live under `root/store`.
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store {
            root: root.into(),
            remote: None,
        }
    }

    /// A store whose artifacts live in `remote`, cached under `root/store`
    /// up to `cache_bytes`.
    pub fn with_remote(root: impl Into<PathBuf>, remote: Remote, cache_bytes: u64) -> Store {
        let root = root.into();
        let cache = Cache::new(&root.join("store"), cache_bytes);
        Store {
            root,
            remote: Some((Arc::new(remote), Arc::new(cache))),
        }
    }

    pub fn remote(&self) -> Option<&Remote> {
        self.remote.as_ref().map(|(r, _)| r.as_ref())
    }

    /// Bytes in the local cache and files evicted from it (remote stores only).
    pub fn cache_usage(&self) -> Option<(u64, u64)> {
        self.remote.as_ref().map(|(_, c)| c.usage())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn stage_dir(&self, stage: &str) -> PathBuf {
        self.root.join("store").join(stage)
    }

    pub fn artifact_path(&self, stage: &str, key: &Key, hash: &Key, ext: &str) -> PathBuf {
        self.stage_dir(stage).join(artifact_name(key, hash, ext))
    }

    /// One listing of the stage's local folder (no file is opened).
    fn local_index(&self, stage: &str) -> Result<StageIndex> {
        let mut index = StageIndex::default();
        let dir = self.stage_dir(stage);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(index),
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        for e in entries {
            let e = e.with_context(|| format!("listing {}", dir.display()))?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            match parse_name(name) {
                Some((key, Some(hash))) => index.insert(key, hash),
                Some((key, None)) => {
                    index.legacy.insert(key, e.path());
                }
                None => {}
            }
        }
        Ok(index)
    }

    /// [`Store::index`] of the local folder, plus (with a remote store) one
    /// LIST of the stage's prefix there.
    pub fn index(&self, stage: &str) -> Result<StageIndex> {
        let mut index = self.local_index(stage)?;
        if let Some((remote, cache)) = &self.remote {
            let dir = self.stage_dir(stage);
            for name in remote.list(&object_name(stage, ""))? {
                if let Some((key, Some(hash))) = parse_name(&name) {
                    index.insert(key, hash);
                    cache.remote_has(dir.join(name));
                }
            }
        }
        Ok(index)
    }

    /// Runs `write` against a fresh temporary path next to the final artifact
    /// and commits the result only if `write` succeeded.
    pub fn commit_with(
        &self,
        stage: &str,
        key: &Key,
        ext: &str,
        write: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<Artifact> {
        let tmp = self.temp_path(stage, ext)?;
        let result = write(&tmp);
        self.finish(stage, key, ext, &tmp, result)
    }

    /// A fresh temporary path in the stage's folder (created if needed).
    pub fn temp_path(&self, stage: &str, ext: &str) -> Result<PathBuf> {
        let dir = self.stage_dir(stage);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(temp_path(&dir, ext))
    }

    /// Hashes a temporary file written by a stage and renames it into place
    /// as `<key>.<hash>.<ext>` if `result` is Ok; otherwise removes it and
    /// returns the error.
    pub fn finish(
        &self,
        stage: &str,
        key: &Key,
        ext: &str,
        tmp: &Path,
        result: Result<()>,
    ) -> Result<Artifact> {
        if let Err(e) = result {
            let _ = fs::remove_file(tmp);
            return Err(e);
        }
        if !tmp.is_file() {
            anyhow::bail!(
                "stage `{stage}` reported success but wrote no file to {}",
                tmp.display()
            );
        }
        let hash = match hash_file(tmp) {
            Ok(h) => h,
            Err(e) => {
                let _ = fs::remove_file(tmp);
                return Err(e);
            }
        };
        fault_injection::maybe_abort_before_commit();
        let dest = self.artifact_path(stage, key, &hash, ext);
        // Remote first: a local artifact always has its remote copy, so no
        // shard ever finds fresh here what the others cannot see.
        if let Some((remote, _)) = &self.remote {
            let rel = object_name(stage, &artifact_name(key, &hash, ext));
            match remote.put_file(&rel, tmp) {
                Ok(true) => {}
                // Another worker computed it too: same name, same bytes.
                Ok(false) => {
                    remote.traffic.existed.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    let _ = fs::remove_file(tmp);
                    return Err(e.context(format!("committing the {stage} artifact")));
                }
            }
        }
        fs::rename(tmp, &dest)
            .with_context(|| format!("renaming {} to {}", tmp.display(), dest.display()))?;
        if let Some((_, cache)) = &self.remote {
            cache.used(&dest);
            cache.remote_has(dest.clone());
            cache.trim();
        }
        Ok(Artifact {
            key: *key,
            hash,
            path: dest,
        })
    }

    /// Gives an artifact from before content hashes its new name (a hard
    /// link, so the old name stays valid until `pipe clean`).
    pub fn adopt(
        &self,
        old: &Path,
        stage: &str,
        key: &Key,
        hash: &Key,
        ext: &str,
    ) -> Result<Artifact> {
        let dest = self.artifact_path(stage, key, hash, ext);
        if !dest.is_file() {
            let tmp = self.temp_path(stage, ext)?;
            fs::hard_link(old, &tmp)
                .or_else(|_| fs::copy(old, &tmp).map(|_| ()))
                .with_context(|| format!("linking {} to {}", old.display(), tmp.display()))?;
            fs::rename(&tmp, &dest)
                .with_context(|| format!("renaming {} to {}", tmp.display(), dest.display()))?;
        }
        Ok(Artifact {
            key: *key,
            hash: *hash,
            path: dest,
        })
    }

    /// Makes the store artifacts at `paths` present locally, fetching from
    /// the remote store those that are not (each checked against the blake3
    /// its name carries), and keeps them from eviction while the returned
    /// pins live. Without a remote store: nothing to do.
    pub fn fetch(&self, paths: impl IntoIterator<Item = PathBuf>) -> Result<Pins> {
        let Some((remote, cache)) = &self.remote else {
            return Ok(Pins::default());
        };
        let store_dir = self.root.join("store");
        let paths: Vec<PathBuf> = paths
            .into_iter()
            .filter(|p| p.starts_with(&store_dir))
            .collect();
        let pins = cache.pin(paths.clone());
        let missing: Vec<&PathBuf> = paths.iter().filter(|p| !p.is_file()).collect();
        let rels = missing
            .iter()
            .map(|p| object_name_of(p))
            .collect::<Result<Vec<_>>>()?;
        for ((path, rel), got) in missing.iter().zip(&rels).zip(remote.get_many(&rels)) {
            let bytes = got?.ok_or_else(|| {
                anyhow::anyhow!(
                    "{}/{rel} is not in the store any more (it was listed when the run planned)",
                    remote.url()
                )
            })?;
            check_bytes(remote, rel, &bytes)?;
            write_atomic(path, &bytes)?;
            cache.remote_has((*path).clone());
        }
        for path in &paths {
            cache.used(path);
        }
        cache.trim();
        Ok(pins)
    }

    /// Writes `bytes` as the run-level object `name` (next to `store/`, in
    /// the remote store if there is one) unless it exists; returns what is
    /// there when it does.
    pub fn put_meta_if_absent(&self, name: &str, bytes: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some((remote, _)) = &self.remote {
            if remote.put_new(name, bytes.to_vec())? {
                return Ok(None);
            }
            return remote.get(name);
        }
        let path = self.root.join(name);
        fs::create_dir_all(&self.root)
            .with_context(|| format!("creating {}", self.root.display()))?;
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                std::io::Write::write_all(&mut f, bytes)
                    .with_context(|| format!("writing {}", path.display()))?;
                Ok(None)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => fs::read(&path)
                .map(Some)
                .with_context(|| format!("reading {}", path.display())),
            Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }

    /// Removes the run-level object `name` (see [`Store::put_meta_if_absent`]).
    pub fn delete_meta(&self, name: &str) -> Result<()> {
        if let Some((remote, _)) = &self.remote {
            return remote.delete(name);
        }
        match fs::remove_file(self.root.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", self.root.join(name).display()))
            }
            _ => Ok(()),
        }
    }

    /// Where a run-level object lives, for messages.
    pub fn meta_location(&self, name: &str) -> String {
        match &self.remote {
            Some((remote, _)) => format!("{}/{name}", remote.url()),
            None => self.root.join(name).display().to_string(),
        }
    }

    /// Deletes temporary files left behind by an interrupted run: in the
    /// store's stage folders, next to `pipe.lock` in the data folder, and
    /// under `out/`. Only call this while holding the run lock.
    pub fn remove_temporaries(&self) -> Result<usize> {
        let mut dirs = vec![self.root.clone()];
        for sub in ["store", "out"] {
            if let Ok(entries) = fs::read_dir(self.root.join(sub)) {
                dirs.push(self.root.join(sub));
                dirs.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
            }
        }
        let mut removed = 0;
        for dir in dirs {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) && e.path().is_file() {
                    fs::remove_file(e.path())
                        .with_context(|| format!("removing {}", e.path().display()))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Every artifact file in the store, as (stage, file name, path), sorted.
    pub fn list(&self) -> Result<Vec<(String, String, PathBuf)>> {
        let mut out = Vec::new();
        let store = self.root.join("store");
        let Ok(stages) = fs::read_dir(&store) else {
            return Ok(out);
        };
        for stage in stages.flatten() {
            if !stage.path().is_dir() {
                continue;
            }
            let stage_name = stage.file_name().to_string_lossy().into_owned();
            for e in fs::read_dir(stage.path())?.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !name.starts_with(TMP_PREFIX) {
                    out.push((stage_name.clone(), name, e.path()));
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// An artifact's object name in the remote store, `store/<stage>/<file>`
/// (the stage's prefix when `file` is empty): the local layout under `root/`.
fn object_name(stage: &str, file: &str) -> String {
    format!("store/{stage}/{file}")
}

/// [`object_name`] of the store artifact at local `path` (`<root>/store/<stage>/<file>`).
fn object_name_of(path: &Path) -> Result<String> {
    let file = path.file_name().and_then(|n| n.to_str());
    let stage = path
        .parent()
        .and_then(|d| d.file_name())
        .and_then(|n| n.to_str());
    match (stage, file) {
        (Some(stage), Some(file)) => Ok(object_name(stage, file)),
        _ => bail!("{} is not a store artifact", path.display()),
    }
}

/// The name ends in the bytes' blake3: a bad transfer never becomes an artifact.
fn check_bytes(remote: &Remote, rel: &str, bytes: &[u8]) -> Result<()> {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    if let Some((_, Some(hash))) = parse_name(name) {
        let got = Key::of_bytes(bytes);
        if got != hash {
            bail!(
                "{}/{rel}: its bytes hash to {got}, not to the hash in its name",
                remote.url()
            );
        }
    }
    Ok(())
}

/// Writes `bytes` to `dest` atomically (temp file in the same folder + rename).
/// A failed write or rename removes the temporary file.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ext = dest.extension().and_then(|e| e.to_str()).unwrap_or("tmp");
    let tmp = temp_path(dir, ext);
    let result = fs::write(&tmp, bytes)
        .with_context(|| format!("writing {}", dest.display()))
        .and_then(|()| {
            fs::rename(&tmp, dest)
                .with_context(|| format!("renaming {} to {}", tmp.display(), dest.display()))
        });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Copies `src` to `dest` atomically.
pub fn copy_atomic(src: &Path, dest: &Path) -> Result<()> {
    let meta = |p: &Path| fs::metadata(p).ok().map(|m| (m.len(), m.modified().ok()));
    // The copy carries the artifact's mtime: same length and mtime means it is
    // still the copy of this (immutable) artifact, and a no-op run copies nothing.
    let src_meta = meta(src);
    if src_meta.is_some() && meta(dest) == src_meta {
        return Ok(());
    }
    let dir = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ext = dest.extension().and_then(|e| e.to_str()).unwrap_or("tmp");
    let tmp = temp_path(dir, ext);
    let result = (|| {
        fs::copy(src, &tmp)
            .with_context(|| format!("copying {} to {}", src.display(), dest.display()))?;
        if let Some((_, Some(mtime))) = src_meta {
            fs::File::options()
                .write(true)
                .open(&tmp)
                .and_then(|f| f.set_modified(mtime))
                .with_context(|| format!("setting the mtime of {}", tmp.display()))?;
        }
        fs::rename(&tmp, dest)
            .with_context(|| format!("renaming {} to {}", tmp.display(), dest.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn temp_path(dir: &Path, ext: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // Keep the real extension last so writers that dispatch on it still work.
    dir.join(format!("{TMP_PREFIX}{}-{n}.{ext}", std::process::id()))
}

/// Crash testing: `PIPE_FAULT_ABORT_AFTER_COMMITS=N` aborts the process right
/// before the (N+1)-th artifact would be renamed into place, leaving its
/// temporary file behind exactly as a kill at the worst moment would.
mod fault_injection {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    pub fn maybe_abort_before_commit() {
        static LIMIT: OnceLock<Option<u64>> = OnceLock::new();
        static DONE: AtomicU64 = AtomicU64::new(0);
        let limit = LIMIT.get_or_init(|| {
            std::env::var("PIPE_FAULT_ABORT_AFTER_COMMITS")
                .ok()
                .and_then(|v| v.parse().ok())
        });
        if let Some(limit) = limit
            && DONE.fetch_add(1, Ordering::SeqCst) >= *limit
        {
            eprintln!("pipe: fault injection: aborting before commit");
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_copies_are_skipped_while_intact_and_restored_when_edited() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dest) = (dir.path().join("a.bin"), dir.path().join("out/a.bin"));
        fs::write(&src, b"artifact").unwrap();
        copy_atomic(&src, &dest).unwrap();
        let mtime = |p: &Path| fs::metadata(p).unwrap().modified().unwrap();
        assert_eq!(
            mtime(&dest),
            mtime(&src),
            "the copy carries the artifact's mtime"
        );
        // An edit of the same length changes the mtime: the next publish restores it.
        fs::write(&dest, b"ARTIFACT").unwrap();
        copy_atomic(&src, &dest).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"artifact");
        // Intact: nothing is written (the file keeps its inode).
        use std::os::unix::fs::MetadataExt;
        let ino = fs::metadata(&dest).unwrap().ino();
        copy_atomic(&src, &dest).unwrap();
        assert_eq!(fs::metadata(&dest).unwrap().ino(), ino);
    }

    #[test]
    fn failed_write_leaves_no_artifact_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let key = Key::of_bytes(b"x");
        let err = store
            .commit_with("s", &key, "bin", |p| {
                fs::write(p, b"half")?;
                anyhow::bail!("stage blew up")
            })
            .unwrap_err();
        assert!(err.to_string().contains("blew up"));
        assert!(store.index("s").unwrap().hashes(&key).is_empty());
        assert_eq!(fs::read_dir(store.stage_dir("s")).unwrap().count(), 0);
    }

    #[test]
    fn commit_names_the_artifact_by_key_and_content_and_temporaries_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let key = Key::of_bytes(b"y");
        let a = store
            .commit_with("s", &key, "bin", |p| Ok(fs::write(p, b"data")?))
            .unwrap();
        assert_eq!(fs::read(&a.path).unwrap(), b"data");
        assert_eq!(a.hash, Key::of_bytes(b"data"));
        assert_eq!(
            a.path.file_name().unwrap().to_str().unwrap(),
            format!("{}.{}.bin", key.hex(), Key::of_bytes(b"data").hex())
        );
        // The listing alone gives the content hash.
        assert_eq!(store.index("s").unwrap().hashes(&key), &[a.hash]);
        fs::write(store.stage_dir("s").join(".tmp-1-2.bin"), b"junk").unwrap();
        assert_eq!(
            store.list().unwrap().len(),
            1,
            "temporaries are not artifacts"
        );
        assert_eq!(store.remove_temporaries().unwrap(), 1);
        assert_eq!(store.index("s").unwrap().hashes(&key).len(), 1);
    }

    #[test]
    fn names_parse_in_both_formats() {
        let (k, h) = (Key::of_bytes(b"k"), Key::of_bytes(b"h"));
        assert_eq!(
            parse_name(&artifact_name(&k, &h, "wav")),
            Some((k, Some(h)))
        );
        assert_eq!(parse_name(&format!("{k}.wav")), Some((k, None)));
        assert_eq!(parse_name(&format!("{k}.tar.gz")), Some((k, None)));
        assert_eq!(parse_name("notes.txt"), None);
    }

    #[test]
    fn failed_atomic_writes_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        // pipe.lock is a non-empty folder: the rename into place fails.
        let dest = dir.path().join("pipe.lock");
        fs::create_dir_all(dest.join("x")).unwrap();
        let err = write_atomic(&dest, b"{}").unwrap_err();
        assert!(format!("{err:#}").contains("pipe.lock"), "{err:#}");
        let src = dir.path().join("a.bin");
        fs::write(&src, b"artifact").unwrap();
        assert!(copy_atomic(&src, &dest).is_err());
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| !n.starts_with(TMP_PREFIX)),
            "left behind: {names:?}"
        );
    }

    #[test]
    fn temporaries_beside_the_record_and_under_out_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        fs::create_dir_all(dir.path().join("out/plots")).unwrap();
        for p in [
            ".tmp-1-0.lock",
            "out/.tmp-1-1.parquet",
            "out/plots/.tmp-1-2.png",
        ] {
            fs::write(dir.path().join(p), b"junk").unwrap();
        }
        fs::write(dir.path().join("pipe.lock"), b"{}").unwrap();
        assert_eq!(store.remove_temporaries().unwrap(), 3);
        assert!(dir.path().join("pipe.lock").is_file());
    }

    #[test]
    fn stage_that_writes_nothing_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let err = store
            .commit_with("s", &Key::of_bytes(b"z"), "bin", |_| Ok(()))
            .unwrap_err();
        assert!(err.to_string().contains("wrote no file"), "{err}");
    }
}
