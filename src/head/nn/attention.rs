//! Attention pooling (the study's B2b): s_t = w₂ᵀ tanh(W₁x_t + b₁), weights =
//! softmax over the clip's real frames, output = Σ_t a_t x_t.
//!
//! w₂ has no bias: a constant added to every score cancels in the softmax.

use candle_core::Tensor;

use super::Result;
use super::linear::Linear;
use super::ops::masked_softmax;
use super::params::Params;

#[derive(Clone, Debug)]
pub struct AttentionPool {
    pub w1: Linear,
    pub w2: Linear,
}

impl AttentionPool {
    pub fn new(p: &mut Params, d: usize, hidden: usize) -> Result<AttentionPool> {
        Ok(AttentionPool {
            w1: Linear::new(p, d, hidden)?,
            w2: Linear::no_bias(p, hidden, 1)?,
        })
    }

    /// `x` `[b, t, d]`, `mask` `[b, t]` → (`[b, d]`, weights `[b, t]`).
    pub fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<(Tensor, Tensor)> {
        let s = self.w2.forward(&self.w1.forward(x)?.tanh()?)?.squeeze(2)?;
        let a = masked_softmax(&s, mask)?;
        let pooled = a.unsqueeze(1)?.matmul(&x.contiguous()?)?.squeeze(1)?;
        Ok((pooled, a))
    }
}
