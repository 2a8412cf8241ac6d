//! Mel scales and triangular mel filterbanks: HTK (torchaudio's
//! `melscale_fbanks(norm=None, mel_scale="htk")`), shared by the MuQ front end
//! and the log-mel baseline; and Slaney's (librosa's default
//! `filters.mel(htk=False, norm="slaney")`), for the librosa statistics.

pub fn hz_to_mel(f: f64) -> f64 {
    2595.0 * (1.0 + f / 700.0).log10()
}

pub fn mel_to_hz(m: f64) -> f64 {
    700.0 * (10f64.powf(m / 2595.0) - 1.0)
}

/// One triangle: weights for bins `first..first + w.len()` (the non-zero span only,
/// so applying the bank costs a few bins per band instead of all 1025).
pub struct Band {
    pub first: usize,
    pub weights: Vec<f32>,
}

/// torchaudio `melscale_fbanks(n_freqs, 0, f_max, n_mels, sr, norm=None, "htk")`.
pub fn mel_bank(n_freqs: usize, f_max: f64, n_mels: usize, sample_rate: u32) -> Vec<Band> {
    mel_bank_range(n_freqs, 0.0, f_max, n_mels, sample_rate)
}

/// torchaudio `melscale_fbanks(n_freqs, f_min, f_max, n_mels, sr, norm=None, "htk")`.
pub fn mel_bank_range(
    n_freqs: usize,
    f_min: f64,
    f_max: f64,
    n_mels: usize,
    sample_rate: u32,
) -> Vec<Band> {
    let nyq = f64::from(sample_rate) / 2.0;
    let freqs: Vec<f64> = (0..n_freqs)
        .map(|k| nyq * k as f64 / (n_freqs - 1) as f64)
        .collect();
    let (m_min, m_max) = (hz_to_mel(f_min), hz_to_mel(f_max));
    let pts: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(m_min + (m_max - m_min) * i as f64 / (n_mels + 1) as f64))
        .collect();
    (0..n_mels)
        .map(|m| {
            let (lo, mid, hi) = (pts[m], pts[m + 1], pts[m + 2]);
            let w: Vec<f32> = freqs
                .iter()
                .map(|&f| {
                    let down = (f - lo) / (mid - lo);
                    let up = (hi - f) / (hi - mid);
                    down.min(up).max(0.0) as f32
                })
                .collect();
            let first = w.iter().position(|&v| v > 0.0).unwrap_or(0);
            let last = w.iter().rposition(|&v| v > 0.0).map_or(first, |l| l + 1);
            Band {
                first,
                weights: w[first..last].to_vec(),
            }
        })
        .collect()
}

/// Slaney's mel scale (librosa `hz_to_mel(htk=False)`): linear below 1 kHz at
/// 200/3 Hz per mel, logarithmic above with 27 mels per factor 6.4.
pub fn slaney_hz_to_mel(f: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    if f >= 1000.0 {
        1000.0 / F_SP + (f / 1000.0).ln() / (6.4f64.ln() / 27.0)
    } else {
        f / F_SP
    }
}

/// Inverse of [`slaney_hz_to_mel`].
pub fn slaney_mel_to_hz(m: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    let min_log_mel = 1000.0 / F_SP;
    if m >= min_log_mel {
        1000.0 * ((6.4f64.ln() / 27.0) * (m - min_log_mel)).exp()
    } else {
        F_SP * m
    }
}

