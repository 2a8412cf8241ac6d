//! Dense f32 matrix products for the heads.
//!
//! One register-tiled kernel (6 rows × 16 columns of C held in registers,
//! walking the shared dimension) serves both products training needs:
//! `X·W` (forward) and `Xᵀ·G` (weight gradients), by reading A through
//! strides while packing it into row tiles. Columns are the outer loop so
//! that a packed 16-column slab of B stays in L2 while every row tile passes
//! over it.
//!
//! Every element of C is summed over the shared dimension in index order,
//! in every code path (tile or remainder), with fused multiply-add where the
//! CPU has it (checked once at run time, see [`uses_fma`]) and plain
//! mul+add otherwise: results are bit-identical from run to run.

const MR: usize = 6;
const NR: usize = 16;

/// Shapes and strides of `C[rows, n] (+)= Σ_p A(r, p) · B[p, n]` with
/// `A(r, p) = a[r·a_row + p·a_step]` and B row-major `[steps, n]`.
#[derive(Clone, Copy, Debug)]
struct Spec {
    rows: usize,
    steps: usize,
    n: usize,
    a_row: usize,
    a_step: usize,
    accumulate: bool,
}

#[inline(always)]
fn store(c: &mut f32, v: f32, accumulate: bool) {
    if accumulate { *c += v } else { *c = v }
}

/// `acc + a·b`, fused (one rounding) on the FMA path.
#[inline(always)]
fn madd<const FMA: bool>(acc: f32, a: f32, b: f32) -> f32 {
    if FMA { a.mul_add(b, acc) } else { acc + a * b }
}

