//! A feature set (layer selection × pooling × frame cap) and pooling one clip's
//! hidden states into one vector per feature set, sharing work across sets.
//!
//! `max_frames` semantics: only the **first** `min(frames, max_frames)` frames of
//! the clip enter layer selection and pooling (truncation from the start; the rest
//! is ignored). This caps what pooling sees, as the study did with 1000 frames
//! (20 s of MERT at 50 Hz, 40 s of MuQ at 25 Hz); the encoder's own windowing
//! over long clips is separate and happens before. `max_frames` must be ≥ 1.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;

use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};

use super::layers::{FrameSeq, HiddenStates, LayerSelection};
use super::pool::Pooling;

/// The study's frame cap.
pub const DEFAULT_MAX_FRAMES: usize = 1000;

fn default_max_frames() -> usize {
    DEFAULT_MAX_FRAMES
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSetSpec {
    pub layers: LayerSelection,
    pub pooling: Pooling,
    #[serde(default = "default_max_frames")]
    pub max_frames: usize,
}

impl FeatureSetSpec {
    /// Length of the pooled vector for an encoder with `n_states` states of width `hidden`.
    pub fn output_dim(&self, hidden: usize, n_states: usize) -> usize {
        self.pooling
            .output_dim(self.layers.output_dim(hidden, n_states))
    }

    /// Check against an encoder with `n_states` hidden states.
    pub fn validate(&self, n_states: usize) -> Result<()> {
        ensure!(
            self.max_frames >= 1,
            "{self}: max_frames must be at least 1"
        );
        self.layers
            .validate(n_states)
            .with_context(|| self.to_string())
    }

    /// Frames that enter pooling for a clip of `frames` frames.
    pub fn frames_used(&self, frames: usize) -> usize {
        frames.min(self.max_frames)
    }
}

impl fmt::Display for FeatureSetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "feature set (layers {}, pooling {}, max_frames {})",
            self.layers,
            self.pooling.name(),
            self.max_frames
        )
    }
}

/// Pool one clip's hidden states into one vector for `spec`.
pub fn pool_hidden_states(spec: &FeatureSetSpec, hs: &HiddenStates<'_>) -> Result<Vec<f32>> {
    pool_many(std::slice::from_ref(spec), hs).map(|mut v| v.remove(0))
}

/// Pool one clip's hidden states for every spec (same order as `specs`). Each
/// distinct (layer selection, frames used) is reduced to a frame sequence once
/// and shared by every pooling that needs it.
pub fn pool_many(specs: &[FeatureSetSpec], hs: &HiddenStates<'_>) -> Result<Vec<Vec<f32>>> {
    let mut seqs: HashMap<(&LayerSelection, usize), FrameSeq> = HashMap::new();
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        spec.validate(hs.num_states())?;
        let used = spec.frames_used(hs.frames());
        ensure!(used > 0, "{spec}: the clip has 0 frames");
        let seq = match seqs.entry((&spec.layers, used)) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(
                spec.layers
                    .select(hs, used)
                    .with_context(|| spec.to_string())?,
            ),
        };
        let v = spec.pooling.pool(seq).with_context(|| spec.to_string())?;
        out.push(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(layers: &str, pooling: Pooling, max_frames: usize) -> FeatureSetSpec {
        FeatureSetSpec {
            layers: layers.parse().unwrap(),
            pooling,
            max_frames,
        }
    }

    /// 4 states × 5 frames × 3 dims of distinct, irregular values.
    fn states() -> Vec<Vec<f32>> {
        (0..4)
            .map(|i| {
                (0..15)
                    .map(|k| ((i * 31 + k * 17) % 23) as f32 * 0.5 - 3.0)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn toml_defaults_max_frames_and_rejects_unknown_keys() {
        let s: FeatureSetSpec =
            toml::from_str("layers = \"7-12\"\npooling = \"mean_std\"").unwrap();
        assert_eq!(s, spec("7-12", Pooling::MeanStd, 1000));
        let e = toml::from_str::<FeatureSetSpec>("layers = 1\npooling = \"mean\"\nmax_frame = 3")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_frame"), "{e}");
    }

    #[test]
    fn serializes_to_stable_json_for_stage_keys() {
        let s = spec("6,9,12", Pooling::Multiscale, 500);
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(
            j,
            r#"{"layers":"6,9,12","pooling":"multiscale","max_frames":500}"#
        );
        assert_eq!(serde_json::from_str::<FeatureSetSpec>(&j).unwrap(), s);
    }

    #[test]
    fn pool_many_equals_separate_pooling() {
        let s = states();
        let hs = HiddenStates::dense(5, 3, &s).unwrap();
        let specs = vec![
            spec("1-3", Pooling::Mean, 1000),
            spec("1-3", Pooling::Stats4, 1000),
            spec("2,0", Pooling::MeanStd, 1000),
            spec("1-3", Pooling::Multiscale, 2),
            spec("all", Pooling::Max, 4),
            spec("all-concat", Pooling::Multiscale, 1000),
            spec("3", Pooling::Mean, 1),
        ];
        let many = pool_many(&specs, &hs).unwrap();
        for (sp, got) in specs.iter().zip(&many) {
            assert_eq!(got, &pool_hidden_states(sp, &hs).unwrap(), "{sp}");
            assert_eq!(got.len(), sp.output_dim(3, 4), "{sp}");
            // Also equal to selecting and pooling by hand.
            let seq = sp.layers.select(&hs, sp.frames_used(5)).unwrap();
            assert_eq!(got, &sp.pooling.pool(&seq).unwrap(), "{sp}");
        }
    }

    #[test]
    fn max_frames_keeps_the_first_frames() {
        // One state, one dim: frames 1, 3, 100 → max_frames 2 pools only 1 and 3.
        let s = vec![vec![1.0, 3.0, 100.0]];
        let hs = HiddenStates::dense(3, 1, &s).unwrap();
        let got = pool_hidden_states(&spec("0", Pooling::MeanStd, 2), &hs).unwrap();
        assert_eq!(got, vec![2.0, 1.0]);
        let got = pool_hidden_states(&spec("0", Pooling::Mean, 1000), &hs).unwrap();
        assert!((got[0] - 104.0 / 3.0).abs() < 1e-5);
    }

    #[test]
    fn errors_name_the_feature_set() {
        let s = states();
        let hs = HiddenStates::dense(5, 3, &s).unwrap();
        let e = format!(
            "{:#}",
            pool_many(&[spec("2-7", Pooling::Mean, 1000)], &hs).unwrap_err()
        );
        assert!(
            e.contains("feature set (layers 2-7, pooling mean, max_frames 1000)")
                && e.contains("this encoder has 4 hidden states (0..=3)"),
            "{e}"
        );
        let e = format!(
            "{:#}",
            pool_hidden_states(&spec("1", Pooling::Mean, 0), &hs).unwrap_err()
        );
        assert!(e.contains("max_frames must be at least 1"), "{e}");
    }
}
