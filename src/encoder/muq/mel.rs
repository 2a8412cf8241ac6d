//! MuQ's mel front end on the host (SPEC §2.3): STFT in f64 (rustfft),
//! torchaudio's HTK mel bank, dB, the checkpoint's global normalisation.
//! Plain data shared across threads, so clips are prepared in parallel and
//! outside a shared device's turn.

use super::config::{MuqConfig, N_FFT};
use super::trace::MuqTrace;
use crate::audio::mel::mel_bank;
use crate::audio::stft::Stft;
use crate::encoder::window::Window;
use anyhow::{Result, ensure};

/// dB floor of the mel power (`AmplitudeToDB`'s `amin`).
const AMIN: f64 = 1e-10;

/// The host-side mel front end (SPEC §2.3): plain data, shared across threads.
pub(super) struct MelFrontEnd {
    stft: Stft,
    /// Mel triangles, f32 as torchaudio builds them: (first bin, weights).
    bank: Vec<(usize, Vec<f32>)>,
    n_mels: usize,
    min_samples: usize,
    mean: f64,
    std: f64,
}

/// A clip's windows with their normalised log-mel `[M, n_mels]` (host side of a pass).
pub struct MelWindows {
    pub windows: Vec<(Window, Vec<f32>)>,
}

impl MelWindows {
    /// Frames the clip will have.
    pub fn frames(&self) -> usize {
        self.windows.iter().map(|(w, _)| w.frames).sum()
    }
}

impl MelFrontEnd {
    pub(super) fn new(cfg: &MuqConfig) -> Self {
        let stft = Stft::new(N_FFT, cfg.hop_length);
        let bank = mel_bank(
            stft.bins(),
            f64::from(cfg.sample_rate) / 2.0,
            cfg.n_mels,
            cfg.sample_rate,
        )
        .into_iter()
        .map(|b| (b.first, b.weights))
        .collect();
        MelFrontEnd {
            stft,
            bank,
            n_mels: cfg.n_mels,
            min_samples: cfg.min_samples(),
            mean: cfg.mel_mean,
            std: cfg.mel_std,
        }
    }

    pub(super) fn run(&self, wave: &[f32], trace: Option<&mut MuqTrace>) -> Result<Vec<f32>> {
        let min = self.min_samples;
        ensure!(
            wave.len() >= min,
            "window has {} samples; MuQ's STFT needs at least {min}",
            wave.len()
        );
        let frames = self.stft.frames(wave);
        let power = self.stft.power_f64(&frames);
        let bins = self.stft.bins();
        let n_mels = self.n_mels;
        let mel: Vec<f64> = power
            .chunks_exact(bins)
            .flat_map(|row| {
                self.bank.iter().map(move |(first, w)| {
                    row[*first..first + w.len()]
                        .iter()
                        .zip(w)
                        .map(|(p, &w)| p * f64::from(w))
                        .sum::<f64>()
                })
            })
            .collect();
        // Drop the STFT's last frame: M = floor(N/hop) frames remain.
        let used = (frames.count - 1) * n_mels;
        let db: Vec<f64> = mel[..used]
            .iter()
            .map(|&m| 10.0 * m.max(AMIN).log10())
            .collect();
        let (mean, std) = (self.mean, self.std);
        let norm: Vec<f32> = db.iter().map(|&d| ((d - mean) / std) as f32).collect();
        if let Some(tr) = trace {
            tr.mel_power = mel.iter().map(|&v| v as f32).collect();
            tr.mel_db = db.iter().map(|&v| v as f32).collect();
            tr.mel_norm = norm.clone();
        }
        Ok(norm)
    }
}
