//! Chroma from a power spectrogram, as librosa 0.10 computes `chroma_stft`:
//! a tuning estimate per clip ([`estimate_tuning`]: `piptrack` peaks, then
//! `pitch_tuning`'s histogram), the Gaussian chroma filterbank
//! ([`chroma_bank`]: `filters.chroma` with its defaults) and the per-frame
//! ∞-norm.
//!
//! Spectra are `[frames, bins]` row-major with `bins = n_fft/2 + 1`, in f64.
//! librosa passes the *power* spectrogram to `piptrack` as if it were a
//! magnitude, so [`estimate_tuning`] takes power too.

/// `piptrack`'s defaults: peaks between 150 Hz and 4 kHz, above 0.1 × the
/// frame's maximum.
const PIP_FMIN: f64 = 150.0;
const PIP_FMAX: f64 = 4000.0;
const PIP_THRESHOLD: f64 = 0.1;
/// `estimate_tuning`'s histogram resolution, in fractions of a semitone.
const RESOLUTION: f64 = 0.01;
/// `filters.chroma` defaults: centre octave 5 (≈ C5, 523 Hz ... octave of MIDI
/// 72), Gaussian octave weighting 2 octaves wide.
const CTROCT: f64 = 5.0;
const OCTWIDTH: f64 = 2.0;
/// numpy's `finfo(float32).tiny`: librosa's `util.normalize` leaves a column
/// whose norm is below it unscaled (so silent frames stay all zero).
pub const F32_TINY: f64 = 1.175_494_350_822_287_5e-38;

pub const N_CHROMA: usize = 12;

/// Octaves above A0's lower octave: librosa `hz_to_octs(f, tuning)` =
/// log2(f / (440·2^(tuning/12) / 16)).
fn hz_to_octs(f: f64, tuning: f64) -> f64 {
    (f / (440.0 * 2f64.powf(tuning / 12.0) / 16.0)).log2()
}

/// librosa `estimate_tuning(S=power, sr, n_fft, bins_per_octave=12)`, in
/// fractions of a semitone in [−0.5, 0.5), a multiple of 0.01.
///
/// `piptrack`: in every frame, bins with `150 ≤ f_k < min(4000, sr/2)` that are
/// local maxima (`Z_k > Z_{k−1}`, `Z_k ≥ Z_{k+1}`; the last bin only needs
/// `Z_k > Z_{k−1}`) of `Z = S·[S > 0.1·max S]` give a pitch
/// `(k + δ_k)·sr/n_fft` and a magnitude `S_k + ½·g_k·δ_k`, where δ is the
/// parabolic shift `−b/a` (`a = S_{k+1} + S_{k−1} − 2S_k`, `b = (S_{k+1} − S_{k−1})/2`,
/// 0 when `|b| ≥ |a|` or at either end) and g numpy's `gradient`. Then
/// `estimate_tuning` keeps the peaks whose magnitude is ≥ the median
/// magnitude of all peaks, and `pitch_tuning` histograms their residuals
/// `12·octs mod 1` (folded to [−0.5, 0.5)) into 100 bins of 0.01 and returns
/// the left edge of the fullest (the first on ties); 0 with no peak.
pub fn estimate_tuning(power: &[f64], bins: usize, n_fft: usize, sample_rate: u32) -> f64 {
    let sr = f64::from(sample_rate);
    let fmax = PIP_FMAX.min(sr / 2.0);
    let hz = |k: usize| k as f64 * sr / n_fft as f64;
    let mut peaks: Vec<(f64, f64)> = Vec::new(); // (pitch Hz, magnitude)
    if bins >= 3 {
        let mut z = vec![0.0; bins];
        for s in power.chunks_exact(bins) {
            let ref_value = PIP_THRESHOLD * s.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            for (zk, &sk) in z.iter_mut().zip(s) {
                *zk = if sk > ref_value { sk } else { 0.0 };
            }
            for k in 1..bins {
                let f = hz(k);
                if !(PIP_FMIN <= f && f < fmax) {
                    continue;
                }
                let is_max = if k + 1 < bins {
                    z[k] > z[k - 1] && z[k] >= z[k + 1]
                } else {
                    z[k] > z[k - 1]
                };
                if !is_max {
                    continue;
                }
                let (shift, grad) = if k + 1 < bins {
                    let a = s[k + 1] + s[k - 1] - 2.0 * s[k];
                    let b = (s[k + 1] - s[k - 1]) / 2.0;
                    (if b.abs() >= a.abs() { 0.0 } else { -b / a }, b)
                } else {
                    (0.0, s[k] - s[k - 1])
                };
                let pitch = (k as f64 + shift) * sr / n_fft as f64;
                peaks.push((pitch, s[k] + 0.5 * grad * shift));
            }
        }
    }
    peaks.retain(|&(p, _)| p > 0.0);
    if peaks.is_empty() {
        return 0.0;
    }
    let mut mags: Vec<f64> = peaks.iter().map(|&(_, m)| m).collect();
    mags.sort_by(f64::total_cmp);
    let n = mags.len();
    let median = if n % 2 == 1 {
        mags[n / 2]
    } else {
        (mags[n / 2 - 1] + mags[n / 2]) / 2.0
    };
    let residuals = peaks.iter().filter(|&&(_, m)| m >= median).map(|&(p, _)| {
        let r = (12.0 * hz_to_octs(p, 0.0)).rem_euclid(1.0);
        if r >= 0.5 { r - 1.0 } else { r }
    });
    pitch_histogram_peak(residuals)
}

