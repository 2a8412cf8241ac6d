//! MuQ on the CPU backends against the PyTorch goldens of `tests/fixtures/spec/muq_tiny` (SPEC §2, §3).

use crate::common::golden;

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

#[test]
fn encode_cli_reads_a_muq_folder_by_its_config() {
    use pipe::encoder::cli::{EncodeArgs, run};
    let tmp = tempfile::tempdir().unwrap();
    let (args, output) = golden::encode_cli_matches_golden("muq_tiny", tmp.path(), 19, 64);
    let meta = safetensors::SafeTensors::read_metadata(&std::fs::read(&output).unwrap())
        .unwrap()
        .1;
    let meta = meta.metadata().clone().unwrap();
    assert_eq!(meta["arch"], "muq");
    assert_eq!(meta["frame_rate_hz"], "25");
    assert_eq!(meta["max_frames"], "250");
    // MERT's waveform switch is refused for MuQ rather than ignored.
    let e = format!(
        "{:#}",
        run(EncodeArgs {
            no_normalize: true,
            ..args
        })
        .unwrap_err()
    );
    assert!(e.contains("MuQ has none"), "{e}");
}

#[test]
fn long_clips_run_in_windows_that_are_encoded_alone() {
    use golden::{fixtures, tensor};
    use pipe::encoder::checkpoint::WeightStore;
    use pipe::encoder::{Muq, MuqConfig, MuqWeights};
    let dir = fixtures().join("muq_tiny");
    let backend = CpuBackend::new();
    let mut cfg = MuqConfig::from_dir(&dir).unwrap();
    let weights = MuqWeights::from_dir(&cfg, &dir).unwrap();
    cfg.max_frames = 10;
    let model = Muq::new(&backend, cfg.clone(), &weights).unwrap();
    let inputs = WeightStore::open(&fixtures().join("inputs.safetensors")).unwrap();
    let wave = tensor(&inputs, "wave_a");
    // 25 frames in windows of ≤ 10: 9, 8, 8 frames; 960 samples per frame.
    let plan = pipe::encoder::muq::window_plan(&cfg, wave.len()).unwrap();
    assert_eq!(
        plan.iter().map(|w| w.frames).collect::<Vec<_>>(),
        vec![9, 8, 8]
    );
    let out = model.encode(&backend, &wave, &[1, 2]).unwrap();
    assert_eq!(out.frames, 25);
    let mut want = Vec::new();
    for w in &plan {
        let (t, states) = model
            .forward_window(&backend, &wave[w.sample_start..w.sample_end], &[2], None)
            .unwrap();
        assert_eq!(t, w.frames);
        want.extend(states[2].clone().unwrap());
    }
    assert_eq!(out.states[2].as_ref().unwrap(), &want);
    assert!(out.states[0].is_none());
    // Each window is its own clip: the result differs from the single pass.
    let whole = Muq::load(&backend, &dir).unwrap();
    let single = whole.encode(&backend, &wave, &[2]).unwrap();
    assert_ne!(single.states[2], out.states[2]);
    // Too short for the STFT: a clear error.
    let e = model
        .encode(&backend, &wave[..1000], &[2])
        .unwrap_err()
        .to_string();
    assert!(e.contains("1000 samples") && e.contains("MuQ needs"), "{e}");
    let e = format!("{:#}", model.encode(&backend, &wave, &[3]).unwrap_err());
    assert!(e.contains("hidden state 3 requested"), "{e}");
}

#[test]
fn loader_errors_name_the_tensor_and_tolerate_the_model_prefix() {
    use golden::fixtures;
    use pipe::encoder::checkpoint::WeightStore;
    use pipe::encoder::{MuqConfig, MuqWeights};
    let dir = fixtures().join("muq_tiny");
    let store = WeightStore::open(&dir.join("model.safetensors")).unwrap();
    let mut cfg = MuqConfig::from_dir(&dir).unwrap();
    cfg.intermediate_size = 96;
    let e = format!("{:#}", MuqWeights::from_store(&cfg, &store).unwrap_err());
    assert!(
        e.contains("model.conformer.layers.0.ffn1.intermediate_dense.weight")
            && e.contains("[128, 64]")
            && e.contains("[96, 64]"),
        "{e}"
    );
    let mut cfg = MuqConfig::from_dir(&dir).unwrap();
    cfg.encoder_depth = 1;
    let e = format!("{:#}", MuqWeights::from_store(&cfg, &store).unwrap_err());
    assert!(e.contains("encoder_depth is 1"), "{e}");
    // The same checkpoint without the `model.` prefix loads to the same weights.
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let stripped: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n.strip_prefix("model.").unwrap_or(&n).to_string(), v))
        .collect();
    let buf = safetensors::serialize(stripped, None).unwrap();
    let plain = WeightStore::from_bytes(buf, "stripped").unwrap();
    let cfg = MuqConfig::from_dir(&dir).unwrap();
    let a = MuqWeights::from_store(&cfg, &store).unwrap();
    let b = MuqWeights::from_store(&cfg, &plain).unwrap();
    assert_eq!(a.layers[1].depthwise.w, b.layers[1].depthwise.w);
    assert_eq!(a.proj.w, b.proj.w);
}

#[test]
fn conv_patches_built_in_blocks_give_the_same_states() {
    // The reference ops compute each output row alone: bit-identical.
    golden::muq_blocked_equals_whole(CpuBackend::reference(), 0.0);
    golden::muq_blocked_equals_whole(CpuBackend::new(), 1e-6);
}
