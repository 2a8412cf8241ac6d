//! MuQ weights on the host, as the checkpoint stores them (SPEC §2.6): one
//! walk over the tensor names ([`MuqWeights::walk`]) loads a checkpoint (with
//! or without the `model.` prefix, every shape checked), seeds a random
//! control or records a model for saving. BatchNorm folding, the FFN half-step and the
//! subsampling rearrangement are applied when the model is prepared
//! (`muq::Muq::new`), so this mirrors the file.

use super::config::MuqConfig;
use crate::encoder::checkpoint::WeightStore;
use crate::encoder::nn::{LinearW, NormW};
use crate::encoder::vars::{Checkpoint, Init, Seeded, Vars};
use anyhow::{Context, Result};
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

/// A Conformer FFN at `vars` (`ffnN`), its LayerNorm beside it (`ffnN_layer_norm`).
fn ffn(vars: &mut Vars, name: &str, h: usize, f: usize) -> Result<FfnW> {
    Ok(FfnW {
        ln: vars.pp(format!("{name}_layer_norm")).norm(h)?,
        inner: vars
            .pp(format!("{name}.intermediate_dense"))
            .linear(f, h, true)?,
        outer: vars.pp(format!("{name}.output_dense")).linear(h, f, true)?,
    })
}

/// Eval-mode BatchNorm statistics and affine at `vars`.
fn batch_norm(vars: &mut Vars, n: usize) -> Result<BatchNormW> {
    let NormW { gamma, beta } = vars.norm(n)?;
    Ok(BatchNormW {
        gamma,
        beta,
        mean: vars.get("running_mean", &[n], Init::NearZero)?,
        var: vars.get("running_var", &[n], Init::NearOne)?,
    })
}

/// `conv{i}` (3×3, with bias) and `bn{i}` of a residual block.
fn conv3x3(block: &mut Vars, i: usize, c_out: usize, c_in: usize) -> Result<ConvBnW> {
    let mut conv = block.pp(format!("conv{i}"));
    Ok(ConvBnW {
        w: conv.get("weight", &[c_out, c_in, 3, 3], Init::FanIn)?,
        b: Some(conv.get("bias", &[c_out], Init::Bias)?),
        c_out,
        bn: batch_norm(&mut block.pp(format!("bn{i}")), c_out)?,
    })
}

/// A 1×1 conv without bias stored `[out, in, 1]`, as a linear. The seeded
/// controls have always drawn a bias here and dropped it.
fn pointwise(vars: &mut Vars, out: usize, inp: usize) -> Result<LinearW> {
    let w = vars.get("weight", &[out, inp, 1], Init::FanIn)?;
    vars.skip(out, Init::Bias);
    Ok(LinearW {
        w,
        b: None,
        out,
        inp,
    })
}

impl MuqWeights {
    /// The model's tensors, named once as the checkpoint stores them (the
    /// `model.` prefix is optional when loading), shapes from `cfg`: load,
    /// seed or record them through `vars` (see [`crate::encoder::vars`]).
    /// Tensors the encoder does not use (RVQ, heads, `cls_token`, the unused
    /// positional conv, `num_batches_tracked`) are not walked.
    pub fn walk(cfg: &MuqConfig, vars: &mut Vars) -> Result<Self> {
        let (h, c, f) = (cfg.encoder_dim, cfg.conv_dim, cfg.intermediate_size);
        let blocks = (0..2)
            .map(|i| {
                let mut block = vars.pp(format!("model.conv.conv.{i}"));
                let c_in = if i == 0 { 1 } else { c };
                Ok(ResBlockW {
                    c_in,
                    conv1: conv3x3(&mut block, 1, c, c_in)?,
                    conv2: conv3x3(&mut block, 2, c, c)?,
                    conv3: conv3x3(&mut block, 3, c, c_in)?,
                })
            })
            .collect::<Result<_>>()?;
        let proj = vars
            .pp("model.conv.linear")
            .linear(h, c * cfg.sub_freq(), true)?;
        let k = cfg.conv_depthwise_kernel_size;
        let layers = (0..cfg.encoder_depth)
            .map(|l| {
                let mut p = vars.pp(format!("model.conformer.layers.{l}"));
                let ffn1 = ffn(&mut p, "ffn1", h, f)?;
                let attn_ln = p.pp("self_attn_layer_norm").norm(h)?;
                let mut a = p.pp("self_attn");
                let (q, k_, v, out) = (
                    a.pp("linear_q").linear(h, h, true)?,
                    a.pp("linear_k").linear(h, h, true)?,
                    a.pp("linear_v").linear(h, h, true)?,
                    a.pp("linear_out").linear(h, h, true)?,
                );
                let mut cm = p.pp("conv_module");
                let conv_ln = cm.pp("layer_norm").norm(h)?;
                let pointwise1 = pointwise(&mut cm.pp("pointwise_conv1"), 2 * h, h)?;
                let depthwise = ConvBnW {
                    w: cm.get("depthwise_conv.weight", &[h, 1, k], Init::FanIn)?,
                    b: None,
                    c_out: h,
                    bn: batch_norm(&mut cm.pp("batch_norm"), h)?,
                };
                let pointwise2 = pointwise(&mut cm.pp("pointwise_conv2"), h, h)?;
                Ok(ConformerLayerW {
                    ffn1,
                    attn_ln,
                    q,
                    k: k_,
                    v,
                    out,
                    conv_ln,
                    pointwise1,
                    depthwise,
                    pointwise2,
                    ffn2: ffn(&mut p, "ffn2", h, f)?,
                    final_ln: p.pp("final_layer_norm").norm(h)?,
                })
            })
            .collect::<Result<_>>()?;
        let depth = cfg.encoder_depth;
        vars.ensure_absent(
            &format!("model.conformer.layers.{depth}.final_layer_norm.weight"),
            &format!("config encoder_depth is {depth}"),
        )?;
        Ok(Self {
            blocks,
            proj,
            layers,
            enc_ln: vars.pp("model.conformer.layer_norm").norm(h)?,
        })
    }

    /// Load by name from a checkpoint; every shape is checked against `cfg`.
    pub fn from_store(cfg: &MuqConfig, s: &WeightStore) -> Result<Self> {
        Self::walk(cfg, &mut Vars::new(&mut Checkpoint(s)))
    }

    /// Load `dir/model.safetensors`.
    pub fn from_dir(cfg: &MuqConfig, dir: &Path) -> Result<Self> {
        let path = dir.join("model.safetensors");
        let store = WeightStore::open(&path)?;
        Self::from_store(cfg, &store)
            .with_context(|| format!("loading MuQ weights from {}", path.display()))
    }

    /// Seeded random weights of the real shapes (controls and benchmarks);
    /// see [`Init`] for the scales (BatchNorm running mean ≈ 0, var ≈ 1).
    pub fn random_init(cfg: &MuqConfig, seed: u64) -> Result<Self> {
        Self::walk(cfg, &mut Vars::new(&mut Seeded::new(seed)))
    }
}