/// librosa `filters.mel(sr, n_fft, n_mels, fmin=0, fmax, htk=False,
/// norm="slaney")`: triangles between `n_mels + 2` points evenly spaced on
/// Slaney's scale from 0 to `f_max`, each scaled by 2 / (its width in Hz) so
/// every band has the same area; weights stored as f32 as librosa does.
pub fn slaney_mel_bank(n_fft: usize, f_max: f64, n_mels: usize, sample_rate: u32) -> Vec<Band> {
    let sr = f64::from(sample_rate);
    let freqs: Vec<f64> = (0..=n_fft / 2)
        .map(|k| k as f64 * sr / n_fft as f64)
        .collect();
    let m_max = slaney_hz_to_mel(f_max);
    let pts: Vec<f64> = (0..n_mels + 2)
        .map(|i| slaney_mel_to_hz(m_max * i as f64 / (n_mels + 1) as f64))
        .collect();
    (0..n_mels)
        .map(|m| {
            let (lo, mid, hi) = (pts[m], pts[m + 1], pts[m + 2]);
            let area = 2.0 / (hi - lo);
            let w: Vec<f32> = freqs
                .iter()
                .map(|&f| {
                    let down = (f - lo) / (mid - lo);
                    let up = (hi - f) / (hi - mid);
                    (down.min(up).max(0.0) * area) as f32
                })
                .collect();
            let first = w.iter().position(|&v| v > 0.0).unwrap_or(0);
            let last = w.iter().rposition(|&v| v > 0.0).map_or(first, |l| l + 1);
            Band {
                first,
                weights: w[first..last].to_vec(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slaney_scale_is_linear_then_logarithmic() {
        // librosa.hz_to_mel(500) = 7.5, (1000) = 15, (6400) = 15 + 27.
        assert!((slaney_hz_to_mel(500.0) - 7.5).abs() < 1e-12);
        assert!((slaney_hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
        assert!((slaney_hz_to_mel(6400.0) - 42.0).abs() < 1e-9);
        for f in [0.0, 123.0, 999.0, 1000.0, 4321.0, 12_000.0] {
            assert!((slaney_mel_to_hz(slaney_hz_to_mel(f)) - f).abs() < 1e-9 * f.max(1.0));
        }
    }

    #[test]
    fn slaney_bank_matches_librosa() {
        // Row sums and peaks of librosa.filters.mel(sr=24000, n_fft=2048), from
        // tools/make_librosa49_fixture.py: every band's placement and area scaling.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/librosa49/reference.json"
        );
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let bank = slaney_mel_bank(2048, 12_000.0, 128, 24_000);
        let f = &r["filters"];
        for (m, b) in bank.iter().enumerate() {
            let sum: f64 = b.weights.iter().map(|&w| f64::from(w)).sum();
            let peak = b.weights.iter().fold(0f32, |a, &w| a.max(w));
            let want_sum = f["mel_row_sums"][m].as_f64().unwrap();
            let want_peak = f["mel_row_peaks"][m].as_f64().unwrap();
            assert!(
                (sum - want_sum).abs() <= 1e-6 * want_sum,
                "band {m}: {sum} vs {want_sum}"
            );
            assert!(
                (f64::from(peak) - want_peak).abs() <= 1e-6 * want_peak,
                "band {m}: {peak} vs {want_peak}"
            );
        }
    }

    #[test]
    fn mel_scale_round_trips_and_matches_htk() {
        assert!((hz_to_mel(1000.0) - 1000.0).abs() < 0.1); // HTK: 1000 Hz ≈ 1000 mel
        assert!((mel_to_hz(hz_to_mel(4321.0)) - 4321.0).abs() < 1e-6);
    }

    #[test]
    fn bank_triangles_peak_near_their_centre() {
        // MuQ's bank: 1025 bins at 24 kHz, 128 bands up to 12 kHz.
        const F_MAX: f64 = 12_000.0;
        let bank = mel_bank(1025, F_MAX, 128, 24_000);
        assert_eq!(bank.len(), 128);
        let m_max = hz_to_mel(F_MAX);
        for (m, b) in bank.iter().enumerate() {
            let centre = mel_to_hz(m_max * (m + 1) as f64 / 129.0);
            let (k, &w) = b
                .weights
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap();
            let hz = (b.first + k) as f64 * 12_000.0 / 1024.0;
            assert!(
                (hz - centre).abs() <= 11.72,
                "band {m}: peak {hz} Hz, centre {centre}"
            );
            assert!(w > 0.0 && w <= 1.0);
        }
    }
}
