//! `pipe run --shard I/N`: one of N processes (on as many machines) that
//! split a run's per-clip work. A node belongs to shard `blake3(clip) mod N`,
//! so a clip's render, decode, resample and features nodes run in one shard,
//! the split needs no coordination, and adding clips moves none of the
//! others. Shards cooperate through the store; a later plain `pipe run`
//! finds their nodes fresh and runs the dataset-level stages.
//!
//! The shards of one run must agree on N: the first one writes
//! `shards.json` next to `store/` (create-if-absent), the others compare,
//! and the finishing run removes it.

use anyhow::{Result, bail};
use std::fmt;

use super::Store;

/// The run-level object that holds the shard count of a sharded run.
pub const SHARDS_FILE: &str = "shards.json";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Where `--shard auto/N` reads its index, in order: Kubernetes Indexed
/// Jobs, Slurm job arrays, anything else.
pub const INDEX_VARS: [&str; 3] = ["JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID", "PIPE_SHARD"];

impl Shard {
    /// `I/N` or `auto/N`, with `env` looking up [`INDEX_VARS`].
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Shard> {
        let Some((i, n)) = text.split_once('/') else {
            bail!("--shard {text}: expected I/N (e.g. 0/8) or auto/N");
        };
        let count: u32 = match n.trim().parse() {
            Ok(n) if n > 0 => n,
            _ => bail!("--shard {text}: N must be a whole number of shards, at least 1"),
        };
        let (index, from) = if i.trim() == "auto" {
            let Some((var, value)) = INDEX_VARS
                .iter()
                .find_map(|v| env(v).map(|value| (*v, value)))
            else {
                bail!(
                    "--shard {text}: none of {} is set (Kubernetes Indexed Jobs set the first, Slurm arrays the second; set PIPE_SHARD elsewhere)",
                    INDEX_VARS.join(", ")
                );
            };
            (value.trim().to_string(), format!(" ({var}={value})"))
        } else {
            (i.trim().to_string(), String::new())
        };
        let Ok(index) = index.parse::<u32>() else {
            bail!("--shard {text}{from}: the shard index must be a whole number");
        };
        if index >= count {
            bail!("--shard {text}{from}: shard index {index} is out of range 0..{count}");
        }
        Ok(Shard { index, count })
    }

    /// Whether the per-clip node of `clip` is this shard's.
    pub fn owns(&self, clip: &str) -> bool {
        shard_of(clip, self.count) == self.index
    }

    /// Records N for the run's other shards, or checks it against theirs.
    pub fn claim(&self, store: &Store) -> Result<()> {
        let mine = format!("{{\"count\": {}}}\n", self.count);
        let Some(theirs) = store.put_meta_if_absent(SHARDS_FILE, mine.as_bytes())? else {
            return Ok(());
        };
        let count = serde_json::from_slice::<serde_json::Value>(&theirs)
            .ok()
            .and_then(|v| v["count"].as_u64());
        match count {
            Some(n) if n == u64::from(self.count) => Ok(()),
            Some(n) => bail!(
                "--shard {self}: the other shards of this run split it in {n} ({}); every shard of a run needs the same N. \
                 A finished sharded run is closed by a plain `pipe run`, which removes that file",
                store.meta_location(SHARDS_FILE)
            ),
            None => bail!(
                "{}: not a shard count file (expected {{\"count\": N}})",
                store.meta_location(SHARDS_FILE)
            ),
        }
    }
}

/// `blake3(clip)`'s first 8 bytes (little-endian) mod `count`.
pub fn shard_of(clip: &str, count: u32) -> u32 {
    let h = blake3::hash(clip.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&h.as_bytes()[..8]);
    (u64::from_le_bytes(first) % u64::from(count)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn parses_explicit_and_auto_indexes_and_names_bad_ones() {
        assert_eq!(
            Shard::parse("2/5", no_env).unwrap(),
            Shard { index: 2, count: 5 }
        );
        let slurm = |v: &str| (v == "SLURM_ARRAY_TASK_ID").then(|| "3".to_string());
        assert_eq!(
            Shard::parse("auto/4", slurm).unwrap(),
            Shard { index: 3, count: 4 }
        );
        // Kubernetes' variable wins over Slurm's when both are set.
        let both = |v: &str| match v {
            "JOB_COMPLETION_INDEX" => Some("1".to_string()),
            "SLURM_ARRAY_TASK_ID" => Some("3".to_string()),
            _ => None,
        };
        assert_eq!(Shard::parse("auto/4", both).unwrap().index, 1);
        let err = |t: &str, env: &dyn Fn(&str) -> Option<String>| {
            Shard::parse(t, env).unwrap_err().to_string()
        };
        assert!(err("5/5", &no_env).contains("shard index 5 is out of range 0..5"));
        assert!(err("1/0", &no_env).contains("at least 1"));
        assert!(err("3", &no_env).contains("expected I/N"));
        assert!(err("auto/4", &no_env).contains("JOB_COMPLETION_INDEX"));
        let e = err("auto/2", &slurm);
        assert!(
            e.contains("(SLURM_ARRAY_TASK_ID=3)") && e.contains("out of range 0..2"),
            "{e}"
        );
    }

    #[test]
    fn the_split_is_even_and_fixed() {
        let clips: Vec<String> = (0..4000).map(|i| format!("clip{i}")).collect();
        let mut sizes = [0usize; 4];
        for c in &clips {
            sizes[shard_of(c, 4) as usize] += 1;
        }
        // Binomial(4000, 1/4): sd ~27; 150 is > 5 sd.
        assert!(sizes.iter().all(|&n| n.abs_diff(1000) < 150), "{sizes:?}");
        // Known values: the partition is part of the interface (a shard of a
        // run started with one pipe must find its clips under the next).
        assert_eq!(
            ["a", "b", "c", "Schubert_D960_mv2_8bars_1_01"].map(|c| shard_of(c, 8)),
            [7, 0, 2, 3]
        );
    }

    #[test]
    fn shards_must_agree_on_n_until_the_run_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let s = |i, n| Shard { index: i, count: n };
        s(0, 3).claim(&store).unwrap();
        s(2, 3).claim(&store).unwrap();
        let e = s(1, 4).claim(&store).unwrap_err().to_string();
        assert!(
            e.contains("split it in 3") && e.contains("shards.json"),
            "{e}"
        );
        store.delete_meta(SHARDS_FILE).unwrap();
        s(1, 4).claim(&store).unwrap();
    }
}
