//! MuQ configuration (SPEC §2.2): the values the forward pass needs, read
//! from the checkpoint's `config.json` (MuQConfig with `w2v2_config` and
//! `stat`). Every value the spec could not confirm for the real checkpoint is
//! read, never assumed: a missing key is an error naming it.

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

use crate::encoder::nn::parse_act;

/// STFT size of MuQ's `melspec_2048` feature (also the window length).
pub const N_FFT: usize = 2048;
/// Mel frames per MuQ frame: two stride-2 subsampling blocks.
pub const SUBSAMPLING: usize = 4;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MuqConfig {
    /// Conformer width H (`encoder_dim`).
    pub encoder_dim: usize,
    /// Conformer blocks L (`encoder_depth`; overrides `w2v2_config.num_hidden_layers`).
    pub encoder_depth: usize,
    /// Channels of the 2-D conv subsampling (`conv_dim`).
    pub conv_dim: usize,
    pub n_mels: usize,
    pub hop_length: usize,
    /// `stat.melspec_2048_mean` / `_std`: the global normalisation of the dB mel.
    pub mel_mean: f64,
    pub mel_std: f64,
    /// `w2v2_config.num_attention_heads`.
    pub num_attention_heads: usize,
    /// `w2v2_config.intermediate_size` (FFN width).
    pub intermediate_size: usize,
    /// `w2v2_config.hidden_act`.
    pub hidden_act: String,
    /// `w2v2_config.rotary_embedding_base`.
    pub rotary_embedding_base: f64,
    /// `w2v2_config.conv_depthwise_kernel_size`.
    pub conv_depthwise_kernel_size: usize,
    /// `w2v2_config.layer_norm_eps`: the encoder's final LayerNorm (the
    /// per-block LayerNorms use PyTorch's default 1e-5, as the reference does).
    pub layer_norm_eps: f32,
    pub sample_rate: u32,
    /// Most frames per forward pass; longer clips run in windows (250 = 10 s,
    /// MuQ's training clip length).
    pub max_frames: usize,
}

/// Eps of every LayerNorm and BatchNorm inside the blocks (PyTorch default).
pub const BLOCK_EPS: f32 = 1e-5;

fn get<'a>(v: &'a Value, path: &str) -> Result<&'a Value> {
    path.split('.')
        .try_fold(v, |v, k| v.get(k))
        .with_context(|| format!("missing key {path}"))
}

fn usize_at(v: &Value, path: &str) -> Result<usize> {
    let x = get(v, path)?;
    x.as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .with_context(|| format!("{path} = {x}: expected a non-negative integer"))
}

fn f64_at(v: &Value, path: &str) -> Result<f64> {
    let x = get(v, path)?;
    x.as_f64()
        .with_context(|| format!("{path} = {x}: expected a number"))
}

fn str_at<'a>(v: &'a Value, path: &str) -> Result<&'a str> {
    let x = get(v, path)?;
    x.as_str()
        .with_context(|| format!("{path} = {x}: expected a string"))
}

impl MuqConfig {
    /// MuQ-large (`OpenMuQ/MuQ-large-msd-iter`) as the spec derives it: for
    /// benchmarks and a full-size random control. Real weights always come
    /// with their own `config.json`, which is what gets read then.
    pub fn large() -> Self {
        Self {
            encoder_dim: 1024,
            encoder_depth: 12,
            conv_dim: 512,
            n_mels: 128,
            hop_length: 240,
            mel_mean: 6.768_444_971_712_967,
            mel_std: 18.417_922_652_295_623,
            num_attention_heads: 16,
            intermediate_size: 4096,
            hidden_act: "swish".into(),
            rotary_embedding_base: 10_000.0,
            conv_depthwise_kernel_size: 31,
            layer_norm_eps: 1e-5,
            sample_rate: 24_000,
            max_frames: 250,
        }
    }

    /// The pipeline's random-init MuQ control: MuQ-large's layout (mel front
    /// end, two residual 2-D conv blocks, 12 Conformer blocks with rotary
    /// attention and a depthwise-31 conv module, 13 hidden states, 25 Hz) at
    /// reduced width (conv 16 channels, H 64, one 64-wide head, FFN 256).
    /// Seeded random weights: never a pre-trained result.
    pub fn control() -> Self {
        Self {
            encoder_dim: 64,
            conv_dim: 16,
            num_attention_heads: 1,
            intermediate_size: 256,
            ..Self::large()
        }
    }

    /// A named architecture for seeded random weights: `control` or `large`.
    pub fn preset(name: &str) -> Result<Self> {
        Ok(match name {
            "control" => Self::control(),
            "large" => Self::large(),
            other => bail!("unknown MuQ preset {other:?}: expected control or large"),
        })
    }

