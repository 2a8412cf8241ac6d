//! Shared helpers for the GPU test binaries (included with `#[path]`; in a
//! subfolder so cargo does not build it as a test binary of its own).

#![allow(dead_code)]

use pipe::gpu::{Gpu, InitError};

/// The GPU, with output poisoning on; `None` (after a printed notice) only
/// when no adapter exists at all, unless `PIPE_REQUIRE_GPU=1`.
pub fn gpu() -> Option<&'static Gpu> {
    match Gpu::get() {
        Ok(g) => {
            g.set_poison(true);
            Some(g)
        }
        Err(InitError::NoAdapter) if std::env::var("PIPE_REQUIRE_GPU").as_deref() != Ok("1") => {
            eprintln!("SKIPPED: no GPU adapter (install mesa-vulkan-drivers for lavapipe)");
            None
        }
        Err(e) => panic!("GPU required but unavailable: {e}"),
    }
}

/// Deterministic uniform values in [lo, hi) (the crate's SplitMix64).
pub fn rand_vec(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut r =
        pipe::rng::SplitMix64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03);
    (0..n)
        .map(|_| lo + (hi - lo) * ((r.next_u64() >> 40) as f32 / (1u64 << 24) as f32))
        .collect()
}

/// max|gpu − cpu| / max(1, max|cpu|); infinite if the GPU produced any
/// non-finite value where the CPU did not (poisoned, unwritten outputs).
pub fn rel_err(gpu: &[f32], cpu: &[f32]) -> f32 {
    assert_eq!(gpu.len(), cpu.len(), "length mismatch");
    let mut max_diff = 0.0f32;
    let mut max_ref = 0.0f32;
    for (&g, &c) in gpu.iter().zip(cpu) {
        if !g.is_finite() && c.is_finite() {
            return f32::INFINITY;
        }
        max_diff = max_diff.max((g - c).abs());
        max_ref = max_ref.max(c.abs());
    }
    max_diff / max_ref.max(1.0)
}

/// Assert the f32 kernel tolerance and print the observed error.
pub fn check(name: &str, gpu: &[f32], cpu: &[f32], tol: f32) {
    let e = rel_err(gpu, cpu);
    eprintln!("{name}: rel err {e:.3e}");
    assert!(e <= tol, "{name}: relative error {e:e} > {tol:e}");
}
