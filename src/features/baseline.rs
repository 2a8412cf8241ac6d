//! Weight-free audio statistics per clip (18 values, names from [`audio_stats_names`]).
//!
//! Input: 24 kHz mono. Framing: [`Stft`] with frame 2048, hop 512, centered reflect
//! padding (frames = 1 + ⌊N/512⌋); time-domain frame stats use the same (unwindowed)
//! frames, spectral stats the Hann-windowed magnitude `M_k = |X_k|` at
//! `f_k = k·24000/2048` Hz. "mean, std" = mean and population std over frames.
//!
//! | name | definition |
//! |---|---|
//! | duration_s | N / 24000 |
//! | peak | max_n \|x_n\| |
//! | crest_factor | peak / sqrt(mean_n x_n²) (0 for silence) |
//! | rms_mean/std/max | per frame sqrt(mean x²) |
//! | dynamic_range_db | 20·log10(max(P95,1e-10)/max(P5,1e-10)) of frame RMS, percentiles by linear interpolation at q·(T−1) on the sorted values |
//! | zcr_mean/std | per frame: count of n with sign(x_n) ≠ sign(x_{n−1}) (x ≥ 0 counts as +) / (2047/24000 s), in crossings per second |
//! | centroid_mean/std | Σ f_k M_k / Σ M_k (Hz; 0 for a silent frame) |
//! | rolloff85_mean/std | smallest f_k with Σ_{j≤k} M_j ≥ 0.85·Σ M (Hz; 0 for a silent frame) |
//! | flatness_mean/std | exp(mean_k ln P_k) / mean_k P_k with P_k = max(M_k², 1e-10) (1 for a silent frame) |
//! | bandwidth_mean/std | sqrt(Σ M_k (f_k − centroid)² / Σ M_k) (Hz; 0 for a silent frame) |
//! | onset_rate | onsets / duration_s (0 for an empty clip), peak picker below |
//!
//! Onsets: only interior frames count, those that need no padding (frames
//! t = 2..=⌊(N−1024)/512⌋: 1024 ≤ 512t and 512t + 2048 ≤ N + 1024), because the
//! reflect padding's kink at either end splashes energy across the spectrum and
//! would read as an onset (clips under 2048 samples have none: rate 0). Over them, spectral flux
//! `F_t = Σ_k max(0, M_{t,k} − M_{t−1,k})` (0 for the first interior frame), divided by
//! the interior frames' mean magnitude `mean_t Σ_k M_{t,k}` (so the picker is gain-invariant
//! and a steady tone's tiny frame-to-frame jitter stays far below the threshold;
//! all zero for silence). Frame t is an onset if
//! F_t > max F[t−3..t] (strictly above the 3 previous frames), F_t ≥ max F[t+1..=t+3],
//! and F_t ≥ mean F[t−10..=t+10] + 0.1 (windows clipped to the clip). The ±3-frame
//! maximum (±64 ms) means onsets closer than 4 frames merge.

use anyhow::{Result, ensure};

use crate::audio::Pcm;
use crate::audio::stft::Stft;

pub const SAMPLE_RATE: u32 = 24_000;
pub const FRAME: usize = 2048;
pub const HOP: usize = 512;
const ROLLOFF: f64 = 0.85;
const AMIN: f64 = 1e-10;
const PEAK_HALF_WIDTH: usize = 3;
const MEAN_HALF_WIDTH: usize = 10;
const ONSET_DELTA: f64 = 0.1;

/// Component names of [`audio_stats`], in order.
pub fn audio_stats_names() -> Vec<String> {
    [
        "duration_s",
        "peak",
        "crest_factor",
        "rms_mean",
        "rms_std",
        "rms_max",
        "dynamic_range_db",
        "zcr_mean",
        "zcr_std",
        "centroid_mean",
        "centroid_std",
        "rolloff85_mean",
        "rolloff85_std",
        "flatness_mean",
        "flatness_std",
        "bandwidth_mean",
        "bandwidth_std",
        "onset_rate",
    ]
    .map(String::from)
    .to_vec()
}

/// Per-frame spectral shape of one magnitude spectrum.
struct Shape {
    centroid: f64,
    rolloff: f64,
    flatness: f64,
    bandwidth: f64,
}

