//! The engine's guarantees on a real (small) pipeline: early cutoff through
//! the audio stages, names and descriptions out of keys, bad clips that
//! never block the good ones' tables, and folds that do not move.

use arrow_array::{Int32Array, StringArray};
use pipe::audio::{Pcm, wav};
use pipe::dag::RunOptions;
use pipe::table;
use std::path::Path;

use crate::common::pipeline;
use crate::common::tones;
use pipeline::{computed, cut_off};

const N: usize = 16;

/// 16 half-second tones in 8 pieces (labels follow loudness), plus the
/// given bad files (names and bytes) in the labels table.
fn setup(bad: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = tones::tone_clips(dir.path(), N, |_| 12_000);
    let audio = dir.path().join("audio");
    for (k, (name, bytes)) in bad.iter().enumerate() {
        std::fs::write(audio.join(format!("{name}.wav")), bytes).unwrap();
        let labels = vec!["0.5"; 19].join(",");
        csv.push_str(&format!("{name},p{},{labels}\n", k % 8));
    }
    std::fs::write(dir.path().join("labels.csv"), csv).unwrap();
    dir
}

fn config(set: &str, set_description: &str, exp_description: &str, min_seconds: &str) -> String {
    format!(
        r#"
[dataset]
kind = "audio_folder"
audio_dir = "audio"
labels = "labels.csv"
[dataset.folds]
k = 2
[decode]
min_seconds = {min_seconds}
[features.{set}]
encoder = "raw_stats"
description = "{set_description}"
[evaluation]
resamples = 50
[experiments.A1]
features = "{set}"
description = "{exp_description}"
head = {{ arch = "linear", max_epochs = 10 }}
"#
    )
}

fn base() -> String {
    config("raw", "raw statistics", "linear on raw stats", "0.025")
}

fn meta(path: &Path, key: &str) -> Option<String> {
    let b = table::read_single(path).unwrap();
    b.schema().metadata().get(key).cloned()
}

#[test]
fn renames_and_descriptions_recompute_nothing_and_same_bytes_cut_off() {
    let dir = setup(&[]);
    let (r, _) = pipeline::run(dir.path(), &base());
    assert_eq!(computed(&r, "features"), N);
    let out = dir.path().join("data/out");

    // Renaming the feature set: every vector, the table and the training are
    // found under their keys; only the publications re-render.
    let renamed = config(
        "raw_renamed",
        "raw statistics",
        "linear on raw stats",
        "0.025",
    );
    let (r, _) = pipeline::run(dir.path(), &renamed);
    for stage in [
        "decode",
        "resample",
        "features",
        "feature_tables",
        "train",
        "evaluate",
    ] {
        assert_eq!(computed(&r, stage), 0, "{stage} recomputed on a rename");
    }
    let table = out.join("features/raw_renamed.parquet");
    assert_eq!(
        meta(&table, "pipe.feature_set").as_deref(),
        Some("raw_renamed")
    );
    assert!(
        !out.join("features/raw.parquet").exists(),
        "the old name left data/out"
    );

    // A feature set's description: nothing at all is computed; the
    // published table carries the new one.
    let described = config("raw_renamed", "new words", "linear on raw stats", "0.025");
    let (r, _) = pipeline::run(dir.path(), &described);
    assert_eq!(r.computed(), 0, "{:?}", r.stages);
    assert_eq!(
        meta(&table, "pipe.description").as_deref(),
        Some("new words")
    );
    // The store's table has no description in it (it is what training is keyed by).
    let plan = r.plan.unwrap();
    let artifact = &plan.stage("feature_tables").unwrap().nodes[0].node.path;
    assert_eq!(meta(artifact, "pipe.description"), None);

    // An experiment's description re-renders the result tables and the report only.
    let exp = config("raw_renamed", "new words", "other words", "0.025");
    let (r, _) = pipeline::run(dir.path(), &exp);
    for stage in ["features", "feature_tables", "train", "evaluate"] {
        assert_eq!(computed(&r, stage), 0, "{stage}");
    }
    assert!(computed(&r, "results") > 0 && computed(&r, "report") == 1);

    // A decode param that changes no clip: decode re-runs, writes the same
    // bytes, and everything below is cut off; only the model bundle, which
    // records the decode settings `pipe predict` applies, is written anew.
    let decode = config("raw_renamed", "new words", "other words", "0.03");
    let (r, _) = pipeline::run(dir.path(), &decode);
    assert_eq!(computed(&r, "decode"), N);
    assert_eq!(cut_off(&r, "resample"), N);
    assert_eq!(computed(&r, "models"), 1);
    assert_eq!(r.computed(), N + 1, "only decode ran: {:?}", r.stages);
}

