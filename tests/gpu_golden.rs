//! MERT-v1 and MuQ on the GPU backend (`gpu::GpuBackend`) against the PyTorch goldens of
//! `tests/fixtures/spec` (SPEC §3), both fixture models and both inputs, plus the
//! op-by-op conformance check of the Backend contract. Skips only when no GPU
//! adapter exists at all (and fails then if PIPE_REQUIRE_GPU=1).

use crate::common::golden;
use crate::common::gpu::{Turn, shared};

use golden::golden_model;
use pipe::gpu::{GpuBackend, InitError};

/// The GPU backend, with a turn on the device held beside it.
fn backend() -> Option<(Turn, GpuBackend)> {
    let turn = shared();
    match GpuBackend::new() {
        Ok(b) => Some((turn, b)),
        Err(InitError::NoAdapter) if std::env::var("PIPE_REQUIRE_GPU").as_deref() != Ok("1") => {
            eprintln!("SKIPPED: no GPU adapter (install mesa-vulkan-drivers for lavapipe)");
            None
        }
        Err(e) => panic!("GPU required but unavailable: {e}"),
    }
}

#[test]
fn gpu_mert_tiny_postln_matches_pytorch() {
    if let Some((_turn, b)) = backend() {
        golden_model("mert_tiny_postln", b);
    }
}

#[test]
fn gpu_mert_tiny_preln_matches_pytorch() {
    if let Some((_turn, b)) = backend() {
        golden_model("mert_tiny_preln", b);
    }
}

#[test]
fn gpu_backend_conforms_op_by_op() {
    if let Some((_turn, b)) = backend() {
        pipe::encoder::conformance::check_backend(&b, 1e-5).unwrap();
    }
}

#[test]
fn gpu_muq_tiny_matches_pytorch() {
    if let Some((_turn, b)) = backend() {
        golden::golden_muq(b);
    }
}

#[test]
fn gpu_muq_blocked_conv_patches_match_the_single_block() {
    if let Some((_turn, b)) = backend() {
        golden::muq_blocked_equals_whole(b, 1e-6);
    }
}
