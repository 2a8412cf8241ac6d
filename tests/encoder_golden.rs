//! MERT-v1 on the CPU backend against the PyTorch goldens of `tests/fixtures/spec` (SPEC §3).

use crate::common::golden;

use golden::{fixtures, golden_model, tensor};
use pipe::cpu::CpuBackend;
use pipe::encoder::checkpoint::WeightStore;
use pipe::encoder::{Mert, MertConfig, MertWeights};

#[test]
fn mert_tiny_postln_matches_pytorch() {
    golden_model("mert_tiny_postln", CpuBackend::reference());
}

#[test]
fn mert_tiny_postln_fast_cpu_matches_pytorch() {
    golden_model("mert_tiny_postln", CpuBackend::new());
}

#[test]
fn mert_tiny_preln_matches_pytorch() {
    golden_model("mert_tiny_preln", CpuBackend::reference());
}

#[test]
fn mert_tiny_preln_fast_cpu_matches_pytorch() {
    golden_model("mert_tiny_preln", CpuBackend::new());
}

#[test]
fn loader_errors_name_the_tensor() {
    let dir = fixtures().join("mert_tiny_postln");
    let store = WeightStore::open(&dir.join("model.safetensors")).unwrap();
    let mut cfg = MertConfig::from_dir(&dir).unwrap();
    // Wrong shape: a config with a larger FFN than the checkpoint.
    cfg.intermediate_size = 96;
    let e = format!("{:#}", MertWeights::from_store(&cfg, &store).unwrap_err());
    assert!(
        e.contains("encoder.layers.0.feed_forward.intermediate_dense.weight"),
        "{e}"
    );
    assert!(e.contains("[128, 64]") && e.contains("[96, 64]"), "{e}");
    // Missing tensor: a config with more layers than the checkpoint.
    let mut cfg = MertConfig::from_dir(&dir).unwrap();
    cfg.num_hidden_layers = 3;
    let e = format!("{:#}", MertWeights::from_store(&cfg, &store).unwrap_err());
    assert!(
        e.contains("missing tensor encoder.layers.2.attention.q_proj.weight"),
        "{e}"
    );
    // Fewer layers than the checkpoint is a mismatch too.
    cfg.num_hidden_layers = 1;
    let e = format!("{:#}", MertWeights::from_store(&cfg, &store).unwrap_err());
    assert!(
        e.contains("encoder.layers.1.attention.q_proj.weight"),
        "{e}"
    );
}

#[test]
fn long_clip_runs_windowed() {
    // 60 s of synthetic audio on a tiny random model with the real conv stack, in windows of 500 frames.
    let mut cfg = MertConfig::from_dir(&fixtures().join("mert_tiny_preln")).unwrap();
    cfg.max_frames = 500;
    let backend = CpuBackend::new();
    let model = Mert::new(
        &backend,
        cfg.clone(),
        &MertWeights::random_init(&cfg, 7).unwrap(),
    )
    .unwrap();
    let n = 60 * 24_000 + 123;
    let wave: Vec<f32> = (0..n)
        .map(|i| (i as f32 * 0.05).sin() * 0.3 + ((i * 7919) % 97) as f32 * 1e-3)
        .collect();
    let last = cfg.num_hidden_layers;
    let out = model.encode(&backend, &wave, &[0, last]).unwrap();
    assert_eq!(out.frames, cfg.frames_for(n));
    assert_eq!(out.frames, 4500); // floor((N − 400)/320) + 1
    for i in [0, last] {
        let s = out.states[i].as_ref().unwrap();
        assert_eq!(s.len(), out.frames * cfg.hidden_size);
        assert!(
            s.iter().all(|v| v.is_finite()),
            "state {i} has non-finite values"
        );
    }
    // Non-finite input is refused, naming the sample.
    let mut bad = wave[..24_000].to_vec();
    bad[123] = f32::NAN;
    let e = model.encode(&backend, &bad, &[0]).unwrap_err().to_string();
    assert!(e.contains("sample 123"), "{e}");
    // Too short for one frame: a clear error.
    let e = model
        .encode(&backend, &wave[..399], &[0])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("399 samples") && e.contains("receptive field of 400"),
        "{e}"
    );
}

#[test]
fn encode_cli_writes_every_hidden_state() {
    use pipe::encoder::cli::{EncodeArgs, run};
    let tmp = tempfile::tempdir().unwrap();
    let (args, _) = golden::encode_cli_matches_golden("mert_tiny_postln", tmp.path(), 56, 64);
    // A missing input tensor is named in the error.
    let e = format!(
        "{:#}",
        run(EncodeArgs {
            input_tensor: Some("wave_c".into()),
            ..args
        })
        .unwrap_err()
    );
    assert!(e.contains("wave_c") && e.contains("wave_a"), "{e}");
}

