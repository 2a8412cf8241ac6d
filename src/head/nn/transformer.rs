//! Pre-LN transformer encoder layers (`nn.TransformerEncoderLayer(norm_first
//! = True, activation = "gelu")`): x += Drop(MHA(LN₁(x))); x += Drop(FFN(LN₂(x)))
//! with FFN = Linear → GELU → Drop → Linear, dropout also on the attention
//! weights, and a key padding mask so no query attends to padding. Optional
//! sinusoidal positional encoding (the study's D5 has none).
//!
//! Init as torch: the q/k/v projection ~ Xavier-uniform over the packed
//! `[3d, d]` matrix, its bias and the output bias 0, the output and FFN
//! weights ~ U(±1/√in), LayerNorm γ = 1, β = 0.

use candle_core::Tensor;

use super::Result;
use super::linear::Linear;
use super::ops::{dropout, layer_norm, mask_scores, softmax_last};
use super::params::Params;
use crate::rng::Rng;

#[derive(Clone, Debug)]
pub struct EncoderLayer {
    pub heads: usize,
    pub dropout: f32,
    ln1: (Tensor, Tensor),
    qkv: Linear,
    out: Linear,
    ln2: (Tensor, Tensor),
    ff1: Linear,
    ff2: Linear,
}

impl EncoderLayer {
    pub fn new(
        p: &mut Params,
        d: usize,
        heads: usize,
        ffn: usize,
        dropout: f32,
    ) -> Result<EncoderLayer> {
        anyhow::ensure!(
            heads > 0 && d.is_multiple_of(heads),
            "model width {d} is not a multiple of {heads} heads"
        );
        let ln1 = (p.constant(&[d], 1.0)?, p.constant(&[d], 0.0)?);
        let xavier = (6.0 / (d + 3 * d) as f32).sqrt();
        let qkv = Linear {
            w: p.uniform(&[d, 3 * d], xavier)?,
            b: Some(p.constant(&[3 * d], 0.0)?),
        };
        let out = Linear {
            w: p.uniform(&[d, d], 1.0 / (d as f32).sqrt())?,
            b: Some(p.constant(&[d], 0.0)?),
        };
        let ln2 = (p.constant(&[d], 1.0)?, p.constant(&[d], 0.0)?);
        Ok(EncoderLayer {
            heads,
            dropout,
            ln1,
            qkv,
            out,
            ln2,
            ff1: Linear::new(p, d, ffn)?,
            ff2: Linear::new(p, ffn, d)?,
        })
    }

    /// `x` `[b, t, d]`, `mask` `[b, t]` → `[b, t, d]`.
    pub fn forward(&self, x: &Tensor, mask: &Tensor, mut rng: Option<&mut Rng>) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let (nh, hd) = (self.heads, d / self.heads);
        let h = layer_norm(x, &self.ln1.0, &self.ln1.1)?;
        let qkv = self.qkv.forward(&h)?;
        let split = |k: usize| -> Result<Tensor> {
            Ok(qkv
                .narrow(2, k * d, d)?
                .reshape((b, t, nh, hd))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        let scores = (q.matmul(&k.transpose(2, 3)?.contiguous()?)? / (hd as f64).sqrt())?;
        let key_mask = mask.unsqueeze(1)?.unsqueeze(1)?; // [b, 1, 1, t]
        let attn = softmax_last(&mask_scores(&scores, &key_mask)?)?;
        let attn = dropout(&attn, self.dropout, rng.as_deref_mut())?;
        let ctx = attn
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, t, d))?;
        let a = dropout(&self.out.forward(&ctx)?, self.dropout, rng.as_deref_mut())?;
        let x = (x + a)?;
        let h = layer_norm(&x, &self.ln2.0, &self.ln2.1)?;
        let f = dropout(
            &self.ff1.forward(&h)?.gelu_erf()?,
            self.dropout,
            rng.as_deref_mut(),
        )?;
        let f = dropout(&self.ff2.forward(&f)?, self.dropout, rng)?;
        Ok((x + f)?)
    }
}

/// Sinusoidal positional encoding `[t, d]` (Vaswani et al.): sin on even
/// columns, cos on odd, frequency 10000^(−2i/d).
pub fn sinusoidal(t: usize, d: usize, like: &Tensor) -> Result<Tensor> {
    let mut pe = vec![0f32; t * d];
    for pos in 0..t {
        for i in 0..d {
            let freq = (10000f64).powf(-((i / 2 * 2) as f64) / d as f64);
            let a = pos as f64 * freq;
            pe[pos * d + i] = if i % 2 == 0 { a.sin() } else { a.cos() } as f32;
        }
    }
    Ok(Tensor::from_vec(pe, (t, d), like.device())?.to_dtype(like.dtype())?)
}
