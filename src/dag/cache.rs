//! With a remote store, the local `store/` folder is a cache of it, bounded
//! by `store_cache_gb`: artifacts this process wrote or read stay until the
//! total passes the bound, then the least recently used ones that the remote
//! holds are removed (a later read fetches them again). Files a running
//! batch or the publication is reading are pinned and never removed.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub struct Cache {
    limit: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Local artifact files: size and last use (a counter).
    files: HashMap<PathBuf, (u64, u64)>,
    total: u64,
    tick: u64,
    pins: HashMap<PathBuf, usize>,
    /// Local files the remote is known to hold (listed or put).
    remote: HashSet<PathBuf>,
    evicted: u64,
}

impl Cache {
    /// Counts what `store_dir` (`<data>/store`) holds already.
    pub fn new(store_dir: &Path, limit: u64) -> Cache {
        let mut state = State::default();
        for stage in fs::read_dir(store_dir).into_iter().flatten().flatten() {
            for f in fs::read_dir(stage.path()).into_iter().flatten().flatten() {
                if let Ok(m) = f.metadata()
                    && m.is_file()
                {
                    state.total += m.len();
                    state.files.insert(f.path(), (m.len(), 0));
                }
            }
        }
        Cache {
            limit,
            state: Mutex::new(state),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The remote holds `path`'s artifact: it may be evicted locally.
    pub fn remote_has(&self, path: PathBuf) {
        self.state().remote.insert(path);
    }

    /// `path` was just written or read.
    pub fn used(&self, path: &Path) {
        let mut s = self.state();
        s.tick += 1;
        let tick = s.tick;
        match s.files.get_mut(path) {
            Some(e) => e.1 = tick,
            None => {
                let len = fs::metadata(path).map_or(0, |m| m.len());
                s.total += len;
                s.files.insert(path.to_path_buf(), (len, tick));
            }
        }
    }

    pub fn pin(self: &Arc<Self>, paths: Vec<PathBuf>) -> Pins {
        let mut s = self.state();
        for p in &paths {
            *s.pins.entry(p.clone()).or_default() += 1;
        }
        Pins {
            cache: Some(self.clone()),
            paths,
        }
    }

    /// Removes least recently used, unpinned, remotely held files until the
    /// total is within the bound (or nothing more may go).
    pub fn trim(&self) {
        let mut s = self.state();
        if s.total <= self.limit {
            return;
        }
        let mut candidates: Vec<(u64, PathBuf, u64)> = s
            .files
            .iter()
            .filter(|(p, _)| s.remote.contains(*p) && !s.pins.contains_key(*p))
            .map(|(p, &(len, tick))| (tick, p.clone(), len))
            .collect();
        candidates.sort();
        for (_, path, len) in candidates {
            if s.total <= self.limit {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                s.files.remove(&path);
                s.total -= len;
                s.evicted += 1;
            }
        }
    }

    /// Bytes held locally, and how many files were evicted so far.
    pub fn usage(&self) -> (u64, u64) {
        let s = self.state();
        (s.total, s.evicted)
    }
}

/// Files kept from eviction while this lives.
#[derive(Debug, Default)]
pub struct Pins {
    cache: Option<Arc<Cache>>,
    paths: Vec<PathBuf>,
}

impl Drop for Pins {
    fn drop(&mut self) {
        let Some(cache) = &self.cache else { return };
        let mut s = cache.state();
        for p in &self.paths {
            if let Some(n) = s.pins.get_mut(p) {
                *n -= 1;
                if *n == 0 {
                    s.pins.remove(p);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_remote_files_and_never_pinned_or_local_only_ones() {
        let dir = tempfile::tempdir().unwrap();
        let stage = dir.path().join("s");
        fs::create_dir_all(&stage).unwrap();
        let file = |name: &str| {
            let p = stage.join(name);
            fs::write(&p, [0u8; 10]).unwrap();
            p
        };
        let cache = Arc::new(Cache::new(dir.path(), 30));
        let (a, b, c, d) = (file("a"), file("b"), file("c"), file("d"));
        let cache2 = Arc::new(Cache::new(dir.path(), 30));
        assert_eq!(cache2.usage(), (40, 0), "existing files are counted");
        drop(cache2);
        for p in [&a, &b, &c, &d] {
            cache.used(p);
        }
        assert_eq!(cache.usage().0, 40);
        // a: only local (never evicted); b: pinned; c, d: remote, c older.
        for p in [&b, &c, &d] {
            cache.remote_has(p.clone());
        }
        let pins = cache.pin(vec![b.clone()]);
        cache.trim();
        assert!(a.exists() && b.exists() && !c.exists() && d.exists());
        assert_eq!(cache.usage(), (30, 1));
        let e = file("e");
        cache.used(&e);
        cache.remote_has(e.clone());
        drop(pins);
        cache.trim();
        assert!(
            !b.exists(),
            "unpinned, b is the least recently used remote file"
        );
        assert!(a.exists() && d.exists() && e.exists());
        assert_eq!(cache.usage(), (30, 2));
    }
}
