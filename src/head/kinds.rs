//! The head kinds of `arch` built from the layers in [`super::nn`]: what each
//! kind computes from its inputs, and its pooled representation (what the
//! contrastive loss projects).
//!
//! | arch | input | computation |
//! |---|---|---|
//! | `linear`, `mlp` | pooled vector | standard head |
//! | `attention` | frames | attention pool → standard head |
//! | `bilstm` | frames | BiLSTM → attention pool → standard head |
//! | `transformer` | frames | pre-LN encoder layers → attention pool → standard head |
//! | `per_dim` | frames | named dims: BiLSTM → attention → own head; the rest: masked mean → standard head |
//! | `mel_cnn` | frames (bands) | conv blocks → masked global mean → standard head |
//! | `ensemble` | two frame sets | each: attention pool → own standard head; outputs averaged |
//! | `concat` | two frame sets | each: attention pool → Linear to `fusion_dim`; concatenated → standard head |
//! | `gated` | two frame sets | m, u projections; g = σ(W₂ GELU(W₁[m;u])) per dim; dim i: head_i(g_i m + (1−g_i) u) |

use candle_core::{DType, Tensor};

use super::config::{Arch, HeadConfig, OutputActivation};
use super::nn::attention::AttentionPool;
use super::nn::cnn::{ConvBlock, masked_global_mean};
use super::nn::contrastive::Projection;
use super::nn::linear::{Linear, StdHead};
use super::nn::lstm::BiLstm;
use super::nn::ops::{activate, dropout, layer_norm, masked_mean, sigmoid};
use super::nn::params::Params;
use super::nn::transformer::{EncoderLayer, sinusoidal};
use super::nn::{Padded, Result};
use crate::dims::N_DIMS;
use crate::rng::Rng;

/// Widths of a head's inputs: one feature set, or two for the fusion kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InputDims {
    pub a: usize,
    pub b: Option<usize>,
}

/// One batch of inputs.
pub enum Batch {
    /// `[b, d]` pooled vectors.
    Pooled(Tensor),
    Frames(Padded),
    Two(Padded, Padded),
}

impl Batch {
    fn frames(&self) -> Result<&Padded> {
        match self {
            Batch::Frames(p) => Ok(p),
            _ => anyhow::bail!("this head takes one frame-sequence input"),
        }
    }
    fn two(&self) -> Result<(&Padded, &Padded)> {
        match self {
            Batch::Two(a, b) => Ok((a, b)),
            _ => anyhow::bail!("this head takes two frame-sequence inputs"),
        }
    }
}

/// A projection block: Linear → LayerNorm → GELU → dropout.
#[derive(Clone, Debug)]
struct ProjBlock {
    lin: Linear,
    gamma: Tensor,
    beta: Tensor,
}

impl ProjBlock {
    fn new(p: &mut Params, d_in: usize, d_out: usize) -> Result<ProjBlock> {
        Ok(ProjBlock {
            lin: Linear::new(p, d_in, d_out)?,
            gamma: p.constant(&[d_out], 1.0)?,
            beta: p.constant(&[d_out], 0.0)?,
        })
    }
    fn forward(&self, x: &Tensor, drop: f32, rng: Option<&mut Rng>) -> Result<Tensor> {
        let h = layer_norm(&self.lin.forward(x)?, &self.gamma, &self.beta)?.gelu_erf()?;
        dropout(&h, drop, rng)
    }
}

enum Kind {
    Std(StdHead),
    Attention {
        pool: AttentionPool,
        head: StdHead,
    },
    Bilstm {
        lstm: BiLstm,
        pool: AttentionPool,
        head: StdHead,
    },
    Transformer {
        layers: Vec<EncoderLayer>,
        posenc: bool,
        pool: AttentionPool,
        head: StdHead,
    },
    PerDim {
        lstm: BiLstm,
        pool: AttentionPool,
        seq_head: StdHead,
        rest_head: StdHead,
        /// Column j of the output comes from column perm[j] of [seq ‖ rest].
        perm: Tensor,
    },
    MelCnn {
        blocks: Vec<ConvBlock>,
        head: StdHead,
    },
    Ensemble {
        pools: [AttentionPool; 2],
        heads: [StdHead; 2],
    },
    Concat {
        pools: [AttentionPool; 2],
        projs: [Linear; 2],
        head: StdHead,
    },
    Gated {
        pools: [AttentionPool; 2],
        proj_a: Vec<ProjBlock>,
        proj_b: ProjBlock,
        gate: [Linear; 2],
        /// Per-dimension heads, batched: `[k, p, h]`, `[k, 1, h]`, `[k, h, 1]`, `[k, 1, 1]`.
        heads: [Tensor; 4],
    },
}

