//! train → evaluate → results/plots/report through the DAG on a small
//! audio-folder dataset with weight-free features: the public tables have
//! their documented shapes, a head change retrains one experiment and
//! nothing upstream, and two runs write byte-identical predictions.

use arrow_array::{Array, BooleanArray, Float64Array, Int32Array, StringArray};
use pipe::dag::RunReport;
use pipe::table;
use std::path::Path;

use crate::common::bin;
use crate::common::pipeline;
use crate::common::tones;
use pipeline::computed;

const N_CLIPS: usize = 24;

/// 24 half-second tones in 8 pieces; loudness and pitch vary by clip and the
/// labels follow them, so raw statistics carry signal.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let csv = tones::tone_clips(dir.path(), N_CLIPS, |_| 12_000);
    std::fs::write(dir.path().join("labels.csv"), csv).unwrap();
    dir
}

fn config(lr: &str) -> String {
    format!(
        r#"
[dataset]
kind = "audio_folder"
audio_dir = "audio"
labels = "labels.csv"
[dataset.folds]
k = 4
[encoders.absent]
arch = "mert"
weights = "no/such/folder"
[features.raw]
encoder = "raw_stats"
[features.real]
encoder = "absent"
[evaluation]
resamples = 200
label_only = []   # with them, on three splits: splits_and_label_only_baselines_run_end_to_end
[experiments.A3]
features = "raw"
description = "raw stats MLP"
head = {{ max_epochs = 20, lr = {lr} }}
[experiments.A1]
features = "raw"
description = "raw stats linear"
head = {{ arch = "linear", max_epochs = 20 }}
[experiments.B0]
features = "real"
description = "needs weights"
"#
    )
}

fn run(dir: &Path, lr: &str) -> RunReport {
    pipeline::run(dir, &config(lr)).0
}

fn results(dir: &Path, name: &str) -> arrow_array::RecordBatch {
    table::read_single(&dir.join(format!("data/out/results/{name}.parquet"))).unwrap()
}

#[test]
fn tables_report_and_plots_have_their_documented_shape() {
    let dir = setup();
    run(dir.path(), "1e-3");
    let out = dir.path().join("data/out");

    let s = results(dir.path(), "summary");
    let exp = table::column::<StringArray>(&s, "experiment").unwrap();
    let status = table::column::<StringArray>(&s, "status").unwrap();
    let r2 = table::column::<Float64Array>(&s, "r2").unwrap();
    let rank = table::column::<Int32Array>(&s, "rank").unwrap();
    assert_eq!(s.num_rows(), 3);
    // Ran experiments first, ranked by R²; then the one that could not run.
    assert!(r2.value(0) >= r2.value(1));
    assert_eq!((rank.value(0), rank.value(1)), (1, 2));
    assert_eq!((exp.value(2), status.value(2)), ("B0", "not run"));
    assert!(r2.is_null(2) && rank.is_null(2));
    let note = table::column::<StringArray>(&s, "note").unwrap().value(2);
    assert!(note.contains("no/such/folder"), "{note}");
    assert!(
        !table::column::<BooleanArray>(&s, "control")
            .unwrap()
            .value(0)
    );
    for c in [
        "r2_ci_low",
        "r2_ci_high",
        "mae",
        "pearson",
        "dispersion",
        "train_seconds",
    ] {
        assert!(
            !table::column::<Float64Array>(&s, c).unwrap().is_null(0),
            "{c}"
        );
    }

    assert_eq!(results(dir.path(), "per_fold").num_rows(), 2 * 4);
    assert_eq!(results(dir.path(), "per_dimension").num_rows(), 2 * 19);
    assert_eq!(results(dir.path(), "per_category").num_rows(), 2 * 7);
    let p = results(dir.path(), "predictions");
    assert_eq!(p.num_rows(), 2 * N_CLIPS * 19);
    let names: Vec<_> = p
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "experiment",
            "split",
            "clip_id",
            "fold",
            "dimension",
            "y_true",
            "y_pred"
        ]
    );

    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for want in [
        "## Ranked summary",
        "| 1 | ",
        "Not run:",
        "- B0: encoder `absent`: no config.json",
        "quoted, not computed",
        "0.347",
        "plots/scatter.png",
    ] {
        assert!(md.contains(want), "report.md lacks {want:?}:\n{md}");
    }
    let bars = std::fs::read(out.join("plots/r2_by_dimension.png")).unwrap();
    let scatter = std::fs::read(out.join("plots/scatter.png")).unwrap();
    for png in [&bars, &scatter] {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
    assert_ne!(bars, scatter, "each plot is its own artifact");
}

