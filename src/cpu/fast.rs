//! Fast CPU paths for the matmul-shaped ops (linear, conv1d, attention) on the `gemm`
//! crate. Same contracts as the plain ops in `crate::cpu`, which stay the test oracle;
//! the tests below compare the two.

use super::conv1d_out_len;
use super::simd::wide_fn;
use crate::backend::checks;
use crate::ops::Act;
use gemm::Parallelism;
use rayon::prelude::*;

/// Strided view of a row-major-ish matrix: element `(r, c)` is `data[r·rs + c·cs]`.
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl View<'_> {
    /// Panics unless every element of a `rows × cols` view lies in the slice.
    fn check(&self, rows: usize, cols: usize) {
        if rows > 0 && cols > 0 {
            let last = (rows - 1) * self.rs + (cols - 1) * self.cs;
            assert!(
                last < self.data.len(),
                "matmul: view of {rows}x{cols} overruns its slice"
            );
        }
    }
}

/// `dst[m, n] (row stride dst_rs) = lhs[m, k] · rhs[k, n]`, or `+=` it when
/// `accumulate`.
fn matmul(
    dst: &mut [f32],
    dst_rs: usize,
    (m, n, k): (usize, usize, usize),
    lhs: View,
    rhs: View,
    par: Parallelism,
    accumulate: bool,
) {
    lhs.check(m, k);
    rhs.check(k, n);
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        (m - 1) * dst_rs + n <= dst.len() && n <= dst_rs,
        "matmul: dst overrun"
    );
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * dst_rs..r * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: every index gemm touches is in bounds (checked above) and `dst` is
    // a distinct, initialised borrow (read only when accumulating).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            if accumulate { 1.0 } else { 0.0 }, // dst = alpha·dst + beta·lhs·rhs
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

fn threads() -> Parallelism {
    Parallelism::Rayon(rayon::current_num_threads())
}

/// `e^x` for f32 without a libm call, so loops over it vectorise (Cephes `expf`:
/// range reduction by ln 2 and a degree-6 polynomial, relative error ~1e-7).
#[inline(always)]
fn exp_vec(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // Round x·log2(e) to nearest with the 1.5·2²³ trick (no libm `round`).
    let n = (x * std::f32::consts::LOG2_E + 12_582_912.0) - 12_582_912.0;
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5; // Cephes 5.0000001201e-1 rounds to 0.5 in f32
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// Exact-form GELU, `0.5·v·(1 + erf(v/√2))`, with erf from Abramowitz & Stegun
/// 7.1.26 (`erfc(a) ≈ t·P(t)·e^(−a²)`, `t = 1/(1 + p·a)`, absolute error
/// ≤ 1.5e-7) and [`exp_vec`]: branch-free, so the loops over it vectorise. For
/// negative inputs `1 + erf = erfc(|x|)` is used directly, so the tail keeps its
/// relative accuracy instead of cancelling against 1.
#[inline(always)]
fn gelu_vec(v: f32) -> f32 {
    let x = v * std::f32::consts::FRAC_1_SQRT_2;
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let p = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152 + t * 1.061_405_4))));
    let erfc = p * exp_vec(-a * a);
    let one_plus_erf = if x >= 0.0 { 2.0 - erfc } else { erfc };
    0.5 * v * one_plus_erf
}

/// Sum with 8 independent accumulators (vectorises).
#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// Apply `act` in place, in parallel; GELU on the vectorisable path.
pub fn activate(x: &mut [f32], act: Act) {
    if act != Act::None {
        x.par_chunks_mut(4096).for_each(|c| activate_serial(c, act));
    }
}

/// Apply `act` in place on this thread.
fn activate_serial(x: &mut [f32], act: Act) {
    match act {
        Act::None => {}
        Act::Gelu => gelu_slice(x),
        Act::Silu => silu_slice(x),
        _ => x.iter_mut().for_each(|v| *v = act.apply(*v)),
    }
}

wide_fn! {
    fn gelu_slice(x: &mut [f32]) {
        for v in x.iter_mut() {
            *v = gelu_vec(*v);
        }
    }
}

