//! An `[encoders.NAME]` entry of pipeline.toml: the architecture, where the
//! weights come from, the device the forward pass runs on and the states cache.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

fn normalize_by_default() -> bool {
    true
}

/// An encoder: its architecture and where its weights come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderConfig {
    /// Architecture family: "mert" (MERT-v1) or "muq" (MuQ).
    pub arch: String,
    /// Folder with HF `config.json` + `model.safetensors`.
    #[serde(default)]
    pub weights: Option<PathBuf>,
    /// Seeded random weights of a named size instead (MERT: `control`, `95m`,
    /// `330m`; MuQ: `control`, `large`): a control, never pre-trained.
    #[serde(default)]
    pub random: Option<String>,
    #[serde(default)]
    pub seed: u64,
    /// The HF processor's per-clip waveform normalisation.
    #[serde(default = "normalize_by_default")]
    pub normalize: bool,
    /// Most frames per forward pass; longer clips run in windows. Default:
    /// 1000 for MERT (13.3 s at 75 Hz), 250 for MuQ (10 s at 25 Hz, its training length).
    #[serde(default)]
    pub window_frames: Option<usize>,
    /// How to get the weights, printed when `weights` is missing.
    #[serde(default)]
    pub download_hint: Option<String>,
    /// Where the forward pass runs. Not part of any key: both backends
    /// compute the same function (each matches the PyTorch goldens to 1e-4).
    #[serde(default)]
    pub device: Device,
    /// Keep these hidden states of every clip on disk in f16 (`"7-12"`,
    /// `"6,9,12"`, `"12"`, `"all"`): feature sets whose layers they cover are
    /// pooled from the cache, so a new pooling or layer set within them needs
    /// no encoder pass. Off by default (see README, "Hidden-state cache").
    #[serde(default)]
    pub cache_states: Option<String>,
}

impl EncoderConfig {
    /// The params that determine the encoder's output, for artifact keys (the
    /// weights' content is an input of its own; `device` is not here: both
    /// backends compute the same function).
    pub fn output_params(&self) -> serde_json::Value {
        serde_json::json!({
            "arch": self.arch,
            "random": self.random,
            "seed": if self.random.is_some() { Some(self.seed) } else { None },
            "normalize": self.normalize,
            "window_frames": self.window_frames(),
        })
    }

    /// [`EncoderConfig::window_frames`] or the architecture's default.
    pub fn window_frames(&self) -> usize {
        self.window_frames.unwrap_or(match self.arch.as_str() {
            "muq" => super::MuqConfig::large().max_frames,
            _ => super::MertConfig::mert_95m().max_frames,
        })
    }
}

/// Backend of an encoder's forward pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    /// A hardware GPU adapter if there is one (never a software rasteriser
    /// such as lavapipe, which is slower than the CPU backend), else the CPU.
    #[default]
    Auto,
    Cpu,
    /// The WGSL shaders on any Vulkan adapter, lavapipe included; an error if none.
    Gpu,
}