/// A head: its parameters and how it computes.
pub struct Model {
    pub params: Params,
    kind: Kind,
    proj: Option<Projection>,
    cfg: HeadConfig,
}

/// Attention width: `attention_hidden`, else the input width / 4 (the
/// study's 1024 → 256 and 512 → 128).
fn att_hidden(cfg: &HeadConfig, d: usize) -> usize {
    cfg.attention_hidden.unwrap_or((d / 4).max(1))
}

impl Model {
    /// Builds the head `cfg.arch` for inputs of widths `dims` with `n_out`
    /// outputs; parameters initialised from `rng`, in `dtype`.
    pub fn new(
        cfg: &HeadConfig,
        dims: InputDims,
        n_out: usize,
        dtype: DType,
        rng: Rng,
    ) -> Result<Model> {
        let mut p = Params::new(dtype, rng);
        let hidden = cfg.hidden.0.as_slice();
        let std = |p: &mut Params, d: usize, hidden: &[usize], k: usize| {
            StdHead::new(p, d, hidden, k, cfg.activation, cfg.dropout, cfg.output)
        };
        let two = || -> Result<usize> {
            dims.b
                .ok_or_else(|| anyhow::anyhow!("head `{:?}` needs two inputs", cfg.arch))
        };
        let d = dims.a;
        let (kind, repr) = match cfg.arch {
            Arch::Linear => (Kind::Std(std(&mut p, d, &[], n_out)?), d),
            Arch::Mlp => (Kind::Std(std(&mut p, d, hidden, n_out)?), d),
            Arch::MlpPerDim => anyhow::bail!(
                "head.arch = \"mlp_per_dim\" takes none of the autodiff options (hidden lists, contrastive, lr_schedule, grad_clip)"
            ),
            Arch::Attention => {
                let pool = AttentionPool::new(&mut p, d, att_hidden(cfg, d))?;
                (
                    Kind::Attention {
                        pool,
                        head: std(&mut p, d, hidden, n_out)?,
                    },
                    d,
                )
            }
            Arch::Bilstm => {
                let layers = cfg.lstm_layers.unwrap_or(1);
                let lstm = BiLstm::new(&mut p, d, cfg.lstm_hidden, layers, cfg.lstm_dropout)?;
                let w = lstm.out_dim();
                let pool = AttentionPool::new(&mut p, w, att_hidden(cfg, w))?;
                let head = std(&mut p, w, hidden, n_out)?;
                (Kind::Bilstm { lstm, pool, head }, w)
            }
            Arch::Transformer => {
                let layers = (0..cfg.transformer_layers)
                    .map(|_| {
                        EncoderLayer::new(
                            &mut p,
                            d,
                            cfg.transformer_heads,
                            cfg.transformer_ffn,
                            cfg.dropout,
                        )
                    })
                    .collect::<Result<Vec<_>>>()?;
                let pool = AttentionPool::new(&mut p, d, att_hidden(cfg, d))?;
                let head = std(&mut p, d, hidden, n_out)?;
                (
                    Kind::Transformer {
                        layers,
                        posenc: cfg.positional_encoding,
                        pool,
                        head,
                    },
                    d,
                )
            }
            Arch::PerDim => {
                let seq: Vec<usize> = cfg.per_dim_indices()?;
                let rest: Vec<usize> = (0..n_out).filter(|j| !seq.contains(j)).collect();
                let layers = cfg.lstm_layers.unwrap_or(2);
                let lstm = BiLstm::new(&mut p, d, cfg.lstm_hidden, layers, cfg.lstm_dropout)?;
                let w = lstm.out_dim();
                let pool = AttentionPool::new(&mut p, w, att_hidden(cfg, w))?;
                let seq_head = std(&mut p, w, &cfg.per_dim_hidden, seq.len())?;
                let rest_head = std(&mut p, d, hidden, rest.len())?;
                let order: Vec<usize> = seq.iter().chain(&rest).copied().collect();
                let perm: Vec<u32> = (0..n_out)
                    .map(|j| order.iter().position(|&o| o == j).expect("every dim") as u32)
                    .collect();
                let perm = Tensor::from_vec(perm, n_out, &candle_core::Device::Cpu)?;
                (
                    Kind::PerDim {
                        lstm,
                        pool,
                        seq_head,
                        rest_head,
                        perm,
                    },
                    w + d,
                )
            }
            Arch::MelCnn => {
                anyhow::ensure!(
                    d >= 1 << cfg.cnn_pools,
                    "head.cnn_pools = {} halves the {d} bands below 1",
                    cfg.cnn_pools
                );
                let mut blocks = Vec::new();
                let mut c_in = 1;
                for (k, &c) in cfg.cnn_channels.iter().enumerate() {
                    blocks.push(ConvBlock::new(&mut p, c_in, c, k < cfg.cnn_pools)?);
                    c_in = c;
                }
                let head = std(&mut p, c_in, hidden, n_out)?;
                (Kind::MelCnn { blocks, head }, c_in)
            }
            Arch::Ensemble => {
                let db = two()?;
                let pools = [
                    AttentionPool::new(&mut p, d, att_hidden(cfg, d))?,
                    AttentionPool::new(&mut p, db, att_hidden(cfg, db))?,
                ];
                let heads = [
                    std(&mut p, d, hidden, n_out)?,
                    std(&mut p, db, hidden, n_out)?,
                ];
                (Kind::Ensemble { pools, heads }, d + db)
            }
            Arch::Concat => {
                let db = two()?;
                let f = cfg.fusion_dim;
                let pools = [
                    AttentionPool::new(&mut p, d, att_hidden(cfg, d))?,
                    AttentionPool::new(&mut p, db, att_hidden(cfg, db))?,
                ];
                let projs = [Linear::new(&mut p, d, f)?, Linear::new(&mut p, db, f)?];
                let head = std(&mut p, 2 * f, hidden, n_out)?;
                (Kind::Concat { pools, projs, head }, 2 * f)
            }
            Arch::Gated => {
                let db = two()?;
                let f = cfg.fusion_dim;
                let hh = cfg.gate_head_hidden;
                let pools = [
                    AttentionPool::new(&mut p, d, att_hidden(cfg, d))?,
                    AttentionPool::new(&mut p, db, att_hidden(cfg, db))?,
                ];
                let proj_a = vec![ProjBlock::new(&mut p, d, f)?, ProjBlock::new(&mut p, f, f)?];
                let proj_b = ProjBlock::new(&mut p, db, f)?;
                let gate = [
                    Linear::new(&mut p, 2 * f, f)?,
                    Linear::new(&mut p, f, n_out)?,
                ];
                let (b1, b2) = (1.0 / (f as f32).sqrt(), 1.0 / (hh as f32).sqrt());
                let heads = [
                    p.uniform(&[n_out, f, hh], b1)?,
                    p.uniform(&[n_out, 1, hh], b1)?,
                    p.uniform(&[n_out, hh, 1], b2)?,
                    p.uniform(&[n_out, 1, 1], b2)?,
                ];
                (
                    Kind::Gated {
                        pools,
                        proj_a,
                        proj_b,
                        gate,
                        heads,
                    },
                    2 * f,
                )
            }
        };
        let proj = if cfg.contrastive_weight > 0.0 {
            Some(Projection::new(&mut p, repr, &cfg.contrastive_projection)?)
        } else {
            None
        };
        Ok(Model {
            params: p,
            kind,
            proj,
            cfg: cfg.clone(),
        })
    }

