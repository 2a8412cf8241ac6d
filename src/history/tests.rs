use super::*;
use crate::metrics::{Ci, FoldMetrics};
use crate::table::TableBuilder;

fn config(lr: &str) -> Config {
    let text = format!(
        r#"
[dataset]
kind = "audio_folder"
audio_dir = "audio"
labels = "labels.csv"
[features.raw]
encoder = "raw_stats"
[encoders.ctl]
arch = "mert"
random = "control"
device = "cpu"
[features.ctl_mean]
encoder = "ctl"
layers = "7-12"
[experiments.A3]
features = "raw"
head = {{ lr = {lr} }}
[experiments.B0]
features = "ctl_mean"
"#
    );
    Config::parse(&text, Path::new("/p")).unwrap()
}

fn eval(r2: f64) -> Evaluation {
    let fold = |n_clips| FoldMetrics {
        fold: 0,
        n_clips,
        dims: Vec::new(),
        r2,
        mae: 0.1,
        pearson_r: Some(0.5),
        dispersion: 0.8,
    };
    Evaluation {
        folds: vec![fold(10), fold(14)],
        per_dim: Vec::new(),
        r2,
        mae: 0.1,
        pearson_r: Some(0.5),
        dispersion: 0.8,
        r2_ci: Ci {
            estimate: r2,
            lo: r2 - 0.05,
            hi: r2 + 0.05,
            level: 0.95,
            resamples_used: 100,
            resamples_undefined: 0,
        },
        ci_unit: None,
        n_clusters: None,
        cluster_of_clip: None,
        crossed_of_clip: None,
        r2_humans: None,
        pairwise: None,
        seed_r2: Vec::new(),
        clip_r2_ci: None,
        pooled_r2_ci: None,
    }
}

const T0: i64 = 1_735_689_600_000_000;

#[test]
fn record_appends_runs_that_computed_or_changed_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = path(dir.path());
    let (e1, e2) = (eval(0.10), eval(0.20));
    fn ran<'a>(a3: &'a Evaluation, key: &str, b0: &'a Evaluation) -> Vec<Evaluated<'a>> {
        vec![
            Evaluated {
                experiment: "A3",
                result_key: key.to_string(),
                eval: a3,
            },
            Evaluated {
                experiment: "B0",
                result_key: "kb".into(),
                eval: b0,
            },
        ]
    }
    let c1 = config("1e-3");
    let id1 = record(
        &path,
        &c1,
        &ran(&e1, "ka", &e1),
        true,
        Some("abc".into()),
        T0,
    )
    .unwrap()
    .expect("a run that trained is recorded");
    let rows = read_table(&path).unwrap();
    assert_eq!(rows.len(), 2);
    let a3 = &rows[0];
    assert_eq!(
        (
            a3.run_id.as_str(),
            a3.experiment.as_str(),
            a3.features.as_str()
        ),
        (id1.as_str(), "A3", "raw")
    );
    assert_eq!((a3.time_us, a3.git_commit.as_deref()), (T0, Some("abc")));
    assert_eq!((a3.r2, a3.r2_ci_low, a3.n_clips), (0.10, 0.10 - 0.05, 24));
    assert_eq!(a3.config_hash, c1.hash);
    let p: serde_json::Value = serde_json::from_str(&a3.params).unwrap();
    assert_eq!(p["features"]["encoder"], "raw_stats");
    assert!((p["head"]["lr"].as_f64().unwrap() - 1e-3).abs() < 1e-9);
    let b0: serde_json::Value = serde_json::from_str(&rows[1].params).unwrap();
    assert_eq!(b0["features"]["spec"]["layers"], "7-12");
    assert_eq!(b0["encoder"]["random"], "control");
    assert!(
        b0["encoder"].get("device").is_none(),
        "where it runs is no param"
    );

    // Nothing computed, same results: a no-op run is not recorded.
    let noop = record(&path, &c1, &ran(&e1, "ka", &e1), false, None, T0 + 1).unwrap();
    assert_eq!(noop, None);
    // A changed lr that trained: recorded.
    let c2 = config("3e-3");
    let id2 = record(
        &path,
        &c2,
        &ran(&e2, "ka2", &e1),
        true,
        None,
        T0 + 2_000_000,
    )
    .unwrap();
    assert!(id2.is_some());
    // Reverting to the first config computes nothing but changes the results: recorded.
    let id3 = record(
        &path,
        &c1,
        &ran(&e1, "ka", &e1),
        false,
        None,
        T0 + 4_000_000,
    )
    .unwrap();
    assert!(id3.is_some());
    let rows = read_table(&path).unwrap();
    let all = runs(&rows);
    assert_eq!(all.len(), 3);
    assert_eq!(Some(all[0].id()), id3.as_deref(), "latest first");
    assert_eq!(all[2].id(), id1);
    assert_eq!(all[2].git_commit(), Some("abc"));
    assert!(all[1].git_commit().is_none());
}

