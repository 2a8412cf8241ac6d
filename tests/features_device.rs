//! Pooling on the encoder's backend (statistics merged across windows) equals
//! pooling the downloaded hidden states on the host, for every layer
//! selection and pooling, on a clip long enough to run in several windows,
//! for both architectures (MERT and MuQ fixture models).

use crate::common::gpu as gpu_common;

use pipe::backend::prelude::*;
use pipe::cpu::CpuBackend;
use pipe::encoder::{ArchConfig, Encoder};
use pipe::features::{FeatureSetSpec, HiddenStates, Pooling, backend_pool, pool_many};
use std::path::PathBuf;

/// A fixture model whose windows are short enough that a 1.5 s clip runs in several.
fn model<B: Backend>(backend: &B, fixture: &str) -> Encoder<B> {
    model_with_window(backend, fixture, None)
}

/// `window`: most frames per window (None: 30 for MERT, 10 for MuQ).
fn model_with_window<B: Backend>(backend: &B, fixture: &str, window: Option<usize>) -> Encoder<B> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/spec")
        .join(fixture);
    let mut cfg = ArchConfig::from_dir(&dir).unwrap();
    // MERT: 112 frames at 75 Hz in windows of 30; MuQ: 38 frames at 25 Hz in windows of 10.
    cfg.set_max_frames(window.unwrap_or(if cfg.arch() == "muq" { 10 } else { 30 }));
    let w = cfg.load_weights(&dir).unwrap();
    Encoder::new(backend, cfg, &w).unwrap()
}

const FIXTURES: [&str; 2] = ["mert_tiny_postln", "muq_tiny"];

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

fn host_pooled<B: Backend>(
    backend: &B,
    model: &Encoder<B>,
    specs: &[FeatureSetSpec],
) -> Vec<Vec<f32>> {
    let n = model.config().num_hidden_states();
    let out = model
        .encode(backend, &wave(), &(0..n).collect::<Vec<_>>())
        .unwrap();
    let hs = HiddenStates::new(out.frames, out.hidden, &out.states).unwrap();
    pool_many(specs, &hs).unwrap()
}

fn windows<B: Backend>(model: &Encoder<B>) -> usize {
    model.config().window_plan(wave().len()).unwrap().len()
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
    for fixture in FIXTURES {
        let m = model(&b, fixture);
        let specs = specs(m.config().num_hidden_states());
        let want = host_pooled(&b, &m, &specs);
        assert!(
            windows(&m) > 2,
            "{fixture}: the clip must span several windows"
        );
        let got = backend_pool::encode_and_pool(&b, &m, &wave(), &specs).unwrap();
        compare(&got, &want, &specs, 1e-5);
    }
}

/// In one window the CPU backend pools to the host oracle's bits: its layer
/// mean is the oracle's f64 mean and its statistics the same two passes. (Across
/// windows only the f64 merge order differs, within the tolerance above.)
#[test]
fn cpu_backend_pools_a_one_window_clip_to_the_same_bits_as_the_host() {
    let b = CpuBackend::new();
    for fixture in FIXTURES {
        let m = model_with_window(&b, fixture, Some(4096));
        let specs = specs(m.config().num_hidden_states());
        let want = host_pooled(&b, &m, &specs);
        let got = backend_pool::encode_and_pool(&b, &m, &wave(), &specs).unwrap();
        for ((g, w), s) in got.iter().zip(&want).zip(&specs) {
            assert!(g == w, "{fixture} {s}: not bit-identical");
        }
    }
}

#[test]
fn gpu_pooling_equals_host_pooling_of_the_cpu_encoder() {
    let Some(_gpu) = gpu_common::gpu() else {
        return;
    };
    let cpu = CpuBackend::new();
    let gpu = pipe::gpu::GpuBackend::new().unwrap();
    for fixture in FIXTURES {
        let cpu_model = model(&cpu, fixture);
        let specs = specs(cpu_model.config().num_hidden_states());
        let want = host_pooled(&cpu, &cpu_model, &specs);
        let got =
            backend_pool::encode_and_pool(&gpu, &model(&gpu, fixture), &wave(), &specs).unwrap();
        compare(&got, &want, &specs, 1e-4);
    }
}