    /// Predictions `[b, n_out]` and the pooled representation `[b, r]`;
    /// `rng` = training mode (dropout, BatchNorm on batch statistics).
    pub fn forward(&self, batch: &Batch, mut rng: Option<&mut Rng>) -> Result<(Tensor, Tensor)> {
        let train = rng.is_some();
        match &self.kind {
            Kind::Std(head) => {
                let Batch::Pooled(x) = batch else {
                    anyhow::bail!("a pooled-vector head got frame sequences")
                };
                Ok((head.forward(x, rng)?, x.clone()))
            }
            Kind::Attention { pool, head } => {
                let f = batch.frames()?;
                let (r, _) = pool.forward(&f.x, &f.mask)?;
                Ok((head.forward(&r, rng)?, r))
            }
            Kind::Bilstm { lstm, pool, head } => {
                let f = batch.frames()?;
                let h = lstm.forward(&f.x, &f.lens, rng.as_deref_mut())?;
                let (r, _) = pool.forward(&h, &f.mask)?;
                Ok((head.forward(&r, rng)?, r))
            }
            Kind::Transformer {
                layers,
                posenc,
                pool,
                head,
            } => {
                let f = batch.frames()?;
                let mut h = f.x.clone();
                if *posenc {
                    let (_, t, d) = h.dims3()?;
                    h = h.broadcast_add(&sinusoidal(t, d, &h)?)?;
                }
                for l in layers {
                    h = l.forward(&h, &f.mask, rng.as_deref_mut())?;
                }
                let (r, _) = pool.forward(&h, &f.mask)?;
                Ok((head.forward(&r, rng)?, r))
            }
            Kind::PerDim {
                lstm,
                pool,
                seq_head,
                rest_head,
                perm,
            } => {
                let f = batch.frames()?;
                let h = lstm.forward(&f.x, &f.lens, rng.as_deref_mut())?;
                let (rs, _) = pool.forward(&h, &f.mask)?;
                let rm = masked_mean(&f.x, &f.mask)?;
                let ys = seq_head.forward(&rs, rng.as_deref_mut())?;
                let yr = rest_head.forward(&rm, rng)?;
                let pred = Tensor::cat(&[ys, yr], 1)?.index_select(perm, 1)?;
                Ok((pred, Tensor::cat(&[rs, rm], 1)?))
            }
            Kind::MelCnn { blocks, head } => {
                let f = batch.frames()?;
                // [b, t, bands] → [1, b, bands, t] (channels first, see
                // nn::cnn), at least one frame per pool.
                let mut x = f.x.transpose(1, 2)?.unsqueeze(0)?.contiguous()?;
                let min_t = 1usize << blocks.iter().filter(|b| b.pool).count();
                let t = x.dim(3)?;
                if t < min_t {
                    x = x.pad_with_zeros(3, 0, min_t - t)?;
                }
                let mut lens = f.lens.clone();
                for b in blocks {
                    let (y, l) = b.forward(&x, &lens, train)?;
                    x = y;
                    lens = l;
                }
                let r = masked_global_mean(&x, &lens)?;
                Ok((head.forward(&r, rng)?, r))
            }
            Kind::Ensemble { pools, heads } => {
                let (a, b) = batch.two()?;
                let (ra, _) = pools[0].forward(&a.x, &a.mask)?;
                let (rb, _) = pools[1].forward(&b.x, &b.mask)?;
                let ya = heads[0].forward(&ra, rng.as_deref_mut())?;
                let yb = heads[1].forward(&rb, rng)?;
                Ok((((ya + yb)? * 0.5)?, Tensor::cat(&[ra, rb], 1)?))
            }
            Kind::Concat { pools, projs, head } => {
                let (a, b) = batch.two()?;
                let ma = projs[0].forward(&pools[0].forward(&a.x, &a.mask)?.0)?;
                let mb = projs[1].forward(&pools[1].forward(&b.x, &b.mask)?.0)?;
                let r = Tensor::cat(&[ma, mb], 1)?;
                Ok((head.forward(&r, rng)?, r))
            }
            Kind::Gated {
                pools,
                proj_a,
                proj_b,
                gate,
                heads,
            } => {
                let (a, b) = batch.two()?;
                let drop = self.cfg.dropout;
                let mut m = pools[0].forward(&a.x, &a.mask)?.0;
                for blk in proj_a {
                    m = blk.forward(&m, drop, rng.as_deref_mut())?;
                }
                let u = proj_b.forward(
                    &pools[1].forward(&b.x, &b.mask)?.0,
                    drop,
                    rng.as_deref_mut(),
                )?;
                let mu = Tensor::cat(&[&m, &u], 1)?;
                let g = sigmoid(&gate[1].forward(&gate[0].forward(&mu)?.gelu_erf()?)?)?; // [b, k]
                let g3 = g.unsqueeze(2)?; // [b, k, 1]
                let fused = (g3.broadcast_mul(&m.unsqueeze(1)?)?
                    + (1.0 - &g3)?.broadcast_mul(&u.unsqueeze(1)?)?)?; // [b, k, f]
                let z = fused.transpose(0, 1)?.contiguous()?; // [k, b, f]
                let h = activate(
                    &z.matmul(&heads[0])?.broadcast_add(&heads[1])?,
                    self.cfg.activation,
                )?;
                let h = dropout(&h, drop, rng)?;
                let out = h.matmul(&heads[2])?.broadcast_add(&heads[3])?; // [k, b, 1]
                let out = out.squeeze(2)?.t()?.contiguous()?;
                let pred = match self.cfg.output {
                    OutputActivation::Sigmoid => sigmoid(&out)?,
                    OutputActivation::Linear => out,
                };
                Ok((pred, mu))
            }
        }
    }

    /// The contrastive embedding of a representation, if the head has one.
    pub fn embed(&self, repr: &Tensor) -> Result<Option<Tensor>> {
        self.proj.as_ref().map(|p| p.forward(repr)).transpose()
    }
}

/// Outputs of every head: the 19 PercePiano dimensions.
pub const N_OUT: usize = N_DIMS;
