//! The op set shared by every encoder backend.
//!
//! `cpu` holds the plain reference implementation of each op (the test oracle);
//! the GPU backend implements the same ops in WGSL and is tested against it.
//! The [`Backend`](crate::backend::Backend) trait is the device-resident
//! version of this op set that the encoder forward passes are written against.
//!
//! Imports no other module of the crate.

/// Element-wise activation fused after a linear layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    None,
    /// Exact GELU: `0.5·x·(1 + erf(x/√2))` with [`erf`] below (PyTorch's default, not tanh).
    Gelu,
    Relu,
    /// `x·sigmoid(x)` (PyTorch `SiLU`, HF `swish`).
    Silu,
}

impl Act {
    /// Apply the activation to one value.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Act::None => x,
            Act::Gelu => gelu_scalar(x),
            Act::Relu => x.max(0.0),
            Act::Silu => x / (1.0 + (-x).exp()),
        }
    }
}

/// Exact (erf) GELU of one value.
#[inline]
pub fn gelu_scalar(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// Error function in f32, absolute error below 2e-7 everywhere (f32 has no std `erf`).
///
/// The GPU port must use exactly this formula so that both backends agree (the
/// CPU backend's vectorised GELU uses a cheaper erf within 1.5e-7 of it, see
/// `cpu::fast::gelu_vec`):
/// - `|x| < 0.5`: Maclaurin series `2/√π · (x − x³/3 + x⁵/10 − x⁷/42 + x⁹/216 − x¹¹/1320 + x¹³/9360)`,
///   evaluated in Horner form on `x²` (truncation error < 1e-9 at 0.5, and no
///   cancellation near 0, so small arguments keep full relative precision).
/// - `|x| ≥ 0.5`: Numerical Recipes `erfcc` (Chebyshev fit, relative error of erfc < 1.2e-7):
///   `t = 1/(1 + |x|/2)`,
///   `erfc = t·exp(−x² − 1.26551223 + t·(1.00002368 + t·(0.37409196 + t·(0.09678418 +
///   t·(−0.18628806 + t·(0.27886807 + t·(−1.13520398 + t·(1.48851587 + t·(−0.82215223 +
///   t·0.17087277)))))))))`, `erf = sign(x)·(1 − erfc)`.
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    if a < 0.5 {
        let z = x * x;
        // Coefficients 1/(n!(2n+1)) with alternating signs, times 2/sqrt(pi) at the end.
        let p = 1.0
            + z * (-1.0 / 3.0
                + z * (1.0 / 10.0
                    + z * (-1.0 / 42.0
                        + z * (1.0 / 216.0 + z * (-1.0 / 1320.0 + z * (1.0 / 9360.0))))));
        return std::f32::consts::FRAC_2_SQRT_PI * x * p;
    }
    let t = 1.0 / (1.0 + 0.5 * a);
    let poly = -1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204
                                + t * (1.488_515_9 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * (-a * a + poly).exp();
    let r = 1.0 - erfc;
    if x < 0.0 { -r } else { r }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_reference_values() {
        // Values from math.erf (double precision).
        let cases = [
            (0.0f32, 0.0f64),
            (1e-4, 1.128_379_163_334_248_7e-4),
            (0.1, 0.112_462_916_018_284_9),
            (0.49, 0.511_668_261_188_523),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (-1.0, -0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (3.0, 0.999_977_909_503_001_4),
            (-6.0, -1.0),
            (10.0, 1.0),
        ];
        for (x, want) in cases {
            let got = erf(x) as f64;
            assert!((got - want).abs() < 2e-7, "erf({x}) = {got}, want {want}");
        }
        // Relative precision near 0 (no 1 - erfc cancellation).
        assert!(((erf(1e-6) as f64) - 1.128_379_167_095_136_4e-6).abs() < 1e-12);
    }

    #[test]
    fn activations_match_hand_values() {
        // gelu(1) = 0.5·(1 + erf(1/√2)) = 0.841344746...
        assert!((Act::Gelu.apply(1.0) - 0.841_344_8).abs() < 1e-6);
        assert!((Act::Gelu.apply(-1.0) + 0.158_655_25).abs() < 1e-6);
        assert_eq!(Act::Gelu.apply(0.0), 0.0);
        // silu(1) = 1/(1+e^-1) = 0.731058578...
        assert!((Act::Silu.apply(1.0) - 0.731_058_6).abs() < 1e-6);
        assert_eq!(Act::Relu.apply(-2.0), 0.0);
        assert_eq!(Act::Relu.apply(2.5), 2.5);
        assert_eq!(Act::None.apply(-3.0), -3.0);
    }
}

/// Element-wise mean of equally long slices, accumulated in f64 so a
/// 25-state mean loses nothing to order; one slice is returned as it is.
/// The host pooling and the CPU backend both use it, so their layer means agree
/// to the bit.
pub fn mean_of(xs: &[&[f32]], len: usize) -> Vec<f32> {
    if let [one] = xs {
        return one[..len].to_vec();
    }
    let mut acc = vec![0f64; len];
    for s in xs {
        for (a, &x) in acc.iter_mut().zip(s.iter()) {
            *a += f64::from(x);
        }
    }
    let n = xs.len() as f64;
    acc.into_iter().map(|a| (a / n) as f32).collect()
}

/// Per-column statistics of some rows of a `[rows, cols]` matrix, all scaled
/// by a positive factor: what time pooling needs, in a form that merges
/// across the windows of a long clip.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnStats {
    /// Rows covered.
    pub n: usize,
    pub mean: Vec<f64>,
    /// Σ (x − mean)² per column.
    pub m2: Vec<f64>,
    pub min: Vec<f64>,
    pub max: Vec<f64>,
}

impl ColumnStats {
    /// Two-pass statistics of rows `rows` of row-major `x` (`cols` wide), times `scale` (> 0).
    pub fn of(x: &[f32], cols: usize, rows: std::ops::Range<usize>, scale: f64) -> ColumnStats {
        let n = rows.len();
        let mut mean = vec![0f64; cols];
        let mut min = vec![f64::INFINITY; cols];
        let mut max = vec![f64::NEG_INFINITY; cols];
        for r in rows.clone() {
            for (c, &v) in x[r * cols..(r + 1) * cols].iter().enumerate() {
                let v = f64::from(v);
                mean[c] += v;
                min[c] = min[c].min(v);
                max[c] = max[c].max(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut m2 = vec![0f64; cols];
        for r in rows {
            for (c, &v) in x[r * cols..(r + 1) * cols].iter().enumerate() {
                let d = f64::from(v) - mean[c];
                m2[c] += d * d;
            }
        }
        let s2 = scale * scale;
        ColumnStats {
            n,
            mean: mean.iter().map(|m| m * scale).collect(),
            m2: m2.iter().map(|m| m * s2).collect(),
            min: min.iter().map(|m| m * scale).collect(),
            max: max.iter().map(|m| m * scale).collect(),
        }
    }

    /// The statistics of both row sets together (Chan et al.'s pairwise update).
    pub fn merge(&self, other: &ColumnStats) -> ColumnStats {
        if self.n == 0 {
            return other.clone();
        }
        if other.n == 0 {
            return self.clone();
        }
        let n = self.n + other.n;
        let (na, nb) = (self.n as f64, other.n as f64);
        let mut out = self.clone();
        out.n = n;
        for c in 0..self.mean.len() {
            let delta = other.mean[c] - self.mean[c];
            out.mean[c] = self.mean[c] + delta * nb / n as f64;
            out.m2[c] = self.m2[c] + other.m2[c] + delta * delta * na * nb / n as f64;
            out.min[c] = self.min[c].min(other.min[c]);
            out.max[c] = self.max[c].max(other.max[c]);
        }
        out
    }

    /// Population std per column.
    pub fn std(&self) -> Vec<f64> {
        self.m2.iter().map(|m| (m / self.n as f64).sqrt()).collect()
    }
}

#[cfg(test)]
mod column_stats_tests {
    use super::ColumnStats;

    #[test]
    fn merged_halves_equal_the_whole_and_scale_applies() {
        // 5 rows x 2 cols.
        let x = [1.0f32, 10.0, 2.0, 20.0, 4.0, 40.0, 8.0, 80.0, 16.0, 160.0];
        let whole = ColumnStats::of(&x, 2, 0..5, 0.5);
        // Column 0 is 1, 2, 4, 8, 16 scaled by 0.5: mean 3.1, min 0.5, max 8.
        assert!((whole.mean[0] - 3.1).abs() < 1e-12);
        assert_eq!((whole.min[0], whole.max[0]), (0.5, 8.0));
        // Σ(x − 6.2)² = 27.04 + 17.64 + 4.84 + 3.24 + 96.04 = 148.8 raw, times 0.25.
        assert!((whole.m2[0] - 37.2).abs() < 1e-9);
        let merged = ColumnStats::of(&x, 2, 0..2, 0.5).merge(&ColumnStats::of(&x, 2, 2..5, 0.5));
        assert_eq!(merged.n, 5);
        for c in 0..2 {
            assert!((merged.mean[c] - whole.mean[c]).abs() < 1e-12);
            assert!((merged.m2[c] - whole.m2[c]).abs() < 1e-9);
            assert_eq!((merged.min[c], merged.max[c]), (whole.min[c], whole.max[c]));
        }
    }
}

/// Geometry of a 2-D convolution run as a GEMM over patches, on a time-major
/// image: the tensor is `[time·freq, channels]` with row `t·freq + f` (so a
/// `c f t → t (c f)` rearrangement afterwards is a free reshape once the next
/// weight's columns are permuted). The kernel is square (`k × k`), zero padded
/// by `pad` on all four sides, with one `stride` for both axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Patches2d {
    pub time: usize,
    pub freq: usize,
    pub channels: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Patches2d {
    fn out_len(n: usize, k: usize, stride: usize, pad: usize) -> usize {
        (n + 2 * pad).checked_sub(k).map_or(0, |d| d / stride + 1)
    }
    /// Output time steps.
    pub fn out_time(&self) -> usize {
        Self::out_len(self.time, self.k, self.stride, self.pad)
    }
    /// Output frequency rows.
    pub fn out_freq(&self) -> usize {
        Self::out_len(self.freq, self.k, self.stride, self.pad)
    }
    /// Patch length: `channels·k·k`, ordered `(c, k_freq, k_time)` as a
    /// PyTorch `[c_out, c_in, kH=freq, kW=time]` weight flattens.
    pub fn patch_len(&self) -> usize {
        self.channels * self.k * self.k
    }
}
