//! What a user sees on bad input, through the real binary: each case is one
//! of issue 16's findings, and each test fails on the code before its fix.

use crate::common::folder;

use crate::common::bin;
use bin::{pipe, text};
use folder::{audio_folder, pipeline, repo};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Nothing ran: no artifact store was even created.
fn nothing_ran(dir: &Path) -> bool {
    !dir.join("data/store").exists()
}

/// How often `needle` appears in `hay`.
fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

/// A copy of a spec model folder with `edit` applied to its tensors
/// (name -> values), written as f32 safetensors.
fn edited_model(dir: &Path, src: &str, edit: impl Fn(&str, &mut Vec<f32>)) -> PathBuf {
    use pipe::encoder::checkpoint::WeightStore;
    use safetensors::tensor::TensorView;
    let src = repo().join("tests/fixtures/spec").join(src);
    let store = WeightStore::open(&src.join("model.safetensors")).unwrap();
    let mut names: Vec<String> = store.names().map(str::to_string).collect();
    names.sort();
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = names
        .iter()
        .map(|n| {
            let shape = store.shape(n).unwrap().to_vec();
            let mut v = store.get(n, &shape).unwrap();
            edit(n, &mut v);
            let bytes = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            (n.clone(), shape, bytes)
        })
        .collect();
    let views = tensors.iter().map(|(n, s, b)| {
        (
            n.clone(),
            TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap(),
        )
    });
    let out = dir.join("model");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("model.safetensors"),
        safetensors::serialize(views, None).unwrap(),
    )
    .unwrap();
    std::fs::copy(src.join("config.json"), out.join("config.json")).unwrap();
    out
}

// ---------------------------------------------------------------- item 3

/// A NaN weight made `pipe encode` exit 0 with all-NaN hidden states.
#[test]
fn encode_refuses_a_nan_weight_and_non_finite_output() {
    let dir = tempfile::tempdir().unwrap();
    let model = edited_model(dir.path(), "mert_tiny_postln", |n, v| {
        if n == "encoder.layers.0.attention.q_proj.weight" {
            v[5] = f32::NAN;
        }
    });
    let out = dir.path().join("hs.safetensors");
    let encode = |model: &Path| {
        Command::new(env!("CARGO_BIN_EXE_pipe"))
            .args(["encode", "--model"])
            .arg(model)
            .arg("--input")
            .arg(repo().join("tests/fixtures/spec/inputs.safetensors"))
            .args(["--input-tensor", "wave_b", "-o"])
            .arg(&out)
            .output()
            .unwrap()
    };
    let o = encode(&model);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("encoder.layers.0.attention.q_proj.weight") && t.contains("NaN"),
        "{t}"
    );
    assert!(!out.exists(), "nothing written");

    // Finite weights whose output overflows: the last LayerNorm's scale at
    // f32::MAX makes hidden_states.2 infinite.
    let dir2 = tempfile::tempdir().unwrap();
    let model = edited_model(dir2.path(), "mert_tiny_postln", |n, v| {
        if n == "encoder.layers.1.final_layer_norm.weight" {
            v.iter_mut().for_each(|x| *x = f32::MAX);
        }
    });
    let o = encode(&model);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("hidden_states.2 is"), "{t}");
    assert!(!out.exists(), "nothing written");
}

