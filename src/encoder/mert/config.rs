//! MERT-v1 configuration: the fields of HF `config.json` the forward pass uses,
//! plus the processor flag and the windowing limit.

use crate::encoder::nn::parse_act;
use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// MERT-v1 (HuBERT layout) configuration. Field names follow HF `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MertConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f32,
    pub conv_dim: Vec<usize>,
    pub conv_kernel: Vec<usize>,
    pub conv_stride: Vec<usize>,
    #[serde(default)]
    pub conv_bias: bool,
    /// Only `"group"` (GroupNorm on conv layer 0) is supported: both MERT-v1 models use it.
    #[serde(default = "default_group")]
    pub feat_extract_norm: String,
    #[serde(default = "default_gelu")]
    pub feat_extract_activation: String,
    #[serde(default = "default_true")]
    pub feat_proj_layer_norm: bool,
    pub num_conv_pos_embeddings: usize,
    pub num_conv_pos_embedding_groups: usize,
    /// false: post-LN encoder (MERT-v1-95M); true: pre-LN (MERT-v1-330M).
    #[serde(default)]
    pub do_stable_layer_norm: bool,
    #[serde(default = "default_gelu")]
    pub hidden_act: String,
    #[serde(default = "default_sample_rate")]
    pub sample_rate: u32,
    /// Per-clip zero-mean/unit-variance waveform normalisation, as the HF processor
    /// (`preprocessor_config.json`). Not part of HF `config.json`; default true.
    #[serde(default = "default_true")]
    pub do_normalize: bool,
    /// Most frames per forward pass; longer clips are windowed (see `mert::window_plan`).
    #[serde(default = "default_max_frames")]
    pub max_frames: usize,
}

fn default_eps() -> f32 {
    1e-5
}
fn default_group() -> String {
    "group".into()
}
fn default_gelu() -> String {
    "gelu".into()
}
fn default_true() -> bool {
    true
}
fn default_sample_rate() -> u32 {
    24_000
}
fn default_max_frames() -> usize {
    1000
}

impl MertConfig {
    /// MERT-v1-95M (`m-a-p/MERT-v1-95M`): H 768, 12 post-LN layers.
    pub fn mert_95m() -> Self {
        Self::base(768, 12, 12, 3072, false)
    }

    /// MERT-v1-330M (`m-a-p/MERT-v1-330M`): H 1024, 24 pre-LN layers.
    pub fn mert_330m() -> Self {
        Self::base(1024, 24, 16, 4096, true)
    }

    /// The pipeline's random-init control: the MERT-v1-95M layout (post-LN, 12 layers so
    /// 13 hidden states, the same conv kernels and strides, 75 Hz frames) at reduced width
    /// (conv 64 channels, hidden 64, one 64-wide head, FFN 256), about 60x cheaper than
    /// 95M, so the default run fits a 2-core machine. Seeded random weights only: it
    /// measures what the architecture alone gives, never a pre-trained result.
    pub fn mert_control() -> Self {
        let mut cfg = Self::base(64, 12, 1, 256, false);
        cfg.conv_dim = vec![64; 7];
        cfg
    }

    /// The random-init control of MERT-v1-330M's layout: pre-LN, 24 layers so
    /// 25 hidden states (the study's layer ranges 13-24, 1-6, ... address the
    /// same states as on 330M), at the control's reduced width (conv 64, hidden
    /// 64, one head, FFN 256). Seeded random weights only.
    pub fn mert_control_330m() -> Self {
        let mut cfg = Self::base(64, 24, 1, 256, true);
        cfg.conv_dim = vec![64; 7];
        cfg
    }

    /// A named architecture for seeded random weights: `control`, `control_330m`,
    /// `95m` or `330m`.
    pub fn preset(name: &str) -> Result<Self> {
        Ok(match name {
            "control" => Self::mert_control(),
            "control_330m" => Self::mert_control_330m(),
            "95m" => Self::mert_95m(),
            "330m" => Self::mert_330m(),
            other => {
                bail!("unknown MERT preset {other:?}: expected control, control_330m, 95m or 330m")
            }
        })
    }