fn shape(mag: &[f64], hz: &[f64]) -> Shape {
    let total: f64 = mag.iter().sum();
    let log_mean = mag.iter().map(|m| (m * m).max(AMIN).ln()).sum::<f64>() / mag.len() as f64;
    let arith = mag.iter().map(|m| (m * m).max(AMIN)).sum::<f64>() / mag.len() as f64;
    let flatness = log_mean.exp() / arith;
    if total <= 0.0 {
        return Shape {
            centroid: 0.0,
            rolloff: 0.0,
            flatness,
            bandwidth: 0.0,
        };
    }
    let centroid = mag.iter().zip(hz).map(|(m, f)| m * f).sum::<f64>() / total;
    let spread = mag
        .iter()
        .zip(hz)
        .map(|(m, f)| m * (f - centroid).powi(2))
        .sum::<f64>()
        / total;
    let mut acc = 0.0;
    let mut rolloff = hz[hz.len() - 1];
    for (m, f) in mag.iter().zip(hz) {
        acc += m;
        if acc >= ROLLOFF * total {
            rolloff = *f;
            break;
        }
    }
    Shape {
        centroid,
        rolloff,
        flatness,
        bandwidth: spread.sqrt(),
    }
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
    (m, var.sqrt())
}

/// Percentile with linear interpolation at rank q·(n−1) (numpy's default).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Number of onsets in a flux curve already divided by the mean frame magnitude
/// (see module docs for the peak picker).
pub fn count_onsets(f: &[f64]) -> usize {
    let n = f.len();
    (0..n)
        .filter(|&t| {
            let before = f[t.saturating_sub(PEAK_HALF_WIDTH)..t]
                .iter()
                .all(|&x| f[t] > x);
            let after = f[t + 1..(t + 1 + PEAK_HALF_WIDTH).min(n)]
                .iter()
                .all(|&x| f[t] >= x);
            let win = &f[t.saturating_sub(MEAN_HALF_WIDTH)..(t + 1 + MEAN_HALF_WIDTH).min(n)];
            let local = win.iter().sum::<f64>() / win.len() as f64;
            before && after && f[t] >= local + ONSET_DELTA
        })
        .count()
}

