//! The PyTorch goldens of `tests/fixtures/spec` (SPEC §3), shared by the CPU
//! and GPU golden tests (included with `#[path]`).

#![allow(dead_code)]

use pipe::encoder::backend::Backend;
use pipe::encoder::weights::WeightStore;
use pipe::encoder::{Mert, MertTrace};
use std::path::{Path, PathBuf};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spec")
}

pub fn tensor(store: &WeightStore, name: &str) -> Vec<f32> {
    let shape = store
        .shape(name)
        .unwrap_or_else(|| panic!("golden has no {name}"))
        .to_vec();
    store.get(name, &shape).unwrap()
}

/// Max abs error, checked against `1e-4 · max(1, max|ref|)`; returns (err, bound).
pub fn check(what: &str, got: &[f32], want: &[f32]) -> (f32, f32) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length {} vs golden {}",
        got.len(),
        want.len()
    );
    let err = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let scale = want.iter().map(|v| v.abs()).fold(1.0f32, f32::max);
    let bound = 1e-4 * scale;
    println!("{what:<34} max abs err {err:.3e}  (bound {bound:.1e})");
    assert!(err <= bound, "{what}: max abs error {err} exceeds {bound}");
    (err, bound)
}

pub fn golden_model<B: Backend>(name: &str, backend: B) {
    let dir = fixtures().join(name);
    let model = Mert::load(&backend, &dir).unwrap();
    let golden = WeightStore::open(&dir.join("golden.safetensors")).unwrap();
    let inputs = WeightStore::open(&fixtures().join("inputs.safetensors")).unwrap();
    let n_states = model.config().num_hidden_states();
    let all: Vec<usize> = (0..n_states).collect();
    for w in ["a", "b"] {
        let wave = tensor(&inputs, &format!("wave_{w}"));
        let mut trace = MertTrace::default();
        let out = model
            .forward_window(&backend, &wave, &all, Some(&mut trace))
            .unwrap();
        let tag = |k: &str| format!("{name} {k}.{w}");
        check(
            &tag("input_values"),
            &trace.input_values,
            &tensor(&golden, &format!("input_values.{w}")),
        );
        check(
            &tag("conv_features"),
            &trace.conv_features,
            &tensor(&golden, &format!("conv_features.{w}")),
        );
        check(
            &tag("projected"),
            &trace.projected,
            &tensor(&golden, &format!("projected.{w}")),
        );
        check(
            &tag("pos_conv"),
            &trace.pos_conv,
            &tensor(&golden, &format!("pos_conv.{w}")),
        );
        for (i, s) in out.states.iter().enumerate() {
            let s = s.as_ref().expect("every state was requested");
            check(
                &tag(&format!("hidden_states.{i}")),
                s,
                &tensor(&golden, &format!("hidden_states.{i}.{w}")),
            );
        }
        let last = out.states[n_states - 1].as_ref().unwrap();
        check(
            &tag("last_hidden_state"),
            last,
            &tensor(&golden, &format!("last_hidden_state.{w}")),
        );
        // The windowed entry point gives the same result for a clip within max_frames.
        let enc = model.encode(&backend, &wave, &[n_states - 1]).unwrap();
        assert_eq!(enc.frames, out.frames);
        assert!(
            enc.states[n_states - 1].as_ref() == Some(last),
            "encode differs from forward_window"
        );
        assert!(
            enc.states[0].is_none(),
            "only requested states are downloaded"
        );
    }
}
