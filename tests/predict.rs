//! Scoring new recordings: the bundles `pipe run` exports, `pipe predict`
//! (features identical to the pipeline's, segments, outputs, errors) and
//! `pipe serve` from a real HTTP client, on a small trained pipeline.

use arrow_array::{Array, FixedSizeListArray, Float32Array, Int32Array, ListArray, StringArray};
use pipe::head::HeadInput;
use pipe::predict::{Bundle, LoadOptions, Scorer, Segmenting, Timings};
use pipe::table;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::common::bin;
use crate::common::pipeline;
use crate::common::tones;
use bin::{ok, pipe, text};

const N_CLIPS: usize = 24;

const CONFIG: &str = r#"
[dataset]
kind = "audio_folder"
audio_dir = "audio"
labels = "labels.csv"
[dataset.folds]
k = 4
[encoders.ctl]
arch = "mert"
random = "control"
device = "cpu"
[encoders.cached]
arch = "mert"
random = "control"
seed = 5
device = "cpu"
cache_states = "7-12"
[encoders.tiny]
arch = "mert"
weights = "models/tiny"
device = "cpu"
[encoders.absent]
arch = "mert"
weights = "no/such/folder"
[features.raw]
encoder = "raw_stats"
[features.pooled]
encoder = "ctl"
layers = "7-12"
[features.from_cache]
encoder = "cached"
layers = "9-12"
pooling = "mean_std"
[features.frames]
encoder = "ctl"
layers = "10-12"
pooling = "frames"
max_frames = 12
[features.tiny]
encoder = "tiny"
layers = "1-2"
[features.real]
encoder = "absent"
[evaluation]
resamples = 50
[experiments.RAW]
features = "raw"
description = "raw statistics, MLP"
head = { max_epochs = 15, hidden = [8] }
[experiments.POOLED]
features = "pooled"
head = { max_epochs = 5, hidden = [8] }
[experiments.CACHED]
features = "from_cache"
head = { arch = "linear", max_epochs = 5 }
[experiments.ATT]
features = "frames"
head = { arch = "attention", hidden = [8], max_epochs = 3, batch_size = 4 }
[experiments.TINY]
features = "tiny"
head = { max_epochs = 3, hidden = [8] }
[experiments.B0]
features = "real"
"#;

/// One trained pipeline for every test of this file: 24 half-second tones
/// (clip 5 is 0.75 s), plus a tiny "real-weights" encoder (a copy of the
/// spec's MERT-tiny) whose hash the bundle records.
fn trained() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let csv = tones::tone_clips(
            dir.path(),
            N_CLIPS,
            |i| if i == 5 { 18_000 } else { 12_000 },
        );
        std::fs::write(dir.path().join("labels.csv"), csv).unwrap();
        let tiny = dir.path().join("models/tiny");
        std::fs::create_dir_all(&tiny).unwrap();
        let spec =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spec/mert_tiny_postln");
        for f in ["config.json", "model.safetensors"] {
            std::fs::copy(spec.join(f), tiny.join(f)).unwrap();
        }
        std::fs::write(dir.path().join("pipeline.toml"), CONFIG).unwrap();
        pipeline::run(dir.path(), CONFIG);
        dir
    })
    .path()
}

fn cfg() -> PathBuf {
    trained().join("pipeline.toml")
}

fn model_dir(id: &str) -> PathBuf {
    trained().join("data/out/models").join(id)
}

/// A feature table's rows by clip id: pooled vectors or flattened frames.
fn feature_rows(set: &str) -> Vec<(String, Vec<f32>)> {
    let b =
        table::read_single(&trained().join(format!("data/out/features/{set}.parquet"))).unwrap();
    let ids = table::column::<StringArray>(&b, "clip_id").unwrap();
    let values = |a: &FixedSizeListArray| -> Vec<f32> {
        let v = a.values().as_any().downcast_ref::<Float32Array>().unwrap();
        v.values()[..a.len() * a.value_length() as usize].to_vec()
    };
    (0..b.num_rows())
        .map(|i| {
            let v = match b.column_by_name("frames") {
                Some(c) => {
                    let l = c.as_any().downcast_ref::<ListArray>().unwrap().value(i);
                    values(l.as_any().downcast_ref::<FixedSizeListArray>().unwrap())
                }
                None => {
                    let c = table::column::<FixedSizeListArray>(&b, "features").unwrap();
                    let row = c.value(i);
                    row.as_any()
                        .downcast_ref::<Float32Array>()
                        .unwrap()
                        .values()
                        .to_vec()
                }
            };
            (ids.value(i).to_string(), v)
        })
        .collect()
}