#[inline(always)]
fn gemm_body<const FMA: bool>(c: &mut [f32], a: &[f32], b: &[f32], s: Spec) {
    let Spec {
        rows,
        steps,
        n,
        a_row,
        a_step,
        accumulate,
    } = s;
    let full_cols = n - n % NR;
    if full_cols > 0 {
        // Pack A into row tiles, `[tile][step][MR]`, zero-padding the last
        // tile: the kernel then reads A contiguously and never branches on
        // a short tile (padded rows are computed and dropped).
        let tiles = rows.div_ceil(MR);
        let mut apack = vec![0f32; tiles * steps * MR];
        for row in 0..rows {
            let (t, r) = (row / MR, row % MR);
            for p in 0..steps {
                apack[(t * steps + p) * MR + r] = a[row * a_row + p * a_step];
            }
        }
        // B's slab is packed contiguously too: read in place, rows of a wide
        // B sit a power-of-two stride apart and collide in a few cache sets.
        let mut bpack = vec![0f32; steps * NR];
        for j0 in (0..full_cols).step_by(NR) {
            for (dst, src) in bpack.chunks_exact_mut(NR).zip(b.chunks_exact(n)) {
                dst.copy_from_slice(&src[j0..j0 + NR]);
            }
            for (t, tile) in apack.chunks_exact(steps * MR).enumerate() {
                let mut acc = [[0f32; NR]; MR];
                for (bv, av) in bpack.chunks_exact(NR).zip(tile.chunks_exact(MR)) {
                    let brow: &[f32; NR] = bv.try_into().unwrap();
                    let av: &[f32; MR] = av.try_into().unwrap();
                    for (accr, &ar) in acc.iter_mut().zip(av) {
                        for (x, &bj) in accr.iter_mut().zip(brow) {
                            *x = madd::<FMA>(*x, ar, bj);
                        }
                    }
                }
                for (r, accr) in acc.iter().enumerate().take(rows - t * MR) {
                    let row = t * MR + r;
                    let crow = &mut c[row * n + j0..row * n + j0 + NR];
                    for (cj, &v) in crow.iter_mut().zip(accr) {
                        store(cj, v, accumulate);
                    }
                }
            }
        }
    }
    // Leftover columns (n % NR): same per-element summation order.
    for r in 0..rows {
        for j in full_cols..n {
            let mut acc = 0f32;
            for p in 0..steps {
                acc = madd::<FMA>(acc, a[r * a_row + p * a_step], b[p * n + j]);
            }
            store(&mut c[r * n + j], acc, accumulate);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,avx2,fma")]
fn gemm_avx2_fma(c: &mut [f32], a: &[f32], b: &[f32], s: Spec) {
    gemm_body::<true>(c, a, b, s)
}

/// Whether products use fused multiply-add (x86-64 with AVX2 and FMA).
/// Results are bit-identical across runs on one machine, and across
/// machines that agree on this flag.
pub fn uses_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn gemm(c: &mut [f32], a: &[f32], b: &[f32], s: Spec) {
    assert!(c.len() >= s.rows * s.n, "gemm: C too small");
    assert!(b.len() >= s.steps * s.n, "gemm: B too small");
    if s.rows == 0 || s.n == 0 {
        return;
    }
    assert!(
        a.len() > (s.rows - 1) * s.a_row + s.steps.saturating_sub(1) * s.a_step,
        "gemm: A too small"
    );
    #[cfg(target_arch = "x86_64")]
    if uses_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked by `uses_fma`); the
        // function has no other preconditions.
        unsafe { gemm_avx2_fma(c, a, b, s) };
        return;
    }
    gemm_body::<false>(c, a, b, s)
}

/// `C[m, n] = A[m, k] · B[k, n]` (row-major), or `+=` with `accumulate`.
pub fn matmul(c: &mut [f32], a: &[f32], b: &[f32], m: usize, k: usize, n: usize, accumulate: bool) {
    assert_eq!(a.len(), m * k, "matmul: A is not {m}x{k}");
    let spec = Spec {
        rows: m,
        steps: k,
        n,
        a_row: k,
        a_step: 1,
        accumulate,
    };
    gemm(c, a, b, spec)
}

/// `C[k, n] = A[m, k]ᵀ · B[m, n]` (row-major), or `+=` with `accumulate`.
pub fn matmul_at_b(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
) {
    assert_eq!(a.len(), m * k, "matmul_at_b: A is not {m}x{k}");
    let spec = Spec {
        rows: k,
        steps: m,
        n,
        a_row: 1,
        a_step: k,
        accumulate,
    };
    gemm(c, a, b, spec)
}

/// `C[m, n] = A[m, k] · Bᵀ` for B row-major `[n, k]` (a layer's
/// backward pass: dz · Wᵀ), or `+=` with `accumulate`. Computed as
/// `Cᵀ = B · Aᵀ`, so only the small `[m, k]` and `[n, m]` operands are
/// transposed, never the weight; each element is the same sum in the same
/// order as `matmul` on an explicit Bᵀ, so the result is bit-identical.
pub fn matmul_a_bt(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
) {
    assert_eq!(a.len(), m * k, "matmul_a_bt: A is not {m}x{k}");
    assert_eq!(b.len(), n * k, "matmul_a_bt: B is not {n}x{k}");
    assert!(c.len() >= m * n, "matmul_a_bt: C too small");
    let mut at = Vec::new();
    transpose(a, m, k, &mut at);
    let mut ct = vec![0f32; n * m];
    matmul(&mut ct, b, &at, n, k, m, false);
    for (i, crow) in c[..m * n].chunks_exact_mut(n).enumerate() {
        for (j, cij) in crow.iter_mut().enumerate() {
            store(cij, ct[j * m + i], accumulate);
        }
    }
}

/// Row-major transpose of `[rows, cols]` into `[cols, rows]`, in square
/// tiles: a row-by-row walk writes `dst` a whole row apart at every step,
/// and for a 512×512 weight that strided store took an eighth of an MLP's
/// training time.
pub fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut Vec<f32>) {
    const TILE: usize = 16;
    dst.clear();
    dst.resize(rows * cols, 0.0);
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0f32;
                for p in 0..k {
                    acc = if uses_fma() {
                        a[i * k + p].mul_add(b[p * n + j], acc)
                    } else {
                        acc + a[i * k + p] * b[p * n + j]
                    };
                }
                c[i * n + j] = acc;
            }
        }
        c
    }

    fn random(len: usize, rng: &mut Rng) -> Vec<f32> {
        (0..len).map(|_| rng.uniform_f32() - 0.5).collect()
    }

    #[test]
    fn matmul_equals_naive_bitwise_on_ragged_shapes() {
        let mut rng = Rng::new(9, 0);
        // Shapes with and without full 4x16 tiles.
        for &(m, k, n) in &[
            (7, 5, 35),
            (8, 33, 32),
            (1, 3, 1),
            (13, 17, 19),
            (4, 64, 16),
        ] {
            let a = random(m * k, &mut rng);
            let b = random(k * n, &mut rng);
            let mut c = vec![f32::NAN; m * n];
            matmul(&mut c, &a, &b, m, k, n, false);
            let want = naive(&a, &b, m, k, n);
            assert!(
                c.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{m}x{k}x{n}"
            );
            // Accumulate adds the product once more.
            matmul(&mut c, &a, &b, m, k, n, true);
            for (x, y) in c.iter().zip(&want) {
                assert_eq!(x.to_bits(), (y + y).to_bits());
            }
        }
    }

    #[test]
    fn matmul_at_b_equals_transpose_then_matmul() {
        let mut rng = Rng::new(9, 1);
        for &(m, k, n) in &[(6, 9, 21), (64, 8, 32), (3, 5, 2)] {
            let a = random(m * k, &mut rng);
            let b = random(m * n, &mut rng);
            let mut at = Vec::new();
            transpose(&a, m, k, &mut at);
            let want = naive(&at, &b, k, m, n);
            let mut c = vec![0f32; k * n];
            matmul_at_b(&mut c, &a, &b, m, k, n, false);
            assert!(
                c.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{m}x{k}x{n}"
            );
        }
    }

    #[test]
    fn matmul_a_bt_is_bit_identical_to_matmul_on_the_transpose() {
        let mut rng = Rng::new(9, 2);
        for &(m, k, n) in &[(64, 512, 512), (5, 19, 37), (1, 3, 16)] {
            let a = random(m * k, &mut rng);
            let b = random(n * k, &mut rng);
            let mut bt = Vec::new();
            transpose(&b, n, k, &mut bt);
            let mut want = random(m * n, &mut rng);
            let mut c = want.clone();
            matmul(&mut want, &a, &bt, m, k, n, false);
            matmul_a_bt(&mut c, &a, &b, m, k, n, false);
            assert!(
                c.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{m}x{k}x{n}"
            );
            matmul(&mut want, &a, &bt, m, k, n, true);
            matmul_a_bt(&mut c, &a, &b, m, k, n, true);
            assert!(
                c.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{m}x{k}x{n} +="
            );
        }
    }

    #[test]
    fn transpose_small() {
        let mut t = Vec::new();
        transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3, &mut t);
        assert_eq!(t, vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        // Shapes that cut tiles short on both sides.
        for &(rows, cols) in &[(37, 21), (16, 33), (1, 40)] {
            let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            transpose(&src, rows, cols, &mut t);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(
                        t[c * rows + r],
                        (r * cols + c) as f32,
                        "{rows}x{cols} at ({r}, {c})"
                    );
                }
            }
        }
    }
}
