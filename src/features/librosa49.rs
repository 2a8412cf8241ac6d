//! The study's A3 inputs: 49 audio statistics per clip, computed as librosa
//! 0.10 computes them with its defaults (the study's code called librosa), at
//! the pipeline's resampled rate (24 kHz by default; the study loaded its
//! audio at 24 kHz too). Names from [`librosa49_names`], in this order:
//!
//! | names | librosa call (defaults) | statistic over frames |
//! |---|---|---|
//! | rms_mean, rms_std, rms_max | `feature.rms` | mean, std, max |
//! | centroid_mean/std | `feature.spectral_centroid` | mean, std |
//! | bandwidth_mean/std | `feature.spectral_bandwidth` (p = 2) | mean, std |
//! | rolloff_mean/std | `feature.spectral_rolloff` (0.85) | mean, std |
//! | zcr_mean/std | `feature.zero_crossing_rate` | mean, std |
//! | mfcc_mean_00..12, mfcc_std_00..12 | `feature.mfcc(n_mfcc=13)` | mean, std per coefficient |
//! | chroma_C .. chroma_B | `feature.chroma_stft` | mean per pitch class |
//!
//! "std" is the population std (numpy's default). All frames are 2048 samples
//! every 512, centred (`1 + ⌊N/512⌋` frames), each function with librosa's own
//! padding:
//!
//! - spectra: zero-padded (`pad_mode="constant"`), periodic Hann, `|X_k|` at
//!   `f_k = k·sr/2048`.
//! - rms: zero-padded, unwindowed, `sqrt(mean x²)`.
//! - zcr: edge-padded, unwindowed; samples with `|x| ≤ 1e-10` count as +0,
//!   and the rate is (number of sign changes between neighbours within the
//!   frame) / 2048 (`zero_pos=True`, the frame's first sample has no
//!   predecessor but still counts in the denominator).
//! - centroid `Σ f_k M̂_k`, bandwidth `sqrt(Σ M̂_k (f_k − centroid)²)` with
//!   `M̂ = M / Σ M` (`util.normalize`: a frame summing below f32's tiny is left
//!   unscaled, so silence gives 0); rolloff the lowest `f_k` whose cumulative
//!   magnitude reaches 0.85 of the frame's total (0 Hz for silence).
//! - MFCC: power `|X|²` → 128 Slaney mel bands 0..sr/2 (`norm="slaney"`) →
//!   `10·log10(max(mel, 1e-10))` → floored at (clip maximum − 80 dB)
//!   (`power_to_db(ref=1, amin=1e-10, top_db=80)`) → orthonormal DCT-II over
//!   the bands, first 13 coefficients.
//! - chroma: power spectrogram through `filters.chroma` (12 bins, centre
//!   octave 5, width 2, L2-normalised columns, C first) at the clip's tuning
//!   estimate, each frame divided by its largest value (silence stays 0);
//!   see [`crate::audio::chroma`]. The tuning is librosa's `estimate_tuning`
//!   (`piptrack` + `pitch_tuning`), re-implemented: it matches librosa's to
//!   within one 0.01-semitone histogram bin.
//!
//! Precision: librosa runs in float32 (numpy 2's float32 FFT), this in f64;
//! `tools/make_librosa49_fixture.py` makes the reference the tests compare to
//! (tolerances there). The values are unstandardised and span six orders of
//! magnitude (centroid and rolloff in the thousands of Hz, zcr and chroma
//! below 1), which is the study's A3 failure mode when a head does not
//! standardise its inputs.

use anyhow::{Result, ensure};

use crate::audio::Pcm;
use crate::audio::chroma::{self, F32_TINY};
use crate::audio::mel::{Band, slaney_mel_bank};
use crate::audio::stft::{Pad, Stft};

pub const FRAME: usize = 2048;
pub const HOP: usize = 512;
const ROLL_PERCENT: f64 = 0.85;
const N_MELS: usize = 128;
const N_MFCC: usize = 13;
const AMIN: f64 = 1e-10;
const TOP_DB: f64 = 80.0;
const ZC_THRESHOLD: f64 = 1e-10;
const PITCH_CLASSES: [&str; 12] = [
    "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B",
];

/// Component names of [`librosa49_stats`], in order.
pub fn librosa49_names() -> Vec<String> {
    let mut out: Vec<String> = [
        "rms_mean",
        "rms_std",
        "rms_max",
        "centroid_mean",
        "centroid_std",
        "bandwidth_mean",
        "bandwidth_std",
        "rolloff_mean",
        "rolloff_std",
        "zcr_mean",
        "zcr_std",
    ]
    .map(String::from)
    .to_vec();
    out.extend((0..N_MFCC).map(|i| format!("mfcc_mean_{i:02}")));
    out.extend((0..N_MFCC).map(|i| format!("mfcc_std_{i:02}")));
    out.extend(PITCH_CLASSES.iter().map(|c| format!("chroma_{c}")));
    out
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
    (m, var.sqrt())
}