/// The tones with a performer each (6 performers, crossing the 8 pieces),
/// one MLP and the label-only baselines on all three splits.
#[test]
fn splits_and_label_only_baselines_run_end_to_end() {
    let dir = setup();
    let labels = dir.path().join("labels.csv");
    let csv = std::fs::read_to_string(&labels).unwrap();
    let with_performers: String = csv
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let (id, rest) = line.split_once(',').unwrap();
            let who = if i == 0 {
                "performer".to_string()
            } else {
                format!("player{}", (i - 1) % 6)
            };
            format!("{id},{who},{rest}\n")
        })
        .collect();
    std::fs::write(&labels, with_performers).unwrap();
    let text = config("1e-3").replace(
        "label_only = []",
        "splits = [\"piece\", \"performer\", \"piece_performer\"]",
    );
    let only_a3 = &text[..text.find("[experiments.A1]").unwrap()];
    let (r, _) = pipeline::run(dir.path(), only_a3);
    // A3 and 5 label-only baselines on 3 splits.
    assert_eq!(computed(&r, "train"), 18);
    assert_eq!(
        computed(&r, "models"),
        1,
        "one bundle: A3 on its first split"
    );
    let s = results(dir.path(), "summary");
    let col = |name: &str| table::column::<StringArray>(&s, name).unwrap();
    let (exp, split, unit) = (col("experiment"), col("split"), col("ci_unit"));
    let rank = table::column::<Int32Array>(&s, "rank").unwrap();
    let label_only = table::column::<BooleanArray>(&s, "label_only").unwrap();
    assert_eq!(s.num_rows(), 18);
    for (k, (name, cluster)) in [
        ("piece", "piece"),
        ("performer", "performer"),
        ("piece_performer", "piece x performer"),
    ]
    .into_iter()
    .enumerate()
    {
        let rows: Vec<usize> = (0..18).filter(|&i| split.value(i) == name).collect();
        assert_eq!(
            rows,
            (6 * k..6 * k + 6).collect::<Vec<_>>(),
            "{name}: one block"
        );
        // Ranked within the split; A3 the only head, the rest label-only.
        let ranks: Vec<i32> = rows.iter().map(|&i| rank.value(i)).collect();
        assert_eq!(ranks, [1, 2, 3, 4, 5, 6], "{name}");
        for &i in &rows {
            assert_eq!(unit.value(i), cluster, "{name}");
            assert_eq!(label_only.value(i), exp.value(i) != "A3", "{name}");
        }
    }
    // No test clip meets its performer in training: the same performer's
    // mean is then the training mean.
    let r2 = table::column::<Float64Array>(&s, "r2").unwrap();
    let r2_of = |e: &str, sp: &str| {
        let i = (0..18)
            .find(|&i| exp.value(i) == e && split.value(i) == sp)
            .unwrap();
        r2.value(i)
    };
    for sp in ["performer", "piece_performer"] {
        assert_eq!(
            r2_of("labels-performer_mean", sp),
            r2_of("labels-global_mean", sp),
            "{sp}"
        );
    }
    assert_eq!(
        r2_of("labels-segment_mean", "piece"),
        r2_of("labels-global_mean", "piece")
    );
    assert_eq!(results(dir.path(), "per_fold").num_rows(), 18 * 4);
    let md = std::fs::read_to_string(dir.path().join("data/out/report.md")).unwrap();
    for want in [
        "## What a model gets without listening",
        "## Ranked summary\n",
        "## Ranked summary: `performer` split",
        "## Ranked summary: `piece_performer` split",
        "the pigeonhole bootstrap",
        "**[label-only]**",
    ] {
        assert!(md.contains(want), "report.md lacks {want:?}");
    }
}

