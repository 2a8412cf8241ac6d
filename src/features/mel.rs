//! Log-mel statistics baseline: 128-band log-mel spectrogram, then mean and
//! population std of each band over frames → 256 values.
//!
//! Front end = MuQ's (SPEC §2.3) up to the dB step: 24 kHz, n_fft 2048, hop 240,
//! centered reflect padding, periodic Hann, power |X|², HTK mel filterbank
//! 0–12 kHz with 128 triangles and no area normalisation (torchaudio
//! `melscale_fbanks(norm=None, mel_scale="htk")`), `10·log10(max(mel, 1e-10))`,
//! last frame dropped (so M = ⌊N/240⌋ frames). No global normalisation: the
//! statistics are in dB. A clip shorter than one hop still yields one frame.

use anyhow::{Result, ensure};

use crate::audio::Pcm;
use crate::audio::mel::mel_bank;
use crate::audio::stft::Stft;

pub const SAMPLE_RATE: u32 = 24_000;
pub const N_FFT: usize = 2048;
pub const HOP: usize = 240;
pub const N_MELS: usize = 128;
pub const F_MAX: f64 = 12_000.0;
const AMIN: f32 = 1e-10;

/// Log-mel spectrogram `[frames, 128]` in dB (see module docs).
pub fn log_mel(pcm: &Pcm) -> Result<(usize, Vec<f32>)> {
    ensure!(
        pcm.sample_rate == SAMPLE_RATE,
        "log-mel baseline expects {SAMPLE_RATE} Hz audio, got {} Hz (resample first)",
        pcm.sample_rate
    );
    let stft = Stft::new(N_FFT, HOP);
    let bank = mel_bank(stft.bins(), F_MAX, N_MELS, SAMPLE_RATE);
    let frames = stft.frames(&pcm.samples);
    let power = stft.power(&frames);
    let bins = stft.bins();
    // Drop the last frame as MuQ does, but keep one for clips shorter than a hop.
    let used = (frames.count - 1).max(1);
    let mut out = Vec::with_capacity(used * N_MELS);
    for t in 0..used {
        let row = &power[t * bins..(t + 1) * bins];
        for b in &bank {
            let span = &row[b.first..b.first + b.weights.len()];
            let e: f32 = span.iter().zip(&b.weights).map(|(p, w)| p * w).sum();
            out.push(10.0 * e.max(AMIN).log10());
        }
    }
    Ok((used, out))
}

/// 256 values: mean of each of the 128 bands (dB), then population std of each.
pub fn logmel_stats(pcm: &Pcm) -> Result<Vec<f32>> {
    let (frames, mel) = log_mel(pcm)?;
    let seq = super::layers::FrameSeq {
        frames,
        dim: N_MELS,
        data: mel,
    };
    super::pool::Pooling::MeanStd.pool(&seq)
}

/// Names of [`logmel_stats`] components: `logmel_mean_000..127`, `logmel_std_000..127`.
pub fn logmel_stats_names() -> Vec<String> {
    let mean = (0..N_MELS).map(|b| format!("logmel_mean_{b:03}"));
    let std = (0..N_MELS).map(|b| format!("logmel_std_{b:03}"));
    mean.chain(std).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(hz: f64, amp: f32, secs: f64) -> Pcm {
        let n = (secs * f64::from(SAMPLE_RATE)) as usize;
        let samples = (0..n)
            .map(|i| {
                amp * (2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(SAMPLE_RATE)).sin()
                    as f32
            })
            .collect();
        Pcm {
            sample_rate: SAMPLE_RATE,
            samples,
        }
    }

    #[test]
    fn sine_peaks_in_the_band_containing_its_frequency() {
        // The band whose centre (HTK formula, computed here independently) is nearest 1 kHz.
        let step = 2595.0 * (1.0f64 + 12_000.0 / 700.0).log10() / 129.0;
        let expected = (0..128)
            .min_by(|&a, &b| {
                let c = |m: usize| {
                    (700.0 * (10f64.powf((m + 1) as f64 * step / 2595.0) - 1.0) - 1000.0).abs()
                };
                c(a).total_cmp(&c(b))
            })
            .unwrap();
        let v = logmel_stats(&sine(1000.0, 0.5, 1.0)).unwrap();
        assert_eq!(v.len(), 256);
        let peak = (0..128).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
        assert_eq!(peak, expected);
        // A steady tone: std of the peak band is small next to its level over the floor.
        assert!(v[128 + peak] < 3.0, "std {}", v[128 + peak]);
        assert!(
            v[peak] > v[10] + 60.0,
            "peak {} vs low band {}",
            v[peak],
            v[10]
        );
    }

    #[test]
    fn frame_count_drops_the_last_frame() {
        let (frames, mel) = log_mel(&sine(440.0, 0.1, 1.0)).unwrap();
        assert_eq!(frames, 100);
        assert_eq!(mel.len(), 100 * 128);
    }

    #[test]
    fn silence_and_tiny_clips_are_finite() {
        for n in [0usize, 1, 100, 24_000] {
            let pcm = Pcm {
                sample_rate: SAMPLE_RATE,
                samples: vec![0.0; n],
            };
            let v = logmel_stats(&pcm).unwrap();
            assert_eq!(v.len(), 256);
            assert!(v[..128].iter().all(|&x| x == -100.0), "n={n}");
            assert!(v[128..].iter().all(|&x| x == 0.0), "n={n}");
        }
        assert_eq!(logmel_stats_names().len(), 256);
        assert_eq!(logmel_stats_names()[128], "logmel_std_000");
    }

    #[test]
    fn wrong_sample_rate_is_an_error() {
        let pcm = Pcm {
            sample_rate: 44_100,
            samples: vec![0.0; 10],
        };
        let e = logmel_stats(&pcm).unwrap_err().to_string();
        assert!(e.contains("expects 24000 Hz audio, got 44100 Hz"), "{e}");
    }
}