#[test]
fn runs_are_found_by_id_prefix_or_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = path(dir.path());
    let e = eval(0.1);
    let c = config("1e-3");
    let one = |key: &str| {
        vec![Evaluated {
            experiment: "A3",
            result_key: key.into(),
            eval: &e,
        }]
    };
    let a = record(&path, &c, &one("k1"), true, None, T0)
        .unwrap()
        .unwrap();
    let b = record(&path, &c, &one("k2"), true, None, T0 + 86_400_000_000)
        .unwrap()
        .unwrap();
    let rows = read_table(&path).unwrap();
    let all = runs(&rows);
    assert_eq!(find_run(&all, "~0").unwrap().id(), b);
    assert_eq!(find_run(&all, "~1").unwrap().id(), a);
    assert_eq!(find_run(&all, &a).unwrap().id(), a);
    assert_eq!(find_run(&all, "20250102").unwrap().id(), b);
    let e = find_run(&all, "2025").unwrap_err().to_string();
    assert!(
        e.contains("ambiguous") && e.contains(&a) && e.contains(&b),
        "{e}"
    );
    let e = find_run(&all, "~5").unwrap_err().to_string();
    assert!(e.contains("2 run(s)"), "{e}");
    assert!(find_run(&all, "1999").is_err());
}

#[test]
fn diff_names_changed_params_and_metric_deltas_only_where_they_moved() {
    let dir = tempfile::tempdir().unwrap();
    let path = path(dir.path());
    let (e1, e2) = (eval(0.10), eval(0.25));
    let c1 = config("1e-3");
    let c2 = config("3e-3");
    let first = [
        Evaluated {
            experiment: "A3",
            result_key: "a".into(),
            eval: &e1,
        },
        Evaluated {
            experiment: "B0",
            result_key: "b".into(),
            eval: &e1,
        },
    ];
    let second = [
        Evaluated {
            experiment: "A3",
            result_key: "a2".into(),
            eval: &e2,
        },
        Evaluated {
            experiment: "B0",
            result_key: "b".into(),
            eval: &e1,
        },
    ];
    record(&path, &c1, &first, true, None, T0).unwrap();
    record(&path, &c2, &second, true, None, T0 + 1_000_000).unwrap();
    let rows = read_table(&path).unwrap();
    let all = runs(&rows);
    let d = diff::diff(&all[1], &all[0]);
    assert_eq!(d.unchanged, ["B0"]);
    assert!(d.added.is_empty() && d.removed.is_empty());
    assert_eq!(d.changed.len(), 1);
    let a3 = &d.changed[0];
    assert_eq!(a3.experiment, "A3");
    assert_eq!(a3.params, ["head.lr: 0.001 -> 0.003"]);
    let r2 = a3.metrics.iter().find(|m| m.name == "r2").unwrap();
    assert!((r2.delta().unwrap() - 0.15).abs() < 1e-12);
    assert!(
        a3.metrics.iter().all(|m| m.name != "mae"),
        "mae did not move"
    );
    let text = d.to_string();
    assert!(text.contains("head.lr: 0.001 -> 0.003"), "{text}");
    assert!(
        text.contains("r2         0.1000 -> 0.2500  (+0.1500)"),
        "{text}"
    );
    assert!(text.contains("unchanged (1): B0"), "{text}");

    // An experiment only in one run is added / removed.
    let only_b0 = [Evaluated {
        experiment: "B0",
        result_key: "b".into(),
        eval: &e1,
    }];
    record(&path, &c2, &only_b0, true, None, T0 + 2_000_000).unwrap();
    let rows = read_table(&path).unwrap();
    let all = runs(&rows);
    let d = diff::diff(&all[0], &all[1]);
    assert_eq!(
        (d.added.as_slice(), d.removed.as_slice()),
        (&["A3".to_string()][..], &[][..])
    );
    let d = diff::diff(&all[1], &all[0]);
    assert_eq!(d.removed, ["A3"]);
}