#[test]
fn a_head_change_retrains_one_experiment_and_runs_are_deterministic() {
    let dir = setup();
    run(dir.path(), "1e-3");
    let first = std::fs::read(dir.path().join("data/out/results/predictions.parquet")).unwrap();

    let r = run(dir.path(), "3e-3");
    assert_eq!(computed(&r, "train"), 1, "only A3's head changed");
    assert_eq!(computed(&r, "evaluate"), 1);
    for upstream in [
        "decode",
        "resample",
        "features",
        "feature_tables",
        "manifest",
    ] {
        assert_eq!(computed(&r, upstream), 0, "{upstream} must stay fresh");
    }

    // The same config in a fresh folder: identical bytes.
    let again = setup();
    run(again.path(), "1e-3");
    let second = std::fs::read(again.path().join("data/out/results/predictions.parquet")).unwrap();
    assert_eq!(
        first, second,
        "predictions.parquet differs between two identical runs"
    );
}

#[test]
fn with_every_experiment_skipped_the_tables_and_report_still_say_why() {
    let dir = setup();
    let text = config("1e-3");
    let only_b0 = &text[..text.find("[experiments.A3]").unwrap()];
    let (r, notes) = pipeline::run(
        dir.path(),
        &format!(
            "{only_b0}[experiments.B0]\nfeatures = \"real\"\ndescription = \"needs weights\"\n"
        ),
    );
    assert!(r.stage("train").is_none() && r.stage("plots").is_none());
    assert!(
        notes
            .iter()
            .any(|n| n.contains("1 experiment(s) not run") && n.contains("B0"))
    );
    let s = results(dir.path(), "summary");
    assert_eq!(s.num_rows(), 1);
    assert_eq!(
        table::column::<StringArray>(&s, "status").unwrap().value(0),
        "not run"
    );
    let md = std::fs::read_to_string(dir.path().join("data/out/report.md")).unwrap();
    assert!(
        md.contains("No experiment ran.") && md.contains("- B0: encoder `absent`: no config.json"),
        "{md}"
    );
}

/// A copy of a row under the study's protocol (`validation = "test_fold"`)
/// and one under `"held_out_epoch"` are new train nodes (the protocol is in
/// their keys) that leave the others fresh, and the report pairs them with
/// the original: the inflation, and its split into peeking and the rest;
/// the summary quotes the study's figure by id prefix.
#[test]
fn a_study_protocol_copy_trains_alone_and_the_report_pairs_it() {
    let dir = setup();
    run(dir.path(), "1e-3");
    let copy = |id: &str, validation: &str| {
        format!(
            "[experiments.{id}]\nfeatures = \"raw\"\ndescription = \"A3, {validation}\"\n\
             head = {{ max_epochs = 20, lr = 1e-3 }}\nvalidation = \"{validation}\"\n"
        )
    };
    let text = format!(
        "{}{}{}",
        config("1e-3"),
        copy("A3-studyprotocol", "test_fold"),
        copy("A3-fixedepoch", "held_out_epoch")
    );
    let (r, _) = pipeline::run(dir.path(), &text);
    assert_eq!(computed(&r, "train"), 2, "only the copies train");
    let s = results(dir.path(), "summary");
    let exp = table::column::<StringArray>(&s, "experiment").unwrap();
    let r2 = table::column::<Float64Array>(&s, "r2").unwrap();
    let study = table::column::<Float64Array>(&s, "study_r2").unwrap();
    let row = |id: &str| (0..s.num_rows()).find(|&i| exp.value(i) == id).unwrap();
    let (ours, copy) = (row("A3"), row("A3-studyprotocol"));
    assert_eq!(study.value(ours), -12.6);
    assert_eq!(study.value(copy), -12.6);
    assert_eq!(study.value(row("A1")), 0.175);
    assert!(study.is_null(row("B0")) || study.value(row("B0")) == 0.405);
    let md = std::fs::read_to_string(dir.path().join("data/out/report.md")).unwrap();
    let inflation = r2.value(copy) - r2.value(ours);
    let want = format!(
        "| A3 | A3-studyprotocol | {:.3} | {:.3} | {inflation:+.3} [",
        r2.value(ours),
        r2.value(copy)
    );
    assert!(md.contains("## The study's protocol"), "{md}");
    assert!(md.contains(&want), "{want}\n{md}");
    assert!(md.contains("**[study protocol]**"), "{md}");
    let fixed = row("A3-fixedepoch");
    let want = format!(
        "| A3 | A3-fixedepoch | {:.3} | {:.3} | {:.3} | {:+.3} [",
        r2.value(ours),
        r2.value(fixed),
        r2.value(copy),
        r2.value(copy) - r2.value(fixed)
    );
    assert!(md.contains("### The inflation, decomposed"), "{md}");
    assert!(md.contains(&want), "{want}\n{md}");
    assert!(md.contains("**[fixed epoch]**"), "{md}");
}

