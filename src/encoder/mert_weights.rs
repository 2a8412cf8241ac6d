//! MERT-v1 weights on the host: loaded by HF name from a checkpoint, or seeded random.

use super::config::MertConfig;
use super::weights::{WeightStore, weight_norm_conv};
use anyhow::{Context, Result};
use std::path::Path;

/// A linear layer in PyTorch layout: `w` `[out, inp]`, `b` `[out]`.
#[derive(Clone, Debug)]
pub struct LinearW {
    pub w: Vec<f32>,
    pub b: Option<Vec<f32>>,
    pub out: usize,
    pub inp: usize,
}

/// LayerNorm / GroupNorm affine parameters.
#[derive(Clone, Debug)]
pub struct NormW {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

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

fn linear(s: &WeightStore, name: &str, out: usize, inp: usize) -> Result<LinearW> {
    Ok(LinearW {
        w: s.get(&format!("{name}.weight"), &[out, inp])?,
        b: Some(s.get(&format!("{name}.bias"), &[out])?),
        out,
        inp,
    })
}

fn norm(s: &WeightStore, name: &str, n: usize) -> Result<NormW> {
    Ok(NormW {
        gamma: s.get(&format!("{name}.weight"), &[n])?,
        beta: s.get(&format!("{name}.bias"), &[n])?,
    })
}

impl MertWeights {
    /// Load from `model.safetensors` by HF name; every shape is checked against `cfg`.
    pub fn from_store(cfg: &MertConfig, s: &WeightStore) -> Result<Self> {
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
            let pre = format!("feature_extractor.conv_layers.{i}");
            let w = s.get(&format!("{pre}.conv.weight"), &[c_out, c_in, k])?;
            let b = if cfg.conv_bias {
                Some(s.get(&format!("{pre}.conv.bias"), &[c_out])?)
            } else {
                None
            };
            let norm = if i == 0 {
                Some(norm(s, &format!("{pre}.layer_norm"), c_out)?)
            } else {
                None
            };
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
        let proj_ln = if cfg.feat_proj_layer_norm {
            Some(norm(s, "feature_projection.layer_norm", c_in)?)
        } else {
            None
        };
        let proj = linear(s, "feature_projection.projection", h, c_in)?;
        let (g, k) = (
            cfg.num_conv_pos_embedding_groups,
            cfg.num_conv_pos_embeddings,
        );
        let pre = "encoder.pos_conv_embed.conv";
        let pos_conv = LinearW {
            w: weight_norm_conv(s, pre, h, h / g, k)?,
            b: Some(s.get(&format!("{pre}.bias"), &[h])?),
            out: h,
            inp: h / g,
        };
        let enc_ln = norm(s, "encoder.layer_norm", h)?;
        let f = cfg.intermediate_size;
        let layers = (0..cfg.num_hidden_layers)
            .map(|l| {
                let p = format!("encoder.layers.{l}");
                Ok(LayerW {
                    q: linear(s, &format!("{p}.attention.q_proj"), h, h)?,
                    k: linear(s, &format!("{p}.attention.k_proj"), h, h)?,
                    v: linear(s, &format!("{p}.attention.v_proj"), h, h)?,
                    out: linear(s, &format!("{p}.attention.out_proj"), h, h)?,
                    ln_attn: norm(s, &format!("{p}.layer_norm"), h)?,
                    ffn_in: linear(s, &format!("{p}.feed_forward.intermediate_dense"), f, h)?,
                    ffn_out: linear(s, &format!("{p}.feed_forward.output_dense"), h, f)?,
                    ln_ffn: norm(s, &format!("{p}.final_layer_norm"), h)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // A checkpoint with more layers than the config is a config/checkpoint mismatch.
        let extra = format!(
            "encoder.layers.{}.attention.q_proj.weight",
            cfg.num_hidden_layers
        );
        anyhow::ensure!(
            !s.contains(&extra),
            "{}: has {extra} but config num_hidden_layers is {}",
            s.label(),
            cfg.num_hidden_layers
        );
        Ok(Self {
            conv,
            proj_ln,
            proj,
            pos_conv,
            enc_ln,
            layers,
        })
    }

    /// Load `dir/model.safetensors`.
    pub fn from_dir(cfg: &MertConfig, dir: &Path) -> Result<Self> {
        let path = dir.join("model.safetensors");
        let store = WeightStore::open(&path)?;
        Self::from_store(cfg, &store)
            .with_context(|| format!("loading MERT weights from {}", path.display()))
    }

    /// Seeded random weights of the real shapes (for control encoders and benchmarks).
    /// Linear/conv weights are uniform in ±1/√fan_in (PyTorch's default init scale),
    /// biases small, norms γ ≈ 1, β ≈ 0, so activations stay in a sane range.
    pub fn random_init(cfg: &MertConfig, seed: u64) -> Self {
        let r = &mut SplitMix64(seed);
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
            conv.push(ConvW {
                w: r.uniform_vec(c_out * c_in * k, 1.0 / ((c_in * k) as f32).sqrt()),
                b: cfg.conv_bias.then(|| r.uniform_vec(c_out, 0.02)),
                c_out,
                c_in,
                k,
                stride,
                norm: (i == 0).then(|| r.norm(c_out)),
            });
            c_in = c_out;
        }
        let proj_ln = cfg.feat_proj_layer_norm.then(|| r.norm(c_in));
        let proj = r.linear(h, c_in);
        let (g, k) = (
            cfg.num_conv_pos_embedding_groups,
            cfg.num_conv_pos_embeddings,
        );
        let pos = r.linear(h, h / g * k);
        let pos_conv = LinearW {
            w: pos.w,
            b: pos.b,
            out: h,
            inp: h / g,
        };
        let enc_ln = r.norm(h);
        let f = cfg.intermediate_size;
        let layers = (0..cfg.num_hidden_layers)
            .map(|_| LayerW {
                q: r.linear(h, h),
                k: r.linear(h, h),
                v: r.linear(h, h),
                out: r.linear(h, h),
                ln_attn: r.norm(h),
                ffn_in: r.linear(f, h),
                ffn_out: r.linear(h, f),
                ln_ffn: r.norm(h),
            })
            .collect();
        Self {
            conv,
            proj_ln,
            proj,
            pos_conv,
            enc_ln,
            layers,
        }
    }
}

/// SplitMix64: tiny, seedable, good enough for test/control weights.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[-a, a)`.
    fn uniform_vec(&mut self, n: usize, a: f32) -> Vec<f32> {
        (0..n)
            .map(|_| ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * a)
            .collect()
    }

    fn linear(&mut self, out: usize, inp: usize) -> LinearW {
        LinearW {
            w: self.uniform_vec(out * inp, 1.0 / (inp as f32).sqrt()),
            b: Some(self.uniform_vec(out, 0.02)),
            out,
            inp,
        }
    }

    fn norm(&mut self, n: usize) -> NormW {
        NormW {
            gamma: self
                .uniform_vec(n, 0.1)
                .into_iter()
                .map(|v| 1.0 + v)
                .collect(),
            beta: self.uniform_vec(n, 0.1),
        }
    }
}
