//! Pooling a `[frames, D]` sequence over time into one vector.
//!
//! Conventions (all poolings):
//! - Statistics are accumulated in f64 and returned as f32.
//! - Std is the **population** std, `sqrt(Σ(x − mean)² / T)` (divide by T, not T−1),
//!   so one frame gives std 0 rather than NaN.
//! - Zero frames is an error (there is nothing to pool).
//! - Output blocks are concatenated in the order named, each block D wide.
//!
//! Multiscale: K = [`MULTISCALE_WINDOWS`] contiguous segments by frame index;
//! segment k covers frames `[⌊kT/K⌋, max(⌊(k+1)T/K⌋, ⌊kT/K⌋+1))`. For T ≥ K these
//! are the usual floor-boundary equal splits (they tile the clip); for T < K the
//! `max` keeps each segment one frame long, so segment k is the frame at its
//! relative position `⌊kT/K⌋` (T = 1: every segment is that frame, std 0).
//! Output: `[mean, std]` of the whole clip, then `[mean, std]` of segments 0..K.

use anyhow::{Result, ensure};
use serde::{Deserialize, Serialize};

use super::layers::FrameSeq;

/// Number of fixed sub-windows in [`Pooling::Multiscale`].
pub const MULTISCALE_WINDOWS: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// `[mean]`: D.
    Mean,
    /// `[max]`: D.
    Max,
    /// `[mean, std]`: 2D.
    MeanStd,
    /// `[mean, std, min, max]`: 4D.
    Stats4,
    /// `[mean, std]` over the clip and over each of K segments: D·2·(1+K).
    Multiscale,
    /// No pooling: the layer-selected frame sequence itself, `[frames, D]`
    /// row-major (frames ≤ `max_frames`), for sequence heads that train
    /// without the encoder.
    Frames,
}

impl Pooling {
    pub fn output_dim(self, d: usize) -> usize {
        match self {
            Self::Mean | Self::Max => d,
            Self::MeanStd => 2 * d,
            Self::Stats4 => 4 * d,
            Self::Multiscale => 2 * d * (1 + MULTISCALE_WINDOWS),
            // Per frame; the vector holds `frames` of these.
            Self::Frames => d,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Mean => "mean",
            Self::Max => "max",
            Self::MeanStd => "mean_std",
            Self::Stats4 => "stats4",
            Self::Multiscale => "multiscale",
            Self::Frames => "frames",
        }
    }

    /// Pool all frames of `x` into `output_dim(x.dim)` values.
    pub fn pool(self, x: &FrameSeq) -> Result<Vec<f32>> {
        ensure!(
            x.frames > 0,
            "pooling {}: the clip has 0 frames",
            self.name()
        );
        let all = 0..x.frames;
        if self == Self::Frames {
            return Ok(x.data.clone());
        }
        let mut out = Vec::with_capacity(self.output_dim(x.dim));
        match self {
            Self::Frames => unreachable!("returned above"),
            Self::Mean => out.extend(mean_std(x, all).0),
            Self::Max => out.extend(min_max(x, all).1),
            Self::MeanStd => {
                let (m, s) = mean_std(x, all);
                out.extend(m);
                out.extend(s);
            }
            Self::Stats4 => {
                let (m, s) = mean_std(x, all.clone());
                let (lo, hi) = min_max(x, all);
                out.extend(m);
                out.extend(s);
                out.extend(lo);
                out.extend(hi);
            }
            Self::Multiscale => {
                let whole = std::iter::once(all);
                for r in whole.chain(segments(x.frames, MULTISCALE_WINDOWS)) {
                    let (m, s) = mean_std(x, r);
                    out.extend(m);
                    out.extend(s);
                }
            }
        }
        Ok(out)
    }
}

/// The K multiscale segments of a T-frame clip (T ≥ 1); see module docs.
pub fn segments(t: usize, k: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..k).map(move |i| {
        let start = i * t / k;
        let end = ((i + 1) * t / k).max(start + 1);
        start..end
    })
}

