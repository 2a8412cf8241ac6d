//! Plain CPU reference ops: row-major f32 slices, written to be obviously right.
//!
//! These are the oracle the GPU kernels are tested against, so they favour
//! clarity over speed (rayon over rows only where it is free). Reductions that
//! feed normalisations (mean/variance) accumulate in f64. Kernel modules are
//! named by op family (`patches`, `rotary`, `glu`; the rest live here), the
//! gemm fast path is [`fast`], and [`CpuBackend`] puts them behind the
//! backend contract.
//!
//! Imports only `ops` and the backend contract (`backend`) it implements.

mod backend;
pub mod fast;
mod glu;
mod patches;
mod rotary;
#[macro_use]
pub(crate) mod simd;

pub use backend::{CpuBackend, CpuConv1d, CpuLinear, CpuTensor};
pub use glu::glu;
pub use patches::patches2d;
pub use rotary::{rope, rope_table};

use crate::backend::checks;
use crate::ops::Act;
use rayon::prelude::*;

/// Dot product with 8 independent accumulators so the compiler can vectorise it.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// `[rows, out_dim] = act(x Wᵀ + b)` with `x` `[rows, in_dim]` and `w` `[out_dim, in_dim]` (PyTorch layout).
pub fn linear(
    x: &[f32],
    rows: usize,
    in_dim: usize,
    w: &[f32],
    out_dim: usize,
    bias: Option<&[f32]>,
    act: Act,
) -> Vec<f32> {
    require(checks::linear_input(x, rows, in_dim));
    require(checks::linear_weights(w, out_dim, in_dim, bias));
    let mut y = vec![0.0f32; rows * out_dim];
    if out_dim == 0 {
        return y;
    }
    y.par_chunks_mut(out_dim).enumerate().for_each(|(r, yr)| {
        let xr = &x[r * in_dim..(r + 1) * in_dim];
        for (o, yo) in yr.iter_mut().enumerate() {
            let mut s = dot(xr, &w[o * in_dim..(o + 1) * in_dim]);
            if let Some(b) = bias {
                s += b[o];
            }
            *yo = act.apply(s);
        }
    });
    y
}

/// Output length of a 1-D convolution: `floor((t + 2·pad − k)/stride) + 1` (0 if the kernel does not fit).
pub fn conv1d_out_len(t: usize, k: usize, stride: usize, pad: usize) -> usize {
    let padded = t + 2 * pad;
    if padded < k {
        0
    } else {
        (padded - k) / stride + 1
    }
}

/// PyTorch `conv1d` (zero padding on both sides, no dilation) on `x` `[c_in, t]`
/// with `w` `[c_out, c_in/groups, k]`. Returns `([c_out, t_out], t_out)`.
#[allow(clippy::too_many_arguments)]
pub fn conv1d(
    x: &[f32],
    c_in: usize,
    t: usize,
    w: &[f32],
    c_out: usize,
    k: usize,
    stride: usize,
    pad: usize,
    groups: usize,
    bias: Option<&[f32]>,
) -> (Vec<f32>, usize) {
    require(checks::conv1d_weights(w, c_out, c_in, k, groups, bias));
    require(checks::conv1d_input(x, c_in, t, stride));
    let cig = c_in / groups;
    let cog = c_out / groups;
    let t_out = conv1d_out_len(t, k, stride, pad);
    let mut y = vec![0.0f32; c_out * t_out];
    if t_out == 0 {
        return (y, 0);
    }
    y.par_chunks_mut(t_out).enumerate().for_each(|(oc, yo)| {
        let g = oc / cog;
        if let Some(b) = bias {
            yo.fill(b[oc]);
        }
        for ic in 0..cig {
            let xc = &x[(g * cig + ic) * t..(g * cig + ic + 1) * t];
            let wk = &w[(oc * cig + ic) * k..(oc * cig + ic + 1) * k];
            for (kk, &wv) in wk.iter().enumerate() {
                for (to, out) in yo.iter_mut().enumerate() {
                    // Input index before padding; outside [0, t) reads the zero pad.
                    let ti = (to * stride + kk) as isize - pad as isize;
                    if ti >= 0 && (ti as usize) < t {
                        *out += wv * xc[ti as usize];
                    }
                }
            }
        }
    });
    (y, t_out)
}

/// Mean and population variance of a slice, accumulated in f64.
fn mean_var(xs: impl Iterator<Item = f32> + Clone) -> (f64, f64) {
    let (mut n, mut s) = (0usize, 0.0f64);
    for v in xs.clone() {
        s += v as f64;
        n += 1;
    }
    let mean = s / n.max(1) as f64;
    let var = xs.map(|v| (v as f64 - mean).powi(2)).sum::<f64>() / n.max(1) as f64;
    (mean, var)
}

