//! Pooling on the encoder's backend (statistics merged across windows) equals
//! pooling the downloaded hidden states on the host, for every layer
//! selection and pooling, on a clip long enough to run in several windows.

#[path = "common/gpu.rs"]
mod gpu_common;

use pipe::cpu::CpuBackend;
use pipe::encoder::{Backend, Mert, MertConfig, MertWeights};
use pipe::features::{FeatureSetSpec, HiddenStates, Pooling, device, pool_many};
use std::path::PathBuf;

fn model<B: Backend>(backend: &B) -> Mert<B> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spec/mert_tiny_postln");
    let mut cfg = MertConfig::from_dir(&dir).unwrap();
    cfg.max_frames = 30; // a 1.5 s clip then runs in several windows
    let w = MertWeights::from_dir(&cfg, &dir).unwrap();
    Mert::new(backend, cfg, &w).unwrap()
}

fn wave() -> Vec<f32> {
    (0..36_000)
        .map(|n| {
            let t = n as f32 / 24_000.0;
            0.3 * (2.0 * std::f32::consts::PI * 220.0 * t).sin() * (1.0 + t)
                + 0.05 * (2.0 * std::f32::consts::PI * 3_100.0 * t).sin()
        })
        .collect()
}

fn specs(n_states: usize) -> Vec<FeatureSetSpec> {
    let last = n_states - 1;
    let mut out = Vec::new();
    for layers in [
        format!("{last}"),
        format!("1-{last}"),
        format!("{last},0,1"),
        "all".to_string(),
        "all-concat".to_string(),
    ] {
        for pooling in [
            Pooling::Mean,
            Pooling::Max,
            Pooling::MeanStd,
            Pooling::Stats4,
            Pooling::Multiscale,
            Pooling::Frames,
        ] {
            for max_frames in [1000, 45, 2] {
                out.push(FeatureSetSpec {
                    layers: layers.parse().unwrap(),
                    pooling,
                    max_frames,
                });
            }
        }
    }
    out
}

fn host_pooled<B: Backend>(backend: &B, mert: &Mert<B>, specs: &[FeatureSetSpec]) -> Vec<Vec<f32>> {
    let n = mert.config().num_hidden_states();
    let out = mert
        .encode(backend, &wave(), &(0..n).collect::<Vec<_>>())
        .unwrap();
    assert!(
        out.frames > 2 * mert.config().max_frames,
        "{} frames",
        out.frames
    );
    let hs = HiddenStates::new(out.frames, out.hidden, &out.states).unwrap();
    pool_many(specs, &hs).unwrap()
}

fn compare(got: &[Vec<f32>], want: &[Vec<f32>], specs: &[FeatureSetSpec], tol: f32) {
    for ((g, w), s) in got.iter().zip(want).zip(specs) {
        assert_eq!(g.len(), w.len(), "{s}");
        let err = gpu_common::rel_err(g, w);
        assert!(err <= tol, "{s}: relative error {err:e}");
    }
}

#[test]
fn cpu_backend_device_pooling_equals_host_pooling_across_windows() {
    let b = CpuBackend::new();
    let mert = model(&b);
    let specs = specs(mert.config().num_hidden_states());
    let want = host_pooled(&b, &mert, &specs);
    let got = device::encode_and_pool(&b, &mert, &wave(), &specs).unwrap();
    compare(&got, &want, &specs, 1e-5);
}

#[test]
fn gpu_pooling_equals_host_pooling_of_the_cpu_encoder() {
    if gpu_common::gpu().is_none() {
        return;
    }
    let cpu = CpuBackend::new();
    let cpu_mert = model(&cpu);
    let specs = specs(cpu_mert.config().num_hidden_states());
    let want = host_pooled(&cpu, &cpu_mert, &specs);
    let gpu = pipe::gpu::GpuBackend::new().unwrap();
    let got = device::encode_and_pool(&gpu, &model(&gpu), &wave(), &specs).unwrap();
    compare(&got, &want, &specs, 1e-4);
}
