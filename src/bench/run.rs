//! Time encoder forward passes of one model on one backend, generic over [`Backend`].

use super::flops::{Flops, clip_flops};
use super::load::{self, Load};
use super::peak::Peak;
use super::timed::{OpStat, Profile, Timed};
use crate::backend::prelude::*;
use crate::encoder::{ArchConfig, Encoder};
use anyhow::{Context, Result, ensure};
use serde::Serialize;
use std::time::Instant;

/// What to run: a named architecture with seeded random weights on a synthetic clip.
#[derive(Clone, Debug)]
pub struct Workload {
    pub model: String,
    pub cfg: ArchConfig,
    pub seconds: f64,
    pub repeat: usize,
    pub seed: u64,
}

/// One op (or op on a shape) in the profile.
#[derive(Clone, Debug, Serialize)]
pub struct OpTime {
    pub op: String,
    pub calls: u64,
    /// Per clip (accumulated over the counted passes, divided by their number).
    pub ms: f64,
    /// Share of the summed time of all ops.
    pub share: f64,
}

/// The result for one (backend, model).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub backend: String,
    pub model: String,
    pub seconds: f64,
    pub samples: usize,
    pub frames: usize,
    pub windows: usize,
    pub repeat: usize,
    /// Wall time per clip of each counted pass (the warm-up pass is not included).
    pub runs_ms: Vec<f64>,
    pub median_ms: f64,
    /// Speed-up over real time: audio seconds per wall second.
    pub speedup: f64,
    /// Real-time factor: wall seconds per audio second (compute / audio).
    pub rtf: f64,
    pub flops: Flops,
    pub gflop_per_clip: f64,
    pub gflops: f64,
    pub peak: Peak,
    /// `gflops / peak.gflops`.
    pub peak_share: f64,
    /// The same per busy core: `(gflops / cores_busy) / (peak.gflops / peak.cores_busy)`,
    /// which discounts a load that changed between the peak runs and the passes.
    pub peak_share_per_core: Option<f64>,
    pub top_ops: Vec<OpTime>,
    pub top_shapes: Vec<OpTime>,
    /// Every op by time, slowest first (the JSON's full profile).
    pub ops: Vec<OpTime>,
    pub prepare_s: f64,
    /// MuQ: the host mel front end (STFT, mel, dB) per clip, timed on its own;
    /// it is part of `median_ms` too.
    pub front_end_ms: Option<f64>,
    pub load_before: Option<Load>,
    pub load_after: Option<Load>,
    /// Process CPU seconds per wall second over the counted passes (how many cores
    /// the bench actually got; below the thread count on a busy machine).
    pub cores_busy: Option<f64>,
}

/// A deterministic test signal (two sines), `n` samples.
pub fn test_wave(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (i as f32 * 0.031).sin() * 0.4 + (i as f32 * 0.0071).sin() * 0.2)
        .collect()
}

/// Median of a non-empty list.
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn op_times<K: ToString>(
    map: &std::collections::BTreeMap<K, OpStat>,
    n: usize,
    total: f64,
    passes: usize,
) -> Vec<OpTime> {
    Profile::top(map, n)
        .into_iter()
        .map(|(op, s)| OpTime {
            op,
            calls: s.calls / passes as u64,
            ms: s.secs * 1e3 / passes as f64,
            share: s.secs / total,
        })
        .collect()
}

/// Prepare the model on `backend` (wrapped in [`Timed`]), run one warm-up pass,
/// then `repeat` counted passes, each downloading every hidden state.
pub fn bench_model<B: Backend>(backend: &Timed<B>, w: &Workload, peak: Peak) -> Result<Report> {
    ensure!(w.repeat > 0, "--repeat must be at least 1");
    ensure!(
        w.seconds.is_finite() && w.seconds > 0.0,
        "--seconds must be positive, got {}",
        w.seconds
    );
    let cfg = &w.cfg;
    let samples = (w.seconds * f64::from(cfg.sample_rate())).round() as usize;
    let flops =
        clip_flops(cfg, samples).with_context(|| format!("{} on {} s", w.model, w.seconds))?;
    let windows = cfg.window_plan(samples)?.len();
    let wave = test_wave(samples);
    let all: Vec<usize> = (0..cfg.num_hidden_states()).collect();

    let t0 = Instant::now();
    let weights = cfg.random_weights(w.seed)?;
    let model = Encoder::new(backend, cfg.clone(), &weights)
        .with_context(|| format!("preparing {} on {}", w.model, backend.name()))?;
    drop(weights);
    let prepare_s = t0.elapsed().as_secs_f64();

    let load_before = load::current();
    let mut frames = 0;
    let mut runs_ms = Vec::with_capacity(w.repeat);
    let mut cpu_start = None;
    for pass in 0..=w.repeat {
        if pass == 1 {
            backend.reset();
            cpu_start = load::process_cpu_secs();
        }
        let t = Instant::now();
        let out = model
            .encode(backend, &wave, &all)
            .with_context(|| format!("{} pass {pass} on {}", w.model, backend.name()))?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        frames = out.frames;
        if pass > 0 {
            runs_ms.push(ms);
        }
    }
    let load_after = load::current();
    let front_end_ms = match &model {
        Encoder::Muq(m) => {
            let plan = cfg.window_plan(samples)?;
            let t = Instant::now();
            for _ in 0..w.repeat {
                for win in &plan {
                    m.front_end(&wave[win.sample_start..win.sample_end], None)?;
                }
            }
            Some(t.elapsed().as_secs_f64() * 1e3 / w.repeat as f64)
        }
        Encoder::Mert(_) => None,
    };
    let counted_s = runs_ms.iter().sum::<f64>() / 1e3;
    let cores_busy = load::cores_busy_since(cpu_start, counted_s);
    let profile = backend.profile();
    let total = profile.total_secs();
    let median_ms = median(&runs_ms);
    let gflop = flops.total() as f64 / 1e9;
    let gflops = gflop / (median_ms / 1e3);
    Ok(Report {
        backend: backend.name(),
        model: w.model.clone(),
        seconds: w.seconds,
        samples,
        frames,
        windows,
        repeat: w.repeat,
        speedup: w.seconds / (median_ms / 1e3),
        rtf: (median_ms / 1e3) / w.seconds,
        median_ms,
        runs_ms,
        flops,
        gflop_per_clip: gflop,
        gflops,
        peak_share: gflops / peak.gflops,
        peak_share_per_core: cores_busy
            .zip(peak.cores_busy)
            .map(|(c, pc)| (gflops / c) / (peak.gflops / pc)),
        peak,
        top_ops: op_times(&profile.ops, 3, total, w.repeat),
        top_shapes: op_times(&profile.shapes, 3, total, w.repeat),
        ops: op_times(&profile.ops, usize::MAX, total, w.repeat),
        prepare_s,
        front_end_ms,
        load_before,
        load_after,
        cores_busy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_lists() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[7.0]), 7.0);
    }
}
