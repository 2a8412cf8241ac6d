//! One handle over every encoder architecture, for the callers that should
//! not care which one runs: the features stage, `pipe encode`, device pooling.

use super::backend::Backend;
use super::config::MertConfig;
use super::mert::{EncoderOutput, Mert, Window, WindowVisitor};
use super::mert_weights::MertWeights;
use super::muq::{MelWindows, Muq};
use super::muq_config::MuqConfig;
use super::muq_weights::MuqWeights;
use anyhow::{Context, Result, bail};
use std::path::Path;

/// An architecture with its configuration.
#[derive(Clone, Debug, PartialEq)]
pub enum ArchConfig {
    Mert(MertConfig),
    Muq(MuqConfig),
}

/// Host weights of either architecture.
pub enum HostWeights {
    Mert(MertWeights),
    Muq(MuqWeights),
}

impl ArchConfig {
    /// Read `dir/config.json`: MuQ if it has a `w2v2_config`, else MERT (HF HuBERT layout).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(if MuqConfig::is_muq_json(&text) {
            Self::Muq(MuqConfig::from_dir(dir)?)
        } else {
            Self::Mert(MertConfig::from_dir(dir)?)
        })
    }

    /// A seeded-random architecture: `arch` "mert" (control, 95m, 330m) or "muq" (control, large).
    pub fn preset(arch: &str, name: &str) -> Result<Self> {
        Ok(match arch {
            "mert" => Self::Mert(MertConfig::preset(name).map_err(|e| {
                anyhow::anyhow!("{e} (MuQ's are control and large, with the muq architecture)")
            })?),
            "muq" => Self::Muq(MuqConfig::preset(name).map_err(|e| {
                anyhow::anyhow!(
                    "{e} (MERT's are control, 95m and 330m, with the mert architecture)"
                )
            })?),
            other => bail!("unknown encoder architecture {other:?}: expected mert or muq"),
        })
    }

    /// `mert` or `muq`.
    pub fn arch(&self) -> &'static str {
        match self {
            Self::Mert(_) => "mert",
            Self::Muq(_) => "muq",
        }
    }

    pub fn hidden_size(&self) -> usize {
        match self {
            Self::Mert(c) => c.hidden_size,
            Self::Muq(c) => c.encoder_dim,
        }
    }

    pub fn num_hidden_states(&self) -> usize {
        match self {
            Self::Mert(c) => c.num_hidden_states(),
            Self::Muq(c) => c.num_hidden_states(),
        }
    }

    pub fn sample_rate(&self) -> u32 {
        match self {
            Self::Mert(c) => c.sample_rate,
            Self::Muq(c) => c.sample_rate,
        }
    }

    /// Output frames per second (75 for MERT-v1, 25 for MuQ).
    pub fn frame_rate_hz(&self) -> f64 {
        match self {
            Self::Mert(c) => f64::from(c.sample_rate) / c.hop() as f64,
            Self::Muq(c) => {
                f64::from(c.sample_rate) / (c.hop_length * super::muq_config::SUBSAMPLING) as f64
            }
        }
    }

    pub fn max_frames(&self) -> usize {
        match self {
            Self::Mert(c) => c.max_frames,
            Self::Muq(c) => c.max_frames,
        }
    }

    pub fn set_max_frames(&mut self, n: usize) {
        match self {
            Self::Mert(c) => c.max_frames = n,
            Self::Muq(c) => c.max_frames = n,
        }
    }

    /// The windows a clip of `n` samples runs in.
    pub fn window_plan(&self, n: usize) -> Result<Vec<Window>> {
        match self {
            Self::Mert(c) => super::mert::window_plan(c, n),
            Self::Muq(c) => super::muq::window_plan(c, n),
        }
    }

    /// Load this architecture's weights from `dir/model.safetensors`.
    pub fn load_weights(&self, dir: &Path) -> Result<HostWeights> {
        Ok(match self {
            Self::Mert(c) => HostWeights::Mert(MertWeights::from_dir(c, dir)?),
            Self::Muq(c) => HostWeights::Muq(MuqWeights::from_dir(c, dir)?),
        })
    }

    /// Seeded random weights of this architecture's shapes.
    pub fn random_weights(&self, seed: u64) -> HostWeights {
        match self {
            Self::Mert(c) => HostWeights::Mert(MertWeights::random_init(c, seed)),
            Self::Muq(c) => HostWeights::Muq(MuqWeights::random_init(c, seed)),
        }
    }
}

