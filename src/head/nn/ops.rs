//! Tensor functions the layers share, composed from candle ops so autodiff
//! differentiates them: sigmoid, masked softmax, masked mean, layer norm,
//! activations, and dropout with masks from the project's seeded RNG.

use candle_core::{D, Tensor};

use super::Result;
use crate::head::config::Activation;
use crate::rng::Rng;

/// Added to masked scores: exp(−1e9 − max) is exactly 0 in f32 and f64, so a
/// padded frame gets exactly zero weight.
const MASKED: f64 = -1e9;

/// 1 / (1 + e^(−x)), as `torch.sigmoid`.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    Ok((x.neg()?.exp()? + 1.0)?.recip()?)
}

/// Softmax over the last dimension with max subtraction.
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    let x = x.broadcast_sub(&x.max_keepdim(D::Minus1)?.detach())?;
    let e = x.exp()?;
    Ok(e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?)
}

/// log-softmax over the last dimension.
pub fn log_softmax_last(x: &Tensor) -> Result<Tensor> {
    let x = x.broadcast_sub(&x.max_keepdim(D::Minus1)?.detach())?;
    let lse = x.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(x.broadcast_sub(&lse)?)
}

/// Adds −1e9 where `mask` (broadcastable to `scores`) is 0.
pub fn mask_scores(scores: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let penalty = ((mask - 1.0)? * -MASKED)?;
    Ok(scores.broadcast_add(&penalty)?)
}

/// Softmax over the last dimension of `scores` `[b, t]` with padded frames
/// (`mask` 0) at weight exactly 0.
pub fn masked_softmax(scores: &Tensor, mask: &Tensor) -> Result<Tensor> {
    softmax_last(&mask_scores(scores, mask)?)
}

/// Mean over real frames: `x` `[b, t, d]`, `mask` `[b, t]` → `[b, d]`.
pub fn masked_mean(x: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let m = mask.unsqueeze(2)?;
    let sum = x.broadcast_mul(&m)?.sum(1)?;
    Ok(sum.broadcast_div(&mask.sum_keepdim(1)?)?)
}

/// LayerNorm over the last dimension (biased variance, eps 1e-5 as torch).
pub fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let xn = xc.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
    Ok(xn.broadcast_mul(gamma)?.broadcast_add(beta)?)
}

/// The hidden activation: exact-erf GELU or ReLU.
pub fn activate(x: &Tensor, act: Activation) -> Result<Tensor> {
    Ok(match act {
        Activation::Gelu => x.gelu_erf()?,
        Activation::Relu => x.relu()?,
    })
}

/// Inverted dropout in training mode (`rng` given): each element is zeroed
/// with probability `p`, survivors scaled by 1/(1−p). One uniform draw per
/// element, row-major: the same masks as the hand-written MLP draws.
pub fn dropout(x: &Tensor, p: f32, rng: Option<&mut Rng>) -> Result<Tensor> {
    let Some(rng) = rng else {
        return Ok(x.clone());
    };
    if p <= 0.0 {
        return Ok(x.clone());
    }
    let scale = 1.0 / (1.0 - p);
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| if rng.uniform_f32() < p { 0.0 } else { scale })
        .collect();
    let mask = Tensor::from_vec(mask, x.dims(), x.device())?.to_dtype(x.dtype())?;
    Ok((x * mask)?)
}

/// Each row scaled to unit L2 norm (eps 1e-12 as `F.normalize`).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
    Ok(x.broadcast_div(&norm.clamp(1e-12, f64::INFINITY)?)?)
}