#[test]
fn bad_clips_are_listed_and_the_good_ones_reach_every_table() {
    let bad: &[(&str, &[u8])] = &[("broken", b""), ("words", b"this is not audio at all")];
    let dir = setup(bad);
    let (r, _) = pipeline::try_run(dir.path(), &base());
    assert_eq!(r.failed(), 2, "{:?}", r.stages);
    let out = dir.path().join("data/out");
    let manifest = table::read_single(&out.join("manifest.parquet")).unwrap();
    assert_eq!(manifest.num_rows(), N, "the good clips reach the manifest");
    let features = table::read_single(&out.join("features/raw.parquet")).unwrap();
    assert_eq!(features.num_rows(), N);
    let summary = table::read_single(&out.join("results/summary.parquet")).unwrap();
    assert_eq!(
        table::column::<StringArray>(&summary, "status")
            .unwrap()
            .value(0),
        "ran"
    );
    assert_eq!(
        table::column::<Int32Array>(&summary, "n_clips")
            .unwrap()
            .value(0),
        N as i32,
        "the numbers rest on the good clips"
    );
    // Published result tables say where they come from.
    let meta = summary.schema().metadata().clone();
    let toml = base();
    assert_eq!(
        meta["pipe.config_hash"],
        pipe::config::canonical_hash(&toml).unwrap()
    );
    assert!(
        meta["pipe.heads"].contains("\"A1\":{")
            && meta["pipe.heads"].contains("\"arch\":\"linear\""),
        "{meta:?}"
    );
    assert_eq!(meta["pipe.version"], env!("CARGO_PKG_VERSION"));
    let failed = table::read_single(&out.join("results/failed.parquet")).unwrap();
    assert_eq!(failed.num_rows(), 2);
    let ids = table::column::<StringArray>(&failed, "clip_id").unwrap();
    let stage = table::column::<StringArray>(&failed, "stage").unwrap();
    let file = table::column::<StringArray>(&failed, "file").unwrap();
    assert_eq!((ids.value(0), stage.value(0)), ("broken", "decode"));
    assert!(file.value(1).ends_with("words.wav"), "{}", file.value(1));
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("## Failed clips"), "{report}");
    assert!(
        report.contains("| words |") && report.contains("broken.wav"),
        "{report}"
    );
    assert!(
        report.contains(&format!("{N} clips (2 more failed before training")),
        "{report}"
    );

    // Folds come from the labels: the good clips' folds are the same when the
    // bad clips are fixed.
    let folds = |b: &arrow_array::RecordBatch| -> Vec<(String, i32)> {
        let ids = table::column::<StringArray>(b, "clip_id").unwrap();
        let f = table::column::<Int32Array>(b, "fold").unwrap();
        (0..b.num_rows())
            .map(|i| (ids.value(i).to_string(), f.value(i)))
            .filter(|(id, _)| id.starts_with('c'))
            .collect()
    };
    let with_bad = folds(&manifest);
    for (k, (name, _)) in bad.iter().enumerate() {
        let samples = (0..12_000)
            .map(|n| 0.2 * (n as f32 * 0.01 * (k + 2) as f32).sin())
            .collect();
        wav::write_f32(
            &dir.path().join(format!("audio/{name}.wav")),
            &Pcm {
                sample_rate: 24_000,
                samples,
            },
        )
        .unwrap();
    }
    let (r, _) = pipeline::run(dir.path(), &base());
    assert_eq!(
        computed(&r, "decode"),
        2,
        "only the fixed clips are decoded"
    );
    let fixed = table::read_single(&out.join("manifest.parquet")).unwrap();
    assert_eq!(fixed.num_rows(), N + 2);
    assert_eq!(folds(&fixed), with_bad);
    let failed = table::read_single(&out.join("results/failed.parquet")).unwrap();
    assert_eq!(failed.num_rows(), 0);
}

#[test]
fn strict_builds_no_table_without_every_clip() {
    let dir = setup(&[("broken", b"")]);
    let opts = RunOptions {
        strict: true,
        ..Default::default()
    };
    let (r, _) = pipeline::try_run_with(dir.path(), &base(), &opts);
    assert!(r.stopped);
    assert_eq!(computed(&r, "manifest"), 0);
    assert!(!dir.path().join("data/out/manifest.parquet").exists());
    assert!(!dir.path().join("data/out/results/summary.parquet").exists());
}
