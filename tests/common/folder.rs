//! A bring-your-own dataset in a test folder for the real `pipe` binary
//! (with `bin.rs` to run it): short synthetic clips, one piece each,
//! labels that vary in every fold, so a whole pipeline (decode ... report)
//! runs in seconds.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `n` clips of `seconds` each (a chirp with a clip-specific pitch and
/// loudness), `audio/<id>.wav`, and `labels.csv` with one piece per clip.
pub fn audio_folder(dir: &Path, n: usize, seconds: f64) {
    let audio = dir.join("audio");
    std::fs::create_dir_all(&audio).unwrap();
    let rate = 16_000u32;
    let dims = pipe::dims::DIMENSIONS.join(",");
    let mut csv = format!("clip_id,piece,{dims}\n");
    for i in 0..n {
        let f0 = 110.0 * (1.0 + i as f64 * 0.37);
        let amp = 0.1 + 0.08 * (i % 5) as f64;
        let samples = (0..(seconds * f64::from(rate)) as usize)
            .map(|t| {
                let x = t as f64 / f64::from(rate);
                (amp * (2.0 * std::f64::consts::PI * f0 * x * (1.0 + 0.2 * x)).sin()) as f32
            })
            .collect();
        pipe::audio::wav::write_i16(
            &audio.join(format!("c{i}.wav")),
            &pipe::audio::Pcm {
                sample_rate: rate,
                samples,
            },
        )
        .unwrap();
        // Labels in [1/7, 1] that differ between clips on every dimension.
        let labels: Vec<String> = (0..19)
            .map(|d| format!("{:.4}", 0.2 + 0.7 * (((i * 7 + d * 3) % 11) as f64) / 10.0))
            .collect();
        csv.push_str(&format!("c{i},piece{i},{}\n", labels.join(",")));
    }
    std::fs::write(dir.join("labels.csv"), csv).unwrap();
}

/// A `pipeline.toml` over [`audio_folder`]: k = 2 folds, the weight-free
/// baseline and one quick linear-probe experiment, plus `extra`.
pub fn pipeline(dir: &Path, extra: &str) -> PathBuf {
    let text = format!(
        r#"
[dataset]
kind = "audio_folder"
audio_dir = "audio"
labels = "labels.csv"

[dataset.folds]
k = 2

[features.raw_stats]
encoder = "raw_stats"

[experiments.A3]
features = "raw_stats"
head = {{ arch = "linear", max_epochs = 20, patience = 5, batch_size = 8 }}

[evaluation]
resamples = 50
label_only = []   # the label-only baselines: tests/experiments_stage.rs
{extra}
"#
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Every file under `dir`, as (relative path, bytes), sorted.
pub fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}
