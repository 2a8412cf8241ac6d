//! Elementwise activations with their derivatives.

use super::config::Activation;

/// erf(x) by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7, below f32's
/// resolution near 1). Returns (erf(x), exp(-x²)) so GELU's derivative can
/// reuse the exponential.
#[inline]
fn erf_and_gauss(x: f32) -> (f32, f32) {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_72,
        1.421_413_8,
        -1.453_152_1,
        1.061_405_4,
    ];
    let ax = x.abs();
    let t = 1.0 / (1.0 + P * ax);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let g = (-ax * ax).exp();
    let y = 1.0 - poly * g;
    (if x < 0.0 { -y } else { y }, g)
}

/// Applies `act` to `z` in place-free form: writes act(z) to `out` and
/// act'(z) to `deriv` (kept for the backward pass).
pub fn forward(act: Activation, z: &[f32], out: &mut [f32], deriv: &mut [f32]) {
    match act {
        Activation::Relu => {
            for ((o, d), &x) in out.iter_mut().zip(deriv.iter_mut()).zip(z) {
                let pos = x > 0.0;
                *o = if pos { x } else { 0.0 };
                *d = if pos { 1.0 } else { 0.0 };
            }
        }
        Activation::Gelu => {
            const INV_SQRT2: f32 = std::f32::consts::FRAC_1_SQRT_2;
            // 1/sqrt(2π)
            const INV_SQRT_2PI: f32 = 0.398_942_3;
            for ((o, d), &x) in out.iter_mut().zip(deriv.iter_mut()).zip(z) {
                let (e, g) = erf_and_gauss(x * INV_SQRT2);
                let cdf = 0.5 * (1.0 + e);
                *o = x * cdf;
                // d/dx x·Φ(x) = Φ(x) + x·φ(x); g = exp(-x²/2).
                *d = cdf + x * INV_SQRT_2PI * g;
            }
        }
    }
}

#[inline]
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_matches_reference_values() {
        // x·0.5·(1 + math.erf(x/√2)) in Python (= torch.nn.GELU()).
        let z = [-3.0f32, -1.0, -0.1, 0.0, 0.5, 2.0];
        let want = [
            -0.004_049_694,
            -0.158_655_26,
            -0.046_017_22,
            0.0,
            0.345_731_3,
            1.954_499_7,
        ];
        let mut o = [0f32; 6];
        let mut d = [0f32; 6];
        forward(Activation::Gelu, &z, &mut o, &mut d);
        for i in 0..6 {
            assert!((o[i] - want[i]).abs() < 2e-6, "gelu({}) = {}", z[i], o[i]);
        }
        // Derivative by central differences of the same function.
        for &x in &z {
            let h = 1e-2f32;
            let mut a = [0f32; 2];
            let mut scratch = [0f32; 2];
            forward(Activation::Gelu, &[x - h, x + h], &mut a, &mut scratch);
            let fd = (a[1] - a[0]) / (2.0 * h);
            let mut dd = [0f32];
            forward(Activation::Gelu, &[x], &mut [0f32], &mut dd);
            assert!((fd - dd[0]).abs() < 1e-3, "gelu'({x}) {} vs fd {fd}", dd[0]);
        }
    }

    #[test]
    fn relu_and_sigmoid() {
        let mut o = [0f32; 3];
        let mut d = [0f32; 3];
        forward(Activation::Relu, &[-1.0, 0.0, 2.5], &mut o, &mut d);
        assert_eq!(o, [0.0, 0.0, 2.5]);
        assert_eq!(d, [0.0, 0.0, 1.0]);
        assert_eq!(sigmoid(0.0), 0.5);
        assert!((sigmoid(2.0) - 0.880_797_1).abs() < 1e-7);
    }
}
