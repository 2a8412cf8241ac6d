//! MuQ on the CPU backends against the PyTorch goldens of `tests/fixtures/spec/muq_tiny` (SPEC §2, §3).

#[path = "common/golden.rs"]
mod golden;

use golden::golden_muq;
use pipe::cpu::CpuBackend;

#[test]
fn muq_tiny_matches_pytorch_on_the_reference_ops() {
    golden_muq(CpuBackend::reference());
}

#[test]
fn muq_tiny_matches_pytorch_on_the_fast_cpu_backend() {
    golden_muq(CpuBackend::new());
}