#[test]
fn bundles_describe_themselves_and_their_fold_heads_give_the_out_of_fold_predictions() {
    let out = trained().join("data/out");
    let summary = table::read_single(&out.join("results/summary.parquet")).unwrap();
    let exp = table::column::<StringArray>(&summary, "experiment").unwrap();
    let r2 = table::column::<arrow_array::Float64Array>(&summary, "r2").unwrap();
    for id in ["RAW", "POOLED", "CACHED", "ATT", "TINY"] {
        let dir = model_dir(id);
        for f in ["heads.safetensors", "model.json", "README.md"] {
            assert!(dir.join(f).is_file(), "{id}: {f} missing");
        }
        let card: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("model.json")).unwrap()).unwrap();
        let row = (0..summary.num_rows())
            .find(|&i| exp.value(i) == id)
            .unwrap();
        assert_eq!(card["cv"]["r2"].as_f64().unwrap(), r2.value(row), "{id}");
        assert_eq!(card["dimensions"].as_array().unwrap().len(), 19);
        assert_eq!(
            card["heads"].as_array().unwrap().len(),
            4,
            "{id}: 4 fold heads"
        );
        assert_eq!(card["clips"]["n"], N_CLIPS, "{id}");
        assert_eq!(card["clips"]["max_s"].as_f64().unwrap(), 0.75, "{id}");
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        let control = ["POOLED", "CACHED", "ATT"].contains(&id);
        assert_eq!(readme.contains("**CONTROL.**"), control, "{id}: {readme}");
        assert!(readme.contains("1-7 rating scale") || readme.contains("training labels"));
    }
    // The real-weights encoder is named by its hash; no bundle for B0 (not run).
    let tiny: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model_dir("TINY").join("model.json")).unwrap())
            .unwrap();
    let bytes = std::fs::read(trained().join("models/tiny/model.safetensors")).unwrap();
    let hash = blake3::hash(&bytes).to_hex().to_string();
    assert_eq!(tiny["inputs"][0]["encoder"]["weights_hash"], hash.as_str());
    assert!(!model_dir("B0").exists());

    // Fold k's head, read back from the bundle, gives fold k's clips the very
    // out-of-fold predictions of results/predictions.parquet.
    let preds = table::read_single(&out.join("results/predictions.parquet")).unwrap();
    let (p_exp, p_clip, p_fold, p_pred) = (
        table::column::<StringArray>(&preds, "experiment").unwrap(),
        table::column::<StringArray>(&preds, "clip_id").unwrap(),
        table::column::<Int32Array>(&preds, "fold").unwrap(),
        table::column::<Float32Array>(&preds, "y_pred").unwrap(),
    );
    for (id, set) in [("RAW", "raw"), ("ATT", "frames")] {
        let bundle = Bundle::read(&model_dir(id)).unwrap();
        let rows = feature_rows(set);
        let dims = bundle.heads[0].dims();
        for (k, head) in bundle.heads.iter().enumerate() {
            let mine: Vec<usize> = (0..preds.num_rows())
                .filter(|&i| p_exp.value(i) == id && p_fold.value(i) == k as i32)
                .collect();
            let mut clips: Vec<String> =
                mine.iter().map(|&i| p_clip.value(i).to_string()).collect();
            clips.dedup();
            let x: Vec<&[f32]> = clips
                .iter()
                .map(|c| rows.iter().find(|r| &r.0 == c).unwrap().1.as_slice())
                .collect();
            let input = if set == "frames" {
                HeadInput::Frames(pipe::head::FrameSet::new(dims.a, &x).unwrap())
            } else {
                HeadInput::Pooled {
                    values: x.concat(),
                    dim: dims.a,
                }
            };
            let got = head.predict(&input).unwrap();
            let want: Vec<f32> = mine.iter().map(|&i| p_pred.value(i)).collect();
            assert_eq!(got, want, "{id} fold {k}");
        }
    }
}

