//! Sharded runs through the binary, against a `file://` object store (the
//! same code path as `s3://`; `.ci/s3_shards.sh` runs it against a real
//! S3 server): three shards at once, each with its own data folder as a
//! machine would have, then the finishing run, equal to one local run; a
//! shard killed mid-run and rerun; shards that disagree on N; a shard whose
//! clip fails.

use crate::common::bin;
use crate::common::folder;
use bin::{ok, pipe, text};
use pipe::dag::shard::shard_of;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const CLIPS: usize = 12;
/// Stages with one node per clip in [`config`]'s pipeline (no render: audio).
const PER_CLIP: [&str; 2] = ["decode", "resample"];
const SETS: usize = 2;

/// Twelve half-second clips, one piece each ([`folder::audio_folder`]); `bad` is written corrupt.
fn audio(dir: &Path, bad: Option<usize>) {
    folder::audio_folder(dir, CLIPS, 0.5);
    if let Some(i) = bad {
        let path = dir.join("audio").join(format!("{}.wav", clip(i)));
        std::fs::write(path, b"RIFF\x10\x00\x00\x00WAVEnot a wave").unwrap();
    }
}

/// The id [`folder::audio_folder`] gives clip `i`.
fn clip(i: usize) -> String {
    format!("c{i}")
}

/// A test folder with the clips (`bad` corrupt) and a config whose store is
/// a `file://` folder inside it.
fn study(bad: Option<usize>) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    audio(tmp.path(), bad);
    let cfg = config(tmp.path(), "shared", Some(&store_url(tmp.path())));
    (tmp, cfg)
}

/// A pipeline over `dir`'s audio, with a shared store if given (each
/// process gets its own data folder through `PIPE_DATA_DIR`, as each
/// machine would have its own).
fn config(dir: &Path, name: &str, store: Option<&str>) -> PathBuf {
    let cfg = dir.join(format!("{name}.toml"));
    let store = store.map_or(String::new(), |s| format!("store = \"{s}\"\n"));
    std::fs::write(
        &cfg,
        format!(
            r#"{store}
[dataset]
kind = "audio_folder"
audio_dir = "audio"
labels = "labels.csv"
[dataset.folds]
k = 4
[features.raw]
encoder = "raw_stats"
[features.logmel]
encoder = "logmel_stats"
[evaluation]
resamples = 50
label_only = []   # the label-only baselines: tests/experiments_stage.rs
[experiments.A1]
features = "raw"
head = {{ arch = "linear", max_epochs = 20 }}
[experiments.A2]
features = "logmel"
head = {{ arch = "mlp", hidden = 8, max_epochs = 10 }}
"#
        ),
    )
    .unwrap();
    cfg
}

fn store_url(dir: &Path) -> String {
    url_of(&dir.join("remote"))
}

fn url_of(p: &Path) -> String {
    format!("file://{}", p.display())
}

/// `pipe -c CFG ARGS` with `data` as its data folder (as on its own machine).
fn pipe_at(cfg: &Path, data: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pipe"));
    c.arg("-c").arg(cfg).args(args).env("PIPE_DATA_DIR", data);
    for v in pipe::dag::shard::INDEX_VARS {
        c.env_remove(v);
    }
    c
}

fn shard_cmd(cfg: &Path, data: &Path, shard: &str) -> Command {
    pipe_at(cfg, data, &["run", "--shard", shard])
}

