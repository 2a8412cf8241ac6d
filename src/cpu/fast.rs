//! Fast CPU paths for the matmul-shaped ops (linear, conv1d, attention) on the `gemm`
//! crate. Same contracts as the plain ops in `crate::cpu`, which stay the test oracle;
//! the tests below compare the two.

use super::conv1d_out_len;
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

/// `dst[m, n] (row stride dst_rs) = lhs[m, k] · rhs[k, n]`, overwriting `dst`.
fn matmul(
    dst: &mut [f32],
    dst_rs: usize,
    (m, n, k): (usize, usize, usize),
    lhs: View,
    rhs: View,
    par: Parallelism,
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
        for r in 0..m {
            dst[r * dst_rs..r * dst_rs + n].fill(0.0);
        }
        return;
    }
    // SAFETY: every index gemm touches is in bounds (checked above), the three
    // slices are distinct borrows, and read_dst=false so dst needs no initial value.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            false,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            0.0,
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

/// Exact-form GELU with the same erf formula as [`crate::ops::erf`] (both branches
/// evaluated, then selected, so the loop vectorises) and [`exp_vec`].
#[inline(always)]
fn gelu_vec(v: f32) -> f32 {
    let x = v * std::f32::consts::FRAC_1_SQRT_2;
    let a = x.abs();
    let z = x * x;
    let small = std::f32::consts::FRAC_2_SQRT_PI
        * x
        * (1.0
            + z * (-1.0 / 3.0
                + z * (1.0 / 10.0
                    + z * (-1.0 / 42.0
                        + z * (1.0 / 216.0 + z * (-1.0 / 1320.0 + z * (1.0 / 9360.0)))))));
    let t = 1.0 / (1.0 + 0.5 * a);
    let poly = -1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204
                                + t * (1.488_515_9 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let big = 1.0 - t * exp_vec(-z + poly);
    let erf = if a < 0.5 { small } else { big.copysign(x) };
    0.5 * v * (1.0 + erf)
}

/// Sum with 8 independent accumulators (vectorises).
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
    match act {
        Act::None => {}
        Act::Gelu => x
            .par_chunks_mut(4096)
            .for_each(|c| c.iter_mut().for_each(|v| *v = gelu_vec(*v))),
        _ => x
            .par_chunks_mut(4096)
            .for_each(|c| c.iter_mut().for_each(|v| *v = act.apply(*v))),
    }
}

/// Add the bias per column and apply the activation, over rows of width `out_dim`.
fn bias_act(y: &mut [f32], out_dim: usize, bias: Option<&[f32]>, act: Act) {
    if let Some(b) = bias {
        y.par_chunks_mut(out_dim)
            .for_each(|row| row.iter_mut().zip(b).for_each(|(v, b)| *v += b));
    }
    activate(y, act);
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
    assert_eq!(x.len(), rows * in_dim, "linear: x is not [rows, in_dim]");
    assert_eq!(
        w.len(),
        out_dim * in_dim,
        "linear: w is not [out_dim, in_dim]"
    );
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
    );
    if let Some(b) = bias {
        assert_eq!(b.len(), out_dim, "linear: bias is not [out_dim]");
    }
    bias_act(&mut y, out_dim, bias, act);
    y
}

/// Output columns per im2col block: bounds the patch buffer to ~`BLOCK · c_in · k` floats.
const CONV_BLOCK: usize = 2048;

