//! One `pipe run` per data folder: an OS file lock on `<root>/.run.lock`.
//! The kernel releases it when the process dies, so a killed run never
//! leaves a stale lock behind.

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
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        let path = root.join(".run.lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                if !wait {
                    bail!(
                        "another `pipe run` (pid {holder}) is using {}; wait for it to finish or pass --wait",
                        root.display()
                    );
                }
                eprintln!(
                    "pipe: waiting for another `pipe run` (pid {holder}) on {}",
                    root.display()
                );
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
}