/// `"decode: 4 computed, ..."` -> 4, from a run's stderr summary.
fn computed(out: &str, stage: &str) -> usize {
    out.lines()
        .find_map(|l| {
            l.trim_start()
                .strip_prefix(&format!("{stage}: "))
                .and_then(|rest| rest.split(" computed").next())
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The clips shard `i` of `n` owns.
fn owned(i: u32, n: u32) -> usize {
    (0..CLIPS).filter(|&c| shard_of(&clip(c), n) == i).count()
}

/// Every result table, without the one column that measures time.
fn tables(data: &Path) -> Vec<(String, arrow_array::RecordBatch)> {
    let dir = data.join("out/results");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".parquet"))
        .collect();
    names.sort();
    assert!(names.len() >= 5, "{names:?}");
    names
        .into_iter()
        .map(|n| {
            let t =
                pipe::table::read_columns(&dir.join(&n), |f| f.name() != "train_seconds").unwrap();
            (n, t)
        })
        .collect()
}

/// Every object in the file store: its name's hash is its bytes' blake3.
fn check_objects(remote: &Path) -> usize {
    let mut n = 0;
    for stage in std::fs::read_dir(remote.join("store")).unwrap() {
        for f in std::fs::read_dir(stage.unwrap().path()).unwrap() {
            let f = f.unwrap();
            let name = f.file_name().to_string_lossy().into_owned();
            let (_, hash) = pipe::dag::store::parse_name(&name)
                .unwrap_or_else(|| panic!("not an artifact name: {name}"));
            let bytes = std::fs::read(f.path()).unwrap();
            assert_eq!(
                hash.unwrap().0,
                *blake3::hash(&bytes).as_bytes(),
                "{name} holds other bytes than its name says"
            );
            n += 1;
        }
    }
    n
}

#[test]
fn three_shards_at_once_then_the_finishing_run_equal_one_local_run() {
    let (tmp, cfg) = study(None);
    let dir = tmp.path();
    ok(pipe(&config(dir, "local", None), &["run"]));

    let children: Vec<_> = (0..3)
        .map(|i| {
            shard_cmd(&cfg, &dir.join(format!("shard{i}")), &format!("{i}/3"))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut decoded = 0;
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let said = text(&out);
        assert!(out.status.success(), "shard {i}: {said}");
        // Only its own clips, and nothing dataset-level.
        assert_eq!(
            computed(&said, "decode"),
            owned(i as u32, 3),
            "shard {i}: {said}"
        );
        assert_eq!(
            computed(&said, "features"),
            SETS * owned(i as u32, 3),
            "{said}"
        );
        assert_eq!(computed(&said, "train"), 0, "{said}");
        assert!(said.contains("store: file://"), "{said}");
        decoded += computed(&said, "decode");
    }
    assert_eq!(decoded, CLIPS);
    assert!(dir.join("remote/shards.json").is_file());

    // A machine that ran no shard: every per-clip node is fresh in the store.
    let fin = || {
        pipe_at(&cfg, &dir.join("final"), &["run"])
            .output()
            .unwrap()
    };
    let said = ok(fin());
    for stage in PER_CLIP.iter().chain(&["features"]) {
        assert_eq!(computed(&said, stage), 0, "{stage}: {said}");
    }
    assert_eq!(computed(&said, "train"), 2, "{said}");
    assert!(
        !dir.join("remote/shards.json").exists(),
        "the finishing run closes the sharded run"
    );
    assert_eq!(tables(&dir.join("final")), tables(&dir.join("data")));
    let expected = CLIPS * (PER_CLIP.len() + SETS);
    assert!(check_objects(&dir.join("remote")) > expected);
    assert!(ok(fin()).contains("up to date"));
}

#[test]
fn a_shard_killed_mid_run_is_rerun_without_redoing_what_it_committed() {
    let (tmp, cfg) = study(None);
    let dir = tmp.path();
    let mine = owned(0, 2) * (PER_CLIP.len() + SETS);
    // Dies as a kill -9 would, at the worst moment: an artifact written,
    // hashed, not yet committed.
    // One worker, so "5 commits" is exact (with two, the 5th may be mid-put).
    let killed = pipe_at(&cfg, &dir.join("a"), &["run", "--shard", "0/2", "-j", "1"])
        .env("PIPE_FAULT_ABORT_AFTER_COMMITS", "5")
        .output()
        .unwrap();
    assert!(!killed.status.success());
    let committed = check_objects(&dir.join("remote"));
    assert_eq!(
        committed, 5,
        "every committed artifact is whole and named by its bytes"
    );
    // The rerun (another machine: an empty cache) does the rest, once.
    let said = ok(shard_cmd(&cfg, &dir.join("b"), "0/2").output().unwrap());
    let redone: usize = PER_CLIP
        .iter()
        .chain(&["features"])
        .map(|s| computed(&said, s))
        .sum();
    assert_eq!(redone, mine - committed, "{said}");
    assert!(!said.contains("already there"), "nothing put twice: {said}");
    assert_eq!(check_objects(&dir.join("remote")), mine);
}

#[test]
fn shards_that_disagree_on_n_or_fail_a_clip_say_so_and_exit_non_zero() {
    // The corrupt clip: whichever shard of 2 owns it fails it.
    let bad = 3;
    let (tmp, cfg) = study(Some(bad));
    let dir = tmp.path();
    let owner = shard_of(&clip(bad), 2);
    let data = dir.join("data");
    let out = shard_cmd(&cfg, &data, &format!("{owner}/2"))
        .output()
        .unwrap();
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(&format!("decode {}", clip(bad))),
        "the failed node is listed: {said}"
    );
    ok(shard_cmd(&cfg, &data, &format!("{}/2", 1 - owner))
        .output()
        .unwrap());

    let out = shard_cmd(&cfg, &data, "1/3").output().unwrap();
    let said = text(&out);
    assert!(!out.status.success());
    assert!(
        said.contains("split it in 2") && said.contains("shards.json"),
        "{said}"
    );
    let out = shard_cmd(&cfg, &data, "2/2").output().unwrap();
    assert!(
        text(&out).contains("shard index 2 is out of range 0..2"),
        "{}",
        text(&out)
    );
    let out = shard_cmd(&cfg, &data, "auto/2").output().unwrap();
    assert!(text(&out).contains("PIPE_SHARD"), "{}", text(&out));
    let out = shard_cmd(&cfg, &data, "auto/2")
        .env("PIPE_SHARD", owner.to_string())
        .output()
        .unwrap();
    assert!(!out.status.success(), "the bad clip's shard again");
    assert!(
        text(&out).contains(&format!("decode {}", clip(bad))),
        "{}",
        text(&out)
    );
}

#[test]
fn an_unreachable_store_is_one_clear_error_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    audio(dir, None);
    let cfg = config(dir, "a", Some("s3://no-such-bucket/study"));
    let toml = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("store_retry_seconds = 1\n{toml}")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pipe"))
        .arg("-c")
        .arg(&cfg)
        .arg("run")
        // Nothing listens on port 9: the connection is refused at once.
        .env("AWS_ENDPOINT", "http://127.0.0.1:9")
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("store s3://no-such-bucket/study: cannot list study"),
        "{said}"
    );
    assert!(!dir.join("data/store").exists(), "nothing ran: {said}");
}

#[test]
fn an_object_whose_bytes_do_not_match_its_name_is_never_taken_for_an_artifact() {
    let (tmp, cfg) = study(None);
    let dir = tmp.path();
    ok(shard_cmd(&cfg, &dir.join("a"), "0/1").output().unwrap());
    let features = dir.join("remote/store/features");
    let victim = std::fs::read_dir(&features)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&victim, b"not the vector this name promises").unwrap();
    // Another machine: it must fetch the vectors, and refuses the bad one.
    let out = pipe_at(&cfg, &dir.join("b"), &["run"]).output().unwrap();
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("not to the hash in its name"), "{said}");
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    assert!(!dir.join("b/store/features").join(&name).exists());
}