/// Per-frame centroid, bandwidth and rolloff of one magnitude spectrum.
fn spectral_shape(mag: &[f64], hz: &[f64]) -> (f64, f64, f64) {
    let total: f64 = mag.iter().sum();
    let scale = if total < F32_TINY { 1.0 } else { total };
    let centroid = mag.iter().zip(hz).map(|(m, f)| m / scale * f).sum::<f64>();
    let spread = mag
        .iter()
        .zip(hz)
        .map(|(m, f)| m / scale * (f - centroid).powi(2))
        .sum::<f64>();
    let threshold = ROLL_PERCENT * total;
    let mut acc = 0.0;
    let mut rolloff = hz[hz.len() - 1];
    for (m, f) in mag.iter().zip(hz) {
        acc += m;
        if acc >= threshold {
            rolloff = *f;
            break;
        }
    }
    (centroid, spread.sqrt(), rolloff)
}

/// The first [`N_MFCC`] rows of the orthonormal DCT-II over `n` points
/// (`scipy.fftpack.dct(type=2, norm="ortho")`).
fn dct_rows(n: usize) -> Vec<Vec<f64>> {
    (0..N_MFCC)
        .map(|k| {
            let scale = if k == 0 {
                (1.0 / n as f64).sqrt()
            } else {
                (2.0 / n as f64).sqrt()
            };
            (0..n)
                .map(|i| {
                    let a = std::f64::consts::PI * k as f64 * (2 * i + 1) as f64 / (2 * n) as f64;
                    scale * a.cos()
                })
                .collect()
        })
        .collect()
}

fn apply_band(b: &Band, power: &[f64]) -> f64 {
    power[b.first..b.first + b.weights.len()]
        .iter()
        .zip(&b.weights)
        .map(|(p, &w)| p * f64::from(w))
        .sum()
}

/// The 49 statistics named by [`librosa49_names`] (module docs give formulas).
pub fn librosa49_stats(pcm: &Pcm) -> Result<Vec<f32>> {
    ensure!(
        pcm.sample_rate >= 8000,
        "librosa statistics need audio at 8 kHz or more, got {} Hz",
        pcm.sample_rate
    );
    let (v, _) = compute(pcm);
    Ok(v.iter().map(|&x| x as f32).collect())
}

