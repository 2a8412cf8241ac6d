//! The PyTorch goldens of `tests/fixtures/spec` (SPEC §3), shared by the CPU
//! and GPU golden tests.

#![allow(dead_code)]

use pipe::backend::prelude::*;
use pipe::encoder::checkpoint::WeightStore;
use pipe::encoder::{Mert, MertTrace, Muq, MuqTrace};
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
    let scale = want.iter().map(|v| v.abs()).fold(1.0f32, f32::max);
    (check_tol(what, got, want, 1e-4), 1e-4 * scale)
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

/// `[rows, cols]` → `[cols, rows]` on the host (goldens are channel-major).
pub fn transposed(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    for r in 0..rows {
        for c in 0..cols {
            y[c * rows + r] = x[r * cols + c];
        }
    }
    y
}

/// Max abs error against `tol · max(1, max|ref|)`.
pub fn check_tol(what: &str, got: &[f32], want: &[f32], tol: f32) -> f32 {
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
    println!(
        "{what:<34} max abs err {err:.3e}  (scale {scale:.1}, bound {:.1e})",
        tol * scale
    );
    assert!(
        err <= tol * scale,
        "{what}: max abs error {err} exceeds {tol} x {scale}"
    );
    err
}

/// MuQ (`muq_tiny`): every intermediate and hidden state against the goldens.
/// Mel power is compared relative to its largest value; dB to 2e-3 dB
/// (SPEC §3: torch's own f32 STFT differs from f64 by ~1e-3 dB); the rest
/// to 1e-4 of the golden's scale.
pub fn golden_muq<B: Backend>(backend: B) {
    let dir = fixtures().join("muq_tiny");
    let model = Muq::load(&backend, &dir).unwrap();
    let cfg = model.config().clone();
    let golden = WeightStore::open(&dir.join("golden.safetensors")).unwrap();
    let inputs = WeightStore::open(&fixtures().join("inputs.safetensors")).unwrap();
    let n_states = cfg.num_hidden_states();
    let all: Vec<usize> = (0..n_states).collect();
    let (h, c, f4, mels) = (cfg.encoder_dim, cfg.conv_dim, cfg.sub_freq(), cfg.n_mels);
    for w in ["a", "b"] {
        let wave = tensor(&inputs, &format!("wave_{w}"));
        let g = |k: &str| tensor(&golden, &format!("{k}.{w}"));
        let tag = |k: &str| format!("muq_tiny {k}.{w}");
        let mut trace = MuqTrace::default();
        let (t, states) = model
            .forward_window(&backend, &wave, &all, Some(&mut trace))
            .unwrap();
        let m = trace.mel_db.len() / mels;
        let want_power = g("mel_power");
        let peak = want_power.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        let power_rel: Vec<f32> = transposed(&trace.mel_power, m + 1, mels)
            .iter()
            .map(|v| v / peak)
            .collect();
        let want_rel: Vec<f32> = want_power.iter().map(|v| v / peak).collect();
        check_tol(&tag("mel_power / peak"), &power_rel, &want_rel, 1e-5);
        let db = transposed(&trace.mel_db, m, mels);
        let want_db = g("mel_db");
        let err = db
            .iter()
            .zip(&want_db)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        println!(
            "{:<34} max abs err {err:.3e} dB (bound 2e-3 dB)",
            tag("mel_db")
        );
        assert!(err <= 2e-3, "mel_db: {err} dB");
        check_tol(
            &tag("mel_norm"),
            &transposed(&trace.mel_norm, m, mels),
            &g("mel_norm"),
            1e-4,
        );
        // conv_stack golden is [C, F/4, T]; ours is [(t, f), c].
        let ours = transposed(&trace.conv_stack, t * f4, c);
        let mut want = vec![0.0; ours.len()];
        let gs = g("conv_stack");
        for ch in 0..c {
            for f in 0..f4 {
                for tt in 0..t {
                    want[ch * t * f4 + tt * f4 + f] = gs[(ch * f4 + f) * t + tt];
                }
            }
        }
        check_tol(&tag("conv_stack"), &ours, &want, 1e-4);
        check_tol(
            &tag("subsampled"),
            &trace.subsampled,
            &g("subsampled"),
            1e-4,
        );
        for (i, s) in states.iter().enumerate() {
            let s = s.as_ref().expect("every state was requested");
            assert_eq!(s.len(), t * h);
            check_tol(
                &tag(&format!("hidden_states.{i}")),
                s,
                &g(&format!("hidden_states.{i}")),
                1e-4,
            );
        }
        let last = states[n_states - 1].as_ref().unwrap();
        check_tol(
            &tag("last_hidden_state"),
            last,
            &g("last_hidden_state"),
            1e-4,
        );
        // That error is the golden's own f32 STFT: started from the golden's
        // mel_norm, the network alone matches to ~1.5e-6 (5e-7 of the scale).
        let golden_mel = transposed(&g("mel_norm"), mels, m);
        let (_, from_mel) = model.forward_mel(&backend, &golden_mel, &all).unwrap();
        for (i, s) in from_mel.iter().enumerate() {
            check_tol(
                &tag(&format!("hidden_states.{i} from golden mel")),
                s.as_ref().unwrap(),
                &g(&format!("hidden_states.{i}")),
                3e-6,
            );
        }
        // The windowed entry point gives the same result for a clip within
        // max_frames, and downloads only what was asked for.
        let enc = model.encode(&backend, &wave, &[n_states - 1]).unwrap();
        assert_eq!(enc.frames, t);
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

/// MuQ with its conv patch matrices built a few output steps at a time gives
/// the single-block result (within `tol`) for every hidden state.
pub fn muq_blocked_equals_whole<B: Backend>(backend: B, tol: f32) {
    let dir = fixtures().join("muq_tiny");
    let whole = Muq::load(&backend, &dir).unwrap();
    let mut blocked = Muq::load(&backend, &dir).unwrap();
    // Block 0's conv2 has 64 rows of 72 per output step: one step per block.
    blocked.set_patch_budget(500);
    let inputs = WeightStore::open(&fixtures().join("inputs.safetensors")).unwrap();
    let wave = tensor(&inputs, "wave_b");
    let all: Vec<usize> = (0..whole.config().num_hidden_states()).collect();
    let (ta, a) = whole.forward_window(&backend, &wave, &all, None).unwrap();
    let (tb, b) = blocked.forward_window(&backend, &wave, &all, None).unwrap();
    assert_eq!(ta, tb);
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        check_tol(
            &format!("muq blocked vs whole hidden_states.{i}"),
            y.as_ref().unwrap(),
            x.as_ref().unwrap(),
            tol,
        );
    }
}

/// `pipe encode` arguments: model folder `dir`, fixture input `wave_b`, CPU.
pub fn encode_args(dir: &Path, output: &Path) -> pipe::encoder::cli::EncodeArgs {
    pipe::encoder::cli::EncodeArgs {
        model: Some(dir.to_path_buf()),
        random: None,
        arch: "mert".into(),
        seed: 0,
        input: fixtures().join("inputs.safetensors"),
        input_tensor: Some("wave_b".into()),
        output: output.to_path_buf(),
        max_frames: None,
        no_normalize: false,
        reference_ops: false,
        device: "cpu".into(),
        save_model: None,
    }
}

/// `pipe encode` on the fixture folder `model` (input `wave_b`): every hidden
/// state has `[frames, hidden]` and matches the golden's `hidden_states.i.b`.
/// Returns the arguments and the output file, for model-specific checks.
pub fn encode_cli_matches_golden(
    model: &str,
    out_dir: &Path,
    frames: usize,
    hidden: usize,
) -> (pipe::encoder::cli::EncodeArgs, std::path::PathBuf) {
    let output = out_dir.join("states.safetensors");
    let dir = fixtures().join(model);
    let args = encode_args(&dir, &output);
    pipe::encoder::cli::run(args.clone()).unwrap();
    let out = WeightStore::open(&output).unwrap();
    let golden = WeightStore::open(&dir.join("golden.safetensors")).unwrap();
    assert_eq!(out.names().count(), 3);
    for i in 0..3 {
        let name = format!("hidden_states.{i}");
        assert_eq!(out.shape(&name), Some(&[frames, hidden][..]));
        check(
            &format!("cli {model} {name}.b"),
            &tensor(&out, &name),
            &tensor(&golden, &format!("{name}.b")),
        );
    }
    (args, output)
}
