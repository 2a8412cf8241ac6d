//! Short-time Fourier transform shared by the baseline features.
//!
//! `torch.stft(center=True)` framing (SPEC §2.3): the signal is reflect-padded by
//! `n_fft/2` on each side, frames are `n_fft` long every `hop` samples, so a clip of
//! N samples gives `1 + ⌊N/hop⌋` frames; each frame is multiplied by a periodic Hann
//! window `0.5 − 0.5·cos(2πn/n_fft)`. Reflect padding needs N > n_fft/2; shorter
//! clips are zero-padded instead so any clip (even empty) still gives frames.
//! [`Stft::frames_padded`] frames the same way with librosa's other centre
//! paddings ([`Pad::Zeros`] = `pad_mode="constant"`, [`Pad::Edge`]).

use std::sync::Arc;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

pub struct Stft {
    n_fft: usize,
    hop: usize,
    window: Vec<f32>,
    fft: Arc<dyn Fft<f32>>,
    /// Half-length f64 transform for [`Stft::power_f64`]'s real-input FFT.
    half64: Arc<dyn Fft<f64>>,
    /// `exp(−2πik/n_fft)` for k = 0..=n_fft/2, and the f64 window.
    twiddles: Vec<Complex<f64>>,
    window64: Vec<f64>,
}

/// How centred framing extends a clip by `n_fft/2` samples on each side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pad {
    /// Mirror without repeating the edge sample (torch / numpy `reflect`);
    /// zeros for clips of at most `n_fft/2` samples.
    Reflect,
    /// Zeros (numpy / librosa `constant`).
    Zeros,
    /// Repeat the first / last sample (numpy `edge`); zeros for an empty clip.
    Edge,
}

/// Centered, padded frames of a clip (time domain, not windowed).
pub struct Frames {
    pub padded: Vec<f32>,
    pub n_fft: usize,
    pub hop: usize,
    pub count: usize,
}

impl Frames {
    pub fn frame(&self, t: usize) -> &[f32] {
        &self.padded[t * self.hop..t * self.hop + self.n_fft]
    }
}

impl Stft {
    pub fn new(n_fft: usize, hop: usize) -> Self {
        assert!(
            n_fft >= 2 && n_fft.is_multiple_of(2) && hop >= 1,
            "n_fft must be even, hop ≥ 1"
        );
        let window = (0..n_fft)
            .map(|n| {
                let x = 2.0 * std::f64::consts::PI * n as f64 / n_fft as f64;
                (0.5 - 0.5 * x.cos()) as f32
            })
            .collect();
        let fft = FftPlanner::new().plan_fft_forward(n_fft);
        let half64 = FftPlanner::new().plan_fft_forward(n_fft / 2);
        let twiddles = (0..=n_fft / 2)
            .map(|k| {
                let a = -2.0 * std::f64::consts::PI * k as f64 / n_fft as f64;
                Complex::new(a.cos(), a.sin())
            })
            .collect();
        let window64 = (0..n_fft)
            .map(|n| {
                let x = 2.0 * std::f64::consts::PI * n as f64 / n_fft as f64;
                0.5 - 0.5 * x.cos()
            })
            .collect();
        Self {
            n_fft,
            hop,
            window,
            fft,
            half64,
            twiddles,
            window64,
        }
    }

    /// Number of one-sided bins, `n_fft/2 + 1`.
    pub fn bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Centre frequency of bin `k` in Hz.
    pub fn bin_hz(&self, k: usize, sample_rate: u32) -> f64 {
        k as f64 * f64::from(sample_rate) / self.n_fft as f64
    }

    /// Centered framing of `x` with reflect padding (see module docs).
    pub fn frames(&self, x: &[f32]) -> Frames {
        self.frames_padded(x, Pad::Reflect)
    }

    /// Centered framing of `x` with the given padding: `1 + ⌊N/hop⌋` frames.
    pub fn frames_padded(&self, x: &[f32], mode: Pad) -> Frames {
        let pad = self.n_fft / 2;
        let n = x.len();
        let mut padded = Vec::with_capacity(n + 2 * pad);
        match mode {
            Pad::Reflect if n > pad => {
                padded.extend((1..=pad).rev().map(|i| x[i]));
                padded.extend_from_slice(x);
                padded.extend((0..pad).map(|i| x[n - 2 - i]));
            }
            Pad::Edge if n > 0 => {
                padded.resize(pad, x[0]);
                padded.extend_from_slice(x);
                padded.resize(n + 2 * pad, x[n - 1]);
            }
            _ => {
                padded.resize(pad, 0.0);
                padded.extend_from_slice(x);
                padded.resize(n + 2 * pad, 0.0);
            }
        }
        Frames {
            padded,
            n_fft: self.n_fft,
            hop: self.hop,
            count: 1 + n / self.hop,
        }
    }

    /// Power spectrum `|X_k|²` of every frame, `[frames, bins]` row-major.
    pub fn power(&self, frames: &Frames) -> Vec<f32> {
        let bins = self.bins();
        let mut out = Vec::with_capacity(frames.count * bins);
        let mut buf = vec![Complex::new(0f32, 0f32); self.n_fft];
        let mut scratch = vec![Complex::new(0f32, 0f32); self.fft.get_inplace_scratch_len()];
        for t in 0..frames.count {
            for ((b, &s), &w) in buf.iter_mut().zip(frames.frame(t)).zip(&self.window) {
                *b = Complex::new(s * w, 0.0);
            }
            self.fft.process_with_scratch(&mut buf, &mut scratch);
            out.extend(buf[..bins].iter().map(|c| c.norm_sqr()));
        }
        out
    }
}

