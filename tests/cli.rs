//! `pipe` as a user runs it: the real binary on a few PercePiano clips (and,
//! for the crash test, on a whole small pipeline of synthetic clips).

use crate::common::bin;
use crate::common::folder;
use bin::{pipe, text};

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A pipeline.toml over the shipped PercePiano data, with its own data folder.
fn config(dir: &Path, limit: usize, extra: &str) -> PathBuf {
    let r = repo();
    let text = format!(
        r#"
data_dir = "{data}"
[dataset]
kind = "percepiano"
labels = "{r}/data/percepiano/labels/label_2round_mean_reg_19_with0_rm_highstd0.json"
metadata = "{r}/data/percepiano/manifest.csv"
midi_dir = "{r}/data/percepiano/midi/performance"
limit = {limit}
[dataset.folds]
k = 2
[render]
soundfont = "{sf}"
{extra}
"#,
        data = dir.join("data").display(),
        r = r.display(),
        sf = soundfont().display(),
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn soundfont() -> PathBuf {
    let text = std::fs::read_to_string(repo().join("pipeline.toml")).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("soundfont"))
        .expect("default soundfont");
    repo().join(line.split('"').nth(1).unwrap())
}

/// Every artifact in the store: (stage/file, bytes).
fn store_contents(data: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for stage in std::fs::read_dir(data.join("store")).unwrap().flatten() {
        for f in std::fs::read_dir(stage.path()).unwrap().flatten() {
            let name = format!(
                "{}/{}",
                stage.file_name().to_string_lossy(),
                f.file_name().to_string_lossy()
            );
            out.push((name, std::fs::read(f.path()).unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn run_is_incremental_and_explains_itself() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 3, "");
    let o = pipe(&cfg, &["run"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("manifest.parquet"), "{}", text(&o));

    // The manifest: one row per clip, 19 labels, folds, durations.
    let batches = pipe::table::read(&dir.path().join("data/out/manifest.parquet")).unwrap();
    let b = &batches[0];
    assert_eq!(b.num_rows(), 3);
    for col in [
        "clip_id",
        "piece",
        "work",
        "performer",
        "fold",
        "duration_s",
        "source",
        "is_rendering",
        "timing",
        "interpretation",
    ] {
        assert!(b.column_by_name(col).is_some(), "manifest lacks {col}");
    }
    let dur = pipe::table::column::<arrow_array::Float64Array>(b, "duration_s").unwrap();
    assert!(
        dur.values().iter().all(|&d| d > 4.0 && d < 120.0),
        "{dur:?}"
    );

    // Second run: nothing to do.
    let o = pipe(&cfg, &["run"]);
    assert!(o.status.success());
    assert!(
        text(&o).contains("up to date: 4 stages fresh"),
        "{}",
        text(&o)
    );

    // One param changes: status and dry-run say which stages and why.
    let cfg = config(dir.path(), 3, "[resample]\nquality = \"fast\"\n");
    let o = pipe(&cfg, &["status"]);
    let t = text(&o);
    assert!(t.contains("render: fresh"), "{t}");
    assert!(t.contains("decode: fresh"), "{t}");
    assert!(t.contains("resample: 3 of 3 stale"), "{t}");
    assert!(t.contains("param quality: \"high\" -> \"fast\""), "{t}");
    assert!(t.contains("manifest: 1 of 1 may be stale"), "{t}");
    assert!(t.contains("may be stale: behind stale `resample`"), "{t}");
    let o = pipe(&cfg, &["run", "--dry-run"]);
    assert!(
        text(&o).contains("resample: 3 of 3 would run"),
        "{}",
        text(&o)
    );
    let o = pipe(&cfg, &["run"]);
    let t = text(&o);
    // Before running, each stage's reasons, counted.
    assert!(t.contains("resample: 3 of 3 to run"), "{t}");
    assert!(
        t.contains("param quality: \"high\" -> \"fast\"  [3 clips, e.g. "),
        "{t}"
    );
    assert!(t.contains("render: 3 fresh"), "{t}");
    assert!(t.contains("resample: 3 computed"), "{t}");
    assert!(t.contains("manifest: 1 computed"), "{t}");

    // --force one stage; --until stops early. The forced decode writes the same
    // bytes, so resample (not run: after --until) is found fresh after all.
    let o = pipe(&cfg, &["run", "--force", "decode", "--until", "decode"]);
    let t = text(&o);
    assert!(t.contains("decode: 3 computed"), "{t}");
    assert!(t.contains("forced (--force decode)"), "{t}");
    assert!(!t.contains("resample: 3 computed"), "{t}");
    assert!(
        t.contains("resample: 0 computed, 0 fresh, 3 cut off"),
        "{t}"
    );
    let o = pipe(&cfg, &["dag"]);
    assert!(
        text(&o).contains("resample ─▶ manifest (1 node"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_killed_run_resumes_to_identical_outputs() {
    let clean = tempfile::tempdir().unwrap();
    let o = pipe(&config(clean.path(), 2, ""), &["run"]);
    assert!(o.status.success(), "{}", text(&o));

    let crashed = tempfile::tempdir().unwrap();
    let cfg = config(crashed.path(), 2, "");
    let o = Command::new(env!("CARGO_BIN_EXE_pipe"))
        .arg("-c")
        .arg(&cfg)
        .args(["run", "-j", "1"])
        .env("PIPE_FAULT_ABORT_AFTER_COMMITS", "3")
        .output()
        .unwrap();
    assert!(!o.status.success(), "the fault injection must kill the run");
    let leftovers: usize = std::fs::read_dir(crashed.path().join("data/store"))
        .unwrap()
        .flatten()
        .map(|stage| {
            std::fs::read_dir(stage.path())
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
                .count()
        })
        .sum();
    assert_eq!(leftovers, 1, "the aborted commit leaves its temporary file");

    let o = pipe(&cfg, &["run"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    // One worker, later stages first: the first clip went through render, decode
    // and resample (3 commits) before the second clip's render was cut off.
    for stage in ["render", "decode", "resample"] {
        assert!(
            t.contains(&format!("{stage}: 1 computed, 1 fresh")),
            "{stage} finished the first clip before the crash: {t}"
        );
    }
    let a = store_contents(&clean.path().join("data"));
    let b = store_contents(&crashed.path().join("data"));
    // Names are `<key>.<hash>.<ext>`; the manifest's bytes (so its hash) hold
    // the data folder's paths, so it is compared by key only.
    let names = |c: &[(String, Vec<u8>)]| -> Vec<String> {
        c.iter()
            .map(|(n, _)| match n.strip_prefix("manifest/") {
                Some(rest) => format!("manifest/{}", &rest[..64]),
                None => n.clone(),
            })
            .collect()
    };
    assert_eq!(names(&a), names(&b));
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        if !name.starts_with("manifest/") {
            assert!(x == y, "{name} differs after resume");
        }
    }

    // The whole pipeline (decode ... features, train, evaluate, results,
    // plots, report) of 6 short clips, killed at many points: aborted right
    // before the N-th artifact is renamed into place (the worst moment), and
    // SIGKILLed while it works. Each rerun ends with exactly the outputs of
    // an uninterrupted run (same folder, so paths in the manifest match).
    let dir = tempfile::tempdir().unwrap();
    folder::audio_folder(dir.path(), 6, 0.5);
    let cfg = folder::pipeline(dir.path(), "");
    let data = dir.path().join("data");
    let o = pipe(&cfg, &["run"]);
    assert!(o.status.success(), "{}", text(&o));
    let clean = outputs(&data);
    assert!(
        clean.iter().any(|(p, _)| p == "out/report.md"),
        "a whole run"
    );
    let commits = clean
        .iter()
        .filter(|(p, _)| p.starts_with("store/"))
        .count();
    // 6 clips x (decode, resample, 2 feature vectors) + manifest, 2 tables,
    // train, evaluate, models (one experiment) + 6 result tables, 2 plots, report.
    assert_eq!(commits, 32, "artifacts of the 6-clip pipeline");
    let mut points = Vec::new();
    for n in [0, 5, 13, 18, 20, 22, 26, 29] {
        std::fs::remove_dir_all(&data).unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_pipe"))
            .arg("-c")
            .arg(&cfg)
            .args(["run", "-j", "1"])
            .env("PIPE_FAULT_ABORT_AFTER_COMMITS", n.to_string())
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            o.status.signal(),
            Some(6),
            "abort before commit {n}: {}",
            text(&o)
        );
        assert_eq!(temporaries(&data), 1, "the aborted commit's temporary file");
        resume_and_compare(&cfg, &data, &clean, &format!("abort before commit {n}"));
        points.push(n);
    }
    let mut killed = 0;
    for k in [1, 9, 16, 24] {
        std::fs::remove_dir_all(&data).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_pipe"))
            .arg("-c")
            .arg(&cfg)
            .args(["run", "-j", "2"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                break; // finished before the kill point: resuming is a no-op
            }
            if artifacts(&data) >= k || start.elapsed().as_secs() > 120 {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                killed += 1;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        resume_and_compare(&cfg, &data, &clean, &format!("SIGKILL after {k} artifacts"));
    }
    assert_eq!(points.len(), 8);
    eprintln!("killed mid-run: {killed} of 4 SIGKILLs, 8 aborts before a commit");
    assert!(killed >= 3, "the kills must land while the run works");
}

/// Artifacts committed to the store so far.
fn artifacts(data: &Path) -> usize {
    store_files(data)
        .iter()
        .filter(|n| !n.starts_with(".tmp-"))
        .count()
}

/// Temporary files left in the store.
fn temporaries(data: &Path) -> usize {
    store_files(data)
        .iter()
        .filter(|n| n.starts_with(".tmp-"))
        .count()
}

fn store_files(data: &Path) -> Vec<String> {
    let Ok(stages) = std::fs::read_dir(data.join("store")) else {
        return Vec::new();
    };
    stages
        .flatten()
        .flat_map(|s| std::fs::read_dir(s.path()).into_iter().flatten().flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn resume_and_compare(cfg: &Path, data: &Path, clean: &[(String, String)], what: &str) {
    let o = pipe(cfg, &["run"]);
    assert!(o.status.success(), "{what}: {}", text(&o));
    let got = outputs(data);
    let names = |v: &[(String, String)]| v.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&got), names(clean), "{what}: other files");
    for ((name, a), (_, b)) in got.iter().zip(clean) {
        assert!(
            a == b,
            "{what}: {name} differs from the uninterrupted run's"
        );
    }
    assert_eq!(temporaries(data), 0, "{what}: temporaries swept");
}

/// What a run leaves for its user: every artifact, `out/` and `pipe.lock`,
/// as comparable text, wall-clock times (`train_seconds`) blanked: they are
/// the only thing two runs may differ in.
fn outputs(data: &Path) -> Vec<(String, String)> {
    folder::files(data)
        .into_iter()
        // Hidden files (temporaries, the publication's generations: data/out
        // is their link) and the run records and history, which hold times.
        .filter(|(p, _)| !p.split('/').any(|c| c.starts_with('.')))
        .filter(|(p, _)| !p.starts_with("runs/") && !p.ends_with("history.parquet"))
        .map(|(p, bytes)| {
            let text = if p.ends_with(".parquet") {
                let batches = pipe::table::read(&data.join(&p)).unwrap();
                let kept: Vec<_> = batches
                    .iter()
                    .map(|b| {
                        let cols: Vec<usize> = (0..b.num_columns())
                            .filter(|&i| b.schema().field(i).name() != "train_seconds")
                            .collect();
                        b.project(&cols).unwrap()
                    })
                    .collect();
                format!("{kept:?}")
            } else if p.starts_with("store/train/") {
                // Heads as tensors, predictions and reports (with times) as JSON metadata.
                let mut file = pipe::tensors::TensorFile::from_bytes(&bytes, &p).unwrap();
                let mut v: serde_json::Value =
                    serde_json::from_str(&file.metadata["pipe.train"]).unwrap();
                blank_seconds(&mut v);
                file.metadata.insert("pipe.train".into(), v.to_string());
                format!("{file:?}")
            } else if p.ends_with(".md") {
                // The ranked table's last cell is the training time.
                String::from_utf8(bytes)
                    .unwrap()
                    .lines()
                    .map(|l| match l.trim_end_matches(" |").rsplit_once("| ") {
                        Some((head, last)) if last.parse::<f64>().is_ok() => format!("{head}| t |"),
                        _ => l.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            } else {
                blake3::hash(&bytes).to_hex().to_string()
            };
            // A training artifact holds its wall time, so its content hash
            // (in its name) and the keys of everything below it differ from
            // run to run: those are compared by stage and content only.
            let timed = ["train", "evaluate", "models", "results", "plots", "report"];
            let p = match p.strip_prefix("store/").and_then(|r| r.split_once('/')) {
                Some((stage, _)) if timed.contains(&stage) => format!("store/{stage}/*"),
                _ => p,
            };
            (p, text)
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn blank_seconds(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "train_seconds" {
                    *x = serde_json::Value::Null;
                } else {
                    blank_seconds(x);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(blank_seconds),
        _ => {}
    }
}

#[test]
fn config_typos_are_errors_with_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 2, "[resample]\nsample_rte = 24000\n");
    let o = pipe(&cfg, &["run"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("sample_rte") && t.contains("line 14"), "{t}");
    assert!(t.contains("pipeline.toml"), "{t}");
    assert!(
        !dir.path().join("data").exists(),
        "nothing runs on a bad config"
    );
}

#[test]
fn a_second_run_on_the_same_store_is_refused_while_the_first_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 2, "");
    let _held = pipe::dag::runlock::RunLock::acquire(&dir.path().join("data"), false).unwrap();
    let o = pipe(&cfg, &["run"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("another `pipe run`"), "{}", text(&o));
}

#[test]
fn bad_audio_fails_alone_and_is_reported_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let audio = dir.path().join("audio");
    std::fs::create_dir_all(&audio).unwrap();
    // One good clip (a rendered WAV from the fixtures), one empty file, one text file.
    let good = repo().join("tests/fixtures/audio");
    let wav = std::fs::read_dir(&good)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "wav") && !p.to_string_lossy().contains("nan"))
        .expect("a WAV fixture");
    std::fs::copy(&wav, audio.join("good.wav")).unwrap();
    std::fs::write(audio.join("empty.wav"), b"").unwrap();
    std::fs::write(
        audio.join("text.wav"),
        b"this is not audio at all, just some words",
    )
    .unwrap();
    let dims = pipe::dims::DIMENSIONS.join(",");
    let row = |id: &str| format!("{id},p_{id},{}", vec!["0.5"; 19].join(","));
    std::fs::write(
        dir.path().join("labels.csv"),
        format!(
            "clip_id,piece,{dims}\n{}\n{}\n{}\n",
            row("good"),
            row("empty"),
            row("text")
        ),
    )
    .unwrap();
    let cfg = dir.path().join("pipeline.toml");
    std::fs::write(
        &cfg,
        "[dataset]\nkind = \"audio_folder\"\naudio_dir = \"audio\"\nlabels = \"labels.csv\"\n[dataset.folds]\nk = 2\n",
    )
    .unwrap();
    let o = pipe(&cfg, &["run"]);
    assert!(!o.status.success(), "bad clips give a non-zero exit");
    let t = text(&o);
    assert!(t.contains("decode: 1 computed, 0 fresh, 2 failed"), "{t}");
    assert!(
        t.contains("empty.wav") && t.contains("text.wav"),
        "errors name the files: {t}"
    );
    assert!(
        t.contains("resample: 1 computed"),
        "the good clip goes on: {t}"
    );
}

#[test]
fn encode_writes_every_hidden_state_matching_the_pytorch_golden() {
    use pipe::encoder::checkpoint::WeightStore;
    let mut devices = vec!["cpu"];
    if pipe::gpu::Gpu::get().is_ok() {
        devices.push("gpu");
    }
    let spec = repo().join("tests/fixtures/spec");
    let golden = WeightStore::open(&spec.join("mert_tiny_preln/golden.safetensors")).unwrap();
    for device in devices {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("hs.safetensors");
        let o = Command::new(env!("CARGO_BIN_EXE_pipe"))
            .args(["encode", "--device", device, "--model"])
            .arg(spec.join("mert_tiny_preln"))
            .arg("--input")
            .arg(spec.join("inputs.safetensors"))
            .args(["--input-tensor", "wave_b", "-o"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{device}: {}", text(&o));
        let got = WeightStore::open(&out).unwrap();
        for i in 0..3 {
            let shape = golden
                .shape(&format!("hidden_states.{i}.b"))
                .unwrap()
                .to_vec();
            assert_eq!(shape, vec![56, 64]);
            let a = got.get(&format!("hidden_states.{i}"), &shape).unwrap();
            let b = golden.get(&format!("hidden_states.{i}.b"), &shape).unwrap();
            let scale = b.iter().fold(1f32, |m, x| m.max(x.abs()));
            let err = a
                .iter()
                .zip(&b)
                .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(
                err <= 1e-4 * scale,
                "{device} hidden_states.{i}: max error {err}"
            );
        }
    }
}

#[test]
fn encode_takes_an_audio_file_and_resamples_it_to_the_model_rate() {
    use pipe::encoder::checkpoint::WeightStore;
    let dir = tempfile::tempdir().unwrap();
    // 0.5 s at 44.1 kHz -> 12,000 samples at 24 kHz -> floor((12000 - 400) / 320) + 1 = 37 frames.
    let samples = (0..22_050).map(|n| (n as f32 * 0.05).sin() * 0.3).collect();
    let wav = dir.path().join("clip.wav");
    pipe::audio::wav::write_f32(
        &wav,
        &pipe::audio::Pcm {
            sample_rate: 44_100,
            samples,
        },
    )
    .unwrap();
    let out = dir.path().join("hs.safetensors");
    let o = Command::new(env!("CARGO_BIN_EXE_pipe"))
        .args(["encode", "--model"])
        .arg(repo().join("tests/fixtures/spec/mert_tiny_postln"))
        .arg("--input")
        .arg(&wav)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let got = WeightStore::open(&out).unwrap();
    assert_eq!(got.shape("hidden_states.2"), Some(&[37usize, 64][..]));
}

#[test]
fn a_clip_shorter_than_the_receptive_field_is_rejected_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let audio = dir.path().join("audio");
    std::fs::create_dir_all(&audio).unwrap();
    // 10 ms of 16-bit silence at 24 kHz: a valid WAV, too short for any encoder.
    let pcm = pipe::audio::Pcm {
        sample_rate: 24_000,
        samples: vec![0.0; 240],
    };
    pipe::audio::wav::write_i16(&audio.join("tiny.wav"), &pcm).unwrap();
    pipe::audio::wav::write_i16(&audio.join("tiny2.wav"), &pcm).unwrap();
    let dims = pipe::dims::DIMENSIONS.join(",");
    std::fs::write(
        dir.path().join("labels.csv"),
        format!(
            "clip_id,piece,{dims}\ntiny,p,{0}\ntiny2,q,{0}\n",
            vec!["0.5"; 19].join(",")
        ),
    )
    .unwrap();
    let cfg = dir.path().join("pipeline.toml");
    std::fs::write(
        &cfg,
        "[dataset]\nkind = \"audio_folder\"\naudio_dir = \"audio\"\nlabels = \"labels.csv\"\n\
         [dataset.folds]\nk = 2\n",
    )
    .unwrap();
    let o = pipe(&cfg, &["run"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("clip tiny") && t.contains("0.0100 s long") && t.contains("min_seconds"),
        "{t}"
    );
}

#[test]
fn clean_keeps_every_live_configs_work_and_asks_before_deleting() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 2, "");
    assert!(pipe(&cfg, &["run"]).status.success());
    let before = store_contents(&dir.path().join("data"));
    let cfg = config(dir.path(), 2, "[resample]\nquality = \"fast\"\n");
    assert!(pipe(&cfg, &["run"]).status.success());
    // The old resample outputs (2) and the old manifest (1) are what this
    // config no longer uses; they are listed by stage and item, with sizes.
    let o = pipe(&cfg, &["clean", "--dry-run"]);
    let t = text(&o);
    assert!(t.contains("would delete: 3 artifact(s)"), "{t}");
    assert!(t.contains("resample: 2 artifact(s)"), "{t}");
    assert!(t.contains("manifest: 1 artifact(s)"), "{t}");
    assert_eq!(
        store_contents(&dir.path().join("data")).len(),
        before.len() + 3,
        "dry run deletes nothing"
    );
    // Not on a terminal: it asks for --yes instead of deleting.
    let o = pipe(&cfg, &["clean"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--yes"), "{}", text(&o));
    assert_eq!(
        store_contents(&dir.path().join("data")).len(),
        before.len() + 3
    );
    let o = pipe(&cfg, &["clean", "--yes"]);
    assert!(text(&o).contains("deleted 3 artifact(s)"), "{}", text(&o));
    assert_eq!(store_contents(&dir.path().join("data")).len(), before.len());
    let o = pipe(&cfg, &["run"]);
    assert!(
        text(&o).contains("up to date"),
        "what the run uses survives: {}",
        text(&o)
    );

    // A second config in the same data folder (another resampler):
    // cleaning from the first keeps its work while its file exists.
    let trial = dir.path().join("trial.toml");
    let text_of = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("quality = \"fast\"", "quality = \"balanced\"");
    std::fs::write(&trial, text_of).unwrap();
    assert!(pipe(&trial, &["run"]).status.success());
    let with_trial = store_contents(&dir.path().join("data")).len();
    let o = pipe(&cfg, &["clean", "--yes"]);
    assert!(
        text(&o).contains("trial.toml"),
        "the trial is a root: {}",
        text(&o)
    );
    assert_eq!(
        store_contents(&dir.path().join("data")).len(),
        with_trial,
        "{}",
        text(&o)
    );
    // Its file gone, its own outputs (resample + manifest) go; what both use stays.
    std::fs::remove_file(&trial).unwrap();
    let o = pipe(&cfg, &["clean", "--yes"]);
    assert!(text(&o).contains("not kept:"), "{}", text(&o));
    assert!(text(&o).contains("deleted 3 artifact(s)"), "{}", text(&o));
    assert!(pipe(&cfg, &["run"]).status.success());
    assert!(text(&pipe(&cfg, &["run"])).contains("up to date"));
}

#[test]
fn clean_after_an_interrupted_run_keeps_what_it_finished() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 2, "");
    let o = Command::new(env!("CARGO_BIN_EXE_pipe"))
        .arg("-c")
        .arg(&cfg)
        .args(["run", "-j", "1"])
        .env("PIPE_FAULT_ABORT_AFTER_COMMITS", "3")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let o = pipe(&cfg, &["clean", "--dry-run"]);
    assert!(
        text(&o).contains("would delete: 0 artifact(s)"),
        "{}",
        text(&o)
    );
}

/// README.md and every docs/*.md page: each relative link `](target)` names a
/// file that exists (relative to the linking file's folder), and each
/// `#anchor` a heading of the markdown file it points to (a bare `#anchor`:
/// of the same file), by GitHub's anchor rule. README.md stays the front
/// door: at most 150 lines, the rest in docs/.
#[test]
fn readme_and_docs_links_resolve() {
    let root = repo();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let n = readme.lines().count();
    assert!(
        n <= 150,
        "README.md has {n} lines, at most 150: move the detail to a page under docs/"
    );
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    assert!(!pages.is_empty(), "docs/ has no .md pages");
    let mut files = vec![root.join("README.md")];
    files.extend(pages);

    let mut broken = Vec::new();
    for file in &files {
        let name = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .display()
            .to_string();
        let text = std::fs::read_to_string(file).unwrap();
        for target in markdown_links(&text) {
            if ["http://", "https://", "mailto:"]
                .iter()
                .any(|scheme| target.starts_with(scheme))
            {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let dest = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            if !dest.exists() {
                broken.push(format!(
                    "{name}: link ({target}): no file {}",
                    dest.display()
                ));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if dest.extension().is_none_or(|x| x != "md") {
                broken.push(format!(
                    "{name}: link ({target}): an anchor into {}, which is not markdown",
                    dest.display()
                ));
                continue;
            }
            let headings = heading_anchors(&std::fs::read_to_string(&dest).unwrap());
            if !headings.iter().any(|h| h == anchor) {
                broken.push(format!(
                    "{name}: link ({target}): {} has no heading with anchor #{anchor}",
                    dest.display()
                ));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "{} broken link(s):\n{}",
        broken.len(),
        broken.join("\n")
    );
}

/// The targets of the markdown links `[text](target)` outside ``` fences
/// (a `"title"` after the target dropped).
fn markdown_links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let end = rest.find(')').unwrap_or(rest.len());
            if let Some(target) = rest[..end].split_whitespace().next() {
                links.push(target.to_string());
            }
            rest = &rest[end..];
        }
    }
    links
}

/// The GitHub anchor of every heading of a markdown file; lines starting
/// with `#` inside ``` fences (TOML or shell comments) are no headings.
fn heading_anchors(text: &str) -> Vec<String> {
    let mut anchors = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced && line.starts_with('#') {
            anchors.push(pipe::report::markdown::github_anchor(
                line.trim_start_matches('#'),
            ));
        }
    }
    anchors
}