/// An `E3-audio*` and an `E3-symbolic*` experiment give the report's
/// per-dimension table and the `audio_vs_symbolic` plot; without them
/// neither exists.
#[test]
fn an_e3_pair_gets_its_table_and_plot() {
    let dir = setup();
    let text = config("1e-3");
    let base = &text[..text.find("[experiments.A3]").unwrap()];
    run(dir.path(), "1e-3");
    assert!(
        !dir.path()
            .join("data/out/plots/audio_vs_symbolic.png")
            .exists()
    );
    pipeline::run(
        dir.path(),
        &format!(
            "{base}[experiments.E3-audio-raw]\nfeatures = \"raw\"\nhead = {{ max_epochs = 20, lr = 1e-3 }}\n\
             [experiments.E3-symbolic-raw]\nfeatures = \"raw\"\nhead = {{ arch = \"linear\", max_epochs = 20 }}\n"
        ),
    );
    let out = dir.path().join("data/out");
    let png = std::fs::read(out.join("plots/audio_vs_symbolic.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## Audio vs symbolic (E3)"), "{md}");
    assert!(md.contains("### E3-audio-raw vs E3-symbolic-raw"), "{md}");
    assert!(md.contains("| timing | "), "{md}");
    assert!(md.contains("(plots/audio_vs_symbolic.png)"), "{md}");
}

