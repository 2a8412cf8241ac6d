//! Datasets: the clip table (ids, pieces, performers, labels, folds, source
//! files) that every stage plans over.
//!
//! Must not import `dag`, `stages`, `encoder` or `features`: a dataset is
//! plain data read from label files and folders.

mod audio_folder;
pub mod config;
pub mod failed;
pub mod folds;
mod percepiano;

pub use config::{DatasetConfig, FoldConfig, FoldStrategy};
pub use failed::FailedClip;

use anyhow::Result;
use std::path::PathBuf;

use crate::dims::{DIMENSIONS, N_DIMS};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// A performance MIDI file, rendered to audio first.
    Midi,
    /// A recording, decoded directly.
    Audio,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Clip {
    pub id: String,
    /// The score excerpt: the unit folds group by.
    pub piece: String,
    pub work: String,
    pub performer: String,
    /// A notation-software rendering (PercePiano's `Score`/`Score2`), not a human.
    pub is_rendering: bool,
    pub source: PathBuf,
    pub source_kind: SourceKind,
    /// The 19 labels in canonical order.
    pub labels: [f64; N_DIMS],
    /// Standard error of each label (a mean of ratings), where the dataset
    /// gives the raters' spread: what counts as a real difference in
    /// pairwise accuracy.
    pub label_se: Option<[f64; N_DIMS]>,
    /// Cross-validation fold; `None` = always in training (performer split only).
    pub fold: Option<u32>,
    /// Its performer's fold (the `performer` and `piece_performer` splits);
    /// `None` where the dataset has fewer performers than folds.
    pub performer_fold: Option<u32>,
    /// Its fold in PercePiano's published performer split, where
    /// `dataset.folds.performer_split` names one (`None`: it only trains).
    pub published_fold: Option<u32>,
}

#[derive(Clone, Debug)]
pub struct Dataset {
    /// Sorted by id.
    pub clips: Vec<Clip>,
    /// Files whose content determines the clip table (labels, metadata, split).
    pub table_files: Vec<PathBuf>,
    pub folds: FoldConfig,
}

impl Dataset {
    /// A clip that did not make it, with its source file, for the failed lists.
    pub fn failed_clip(&self, clip_id: &str, stage: &str, reason: &str) -> FailedClip {
        let file = self
            .clips
            .iter()
            .find(|c| c.id == clip_id)
            .map_or(String::new(), |c| {
                let s = c.source.display().to_string();
                s.trim_start_matches("./").to_string()
            });
        FailedClip {
            clip_id: clip_id.to_string(),
            file,
            stage: stage.to_string(),
            reason: reason.to_string(),
        }
    }

    pub fn load(cfg: &DatasetConfig) -> Result<Dataset> {
        let fcfg = cfg.folds().clone();
        let (mut clips, mut table_files) = match cfg {
            DatasetConfig::Percepiano {
                labels,
                metadata,
                midi_dir,
                limit,
                ..
            } => (
                percepiano::load(labels, metadata, midi_dir, limit.map(|n| (n, fcfg.seed)))?,
                vec![labels.clone(), metadata.clone()],
            ),
            DatasetConfig::AudioFolder {
                audio_dir, labels, ..
            } => (audio_folder::load(audio_dir, labels)?, vec![labels.clone()]),
        };
        clips.sort_by(|a, b| a.id.cmp(&b.id));
        // PercePiano's published performer split, read once: the
        // `performer_published` split's folds, and `fold` itself under
        // `strategy = "performer"`.
        let published = match &fcfg.performer_split {
            Some(path) => {
                table_files.push(path.clone());
                Some(folds::performer_folds(path)?)
            }
            None => None,
        };
        match fcfg.strategy {
            FoldStrategy::Piece => {
                let pieces: Vec<&str> = clips.iter().map(|c| c.piece.as_str()).collect();
                let n_pieces = pieces
                    .iter()
                    .collect::<std::collections::BTreeSet<_>>()
                    .len();
                if fcfg.k > n_pieces {
                    let hint = match cfg {
                        DatasetConfig::Percepiano { limit: Some(n), .. } => {
                            format!(" (dataset.limit = {n} keeps {} clips)", clips.len())
                        }
                        _ => String::new(),
                    };
                    anyhow::bail!(
                        "dataset.folds.k = {}: the dataset has {n_pieces} piece(s){hint}, and folds never \
                         split a piece: lower k to at most {n_pieces} or use more pieces",
                        fcfg.k
                    );
                }
                let folds = folds::piece_folds(&pieces, fcfg.k, fcfg.seed);
                for c in &mut clips {
                    c.fold = Some(folds[&c.piece]);
                }
            }
            FoldStrategy::Performer => {
                let folds = published.as_ref().expect("validated in config");
                for c in &mut clips {
                    c.fold = folds.get(&c.id).copied();
                }
            }
        }
        if let Some(folds) = &published {
            for c in &mut clips {
                c.published_fold = folds.get(&c.id).copied();
            }
        }
        // Performers into k folds the way pieces are (a performer's clips
        // stay together); none with fewer performers than folds.
        let performers: Vec<&str> = clips.iter().map(|c| c.performer.as_str()).collect();
        let n_performers = performers
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        if n_performers >= fcfg.k {
            let folds = folds::piece_folds(&performers, fcfg.k, fcfg.seed);
            for c in &mut clips {
                c.performer_fold = Some(folds[&c.performer]);
            }
        }
        Ok(Dataset {
            clips,
            table_files,
            folds: fcfg,
        })
    }

