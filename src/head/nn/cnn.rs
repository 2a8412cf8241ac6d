//! The mel-CNN's layers (the study's A2): conv 3×3 (padding 1) → BatchNorm
//! → ReLU → optional 2×2 max-pool, and a global average pool, over inputs
//! `[b, 1, f, t]` (f = bands, t = frames).
//!
//! Masks: padded frames are zeroed after every block, BatchNorm's batch
//! statistics count real positions only, a pool's output length is
//! max(⌊len/2⌋, 1) and the global pool averages real positions only. Since
//! the conv's own zero padding equals the batch's zero padding, a clip's
//! output is the same alone and in a padded batch (in eval mode, where
//! BatchNorm uses its running statistics).

use candle_core::{Tensor, Var};

use super::Result;
use super::params::Params;

const BN_EPS: f64 = 1e-5;
/// torch's BatchNorm momentum: running = 0.9·running + 0.1·batch.
const BN_MOMENTUM: f64 = 0.1;

#[derive(Clone, Debug)]
pub struct ConvBlock {
    /// `[c_out, c_in, 3, 3]`, U(±1/√(c_in·9)) as torch's conv init.
    w: Tensor,
    b: Tensor,
    gamma: Tensor,
    beta: Tensor,
    running_mean: Var,
    running_var: Var,
    pub pool: bool,
}

/// `[b, 1, 1, t]` with 1 on the first `lens[i]` frames.
pub fn time_mask(lens: &[usize], t: usize, like: &Tensor) -> Result<Tensor> {
    let mut m = vec![0f32; lens.len() * t];
    for (i, &l) in lens.iter().enumerate() {
        m[i * t..i * t + l.min(t)].fill(1.0);
    }
    Ok(Tensor::from_vec(m, (lens.len(), 1, 1, t), like.device())?.to_dtype(like.dtype())?)
}

impl ConvBlock {
    pub fn new(p: &mut Params, c_in: usize, c_out: usize, pool: bool) -> Result<ConvBlock> {
        let bound = 1.0 / ((c_in * 9) as f32).sqrt();
        Ok(ConvBlock {
            w: p.uniform(&[c_out, c_in, 3, 3], bound)?,
            b: p.uniform(&[c_out], bound)?,
            gamma: p.constant(&[c_out], 1.0)?,
            beta: p.constant(&[c_out], 0.0)?,
            running_mean: p.buffer(&[c_out], 0.0)?,
            running_var: p.buffer(&[c_out], 1.0)?,
            pool,
        })
    }

    /// `x` `[b, c_in, f, t]` (zero past `lens`) → (`[b, c_out, f', t']`, lens').
    /// `train`: BatchNorm on this batch's statistics and update of the
    /// running ones; else the running statistics.
    pub fn forward(&self, x: &Tensor, lens: &[usize], train: bool) -> Result<(Tensor, Vec<usize>)> {
        let c = self.b.dim(0)?;
        let y = x
            .conv2d(&self.w, 1, 1, 1, 1)?
            .broadcast_add(&self.b.reshape((1, c, 1, 1))?)?;
        let (_, _, f, t) = y.dims4()?;
        let m = time_mask(lens, t, &y)?;
        let (mean, var) = if train {
            let n = (f * lens.iter().sum::<usize>()) as f64;
            let mean = (y.broadcast_mul(&m)?.sum_keepdim((0, 2, 3))? / n)?;
            let dev = y.broadcast_sub(&mean)?.broadcast_mul(&m)?;
            let var = (dev.sqr()?.sum_keepdim((0, 2, 3))? / n)?;
            // torch keeps the unbiased variance in the running estimate.
            let unbiased = (var.detach().flatten_all()? * (n / (n - 1.0).max(1.0)))?;
            let rm = ((self.running_mean.as_tensor() * (1.0 - BN_MOMENTUM))?
                + (mean.detach().flatten_all()? * BN_MOMENTUM)?)?;
            let rv = ((self.running_var.as_tensor() * (1.0 - BN_MOMENTUM))?
                + (unbiased * BN_MOMENTUM)?)?;
            self.running_mean.set(&rm)?;
            self.running_var.set(&rv)?;
            (mean, var)
        } else {
            (
                self.running_mean.as_tensor().reshape((1, c, 1, 1))?,
                self.running_var.as_tensor().reshape((1, c, 1, 1))?,
            )
        };
        let yn = y
            .broadcast_sub(&mean)?
            .broadcast_div(&(var + BN_EPS)?.sqrt()?)?
            .broadcast_mul(&self.gamma.reshape((1, c, 1, 1))?)?
            .broadcast_add(&self.beta.reshape((1, c, 1, 1))?)?;
        let y = yn.relu()?.broadcast_mul(&m)?;
        if !self.pool {
            return Ok((y, lens.to_vec()));
        }
        let pooled = max_pool_2x2(&y)?;
        let lens: Vec<usize> = lens.iter().map(|&l| (l / 2).max(1)).collect();
        let m = time_mask(&lens, pooled.dim(3)?, &pooled)?;
        Ok((pooled.broadcast_mul(&m)?, lens))
    }
}

/// 2×2 max-pool with floor (an odd last band or frame is dropped, as torch),
/// written as crop + reshape + max: candle 0.9.2's `max_pool2d` backward
/// sends gradients to the wrong inputs (the gradient check caught it: error
/// 0.36 on a [2, 1, 8, 8] input), while `max`'s backward is exact.
pub fn max_pool_2x2(y: &Tensor) -> Result<Tensor> {
    let (b, c, f, t) = y.dims4()?;
    let (f2, t2) = (f / 2, t / 2);
    anyhow::ensure!(f2 > 0 && t2 > 0, "max-pool of a {f}×{t} map");
    Ok(y.narrow(2, 0, 2 * f2)?
        .narrow(3, 0, 2 * t2)?
        .contiguous()?
        .reshape((b, c, f2, 2, t2, 2))?
        .max(5)?
        .max(3)?)
}

/// Mean over bands and real frames: `[b, c, f, t]` → `[b, c]`.
pub fn masked_global_mean(y: &Tensor, lens: &[usize]) -> Result<Tensor> {
    let (b, _, f, t) = y.dims4()?;
    let m = time_mask(lens, t, y)?;
    let sum = y.broadcast_mul(&m)?.sum((2, 3))?;
    let count: Vec<f32> = lens.iter().map(|&l| (f * l.min(t)) as f32).collect();
    let count = Tensor::from_vec(count, (b, 1), y.device())?.to_dtype(y.dtype())?;
    Ok(sum.broadcast_div(&count)?)
}
