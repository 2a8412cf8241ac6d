//! The features stages on a tiny real-architecture encoder (the MERT golden
//! fixture's weights): one pass per clip serves every feature set, and only
//! what a change touches is recomputed.

use pipe::audio::{Pcm, wav};
use pipe::config::Config;
use pipe::dag::RunReport;
use std::path::{Path, PathBuf};

use crate::common::gpu as gpu_common;
use crate::common::pipeline;
use pipeline::computed;

fn fixture_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spec/mert_tiny_postln")
}

/// Three 1 s clips (two pieces) of harmonic tones at 24 kHz, a labels CSV, a model folder.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let audio = dir.path().join("audio");
    std::fs::create_dir_all(&audio).unwrap();
    for (i, f0) in [220.0f32, 330.0, 440.0].iter().enumerate() {
        let samples = (0..24_000)
            .map(|n| {
                let t = n as f32 / 24_000.0;
                0.3 * (2.0 * std::f32::consts::PI * f0 * t).sin()
                    + 0.1 * (4.0 * std::f32::consts::PI * f0 * t).sin()
            })
            .collect();
        wav::write_f32(
            &audio.join(format!("c{i}.wav")),
            &Pcm {
                sample_rate: 24_000,
                samples,
            },
        )
        .unwrap();
    }
    let dims = pipe::dims::DIMENSIONS.join(",");
    let row = |id: &str, piece: &str| format!("{id},{piece},{}", vec!["0.5"; 19].join(","));
    std::fs::write(
        dir.path().join("labels.csv"),
        format!(
            "clip_id,piece,{dims}\n{}\n{}\n{}\n",
            row("c0", "p0"),
            row("c1", "p0"),
            row("c2", "p1")
        ),
    )
    .unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir_all(&model).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture_model().join(f), model.join(f)).unwrap();
    }
    dir
}

const BASE: &str = r#"
[dataset]
kind = "audio_folder"
audio_dir = "audio"
labels = "labels.csv"
[dataset.folds]
k = 2
[encoders.tiny]
arch = "mert"
weights = "model"
[encoders.ctl]
arch = "mert"
random = "control"
seed = 7
[encoders.absent]
arch = "mert"
weights = "no/such/folder"
download_hint = "get it somewhere"
[features.a]
encoder = "tiny"
layers = "1-2"
pooling = "mean"
"#;

fn run(dir: &Path, extra: &str) -> (RunReport, Vec<String>) {
    pipeline::run(dir, &format!("{BASE}{extra}"))
}

#[test]
fn feature_sets_share_the_encoder_and_recompute_only_what_changed() {
    let dir = setup();
    let (r, notes) = run(dir.path(), "");
    assert_eq!(computed(&r, "features"), 3);
    assert!(notes.is_empty(), "{notes:?}");
    let table = dir.path().join("data/out/features/a.parquet");
    let b = &pipe::table::read(&table).unwrap()[0];
    assert_eq!(b.num_rows(), 3);
    let meta = b.schema().metadata().clone();
    assert_eq!(meta.get("pipe.dim").map(String::as_str), Some("64"));
    assert!(meta["pipe.weights"].starts_with("blake3:"), "{meta:?}");
    let f = pipe::table::column::<arrow_array::FixedSizeListArray>(b, "features").unwrap();
    assert_eq!(f.value_length(), 64);

    // A second feature set on the same encoder: only its 3 nodes run; `a` stays fresh.
    let extra_b = "[features.b]\nencoder = \"tiny\"\nlayers = \"2\"\npooling = \"mean_std\"\n";
    let (r, _) = run(dir.path(), extra_b);
    assert_eq!(
        (computed(&r, "features"), r.stage("features").unwrap().fresh),
        (3, 3)
    );
    assert_eq!(computed(&r, "feature_tables"), 1, "only b's table is new");

    // Changing b's pooling re-pools b only.
    let (r, _) = run(dir.path(), &extra_b.replace("mean_std", "max"));
    assert_eq!(computed(&r, "features"), 3);
    assert_eq!(r.stage("features").unwrap().fresh, 3);

    // Changing the weights file re-encodes every set of that encoder.
    let w = dir.path().join("model/model.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0x01; // flip one bit of the last tensor's last value
    std::fs::write(&w, bytes).unwrap();
    let (r, _) = run(dir.path(), &extra_b.replace("mean_std", "max"));
    assert_eq!(computed(&r, "features"), 6);
    assert_eq!(computed(&r, "resample"), 0, "audio stages untouched");
}

#[test]
fn missing_weights_skip_their_sets_with_a_note_and_the_rest_runs() {
    let dir = setup();
    let extra = "[features.gone]\nencoder = \"absent\"\nlayers = \"7-12\"\npooling = \"mean\"\n\
                 [features.control]\nencoder = \"ctl\"\nlayers = \"7-12\"\npooling = \"mean\"\n\
                 [features.raw]\nencoder = \"raw_stats\"\n";
    let (r, notes) = run(dir.path(), extra);
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].contains("not run: gone") && notes[0].contains("get it somewhere"),
        "{notes:?}"
    );
    assert_eq!(computed(&r, "feature_tables"), 3, "a, control, raw");
    let b = &pipe::table::read(&dir.path().join("data/out/features/control.parquet")).unwrap()[0];
    assert!(b.schema().metadata()["pipe.weights"].starts_with("CONTROL: seeded random init"));
    assert_eq!(b.schema().metadata()["pipe.dim"], "64");
}

