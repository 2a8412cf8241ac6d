//! A labelled dataset of sine tones for stage tests:
//! loudness and pitch vary by clip and the labels follow the loudness, so the
//! weight-free statistics carry signal and a head can learn it.

use pipe::audio::{Pcm, wav};
use std::path::Path;

/// Writes `n` tones at 24 kHz, clip `i` being `len(i)` samples long, as
/// `dir/audio/cNN.wav` in 8 pieces, and returns the labels CSV (header and
/// one row per clip) for the caller to extend and write.
pub fn tone_clips(dir: &Path, n: usize, len: impl Fn(usize) -> usize) -> String {
    let audio = dir.join("audio");
    std::fs::create_dir_all(&audio).unwrap();
    let dims = pipe::dims::DIMENSIONS.join(",");
    let mut csv = format!("clip_id,piece,{dims}\n");
    for i in 0..n {
        let amp = 0.05 + 0.4 * ((i * 7) % n) as f32 / n as f32;
        let f0 = 200.0 + 40.0 * (i % 5) as f32;
        let samples = (0..len(i))
            .map(|k| amp * (2.0 * std::f32::consts::PI * f0 * k as f32 / 24_000.0).sin())
            .collect();
        let pcm = Pcm {
            sample_rate: 24_000,
            samples,
        };
        wav::write_f32(&audio.join(format!("c{i:02}.wav")), &pcm).unwrap();
        let labels: Vec<String> = (0..19)
            .map(|d| format!("{:.4}", 0.2 + amp + 0.02 * ((d + i) % 3) as f32))
            .collect();
        csv.push_str(&format!("c{i:02},p{},{}\n", i % 8, labels.join(",")));
    }
    csv
}