    /// The labels file(s), for messages.
    fn labels_file(&self) -> String {
        self.table_files
            .first()
            .map_or_else(String::new, |p| format!("{}: ", p.display()))
    }

    /// Every label lies in `range`; else an error naming the file, clip and
    /// dimension, and `why` the range applies.
    pub fn check_label_range(&self, range: std::ops::RangeInclusive<f64>, why: &str) -> Result<()> {
        for c in &self.clips {
            if let Some(d) = c.labels.iter().position(|y| !range.contains(y)) {
                anyhow::bail!(
                    "{}clip `{}`: label `{}` = {} is outside [{}, {}], {why}",
                    self.labels_file(),
                    c.id,
                    DIMENSIONS[d],
                    c.labels[d],
                    range.start(),
                    range.end()
                );
            }
        }
        Ok(())
    }

    /// What training and evaluation need of the folds, checked before any
    /// work: every fold's held-out clips vary on every dimension (else R² is
    /// undefined there), and the other folds hold at least 2 pieces (one
    /// becomes the early-stopping validation split).
    pub fn check_trainable(&self) -> Result<()> {
        let folded: Vec<(&Clip, u32)> = self
            .clips
            .iter()
            .filter_map(|c| c.fold.map(|f| (c, f)))
            .collect();
        let k = folded.iter().map(|(_, f)| f + 1).max().unwrap_or(0);
        for f in 0..k {
            let held: Vec<&Clip> = folded
                .iter()
                .filter(|(_, g)| *g == f)
                .map(|(c, _)| *c)
                .collect();
            if held.is_empty() {
                anyhow::bail!("fold {f} of 0..{k} has no clips");
            }
            for (d, name) in DIMENSIONS.iter().enumerate() {
                let first = held[0].labels[d];
                if held.iter().all(|c| c.labels[d] == first) {
                    anyhow::bail!(
                        "{}dimension `{name}` is {first} for all {} clip(s) of fold {f} ({}): R² is \
                         undefined on a constant column; check the labels or use fewer folds",
                        self.labels_file(),
                        held.len(),
                        held.iter()
                            .take(3)
                            .map(|c| c.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                            + if held.len() > 3 { ", ..." } else { "" }
                    );
                }
            }
            let others: std::collections::BTreeSet<&str> = folded
                .iter()
                .filter(|(_, g)| *g != f)
                .map(|(c, _)| c.piece.as_str())
                .collect();
            if others.len() < 2 {
                anyhow::bail!(
                    "fold {f}: the other folds hold {} piece(s); training needs 2 (one is held out \
                     for early stopping): use more pieces or fewer folds (dataset.folds.k = {})",
                    others.len(),
                    self.folds.k
                );
            }
        }
        Ok(())
    }
}

/// A CSV reader's error in the file's own line numbers (csv's record
/// numbers would be a second numbering beside them).
fn csv_error(path: &std::path::Path, e: csv::Error) -> anyhow::Error {
    let line = e.position().map(|p| p.line());
    let what = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} field(s), but the header has {expected_len}"),
        csv::ErrorKind::Utf8 { err, .. } => format!("not UTF-8 text ({err})"),
        csv::ErrorKind::Io(err) => format!("cannot be read: {err}"),
        _ => e.to_string(),
    };
    match line {
        Some(l) => anyhow::anyhow!("{}: line {l}: {what}", path.display()),
        None => anyhow::anyhow!("{}: {what}", path.display()),
    }
}

