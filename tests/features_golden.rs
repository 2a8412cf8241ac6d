//! Feature extraction against the PyTorch goldens of `tests/fixtures/spec`:
//! the log-mel front end against torchaudio (SPEC §2.3), and pooling wired to a
//! real encoder pass (MERT tiny) against pooling the golden hidden states.

use pipe::audio::Pcm;
use pipe::audio::mel::mel_bank;
use pipe::cpu::CpuBackend;
use pipe::encoder::Mert;
use pipe::encoder::checkpoint::WeightStore;
use pipe::features::mel::{N_MELS, log_mel};
use pipe::features::{FeatureSetSpec, HiddenStates, LayerSelection, Pooling, pool_many};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spec")
}

fn tensor(store: &WeightStore, name: &str) -> Vec<f32> {
    let shape = store.shape(name).unwrap().to_vec();
    store.get(name, &shape).unwrap()
}

#[test]
fn features_mel_bank_matches_torchaudio() {
    let golden = WeightStore::open(&fixtures().join("muq_tiny/golden.safetensors")).unwrap();
    let want = tensor(&golden, "mel_fbank"); // [1025, 128]
    let bank = mel_bank(1025, 12_000.0, N_MELS, 24_000);
    let mut err = 0f32;
    for k in 0..1025 {
        for (m, b) in bank.iter().enumerate() {
            let got = if (b.first..b.first + b.weights.len()).contains(&k) {
                b.weights[k - b.first]
            } else {
                0.0
            };
            err = err.max((got - want[k * 128 + m]).abs());
        }
    }
    // torchaudio builds the bank in float32 (Hz values near 12 kHz carry ~1e-3 Hz of
    // rounding); we build it in f64, so agree to ~1e-5 on weights in [0, 1].
    assert!(err < 5e-5, "mel bank max abs error {err}");
}

#[test]
fn features_log_mel_matches_torchaudio_db() {
    let golden = WeightStore::open(&fixtures().join("muq_tiny/golden.safetensors")).unwrap();
    let inputs = WeightStore::open(&fixtures().join("inputs.safetensors")).unwrap();
    for w in ["a", "b"] {
        let pcm = Pcm {
            sample_rate: 24_000,
            samples: tensor(&inputs, &format!("wave_{w}")),
        };
        let (frames, got) = log_mel(&pcm).unwrap();
        let want = tensor(&golden, &format!("mel_db.{w}")); // [128, frames]
        assert_eq!(want.len(), 128 * frames, "{w}: frame count");
        let mut err = 0f32;
        for t in 0..frames {
            for m in 0..128 {
                err = err.max((got[t * 128 + m] - want[m * frames + t]).abs());
            }
        }
        println!("log-mel {w}: {frames} frames, max abs err {err:.2e} dB");
        assert!(err < 5e-3, "{w}: log-mel max abs error {err} dB");
    }
}

#[test]
fn features_pool_many_on_a_real_encoder_pass() {
    let backend = CpuBackend::new();
    let dir = fixtures().join("mert_tiny_postln");
    let model = Mert::load(&backend, &dir).unwrap();
    let golden = WeightStore::open(&dir.join("golden.safetensors")).unwrap();
    let inputs = WeightStore::open(&fixtures().join("inputs.safetensors")).unwrap();
    let n_states = model.config().num_hidden_states();
    let specs: Vec<FeatureSetSpec> = [
        ("1-2", Pooling::MeanStd, 1000),
        ("2", Pooling::Stats4, 1000),
        ("0,2", Pooling::Multiscale, 40),
        ("all", Pooling::Mean, 1000),
    ]
    .into_iter()
    .map(|(l, pooling, max_frames)| FeatureSetSpec {
        layers: l.parse().unwrap(),
        pooling,
        max_frames,
    })
    .collect();
    // Ask the encoder only for the states the feature sets read.
    let mut want: Vec<usize> = specs
        .iter()
        .flat_map(|s| s.layers.indices(n_states).unwrap())
        .collect();
    want.sort_unstable();
    want.dedup();
    let wave = tensor(&inputs, "wave_b");
    let out = model.encode(&backend, &wave, &want).unwrap();
    let got = pool_many(&specs, &HiddenStates::from_mert(&out).unwrap()).unwrap();

    let states: Vec<Vec<f32>> = (0..n_states)
        .map(|i| tensor(&golden, &format!("hidden_states.{i}.b")))
        .collect();
    let hs = HiddenStates::dense(out.frames, out.hidden, &states).unwrap();
    let reference = pool_many(&specs, &hs).unwrap();
    for ((spec, g), r) in specs.iter().zip(&got).zip(&reference) {
        assert_eq!(g.len(), spec.output_dim(out.hidden, n_states), "{spec}");
        let err = g
            .iter()
            .zip(r)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            err < 1e-3,
            "{spec}: max abs error {err} against golden states"
        );
    }
    // A selection beyond the model is refused with the model's state count.
    let e = LayerSelection::MeanRange { start: 1, end: 7 }
        .validate(n_states)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "layers 1-7: this encoder has {n_states} hidden states (0..={})",
            n_states - 1
        )
    );
}