/// The left edge of the fullest of the 100 bins `[e_i, e_{i+1})` with
/// `e_i = i·0.01 − 0.5` (numpy `linspace(−0.5, 0.5, 101)`; the last bin is
/// closed), first on ties; 0 when nothing falls in.
fn pitch_histogram_peak(residuals: impl Iterator<Item = f64>) -> f64 {
    let n_bins = (1.0 / RESOLUTION).ceil() as usize;
    let edge = |i: usize| {
        if i == n_bins {
            0.5
        } else {
            i as f64 * (1.0 / n_bins as f64) - 0.5
        }
    };
    let mut counts = vec![0usize; n_bins];
    let mut any = false;
    for r in residuals {
        if !(edge(0)..=edge(n_bins)).contains(&r) {
            continue;
        }
        // The estimate from the uniform spacing, corrected against the true edges.
        let mut i = (((r + 0.5) * n_bins as f64) as usize).min(n_bins - 1);
        while i > 0 && r < edge(i) {
            i -= 1;
        }
        while i + 1 < n_bins && r >= edge(i + 1) {
            i += 1;
        }
        counts[i] += 1;
        any = true;
    }
    if !any {
        return 0.0;
    }
    let best = (0..n_bins).fold(0, |b, i| if counts[i] > counts[b] { i } else { b });
    edge(best)
}

/// librosa `filters.chroma(sr, n_fft, tuning, n_chroma=12, ctroct=5,
/// octwidth=2, norm=2, base_c=True)`: `[12][n_fft/2 + 1]`, row 0 = C.
///
/// Bin k ≥ 1 sits at `b_k = 12·hz_to_octs(k·sr/n_fft, tuning)` chroma bins
/// (bin 0 is put 1.5 octaves below bin 1); its width `w_k = max(b_{k+1} − b_k, 1)`.
/// Weight of chroma c: `exp(−½·(2·D/w_k)²)` with D the distance from b_k to c
/// folded into [−6, 6), each column L2-normalised, then times the octave
/// weighting `exp(−½·((b_k/12 − 5)/2)²)`, rows rotated so that row 0 is C.
pub fn chroma_bank(sample_rate: u32, n_fft: usize, tuning: f64) -> Vec<Vec<f64>> {
    let sr = f64::from(sample_rate);
    let nc = N_CHROMA as f64;
    let mut frqbins: Vec<f64> = (1..n_fft)
        .map(|k| nc * hz_to_octs(k as f64 * sr / n_fft as f64, tuning))
        .collect();
    frqbins.insert(0, frqbins[0] - 1.5 * nc);
    let width: Vec<f64> = (0..n_fft)
        .map(|k| {
            if k + 1 < n_fft {
                (frqbins[k + 1] - frqbins[k]).max(1.0)
            } else {
                1.0
            }
        })
        .collect();
    let half = (nc / 2.0).round();
    let bins = n_fft / 2 + 1;
    // wts[c][k] before the rotation to C.
    let mut wts = vec![vec![0.0; bins]; N_CHROMA];
    for k in 0..bins {
        let col: Vec<f64> = (0..N_CHROMA)
            .map(|c| {
                let d = (frqbins[k] - c as f64 + half + 10.0 * nc).rem_euclid(nc) - half;
                (-0.5 * (2.0 * d / width[k]).powi(2)).exp()
            })
            .collect();
        let norm = col.iter().map(|w| w * w).sum::<f64>().sqrt();
        let norm = if norm < f64::MIN_POSITIVE { 1.0 } else { norm };
        let octave = (-0.5 * ((frqbins[k] / nc - CTROCT) / OCTWIDTH).powi(2)).exp();
        for (c, w) in col.iter().enumerate() {
            // librosa stores the filterbank as float32.
            wts[c][k] = f64::from((w / norm * octave) as f32);
        }
    }
    // base_c: np.roll(wts, -3, axis=0), row c = old row c + 3 (A-based → C-based).
    wts.rotate_left(3);
    wts
}

