//! MuQ weights on the host, as the checkpoint stores them (SPEC §2.6):
//! loaded by name (with or without the `model.` prefix) with every shape
//! checked, or seeded random. BatchNorm folding, the FFN half-step and the
//! subsampling rearrangement are applied when the model is prepared
//! (`muq::Muq::new`), so this mirrors the file.

use super::mert_weights::{LinearW, NormW, SplitMix64};
use super::muq_config::MuqConfig;
use super::weights::WeightStore;
use anyhow::{Context, Result, ensure};
use std::path::Path;

/// Eval-mode BatchNorm: `(x − mean)/sqrt(var + eps)·gamma + beta`.
#[derive(Clone, Debug)]
pub struct BatchNormW {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
}

/// A conv (2-D `[c_out, c_in, 3, 3]` or depthwise `[c, 1, k]`), flattened
/// per output channel, with its bias (if any) and the BatchNorm after it.
#[derive(Clone, Debug)]
pub struct ConvBnW {
    pub w: Vec<f32>,
    pub b: Option<Vec<f32>>,
    pub c_out: usize,
    pub bn: BatchNormW,
}

/// One `Res2dModule`: main path conv1 → bn1 → ReLU → conv2 → bn2, shortcut conv3 → bn3.
#[derive(Clone, Debug)]
pub struct ResBlockW {
    pub c_in: usize,
    pub conv1: ConvBnW,
    pub conv2: ConvBnW,
    pub conv3: ConvBnW,
}

/// A Conformer FFN: LayerNorm, Linear(H→F), act, Linear(F→H).
#[derive(Clone, Debug)]
pub struct FfnW {
    pub ln: NormW,
    pub inner: LinearW,
    pub outer: LinearW,
}

#[derive(Clone, Debug)]
pub struct ConformerLayerW {
    pub ffn1: FfnW,
    pub attn_ln: NormW,
    pub q: LinearW,
    pub k: LinearW,
    pub v: LinearW,
    pub out: LinearW,
    pub conv_ln: NormW,
    /// 1×1 conv H→2H, no bias (as a linear `[2H, H]`).
    pub pointwise1: LinearW,
    /// Depthwise conv `[H, 1, K]`, no bias, then its BatchNorm.
    pub depthwise: ConvBnW,
    /// 1×1 conv H→H, no bias.
    pub pointwise2: LinearW,
    pub ffn2: FfnW,
    pub final_ln: NormW,
}

#[derive(Clone, Debug)]
pub struct MuqWeights {
    pub blocks: Vec<ResBlockW>,
    /// `conv.linear`: `[H, conv_dim·F/4]`, input index `c·F/4 + f` (PyTorch's `c f` order).
    pub proj: LinearW,
    pub layers: Vec<ConformerLayerW>,
    /// `conformer.layer_norm`, after the last block.
    pub enc_ln: NormW,
}

struct Names<'a>(&'a WeightStore);

impl Names<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        self.0.get(name, shape)
    }
    fn norm(&self, name: &str, n: usize) -> Result<NormW> {
        Ok(NormW {
            gamma: self.get(&format!("{name}.weight"), &[n])?,
            beta: self.get(&format!("{name}.bias"), &[n])?,
        })
    }
    fn bn(&self, name: &str, n: usize) -> Result<BatchNormW> {
        Ok(BatchNormW {
            gamma: self.get(&format!("{name}.weight"), &[n])?,
            beta: self.get(&format!("{name}.bias"), &[n])?,
            mean: self.get(&format!("{name}.running_mean"), &[n])?,
            var: self.get(&format!("{name}.running_var"), &[n])?,
        })
    }
    fn linear(&self, name: &str, out: usize, inp: usize, bias: bool) -> Result<LinearW> {
        Ok(LinearW {
            w: self.get(&format!("{name}.weight"), &[out, inp])?,
            b: bias
                .then(|| self.get(&format!("{name}.bias"), &[out]))
                .transpose()?,
            out,
            inp,
        })
    }
    /// A 1×1 conv stored `[out, in, 1]`, as a linear without bias.
    fn pointwise(&self, name: &str, out: usize, inp: usize) -> Result<LinearW> {
        Ok(LinearW {
            w: self.get(&format!("{name}.weight"), &[out, inp, 1])?,
            b: None,
            out,
            inp,
        })
    }
    fn conv3x3(&self, block: &str, i: usize, c_out: usize, c_in: usize) -> Result<ConvBnW> {
        Ok(ConvBnW {
            w: self.get(&format!("{block}.conv{i}.weight"), &[c_out, c_in, 3, 3])?,
            b: Some(self.get(&format!("{block}.conv{i}.bias"), &[c_out])?),
            c_out,
            bn: self.bn(&format!("{block}.bn{i}"), c_out)?,
        })
    }
    fn ffn(&self, name: &str, h: usize, f: usize) -> Result<FfnW> {
        Ok(FfnW {
            ln: self.norm(&format!("{name}_layer_norm"), h)?,
            inner: self.linear(&format!("{name}.intermediate_dense"), f, h, true)?,
            outer: self.linear(&format!("{name}.output_dense"), h, f, true)?,
        })
    }
}