/// The backend contract's shape checks ([`checks`]) as the preconditions of
/// the slice-level ops, reference and fast alike: a violation is a bug in the
/// caller (the backend checked its tensors), so it panics with the check's message.
pub(crate) fn require(check: anyhow::Result<()>) {
    if let Err(e) = check {
        panic!("{e}");
    }
}

/// PyTorch `GroupNorm` on `x` `[channels, t]`: each group of `channels/groups`
/// channels is normalised by its mean and (population) variance over all its
/// channels and time steps, then scaled by `gamma[c]` and shifted by `beta[c]`.
pub fn group_norm(
    x: &[f32],
    channels: usize,
    t: usize,
    groups: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) -> Vec<f32> {
    require(checks::group_norm(x, channels, t, groups, gamma, beta));
    let cpg = channels / groups;
    let mut y = vec![0.0f32; x.len()];
    if x.is_empty() {
        return y;
    }
    y.par_chunks_mut(cpg * t).enumerate().for_each(|(g, yg)| {
        let xg = &x[g * cpg * t..(g + 1) * cpg * t];
        let (mean, var) = mean_var(xg.iter().copied());
        let inv = 1.0 / (var + eps as f64).sqrt();
        for (i, (yv, &xv)) in yg.iter_mut().zip(xg).enumerate() {
            let c = g * cpg + i / t;
            *yv = (((xv as f64 - mean) * inv) as f32) * gamma[c] + beta[c];
        }
    });
    y
}

/// PyTorch `LayerNorm(dim)` over the last axis of `x` `[rows, dim]` (population variance).
pub fn layer_norm(
    x: &[f32],
    rows: usize,
    dim: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) -> Vec<f32> {
    require(checks::layer_norm(x, rows, dim, gamma, beta));
    let mut y = vec![0.0f32; x.len()];
    if dim == 0 {
        return y;
    }
    y.par_chunks_mut(dim)
        .zip(x.par_chunks(dim))
        .for_each(|(yr, xr)| {
            let (mean, var) = mean_var(xr.iter().copied());
            let inv = 1.0 / (var + eps as f64).sqrt();
            for ((yv, &xv), (&g, &b)) in yr.iter_mut().zip(xr).zip(gamma.iter().zip(beta)) {
                *yv = (((xv as f64 - mean) * inv) as f32) * g + b;
            }
        });
    y
}

/// Apply `act` to every element in place.
pub fn activate(x: &mut [f32], act: Act) {
    if act != Act::None {
        x.par_iter_mut().for_each(|v| *v = act.apply(*v));
    }
}

/// Exact (erf) GELU in place.
pub fn gelu(x: &mut [f32]) {
    activate(x, Act::Gelu);
}

/// SiLU (`x·sigmoid(x)`) in place.
pub fn silu(x: &mut [f32]) {
    activate(x, Act::Silu);
}

/// ReLU in place.
pub fn relu(x: &mut [f32]) {
    activate(x, Act::Relu);
}

/// Multi-head attention core on `q`, `k`, `v` `[t, heads·head_dim]` (heads split
/// contiguously: channel `h·head_dim + j`). Per head: `softmax(scale·q kᵀ) v` over
/// all keys (no mask). Returns `[t, heads·head_dim]` with heads merged back.
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    t: usize,
    heads: usize,
    head_dim: usize,
    scale: f32,
) -> Vec<f32> {
    let hd = heads * head_dim;
    require(checks::attention_slices(q, k, v, t, hd));
    let mut out = vec![0.0f32; t * hd];
    if hd == 0 {
        return out;
    }
    out.par_chunks_mut(hd).enumerate().for_each(|(i, orow)| {
        let mut p = vec![0.0f32; t];
        for h in 0..heads {
            let off = h * head_dim;
            let qi = &q[i * hd + off..i * hd + off + head_dim];
            let mut max = f32::NEG_INFINITY;
            for (j, pj) in p.iter_mut().enumerate() {
                *pj = scale * dot(qi, &k[j * hd + off..j * hd + off + head_dim]);
                max = max.max(*pj);
            }
            let mut sum = 0.0f32;
            for pj in p.iter_mut() {
                *pj = (*pj - max).exp();
                sum += *pj;
            }
            let o = &mut orow[off..off + head_dim];
            for (j, &pj) in p.iter().enumerate() {
                let w = pj / sum;
                for (ov, &vv) in o.iter_mut().zip(&v[j * hd + off..j * hd + off + head_dim]) {
                    *ov += w * vv;
                }
            }
        }
    });
    out
}

/// `a += b` element-wise.
pub fn add(a: &mut [f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "add: length mismatch");
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
}

/// `[rows, cols]` → `[cols, rows]`.
pub fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    assert_eq!(x.len(), rows * cols, "transpose: x is not [rows, cols]");
    let mut y = vec![0.0f32; x.len()];
    for r in 0..rows {
        for c in 0..cols {
            y[c * rows + r] = x[r * cols + c];
        }
    }
    y
}

#[cfg(test)]
mod tests;
