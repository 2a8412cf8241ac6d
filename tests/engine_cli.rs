//! The engine as a user drives it through the binary: status for people and
//! scripts, verify and repair, --force that propagates, progress without a
//! terminal, the graph as DOT/Mermaid, pipe encode's defaults and a quiet
//! GPU probe, and a store from before content hashes.

use crate::common::bin;
use arrow_array::Float64Array;
use bin::{ok, pipe, text};
use pipe::audio::{Pcm, wav};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Six half-second tones in three pieces, a raw-stats feature set, one
/// linear experiment; returns the config path.
fn setup(dir: &Path, description: &str) -> PathBuf {
    let audio = dir.join("audio");
    std::fs::create_dir_all(&audio).unwrap();
    let dims = pipe::dims::DIMENSIONS.join(",");
    let mut csv = format!("clip_id,piece,{dims}\n");
    for i in 0..6 {
        let amp = 0.1 + 0.1 * i as f32;
        let samples = (0..12_000)
            .map(|n| amp * (n as f32 * 0.07 * (1.0 + i as f32 * 0.1)).sin())
            .collect();
        wav::write_f32(
            &audio.join(format!("c{i}.wav")),
            &Pcm {
                sample_rate: 24_000,
                samples,
            },
        )
        .unwrap();
        let labels: Vec<String> = (0..19)
            .map(|d| format!("{:.3}", 0.2 + 0.5 * amp + 0.01 * d as f32))
            .collect();
        csv.push_str(&format!("c{i},p{},{}\n", i % 3, labels.join(",")));
    }
    std::fs::write(dir.join("labels.csv"), csv).unwrap();
    write_config(dir, description)
}

fn write_config(dir: &Path, description: &str) -> PathBuf {
    let cfg = dir.join("pipeline.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[dataset]
kind = "audio_folder"
audio_dir = "audio"
labels = "labels.csv"
[dataset.folds]
k = 3
[features.raw]
encoder = "raw_stats"
[evaluation]
resamples = 20
label_only = []   # the label-only baselines: tests/experiments_stage.rs
[experiments.A1]
features = "raw"
description = "{description}"
head = {{ arch = "linear", max_epochs = 5 }}
"#
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn status_is_short_for_people_and_exact_for_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), "first words");
    ok(pipe(&cfg, &["run"]));
    let o = pipe(&cfg, &["status", "--exit-code"]);
    assert!(o.status.success(), "all fresh: {}", text(&o));
    assert!(text(&o).contains("data/out: current"), "{}", text(&o));

    write_config(
        dir.path(),
        &"a much longer description of the same experiment ".repeat(8),
    );
    let o = pipe(&cfg, &["status"]);
    let t = text(&o);
    assert!(t.len() < 2_000, "{} bytes:\n{t}", t.len());
    assert!(
        t.contains("param experiments[0].description: \"first words\" -> \"a much"),
        "{t}"
    );
    assert!(t.contains("…"), "long values are cut: {t}");
    assert!(!pipe(&cfg, &["status", "--exit-code"]).status.success());
    let o = pipe(&cfg, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["up_to_date"], false);
    let results = v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "results")
        .unwrap();
    assert_eq!(results["stale"], 6);
    assert_eq!(results["items"].as_array().unwrap().len(), 6);
    let train = v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "train")
        .unwrap();
    assert_eq!(train["stale"], 0, "a description retrains nothing");
    let all = text(&pipe(&cfg, &["status", "--all"]));
    assert!(
        all.contains("summary: param experiments[0].description"),
        "{all}"
    );

    // `pipe run` says why before it runs, one line per reason, counted.
    let t = ok(pipe(&cfg, &["run"]));
    assert!(t.contains("results: 6 of 6 to run"), "{t}");
    assert!(t.contains("[6 tables, e.g. "), "{t}");
    assert!(pipe(&cfg, &["status", "--exit-code"]).status.success());
}

fn summary_seconds(dir: &Path) -> f64 {
    let b = pipe::table::read_single(&dir.join("data/out/results/summary.parquet")).unwrap();
    pipe::table::column::<Float64Array>(&b, "train_seconds")
        .unwrap()
        .value(0)
}

#[test]
fn force_propagates_and_verify_finds_and_repairs_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), "d");
    ok(pipe(&cfg, &["run"]));
    let before = summary_seconds(dir.path());
    // A forced training writes a new time: evaluation and the tables follow.
    let t = ok(pipe(&cfg, &["run", "--force", "train"]));
    assert!(t.contains("evaluate: 1 computed"), "{t}");
    assert_ne!(summary_seconds(dir.path()), before, "{t}");

    // One feature vector overwritten with zeros (same length) stays "fresh"...
    let vectors = dir.path().join("data/store/features");
    let victim = std::fs::read_dir(&vectors)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let len = std::fs::metadata(&victim).unwrap().len() as usize;
    std::fs::write(&victim, vec![0u8; len]).unwrap();
    assert!(ok(pipe(&cfg, &["run"])).contains("up to date"));
    // ...until verify rehashes it.
    let o = pipe(&cfg, &["verify"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("1 corrupt") && t.contains("corrupt: features"),
        "{t}"
    );
    assert!(
        !pipe(&cfg, &["status", "--verify", "--exit-code"])
            .status
            .success()
    );
    // A published file edited in place is noticed too.
    let manifest = dir.path().join("data/out/manifest.parquet");
    let mut bytes = std::fs::read(&manifest).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&manifest, bytes).unwrap();
    let t = ok(pipe(&cfg, &["verify", "--repair"]));
    assert!(t.contains("features: 1 computed"), "{t}");
    // The vector comes back byte for byte: nothing below it reruns.
    assert!(
        t.contains("feature_tables: 0 computed, 0 fresh, 1 cut off"),
        "{t}"
    );
    let t = ok(pipe(&cfg, &["verify"]));
    assert!(t.contains("0 corrupt, 0 missing, 0 edited"), "{t}");
}