impl MuqWeights {
    /// Load by name from a checkpoint; every shape is checked against `cfg`.
    /// Tensors the encoder does not use (RVQ, heads, `cls_token`, the unused
    /// positional conv, `num_batches_tracked`) are ignored.
    pub fn from_store(cfg: &MuqConfig, s: &WeightStore) -> Result<Self> {
        let n = Names(s);
        let (h, c, f) = (cfg.encoder_dim, cfg.conv_dim, cfg.intermediate_size);
        let blocks = (0..2)
            .map(|i| {
                let pre = format!("model.conv.conv.{i}");
                let c_in = if i == 0 { 1 } else { c };
                Ok(ResBlockW {
                    c_in,
                    conv1: n.conv3x3(&pre, 1, c, c_in)?,
                    conv2: n.conv3x3(&pre, 2, c, c)?,
                    conv3: n.conv3x3(&pre, 3, c, c_in)?,
                })
            })
            .collect::<Result<_>>()?;
        let proj = n.linear("model.conv.linear", h, c * cfg.sub_freq(), true)?;
        let k = cfg.conv_depthwise_kernel_size;
        let layers = (0..cfg.encoder_depth)
            .map(|l| {
                let p = format!("model.conformer.layers.{l}");
                let a = format!("{p}.self_attn");
                let cm = format!("{p}.conv_module");
                Ok(ConformerLayerW {
                    ffn1: n.ffn(&format!("{p}.ffn1"), h, f)?,
                    attn_ln: n.norm(&format!("{p}.self_attn_layer_norm"), h)?,
                    q: n.linear(&format!("{a}.linear_q"), h, h, true)?,
                    k: n.linear(&format!("{a}.linear_k"), h, h, true)?,
                    v: n.linear(&format!("{a}.linear_v"), h, h, true)?,
                    out: n.linear(&format!("{a}.linear_out"), h, h, true)?,
                    conv_ln: n.norm(&format!("{cm}.layer_norm"), h)?,
                    pointwise1: n.pointwise(&format!("{cm}.pointwise_conv1"), 2 * h, h)?,
                    depthwise: ConvBnW {
                        w: n.get(&format!("{cm}.depthwise_conv.weight"), &[h, 1, k])?,
                        b: None,
                        c_out: h,
                        bn: n.bn(&format!("{cm}.batch_norm"), h)?,
                    },
                    pointwise2: n.pointwise(&format!("{cm}.pointwise_conv2"), h, h)?,
                    ffn2: n.ffn(&format!("{p}.ffn2"), h, f)?,
                    final_ln: n.norm(&format!("{p}.final_layer_norm"), h)?,
                })
            })
            .collect::<Result<_>>()?;
        let extra = format!(
            "model.conformer.layers.{}.final_layer_norm.weight",
            cfg.encoder_depth
        );
        ensure!(
            !s.contains(&extra),
            "{}: has {extra} but config encoder_depth is {}",
            s.label(),
            cfg.encoder_depth
        );
        Ok(Self {
            blocks,
            proj,
            layers,
            enc_ln: n.norm("model.conformer.layer_norm", h)?,
        })
    }

    /// Load `dir/model.safetensors`.
    pub fn from_dir(cfg: &MuqConfig, dir: &Path) -> Result<Self> {
        let path = dir.join("model.safetensors");
        let store = WeightStore::open(&path)?;
        Self::from_store(cfg, &store)
            .with_context(|| format!("loading MuQ weights from {}", path.display()))
    }

    /// Seeded random weights of the real shapes (controls and benchmarks):
    /// weights uniform in ±1/√fan_in, small biases, norms γ ≈ 1, BatchNorm
    /// running statistics mean ≈ 0, var ≈ 1.
    pub fn random_init(cfg: &MuqConfig, seed: u64) -> Self {
        let r = &mut SplitMix64(seed);
        let (h, c, f) = (cfg.encoder_dim, cfg.conv_dim, cfg.intermediate_size);
        let bn = |r: &mut SplitMix64, n: usize| {
            let NormW { gamma, beta } = r.norm(n);
            BatchNormW {
                gamma,
                beta,
                mean: r.uniform_vec(n, 0.1),
                var: r.uniform_vec(n, 0.1).iter().map(|v| 1.0 + v).collect(),
            }
        };
        let conv = |r: &mut SplitMix64, c_out: usize, fan_in: usize, bias: bool| ConvBnW {
            w: r.uniform_vec(c_out * fan_in, 1.0 / (fan_in as f32).sqrt()),
            b: bias.then(|| r.uniform_vec(c_out, 0.02)),
            c_out,
            bn: bn(r, c_out),
        };
        let blocks = (0..2)
            .map(|i| {
                let c_in = if i == 0 { 1 } else { c };
                ResBlockW {
                    c_in,
                    conv1: conv(r, c, c_in * 9, true),
                    conv2: conv(r, c, c * 9, true),
                    conv3: conv(r, c, c_in * 9, true),
                }
            })
            .collect();
        let proj = r.linear(h, c * cfg.sub_freq());
        let no_bias = |l: LinearW| LinearW { b: None, ..l };
        let k = cfg.conv_depthwise_kernel_size;
        let layers = (0..cfg.encoder_depth)
            .map(|_| {
                let ffn = |r: &mut SplitMix64| FfnW {
                    ln: r.norm(h),
                    inner: r.linear(f, h),
                    outer: r.linear(h, f),
                };
                ConformerLayerW {
                    ffn1: ffn(r),
                    attn_ln: r.norm(h),
                    q: r.linear(h, h),
                    k: r.linear(h, h),
                    v: r.linear(h, h),
                    out: r.linear(h, h),
                    conv_ln: r.norm(h),
                    pointwise1: no_bias(r.linear(2 * h, h)),
                    depthwise: conv(r, h, k, false),
                    pointwise2: no_bias(r.linear(h, h)),
                    ffn2: ffn(r),
                    final_ln: r.norm(h),
                }
            })
            .collect();
        Self {
            blocks,
            proj,
            layers,
            enc_ln: r.norm(h),
        }
    }
}