fn features_of(dir: &Path, set: &str) -> Vec<f32> {
    let t =
        pipe::experiment::FeatureTable::read(&dir.join(format!("data/out/features/{set}.parquet")))
            .unwrap();
    t.values
}

#[test]
fn device_gpu_runs_the_wgsl_encoder_and_matches_the_cpu_backend() {
    let Some(_gpu) = gpu_common::gpu() else {
        return;
    };
    let cpu = setup();
    run(cpu.path(), "");
    let gpu = setup();
    let on_gpu = BASE.replace(
        "weights = \"model\"\n",
        "weights = \"model\"\ndevice = \"gpu\"\n",
    );
    assert_ne!(on_gpu, BASE);
    let (r, _) = pipeline::run(gpu.path(), &on_gpu);
    assert_eq!(computed(&r, "features"), 3);
    let (a, b) = (features_of(cpu.path(), "a"), features_of(gpu.path(), "a"));
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(1f32, |m, x| m.max(x.abs()));
    let err = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        err / scale <= 1e-4,
        "gpu vs cpu features differ by {err} (scale {scale})"
    );
    assert!(
        err > 0.0,
        "bit-identical to the CPU: did the GPU backend run at all?"
    );
}

#[test]
fn device_gpu_without_an_adapter_is_an_error_naming_the_encoder() {
    if pipe::gpu::Gpu::get().is_ok() {
        return; // only meaningful where no Vulkan adapter exists
    }
    let dir = setup();
    let (report, _) = pipeline::try_run(
        dir.path(),
        &BASE.replace(
            "weights = \"model\"\n",
            "weights = \"model\"\ndevice = \"gpu\"\n",
        ),
    );
    let failed = &report.stage("features").unwrap().failed;
    assert!(!failed.is_empty());
    assert!(
        failed[0].1.contains("encoder `tiny` has device = \"gpu\""),
        "{failed:?}"
    );
}

#[test]
fn frames_sets_store_the_sequence_whose_mean_is_the_mean_pooled_set() {
    use arrow_array::{Array, FixedSizeListArray, Float32Array, Int32Array, ListArray};
    let dir = setup();
    let extra = "[features.seq]\nencoder = \"tiny\"\nlayers = \"1-2\"\npooling = \"frames\"\nmax_frames = 40\n";
    let (r, _) = run(dir.path(), extra);
    assert_eq!(computed(&r, "feature_tables"), 2, "a and seq");
    let b = pipe::table::read_single(&dir.path().join("data/out/features/seq.parquet")).unwrap();
    let n_frames = pipe::table::column::<Int32Array>(&b, "n_frames").unwrap();
    let frames = pipe::table::column::<ListArray>(&b, "frames").unwrap();
    for clip in 0..3 {
        // 1 s at 24 kHz is more than 40 frames; max_frames keeps the first 40.
        assert_eq!(n_frames.value(clip), 40);
        let seq = frames.value(clip);
        let seq = seq.as_any().downcast_ref::<FixedSizeListArray>().unwrap();
        assert_eq!((seq.len(), seq.value_length()), (40, 64));
        let v = seq
            .values()
            .as_any()
            .downcast_ref::<Float32Array>()
            .unwrap();
        assert!(v.values().iter().all(|x| x.is_finite()));
        // Rows are frames: frame 0 differs from frame 39.
        assert_ne!(&v.values()[..64], &v.values()[39 * 64..40 * 64]);
    }

    // Same layers, mean-pooled over the same 40 frames: equals the mean of the stored frames.
    let extra2 = format!(
        "{extra}[features.m40]\nencoder = \"tiny\"\nlayers = \"1-2\"\npooling = \"mean\"\nmax_frames = 40\n"
    );
    run(dir.path(), &extra2);
    let pooled = features_of(dir.path(), "m40");
    let seq0 = frames.value(0);
    let seq0 = seq0.as_any().downcast_ref::<FixedSizeListArray>().unwrap();
    let v = seq0
        .values()
        .as_any()
        .downcast_ref::<Float32Array>()
        .unwrap()
        .values();
    for d in 0..64 {
        let m = (0..40).map(|t| v[t * 64 + d] as f64).sum::<f64>() / 40.0;
        assert!(
            (m - pooled[d] as f64).abs() < 1e-5,
            "dim {d}: {m} vs {}",
            pooled[d]
        );
    }

    // Heads cannot train on sequences: a config error names the experiment.
    let bad = format!("{BASE}{extra}[experiments.X]\nfeatures = \"seq\"\n");
    let err = Config::parse(&bad, dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("experiments.X.features") && err.contains("frame sequences"),
        "{err}"
    );
}