#[test]
fn predict_computes_the_pipelines_features_bit_for_bit() {
    for (id, set) in [
        ("RAW", "raw"),
        ("POOLED", "pooled"),
        ("CACHED", "from_cache"),
        ("ATT", "frames"),
        ("TINY", "tiny"),
    ] {
        let scorer = Scorer::load(
            Bundle::read(&model_dir(id)).unwrap(),
            &LoadOptions::default(),
        )
        .unwrap();
        for (clip, stored) in feature_rows(set).iter().take(3) {
            let mut t = Timings::default();
            let wav = trained().join(format!("audio/{clip}.wav"));
            let pcm = scorer.audio_file(&wav, &mut t).unwrap();
            let mine = scorer.features(&pcm).unwrap();
            assert_eq!(&mine[0], stored, "{id}: clip {clip}");
            // Scored whole (no longer than the longest training clip).
            let s = scorer.score(&pcm, Segmenting::Auto, &mut t).unwrap();
            assert_eq!(s.segments.len(), 1);
            assert_eq!(s.overall, scorer.apply_heads(&[mine]).unwrap());
        }
    }
}

/// A 2.1 s tone (longer than any training clip) as 16-bit WAV at 44.1 kHz.
fn long_take(dir: &Path) -> PathBuf {
    let samples = (0..(2.1 * 44_100.0) as usize)
        .map(|k| 0.3 * (2.0 * std::f32::consts::PI * 220.0 * k as f32 / 44_100.0).sin())
        .collect();
    let pcm = pipe::audio::Pcm {
        sample_rate: 44_100,
        samples,
    };
    let path = dir.join("long take.wav");
    pipe::audio::wav::write_i16(&path, &pcm).unwrap();
    path
}

