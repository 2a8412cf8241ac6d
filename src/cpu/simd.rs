//! Runtime dispatch for the hot element-wise loops. The crate is built for
//! baseline x86-64 (SSE2: 4 lanes, no fused multiply-add) so the binary runs
//! anywhere; a function defined with [`wide_fn!`] is compiled a second time for
//! AVX2 + FMA (8 lanes, fused multiply-adds) and takes that copy when the CPU
//! has them. The matmuls get the same from the `gemm` crate's own dispatch.

/// `wide_fn! { fn name(args) { body } }` defines `fn name(args)` whose body runs
/// compiled for AVX2 + FMA on CPUs that have both, and as plain code otherwise.
/// Helpers the body calls should be `#[inline(always)]` so they are compiled
/// into both copies.
macro_rules! wide_fn {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx,avx2,fma")]
            fn avx2($($arg: $ty),*) $(-> $ret)? $body
            fn plain($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            if $crate::cpu::simd::has_avx2_fma() {
                // SAFETY: this CPU has every feature `avx2` is compiled for.
                return unsafe { avx2($($arg),*) };
            }
            plain($($arg),*)
        }
    };
}
pub(crate) use wide_fn;

/// Whether this CPU has AVX2 and FMA (checked once).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2_fma() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

#[cfg(test)]
mod tests {
    wide_fn! {
        fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
            y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
        }
    }

    #[test]
    fn a_wide_function_computes_the_same_on_either_path() {
        let x: Vec<f32> = (0..1001).map(|i| i as f32 * 0.5).collect();
        let mut y = vec![1.0f32; 1001];
        axpy(&mut y, 2.0, &x);
        assert!(y.iter().enumerate().all(|(i, &v)| v == 1.0 + i as f32));
    }
}