#[test]
fn muq_encoders_run_in_the_pipeline_from_a_folder_or_as_a_control() {
    let dir = setup();
    let muq = dir.path().join("muq");
    std::fs::create_dir_all(&muq).unwrap();
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spec/muq_tiny");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture.join(f), muq.join(f)).unwrap();
    }
    let extra = "[encoders.muq]\narch = \"muq\"\nweights = \"muq\"\n\
                 [encoders.muqctl]\narch = \"muq\"\nrandom = \"control\"\nseed = 3\n\
                 [features.m]\nencoder = \"muq\"\nlayers = \"1-2\"\npooling = \"mean_std\"\n\
                 [features.mc]\nencoder = \"muqctl\"\nlayers = \"9-12\"\npooling = \"mean\"\n";
    let (r, notes) = run(dir.path(), extra);
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(computed(&r, "features"), 9, "a, m, mc on 3 clips");
    let b = &pipe::table::read(&dir.path().join("data/out/features/m.parquet")).unwrap()[0];
    assert_eq!(b.schema().metadata()["pipe.dim"], "128", "mean+std of H 64");
    let b = &pipe::table::read(&dir.path().join("data/out/features/mc.parquet")).unwrap()[0];
    assert!(
        b.schema().metadata()["pipe.weights"].starts_with("CONTROL: seeded random init (control")
    );
    assert_eq!(b.schema().metadata()["pipe.dim"], "64");

    // The stage's features equal pooling the encoder's own hidden states of the clip.
    let cpu = pipe::cpu::CpuBackend::new();
    let model = pipe::encoder::Muq::load(&cpu, &muq).unwrap();
    let pcm = wav::read_f32(&dir.path().join("audio/c1.wav")).unwrap();
    let out = model.encode(&cpu, &pcm.samples, &[1, 2]).unwrap();
    let (t, h) = (out.frames, out.hidden);
    assert_eq!(t, 25);
    let mean: Vec<f32> = (0..h)
        .map(|c| {
            (0..t)
                .map(|r| {
                    (out.states[1].as_ref().unwrap()[r * h + c]
                        + out.states[2].as_ref().unwrap()[r * h + c])
                        / 2.0
                })
                .sum::<f32>()
                / t as f32
        })
        .collect();
    let got = features_of(dir.path(), "m");
    let row1 = &got[128..128 + 64];
    let err = row1
        .iter()
        .zip(&mean)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(err < 1e-5, "clip c1 mean differs by {err}");

    // `arch` must match the folder's config.json: a configuration error before any work.
    let wrong = extra.replace(
        "[encoders.muq]\narch = \"muq\"",
        "[encoders.muq]\narch = \"mert\"",
    );
    let cfg = Config::parse(&format!("{BASE}{wrong}"), dir.path()).unwrap();
    let e = match pipe::stages::build(&cfg) {
        Ok(_) => panic!("a muq checkpoint under arch = \"mert\" must not build"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        e.contains("arch = \"mert\"") && e.contains("is a muq checkpoint"),
        "{e}"
    );
}

#[test]
fn muq_with_device_gpu_runs_the_wgsl_encoder_and_matches_the_cpu_backend() {
    let Some(_gpu) = gpu_common::gpu() else {
        return;
    };
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spec/muq_tiny");
    let mut features = Vec::new();
    for device in ["cpu", "gpu"] {
        let dir = setup();
        let muq = dir.path().join("muq");
        std::fs::create_dir_all(&muq).unwrap();
        for f in ["config.json", "model.safetensors"] {
            std::fs::copy(fixture.join(f), muq.join(f)).unwrap();
        }
        let extra = format!(
            "[encoders.muq]\narch = \"muq\"\nweights = \"muq\"\ndevice = \"{device}\"\n\
             [features.m]\nencoder = \"muq\"\nlayers = \"all\"\npooling = \"stats4\"\n"
        );
        run(dir.path(), &extra);
        features.push(features_of(dir.path(), "m"));
    }
    let (a, b) = (&features[0], &features[1]);
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(1f32, |m, x| m.max(x.abs()));
    let err = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        err / scale <= 1e-4,
        "gpu vs cpu MuQ features differ by {err}"
    );
    assert!(
        err > 0.0,
        "bit-identical to the CPU: did the GPU backend run?"
    );
}