#[test]
fn predict_cli_scores_files_in_segments_and_writes_every_output() {
    let tmp = tempfile::tempdir().unwrap();
    let long = long_take(tmp.path());
    let clip = trained().join("audio/c03.wav");
    let parquet = tmp.path().join("scores.parquet");
    let plot = tmp.path().join("curves.png");
    let args = [
        "predict",
        "--experiment",
        "RAW",
        clip.to_str().unwrap(),
        long.to_str().unwrap(),
        "--output",
        parquet.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ];
    let said = ok(pipe(&cfg(), &args));
    // An audio-folder dataset's labels have no rating scale: scores on theirs.
    assert!(
        said.contains("scores on the scale of the training labels"),
        "{said}"
    );
    assert!(
        said.contains("mood_imagination") && said.contains("c03.wav"),
        "{said}"
    );
    // 2.1 s in windows of the median clip length (0.5 s), the last ending with the file.
    assert!(said.contains("scored in 5 segments"), "{said}");

    let t = table::read_single(&parquet).unwrap();
    let file = table::column::<StringArray>(&t, "file").unwrap();
    let seg = table::column::<Int32Array>(&t, "segment").unwrap();
    let start = table::column::<arrow_array::Float64Array>(&t, "start_s").unwrap();
    let end = table::column::<arrow_array::Float64Array>(&t, "end_s").unwrap();
    let timing = table::column::<arrow_array::Float64Array>(&t, "timing").unwrap();
    // c03: overall + 1 segment; the long take: overall + 5.
    assert_eq!(t.num_rows(), 2 + 6);
    let long_rows: Vec<usize> = (0..t.num_rows())
        .filter(|&i| file.value(i).ends_with("long take.wav"))
        .collect();
    assert!(seg.is_null(long_rows[0]));
    let segs: Vec<(f64, f64)> = long_rows[1..]
        .iter()
        .map(|&i| (start.value(i), end.value(i)))
        .collect();
    assert_eq!(segs[0], (0.0, 0.5));
    assert!(
        (segs[4].1 - 2.1).abs() < 1e-9 && (segs[4].0 - 1.6).abs() < 1e-9,
        "{segs:?}"
    );
    // Overall = the length-weighted mean of the segments (here equal lengths).
    let mean: f64 = long_rows[1..].iter().map(|&i| timing.value(i)).sum::<f64>() / 5.0;
    assert!((timing.value(long_rows[0]) - mean).abs() < 1e-5);
    // The labels' scale (0.2 .. 0.7 here).
    assert!((0.0..1.2).contains(&timing.value(long_rows[0])));
    let png = std::fs::read(tmp.path().join("curves-long take.png")).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    assert!(tmp.path().join("curves-c03.png").is_file());

    // The labels' scale and the other formats.
    let json = tmp.path().join("s.json");
    let args = [
        "predict",
        "--experiment",
        "RAW",
        "--label-scale",
        "--segment",
        "whole",
        long.to_str().unwrap(),
        "-o",
        json.to_str().unwrap(),
    ];
    ok(pipe(&cfg(), &args));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let f = &v["files"][0];
    assert_eq!(f["segments"].as_array().unwrap().len(), 1);
    let whole = f["overall"]["timing"].as_f64().unwrap();
    assert!((0.0..1.1).contains(&whole), "label scale: {whole}");
    let csv = tmp.path().join("s.csv");
    let args = [
        "predict",
        "--experiment",
        "RAW",
        clip.to_str().unwrap(),
        "-o",
        csv.to_str().unwrap(),
    ];
    ok(pipe(&cfg(), &args));
    let text_csv = std::fs::read_to_string(&csv).unwrap();
    assert!(
        text_csv.starts_with("file,segment,start_s,end_s,timing,"),
        "{text_csv}"
    );
    assert_eq!(text_csv.lines().count(), 3);

    // A bundle copied elsewhere scores with no pipeline description.
    let copy = tmp.path().join("bundle");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(
        model_dir("RAW").join("heads.safetensors"),
        copy.join("heads.safetensors"),
    )
    .unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_pipe"))
        .args([
            "predict",
            "--model",
            copy.to_str().unwrap(),
            clip.to_str().unwrap(),
        ])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn predict_names_what_is_wrong_and_still_scores_the_good_files() {
    let tmp = tempfile::tempdir().unwrap();
    let clip = trained().join("audio/c01.wav");
    let clip = clip.to_str().unwrap();
    // Default experiment: the best-ranked audio experiment, said on stderr.
    let o = pipe(&cfg(), &["predict", clip]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("the best-ranked experiment"),
        "{}",
        text(&o)
    );

    let o = pipe(&cfg(), &["predict", "--experiment", "NOPE", clip]);
    let t = text(&o);
    assert!(
        !o.status.success() && t.contains("no experiment `NOPE`") && t.contains("RAW"),
        "{t}"
    );
    let o = pipe(&cfg(), &["predict", "--experiment", "B0", clip]);
    let t = text(&o);
    assert!(
        !o.status.success() && t.contains("did not run") && t.contains("no/such/folder"),
        "{t}"
    );

    // Unreadable and too-short files: named, the others still scored, exit non-zero.
    let bad = tmp.path().join("notes.wav");
    std::fs::write(&bad, b"these are not samples").unwrap();
    let short = tmp.path().join("blip.wav");
    let pcm = pipe::audio::Pcm {
        sample_rate: 24_000,
        samples: vec![0.1; 100],
    };
    pipe::audio::wav::write_f32(&short, &pcm).unwrap();
    let o = pipe(
        &cfg(),
        &[
            "predict",
            "--experiment",
            "RAW",
            bad.to_str().unwrap(),
            clip,
            short.to_str().unwrap(),
        ],
    );
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("notes.wav") && t.contains("not a recognised audio file"),
        "{t}"
    );
    assert!(t.contains("blip.wav") && t.contains("shorter than"), "{t}");
    assert!(
        t.contains("c01.wav") && t.contains("2 of 3 file(s) could not be scored"),
        "{t}"
    );

    // The encoder's weights changed since training: refused, never silently different.
    let moved = tmp.path().join("tiny");
    std::fs::create_dir_all(&moved).unwrap();
    let src = trained().join("models/tiny");
    std::fs::copy(src.join("config.json"), moved.join("config.json")).unwrap();
    let mut bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(moved.join("model.safetensors"), &bytes).unwrap();
    let w = moved.to_str().unwrap();
    let o = pipe(
        &cfg(),
        &["predict", "--experiment", "TINY", "--weights", w, clip],
    );
    let t = text(&o);
    assert!(
        !o.status.success() && t.contains("was trained on") && t.contains("blake3"),
        "{t}"
    );
    // The right weights elsewhere are accepted; missing ones are named.
    std::fs::copy(
        src.join("model.safetensors"),
        moved.join("model.safetensors"),
    )
    .unwrap();
    ok(pipe(
        &cfg(),
        &["predict", "--experiment", "TINY", "--weights", w, clip],
    ));
    let none = tmp.path().join("none");
    let o = pipe(
        &cfg(),
        &[
            "predict",
            "--experiment",
            "TINY",
            "--weights",
            none.to_str().unwrap(),
            clip,
        ],
    );
    let t = text(&o);
    assert!(
        !o.status.success() && t.contains("missing") && t.contains("--weights"),
        "{t}"
    );
}