/// `pipe query` as a user runs it, on the tables of a finished small run.
fn query(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["query"];
    all.extend(args);
    let out = bin::pipe(&dir.join("pipeline.toml"), &all);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn pipe_query_answers_sql_over_every_published_table() {
    let dir = setup();
    // A second MLP, so that the runner-up is a baseline the best one does
    // not beat on every dimension (the linear A1 is beaten everywhere).
    let text = format!(
        "{}[experiments.A3-lr]\nfeatures = \"raw\"\nhead = {{ max_epochs = 20, lr = 1.1e-3 }}\n",
        config("1e-3")
    );
    std::fs::write(dir.path().join("pipeline.toml"), &text).unwrap();
    // Through the binary, as a user runs it: that also records the history.
    bin::ok(bin::pipe(&dir.path().join("pipeline.toml"), &["run"]));

    // No SQL: the tables, their rows and columns; the vector column is not queryable.
    let (ok, list, err) = query(dir.path(), &[]);
    assert!(ok, "{err}");
    for want in [
        "features_raw (24 rows): clip_id, fold, (features: not queryable)",
        "manifest (24 rows): clip_id, piece,",
        "per_dimension (57 rows): experiment, split, dimension, category, r2,",
        "summary (4 rows): rank, experiment,",
        "predictions (1368 rows)",
        "failed (0 rows): clip_id, file, stage, reason",
        "history (3 rows): run_id, time_utc,",
    ] {
        assert!(list.contains(want), "{want:?} not in\n{list}");
    }

    // The README's example (with the runner-up as the baseline: the best one
    // beats A1 everywhere here): the dimensions where the best experiment
    // beats it, against the same answer computed here.
    let dims = results(dir.path(), "per_dimension");
    let summary = results(dir.path(), "summary");
    let ranked = table::column::<StringArray>(&summary, "experiment").unwrap();
    let (best, baseline) = (ranked.value(0).to_string(), ranked.value(1).to_string());
    let (exp, dim, r2) = (
        table::column::<StringArray>(&dims, "experiment").unwrap(),
        table::column::<StringArray>(&dims, "dimension").unwrap(),
        table::column::<Float64Array>(&dims, "r2").unwrap(),
    );
    let r2_of = |e: &str, d: &str| {
        (0..dims.num_rows())
            .find(|&i| exp.value(i) == e && dim.value(i) == d)
            .map(|i| r2.value(i))
            .unwrap()
    };
    let mut want: Vec<(String, f64)> = pipe::dims::DIMENSIONS
        .iter()
        .filter(|d| r2_of(&best, d) > r2_of(&baseline, d))
        .map(|d| (d.to_string(), r2_of(&best, d) - r2_of(&baseline, d)))
        .collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1));
    assert!(
        !want.is_empty() && want.len() < 19,
        "a test that can tell: {want:?}"
    );
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let sql = readme
        .lines()
        .find(|l| l.starts_with("pipe query \"select b.dimension"))
        .expect("README has the per-dimension example")
        .trim_start_matches("pipe query ")
        .trim_matches('"')
        .replace("'logmel_stats-mlp'", &format!("'{baseline}'"));
    let csv = dir.path().join("beats.csv");
    let (ok, _, err) = query(dir.path(), &[&sql, "--output", csv.to_str().unwrap()]);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("dimension,r2,logmel_r2,gain"));
    let got: Vec<(String, f64)> = lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[3].parse().unwrap())
        })
        .collect();
    assert_eq!(got, want, "full precision in CSV: the gains are bit-equal");

    // Printed: one aligned row per answer and the count.
    let (ok, printed, err) = query(dir.path(), &[&sql]);
    assert!(ok, "{err}");
    assert!(printed.starts_with("dimension"), "{printed}");
    assert!(printed.contains(&format!("\n{}", want[0].0)), "{printed}");
    assert!(
        printed.ends_with(&format!("({} rows)\n", want.len())) || want.len() == 1,
        "{printed}"
    );

    // Parquet output, through arrow-rs: the types polars computed, values intact.
    let pq = dir.path().join("folds.parquet");
    let (ok, _, err) = query(
        dir.path(),
        &[
            "select fold, count(*) as clips, avg(duration_s) as seconds from manifest group by fold order by fold",
            "-o",
            pq.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    let b = table::read_single(&pq).unwrap();
    assert_eq!(b.num_rows(), 4);
    let folds = table::column::<Int32Array>(&b, "fold").unwrap();
    assert_eq!(
        (0..4).map(|i| folds.value(i)).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    let per_fold = results(dir.path(), "per_fold");
    let n_clips = table::column::<Int32Array>(&per_fold, "n_clips").unwrap();
    let clips = b.column_by_name("clips").unwrap();
    let clips: Vec<i64> = (0..4)
        .map(|i| {
            arrow_array::cast::AsArray::as_primitive::<arrow_array::types::UInt32Type>(clips)
                .value(i) as i64
        })
        .collect();
    // Clips per fold in the manifest = held-out clips per fold in training.
    assert_eq!(
        clips,
        (0..4).map(|i| n_clips.value(i) as i64).collect::<Vec<_>>()
    );

    // The history's timestamps print in UTC and keep their type in Parquet.
    let history = table::read_single(&dir.path().join("data/out/history.parquet")).unwrap();
    let time = table::column::<arrow_array::TimestampMicrosecondArray>(&history, "time_utc")
        .unwrap()
        .value(0);
    let (ok, printed, err) = query(
        dir.path(),
        &["select experiment, time_utc from history order by experiment"],
    );
    assert!(ok, "{err}");
    let when = pipe::history::time::format_utc(time);
    assert!(
        printed.contains(&format!("A1          {when}")),
        "{printed}"
    );
    let pq = dir.path().join("history.parquet");
    let (ok, _, err) = query(
        dir.path(),
        &["select time_utc from history", "-o", pq.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    let back = table::read_single(&pq).unwrap();
    assert_eq!(back.column(0), history.column_by_name("time_utc").unwrap());

    // Errors that name the problem.
    let (ok, _, err) = query(dir.path(), &["select * from sumary"]);
    assert!(!ok);
    assert!(
        err.contains("no table `sumary`")
            && err.contains("tables: failed, features_raw, history, manifest, per_category"),
        "{err}"
    );
    let (ok, _, err) = query(dir.path(), &["selec experiment from summary"]);
    assert!(!ok);
    assert!(err.contains("bad SQL") && err.contains("selec"), "{err}");
    let (ok, _, err) = query(dir.path(), &["select features from features_raw"]);
    assert!(!ok);
    assert!(err.contains("features"), "{err}");
    let (ok, _, err) = query(dir.path(), &["select 1 as x", "-o", "x.json"]);
    assert!(!ok);
    assert!(err.contains("must end in .parquet or .csv"), "{err}");
}
