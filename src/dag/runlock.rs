//! One `pipe run` per data folder: an OS file lock on `<root>/.run.lock`.
//! The kernel releases it when the process dies, so a killed run never
//! leaves a stale lock behind. Shards of a sharded run (`--shard I/N`) share
//! the lock with each other: they commit through the store by unique
//! temporary names, and never clean up after others; a plain run (which
//! removes leftover temporaries and publishes `data/out`) waits for them all.

use anyhow::{Context, Result, bail};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

pub struct RunLock {
    _file: File,
    pub path: PathBuf,
}

impl RunLock {
    /// Takes the lock; if another process holds it, waits (`wait`) or fails
    /// with a message naming the holder.
    pub fn acquire(root: &Path, wait: bool) -> Result<RunLock> {
        let (mut file, path) = open(root)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "another `pipe run`: shards of a sharded run (--shard)".to_string(),
                    pid => format!("another `pipe run` (pid {pid})"),
                };
                if !wait {
                    bail!(
                        "{holder} is using {}; wait for it to finish or pass --wait",
                        root.display()
                    );
                }
                eprintln!("pipe: waiting for {holder} on {}", root.display());
                file.lock()
                    .with_context(|| format!("locking {}", path.display()))?;
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "{}", std::process::id())?;
        file.flush()?;
        Ok(RunLock { _file: file, path })
    }

    /// The lock of a shard: shared with the run's other shards on this data
    /// folder, exclusive of plain runs.
    pub fn acquire_shared(root: &Path, wait: bool) -> Result<RunLock> {
        let (file, path) = open(root)?;
        match file.try_lock_shared() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                if !wait {
                    bail!(
                        "a `pipe run` (pid {holder}) is using {}; a shard waits for it to finish with --wait",
                        root.display()
                    );
                }
                eprintln!(
                    "pipe: waiting for `pipe run` (pid {holder}) on {}",
                    root.display()
                );
                file.lock_shared()
                    .with_context(|| format!("locking {}", path.display()))?;
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
        Ok(RunLock { _file: file, path })
    }
}

impl Drop for RunLock {
    /// An exclusive holder leaves no pid behind (shards sharing the lock
    /// would otherwise be named by it); a shard wrote none.
    fn drop(&mut self) {
        if self._file.metadata().is_ok_and(|m| m.len() > 0) {
            let _ = self._file.set_len(0);
        }
    }
}

fn open(root: &Path) -> Result<(File, PathBuf)> {
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let path = root.join(".run.lock");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    Ok((file, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path(), false).unwrap();
        let err = RunLock::acquire(dir.path(), false)
            .err()
            .expect("second lock must fail");
        let msg = err.to_string();
        assert!(msg.contains(&std::process::id().to_string()), "{msg}");
        assert!(msg.contains("--wait"), "{msg}");
        drop(first);
        RunLock::acquire(dir.path(), false).expect("free again after the first is dropped");
    }

    #[test]
    fn shards_share_the_lock_and_keep_plain_runs_out() {
        let dir = tempfile::tempdir().unwrap();
        let a = RunLock::acquire_shared(dir.path(), false).unwrap();
        let b = RunLock::acquire_shared(dir.path(), false).unwrap();
        let e = RunLock::acquire(dir.path(), false)
            .err()
            .expect("shards hold it");
        assert!(e.to_string().contains("shards of a sharded run"), "{e}");
        drop((a, b));
        let plain = RunLock::acquire(dir.path(), false).unwrap();
        let e = RunLock::acquire_shared(dir.path(), false)
            .err()
            .expect("a plain run holds it");
        assert!(
            e.to_string().contains(&std::process::id().to_string()),
            "{e}"
        );
        drop(plain);
        RunLock::acquire_shared(dir.path(), false).unwrap();
    }
}