#[test]
fn without_a_terminal_a_run_prints_progress_lines_in_each_stages_unit() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), "d");
    let o = Command::new(env!("CARGO_BIN_EXE_pipe"))
        .arg("-c")
        .arg(&cfg)
        .arg("run")
        .env("PIPE_PROGRESS_SECS", "0.005")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("pipe: ")).collect();
    assert!(!lines.is_empty(), "{err}");
    for l in &lines {
        let unit = l.split_whitespace().nth(3).unwrap();
        assert!(
            [
                "clips",
                "vectors",
                "tables",
                "experiments",
                "models",
                "plots",
                "reports"
            ]
            .contains(&unit),
            "{l}"
        );
        assert!(l.contains("%)"), "{l}");
    }
}

#[test]
fn dag_prints_dot_and_mermaid() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), "d");
    let dot = ok(pipe(&cfg, &["dag", "--dot"]));
    assert!(dot.starts_with("digraph pipe {"), "{dot}");
    assert!(dot.contains("\"decode\" -> \"resample\";"), "{dot}");
    assert!(dot.contains("\"feature_tables\" -> \"train\";"), "{dot}");
    let mermaid = ok(pipe(&cfg, &["dag", "--mermaid"]));
    assert!(mermaid.starts_with("flowchart LR"), "{mermaid}");
    assert!(mermaid.contains("  manifest --> train"), "{mermaid}");
}

#[test]
fn encode_defaults_to_auto_says_its_weights_are_random_and_probes_the_gpu_quietly() {
    use pipe::encoder::checkpoint::WeightStore;
    let dir = tempfile::tempdir().unwrap();
    let wav_path = dir.path().join("clip.wav");
    let samples = (0..12_000).map(|n| (n as f32 * 0.05).sin() * 0.3).collect();
    wav::write_f32(
        &wav_path,
        &Pcm {
            sample_rate: 24_000,
            samples,
        },
    )
    .unwrap();
    let out = dir.path().join("hs.safetensors");
    // No desktop session: Mesa's device-select layer had libwayland print an
    // error while `auto` probed for a GPU (where Mesa's Vulkan is installed).
    let o = Command::new(env!("CARGO_BIN_EXE_pipe"))
        .args(["encode", "--random", "control", "--seed", "3", "--input"])
        .arg(&wav_path)
        .arg("-o")
        .arg(&out)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("NODEVICE_SELECT")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(!t.contains("XDG_RUNTIME_DIR"), "a stray error line: {t}");
    assert!(!t.contains("error"), "{t}");
    // `auto` as in the pipeline: never a software rasteriser (lavapipe).
    assert!(!t.contains("llvmpipe"), "{t}");
    let bytes = std::fs::read(&out).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert!(meta["weights"].starts_with("RANDOM"), "{meta:?}");
    assert_eq!(meta["random_seed"], "3");
    assert!(
        WeightStore::open(&out)
            .unwrap()
            .shape("hidden_states.0")
            .is_some()
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// `tests/fixtures/v1_store` is a tiny pipeline and the data folder that
/// pipe 84a1424 (before content hashes: `data/pipe.lock` format 1,
/// `<key>.<ext>` artifacts, a plain `data/out` folder) left after `pipe run`
/// (its plots deleted to keep the fixture small).
#[test]
fn a_store_written_by_pipe_before_content_hashes_is_adopted_not_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("tests/fixtures/v1_store"), dir.path());
    let cfg = dir.path().join("pipeline.toml");
    let t = ok(pipe(&cfg, &["status"]));
    assert!(t.contains("decode: fresh (6 clips)"), "{t}");
    assert!(t.contains("features: fresh (6 vectors)"), "{t}");
    assert!(
        t.contains("written by pipe before publications were recorded"),
        "{t}"
    );
    let t = ok(pipe(&cfg, &["run"]));
    assert!(
        t.contains("18 artifact(s) adopted by their content"),
        "decode, resample and features: {t}"
    );
    for stage in ["decode: 6 fresh", "resample: 6 fresh", "features: 6 fresh"] {
        assert!(t.contains(stage), "{stage}: {t}");
    }
    // The stages whose bytes changed in this version run again, and what
    // reads them (train: A1 and the five label-only baselines pipe 84a1424
    // did not have).
    for stage in [
        "manifest: 1 computed",
        "feature_tables: 1 computed",
        "train: 6 computed",
    ] {
        assert!(t.contains(stage), "{stage}: {t}");
    }
    let out = dir.path().join("data/out");
    assert!(
        std::fs::symlink_metadata(&out)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("| clips |"),
        "the new report replaced the old one"
    );
    assert!(ok(pipe(&cfg, &["run"])).contains("up to date"));
    // Nothing the adopted nodes need is cleaned while the old record exists.
    let t = ok(pipe(&cfg, &["clean", "--dry-run"]));
    assert!(
        t.contains("pipe.lock (the record of pipe before content hashes"),
        "{t}"
    );
}
