//! The measured matmul ceiling of a device: [`LinearOps::linear`] on one large problem.

use crate::backend::Backend;
use crate::ops::Act;
use anyhow::{Context, Result};
use serde::Serialize;
use std::time::Instant;

/// Best throughput of `y = x Wᵀ` with `x` `[m, k]` and `W` `[n, k]`, over `runs` runs.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Peak {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub runs: usize,
    pub best_secs: f64,
    pub gflops: f64,
    /// Process CPU seconds per wall second over the timed runs (see [`super::load::process_cpu_secs`]).
    pub cores_busy: Option<f64>,
}

/// Default problem: 2048³ (17.2 GFLOP), larger than any single matmul of the encoder.
pub const PEAK_DIMS: (usize, usize, usize) = (2048, 2048, 2048);

/// Measure the `linear` ceiling of `b` on `(m, k, n)`: one untimed warm-up run, then
/// the best of `runs`. The output is downloaded inside each timed run, so an
/// asynchronous device is timed to completion.
pub fn measure_peak<B: Backend>(
    b: &B,
    (m, k, n): (usize, usize, usize),
    runs: usize,
) -> Result<Peak> {
    let x: Vec<f32> = (0..m * k)
        .map(|i| ((i % 97) as f32 - 48.0) * 1e-3)
        .collect();
    let w: Vec<f32> = (0..n * k)
        .map(|i| ((i % 89) as f32 - 44.0) * 1e-3)
        .collect();
    let ctx = || format!("peak matmul {m}×{k}×{n} on {}", b.name());
    let xt = b.upload(&x, m, k).with_context(ctx)?;
    let wt = b.prepare_linear(&w, n, k, None).with_context(ctx)?;
    let mut best = f64::INFINITY;
    let (mut cpu_start, mut timed_s) = (None, 0.0);
    for run in 0..=runs {
        if run == 1 {
            cpu_start = super::load::process_cpu_secs();
        }
        let t0 = Instant::now();
        let y = b.linear(&xt, &wt, Act::None, None).with_context(ctx)?;
        let host = b.download(&y).with_context(ctx)?;
        let secs = t0.elapsed().as_secs_f64();
        anyhow::ensure!(host.len() == m * n, "{}: got {} values", ctx(), host.len());
        if run > 0 {
            best = best.min(secs);
            timed_s += secs;
        }
    }
    Ok(Peak {
        m,
        k,
        n,
        runs,
        best_secs: best,
        gflops: 2.0 * (m * k * n) as f64 / best / 1e9,
        cores_busy: super::load::cores_busy_since(cpu_start, timed_s),
    })
}
