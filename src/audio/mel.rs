//! Mel scale and the HTK triangular filterbank (torchaudio's
//! `melscale_fbanks(norm=None, mel_scale="htk")`), shared by the MuQ front end
//! and the log-mel baseline.

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

#[cfg(test)]
mod tests {
    use super::*;

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