/// `n` clips spread over the pieces: round-robin over the pieces in a seeded
/// order, each piece's clips in a seeded order, so any `n` of a few dozen
/// holds as many pieces as it can (a k-fold split needs pieces, not clips).
fn spread_over_pieces(clips: Vec<Clip>, n: usize, seed: u64) -> Vec<Clip> {
    if n >= clips.len() {
        return clips;
    }
    let order = |name: &str| {
        let mut h = blake3::Hasher::new();
        h.update(b"dataset.limit");
        h.update(&seed.to_le_bytes());
        h.update(name.as_bytes());
        *h.finalize().as_bytes()
    };
    let mut by_piece: std::collections::BTreeMap<String, Vec<Clip>> = Default::default();
    for c in clips {
        by_piece.entry(c.piece.clone()).or_default().push(c);
    }
    let mut pieces: Vec<Vec<Clip>> = by_piece.into_values().collect();
    for p in &mut pieces {
        p.sort_by_cached_key(|c| order(&c.id));
        p.reverse(); // popped from the back
    }
    pieces.sort_by_cached_key(|p| order(&p[0].piece));
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        for p in &mut pieces {
            if out.len() == n {
                break;
            }
            if let Some(c) = p.pop() {
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(id: &str, piece: &str) -> Clip {
        Clip {
            id: id.into(),
            piece: piece.into(),
            work: piece.into(),
            performer: String::new(),
            is_rendering: false,
            source: PathBuf::new(),
            source_kind: SourceKind::Audio,
            labels: [0.5; N_DIMS],
            fold: None,
            performer_fold: None,
            published_fold: None,
            label_se: None,
        }
    }

    fn dataset(clips: Vec<Clip>) -> Dataset {
        Dataset {
            clips,
            table_files: vec![PathBuf::from("labels.csv")],
            folds: FoldConfig::default(),
        }
    }

    /// Labels that training would reject are named by clip and dimension
    /// when they are read, not as "label dimension 16 of clip 7".
    #[test]
    fn out_of_range_and_constant_labels_are_named() {
        let mut clips: Vec<Clip> = (0..6)
            .map(|i| clip(&format!("c{i}"), &format!("p{i}")))
            .collect();
        for (i, c) in clips.iter_mut().enumerate() {
            c.fold = Some((i % 2) as u32);
            for (d, y) in c.labels.iter_mut().enumerate() {
                *y = 0.2 + 0.1 * ((i + d) % 7) as f64;
            }
        }
        let ok = dataset(clips.clone());
        ok.check_trainable().unwrap();
        ok.check_label_range(0.0..=1.0, "why").unwrap();

        let mut bad = clips.clone();
        bad[3].labels[16] = 1.7;
        let e = dataset(bad)
            .check_label_range(0.0..=1.0, "the sigmoid's range")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "labels.csv: clip `c3`: label `mood_energy` = 1.7 is outside [0, 1], the sigmoid's range"
        );

        let mut flat = clips.clone();
        for c in flat.iter_mut().filter(|c| c.fold == Some(1)) {
            c.labels[11] = 0.5;
        }
        let e = dataset(flat).check_trainable().unwrap_err().to_string();
        assert!(
            e.contains("dimension `pace` is 0.5 for all 3 clip(s) of fold 1 (c1, c3, c5)"),
            "{e}"
        );

        // Two folds of one piece each: no piece left for validation.
        let mut two: Vec<Clip> = clips.into_iter().take(4).collect();
        for c in &mut two {
            c.piece = format!("piece of fold {}", c.fold.unwrap());
        }
        let e = dataset(two).check_trainable().unwrap_err().to_string();
        assert!(e.contains("the other folds hold 1 piece(s)"), "{e}");
    }

    #[test]
    fn limit_spreads_clips_over_pieces_and_is_seeded() {
        // 10 pieces of 8 clips, ids sorted so the first 20 are 3 pieces.
        let clips: Vec<Clip> = (0..80)
            .map(|i| clip(&format!("c{i:02}"), &format!("p{}", i / 8)))
            .collect();
        let pieces = |cs: &[Clip]| {
            cs.iter()
                .map(|c| c.piece.clone())
                .collect::<std::collections::BTreeSet<_>>()
        };
        let pick = spread_over_pieces(clips.clone(), 20, 42);
        assert_eq!(pick.len(), 20);
        assert_eq!(pieces(&pick).len(), 10, "every piece, two clips each");
        for p in pieces(&pick) {
            assert_eq!(pick.iter().filter(|c| c.piece == p).count(), 2);
        }
        let pick7 = spread_over_pieces(clips.clone(), 7, 42);
        assert_eq!(pieces(&pick7).len(), 7, "as many pieces as clips");
        let ids = |cs: &[Clip]| cs.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&spread_over_pieces(clips.clone(), 20, 42)), ids(&pick));
        assert_ne!(
            ids(&spread_over_pieces(clips.clone(), 20, 7)),
            ids(&pick),
            "seeded"
        );
        assert_eq!(spread_over_pieces(clips.clone(), 500, 42).len(), 80);
    }
}
