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
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[-a, a)`.
    pub(crate) fn uniform_vec(&mut self, n: usize, a: f32) -> Vec<f32> {
        (0..n)
            .map(|_| ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * a)
            .collect()
    }

    pub(crate) fn linear(&mut self, out: usize, inp: usize) -> LinearW {
        LinearW {
            w: self.uniform_vec(out * inp, 1.0 / (inp as f32).sqrt()),
            b: Some(self.uniform_vec(out, 0.02)),
            out,
            inp,
        }
    }

    pub(crate) fn norm(&mut self, n: usize) -> NormW {
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

impl MertWeights {
    /// All tensors under their HF names and shapes, f32 (the positional conv as a
    /// fused `.weight`, one of the spellings the loader accepts).
    pub fn named_tensors(&self) -> Vec<(String, Vec<usize>, &[f32])> {
        let mut out: Vec<(String, Vec<usize>, &[f32])> = Vec::new();
        for (i, c) in self.conv.iter().enumerate() {
            let p = format!("feature_extractor.conv_layers.{i}");
            out.push((format!("{p}.conv.weight"), vec![c.c_out, c.c_in, c.k], &c.w));
            if let Some(b) = &c.b {
                out.push((format!("{p}.conv.bias"), vec![c.c_out], b));
            }
            if let Some(n) = &c.norm {
                push_norm(&mut out, &format!("{p}.layer_norm"), n);
            }
        }
        if let Some(n) = &self.proj_ln {
            push_norm(&mut out, "feature_projection.layer_norm", n);
        }
        push_linear(&mut out, "feature_projection.projection", &self.proj);
        let pc = &self.pos_conv;
        let k = pc.w.len() / (pc.out * pc.inp);
        out.push((
            "encoder.pos_conv_embed.conv.weight".into(),
            vec![pc.out, pc.inp, k],
            &pc.w,
        ));
        if let Some(b) = &pc.b {
            out.push(("encoder.pos_conv_embed.conv.bias".into(), vec![pc.out], b));
        }
        push_norm(&mut out, "encoder.layer_norm", &self.enc_ln);
        for (l, w) in self.layers.iter().enumerate() {
            let p = format!("encoder.layers.{l}");
            for (name, lw) in [
                ("q_proj", &w.q),
                ("k_proj", &w.k),
                ("v_proj", &w.v),
                ("out_proj", &w.out),
            ] {
                push_linear(&mut out, &format!("{p}.attention.{name}"), lw);
            }
            push_norm(&mut out, &format!("{p}.layer_norm"), &w.ln_attn);
            push_linear(
                &mut out,
                &format!("{p}.feed_forward.intermediate_dense"),
                &w.ffn_in,
            );
            push_linear(
                &mut out,
                &format!("{p}.feed_forward.output_dense"),
                &w.ffn_out,
            );
            push_norm(&mut out, &format!("{p}.final_layer_norm"), &w.ln_ffn);
        }
        out
    }

    /// Serialise as a HF-named `model.safetensors` that [`MertWeights::from_store`] reads back.
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let named = self.named_tensors();
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = named
            .into_iter()
            .map(|(n, s, d)| (n, s, d.iter().flat_map(|v| v.to_le_bytes()).collect()))
            .collect();
        let views = bytes
            .iter()
            .map(|(n, s, b)| {
                Ok((
                    n.clone(),
                    safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)?,
                ))
            })
            .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
            .map_err(|e| anyhow::anyhow!("building tensor views: {e:?}"))?;
        safetensors::serialize(views, None)
            .map_err(|e| anyhow::anyhow!("serialising MERT weights: {e:?}"))
    }
}

/// Write `dir/config.json` and `dir/model.safetensors` (HF names) so [`MertWeights::from_dir`]
/// and `Mert::load` read the model back, e.g. a seeded random control encoder.
pub fn save_dir(cfg: &MertConfig, weights: &MertWeights, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let config = dir.join("config.json");
    let text = serde_json::to_string_pretty(cfg).context("serialising MERT config")?;
    std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
    let model = dir.join("model.safetensors");
    std::fs::write(&model, weights.to_safetensors()?)
        .with_context(|| format!("writing {}", model.display()))
}

fn push_linear<'a>(out: &mut Vec<(String, Vec<usize>, &'a [f32])>, name: &str, l: &'a LinearW) {
    out.push((format!("{name}.weight"), vec![l.out, l.inp], &l.w));
    if let Some(b) = &l.b {
        out.push((format!("{name}.bias"), vec![l.out], b));
    }
}

fn push_norm<'a>(out: &mut Vec<(String, Vec<usize>, &'a [f32])>, name: &str, n: &'a NormW) {
    out.push((format!("{name}.weight"), vec![n.gamma.len()], &n.gamma));
    out.push((format!("{name}.bias"), vec![n.beta.len()], &n.beta));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_weights_round_trip_through_the_loader() {
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
        let w = MertWeights::random_init(&cfg, 11);
        let store = WeightStore::from_bytes(w.to_safetensors().unwrap(), "random").unwrap();
        let back = MertWeights::from_store(&cfg, &store).unwrap();
        let a = w.named_tensors();
        let b = back.named_tensors();
        assert_eq!(a.len(), b.len());
        for ((na, sa, da), (nb, sb, db)) in a.iter().zip(&b) {
            assert_eq!((na, sa), (nb, sb));
            assert!(da == db, "{na} differs after the round trip");
        }
        assert!(store.contains("feature_extractor.conv_layers.3.conv.bias"));
        // Through a directory: config.json + model.safetensors.
        let tmp = tempfile::tempdir().unwrap();
        save_dir(&cfg, &w, tmp.path()).unwrap();
        let cfg2 = MertConfig::from_dir(tmp.path()).unwrap();
        assert_eq!(cfg2, cfg);
        let again = MertWeights::from_dir(&cfg2, tmp.path()).unwrap();
        assert_eq!(again.layers[1].ffn_out.w, w.layers[1].ffn_out.w);
        assert!(store.contains("encoder.layers.1.final_layer_norm.weight"));
    }
}