wide_fn! {
    /// `x·sigmoid(x)` on [`exp_vec`] (MuQ's Conformer FFNs and conv modules).
    fn silu_slice(x: &mut [f32]) {
        for v in x.iter_mut() {
            *v /= 1.0 + exp_vec(-*v);
        }
    }
}

wide_fn! {
    /// `y[i] += b[i]`.
    fn add_into(y: &mut [f32], b: &[f32]) {
        y.iter_mut().zip(b).for_each(|(v, b)| *v += b);
    }
}

wide_fn! {
    /// `y[i] += a · x[i]`.
    fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
        y.iter_mut().zip(x).for_each(|(y, &x)| *y += a * x);
    }
}

wide_fn! {
    /// Each row of `s` (width `t`) becomes `softmax(scale · row)`.
    fn softmax_rows(s: &mut [f32], t: usize, scale: f32) {
        for row in s.chunks_mut(t.max(1)) {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(scale * x));
            row.iter_mut().for_each(|x| *x = exp_vec(scale * *x - max));
            let inv = 1.0 / sum(row);
            row.iter_mut().for_each(|x| *x *= inv);
        }
    }
}

/// Add the bias per column and apply the activation, over rows of width
/// `out_dim`, in one pass.
fn bias_act(y: &mut [f32], out_dim: usize, bias: Option<&[f32]>, act: Act) {
    let Some(b) = bias else {
        return activate(y, act);
    };
    let rows_per_task = (4096 / out_dim.max(1)).max(1);
    y.par_chunks_mut(out_dim * rows_per_task).for_each(|rows| {
        for row in rows.chunks_mut(out_dim) {
            add_into(row, b);
            activate_serial(row, act);
        }
    });
}

/// Same as [`crate::cpu::linear`], on gemm.
pub fn linear(
    x: &[f32],
    rows: usize,
    in_dim: usize,
    w: &[f32],
    out_dim: usize,
    bias: Option<&[f32]>,
    act: Act,
) -> Vec<f32> {
    super::require(checks::linear_input(x, rows, in_dim));
    super::require(checks::linear_weights(w, out_dim, in_dim, bias));
    let mut y = vec![0.0f32; rows * out_dim];
    // rhs = Wᵀ: element (i, o) is w[o·in + i].
    let lhs = View {
        data: x,
        rs: in_dim,
        cs: 1,
    };
    let rhs = View {
        data: w,
        rs: 1,
        cs: in_dim,
    };
    matmul(
        &mut y,
        out_dim,
        (rows, out_dim, in_dim),
        lhs,
        rhs,
        threads(),
        false,
    );
    bias_act(&mut y, out_dim, bias, act);
    y
}

/// Output columns per tile of the GEMM conv paths: the tile's outputs
/// (`c_out/groups × CONV_TILE` floats, 4 MiB at 512 channels) stay in cache
/// while every tap accumulates into them, then get their activation.
const CONV_TILE: usize = 2048;

/// Above this many weights per output (`c_in/groups · k`) a conv is GEMM-shaped;
/// below it (MERT's first layer: 1 channel × 10 taps) the taps run directly.
const CONV_DIRECT_DEPTH: usize = 32;

/// Same as [`crate::cpu::conv1d`] plus a fused activation. Three shapes:
/// depthwise (direct taps per channel), few weights per output (direct taps over
/// a transposed patch tile), and GEMM-shaped: the input is never unfolded
/// (im2col); each output tile is a sum of strided GEMMs over a zero-padded copy
/// of the input, one per tap (`c_in/groups ≥ k`, e.g. 512 channels × 3 taps)
/// or one per input channel over its taps (`k > c_in/groups`, e.g. the
/// positional conv: 48 channels × 128 taps).
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
    act: Act,
) -> (Vec<f32>, usize) {
    super::require(checks::conv1d_weights(w, c_out, c_in, k, groups, bias));
    super::require(checks::conv1d_input(x, c_in, t, stride));
    let (cig, cog) = (c_in / groups, c_out / groups);
    let t_out = conv1d_out_len(t, k, stride, pad);
    let mut y = vec![0.0f32; c_out * t_out];
    if t_out == 0 || c_out == 0 {
        return (y, t_out);
    }
    let shape = ConvShape {
        cig,
        cog,
        k,
        stride,
        t_out,
    };
    if cig == 1 && cog == 1 {
        conv_depthwise(x, t, w, pad, bias, act, &shape, &mut y);
    } else if cig * k <= CONV_DIRECT_DEPTH {
        conv_direct(x, t, w, pad, groups, bias, act, &shape, &mut y);
    } else {
        let xp = padded(x, c_in, t, pad);
        conv_gemm(&xp, t + 2 * pad, w, groups, bias, act, &shape, &mut y);
    }
    (y, t_out)
}