/// A clip after the host half of its pass: MERT takes the waveform as it is
/// (its per-window normalisation is cheap), MuQ its windows' log-mel.
pub enum Prepared<'a> {
    Wave(&'a [f32]),
    Mels(MelWindows),
}

/// A loaded encoder of either architecture on backend `B`.
pub enum Encoder<B: Backend> {
    Mert(Mert<B>),
    Muq(Muq<B>),
}

impl<B: Backend> Encoder<B> {
    /// Prepare host weights on the backend.
    pub fn new(backend: &B, cfg: ArchConfig, w: &HostWeights) -> Result<Self> {
        Ok(match (cfg, w) {
            (ArchConfig::Mert(c), HostWeights::Mert(w)) => Self::Mert(Mert::new(backend, c, w)?),
            (ArchConfig::Muq(c), HostWeights::Muq(w)) => Self::Muq(Muq::new(backend, c, w)?),
            (c, _) => bail!("{} config with weights of another architecture", c.arch()),
        })
    }

    /// Load a model folder (`config.json` + `model.safetensors`), architecture from the config.
    pub fn load(backend: &B, dir: &Path) -> Result<Self> {
        let cfg = ArchConfig::from_dir(dir)?;
        let w = cfg.load_weights(dir)?;
        Self::new(backend, cfg, &w)
    }

    pub fn config(&self) -> ArchConfig {
        match self {
            Self::Mert(m) => ArchConfig::Mert(m.config().clone()),
            Self::Muq(m) => ArchConfig::Muq(m.config().clone()),
        }
    }

    /// The host half of a pass (MuQ's mel front end), to run outside a shared
    /// device's lock; then [`Self::encode_prepared`].
    pub fn prepare<'a>(&self, wave: &'a [f32]) -> Result<Prepared<'a>> {
        Ok(match self {
            Self::Mert(_) => Prepared::Wave(wave),
            Self::Muq(m) => Prepared::Mels(m.prepare(wave)?),
        })
    }

    /// Frames a prepared clip will have.
    pub fn planned_frames(&self, input: &Prepared) -> Result<usize> {
        Ok(match input {
            Prepared::Wave(w) => self
                .config()
                .window_plan(w.len())?
                .iter()
                .map(|w| w.frames)
                .sum(),
            Prepared::Mels(m) => m.frames(),
        })
    }

    /// Encode a clip [`Self::prepare`]d by this encoder window by window, handing
    /// each window's wanted states (on the device) to `visit`; returns the
    /// clip's frame count.
    pub fn encode_prepared(
        &self,
        backend: &B,
        input: &Prepared,
        want: &[usize],
        visit: &mut WindowVisitor<B>,
    ) -> Result<usize> {
        match (self, input) {
            (Self::Mert(m), Prepared::Wave(w)) => m.encode_windows(backend, w, want, visit),
            (Self::Muq(m), Prepared::Mels(x)) => m.encode_mels(backend, x, want, visit),
            _ => bail!("clip prepared for another architecture"),
        }
    }

    /// Encode a whole clip, downloading the states in `want`; frames of all windows concatenated.
    pub fn encode(&self, backend: &B, wave: &[f32], want: &[usize]) -> Result<EncoderOutput> {
        match self {
            Self::Mert(m) => m.encode(backend, wave, want),
            Self::Muq(m) => m.encode(backend, wave, want),
        }
    }
}