impl Stft {
    /// [`Stft::power`] in f64 (window and transform), for front ends that
    /// must match a reference to better than f32 rounding of small bins.
    ///
    /// A real frame of n points is transformed as n/2 complex points
    /// `z[m] = x[2m] + i·x[2m+1]` (half the work of a complex FFT of the frame),
    /// then split: with `Z = FFT(z)`, `E[k] = (Z[k] + Z*[n/2−k])/2`,
    /// `O[k] = (Z[k] − Z*[n/2−k])/(2i)` and `X[k] = E[k] + e^(−2πik/n)·O[k]`.
    pub fn power_f64(&self, frames: &Frames) -> Vec<f64> {
        let (bins, half) = (self.bins(), self.n_fft / 2);
        let mut out = Vec::with_capacity(frames.count * bins);
        let mut z = vec![Complex::new(0f64, 0f64); half];
        let mut scratch = vec![Complex::new(0f64, 0f64); self.half64.get_inplace_scratch_len()];
        for t in 0..frames.count {
            let frame = frames.frame(t);
            for (m, zm) in z.iter_mut().enumerate() {
                let (a, b) = (2 * m, 2 * m + 1);
                *zm = Complex::new(
                    f64::from(frame[a]) * self.window64[a],
                    f64::from(frame[b]) * self.window64[b],
                );
            }
            self.half64.process_with_scratch(&mut z, &mut scratch);
            out.extend((0..bins).map(|k| {
                let zk = z[k % half];
                let zc = z[(half - k) % half].conj();
                let even = (zk + zc) * 0.5;
                let odd = (zk - zc) * Complex::new(0.0, -0.5);
                (even + self.twiddles[k] * odd).norm_sqr()
            }));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_matches_torch_center_reflect() {
        let s = Stft::new(4, 2);
        let f = s.frames(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        // reflect pad 2: [3,2 | 1,2,3,4,5 | 4,3]
        assert_eq!(f.padded, vec![3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 5.0, 4.0, 3.0]);
        assert_eq!(f.count, 3);
        assert_eq!(f.frame(2), &[3.0, 4.0, 5.0, 4.0]);
        // too short to reflect: zero pad
        let z = s.frames(&[7.0]);
        assert_eq!(z.padded, vec![0.0, 0.0, 7.0, 0.0, 0.0]);
        assert_eq!(z.count, 1);
    }

    #[test]
    fn zero_and_edge_padding_match_numpy_pad() {
        let s = Stft::new(4, 2);
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let z = s.frames_padded(&x, Pad::Zeros);
        assert_eq!(z.padded, vec![0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 0.0]);
        let e = s.frames_padded(&x, Pad::Edge);
        assert_eq!(e.padded, vec![1.0, 1.0, 1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0]);
        assert_eq!((z.count, e.count), (3, 3));
        assert_eq!(e.frame(2), &[3.0, 4.0, 5.0, 5.0]);
        // Short clips: edge still repeats, an empty clip is all zeros.
        assert_eq!(s.frames_padded(&[7.0], Pad::Edge).padded, vec![7.0; 5]);
        assert_eq!(s.frames_padded(&[], Pad::Edge).padded, vec![0.0; 4]);
    }

    #[test]
    fn power_of_a_bin_centred_cosine() {
        // cos at bin 4 of a 64-point frame: windowed peak power is (A·N/4)² at bin 4
        // (periodic Hann has mean 0.5, split over ±k), (A·N/8)² at bins 3 and 5.
        let n = 64;
        let s = Stft::new(n, 16);
        let x: Vec<f32> = (0..256)
            .map(|i| (2.0 * std::f64::consts::PI * 4.0 * i as f64 / n as f64).cos() as f32)
            .collect();
        let f = s.frames(&x);
        let p = s.power(&f);
        let row = &p[5 * s.bins()..6 * s.bins()];
        assert!((row[4] - 256.0).abs() < 1e-2, "{}", row[4]);
        assert!((row[3] - 64.0).abs() < 1e-2, "{}", row[3]);
        assert!(row[10] < 1e-6);
        let p64 = s.power_f64(&f);
        // Every bin equals the direct f64 complex FFT of the windowed frame.
        let mut planner = FftPlanner::<f64>::new();
        let full = planner.plan_fft_forward(n);
        for t in [0, 5, f.count - 1] {
            let mut buf: Vec<Complex<f64>> = f
                .frame(t)
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos();
                    Complex::new(f64::from(v) * w, 0.0)
                })
                .collect();
            full.process(&mut buf);
            for k in 0..s.bins() {
                let want = buf[k].norm_sqr();
                let got = p64[t * s.bins() + k];
                assert!(
                    (got - want).abs() <= 1e-9 * want.max(1.0),
                    "frame {t} bin {k}: {got} vs {want}"
                );
            }
        }
        let row = &p64[5 * s.bins()..6 * s.bins()];
        assert!((row[4] - 256.0).abs() < 1e-4, "{}", row[4]);
        assert!((row[3] - 64.0).abs() < 1e-4, "{}", row[3]);
        assert!(row[10] < 1e-8);
    }
}