/// The 18 statistics named by [`audio_stats_names`] (module docs give formulas).
pub fn audio_stats(pcm: &Pcm) -> Result<Vec<f32>> {
    ensure!(
        pcm.sample_rate == SAMPLE_RATE,
        "audio-statistics baseline expects {SAMPLE_RATE} Hz audio, got {} Hz (resample first)",
        pcm.sample_rate
    );
    let x = &pcm.samples;
    let sr = f64::from(SAMPLE_RATE);
    let duration = x.len() as f64 / sr;
    let peak = x.iter().fold(0f64, |m, &v| m.max(f64::from(v.abs())));
    let global_rms = if x.is_empty() {
        0.0
    } else {
        (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    };
    let crest = if global_rms > 0.0 {
        peak / global_rms
    } else {
        0.0
    };

    let stft = Stft::new(FRAME, HOP);
    let frames = stft.frames(x);
    let (mut rms, mut zcr) = (Vec::new(), Vec::new());
    for t in 0..frames.count {
        let fr = frames.frame(t);
        let energy = fr.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>();
        rms.push((energy / FRAME as f64).sqrt());
        let crossings = fr
            .windows(2)
            .filter(|w| (w[0] >= 0.0) != (w[1] >= 0.0))
            .count();
        zcr.push(crossings as f64 * sr / (FRAME - 1) as f64);
    }

    let power = stft.power(&frames);
    let bins = stft.bins();
    let hz: Vec<f64> = (0..bins).map(|k| stft.bin_hz(k, SAMPLE_RATE)).collect();
    let mut shapes = Vec::with_capacity(frames.count);
    let mut flux = Vec::with_capacity(frames.count);
    let mut prev: Option<Vec<f64>> = None;
    let mut level = 0.0;
    let pad = FRAME / 2;
    let interior = |t: usize| t * HOP >= pad && t * HOP + FRAME <= x.len() + pad;
    for t in 0..frames.count {
        let mag: Vec<f64> = power[t * bins..(t + 1) * bins]
            .iter()
            .map(|&p| f64::from(p).sqrt())
            .collect();
        shapes.push(shape(&mag, &hz));
        if interior(t) {
            level += mag.iter().sum::<f64>();
            flux.push(prev.as_ref().map_or(0.0, |p| {
                mag.iter().zip(p).map(|(m, q)| (m - q).max(0.0)).sum()
            }));
            prev = Some(mag);
        }
    }
    let level = level / flux.len().max(1) as f64;
    let onset_rate = if duration > 0.0 && level > 0.0 {
        let f: Vec<f64> = flux.iter().map(|x| x / level).collect();
        count_onsets(&f) as f64 / duration
    } else {
        0.0
    };

    let mut sorted = rms.clone();
    sorted.sort_by(f64::total_cmp);
    let dyn_range =
        20.0 * (percentile(&sorted, 0.95).max(AMIN) / percentile(&sorted, 0.05).max(AMIN)).log10();

    let pick = |f: fn(&Shape) -> f64| mean_std(&shapes.iter().map(f).collect::<Vec<_>>());
    let (rms_m, rms_s) = mean_std(&rms);
    let (zcr_m, zcr_s) = mean_std(&zcr);
    let (cen_m, cen_s) = pick(|s| s.centroid);
    let (rol_m, rol_s) = pick(|s| s.rolloff);
    let (fla_m, fla_s) = pick(|s| s.flatness);
    let (bw_m, bw_s) = pick(|s| s.bandwidth);
    let rms_max = sorted.last().copied().unwrap_or(0.0);
    let out = [
        duration, peak, crest, rms_m, rms_s, rms_max, dyn_range, zcr_m, zcr_s, cen_m, cen_s, rol_m,
        rol_s, fla_m, fla_s, bw_m, bw_s, onset_rate,
    ];
    Ok(out.iter().map(|&v| v as f32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcm(samples: Vec<f32>) -> Pcm {
        Pcm {
            sample_rate: SAMPLE_RATE,
            samples,
        }
    }

    fn sine(hz: f64, amp: f32, secs: f64) -> Pcm {
        let n = (secs * f64::from(SAMPLE_RATE)) as usize;
        pcm((0..n)
            .map(|i| {
                amp * (2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(SAMPLE_RATE)).sin()
                    as f32
            })
            .collect())
    }

    fn get(v: &[f32], name: &str) -> f32 {
        let i = audio_stats_names().iter().position(|n| n == name).unwrap();
        v[i]
    }

    /// Deterministic uniform noise in [-a, a] (xorshift), so tests need no RNG crate.
    fn noise(n: usize, a: f32, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                a * ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
            })
            .collect()
    }

    #[test]
    fn sine_1khz_statistics() {
        let v = audio_stats(&sine(1000.0, 0.5, 2.0)).unwrap();
        assert_eq!(v.len(), audio_stats_names().len());
        assert!((get(&v, "duration_s") - 2.0).abs() < 1e-6);
        assert!((get(&v, "peak") - 0.5).abs() < 1e-3);
        let rms = 0.5 / 2f32.sqrt();
        assert!(
            (get(&v, "rms_mean") - rms).abs() < 2e-3,
            "{}",
            get(&v, "rms_mean")
        );
        assert!((get(&v, "crest_factor") - 2f32.sqrt()).abs() < 1e-2);
        assert!(
            (get(&v, "zcr_mean") - 2000.0).abs() < 30.0,
            "{}",
            get(&v, "zcr_mean")
        );
        assert!(
            (get(&v, "centroid_mean") - 1000.0).abs() < 20.0,
            "{}",
            get(&v, "centroid_mean")
        );
        // 85% of a Hann main lobe around 1 kHz lies within one bin (11.7 Hz) of it.
        assert!(
            (get(&v, "rolloff85_mean") - 1000.0).abs() < 24.0,
            "{}",
            get(&v, "rolloff85_mean")
        );
        assert!(
            get(&v, "flatness_mean") < 1e-3,
            "{}",
            get(&v, "flatness_mean")
        );
        assert!(
            get(&v, "bandwidth_mean") < 150.0,
            "{}",
            get(&v, "bandwidth_mean")
        );
        assert!(
            get(&v, "dynamic_range_db").abs() < 1.0,
            "{}",
            get(&v, "dynamic_range_db")
        );
        assert_eq!(get(&v, "onset_rate"), 0.0);
        // A louder copy has the same shape statistics (the picker is gain-invariant).
        let loud = audio_stats(&sine(1000.0, 0.9, 2.0)).unwrap();
        assert_eq!(get(&loud, "onset_rate"), 0.0);
        assert!((get(&loud, "centroid_mean") - get(&v, "centroid_mean")).abs() < 1.0);
    }

    #[test]
    fn white_noise_is_flat() {
        // A single periodogram of Gaussian-like white noise has i.i.d. exponential bin
        // powers, whose geometric/arithmetic mean ratio is e^−γ ≈ 0.56 (not 1); a tone is ≈ 0.
        let v = audio_stats(&pcm(noise(48_000, 0.5, 7))).unwrap();
        let fl = get(&v, "flatness_mean");
        assert!((0.5..0.62).contains(&fl), "flatness {fl}");
        // Flat spectrum to 12 kHz: centroid near 6 kHz, rolloff near 0.85·12 kHz.
        assert!((get(&v, "centroid_mean") - 6000.0).abs() < 300.0);
        assert!((get(&v, "rolloff85_mean") - 10_200.0).abs() < 300.0);
        // Uniform in [-a, a]: RMS = a/√3.
        assert!((get(&v, "rms_mean") - 0.5 / 3f32.sqrt()).abs() < 5e-3);
        // Independent samples change sign half the time: 12 000 crossings/s.
        assert!((get(&v, "zcr_mean") - 12_000.0).abs() < 300.0);
    }

    #[test]
    fn click_train_at_4hz_gives_4_onsets_per_second() {
        let n = 10 * SAMPLE_RATE as usize;
        let mut x = vec![0f32; n];
        // Clicks at 0.125 s + k/4 s: 40 clicks in 10 s.
        for k in 0..40 {
            x[3000 + k * 6000] = 1.0;
        }
        let v = audio_stats(&pcm(x)).unwrap();
        assert!(
            (get(&v, "onset_rate") - 4.0).abs() < 1e-4,
            "{}",
            get(&v, "onset_rate")
        );
        assert!((get(&v, "duration_s") - 10.0).abs() < 1e-6);
    }

    #[test]
    fn onset_picker_merges_near_peaks_and_ignores_flat_curves() {
        assert_eq!(count_onsets(&[0.0; 50]), 0);
        let mut f = vec![0.0; 40];
        f[10] = 1.0;
        f[12] = 0.9; // within ±3 frames of a larger peak: merged
        f[30] = 0.5;
        assert_eq!(count_onsets(&f), 2);
        f[31] = 0.5; // a plateau counts once (strictly above the previous frames)
        assert_eq!(count_onsets(&f), 2);
    }

    #[test]
    fn dynamic_range_of_a_loud_then_quiet_clip() {
        // 2 s at amplitude 1 then 2 s at 0.01: frame RMS P95 and P5 differ by 40 dB.
        let mut x = sine(500.0, 1.0, 2.0).samples;
        x.extend(sine(500.0, 0.01, 2.0).samples);
        let v = audio_stats(&pcm(x)).unwrap();
        assert!(
            (get(&v, "dynamic_range_db") - 40.0).abs() < 0.5,
            "{}",
            get(&v, "dynamic_range_db")
        );
        assert!((get(&v, "rms_max") - 1.0 / 2f32.sqrt()).abs() < 1e-2);
    }

    #[test]
    fn silence_and_empty_clips_are_finite() {
        for n in [0usize, 1, 500, 24_000] {
            let v = audio_stats(&pcm(vec![0.0; n])).unwrap();
            assert!(v.iter().all(|x| x.is_finite()), "n={n}: {v:?}");
            assert_eq!(get(&v, "rms_mean"), 0.0);
            assert_eq!(get(&v, "onset_rate"), 0.0);
            assert!((get(&v, "flatness_mean") - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn wrong_sample_rate_is_an_error() {
        let e = audio_stats(&Pcm {
            sample_rate: 16_000,
            samples: vec![0.0; 10],
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("expects 24000 Hz audio, got 16000 Hz"), "{e}");
    }

    #[test]
    fn names_are_unique() {
        let n = audio_stats_names();
        let set: std::collections::HashSet<_> = n.iter().collect();
        assert_eq!(set.len(), n.len());
        assert_eq!(n.len(), 18);
    }
}