#[test]
fn a_history_of_another_format_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = path(dir.path());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    TableBuilder::new()
        .utf8("run_id", &["x"])
        .meta("pipe.history_format", "0")
        .write(&path)
        .unwrap();
    let e = format!("{:#}", read_table(&path).unwrap_err());
    assert!(e.contains("history.parquet") && e.contains("\"0\""), "{e}");
}

/// The history as arrow-rs wrote it before polars built it (main as of
/// 55934cf): the oracle for the file's schema and bytes.
fn written_by_hand(rows: &[Row], path: &Path) {
    let col = |f: fn(&Row) -> &str| rows.iter().map(f).collect::<Vec<_>>();
    let f64s = |f: fn(&Row) -> f64| rows.iter().map(f).collect::<Vec<_>>();
    TableBuilder::new()
        .utf8("run_id", &col(|r| &r.run_id))
        .timestamp_utc("time_utc", rows.iter().map(|r| r.time_us).collect())
        .utf8("config_hash", &col(|r| &r.config_hash))
        .utf8_opt(
            "git_commit",
            &rows
                .iter()
                .map(|r| r.git_commit.as_deref())
                .collect::<Vec<_>>(),
        )
        .utf8("experiment", &col(|r| &r.experiment))
        .utf8("features", &col(|r| &r.features))
        .utf8("params_hash", &col(|r| &r.params_hash))
        .utf8("params", &col(|r| &r.params))
        .utf8("result_key", &col(|r| &r.result_key))
        .f64("r2", f64s(|r| r.r2))
        .f64("r2_ci_low", f64s(|r| r.r2_ci_low))
        .f64("r2_ci_high", f64s(|r| r.r2_ci_high))
        .f64("mae", f64s(|r| r.mae))
        .f64_opt("pearson", rows.iter().map(|r| r.pearson).collect())
        .f64("dispersion", f64s(|r| r.dispersion))
        .i32_opt("n_clips", rows.iter().map(|r| Some(r.n_clips)).collect())
        .meta("pipe.history_format", FORMAT)
        .meta(
            "pipe.description",
            "one row per experiment per recorded `pipe run`; see README, \"Run history\"",
        )
        .write(path)
        .unwrap();
}

#[test]
fn the_history_file_is_byte_for_byte_what_arrow_rs_wrote_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let row = |i: i64, git: Option<&str>, pearson: Option<f64>| Row {
        run_id: format!("20250611-14223{i}-3f9a"),
        time_us: T0 + i * 1_000_001,
        config_hash: "c".repeat(64),
        git_commit: git.map(String::from),
        experiment: format!("E{i}"),
        features: "raw".into(),
        params_hash: "p".into(),
        params: "{\"head\":{}}".into(),
        result_key: format!("k{i}"),
        r2: 0.1 * i as f64 - 0.05,
        r2_ci_low: -0.0,
        r2_ci_high: f64::MAX,
        mae: 1e-300,
        pearson,
        dispersion: 0.75,
        n_clips: 24 + i as i32,
    };
    for rows in [
        vec![
            row(0, Some("abc"), Some(0.5)),
            row(1, None, None),
            row(2, Some(""), Some(-1.0)),
        ],
        vec![row(3, None, Some(0.25))],
        Vec::new(),
    ] {
        let (ours, oracle) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
        write_table(&rows, &ours).unwrap();
        written_by_hand(&rows, &oracle);
        assert_eq!(
            std::fs::read(&ours).unwrap(),
            std::fs::read(&oracle).unwrap()
        );
        assert_eq!(read_table(&ours).unwrap(), rows);
    }
}