/// Per-group sizes of a conv: channels in and out, taps, stride, output steps.
struct ConvShape {
    cig: usize,
    cog: usize,
    k: usize,
    stride: usize,
    t_out: usize,
}

/// `x` `[channels, t]` with `pad` zeros on both ends of every row.
fn padded(x: &[f32], channels: usize, t: usize, pad: usize) -> std::borrow::Cow<'_, [f32]> {
    if pad == 0 {
        return std::borrow::Cow::Borrowed(x);
    }
    let tp = t + 2 * pad;
    let mut xp = vec![0.0f32; channels * tp];
    for (dst, src) in xp.chunks_mut(tp).zip(x.chunks(t.max(1))) {
        dst[pad..pad + t].copy_from_slice(src);
    }
    std::borrow::Cow::Owned(xp)
}

/// Bias (or zero) into every row of an output tile `[rows, n]` with row stride `rs`.
fn fill_bias(y: &mut [f32], rs: usize, n: usize, bias: Option<&[f32]>) {
    for (r, row) in y.chunks_mut(rs).enumerate() {
        row[..n].fill(bias.map_or(0.0, |b| b[r]));
    }
}

/// Depthwise (MuQ's conv module: 1024 groups of one channel): a GEMM per
/// group would be 1×k×T; direct taps, channels in parallel.
#[allow(clippy::too_many_arguments)]
fn conv_depthwise(
    x: &[f32],
    t: usize,
    w: &[f32],
    pad: usize,
    bias: Option<&[f32]>,
    act: Act,
    s: &ConvShape,
    y: &mut [f32],
) {
    let (k, stride, t_out) = (s.k, s.stride, s.t_out);
    y.par_chunks_mut(t_out).enumerate().for_each(|(c, yc)| {
        let (xc, wc) = (&x[c * t..(c + 1) * t], &w[c * k..(c + 1) * k]);
        for (to, out) in yc.iter_mut().enumerate() {
            let base = (to * stride) as isize - pad as isize;
            let lo = (-base).max(0) as usize;
            let hi = k.min((t as isize - base).max(0) as usize);
            let mut acc = bias.map_or(0.0, |b| b[c]);
            for kk in lo..hi {
                acc += wc[kk] * xc[(base + kk as isize) as usize];
            }
            *out = act.apply(acc);
        }
    });
}