/// Mean over frames of the ∞-normalised chroma of a power spectrogram
/// (librosa `chroma_stft(...).mean(axis=1)` given the same tuning). A frame
/// whose largest chroma value is below [`F32_TINY`] (silence) counts as all
/// zeros.
pub fn chroma_means(power: &[f64], bins: usize, bank: &[Vec<f64>]) -> Vec<f64> {
    let mut sums = vec![0.0; bank.len()];
    let mut frames = 0usize;
    for s in power.chunks_exact(bins) {
        let raw: Vec<f64> = bank
            .iter()
            .map(|row| row.iter().zip(s).map(|(w, p)| w * p).sum())
            .collect();
        let peak = raw.iter().fold(0f64, |m, v| m.max(v.abs()));
        let peak = if peak < F32_TINY { 1.0 } else { peak };
        for (acc, v) in sums.iter_mut().zip(&raw) {
            *acc += v / peak;
        }
        frames += 1;
    }
    sums.iter().map(|s| s / frames.max(1) as f64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_edges_are_half_open_and_ties_go_to_the_first_bin() {
        // Exactly on an edge counts in the bin to its right, as numpy's histogram.
        assert_eq!(pitch_histogram_peak([0.0, 0.0, -0.005].into_iter()), 0.0);
        assert!((pitch_histogram_peak([-0.005, -0.001].into_iter()) + 0.01).abs() < 1e-12);
        // One each in two bins: the lower bin wins.
        let t = pitch_histogram_peak([0.255, -0.305].into_iter());
        assert!((t + 0.31).abs() < 1e-12, "{t}");
        assert_eq!(pitch_histogram_peak(std::iter::empty()), 0.0);
    }

    #[test]
    fn tuning_of_parabolic_peaks_is_their_offset_in_semitones() {
        // Peaks shaped as parabolas S_k = max(0, 10 − (k − c)²): the 3-point fit
        // finds c exactly. 25.5 cents sharp of A4, A5 and E6 → the bin [0.25, 0.26).
        let (n_fft, sr) = (2048, 24_000u32);
        let bin_hz = f64::from(sr) / n_fft as f64;
        let s: Vec<f64> = (0..n_fft / 2 + 1)
            .map(|k| {
                [69.0, 81.0, 88.0]
                    .iter()
                    .map(|m: &f64| {
                        let c = 440.0 * 2f64.powf((m - 69.0 + 0.255) / 12.0) / bin_hz;
                        (10.0 - (k as f64 - c).powi(2)).max(0.0)
                    })
                    .sum::<f64>()
            })
            .collect();
        let power: Vec<f64> = (0..3).flat_map(|_| s.clone()).collect();
        let t = estimate_tuning(&power, n_fft / 2 + 1, n_fft, sr);
        assert!((t - 0.25).abs() < 1e-9, "{t}");
        // Below 150 Hz nothing is tracked: 0 (librosa warns and returns 0.0).
        let low: Vec<f64> = (0..1025).map(|k| if k == 5 { 1.0 } else { 0.0 }).collect();
        assert_eq!(estimate_tuning(&low, 1025, n_fft, sr), 0.0);
        assert_eq!(estimate_tuning(&vec![0.0; 3 * 1025], 1025, n_fft, sr), 0.0);
    }

    #[test]
    fn chroma_bank_puts_a_tone_in_its_pitch_class() {
        let bank = chroma_bank(24_000, 2048, 0.0);
        assert_eq!((bank.len(), bank[0].len()), (12, 1025));
        // Bin nearest 440 Hz (A4): row 9 (A) dominates; at +0.5 semitone tuning
        // the same bin sits between G# and A.
        let k = (440.0f64 / (24_000.0 / 2048.0)).round() as usize;
        let best = (0..12)
            .max_by(|&a, &b| bank[a][k].total_cmp(&bank[b][k]))
            .unwrap();
        assert_eq!(best, 9);
        // C4 (261.6 Hz): row 0.
        let k = (261.63f64 / (24_000.0 / 2048.0)).round() as usize;
        let best = (0..12)
            .max_by(|&a, &b| bank[a][k].total_cmp(&bank[b][k]))
            .unwrap();
        assert_eq!(best, 0);
        // Silence: chroma 0 everywhere, not NaN.
        assert_eq!(chroma_means(&[0.0; 2050], 1025, &bank), vec![0.0; 12]);
    }

    #[test]
    fn chroma_bank_matches_librosa() {
        // Row sums of librosa.filters.chroma(sr=24000, n_fft=2048, tuning) from
        // tools/make_librosa49_fixture.py, in tune and 0.3 semitone sharp.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/librosa49/reference.json"
        );
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for tuning in ["0.0", "0.3"] {
            let bank = chroma_bank(24_000, 2048, tuning.parse().unwrap());
            for (c, row) in bank.iter().enumerate() {
                let sum: f64 = row.iter().sum();
                let want = r["filters"]["chroma_row_sums"][tuning][c].as_f64().unwrap();
                assert!(
                    (sum - want).abs() <= 1e-6 * want,
                    "tuning {tuning} row {c}: {sum} vs {want}"
                );
            }
        }
    }
}