/// One HTTP/1.1 request over a TCP connection: the status and the JSON body.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    ctype: &str,
    body: &[u8],
) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !ctype.is_empty() {
        req += &format!("Content-Type: {ctype}\r\n");
    }
    req += "\r\n";
    s.write_all(req.as_bytes()).unwrap();
    // The server may answer (413) before reading a large body; ignore a reset.
    let _ = s.write_all(body);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).to_string();
    let (head, json) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no response: {text:?}"));
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let json = serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, json)
}

/// A minimal multipart body with one file part.
fn multipart(name: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "pipe-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[test]
fn serve_answers_predict_health_and_model_and_survives_bad_uploads() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pipe"))
        .args([
            "-c",
            cfg().to_str().unwrap(),
            "serve",
            "--experiment",
            "RAW",
        ])
        .args([
            "--addr",
            "127.0.0.1:0",
            "--max-mb",
            "0.2",
            "--max-seconds",
            "5",
            "--threads",
            "3",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _guard = Kill(child);
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .expect(&line)
        .to_string();
    let addr = base.strip_prefix("http://").unwrap().to_string();
    let get = |path: &str| http(&addr, "GET", path, "", b"");
    let post = |path: &str, ctype: &str, body: &[u8]| http(&addr, "POST", path, ctype, body);

    let (s, v) = get("/health");
    assert_eq!((s, v["status"].as_str()), (200, Some("ok")));
    let (s, v) = get("/model");
    assert_eq!(s, 200);
    assert_eq!(v["experiment"], "RAW");
    assert!(v["cv"]["r2"].is_number());

    let wav = std::fs::read(trained().join("audio/c02.wav")).unwrap();
    let (s, v) = post("/predict", "audio/wav", &wav);
    assert_eq!(s, 200, "{v}");
    // The same scores as `pipe predict` on the file.
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("c02.json");
    let c02 = trained().join("audio/c02.wav");
    let args = [
        "predict",
        "--experiment",
        "RAW",
        "-o",
        json.to_str().unwrap(),
        c02.to_str().unwrap(),
    ];
    ok(pipe(&cfg(), &args));
    let cli: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(cli["files"][0]["overall"], v["overall"]);
    let timing = v["overall"]["timing"].as_f64().unwrap();
    assert!((0.0..1.2).contains(&timing), "{v}");
    assert!(
        v["scale"].as_str().unwrap().contains("training labels"),
        "{v}"
    );
    let (ctype, body) = multipart("c02.wav", &wav);
    let (s, v2) = post("/predict", &ctype, &body);
    assert_eq!(s, 200, "{v2}");
    assert_eq!(v2["overall"], v["overall"]);
    let (s, v3) = post("/predict?segment=0.25", "audio/wav", &wav);
    assert_eq!(s, 200, "{v3}");
    assert_eq!(v3["segments"].as_array().unwrap().len(), 2, "{v3}");

    // Bad uploads: a reason each, and the server still answers.
    let (s, v) = post("/predict", "audio/wav", b"");
    assert_eq!(s, 400, "{v}");
    let (s, v) = post("/predict", "audio/wav", b"this is not audio at all");
    assert!(
        s == 415 && v["error"].as_str().unwrap().contains("not usable audio"),
        "{s} {v}"
    );
    let (s, v) = post("/predict", "audio/wav", &vec![0u8; 300_000]);
    assert!(
        s == 413 && v["error"].as_str().unwrap().contains("limit"),
        "{s} {v}"
    );
    let six = pipe::audio::Pcm {
        sample_rate: 8_000,
        samples: vec![0.1; 6 * 8_000],
    };
    pipe::audio::wav::write_i16(&tmp.path().join("six.wav"), &six).unwrap();
    let (s, v) = post(
        "/predict",
        "audio/wav",
        &std::fs::read(tmp.path().join("six.wav")).unwrap(),
    );
    assert!(
        s == 413
            && v["error"]
                .as_str()
                .unwrap()
                .contains("over the limit of 5 s"),
        "{s} {v}"
    );
    let (s, _) = get("/nowhere");
    assert_eq!(s, 404);
    let (s, _) = get("/predict");
    assert_eq!(s, 405);

    // Concurrent requests are all served.
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let (addr, wav) = (addr.clone(), wav.clone());
            std::thread::spawn(move || http(&addr, "POST", "/predict", "audio/wav", &wav))
        })
        .collect();
    for h in handles {
        let (s, v) = h.join().unwrap();
        assert_eq!(s, 200);
        assert_eq!(v["overall"]["timing"].as_f64().unwrap(), timing);
    }
    assert_eq!(get("/health").0, 200);
}
