//! Run history as a user meets it, through the real binary: two runs with one
//! head's lr changed give two recorded runs, `pipe diff` names `head.lr` and
//! the R² delta of that experiment only; a no-op run records nothing, a
//! revert records a run; `pipe clean` leaves the history alone.

use crate::common::bin;
use crate::common::tones;
use bin::{ok, pipe};
use pipe::history;
use std::path::{Path, PathBuf};

const N_CLIPS: usize = 24;

/// 24 half-second tones in 8 pieces whose labels follow their loudness (as
/// in tests/experiments_stage.rs), and a config writer.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let csv = tones::tone_clips(dir.path(), N_CLIPS, |_| 12_000);
    std::fs::write(dir.path().join("labels.csv"), csv).unwrap();
    dir
}

fn config(dir: &Path, lr: &str) -> PathBuf {
    let text = format!(
        r#"
[dataset]
kind = "audio_folder"
audio_dir = "audio"
labels = "labels.csv"
[features.raw]
encoder = "raw_stats"
[evaluation]
resamples = 100
[experiments.A3]
features = "raw"
head = {{ max_epochs = 20, lr = {lr} }}
[experiments.A1]
features = "raw"
head = {{ arch = "linear", max_epochs = 20 }}
"#
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn rows(dir: &Path) -> Vec<history::Row> {
    history::read_table(&history::path(&dir.join("data"))).unwrap()
}

#[test]
fn two_runs_with_one_lr_changed_diff_to_that_param_and_that_experiment() {
    let dir = setup();
    let d = dir.path();
    let out = ok(pipe(&config(d, "1e-3"), &["run"]));
    assert!(out.contains("history: run "), "{out}");
    let out = ok(pipe(&config(d, "3e-3"), &["run"]));
    assert!(out.contains("history: run "), "{out}");

    let rows = rows(d);
    let runs = history::runs(&rows);
    assert_eq!(runs.len(), 2);
    assert_eq!(rows.len(), 4, "one row per experiment per run");
    let (new, old) = (&runs[0], &runs[1]);
    assert_ne!(old.config_hash(), new.config_hash());
    let (a1_old, a1_new) = (old.row("A1").unwrap(), new.row("A1").unwrap());
    assert_eq!(a1_old.r2, a1_new.r2, "A1 did not retrain");
    assert_eq!(a1_old.params_hash, a1_new.params_hash);
    let (a3_old, a3_new) = (old.row("A3").unwrap(), new.row("A3").unwrap());
    assert_ne!(a3_old.r2, a3_new.r2, "A3 retrained with another lr");
    assert_eq!(a3_new.n_clips, N_CLIPS as i32);

    let d_out = ok(pipe(&config(d, "3e-3"), &["diff"]));
    assert!(d_out.contains(&format!("{} (", old.id())), "{d_out}");
    assert!(d_out.contains("head.lr: 0.001 -> 0.003"), "{d_out}");
    let want_r2 = format!(
        "r2         {:.4} -> {:.4}  ({:+.4})",
        a3_old.r2,
        a3_new.r2,
        a3_new.r2 - a3_old.r2
    );
    assert!(d_out.contains(&want_r2), "{d_out}\nwanted {want_r2}");
    assert!(d_out.contains("unchanged (1): A1"), "{d_out}");
    // The only experiment in the changed section is A3.
    let changed = &d_out[..d_out.find("unchanged").unwrap()];
    assert!(
        changed.contains("\nA3\n") && !changed.contains("\nA1\n"),
        "{d_out}"
    );

    let h = ok(pipe(&config(d, "3e-3"), &["history", "--experiment", "A3"]));
    let first = h.find(new.id()).expect("latest run listed");
    let second = h.find(old.id()).expect("older run listed");
    assert!(first < second, "latest first:\n{h}");
    assert!(!h.contains("  A1 "), "filtered to A3:\n{h}");
    let e = pipe(&config(d, "3e-3"), &["history", "--experiment", "Z9"]);
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("A1, A3"));

    // Nothing to do: no run recorded. Reverting to lr 1e-3 computes nothing
    // (its artifacts are stored) but changes the results: recorded.
    let out = ok(pipe(&config(d, "3e-3"), &["run"]));
    assert!(!out.contains("history: run "), "{out}");
    assert_eq!(history::runs(&self::rows(d)).len(), 2);
    ok(pipe(&config(d, "1e-3"), &["run"]));
    let rows = self::rows(d);
    let runs = history::runs(&rows);
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0].row("A3").unwrap().r2, a3_old.r2);
    let d_out = ok(pipe(&config(d, "1e-3"), &["diff"]));
    assert!(d_out.contains("head.lr: 0.003 -> 0.001"), "{d_out}");
    let d_out = ok(pipe(&config(d, "1e-3"), &["diff", "~2", "~0"]));
    assert!(d_out.contains("no experiment changed"), "{d_out}");

    // `clean` deletes store artifacts only.
    let before = std::fs::read(history::path(&d.join("data"))).unwrap();
    ok(pipe(&config(d, "1e-3"), &["clean", "--yes"]));
    assert_eq!(
        std::fs::read(history::path(&d.join("data"))).unwrap(),
        before
    );
}

#[test]
fn diff_without_two_runs_says_so() {
    let dir = setup();
    let cfg = config(dir.path(), "1e-3");
    let o = pipe(&cfg, &["diff"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("needs two recorded runs") && err.contains("holds 0"),
        "{err}"
    );
    let h = ok(pipe(&cfg, &["history"]));
    assert!(h.contains("no runs recorded yet"), "{h}");
}