/// `--save-model` writes a folder (MERT or MuQ) that `--model` reads back as
/// the same model: its hidden states are identical to the seeded run's.
#[test]
fn save_model_round_trips_for_both_architectures() {
    use pipe::encoder::cli::{EncodeArgs, run};
    for arch in ["mert", "muq"] {
        let tmp = tempfile::tempdir().unwrap();
        let (seeded, saved) = (tmp.path().join("a.st"), tmp.path().join("b.st"));
        let model_dir = tmp.path().join("model");
        let args = golden::encode_args(&model_dir, &seeded);
        run(EncodeArgs {
            model: None,
            random: Some("control".into()),
            arch: arch.into(),
            seed: 3,
            save_model: Some(model_dir.clone()),
            ..args.clone()
        })
        .unwrap();
        assert!(model_dir.join("config.json").is_file(), "{arch}");
        run(EncodeArgs {
            output: saved.clone(),
            ..args
        })
        .unwrap();
        let (a, b) = (
            WeightStore::open(&seeded).unwrap(),
            WeightStore::open(&saved).unwrap(),
        );
        assert_eq!(a.names().count(), 13, "{arch}: 12 blocks + embedding");
        for i in 0..13 {
            let name = format!("hidden_states.{i}");
            assert!(tensor(&a, &name) == tensor(&b, &name), "{arch} {name}");
        }
    }
}

#[test]
fn windows_are_processed_alone_and_concatenated_in_order() {
    let dir = fixtures().join("mert_tiny_postln");
    let backend = CpuBackend::new();
    let mut cfg = MertConfig::from_dir(&dir).unwrap();
    let weights = MertWeights::from_dir(&cfg, &dir).unwrap();
    cfg.max_frames = 30;
    let model = Mert::new(&backend, cfg.clone(), &weights).unwrap();
    let inputs = WeightStore::open(&fixtures().join("inputs.safetensors")).unwrap();
    let wave = tensor(&inputs, "wave_a");
    let plan = pipe::encoder::window_plan(&cfg, wave.len()).unwrap();
    let frames: Vec<usize> = plan.iter().map(|w| w.frames).collect();
    assert_eq!(frames, vec![25, 25, 24]);
    let out = model.encode(&backend, &wave, &[2]).unwrap();
    assert_eq!(out.frames, 74);
    let mut want = Vec::new();
    for w in &plan {
        let one = model
            .forward_window(&backend, &wave[w.sample_start..w.sample_end], &[2], None)
            .unwrap();
        want.extend_from_slice(one.states[2].as_ref().unwrap());
    }
    assert!(
        out.states[2].as_deref() == Some(&want[..]),
        "windowed encode is not the concatenation of its windows"
    );
    // Windowing changes the result (each window has its own normalisation and context).
    let golden = WeightStore::open(&dir.join("golden.safetensors")).unwrap();
    let whole = tensor(&golden, "hidden_states.2.a");
    let diff = want
        .iter()
        .zip(&whole)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        diff > 1e-3,
        "windows should differ from the single pass (diff {diff})"
    );
}

#[test]
fn encode_cli_random_95m_has_real_shapes() {
    use pipe::encoder::cli::{EncodeArgs, run};
    use safetensors::tensor::TensorView;
    let tmp = tempfile::tempdir().unwrap();
    // 0.3 s of a tone: 7200 samples -> 22 frames.
    let wave: Vec<u8> = (0..7200)
        .flat_map(|i| ((i as f32 * 0.05).sin() * 0.5).to_le_bytes())
        .collect();
    let input = tmp.path().join("in.safetensors");
    let view = TensorView::new(safetensors::Dtype::F32, vec![1, 7200], &wave).unwrap();
    std::fs::write(
        &input,
        safetensors::serialize([("wave", view)], None).unwrap(),
    )
    .unwrap();
    let output = tmp.path().join("out.safetensors");
    run(EncodeArgs {
        model: None,
        random: Some("95m".into()),
        arch: "mert".into(),
        seed: 5,
        input,
        input_tensor: Some("wave".into()),
        output: output.clone(),
        max_frames: None,
        no_normalize: false,
        reference_ops: false,
        device: "cpu".into(),
        save_model: None,
    })
    .unwrap();
    let out = WeightStore::open(&output).unwrap();
    assert_eq!(out.names().count(), 13);
    for i in 0..13 {
        assert_eq!(
            out.shape(&format!("hidden_states.{i}")),
            Some(&[22usize, 768][..])
        );
    }
    let last = tensor(&out, "hidden_states.12");
    assert!(last.iter().all(|v| v.is_finite()));
}
