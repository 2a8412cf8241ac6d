//! Cross-validation folds and the splits built on them.
//!
//! Two fold assignments per clip, both balanced by clip count: its segment
//! group's (`piece`) and its performer's. A [`Split`] says which of them a
//! model's test clips must not share with its training clips: `piece` (no
//! shared segment group), `performer` (no shared performer; the two
//! notation-software renderings count as two performers) or
//! `piece_performer` (neither: one model per cell of the k×k grid of piece
//! folds × performer folds, trained on the clips outside both the cell's
//! row and its column, so on about (k−1)²/k² of the clips: 56 % at k = 4).
//! PercePiano's published performer split is read too (`performer4fold.json`):
//! the `performer_published` split, whose unfolded clips only ever train.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// How a model's test clips are kept apart from what it learns from.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// No test clip shares a segment group (score excerpt) with training:
    /// the study's folds. The same performer's other segments still train.
    #[default]
    Piece,
    /// No test clip shares a performer with training: pipe's own k folds of
    /// performers, balanced by clip count.
    Performer,
    /// No test clip shares a segment group or a performer with training.
    PiecePerformer,
    /// PercePiano's published performer split (`dataset.folds.
    /// performer_split`): fold k tests its validation performers; the clips
    /// of no fold (its held-out test performers and always-train ones)
    /// train in every fold and are never scored.
    PerformerPublished,
}

impl Split {
    pub const ALL: [Split; 4] = [
        Split::Piece,
        Split::Performer,
        Split::PiecePerformer,
        Split::PerformerPublished,
    ];

    /// The name in pipeline.toml and in the tables' `split` column.
    pub fn name(self) -> &'static str {
        match self {
            Split::Piece => "piece",
            Split::Performer => "performer",
            Split::PiecePerformer => "piece_performer",
            Split::PerformerPublished => "performer_published",
        }
    }

    /// What the bootstrap resamples whole within folds on this split.
    pub fn ci_unit(self) -> &'static str {
        match self {
            Split::Piece => "piece",
            Split::Performer | Split::PerformerPublished => "performer",
            Split::PiecePerformer => "piece x performer",
        }
    }

    /// Suffix of a train/evaluate node's item: none for `piece` (the
    /// default split keeps the plain experiment id).
    pub fn item(self, experiment: &str) -> String {
        match self {
            Split::Piece => experiment.to_string(),
            other => format!("{experiment}@{}", other.name()),
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Assigns every group (piece, performer) to one of `k` folds so that fold
/// sizes (in clips) are as even as a greedy largest-first packing makes
/// them. Deterministic: the seed only breaks ties between groups of equal size.
pub fn piece_folds(pieces: &[&str], k: usize, seed: u64) -> HashMap<String, u32> {
    let mut sizes: BTreeMap<&str, usize> = BTreeMap::new();
    for p in pieces {
        *sizes.entry(p).or_default() += 1;
    }
    let mut order: Vec<(&str, usize)> = sizes.into_iter().collect();
    let tie = |name: &str| {
        let mut h = blake3::Hasher::new();
        h.update(&seed.to_le_bytes());
        h.update(name.as_bytes());
        *h.finalize().as_bytes()
    };
    order.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| tie(a.0).cmp(&tie(b.0))));
    let mut load = vec![0usize; k];
    let mut out = HashMap::new();
    for (piece, size) in order {
        let fold = (0..k).min_by_key(|&f| (load[f], f)).expect("k >= 1");
        load[fold] += size;
        out.insert(piece.to_string(), fold as u32);
    }
    out
}

/// Reads `performer4fold.json`: fold k's validation clips get fold k; every
/// other clip (the held-out test performers and the always-train ones) gets none.
pub fn performer_folds(path: &Path) -> Result<HashMap<String, u32>> {
    #[derive(serde::Deserialize)]
    struct Split {
        folds: Vec<Fold>,
    }
    #[derive(serde::Deserialize)]
    struct Fold {
        fold: u32,
        valid: Vec<String>,
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading performer split {}", path.display()))?;
    let split: Split = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: expected {{\"folds\": [{{\"fold\": k, \"valid\": [clip ids]}}]}}",
            path.display()
        )
    })?;
    let mut out = HashMap::new();
    for f in split.folds {
        for clip in f.valid {
            if let Some(prev) = out.insert(clip.clone(), f.fold) {
                bail!(
                    "{}: clip {clip} is in the validation set of folds {prev} and {}",
                    path.display(),
                    f.fold
                );
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_folds_keep_pieces_whole_and_balance_counts() {
        // Sizes 5,4,3,3,2,1 into 2 folds: greedy gives {5,3,1}=9 vs {4,3,2}=9.
        let mut pieces = Vec::new();
        for (name, n) in [("a", 5), ("b", 4), ("c", 3), ("d", 3), ("e", 2), ("f", 1)] {
            pieces.extend(std::iter::repeat_n(name, n));
        }
        let folds = piece_folds(&pieces, 2, 42);
        assert_eq!(folds.len(), 6);
        let mut load = [0; 2];
        for p in &pieces {
            load[folds[*p] as usize] += 1;
        }
        assert_eq!(load, [9, 9]);
        assert_eq!(folds["a"], 0, "largest piece goes to the first empty fold");
        assert_eq!(folds["b"], 1);
        assert_eq!(piece_folds(&pieces, 2, 42), folds, "deterministic");
    }

    #[test]
    fn seed_breaks_ties_only() {
        let pieces: Vec<String> = (0..40).map(|i| format!("p{i}")).collect();
        let refs: Vec<&str> = pieces.iter().map(|s| s.as_str()).collect();
        let a = piece_folds(&refs, 4, 1);
        let b = piece_folds(&refs, 4, 2);
        assert_ne!(a, b, "equal-size pieces are ordered by the seed");
        for f in [&a, &b] {
            let mut load = [0; 4];
            for v in f.values() {
                load[*v as usize] += 1;
            }
            assert_eq!(load, [10; 4]);
        }
    }
}
