//! The mel-CNN's layers (the study's A2): conv 3×3 (padding 1) → BatchNorm
//! → ReLU → optional 2×2 max-pool, and a global average pool, over inputs
//! `[1, b, f, t]` (f = bands, t = frames). Channels first, batch second:
//! every per-channel sum (BatchNorm's statistics, the bias's and BN's
//! gradients) then runs over contiguous trailing dimensions, which candle
//! 0.9.2 reduces fast; over dims (0, 2, 3) of `[b, c, f, t]` its generic
//! reduction took most of the mel-CNN's training time.
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

/// `[1, b, 1, t]` with 1 on the first `lens[i]` frames.
pub fn time_mask(lens: &[usize], t: usize, like: &Tensor) -> Result<Tensor> {
    let mut m = vec![0f32; lens.len() * t];
    for (i, &l) in lens.iter().enumerate() {
        m[i * t..i * t + l.min(t)].fill(1.0);
    }
    Ok(Tensor::from_vec(m, (1, lens.len(), 1, t), like.device())?.to_dtype(like.dtype())?)
}

/// Per-channel sum of `[c, b, f, t]` → `[c, 1, 1, 1]`, over contiguous rows.
fn channel_sum(y: &Tensor) -> Result<Tensor> {
    let c = y.dim(0)?;
    Ok(y.contiguous()?
        .reshape((c, y.elem_count() / c))?
        .sum_keepdim(1)?
        .reshape((c, 1, 1, 1))?)
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

    /// `x` `[c_in, b, f, t]` (zero past `lens`) → (`[c_out, b, f', t']`, lens').
    /// `train`: BatchNorm on this batch's statistics and update of the
    /// running ones; else the running statistics.
    pub fn forward(&self, x: &Tensor, lens: &[usize], train: bool) -> Result<(Tensor, Vec<usize>)> {
        let c = self.b.dim(0)?;
        let y = conv3x3(x, &self.w)?.broadcast_add(&self.b.reshape((c, 1, 1, 1))?)?;
        let (_, _, f, t) = y.dims4()?;
        let m = time_mask(lens, t, &y)?;
        let (mean, var) = if train {
            let n = (f * lens.iter().sum::<usize>()) as f64;
            let mean = (channel_sum(&y.broadcast_mul(&m)?)? / n)?;
            let dev = y.broadcast_sub(&mean)?.broadcast_mul(&m)?;
            let var = (channel_sum(&dev.sqr()?)? / n)?;
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
                self.running_mean.as_tensor().reshape((c, 1, 1, 1))?,
                self.running_var.as_tensor().reshape((c, 1, 1, 1))?,
            )
        };
        let yn = y
            .broadcast_sub(&mean)?
            .broadcast_div(&(var + BN_EPS)?.sqrt()?)?
            .broadcast_mul(&self.gamma.reshape((c, 1, 1, 1))?)?
            .broadcast_add(&self.beta.reshape((c, 1, 1, 1))?)?;
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

/// 3×3 convolution (cross-correlation, as torch), stride 1, zero padding
/// 1, channels first: `x` `[c, b, f, t]`, `w` `[c_out, c, 3, 3]` →
/// `[c_out, b, f, t]`, as the nine shifted copies of the padded input and
/// one matmul. Candle 0.9.2's `conv2d` backward runs `conv_transpose2d`, a
/// plain loop on the CPU; the backward of narrow, stack and matmul is
/// copies and gemm.
pub fn conv3x3(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (c, b, f, t) = x.dims4()?;
    let c_out = w.dim(0)?;
    let padded = x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
    let mut shifted = Vec::with_capacity(9);
    for di in 0..3 {
        for dj in 0..3 {
            shifted.push(padded.narrow(2, di, f)?.narrow(3, dj, t)?);
        }
    }
    // [c, 9, b, f, t]: row c·9 + 3·di + dj, w's own layout.
    let patches = Tensor::stack(&shifted, 1)?.reshape((c * 9, b * f * t))?;
    let y = w.reshape((c_out, c * 9))?.matmul(&patches)?;
    Ok(y.reshape((c_out, b, f, t))?)
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

/// Mean over bands and real frames: `[c, b, f, t]` → `[b, c]`.
pub fn masked_global_mean(y: &Tensor, lens: &[usize]) -> Result<Tensor> {
    let (_, b, f, t) = y.dims4()?;
    let m = time_mask(lens, t, y)?;
    let sum = y.broadcast_mul(&m)?.sum((2, 3))?.t()?;
    let count: Vec<f32> = lens.iter().map(|&l| (f * l.min(t)) as f32).collect();
    let count = Tensor::from_vec(count, (b, 1), y.device())?.to_dtype(y.dtype())?;
    Ok(sum.broadcast_div(&count)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// conv3x3 is candle's conv2d (padding 1), forward and both gradients.
    #[test]
    fn conv3x3_matches_conv2d_and_its_gradients() {
        let dev = Device::Cpu;
        let vals = |n: usize, k: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (((i * k + 3) % 17) as f32 - 8.0) / 8.0)
                .collect()
        };
        // x as candle's [b, c, f, t]; ours reads it channels first.
        let x = Var::from_vec(vals(2 * 3 * 5 * 7, 5), (2, 3, 5, 7), &dev).unwrap();
        let w = Var::from_vec(vals(4 * 3 * 9, 7), (4, 3, 3, 3), &dev).unwrap();
        let cf = x.as_tensor().transpose(0, 1).unwrap();
        let ours = conv3x3(&cf, w.as_tensor())
            .unwrap()
            .transpose(0, 1)
            .unwrap();
        let theirs = x.as_tensor().conv2d(w.as_tensor(), 1, 1, 1, 1).unwrap();
        let diff = |a: &Tensor, b: &Tensor| -> f32 {
            (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar()
                .unwrap()
        };
        assert_eq!(ours.dims(), [2, 4, 5, 7]);
        assert!(diff(&ours, &theirs) < 1e-5);
        // A loss that weighs every output differently.
        let weights = Tensor::from_vec(vals(2 * 4 * 5 * 7, 3), (2, 4, 5, 7), &dev).unwrap();
        let g1 = (ours * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g2 = (theirs * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in [&x, &w] {
            let (a, b) = (
                g1.get(v.as_tensor()).unwrap(),
                g2.get(v.as_tensor()).unwrap(),
            );
            assert!(diff(a, b) < 1e-4, "gradient differs by {}", diff(a, b));
        }
    }
}