#[test]
fn symbolic_sets_are_skipped_with_a_note_on_a_dataset_of_recordings() {
    let dir = setup();
    let extra = "[features.sym]\nencoder = \"midi_stats\"\n[experiments.E]\nfeatures = \"sym\"\n";
    let (r, notes) = run(dir.path(), extra);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("feature set `sym`") && n.contains("is a recording")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("experiment(s) not run") && n.ends_with(": E")),
        "{notes:?}"
    );
    assert_eq!(computed(&r, "feature_tables"), 1, "only a");
}

/// The first two PercePiano clips of the repository's data, rendered with the
/// shipped SoundFont at `gain`, with the librosa and symbolic sets.
fn percepiano_toml(dir: &Path, gain: f32) -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    format!(
        r#"
data_dir = "{data}"
[dataset]
kind = "percepiano"
labels = "{r}/data/percepiano/labels/label_2round_mean_reg_19_with0_rm_highstd0.json"
metadata = "{r}/data/percepiano/manifest.csv"
midi_dir = "{r}/data/percepiano/midi/performance"
limit = 2
[dataset.folds]
k = 2
[render]
soundfont = "{r}/data/soundfont/piano.sf2"
gain = {gain}
[features.l49]
encoder = "librosa49"
[features.stats]
encoder = "midi_stats"
[features.notes]
encoder = "midi_notes"
pooling = "frames"
max_frames = 100
"#,
        data = dir.join("data").display(),
        r = repo.display(),
    )
}

#[test]
fn librosa_and_symbolic_sets_run_on_percepiano_and_midi_sets_key_on_the_midi_file() {
    use arrow_array::{Array, FixedSizeListArray, Int32Array, ListArray};
    let dir = tempfile::tempdir().unwrap();
    let (r, notes) = pipeline::run(dir.path(), &percepiano_toml(dir.path(), 1.0));
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(computed(&r, "features"), 6);
    let out = dir.path().join("data/out/features");
    let table = |set: &str| pipe::table::read_single(&out.join(format!("{set}.parquet"))).unwrap();
    for (set, dim) in [("l49", "49"), ("stats", "39"), ("notes", "7")] {
        let b = table(set);
        assert_eq!(b.num_rows(), 2, "{set}");
        assert_eq!(b.schema().metadata()["pipe.dim"], dim, "{set}");
    }
    // The MIDI statistics agree with the manifest's note counts (computed with mido).
    let stats = features_of(dir.path(), "stats");
    let manifest = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/percepiano/manifest.csv"),
    )
    .unwrap();
    let ids = pipe::table::column::<arrow_array::StringArray>(&table("stats"), "clip_id")
        .unwrap()
        .clone();
    let n_notes: Vec<f32> = (0..2)
        .map(|i| {
            let line = manifest
                .lines()
                .find(|l| l.starts_with(&format!("{},", ids.value(i))))
                .unwrap();
            line.split(',').nth(15).unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(stats[0], n_notes[0]);
    // One row of 7 per note, the first 100.
    let b = table("notes");
    let n_frames = pipe::table::column::<Int32Array>(&b, "n_frames").unwrap();
    let frames = pipe::table::column::<ListArray>(&b, "frames").unwrap();
    for (i, &n) in n_notes.iter().enumerate() {
        assert_eq!(n_frames.value(i), (n as i32).min(100));
        let seq = frames.value(i);
        let seq = seq.as_any().downcast_ref::<FixedSizeListArray>().unwrap();
        assert_eq!(
            (seq.len() as i32, seq.value_length()),
            (n_frames.value(i), 7)
        );
    }
    let l49 = features_of(dir.path(), "l49");
    assert!(l49.iter().all(|x| x.is_finite()));

    // New audio (another render gain): the librosa set recomputes, the MIDI sets do not.
    let (r, _) = pipeline::run(dir.path(), &percepiano_toml(dir.path(), 0.5));
    assert_eq!(computed(&r, "features"), 2, "l49 only");
    assert_eq!(r.stage("features").unwrap().fresh, 4);
    let quieter = features_of(dir.path(), "l49");
    // RMS halves (the 16-bit render's quantisation noise aside, which is also
    // why the spectral shape of the quiet tails moves a little).
    for i in [0, 2] {
        let ratio = quieter[i] / l49[i];
        assert!((ratio - 0.5).abs() < 1e-3, "component {i}: ratio {ratio}");
    }
}
