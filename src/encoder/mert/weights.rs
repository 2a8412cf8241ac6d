//! MERT-v1 weights on the host: one walk over the HF tensor names
//! ([`MertWeights::walk`]) loads a checkpoint, seeds a random control or
//! records a model for saving.

use super::config::MertConfig;
use crate::encoder::checkpoint::WeightStore;
use crate::encoder::nn::{LinearW, NormW};
use crate::encoder::vars::{Checkpoint, Init, Seeded, Vars};
use anyhow::{Context, Result};
use std::path::Path;

/// One conv layer of the feature encoder: `w` `[c_out, c_in, k]`.
#[derive(Clone, Debug)]
pub struct ConvW {
    pub w: Vec<f32>,
    pub b: Option<Vec<f32>>,
    pub c_out: usize,
    pub c_in: usize,
    pub k: usize,
    pub stride: usize,
    /// GroupNorm (one group per channel) — conv layer 0 in group mode only.
    pub norm: Option<NormW>,
}

/// One transformer block.
#[derive(Clone, Debug)]
pub struct LayerW {
    pub q: LinearW,
    pub k: LinearW,
    pub v: LinearW,
    pub out: LinearW,
    /// `layer_norm`: after attention (post-LN) or before it (pre-LN).
    pub ln_attn: NormW,
    pub ffn_in: LinearW,
    pub ffn_out: LinearW,
    /// `final_layer_norm`: after the FFN (post-LN) or before it (pre-LN).
    pub ln_ffn: NormW,
}

/// All MERT-v1 weights the forward pass uses, f32, PyTorch layouts, weight norm fused.
#[derive(Clone, Debug)]
pub struct MertWeights {
    pub conv: Vec<ConvW>,
    /// Feature-projection LayerNorm (absent if `feat_proj_layer_norm` is false).
    pub proj_ln: Option<NormW>,
    pub proj: LinearW,
    /// Positional conv, weight norm fused: `w` `[H, H/groups, K]`, bias `[H]`.
    pub pos_conv: LinearW,
    pub enc_ln: NormW,
    pub layers: Vec<LayerW>,
}