/// Same as [`crate::cpu::conv1d`] plus a fused activation, as im2col + gemm per group.
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
    assert!(
        groups > 0 && c_in.is_multiple_of(groups) && c_out.is_multiple_of(groups),
        "conv1d: bad groups"
    );
    assert!(stride > 0, "conv1d: stride must be positive");
    let (cig, cog) = (c_in / groups, c_out / groups);
    assert_eq!(x.len(), c_in * t, "conv1d: x is not [c_in, t]");
    assert_eq!(
        w.len(),
        c_out * cig * k,
        "conv1d: w is not [c_out, c_in/groups, k]"
    );
    let t_out = conv1d_out_len(t, k, stride, pad);
    let mut y = vec![0.0f32; c_out * t_out];
    if t_out == 0 {
        return (y, 0);
    }
    if cig == 1 && cog == 1 {
        // Depthwise (MuQ's conv module: 1024 groups of one channel): a GEMM per
        // group would be 1×k×T; direct taps, channels in parallel.
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
        return (y, t_out);
    }
    let depth = cig * k;
    let mut patches = vec![0.0f32; CONV_BLOCK.min(t_out) * depth];
    let mut block_out = vec![0.0f32; cog * CONV_BLOCK.min(t_out)];
    for g in 0..groups {
        for t0 in (0..t_out).step_by(CONV_BLOCK) {
            let nt = CONV_BLOCK.min(t_out - t0);
            // patches[to, ic·k + kk] = x[g·cig + ic, (t0+to)·stride + kk − pad] (0 outside).
            patches[..nt * depth]
                .par_chunks_mut(depth)
                .enumerate()
                .for_each(|(to, row)| {
                    let base = ((t0 + to) * stride) as isize - pad as isize;
                    for ic in 0..cig {
                        let xc = &x[(g * cig + ic) * t..(g * cig + ic + 1) * t];
                        for kk in 0..k {
                            let ti = base + kk as isize;
                            row[ic * k + kk] = if ti >= 0 && (ti as usize) < t {
                                xc[ti as usize]
                            } else {
                                0.0
                            };
                        }
                    }
                });
            // out_g[cog, nt] = W_g[cog, depth] · patchesᵀ[depth, nt].
            let lhs = View {
                data: &w[g * cog * depth..(g + 1) * cog * depth],
                rs: depth,
                cs: 1,
            };
            let rhs = View {
                data: &patches[..nt * depth],
                rs: 1,
                cs: depth,
            };
            matmul(
                &mut block_out[..cog * nt],
                nt,
                (cog, nt, depth),
                lhs,
                rhs,
                threads(),
            );
            for oc in 0..cog {
                let dst = &mut y[(g * cog + oc) * t_out + t0..(g * cog + oc) * t_out + t0 + nt];
                dst.copy_from_slice(&block_out[oc * nt..(oc + 1) * nt]);
            }
        }
    }
    if let Some(b) = bias {
        y.par_chunks_mut(t_out)
            .zip(b)
            .for_each(|(row, b)| row.iter_mut().for_each(|v| *v += b));
    }
    activate(&mut y, act);
    (y, t_out)
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
    assert_eq!(q.len(), t * hd, "attention: q is not [t, heads*head_dim]");
    assert_eq!(k.len(), t * hd, "attention: k is not [t, heads*head_dim]");
    assert_eq!(v.len(), t * hd, "attention: v is not [t, heads*head_dim]");
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
            matmul(&mut s, t, (t, t, head_dim), qh, kt, Parallelism::None);
            for row in s.chunks_mut(t.max(1)) {
                let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(scale * x));
                row.iter_mut().for_each(|x| *x = exp_vec(scale * *x - max));
                let inv = 1.0 / sum(row);
                row.iter_mut().for_each(|x| *x *= inv);
            }
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
            matmul(&mut o, head_dim, (t, head_dim, t), p, vh, Parallelism::None);
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

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32
                    / 8_388_608.0
                    - 1.0
            })
            .collect()
    }

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
        // (c_in, t, c_out, k, stride, pad, groups), incl. the MERT shapes in miniature and > one block.
        let cases = [
            (1, 50, 4, 10, 5, 0, 1),
            (6, 33, 6, 3, 2, 0, 1),
            (8, 20, 8, 6, 1, 3, 4),
            (2, 4500, 3, 2, 1, 1, 1),
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
            assert!(
                max_diff(&got, &want) < 1e-5,
                "case {:?}",
                (c_in, t, c_out, k, stride, pad, groups)
            );
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