    /// Parse MuQ's `config.json` (see module docs).
    pub fn from_json(text: &str) -> Result<Self> {
        let v: Value = serde_json::from_str(text).context("parsing MuQ config.json")?;
        if let Ok(features) = get(&v, "features") {
            let names: Vec<&str> = features
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            ensure!(
                names.contains(&"melspec_2048"),
                "features = {features}: only the \"melspec_2048\" front end is supported"
            );
        }
        let label_rate = usize_at(&v, "label_rate")?;
        ensure!(
            label_rate == 25,
            "label_rate = {label_rate}: only 25 Hz (100 Hz mel subsampled x4) is supported"
        );
        let pos = str_at(&v, "w2v2_config.position_embeddings_type")?;
        ensure!(
            pos == "rotary",
            "w2v2_config.position_embeddings_type = {pos:?}: only \"rotary\" is supported"
        );
        let cfg = Self {
            encoder_dim: usize_at(&v, "encoder_dim")?,
            encoder_depth: usize_at(&v, "encoder_depth")?,
            conv_dim: usize_at(&v, "conv_dim")?,
            n_mels: usize_at(&v, "n_mels")?,
            hop_length: usize_at(&v, "hop_length")?,
            mel_mean: f64_at(&v, "stat.melspec_2048_mean")?,
            mel_std: f64_at(&v, "stat.melspec_2048_std")?,
            num_attention_heads: usize_at(&v, "w2v2_config.num_attention_heads")?,
            intermediate_size: usize_at(&v, "w2v2_config.intermediate_size")?,
            hidden_act: str_at(&v, "w2v2_config.hidden_act")?.to_string(),
            rotary_embedding_base: f64_at(&v, "w2v2_config.rotary_embedding_base")?,
            conv_depthwise_kernel_size: usize_at(&v, "w2v2_config.conv_depthwise_kernel_size")?,
            layer_norm_eps: f64_at(&v, "w2v2_config.layer_norm_eps")? as f32,
            sample_rate: 24_000,
            max_frames: Self::large().max_frames,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The checkpoint's `config.json` layout (MuQConfig with `w2v2_config` and
    /// `stat`) holding this config, which [`Self::from_json`] reads back.
    /// (`sample_rate` and `max_frames` are not MuQConfig keys: always 24 kHz
    /// and the runtime's window.)
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "label_rate": 25,
            "features": ["melspec_2048"],
            "encoder_dim": self.encoder_dim,
            "encoder_depth": self.encoder_depth,
            "conv_dim": self.conv_dim,
            "n_mels": self.n_mels,
            "hop_length": self.hop_length,
            "stat": {
                "melspec_2048_mean": self.mel_mean,
                "melspec_2048_std": self.mel_std,
            },
            "w2v2_config": {
                "num_hidden_layers": self.encoder_depth,
                "num_attention_heads": self.num_attention_heads,
                "intermediate_size": self.intermediate_size,
                "hidden_act": self.hidden_act,
                "rotary_embedding_base": self.rotary_embedding_base,
                "conv_depthwise_kernel_size": self.conv_depthwise_kernel_size,
                "layer_norm_eps": self.layer_norm_eps,
                "position_embeddings_type": "rotary",
            },
        })
    }

    /// Read `dir/config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Self::from_json(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Whether a config.json text describes a MuQ model (has `w2v2_config`).
    pub fn is_muq_json(text: &str) -> bool {
        serde_json::from_str::<Value>(text).is_ok_and(|v| v.get("w2v2_config").is_some())
    }

    pub fn validate(&self) -> Result<()> {
        use crate::bounds::{self, check};
        check("config: encoder_dim", self.encoder_dim, &bounds::WIDTH)?;
        check("config: encoder_depth", self.encoder_depth, &bounds::DEPTH)?;
        check("config: conv_dim", self.conv_dim, &bounds::WIDTH)?;
        check("config: n_mels", self.n_mels, &bounds::MELS)?;
        check("config: hop_length", self.hop_length, &(1..=N_FFT))?;
        check(
            "config: w2v2_config.num_attention_heads",
            self.num_attention_heads,
            &bounds::HEADS,
        )?;
        check(
            "config: w2v2_config.intermediate_size",
            self.intermediate_size,
            &bounds::WIDTH,
        )?;
        check(
            "config: w2v2_config.conv_depthwise_kernel_size",
            self.conv_depthwise_kernel_size,
            &bounds::KERNEL,
        )?;
        check(
            "config: sample_rate",
            self.sample_rate,
            &bounds::SAMPLE_RATE,
        )?;
        check(
            "max_frames (window_frames)",
            self.max_frames,
            &(2..=*bounds::WINDOW_FRAMES.end()),
        )?;
        let h = self.encoder_dim;
        let heads = self.num_attention_heads;
        ensure!(
            heads > 0 && h.is_multiple_of(heads),
            "config: encoder_dim {h} is not a multiple of num_attention_heads {heads}"
        );
        ensure!(
            self.head_dim().is_multiple_of(2),
            "config: head dim {} must be even for rotary encoding",
            self.head_dim()
        );
        ensure!(
            self.n_mels >= SUBSAMPLING,
            "config: n_mels {} too small",
            self.n_mels
        );
        ensure!(
            self.conv_depthwise_kernel_size % 2 == 1,
            "config: conv_depthwise_kernel_size {} must be odd (same padding)",
            self.conv_depthwise_kernel_size
        );
        ensure!(
            self.hop_length > 0 && self.conv_dim > 0 && self.intermediate_size > 0,
            "config: hop_length, conv_dim and intermediate_size must be positive"
        );
        ensure!(
            self.mel_std > 0.0 && self.mel_std.is_finite() && self.mel_mean.is_finite(),
            "config: stat.melspec_2048_std must be positive"
        );
        parse_act(&self.hidden_act).context("config: w2v2_config.hidden_act")?;
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.encoder_dim / self.num_attention_heads
    }

    /// Frequency rows after subsampling (32 for 128 mels).
    pub fn sub_freq(&self) -> usize {
        self.n_mels.div_ceil(2).div_ceil(2)
    }

    /// Mel frames of `n` samples: `floor(n/hop)` (the STFT's last frame is dropped).
    pub fn mel_frames(&self, n: usize) -> usize {
        n / self.hop_length
    }

    /// MuQ frames of `n` samples: `ceil(ceil(M/2)/2)` = `ceil(M/4)`.
    pub fn frames_for(&self, n: usize) -> usize {
        self.mel_frames(n).div_ceil(SUBSAMPLING)
    }

    /// Fewest samples a window may have: more than the STFT's reflect padding.
    pub fn min_samples(&self) -> usize {
        N_FFT / 2 + 1
    }

    /// `L + 1`.
    pub fn num_hidden_states(&self) -> usize {
        self.encoder_depth + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Act;

    fn fixture_json() -> String {
        let p =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spec/muq_tiny/config.json");
        std::fs::read_to_string(p).unwrap()
    }

    #[test]
    fn fixture_config_reads_every_value_from_json() {
        let c = MuqConfig::from_json(&fixture_json()).unwrap();
        assert_eq!(
            (
                c.encoder_dim,
                c.encoder_depth,
                c.conv_dim,
                c.num_attention_heads
            ),
            (64, 2, 8, 4)
        );
        assert_eq!(
            (c.intermediate_size, c.conv_depthwise_kernel_size),
            (128, 31)
        );
        assert_eq!(
            (c.head_dim(), c.sub_freq(), c.num_hidden_states()),
            (16, 32, 3)
        );
        assert_eq!(parse_act(&c.hidden_act).unwrap(), Act::Silu);
        assert!((c.mel_std - 18.417_922_652_295_623).abs() < 1e-12);
        // 1 s at 24 kHz: 100 mel frames, 25 MuQ frames; 18037 samples: 75 and 19.
        assert_eq!((c.mel_frames(24_000), c.frames_for(24_000)), (100, 25));
        assert_eq!((c.mel_frames(18_037), c.frames_for(18_037)), (75, 19));
        assert!(MuqConfig::is_muq_json(&fixture_json()));
        MuqConfig::large().validate().unwrap();
        MuqConfig::control().validate().unwrap();
    }

    #[test]
    fn unconfirmed_values_are_required_and_named() {
        for key in [
            "num_attention_heads",
            "rotary_embedding_base",
            "conv_depthwise_kernel_size",
            "layer_norm_eps",
            "hidden_act",
        ] {
            let mut v: Value = serde_json::from_str(&fixture_json()).unwrap();
            v["w2v2_config"].as_object_mut().unwrap().remove(key);
            let e = format!("{:#}", MuqConfig::from_json(&v.to_string()).unwrap_err());
            assert!(e.contains(&format!("missing key w2v2_config.{key}")), "{e}");
        }
        let mut v: Value = serde_json::from_str(&fixture_json()).unwrap();
        v["stat"]
            .as_object_mut()
            .unwrap()
            .remove("melspec_2048_mean");
        let e = format!("{:#}", MuqConfig::from_json(&v.to_string()).unwrap_err());
        assert!(e.contains("stat.melspec_2048_mean"), "{e}");
        let mut v: Value = serde_json::from_str(&fixture_json()).unwrap();
        v["w2v2_config"]["position_embeddings_type"] = "relative".into();
        let e = format!("{:#}", MuqConfig::from_json(&v.to_string()).unwrap_err());
        assert!(e.contains("rotary"), "{e}");
        let mut v: Value = serde_json::from_str(&fixture_json()).unwrap();
        v["w2v2_config"]["num_attention_heads"] = 5.into();
        let e = format!("{:#}", MuqConfig::from_json(&v.to_string()).unwrap_err());
        assert!(e.contains("not a multiple of num_attention_heads 5"), "{e}");
    }
}