/// Few weights per output (MERT's first layer: one channel, 10 taps, 512 outputs
/// at 48k steps): a GEMM with depth 10 is all packing and no arithmetic. Each
/// tile of output steps unfolds its inputs once, transposed (`depth` rows of
/// contiguous steps, in L1), and every output channel of a block is a vectorised
/// sum of those rows written straight into `y`; blocks of channels in parallel.
#[allow(clippy::too_many_arguments)]
fn conv_direct(
    x: &[f32],
    t: usize,
    w: &[f32],
    pad: usize,
    groups: usize,
    bias: Option<&[f32]>,
    act: Act,
    s: &ConvShape,
    y: &mut [f32],
) {
    const TILE: usize = 512;
    let (cig, cog, k, stride, t_out) = (s.cig, s.cog, s.k, s.stride, s.t_out);
    let depth = cig * k;
    // Blocks of output channels within one group (one input slice per block), about
    // four per thread, so the unfolded tile is reused across many channels.
    let want = (groups * cog)
        .div_ceil(4 * rayon::current_num_threads())
        .max(1);
    let block = (1..=cog.min(want))
        .rev()
        .find(|b| cog.is_multiple_of(*b))
        .unwrap_or(1);
    y.par_chunks_mut(block * t_out)
        .enumerate()
        .for_each(|(bi, yb)| {
            let c0 = bi * block;
            let g = c0 / cog;
            let mut cols = vec![0.0f32; depth * TILE];
            for t0 in (0..t_out).step_by(TILE) {
                let nt = TILE.min(t_out - t0);
                // cols[d, j] = x[g·cig + d / k, (t0 + j)·stride + d % k − pad] (0 outside).
                for (d, row) in cols.chunks_mut(TILE).enumerate() {
                    let xc = &x[(g * cig + d / k) * t..(g * cig + d / k + 1) * t];
                    for (j, v) in row[..nt].iter_mut().enumerate() {
                        let ti = ((t0 + j) * stride + d % k) as isize - pad as isize;
                        *v = if ti >= 0 && (ti as usize) < t {
                            xc[ti as usize]
                        } else {
                            0.0
                        };
                    }
                }
                for (oc, yrow) in yb.chunks_mut(t_out).enumerate() {
                    let c = c0 + oc;
                    let (wc, yo) = (&w[c * depth..(c + 1) * depth], &mut yrow[t0..t0 + nt]);
                    yo.fill(bias.map_or(0.0, |b| b[c]));
                    for (&wv, row) in wc.iter().zip(cols.chunks(TILE)) {
                        axpy(yo, wv, &row[..nt]);
                    }
                    activate_serial(yo, act);
                }
            }
        });
}

/// GEMM-shaped convs on a zero-padded input `xp` `[c_in, tp]`, without im2col.
/// Output `y_g[oc, to] = Σ_ic Σ_kk W[oc, ic, kk] · xp[ic, to·stride + kk]` is
/// computed as strided GEMMs accumulating into a cache-sized output tile:
/// - taps outer (`cig ≥ k`): for each tap, `W[:, :, kk]` `[cog, cig]` times the
///   strided view `xp[:, kk + stride·to]` `[cig, nt]`;
/// - channels outer (`k > cig`): for each input channel, `W[:, ic, :]` `[cog, k]`
///   times the Hankel view `xp[ic, kk + stride·to]` `[k, nt]` (rows overlap, read only).
///
/// Groups run in parallel (single-threaded GEMMs); one group gets all threads.
#[allow(clippy::too_many_arguments)]
fn conv_gemm(
    xp: &[f32],
    tp: usize,
    w: &[f32],
    groups: usize,
    bias: Option<&[f32]>,
    act: Act,
    s: &ConvShape,
    y: &mut [f32],
) {
    let (cig, cog, k, stride, t_out) = (s.cig, s.cog, s.k, s.stride, s.t_out);
    let depth = cig * k;
    let taps_outer = cig >= k;
    let group = |g: usize, yg: &mut [f32], par: Parallelism| {
        let wg = &w[g * cog * depth..(g + 1) * cog * depth];
        let xg = &xp[g * cig * tp..(g + 1) * cig * tp];

        let bg = bias.map(|b| &b[g * cog..(g + 1) * cog]);
        for t0 in (0..t_out).step_by(CONV_TILE) {
            let nt = CONV_TILE.min(t_out - t0);
            let tile = &mut yg[t0..];
            fill_bias(tile, t_out, nt, bg);
            // (contraction, steps, lhs view, rhs view) per accumulated GEMM.
            let terms: Vec<(usize, View, View)> = if taps_outer {
                (0..k)
                    .map(|kk| {
                        let lhs = View {
                            data: &wg[kk..],
                            rs: depth,
                            cs: k,
                        };
                        let rhs = View {
                            data: &xg[t0 * stride + kk..],
                            rs: tp,
                            cs: stride,
                        };
                        (cig, lhs, rhs)
                    })
                    .collect()
            } else {
                (0..cig)
                    .map(|ic| {
                        let lhs = View {
                            data: &wg[ic * k..],
                            rs: depth,
                            cs: 1,
                        };
                        let rhs = View {
                            data: &xg[ic * tp + t0 * stride..],
                            rs: 1,
                            cs: stride,
                        };
                        (k, lhs, rhs)
                    })
                    .collect()
            };
            for (kdim, lhs, rhs) in terms {
                matmul(tile, t_out, (cog, nt, kdim), lhs, rhs, par, true);
            }
            tile[..(cog - 1) * t_out + nt]
                .par_chunks_mut(t_out)
                .for_each(|row| activate_serial(&mut row[..nt], act));
        }
    };
    if groups == 1 {
        group(0, y, threads());
    } else {
        y.par_chunks_mut(cog * t_out)
            .enumerate()
            .for_each(|(g, yg)| group(g, yg, Parallelism::None));
    }
}