/// Per-column mean and population std over frames `r` (two-pass, f64).
fn mean_std(x: &FrameSeq, r: std::ops::Range<usize>) -> (Vec<f32>, Vec<f32>) {
    let n = r.len() as f64;
    let mut mean = vec![0f64; x.dim];
    for t in r.clone() {
        for (m, &v) in mean.iter_mut().zip(x.row(t)) {
            *m += f64::from(v);
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = vec![0f64; x.dim];
    for t in r {
        for ((s, &m), &v) in var.iter_mut().zip(&mean).zip(x.row(t)) {
            let d = f64::from(v) - m;
            *s += d * d;
        }
    }
    let std = var.iter().map(|s| (s / n).sqrt() as f32).collect();
    (mean.into_iter().map(|m| m as f32).collect(), std)
}

/// Per-column min and max over frames `r` (non-empty).
fn min_max(x: &FrameSeq, r: std::ops::Range<usize>) -> (Vec<f32>, Vec<f32>) {
    let first = x.row(r.start);
    let (mut lo, mut hi) = (first.to_vec(), first.to_vec());
    for t in r.skip(1) {
        for ((l, h), &v) in lo.iter_mut().zip(hi.iter_mut()).zip(x.row(t)) {
            *l = l.min(v);
            *h = h.max(v);
        }
    }
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3 frames × 2 dims: column 0 = 1, 2, 6; column 1 = -1, 0, 4.
    fn x3() -> FrameSeq {
        FrameSeq {
            frames: 3,
            dim: 2,
            data: vec![1.0, -1.0, 2.0, 0.0, 6.0, 4.0],
        }
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }

    // Column 0: mean 3, deviations -2,-1,3 → var 14/3; column 1: mean 1, deviations -2,-1,3 → var 14/3.
    const SD: f32 = 2.160_247; // sqrt(14/3), population

    #[test]
    fn mean_and_max() {
        close(&Pooling::Mean.pool(&x3()).unwrap(), &[3.0, 1.0]);
        // Frames: no pooling, the sequence itself.
        assert_eq!(Pooling::Frames.pool(&x3()).unwrap(), x3().data);
        close(&Pooling::Max.pool(&x3()).unwrap(), &[6.0, 4.0]);
    }

    #[test]
    fn mean_std_uses_population_std() {
        close(&Pooling::MeanStd.pool(&x3()).unwrap(), &[3.0, 1.0, SD, SD]);
    }

    #[test]
    fn stats4_is_mean_std_min_max() {
        close(
            &Pooling::Stats4.pool(&x3()).unwrap(),
            &[3.0, 1.0, SD, SD, 1.0, -1.0, 6.0, 4.0],
        );
    }

    #[test]
    fn multiscale_on_eight_frames_splits_into_pairs() {
        // One column: 0,2, 4,4, 1,3, 10,10 → segments [0,2),[2,4),[4,6),[6,8).
        let x = FrameSeq {
            frames: 8,
            dim: 1,
            data: vec![0.0, 2.0, 4.0, 4.0, 1.0, 3.0, 10.0, 10.0],
        };
        let all_mean = 34.0 / 8.0;
        let all_var: f32 = x.data.iter().map(|v| (v - all_mean).powi(2)).sum::<f32>() / 8.0;
        close(
            &Pooling::Multiscale.pool(&x).unwrap(),
            &[
                all_mean,
                all_var.sqrt(),
                1.0,
                1.0,
                4.0,
                0.0,
                2.0,
                1.0,
                10.0,
                0.0,
            ],
        );
    }

    #[test]
    fn multiscale_with_fewer_frames_than_windows() {
        // T = 3, K = 4: starts 0,0,1,2 → segments {0},{0},{1},{2}.
        let got = Pooling::Multiscale.pool(&x3()).unwrap();
        close(
            &got,
            &[
                3.0, 1.0, SD, SD, // whole clip
                1.0, -1.0, 0.0, 0.0, // frame 0
                1.0, -1.0, 0.0, 0.0, // frame 0
                2.0, 0.0, 0.0, 0.0, // frame 1
                6.0, 4.0, 0.0, 0.0, // frame 2
            ],
        );
        assert_eq!(got.len(), Pooling::Multiscale.output_dim(2));
    }

    #[test]
    fn segments_tile_when_long_enough() {
        let s: Vec<_> = segments(10, 4).collect();
        assert_eq!(s, vec![0..2, 2..5, 5..7, 7..10]);
        let s: Vec<_> = segments(1, 4).collect();
        assert_eq!(s, vec![0..1, 0..1, 0..1, 0..1]);
    }

    #[test]
    fn one_frame_gives_the_frame_and_zero_std() {
        let x = FrameSeq {
            frames: 1,
            dim: 2,
            data: vec![5.0, -2.0],
        };
        close(
            &Pooling::Stats4.pool(&x).unwrap(),
            &[5.0, -2.0, 0.0, 0.0, 5.0, -2.0, 5.0, -2.0],
        );
        let m = Pooling::Multiscale.pool(&x).unwrap();
        close(&m, &[5.0, -2.0, 0.0, 0.0].repeat(5));
    }

    #[test]
    fn zero_frames_is_an_error() {
        let x = FrameSeq {
            frames: 0,
            dim: 2,
            data: vec![],
        };
        let e = Pooling::MeanStd.pool(&x).unwrap_err().to_string();
        assert_eq!(e, "pooling mean_std: the clip has 0 frames");
    }

    #[test]
    fn output_dim_matches_every_pooling() {
        for p in [
            Pooling::Mean,
            Pooling::Max,
            Pooling::MeanStd,
            Pooling::Stats4,
            Pooling::Multiscale,
        ] {
            assert_eq!(p.pool(&x3()).unwrap().len(), p.output_dim(2), "{p:?}");
        }
        assert_eq!(Pooling::Multiscale.output_dim(768), 768 * 10);
    }

    #[test]
    fn serde_names_are_snake_case() {
        #[derive(Deserialize)]
        struct T {
            p: Vec<Pooling>,
        }
        let t: T =
            toml::from_str(r#"p = ["mean", "max", "mean_std", "stats4", "multiscale"]"#).unwrap();
        assert_eq!(
            t.p,
            vec![
                Pooling::Mean,
                Pooling::Max,
                Pooling::MeanStd,
                Pooling::Stats4,
                Pooling::Multiscale
            ]
        );
        for p in &t.p {
            assert_eq!(
                serde_json::to_string(p).unwrap(),
                format!("\"{}\"", p.name())
            );
        }
    }
}
