//! The content-addressed artifact store: `<root>/store/<stage>/<key>.<ext>`.
//!
//! Every write goes to a temporary file in the same directory and is renamed
//! into place, so a killed run leaves either the whole artifact or none.

use anyhow::{Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::Key;

const TMP_PREFIX: &str = ".tmp-";

#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// `root` is the data folder (e.g. `data/`); artifacts live under `root/store`.
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn stage_dir(&self, stage: &str) -> PathBuf {
        self.root.join("store").join(stage)
    }

    pub fn artifact_path(&self, stage: &str, key: &Key, ext: &str) -> PathBuf {
        self.stage_dir(stage).join(format!("{key}.{ext}"))
    }

    pub fn exists(&self, stage: &str, key: &Key, ext: &str) -> bool {
        self.artifact_path(stage, key, ext).is_file()
    }

    /// Runs `write` against a fresh temporary path next to the final artifact
    /// and renames the result into place only if `write` succeeded.
    pub fn commit_with(
        &self,
        stage: &str,
        key: &Key,
        ext: &str,
        write: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<PathBuf> {
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

    /// Renames a temporary file written by a stage into place if `result` is
    /// Ok; otherwise removes it and returns the error.
    pub fn finish(
        &self,
        stage: &str,
        key: &Key,
        ext: &str,
        tmp: &Path,
        result: Result<()>,
    ) -> Result<PathBuf> {
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
        fault_injection::maybe_abort_before_commit();
        let dest = self.artifact_path(stage, key, ext);
        fs::rename(tmp, &dest)
            .with_context(|| format!("renaming {} to {}", tmp.display(), dest.display()))?;
        Ok(dest)
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

    /// Every artifact file in the store, as (stage, file name, path).
    pub fn list(&self) -> Result<Vec<(String, String, PathBuf)>> {
        let mut out = Vec::new();
        let store = self.root.join("store");
        let Ok(stages) = fs::read_dir(&store) else {
            return Ok(out);
        };
        for stage in stages.flatten() {
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
        assert!(!store.exists("s", &key, "bin"));
        assert_eq!(fs::read_dir(store.stage_dir("s")).unwrap().count(), 0);
    }

    #[test]
    fn commit_renames_into_place_and_temporaries_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let key = Key::of_bytes(b"y");
        let path = store
            .commit_with("s", &key, "bin", |p| Ok(fs::write(p, b"data")?))
            .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"data");
        assert!(store.exists("s", &key, "bin"));
        fs::write(store.stage_dir("s").join(".tmp-1-2.bin"), b"junk").unwrap();
        assert_eq!(
            store.list().unwrap().len(),
            1,
            "temporaries are not artifacts"
        );
        assert_eq!(store.remove_temporaries().unwrap(), 1);
        assert!(store.exists("s", &key, "bin"));
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