/// In a pipeline, the same overflowing encoder fails each clip with the
/// clip, the encoder and the layer named (it used to reach training as
/// "feature 9 of clip 10 is NaN").
#[test]
fn non_finite_encoder_output_is_the_clips_error_naming_encoder_and_layer() {
    let dir = tempfile::tempdir().unwrap();
    audio_folder(dir.path(), 6, 0.5);
    let model = edited_model(dir.path(), "mert_tiny_postln", |n, v| {
        if n == "encoder.layers.1.final_layer_norm.weight" {
            v.iter_mut().for_each(|x| *x = f32::MAX);
        }
    });
    let cfg = pipeline(
        dir.path(),
        &format!(
            "[encoders.tiny]\narch = \"mert\"\nweights = \"{}\"\ndevice = \"cpu\"\n\
             [features.tiny_all]\nencoder = \"tiny\"\nlayers = \"0-2\"\n",
            model.display()
        ),
    );
    let o = pipe(&cfg, &["run", "--until", "features"]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    for clip in ["c0", "c1"] {
        assert!(
            t.lines().any(|l| l.contains(clip)
                && l.contains("encoder `tiny`")
                && l.contains("hidden state 2")),
            "{clip}: {t}"
        );
    }
}

// ---------------------------------------------------------------- item 4

/// `resample.sample_rate = 4000000000` aborted with "memory allocation of
/// 4803292154228 bytes failed" (exit 134).
#[test]
fn a_huge_setting_is_an_error_naming_key_line_and_range_not_an_abort() {
    let dir = tempfile::tempdir().unwrap();
    audio_folder(dir.path(), 2, 0.5);
    let cases = [
        (
            "[resample]\nsample_rate = 4000000000\n",
            "resample.sample_rate = 4000000000",
        ),
        (
            "[encoders.m]\narch = \"mert\"\nrandom = \"control\"\nwindow_frames = 100000000\n",
            "encoders.m.window_frames = 100000000",
        ),
        (
            "[encoders.q]\narch = \"muq\"\nrandom = \"control\"\nwindow_frames = 0\n",
            "encoders.q.window_frames = 0",
        ),
    ];
    for (extra, want) in cases {
        let cfg = pipeline(dir.path(), extra);
        let o = pipe(&cfg, &["run"]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{t}");
        assert!(t.contains(want) && t.contains("allowed range"), "{t}");
        assert!(t.contains("line "), "{t}");
        assert!(nothing_ran(dir.path()), "{t}");
    }
}

// ---------------------------------------------------------------- item 6

/// k = 10 with 6 pieces silently gave 6 folds.
#[test]
fn more_folds_than_pieces_is_an_error_with_the_number_of_pieces() {
    let dir = tempfile::tempdir().unwrap();
    audio_folder(dir.path(), 6, 0.3);
    let cfg = pipeline(dir.path(), "").to_path_buf();
    let text_cfg = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("k = 2", "k = 10");
    std::fs::write(&cfg, text_cfg).unwrap();
    let o = pipe(&cfg, &["run"]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("dataset.folds.k = 10") && t.contains("6 piece(s)"),
        "{t}"
    );
    assert!(nothing_ran(dir.path()), "{t}");
}

// ---------------------------------------------------------------- item 7

/// An out-of-range label was caught only at training, as "label dimension
/// 16 of clip 7 is 1.7"; a constant column only at evaluation.
#[test]
fn bad_labels_are_named_by_clip_and_dimension_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    audio_folder(dir.path(), 6, 0.3);
    let labels = dir.path().join("labels.csv");
    let good = std::fs::read_to_string(&labels).unwrap();
    let cfg = pipeline(dir.path(), "");

    // c4's mood_energy (column 2 + 16) = 1.7 with a sigmoid head.
    let mut lines: Vec<String> = good.lines().map(str::to_string).collect();
    let mut cells: Vec<String> = lines[5].split(',').map(str::to_string).collect();
    cells[2 + 16] = "1.7".into();
    lines[5] = cells.join(",");
    std::fs::write(&labels, lines.join("\n") + "\n").unwrap();
    let o = pipe(&cfg, &["run"]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("clip `c4`") && t.contains("`mood_energy` = 1.7") && t.contains("A3"),
        "{t}"
    );
    assert!(nothing_ran(dir.path()), "{t}");

    // pace constant: every clip 0.5.
    let lines: Vec<String> = good
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                return l.to_string();
            }
            let mut cells: Vec<&str> = l.split(',').collect();
            cells[2 + 11] = "0.5";
            cells.join(",")
        })
        .collect();
    std::fs::write(&labels, lines.join("\n") + "\n").unwrap();
    let o = pipe(&cfg, &["run"]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("dimension `pace` is 0.5") && t.contains("fold 0"),
        "{t}"
    );
    assert!(nothing_ran(dir.path()), "{t}");
}

// ---------------------------------------------------------------- item 8

/// A file-size limit killed the process by SIGXFSZ with no message.
#[test]
fn a_file_size_limit_is_a_write_error_with_the_path() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    audio_folder(dir.path(), 6, 2.0);
    let cfg = pipeline(dir.path(), "");
    // 2 s at 16 kHz decode to 128 KB f32 WAVs: over a 64 KB limit.
    let o = Command::new("bash")
        .arg("-c")
        .arg("ulimit -f 64; exec \"$0\" -c \"$1\" run -j 1")
        .arg(env!("CARGO_BIN_EXE_pipe"))
        .arg(&cfg)
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.signal(), None, "killed by a signal: {t}");
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("File too large"), "{t}");
    assert!(t.contains("data/store/decode/"), "the path is named: {t}");
}

