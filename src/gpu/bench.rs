//! Achieved matmul throughput on this device: the "peak" denominator when
//! reporting how close the encoder gets to the hardware.

use std::time::Instant;

use super::{Gpu, matmul};
use crate::ops::Act;

/// Result of [`bench_matmul`].
#[derive(Clone, Debug)]
pub struct MatmulBench {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub iters: usize,
    pub seconds: f64,
    /// 2·m·n·k·iters / seconds / 1e9.
    pub gflops: f64,
}

/// Time `iters` back-to-back `[m,k]·[n,k]ᵀ` matmuls recorded into one batch
/// (after one warm-up that also compiles the kernel), waiting for completion.
pub fn bench_matmul(
    gpu: &Gpu,
    m: usize,
    n: usize,
    k: usize,
    iters: usize,
) -> anyhow::Result<MatmulBench> {
    anyhow::ensure!(iters > 0, "bench_matmul: iters must be positive");
    let x: Vec<f32> = (0..m * k).map(|i| ((i % 17) as f32 - 8.0) / 8.0).collect();
    let w: Vec<f32> = (0..n * k).map(|i| ((i % 13) as f32 - 6.0) / 6.0).collect();
    let mut b = gpu.batch();
    let xt = b.upload(&x)?;
    let wt = b.upload(&w)?;
    drop(matmul::linear(
        &mut b,
        &xt,
        m,
        k,
        &wt,
        n,
        None,
        Act::None,
        None,
    )?);
    b.finish()?;
    let start = Instant::now();
    for _ in 0..iters {
        drop(matmul::linear(
            &mut b,
            &xt,
            m,
            k,
            &wt,
            n,
            None,
            Act::None,
            None,
        )?);
    }
    b.finish()?;
    let seconds = start.elapsed().as_secs_f64();
    let gflops = 2.0 * (m * n * k * iters) as f64 / seconds / 1e9;
    Ok(MatmulBench {
        m,
        n,
        k,
        iters,
        seconds,
        gflops,
    })
}