impl MertWeights {
    /// The model's tensors, named once (HF names), shapes from `cfg`: load,
    /// seed or record them through `vars` (see [`crate::encoder::vars`]).
    pub fn walk(cfg: &MertConfig, vars: &mut Vars) -> Result<Self> {
        let h = cfg.hidden_size;
        let mut conv = Vec::with_capacity(cfg.conv_dim.len());
        let mut c_in = 1;
        for (i, ((&c_out, &k), &stride)) in cfg
            .conv_dim
            .iter()
            .zip(&cfg.conv_kernel)
            .zip(&cfg.conv_stride)
            .enumerate()
        {
            let mut layer = vars.pp(format!("feature_extractor.conv_layers.{i}"));
            let mut c = layer.pp("conv");
            let w = c.get("weight", &[c_out, c_in, k], Init::FanIn)?;
            let b = cfg
                .conv_bias
                .then(|| c.get("bias", &[c_out], Init::Bias))
                .transpose()?;
            // GroupNorm with one group per channel, on conv layer 0 only ("group" mode).
            let norm = (i == 0)
                .then(|| layer.pp("layer_norm").norm(c_out))
                .transpose()?;
            conv.push(ConvW {
                w,
                b,
                c_out,
                c_in,
                k,
                stride,
                norm,
            });
            c_in = c_out;
        }
        let proj_ln = cfg
            .feat_proj_layer_norm
            .then(|| vars.pp("feature_projection.layer_norm").norm(c_in))
            .transpose()?;
        let proj = vars
            .pp("feature_projection.projection")
            .linear(h, c_in, true)?;
        let (g, k) = (
            cfg.num_conv_pos_embedding_groups,
            cfg.num_conv_pos_embeddings,
        );
        let mut pc = vars.pp("encoder.pos_conv_embed.conv");
        let pos_conv = LinearW {
            w: pc.weight_norm_conv([h, h / g, k])?,
            b: Some(pc.get("bias", &[h], Init::Bias)?),
            out: h,
            inp: h / g,
        };
        let enc_ln = vars.pp("encoder.layer_norm").norm(h)?;
        let f = cfg.intermediate_size;
        let layers = (0..cfg.num_hidden_layers)
            .map(|l| {
                let mut p = vars.pp(format!("encoder.layers.{l}"));
                Ok(LayerW {
                    q: p.pp("attention.q_proj").linear(h, h, true)?,
                    k: p.pp("attention.k_proj").linear(h, h, true)?,
                    v: p.pp("attention.v_proj").linear(h, h, true)?,
                    out: p.pp("attention.out_proj").linear(h, h, true)?,
                    ln_attn: p.pp("layer_norm").norm(h)?,
                    ffn_in: p.pp("feed_forward.intermediate_dense").linear(f, h, true)?,
                    ffn_out: p.pp("feed_forward.output_dense").linear(h, f, true)?,
                    ln_ffn: p.pp("final_layer_norm").norm(h)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let n = cfg.num_hidden_layers;
        vars.ensure_absent(
            &format!("encoder.layers.{n}.attention.q_proj.weight"),
            &format!("config num_hidden_layers is {n}"),
        )?;
        Ok(Self {
            conv,
            proj_ln,
            proj,
            pos_conv,
            enc_ln,
            layers,
        })
    }

    /// Load from a checkpoint by HF name; every shape is checked against `cfg`.
    pub fn from_store(cfg: &MertConfig, s: &WeightStore) -> Result<Self> {
        Self::walk(cfg, &mut Vars::new(&mut Checkpoint(s)))
    }

    /// Load `dir/model.safetensors`.
    pub fn from_dir(cfg: &MertConfig, dir: &Path) -> Result<Self> {
        let path = dir.join("model.safetensors");
        let store = WeightStore::open(&path)?;
        Self::from_store(cfg, &store)
            .with_context(|| format!("loading MERT weights from {}", path.display()))
    }

    /// Seeded random weights of the real shapes (control encoders, benchmarks):
    /// see [`Init`] for the scales.
    pub fn random_init(cfg: &MertConfig, seed: u64) -> Result<Self> {
        Self::walk(cfg, &mut Vars::new(&mut Seeded::new(seed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::vars::{Recorder, VarSource};

    /// A config with conv biases and 2 layers: every optional tensor present.
    #[test]
    fn a_recorded_random_model_loads_back_tensor_for_tensor() {
        let cfg = MertConfig {
            hidden_size: 32,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 48,
            conv_dim: vec![16; 7],
            num_conv_pos_embeddings: 16,
            num_conv_pos_embedding_groups: 4,
            conv_bias: true,
            ..MertConfig::mert_95m()
        };
        let record = |src: &mut dyn VarSource| {
            let mut rec = Recorder::new(src);
            let w = MertWeights::walk(&cfg, &mut Vars::new(&mut rec)).unwrap();
            (w, rec.tensors().to_vec(), rec.to_safetensors().unwrap())
        };
        let (w, seeded, bytes) = record(&mut Seeded::new(11));
        let store = WeightStore::from_bytes(bytes, "random").unwrap();
        assert!(store.contains("feature_extractor.conv_layers.3.conv.bias"));
        assert!(store.contains("encoder.layers.1.final_layer_norm.weight"));
        let (back, loaded, _) = record(&mut Checkpoint(&store));
        assert_eq!(seeded, loaded);
        assert_eq!(back.layers[1].ffn_out.w, w.layers[1].ffn_out.w);
        // One layer too many in the checkpoint is a mismatch, named.
        let fewer = MertConfig {
            num_hidden_layers: 1,
            ..cfg.clone()
        };
        let e = format!("{:#}", MertWeights::from_store(&fewer, &store).unwrap_err());
        assert!(
            e.contains("encoder.layers.1.attention.q_proj.weight")
                && e.contains("num_hidden_layers is 1"),
            "{e}"
        );
    }
}
