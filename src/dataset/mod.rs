//! Datasets: the clip table (ids, pieces, performers, labels, folds, source
//! files) that every stage plans over.
//!
//! Must not import `dag`, `stages`, `encoder` or `features`: a dataset is
//! plain data read from label files and folders.

mod audio_folder;
pub mod dims;
pub mod folds;
mod percepiano;

pub use dims::{DIMENSIONS, Grouping, N_DIMS, PERCEPIANO_CATEGORIES, STUDY_CATEGORIES};

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