/// A failed run-record write (then `pipe.lock`) left `.tmp-*` files behind for good.
#[test]
fn a_failed_record_write_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    audio_folder(dir.path(), 4, 0.3);
    let cfg = pipeline(dir.path(), "");
    // The record's path is a folder with something in it: the record is
    // written to a temporary file that cannot be renamed into place.
    let stem = pipe::dag::ConfigId::new(&cfg, "").stem();
    let record = dir.path().join(format!("data/runs/{stem}.json"));
    std::fs::create_dir_all(record.join("x")).unwrap();
    let o = pipe(&cfg, &["run", "--until", "manifest"]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains(&format!("{stem}.json")),
        "the record is named: {t}"
    );
    let tmp: Vec<String> = std::fs::read_dir(dir.path().join("data/runs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert!(tmp.is_empty(), "left behind: {tmp:?}");
}

// ---------------------------------------------------------------- item 9

/// A bad encoder was reported once per clip (19 times); now once, before
/// any clip is decoded.
#[test]
fn a_bad_encoder_is_one_error_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    audio_folder(dir.path(), 4, 0.3);
    // Wrong weights: a MERT config with MuQ's tensors.
    let wrong = dir.path().join("wrong");
    std::fs::create_dir_all(&wrong).unwrap();
    let spec = repo().join("tests/fixtures/spec");
    std::fs::copy(
        spec.join("mert_tiny_postln/config.json"),
        wrong.join("config.json"),
    )
    .unwrap();
    std::fs::copy(
        spec.join("muq_tiny/model.safetensors"),
        wrong.join("model.safetensors"),
    )
    .unwrap();
    let cases = [
        (
            "[encoders.c]\narch = \"mert\"\nrandom = \"control\"\n[features.bad]\nencoder = \"c\"\nlayers = \"7-13\"\n"
                .to_string(),
            vec!["features.bad.layers", "7-13", "13 hidden states"],
        ),
        (
            format!(
                "[encoders.w]\narch = \"mert\"\nweights = \"{}\"\n[features.bad]\nencoder = \"w\"\n",
                wrong.display()
            ),
            vec!["encoders.w", "missing tensor", "model.safetensors"],
        ),
    ];
    for (extra, wants) in cases {
        let cfg = pipeline(dir.path(), &extra);
        let o = pipe(&cfg, &["run"]);
        let t = text(&o);
        assert!(!o.status.success(), "{t}");
        for w in &wants {
            assert!(t.contains(w), "{w}: {t}");
        }
        assert_eq!(count(&t, "error"), 1, "one error: {t}");
        assert!(nothing_ran(dir.path()), "{t}");
    }
}

// ---------------------------------------------------------------- item 10

/// A weights folder with one of its two files did not say which.
#[test]
fn a_half_weights_folder_says_which_file_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    audio_folder(dir.path(), 4, 0.3);
    let half = dir.path().join("half");
    std::fs::create_dir_all(&half).unwrap();
    std::fs::copy(
        repo().join("tests/fixtures/spec/mert_tiny_postln/config.json"),
        half.join("config.json"),
    )
    .unwrap();
    let cfg = pipeline(
        dir.path(),
        &format!(
            "[encoders.h]\narch = \"mert\"\nweights = \"{}\"\n[features.hf]\nencoder = \"h\"\n",
            half.display()
        ),
    );
    let o = pipe(&cfg, &["status"]);
    let t = text(&o);
    assert!(
        t.contains("has no model.safetensors") && !t.contains("no config.json"),
        "{t}"
    );
}

/// "plots scatter: File too large" named no path.
#[test]
fn a_plot_write_error_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    audio_folder(dir.path(), 6, 0.3);
    let cfg = pipeline(dir.path(), "");
    let o = pipe(&cfg, &["run"]);
    assert!(o.status.success(), "{}", text(&o));
    // A limit above every other file the run writes (its record) and below
    // the plots (tens of KB).
    let largest = |dir: &str| {
        std::fs::read_dir(cfg.parent().unwrap().join(dir))
            .unwrap()
            .flatten()
            .map(|e| e.metadata().unwrap().len())
            .collect::<Vec<_>>()
    };
    let record = largest("data/runs").into_iter().max().unwrap();
    let plot = largest("data/store/plots").into_iter().min().unwrap();
    let limit_kb = record / 1024 + 2;
    assert!(limit_kb * 1024 < plot, "record {record} B, plot {plot} B");
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -f {limit_kb}; exec \"$0\" -c \"$1\" run --force plots"
        ))
        .arg(env!("CARGO_BIN_EXE_pipe"))
        .arg(&cfg)
        .output()
        .unwrap();
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.lines()
            .any(|l| l.contains("File too large") && l.contains("data/store/plots/")),
        "{t}"
    );
}
