//! Datasets: the clip table (ids, pieces, performers, labels, folds, source
//! files) that every stage plans over.
//!
//! Must not import `dag`, `stages`, `encoder` or `features`: a dataset is
//! plain data read from label files and folders.

mod audio_folder;
pub mod dims;
pub mod failed;
pub mod folds;
mod percepiano;

pub use dims::{DIMENSIONS, Grouping, N_DIMS, PERCEPIANO_CATEGORIES, STUDY_CATEGORIES};
pub use failed::FailedClip;

use anyhow::Result;
use std::path::PathBuf;

use crate::config::{DatasetConfig, FoldConfig, FoldStrategy};

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
    /// Cross-validation fold; `None` = always in training (performer split only).
    pub fold: Option<u32>,
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
        let (mut clips, mut table_files) = match cfg {
            DatasetConfig::Percepiano {
                labels,
                metadata,
                midi_dir,
                limit,
                ..
            } => (
                percepiano::load(labels, metadata, midi_dir, *limit)?,
                vec![labels.clone(), metadata.clone()],
            ),
            DatasetConfig::AudioFolder {
                audio_dir, labels, ..
            } => (audio_folder::load(audio_dir, labels)?, vec![labels.clone()]),
        };
        clips.sort_by(|a, b| a.id.cmp(&b.id));
        let fcfg = cfg.folds().clone();
        match fcfg.strategy {
            FoldStrategy::Piece => {
                let pieces: Vec<&str> = clips.iter().map(|c| c.piece.as_str()).collect();
                let folds = folds::piece_folds(&pieces, fcfg.k, fcfg.seed);
                for c in &mut clips {
                    c.fold = Some(folds[&c.piece]);
                }
            }
            FoldStrategy::Performer => {
                let path = fcfg.performer_split.as_ref().expect("validated in config");
                let folds = folds::performer_folds(path)?;
                for c in &mut clips {
                    c.fold = folds.get(&c.id).copied();
                }
                table_files.push(path.clone());
            }
        }
        Ok(Dataset {
            clips,
            table_files,
            folds: fcfg,
        })
    }
}