    fn base(hidden: usize, layers: usize, heads: usize, ffn: usize, pre_ln: bool) -> Self {
        Self {
            hidden_size: hidden,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            intermediate_size: ffn,
            layer_norm_eps: 1e-5,
            conv_dim: vec![512; 7],
            conv_kernel: vec![10, 3, 3, 3, 3, 2, 2],
            conv_stride: vec![5, 2, 2, 2, 2, 2, 2],
            conv_bias: false,
            feat_extract_norm: "group".into(),
            feat_extract_activation: "gelu".into(),
            feat_proj_layer_norm: true,
            num_conv_pos_embeddings: 128,
            num_conv_pos_embedding_groups: 16,
            do_stable_layer_norm: pre_ln,
            hidden_act: "gelu".into(),
            sample_rate: 24_000,
            do_normalize: true,
            max_frames: default_max_frames(),
        }
    }

    /// Parse HF `config.json` text and validate it.
    pub fn from_json(text: &str) -> Result<Self> {
        let cfg: Self = serde_json::from_str(text).context("parsing MERT config.json")?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Read `dir/config.json`, and `do_normalize` from `dir/preprocessor_config.json` when present.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut cfg = Self::from_json(&text).with_context(|| format!("in {}", path.display()))?;
        let pre = dir.join("preprocessor_config.json");
        if pre.exists() {
            let text = std::fs::read_to_string(&pre)
                .with_context(|| format!("reading {}", pre.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", pre.display()))?;
            if let Some(b) = v.get("do_normalize").and_then(serde_json::Value::as_bool) {
                cfg.do_normalize = b;
            }
        }
        Ok(cfg)
    }

    /// Check the invariants the forward pass relies on.
    pub fn validate(&self) -> Result<()> {
        use crate::bounds::{self, check};
        let n = self.conv_dim.len();
        ensure!(n > 0, "config: conv_dim is empty");
        check("config: len(conv_dim)", n, &bounds::CONV_LAYERS)?;
        check("config: hidden_size", self.hidden_size, &bounds::WIDTH)?;
        check(
            "config: num_hidden_layers",
            self.num_hidden_layers,
            &bounds::DEPTH,
        )?;
        check(
            "config: num_attention_heads",
            self.num_attention_heads,
            &bounds::HEADS,
        )?;
        check(
            "config: intermediate_size",
            self.intermediate_size,
            &bounds::WIDTH,
        )?;
        check(
            "config: num_conv_pos_embeddings",
            self.num_conv_pos_embeddings,
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
            &bounds::WINDOW_FRAMES,
        )?;
        for (key, values) in [
            ("conv_dim", &self.conv_dim),
            ("conv_kernel", &self.conv_kernel),
            ("conv_stride", &self.conv_stride),
        ] {
            let range = if key == "conv_dim" {
                bounds::WIDTH
            } else {
                bounds::KERNEL
            };
            for (i, &v) in values.iter().enumerate() {
                check(&format!("config: {key}[{i}]"), v, &range)?;
            }
        }
        ensure!(
            self.conv_kernel.len() == n && self.conv_stride.len() == n,
            "config: conv_dim, conv_kernel, conv_stride have lengths {n}, {}, {}",
            self.conv_kernel.len(),
            self.conv_stride.len()
        );
        ensure!(
            self.conv_stride.iter().all(|&s| s > 0),
            "config: conv_stride has a zero"
        );
        ensure!(
            self.conv_kernel.iter().all(|&k| k > 0),
            "config: conv_kernel has a zero"
        );
        ensure!(
            self.feat_extract_norm == "group",
            "config: feat_extract_norm {:?} is not supported (MERT-v1 uses \"group\")",
            self.feat_extract_norm
        );
        ensure!(
            self.num_attention_heads > 0,
            "config: num_attention_heads is 0"
        );
        ensure!(
            self.hidden_size.is_multiple_of(self.num_attention_heads),
            "config: hidden_size {} is not a multiple of num_attention_heads {}",
            self.hidden_size,
            self.num_attention_heads
        );
        let g = self.num_conv_pos_embedding_groups;
        ensure!(
            g > 0 && self.hidden_size.is_multiple_of(g),
            "config: hidden_size {} is not a multiple of num_conv_pos_embedding_groups {g}",
            self.hidden_size
        );
        ensure!(
            self.num_conv_pos_embeddings > 0,
            "config: num_conv_pos_embeddings is 0"
        );
        // One output frame must stay a sane number of samples (and the
        // arithmetic on it cannot overflow).
        let hop = self
            .conv_stride
            .iter()
            .try_fold(1usize, |a, &s| a.checked_mul(s));
        ensure!(
            hop.is_some_and(|h| h <= 1 << 20),
            "config: conv_stride {:?}: the product (samples per frame) exceeds {}",
            self.conv_stride,
            1 << 20
        );
        let field = self
            .conv_kernel
            .iter()
            .zip(&self.conv_stride)
            .rev()
            .try_fold(1usize, |n, (&k, &s)| (n - 1).checked_mul(s)?.checked_add(k));
        ensure!(
            field.is_some_and(|f| f <= 1 << 24),
            "config: conv_kernel {:?} with conv_stride {:?}: the receptive field exceeds {} samples",
            self.conv_kernel,
            self.conv_stride,
            1 << 24
        );
        parse_act(&self.hidden_act).context("config: hidden_act")?;
        parse_act(&self.feat_extract_activation).context("config: feat_extract_activation")?;
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Overall hop of the conv feature encoder in samples (320 for MERT-v1).
    pub fn hop(&self) -> usize {
        self.conv_stride.iter().product()
    }

    /// Receptive field of one output frame in samples (400 for MERT-v1).
    pub fn receptive_field(&self) -> usize {
        // Walk back from one output frame: n ← (n − 1)·s + k.
        self.conv_kernel
            .iter()
            .zip(&self.conv_stride)
            .rev()
            .fold(1, |n, (&k, &s)| (n - 1) * s + k)
    }

    /// Frames the conv encoder produces for `n` samples: `n → floor((n − k)/s) + 1` per layer.
    pub fn frames_for(&self, n: usize) -> usize {
        let mut len = n;
        for (&k, &s) in self.conv_kernel.iter().zip(&self.conv_stride) {
            if len < k {
                return 0;
            }
            len = (len - k) / s + 1;
        }
        len
    }

    /// Number of hidden states returned (`L + 1`).
    pub fn num_hidden_states(&self) -> usize {
        self.num_hidden_layers + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_arithmetic_matches_spec() {
        let c = MertConfig::mert_95m();
        assert_eq!(c.hop(), 320);
        assert_eq!(c.receptive_field(), 400);
        assert_eq!(c.frames_for(24_000), 74);
        assert_eq!(c.frames_for(120_000), 374);
        assert_eq!(c.frames_for(18_037), 56);
        assert_eq!(c.frames_for(400), 1);
        assert_eq!(c.frames_for(399), 0);
        assert_eq!(c.frames_for(720), 2);
    }

    #[test]
    fn real_configs_validate() {
        MertConfig::mert_95m().validate().unwrap();
        let c = MertConfig::mert_330m();
        c.validate().unwrap();
        assert_eq!((c.head_dim(), c.num_hidden_states()), (64, 25));
    }

    #[test]
    fn fixture_config_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spec/mert_tiny_preln");
        let c = MertConfig::from_dir(&dir).unwrap();
        assert!(c.do_stable_layer_norm && c.do_normalize);
        assert_eq!(
            (c.hidden_size, c.num_hidden_layers, c.num_attention_heads),
            (64, 2, 4)
        );
        assert_eq!(c.conv_dim, vec![32; 7]);
    }

    #[test]
    fn preprocessor_config_sets_do_normalize() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/spec/mert_tiny_postln/config.json");
        let tmp = tempfile::tempdir().unwrap();
        std::fs::copy(&src, tmp.path().join("config.json")).unwrap();
        assert!(
            MertConfig::from_dir(tmp.path()).unwrap().do_normalize,
            "HF processor default"
        );
        std::fs::write(
            tmp.path().join("preprocessor_config.json"),
            r#"{"do_normalize": false}"#,
        )
        .unwrap();
        assert!(!MertConfig::from_dir(tmp.path()).unwrap().do_normalize);
        std::fs::write(tmp.path().join("config.json"), "{").unwrap();
        let e = format!("{:#}", MertConfig::from_dir(tmp.path()).unwrap_err());
        assert!(e.contains("config.json"), "{e}");
    }

    #[test]
    fn bad_config_is_rejected() {
        let mut c = MertConfig::mert_95m();
        c.feat_extract_norm = "layer".into();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("feat_extract_norm")
        );
        let mut c = MertConfig::mert_95m();
        c.hidden_act = "gelu_new".into();
        assert!(format!("{:#}", c.validate().unwrap_err()).contains("gelu_new"));
    }
}
