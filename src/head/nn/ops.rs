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

/// 1 / (1 + e^(−x)), as `torch.sigmoid`, written as (1 + tanh(x/2)) / 2: the
/// reciprocal form's backward multiplies 0 by e^(−x) = inf once x < −88 and
/// gives NaN (unstandardised inputs in the thousands, the study's A3, get
/// there), where tanh's gradient 1 − tanh² just goes to 0, as torch's does.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    let t = ((x * 0.5)?.tanh()? + 1.0)?;
    Ok((t * 0.5)?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Values as torch.sigmoid gives them, and a gradient that is s(1 − s)
    /// everywhere: 0, not NaN, far into saturation (the reciprocal form gave
    /// NaN below x = −88 in f32).
    #[test]
    fn sigmoid_matches_the_logistic_and_its_gradient_never_goes_nan() {
        let xs = [-1.0e4f32, -200.0, -88.7, -3.0, 0.0, 2.5, 90.0, 1.0e4];
        let x = Var::from_vec(xs.to_vec(), xs.len(), &Device::Cpu).unwrap();
        let s = sigmoid(x.as_tensor()).unwrap();
        let got = s.to_vec1::<f32>().unwrap();
        let grads = s.sum_all().unwrap().backward().unwrap();
        let g = grads.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        for ((&x, &s), &g) in xs.iter().zip(&got).zip(&g) {
            let want = 1.0 / (1.0 + (-f64::from(x)).exp());
            assert!(
                (f64::from(s) - want).abs() < 1e-6,
                "sigmoid({x}) = {s}, want {want}"
            );
            let dwant = want * (1.0 - want);
            assert!(
                g.is_finite() && (f64::from(g) - dwant).abs() < 1e-6,
                "d sigmoid({x}) = {g}, want {dwant}"
            );
        }
    }
}
