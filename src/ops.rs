//! The op set shared by every encoder backend.
//!
//! `cpu` holds the plain reference implementation of each op (the test oracle);
//! the GPU backend implements the same ops in WGSL and is tested against it.
//! The [`Backend`](crate::encoder::Backend) trait (in `crate::encoder::backend`) is the device-resident
//! version of this op set that the encoder forward passes are written against.

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
/// The GPU port must use exactly this formula so that both backends agree:
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