/// The 49 values in f64 and the clip's tuning estimate.
fn compute(pcm: &Pcm) -> (Vec<f64>, f64) {
    let sr = pcm.sample_rate;
    let x = &pcm.samples;
    let stft = Stft::new(FRAME, HOP);
    let bins = stft.bins();

    // Time-domain frame statistics.
    let zeros = stft.frames_padded(x, Pad::Zeros);
    let rms: Vec<f64> = (0..zeros.count)
        .map(|t| {
            let e: f64 = zeros.frame(t).iter().map(|&v| f64::from(v).powi(2)).sum();
            (e / FRAME as f64).sqrt()
        })
        .collect();
    let edge = stft.frames_padded(x, Pad::Edge);
    let negative = |v: f32| f64::from(v) < -ZC_THRESHOLD;
    let zcr: Vec<f64> = (0..edge.count)
        .map(|t| {
            let fr = edge.frame(t);
            let n = fr
                .windows(2)
                .filter(|w| negative(w[0]) != negative(w[1]))
                .count();
            n as f64 / FRAME as f64
        })
        .collect();

    // Spectral shape on the magnitude spectrogram.
    let power = stft.power_f64(&zeros);
    let hz: Vec<f64> = (0..bins).map(|k| stft.bin_hz(k, sr)).collect();
    let (mut cen, mut bw, mut ro) = (Vec::new(), Vec::new(), Vec::new());
    let mut mag = vec![0.0; bins];
    for p in power.chunks_exact(bins) {
        for (m, &q) in mag.iter_mut().zip(p) {
            *m = q.sqrt();
        }
        let (c, b, r) = spectral_shape(&mag, &hz);
        cen.push(c);
        bw.push(b);
        ro.push(r);
    }

    // MFCC: dB mel spectrogram floored at the clip's peak − 80 dB, then DCT.
    let bank = slaney_mel_bank(FRAME, f64::from(sr) / 2.0, N_MELS, sr);
    let mut db: Vec<Vec<f64>> = power
        .chunks_exact(bins)
        .map(|p| {
            bank.iter()
                .map(|b| 10.0 * apply_band(b, p).max(AMIN).log10())
                .collect()
        })
        .collect();
    let top = db
        .iter()
        .flatten()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(v));
    for row in &mut db {
        for v in row.iter_mut() {
            *v = v.max(top - TOP_DB);
        }
    }
    let dct = dct_rows(N_MELS);
    let mfcc: Vec<Vec<f64>> = dct
        .iter()
        .map(|basis| {
            db.iter()
                .map(|row| basis.iter().zip(row).map(|(a, b)| a * b).sum())
                .collect()
        })
        .collect();

    // Chroma at the clip's estimated tuning.
    let tuning = chroma::estimate_tuning(&power, bins, FRAME, sr);
    let cbank = chroma::chroma_bank(sr, FRAME, tuning);
    let chroma = chroma::chroma_means(&power, bins, &cbank);

    let mut out = Vec::with_capacity(49);
    let (m, s) = mean_std(&rms);
    out.extend([m, s, rms.iter().fold(0f64, |a, &b| a.max(b))]);
    for f in [&cen, &bw, &ro, &zcr] {
        let (m, s) = mean_std(f);
        out.extend([m, s]);
    }
    let stats: Vec<(f64, f64)> = mfcc.iter().map(|c| mean_std(c)).collect();
    out.extend(stats.iter().map(|s| s.0));
    out.extend(stats.iter().map(|s| s.1));
    out.extend(chroma);
    (out, tuning)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const SR: u32 = 24_000;

    fn t(seconds: f64) -> Vec<f64> {
        let n = (seconds * f64::from(SR)).round() as usize;
        (0..n).map(|i| i as f64 / f64::from(SR)).collect()
    }

    fn harmonic(f0: f64, seconds: f64, amps: &[f64]) -> Vec<f64> {
        t(seconds)
            .iter()
            .map(|x| {
                amps.iter()
                    .enumerate()
                    .map(|(k, a)| a * (2.0 * std::f64::consts::PI * f0 * (k + 1) as f64 * x).sin())
                    .sum()
            })
            .collect()
    }

    /// The signals of tools/make_librosa49_fixture.py, formula for formula.
    fn signal(name: &str) -> Vec<f32> {
        let pi2 = 2.0 * std::f64::consts::PI;
        let x: Vec<f64> = match name {
            "tone" => {
                let h = harmonic(220.0, 2.0, &[1.0, 0.5, 1.0 / 3.0, 0.25, 0.2]);
                t(2.0)
                    .iter()
                    .zip(h)
                    .map(|(x, h)| 0.25 * (1.0 + 0.5 * (pi2 * 1.5 * x).sin()) * h)
                    .collect()
            }
            "chirp" => {
                let (f0, f1, dur) = (100.0, 6000.0, 1.5);
                t(1.5)
                    .iter()
                    .map(|x| 0.4 * (pi2 * (f0 * x + (f1 - f0) / (2.0 * dur) * x * x)).sin())
                    .collect()
            }
            "short_silence" => {
                let a = harmonic(440.0, 0.25, &[0.5, 0.2, 0.1]);
                let mut v = vec![0.0; 2400];
                v.extend(a.iter().zip(t(0.25)).map(|(a, x)| a * (-x / 0.08).exp()));
                v.extend(vec![0.0; 6000]);
                v
            }
            "detuned_triad" => {
                let mut v = vec![0.0; 24_000];
                for m in [60.0, 64.0, 67.0] {
                    let f = 440.0 * 2f64.powf((m - 69.0 + 0.30) / 12.0);
                    for (acc, h) in v.iter_mut().zip(harmonic(f, 1.0, &[1.0, 0.4, 0.2])) {
                        *acc += 0.15 * h;
                    }
                }
                v
            }
            other => panic!("no signal {other}"),
        };
        x.iter().map(|&v| v as f32).collect()
    }

    fn reference() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/librosa49/reference.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// Allowed |ours − librosa's| for a component whose librosa value is
    /// `want`: 1e-5 relative (librosa computes in float32, this in f64; the
    /// largest deviation measured on the fixture is 9e-7 relative, an MFCC
    /// mean, and 6e-5 absolute, in dB units),
    /// with absolute floors for values near 0, and half a bin (0.5 Hz) on
    /// the rolloff statistics, where one frame whose cumulative sum sits on
    /// the 85 % threshold may land one 11.7 Hz bin apart in float32.
    fn tolerance(name: &str, want: f64) -> f64 {
        let floor: f64 = match name {
            n if n.starts_with("rms") || n.starts_with("zcr") || n.starts_with("chroma") => 1e-6,
            n if n.starts_with("centroid") || n.starts_with("bandwidth") => 1e-3,
            n if n.starts_with("rolloff") => 0.5,
            n if n.starts_with("mfcc") => 1e-3,
            _ => unreachable!(),
        };
        floor.max(1e-5 * want.abs())
    }

    #[test]
    fn matches_librosa_on_synthetic_signals() {
        let r = reference();
        let names = librosa49_names();
        let signals = r["signals"].as_object().unwrap();
        assert_eq!(signals.len(), 4);
        for (sig, e) in signals {
            let x = signal(sig);
            // Same signal on both sides (the float32 samples' sums).
            assert_eq!(x.len() as u64, e["samples"].as_u64().unwrap(), "{sig}");
            let sum: f64 = x.iter().map(|&v| f64::from(v)).sum();
            let sq: f64 = x.iter().map(|&v| f64::from(v).powi(2)).sum();
            assert!((sum - e["sum"].as_f64().unwrap()).abs() < 1e-9, "{sig}");
            assert!((sq - e["sum_sq"].as_f64().unwrap()).abs() < 1e-9, "{sig}");
            let pcm = Pcm {
                sample_rate: SR,
                samples: x,
            };
            let (got, tuning) = compute(&pcm);
            let want_tuning = e["tuning"].as_f64().unwrap();
            // librosa's histogram bins are 0.01 wide; a peak whose residual sits on
            // a bin edge may fall on the other side in float32.
            assert!(
                (tuning - want_tuning).abs() < 0.01 + 1e-9,
                "{sig}: tuning {tuning} vs librosa {want_tuning}"
            );
            if std::env::var_os("LIBROSA49_DEVIATIONS").is_some() {
                eprintln!("{sig} tuning {tuning} librosa {want_tuning}");
            }
            let want: Vec<f64> = e["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(got.len(), 49);
            for (i, name) in names.iter().enumerate() {
                let tol = tolerance(name, want[i]);
                if std::env::var_os("LIBROSA49_DEVIATIONS").is_some() {
                    eprintln!(
                        "{sig} {name} {} {} {:.3e}",
                        got[i],
                        want[i],
                        (got[i] - want[i]).abs()
                    );
                }
                assert!(
                    (got[i] - want[i]).abs() <= tol,
                    "{sig} {name}: {} vs librosa {} (tolerance {tol})",
                    got[i],
                    want[i]
                );
            }
        }
    }

    #[test]
    fn unstandardised_scale_spans_thousands_to_hundredths() {
        // The study's A3 failure mode: fed raw to a sigmoid MLP (`standardize = false`),
        // the Hz-valued components dominate every pre-activation.
        let v = librosa49_stats(&Pcm {
            sample_rate: SR,
            samples: signal("chirp"),
        })
        .unwrap();
        let names = librosa49_names();
        let get = |n: &str| v[names.iter().position(|x| x == n).unwrap()];
        assert!(get("centroid_mean") > 1000.0 && get("rolloff_mean") > 1000.0);
        assert!(get("centroid_std") > 1000.0, "{}", get("centroid_std"));
        assert!(get("zcr_mean") < 1.0 && get("rms_mean") < 1.0);
        assert!((0.0..=1.0).contains(&get("chroma_A")));
        let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        let min = v.iter().fold(f32::INFINITY, |m, x| m.min(x.abs()));
        assert!(max / min > 1e4, "range {min} .. {max}");
    }

    #[test]
    fn silence_and_empty_clips_are_finite() {
        for n in [0usize, 1, 100, 24_000] {
            let v = librosa49_stats(&Pcm {
                sample_rate: SR,
                samples: vec![0.0; n],
            })
            .unwrap();
            assert_eq!(v.len(), 49);
            assert!(v.iter().all(|x| x.is_finite()), "n={n}: {v:?}");
            // Silence: no energy, no crossings, no chroma; MFCC 0 is the −100 dB
            // floor times √128 (the orthonormal DCT's DC row).
            let names = librosa49_names();
            let get = |s: &str| v[names.iter().position(|x| x == s).unwrap()];
            assert_eq!(get("rms_max"), 0.0);
            assert_eq!(get("zcr_mean"), 0.0);
            assert_eq!(get("centroid_mean"), 0.0);
            assert_eq!(get("chroma_C"), 0.0);
            assert!((get("mfcc_mean_00") + 100.0 * 128f32.sqrt()).abs() < 1e-3);
        }
        let e = librosa49_stats(&Pcm {
            sample_rate: 4000,
            samples: vec![0.0; 10],
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("8 kHz or more, got 4000 Hz"), "{e}");
    }

    #[test]
    fn names_are_unique_and_49() {
        let n = librosa49_names();
        let set: std::collections::HashSet<_> = n.iter().collect();
        assert_eq!((n.len(), set.len()), (49, 49));
        assert_eq!(n[11], "mfcc_mean_00");
        assert_eq!(n[48], "chroma_B");
    }
}
