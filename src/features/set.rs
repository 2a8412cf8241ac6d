//! A configured feature set (`[features.NAME]`): its name, its config and what
//! computes it (a weight-free baseline on the audio, a symbolic set on the
//! performance MIDI, or an encoder's layers × pooling).

use anyhow::{Result, anyhow, bail};
use serde_json::json;

use super::extract::{Baseline, Symbolic};
use super::spec::{DEFAULT_MAX_FRAMES, FeatureSetSpec};
use serde::{Deserialize, Serialize};

/// A `[features.NAME]` entry as written: how one vector per clip is made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSetConfig {
    /// A key of `[encoders]`, a weight-free baseline on the audio (`raw_stats`,
    /// `logmel_stats`, `librosa49`) or a symbolic set on the performance MIDI
    /// (`midi_stats`, `midi_notes`).
    pub encoder: String,
    /// Hidden states to use: "7-12" (mean of 7..=12), "6,9,12" (concatenated), "12", "all".
    #[serde(default)]
    pub layers: Option<String>,
    /// Pooling over time: mean, max, mean_std, stats4, multiscale; or frames (none: the sequence).
    #[serde(default)]
    pub pooling: Option<String>,
    /// At most this many frames enter pooling.
    #[serde(default = "default_max_frames")]
    pub max_frames: usize,
    #[serde(default)]
    pub description: String,
}

impl FeatureSetConfig {
    /// Whether the set stores frame sequences rather than one vector per clip.
    pub fn is_frames(&self) -> bool {
        Baseline::parse(&self.encoder).is_some_and(Baseline::is_frames)
            || self.pooling.as_deref() == Some("frames")
    }
}

fn default_max_frames() -> usize {
    DEFAULT_MAX_FRAMES
}

pub struct FeatureSet {
    pub name: String,
    pub cfg: FeatureSetConfig,
    pub kind: FeatureKind,
}

pub enum FeatureKind {
    Baseline(Baseline),
    /// From the clip's performance MIDI (no audio).
    Symbolic(Symbolic),
    /// Layer selection and pooling of the encoder `cfg.encoder`.
    Encoded(FeatureSetSpec),
}

impl FeatureSet {
    /// Checks a `[features.NAME]` entry and parses its layers and pooling.
    pub fn from_config(name: &str, cfg: &FeatureSetConfig) -> Result<FeatureSet> {
        if let Some(sym) = Symbolic::parse(&cfg.encoder) {
            let frames = cfg.pooling.as_deref() == Some("frames");
            if cfg.layers.is_some() || (sym == Symbolic::MidiStats && cfg.pooling.is_some()) {
                bail!(
                    "features.{name}: layers and pooling do not apply to the symbolic set `{}`",
                    cfg.encoder
                );
            }
            if sym == Symbolic::MidiNotes && !frames {
                bail!(
                    "features.{name}: `midi_notes` is a per-note sequence: set pooling = \"frames\""
                );
            }
            return Ok(FeatureSet {
                name: name.to_string(),
                cfg: cfg.clone(),
                kind: FeatureKind::Symbolic(sym),
            });
        }
        let kind = match Baseline::parse(&cfg.encoder) {
            Some(b) => {
                // A sequence source may say `pooling = "frames"`; nothing else applies.
                let frames_ok = b.is_frames() && cfg.pooling.as_deref() == Some("frames");
                if cfg.layers.is_some() || (cfg.pooling.is_some() && !frames_ok) {
                    bail!(
                        "features.{name}: layers and pooling do not apply to the weight-free baseline `{}`",
                        cfg.encoder
                    );
                }
                FeatureKind::Baseline(b)
            }
            None => {
                let layers = cfg.layers.as_deref().unwrap_or("7-12");
                let pooling = cfg.pooling.as_deref().unwrap_or("mean");
                let spec: FeatureSetSpec = serde_json::from_value(
                    json!({ "layers": layers, "pooling": pooling, "max_frames": cfg.max_frames }),
                )
                .map_err(|e| anyhow!("features.{name}: {e} (layers like \"7-12\", \"6,9,12\", \"12\", \"all\"; pooling one of mean, max, mean_std, stats4, multiscale, frames)"))?;
                FeatureKind::Encoded(spec)
            }
        };
        Ok(FeatureSet {
            name: name.to_string(),
            cfg: cfg.clone(),
            kind,
        })
    }

    /// The layers × pooling of an encoded set; `None` for a baseline or symbolic set.
    pub fn spec(&self) -> Option<&FeatureSetSpec> {
        match &self.kind {
            FeatureKind::Encoded(s) => Some(s),
            FeatureKind::Baseline(_) | FeatureKind::Symbolic(_) => None,
        }
    }

    /// Whether each clip's value is a sequence of frames (`pooling = "frames"`).
    pub fn is_sequence(&self) -> bool {
        match &self.kind {
            FeatureKind::Encoded(s) => s.pooling == super::Pooling::Frames,
            FeatureKind::Symbolic(s) => *s == Symbolic::MidiNotes,
            FeatureKind::Baseline(b) => b.is_frames(),
        }
    }

    /// The width of one frame when it does not depend on an encoder.
    pub fn fixed_frame_dim(&self) -> Option<usize> {
        match &self.kind {
            FeatureKind::Symbolic(Symbolic::MidiNotes) => Some(super::midi_notes::NOTE_COLUMNS),
            FeatureKind::Baseline(b) => b.frame_dim(),
            _ => None,
        }
    }

    /// Reads the clip's performance MIDI instead of its audio.
    pub fn is_symbolic(&self) -> bool {
        matches!(self.kind, FeatureKind::Symbolic(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(toml_text: &str) -> Result<FeatureSet> {
        let cfg: FeatureSetConfig = toml::from_str(toml_text).unwrap();
        FeatureSet::from_config("x", &cfg)
    }

    #[test]
    fn symbolic_sets_parse_and_check_their_keys() {
        let s = set("encoder = \"midi_stats\"").unwrap();
        assert!(s.is_symbolic() && !s.is_sequence() && s.spec().is_none());
        let n = set("encoder = \"midi_notes\"\npooling = \"frames\"\nmax_frames = 64").unwrap();
        assert!(n.is_symbolic() && n.is_sequence());
        assert_eq!(n.fixed_frame_dim(), Some(7));
        let e = set("encoder = \"midi_notes\"").err().unwrap().to_string();
        assert!(
            e.contains("features.x") && e.contains("pooling = \"frames\""),
            "{e}"
        );
        let e = set("encoder = \"midi_stats\"\nlayers = \"1\"")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("do not apply to the symbolic set `midi_stats`"),
            "{e}"
        );
        let l = set("encoder = \"librosa49\"").unwrap();
        assert!(matches!(l.kind, FeatureKind::Baseline(Baseline::Librosa49)));
        assert!(!l.is_symbolic() && !l.is_sequence());
    }
}
