//! Device-level GPU tests, each with the GPU to itself (no other test's work
//! in this process disturbs the counters): adapter reporting, the
//! PIPE_REQUIRE_GPU switch, pipeline cache and buffer pool reuse, and op
//! errors naming the op.

use crate::common::gpu::{alone, gpu_alone, ops, rand_vec};
use pipe::gpu::Gpu;
use pipe::gpu::attention::QkvLayout;
use pipe::ops::Act;

#[test]
fn adapter_is_found_when_required() {
    let _alone = alone();
    // CI with lavapipe (and any GPU machine) sets PIPE_REQUIRE_GPU=1: no silent skips there.
    if std::env::var("PIPE_REQUIRE_GPU").as_deref() == Ok("1") {
        let g = Gpu::get().expect("PIPE_REQUIRE_GPU=1 but no GPU adapter");
        assert!(!g.info().name.is_empty());
    }
}

#[test]
fn reports_adapter_type() {
    let Some(g) = gpu_alone() else { return };
    let info = g.info();
    // Printed so a run on a real GPU shows it did not use the CPU fallback.
    eprintln!("GPU adapter: {info}; cpu fallback: {}", info.is_cpu());
    println!("GPU adapter: {info}; cpu fallback: {}", info.is_cpu());
    assert!(!info.name.is_empty());
    assert_eq!(info.backend, wgpu::Backend::Vulkan);
    if std::env::var("PIPE_REQUIRE_REAL_GPU").as_deref() == Ok("1") {
        assert!(
            !info.is_cpu(),
            "PIPE_REQUIRE_REAL_GPU=1 but the adapter is the CPU fallback: {info}"
        );
    }
    // The requested limits must allow large activations (lavapipe and real GPUs both do).
    assert!(g.limits().max_storage_buffer_binding_size >= 128 << 20);
}

#[test]
fn pipelines_and_buffers_are_reused() {
    let Some(g) = gpu_alone() else { return };
    let x = rand_vec(1, 33 * 48, -1.0, 1.0);
    let w = rand_vec(2, 20 * 48, -1.0, 1.0);
    let first = ops::linear(&x, 33, 48, &w, 20, None, Act::Relu, None).unwrap();
    let kernels = g.compiled_kernels();
    let buffers = g.buffers_created();
    for _ in 0..5 {
        let again = ops::linear(&x, 33, 48, &w, 20, None, Act::Relu, None).unwrap();
        assert_eq!(again, first, "same input, same result");
    }
    assert_eq!(g.compiled_kernels(), kernels, "pipelines recompiled");
    assert_eq!(
        g.buffers_created(),
        buffers,
        "pooled buffers were not reused"
    );
}

#[test]
fn op_errors_name_the_op_and_shapes() {
    let Some(g) = gpu_alone() else { return };
    // The kernels' own checks, below the backend's shape checks.
    let mut b = g.batch();
    let (x, w) = (b.upload(&[1.0; 10]).unwrap(), b.upload(&[0.0; 12]).unwrap());
    let err = pipe::gpu::matmul::linear(&mut b, &x, 2, 4, &w, 3, None, Act::None, None)
        .err()
        .expect("a shape error");
    let msg = format!("{err:#}");
    assert!(msg.contains("linear") && msg.contains("x has 10"), "{msg}");
    let q = b.upload(&[0.0; 130]).unwrap();
    let layout = QkvLayout {
        stride: 130,
        q_off: 0,
        k_off: 0,
        v_off: 0,
    };
    let err = pipe::gpu::attention::attention(&mut b, &q, &q, &q, layout, 1, 1, 130, 1.0)
        .err()
        .expect("a head_dim error");
    assert!(format!("{err:#}").contains("head_dim 130"), "{err:#}");
}

#[test]
fn bench_matmul_reports_throughput() {
    let Some(g) = gpu_alone() else { return };
    // Small enough for a debug test run on lavapipe; the shape of an FFN layer of a 2 s clip.
    let r = pipe::gpu::bench_matmul(&g, 150, 768, 768, 3).unwrap();
    println!(
        "matmul {}x{}x{} on {}: {:.2} GFLOP/s",
        r.m,
        r.n,
        r.k,
        g.info().name,
        r.gflops
    );
    eprintln!(
        "matmul {}x{}x{} on {}: {:.2} GFLOP/s",
        r.m,
        r.n,
        r.k,
        g.info().name,
        r.gflops
    );
    assert!(r.gflops.is_finite() && r.gflops > 0.0 && r.seconds > 0.0);
}
