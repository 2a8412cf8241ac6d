//! `[dataset]` of pipeline.toml: which clips (PercePiano or a folder of
//! recordings) and how they are split into folds.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A dataset: PercePiano MIDI (rendered to audio) or a folder of recordings.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "RawDataset")]
pub enum DatasetConfig {
    Percepiano {
        /// `label_2round_mean_reg_19_with0_rm_highstd0.json`: clip -> 19 means (+ an unused 20th value).
        labels: PathBuf,
        /// The per-segment metadata table (`manifest.csv`).
        metadata: PathBuf,
        /// Folder of performance MIDI files named `<clip_id>.mid`.
        midi_dir: PathBuf,
        folds: FoldConfig,
        /// Use only N clips, spread over the pieces (seeded by
        /// `folds.seed`): quick trials that still have pieces to fold.
        limit: Option<usize>,
    },
    AudioFolder {
        /// Folder of audio files (wav, flac, mp3, ogg).
        audio_dir: PathBuf,
        /// CSV: clip_id, piece, optional performer, optional file, and the 19 dimensions.
        labels: PathBuf,
        folds: FoldConfig,
    },
}

/// `[dataset]` as written: one plain table (so a wrong key or value is
/// reported at its own line, which serde's internally tagged enums lose),
/// checked against its `kind` by [`DatasetConfig::try_from`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataset {
    kind: DatasetKind,
    labels: Option<PathBuf>,
    metadata: Option<PathBuf>,
    midi_dir: Option<PathBuf>,
    audio_dir: Option<PathBuf>,
    limit: Option<usize>,
    #[serde(default)]
    folds: FoldConfig,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum DatasetKind {
    Percepiano,
    AudioFolder,
}

impl TryFrom<RawDataset> for DatasetConfig {
    type Error = String;
    fn try_from(r: RawDataset) -> std::result::Result<Self, String> {
        let (kind, needs, allows): (&str, &[&str], &[&str]) = match r.kind {
            DatasetKind::Percepiano => (
                "percepiano",
                &["labels", "metadata", "midi_dir"],
                &["limit", "folds"],
            ),
            DatasetKind::AudioFolder => ("audio_folder", &["audio_dir", "labels"], &["folds"]),
        };
        let given = [
            ("labels", r.labels.is_some()),
            ("metadata", r.metadata.is_some()),
            ("midi_dir", r.midi_dir.is_some()),
            ("audio_dir", r.audio_dir.is_some()),
            ("limit", r.limit.is_some()),
        ];
        for (key, set) in given {
            if set && !needs.contains(&key) && !allows.contains(&key) {
                return Err(format!(
                    "dataset.{key}: not a key of kind = \"{kind}\" (its keys: {})",
                    [needs, allows].concat().join(", ")
                ));
            }
        }
        for key in needs {
            if !given.iter().any(|(k, set)| k == key && *set) {
                return Err(format!(
                    "dataset.{key}: missing; kind = \"{kind}\" needs {}",
                    needs.join(", ")
                ));
            }
        }
        let labels = r.labels.expect("checked above");
        Ok(match r.kind {
            DatasetKind::Percepiano => DatasetConfig::Percepiano {
                labels,
                metadata: r.metadata.expect("checked above"),
                midi_dir: r.midi_dir.expect("checked above"),
                folds: r.folds,
                limit: r.limit,
            },
            DatasetKind::AudioFolder => DatasetConfig::AudioFolder {
                audio_dir: r.audio_dir.expect("checked above"),
                labels,
                folds: r.folds,
            },
        })
    }
}

impl DatasetConfig {
    pub fn folds(&self) -> &FoldConfig {
        match self {
            DatasetConfig::Percepiano { folds, .. } | DatasetConfig::AudioFolder { folds, .. } => {
                folds
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FoldConfig {
    #[serde(default)]
    pub strategy: FoldStrategy,
    /// Number of folds for the piece split.
    #[serde(default = "default_k")]
    pub k: usize,
    /// Tie-break seed for the piece split.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// PercePiano's performer split (`performer4fold.json`), for `strategy = "performer"`.
    #[serde(default)]
    pub performer_split: Option<PathBuf>,
}

impl Default for FoldConfig {
    fn default() -> Self {
        FoldConfig {
            strategy: FoldStrategy::Piece,
            k: default_k(),
            seed: default_seed(),
            performer_split: None,
        }
    }
}

fn default_k() -> usize {
    4
}
fn default_seed() -> u64 {
    42
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FoldStrategy {
    /// Group by score excerpt: every performance of an excerpt in one fold.
    #[default]
    Piece,
    /// PercePiano's performer folds (validation performers per fold).
    Performer,
}