wide_fn! {
    /// Mean and population variance, two passes, each 8 f32 lanes summed in
    /// blocks of 512 and the block sums in f64 (as exact as the reference's f64
    /// sums to ~1e-7 relative, and vectorised).
    fn mean_var(x: &[f32]) -> (f64, f64) {
        let n = x.len().max(1) as f64;
        let mut s = 0.0f64;
        for block in x.chunks(512) {
            s += sum(block) as f64;
        }
        let mean = s / n;
        let m = mean as f32;
        let mut ss = 0.0f64;
        for block in x.chunks(512) {
            let mut acc = [0.0f32; 8];
            let chunks = block.chunks_exact(8);
            let rest: f32 = chunks.remainder().iter().map(|v| (v - m) * (v - m)).sum();
            for c in chunks {
                for i in 0..8 {
                    acc[i] += (c[i] - m) * (c[i] - m);
                }
            }
            ss += (acc.iter().sum::<f32>() + rest) as f64;
        }
        // The f32 mean's rounding adds (mean − m)² to the mean square; take it out.
        let d = mean - m as f64;
        (mean, (ss / n - d * d).max(0.0))
    }
}

wide_fn! {
    /// `y = (x − mean) · scale + shift`.
    fn normalize(y: &mut [f32], x: &[f32], mean: f32, scale: f32, shift: f32) {
        y.iter_mut().zip(x).for_each(|(y, &x)| *y = (x - mean) * scale + shift);
    }
}

wide_fn! {
    /// `y = (x − mean) · inv · gamma + beta`, per element of a row.
    fn normalize_row(y: &mut [f32], x: &[f32], mean: f32, inv: f32, gamma: &[f32], beta: &[f32]) {
        for (((y, &x), &g), &b) in y.iter_mut().zip(x).zip(gamma).zip(beta) {
            *y = (x - mean) * inv * g + b;
        }
    }
}

/// Same as [`crate::cpu::group_norm`] plus a fused activation: statistics and
/// normalisation vectorised, one group per task.
#[allow(clippy::too_many_arguments)]
pub fn group_norm(
    x: &[f32],
    channels: usize,
    t: usize,
    groups: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    act: Act,
) -> Vec<f32> {
    super::require(checks::group_norm(x, channels, t, groups, gamma, beta));
    let cpg = channels / groups;
    let mut y = vec![0.0f32; x.len()];
    if x.is_empty() {
        return y;
    }
    y.par_chunks_mut(cpg * t).enumerate().for_each(|(g, yg)| {
        let xg = &x[g * cpg * t..(g + 1) * cpg * t];
        let (mean, var) = mean_var(xg);
        let inv = (1.0 / (var + eps as f64).sqrt()) as f32;
        for (i, (yc, xc)) in yg.chunks_mut(t).zip(xg.chunks(t)).enumerate() {
            let c = g * cpg + i;
            normalize(yc, xc, mean as f32, inv * gamma[c], beta[c]);
            activate_serial(yc, act);
        }
    });
    y
}

/// Same as [`crate::cpu::layer_norm`], vectorised, rows in parallel.
pub fn layer_norm(
    x: &[f32],
    rows: usize,
    dim: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) -> Vec<f32> {
    super::require(checks::layer_norm(x, rows, dim, gamma, beta));
    let mut y = vec![0.0f32; x.len()];
    if dim == 0 {
        return y;
    }
    let rows_per_task = (8192 / dim).max(1);
    y.par_chunks_mut(dim * rows_per_task)
        .zip(x.par_chunks(dim * rows_per_task))
        .for_each(|(ys, xs)| {
            for (yr, xr) in ys.chunks_mut(dim).zip(xs.chunks(dim)) {
                let (mean, var) = mean_var(xr);
                let inv = (1.0 / (var + eps as f64).sqrt()) as f32;
                normalize_row(yr, xr, mean as f32, inv, gamma, beta);
            }
        });
    y
}

/// Same as [`crate::cpu::attention`]: per head `S = scale·Q Kᵀ` and `O = softmax(S) V` on
/// gemm, heads in parallel.
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
    super::require(checks::attention_slices(q, k, v, t, hd));
    let per_head: Vec<Vec<f32>> = (0..heads)
        .into_par_iter()
        .map(|h| {
            let off = h * head_dim;
            let mut s = vec![0.0f32; t * t];
            let qh = View {
                data: &q[off..],
                rs: hd,
                cs: 1,
            };
            // Kᵀ: element (j, key) is k[key·hd + off + j].
            let kt = View {
                data: &k[off..],
                rs: 1,
                cs: hd,
            };
            matmul(
                &mut s,
                t,
                (t, t, head_dim),
                qh,
                kt,
                Parallelism::None,
                false,
            );
            softmax_rows(&mut s, t, scale);
            let mut o = vec![0.0f32; t * head_dim];
            let p = View {
                data: &s,
                rs: t,
                cs: 1,
            };
            let vh = View {
                data: &v[off..],
                rs: hd,
                cs: 1,
            };
            matmul(
                &mut o,
                head_dim,
                (t, head_dim, t),
                p,
                vh,
                Parallelism::None,
                false,
            );
            o
        })
        .collect();
    let mut out = vec![0.0f32; t * hd];
    for (h, o) in per_head.iter().enumerate() {
        for i in 0..t {
            out[i * hd + h * head_dim..i * hd + (h + 1) * head_dim]
                .copy_from_slice(&o[i * head_dim..(i + 1) * head_dim]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::pseudo;

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn vectorised_gelu_matches_reference() {
        let mut x: Vec<f32> = (0..20_001).map(|i| (i as f32 - 10_000.0) * 1e-3).collect();
        x.extend([
            -100.0,
            -30.0,
            1e-7,
            -1e-7,
            30.0,
            100.0,
            0.5 * std::f32::consts::SQRT_2,
        ]);
        let mut want = x.clone();
        super::super::gelu(&mut want);
        let mut got = x.clone();
        activate(&mut got, Act::Gelu);
        for ((g, w), v) in got.iter().zip(&want).zip(&x) {
            assert!(
                (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                "gelu({v}): {g} vs {w}"
            );
        }
        let mut got = x.clone();
        activate(&mut got, Act::Silu);
        for (g, v) in got.iter().zip(&x) {
            let w = Act::Silu.apply(*v);
            assert!(
                (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                "silu({v}): {g} vs {w}"
            );
        }
        assert_eq!(exp_vec(0.0), 1.0);
        assert!((exp_vec(1.0) - std::f32::consts::E).abs() < 1e-6);
        assert!((exp_vec(-20.0) / (-20.0f32).exp() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn linear_matches_reference() {
        for &(rows, inp, out) in &[(1, 1, 1), (5, 19, 7), (37, 64, 130), (3, 0, 4)] {
            let x = pseudo(rows * inp, 1);
            let w = pseudo(out * inp, 2);
            let b = pseudo(out, 3);
            for act in [Act::None, Act::Gelu] {
                let want = super::super::linear(&x, rows, inp, &w, out, Some(&b), act);
                let got = linear(&x, rows, inp, &w, out, Some(&b), act);
                assert!(max_diff(&got, &want) < 1e-5, "{rows}x{inp}x{out} {act:?}");
            }
        }
    }

    #[test]
    fn conv1d_matches_reference() {
        // (c_in, t, c_out, k, stride, pad, groups): every path (depthwise, direct,
        // GEMM taps-outer, GEMM channels-outer), grouped and padded, over > one tile.
        let cases = [
            (1, 50, 4, 10, 5, 0, 1),   // direct: MERT's first layer in miniature
            (6, 33, 6, 3, 2, 0, 1),    // direct
            (8, 20, 8, 6, 1, 3, 4),    // direct, grouped, padded
            (2, 4500, 3, 2, 1, 1, 1),  // direct, several tiles
            (40, 33, 6, 3, 2, 0, 1),   // taps outer: MERT's conv stack in miniature
            (20, 4500, 3, 3, 1, 1, 1), // taps outer, several tiles, padded
            (64, 301, 32, 3, 2, 1, 2), // taps outer, grouped
            (16, 30, 8, 40, 1, 20, 2), // channels outer: the positional conv in miniature
            (6, 2100, 6, 36, 3, 7, 2), // channels outer, strided, several tiles
            (5, 40, 5, 31, 1, 15, 5),  // depthwise: MuQ's conv module in miniature
        ];
        for (c_in, t, c_out, k, stride, pad, groups) in cases {
            let x = pseudo(c_in * t, 4);
            let w = pseudo(c_out * c_in / groups * k, 5);
            let b = pseudo(c_out, 6);
            let (mut want, n1) =
                super::super::conv1d(&x, c_in, t, &w, c_out, k, stride, pad, groups, Some(&b));
            super::super::gelu(&mut want);
            let (got, n2) = conv1d(
                &x,
                c_in,
                t,
                &w,
                c_out,
                k,
                stride,
                pad,
                groups,
                Some(&b),
                Act::Gelu,
            );
            assert_eq!(n1, n2);
            // Relative to the output's scale: the deep cases sum 100+ products.
            let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            assert!(
                max_diff(&got, &want) < 1e-6 * scale,
                "case {:?}: {} of {scale}",
                (c_in, t, c_out, k, stride, pad, groups),
                max_diff(&got, &want)
            );
        }
    }

    #[test]
    fn norms_match_reference() {
        // Offsets far from zero test the variance's cancellation.
        for &(channels, t, groups, offset) in &[
            (1, 1, 1, 0.0),
            (6, 1000, 6, 0.0),
            (8, 77, 2, 30.0),
            (512, 300, 512, -5.0),
        ] {
            let x: Vec<f32> = pseudo(channels * t, 11)
                .iter()
                .map(|v| v + offset)
                .collect();
            let (g, b) = (pseudo(channels, 12), pseudo(channels, 13));
            let mut want = super::super::group_norm(&x, channels, t, groups, &g, &b, 1e-5);
            super::super::gelu(&mut want);
            let got = group_norm(&x, channels, t, groups, &g, &b, 1e-5, Act::Gelu);
            assert!(
                max_diff(&got, &want) < 2e-5,
                "group_norm {channels}x{t}/{groups}"
            );
        }
        for &(rows, dim, offset) in &[(1, 1, 0.0), (3, 768, 0.0), (40, 1030, 30.0)] {
            let x: Vec<f32> = pseudo(rows * dim, 14).iter().map(|v| v + offset).collect();
            let (g, b) = (pseudo(dim, 15), pseudo(dim, 16));
            let want = super::super::layer_norm(&x, rows, dim, &g, &b, 1e-5);
            let got = layer_norm(&x, rows, dim, &g, &b, 1e-5);
            assert!(max_diff(&got, &want) < 2e-5, "layer_norm {rows}x{dim}");
        }
    }

    #[test]
    fn attention_matches_reference() {
        for &(t, heads, d) in &[(1, 1, 1), (9, 2, 4), (40, 3, 16)] {
            let (q, k, v) = (
                pseudo(t * heads * d, 7),
                pseudo(t * heads * d, 8),
                pseudo(t * heads * d, 9),
            );
            let want = super::super::attention(&q, &k, &v, t, heads, d, 0.7);
            let got = attention(&q, &k, &v, t, heads, d, 0.7);
            assert!(max_diff(&got, &want) < 1e-5, "{t} {heads} {d}");
        }
    }
}
