//! Shared helpers for the GPU tests: the device (and a turn on it), seeded
//! inputs, the error measure, and the GPU ops through the backend contract.

use pipe::gpu::{Gpu, InitError};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// GPU tests share the process's one device: side by side, except a test
/// that counts the device's work (compiled kernels, buffers), which has it alone.
static TURNS: RwLock<()> = RwLock::new(());

/// A test's turn on the GPU, held until it is dropped.
pub enum Turn {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

/// The GPU with a turn on it.
pub struct OnGpu {
    gpu: &'static Gpu,
    _turn: Turn,
}

impl std::ops::Deref for OnGpu {
    type Target = Gpu;
    fn deref(&self) -> &Gpu {
        self.gpu
    }
}

/// A turn beside other GPU tests (hold it while the test uses the GPU in any way).
pub fn shared() -> Turn {
    Turn::Shared(TURNS.read().unwrap_or_else(|e| e.into_inner()))
}

/// The GPU to this test alone.
pub fn alone() -> Turn {
    Turn::Alone(TURNS.write().unwrap_or_else(|e| e.into_inner()))
}

/// The GPU, with output poisoning on, on a shared turn; `None` (after a
/// printed notice) only when no adapter exists at all, unless `PIPE_REQUIRE_GPU=1`.
pub fn gpu() -> Option<OnGpu> {
    on_gpu(shared())
}

/// [`gpu`] with the device to this test alone.
pub fn gpu_alone() -> Option<OnGpu> {
    on_gpu(alone())
}

fn on_gpu(turn: Turn) -> Option<OnGpu> {
    match Gpu::get() {
        Ok(g) => {
            g.set_poison(true);
            Some(OnGpu {
                gpu: g,
                _turn: turn,
            })
        }
        Err(InitError::NoAdapter) if std::env::var("PIPE_REQUIRE_GPU").as_deref() != Ok("1") => {
            eprintln!("SKIPPED: no GPU adapter (install mesa-vulkan-drivers for lavapipe)");
            None
        }
        Err(e) => panic!("GPU required but unavailable: {e}"),
    }
}

/// Deterministic uniform values in [lo, hi) (the crate's SplitMix64).
pub fn rand_vec(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut r =
        pipe::rng::SplitMix64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03);
    (0..n)
        .map(|_| lo + (hi - lo) * ((r.next_u64() >> 40) as f32 / (1u64 << 24) as f32))
        .collect()
}

/// max|gpu − cpu| / max(1, max|cpu|); infinite if the GPU produced any
/// non-finite value where the CPU did not (poisoned, unwritten outputs).
pub fn rel_err(gpu: &[f32], cpu: &[f32]) -> f32 {
    assert_eq!(gpu.len(), cpu.len(), "length mismatch");
    let mut max_diff = 0.0f32;
    let mut max_ref = 0.0f32;
    for (&g, &c) in gpu.iter().zip(cpu) {
        if !g.is_finite() && c.is_finite() {
            return f32::INFINITY;
        }
        max_diff = max_diff.max((g - c).abs());
        max_ref = max_ref.max(c.abs());
    }
    max_diff / max_ref.max(1.0)
}

/// Assert the f32 kernel tolerance and print the observed error.
pub fn check(name: &str, gpu: &[f32], cpu: &[f32], tol: f32) {
    let e = rel_err(gpu, cpu);
    eprintln!("{name}: rel err {e:.3e}");
    assert!(e <= tol, "{name}: relative error {e:e} > {tol:e}");
}

/// The GPU ops with the `cpu::*` signatures, through the backend contract
/// (`pipe::backend::Backend`) the encoders use: upload, one op, download.
pub mod ops {
    use pipe::backend::prelude::*;
    use pipe::gpu::GpuBackend;
    use pipe::ops::Act;

    fn backend() -> GpuBackend {
        GpuBackend::new().expect("a GPU (the test checked gpu() first)")
    }

    /// act(x Wᵀ + b) + residual, like `cpu::linear` then `cpu::add`.
    #[allow(clippy::too_many_arguments)]
    pub fn linear(
        x: &[f32],
        rows: usize,
        in_dim: usize,
        w: &[f32],
        out_dim: usize,
        bias: Option<&[f32]>,
        act: Act,
        residual: Option<&[f32]>,
    ) -> anyhow::Result<Vec<f32>> {
        let be = backend();
        let xt = be.upload(x, rows, in_dim)?;
        let wl = be.prepare_linear(w, out_dim, in_dim, bias)?;
        let rt = residual.map(|r| be.upload(r, rows, out_dim)).transpose()?;
        be.download(&be.linear(&xt, &wl, act, rt.as_ref())?)
    }

    /// Like `cpu::conv1d`: (y `[c_out, t_out]`, t_out).
    #[allow(clippy::too_many_arguments)]
    pub fn conv1d(
        x: &[f32],
        c_in: usize,
        t: usize,
        w: &[f32],
        c_out: usize,
        k: usize,
        stride: usize,
        pad: usize,
        groups: usize,
        bias: Option<&[f32]>,
    ) -> anyhow::Result<(Vec<f32>, usize)> {
        let be = backend();
        let xt = be.upload(x, c_in, t)?;
        let wc = be.prepare_conv1d(w, c_out, c_in, k, groups, bias)?;
        let y = be.conv1d(&xt, &wc, stride, pad, Act::None)?;
        let (_, t_out) = be.shape(&y);
        Ok((be.download(&y)?, t_out))
    }

    /// Like `cpu::group_norm`.
    pub fn group_norm(
        x: &[f32],
        channels: usize,
        t: usize,
        groups: usize,
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
    ) -> anyhow::Result<Vec<f32>> {
        let be = backend();
        let xt = be.upload(x, channels, t)?;
        let (g, b) = (be.prepare_vector(gamma)?, be.prepare_vector(beta)?);
        be.download(&be.group_norm(&xt, groups, &g, &b, eps, Act::None)?)
    }

    /// Like `cpu::layer_norm`.
    pub fn layer_norm(
        x: &[f32],
        rows: usize,
        dim: usize,
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
    ) -> anyhow::Result<Vec<f32>> {
        let be = backend();
        let xt = be.upload(x, rows, dim)?;
        let (g, b) = (be.prepare_vector(gamma)?, be.prepare_vector(beta)?);
        be.download(&be.layer_norm(&xt, &g, &b, eps)?)
    }

    /// Element-wise activation, returning the result.
    pub fn act(x: &[f32], act: Act) -> anyhow::Result<Vec<f32>> {
        let be = backend();
        let xt = be.upload(x, 1, x.len())?;
        be.download(&be.activate(xt, act)?)
    }

    /// Like `cpu::attention` (q, k, v as `[t, heads·head_dim]`).
    pub fn attention(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        t: usize,
        heads: usize,
        head_dim: usize,
        scale: f32,
    ) -> anyhow::Result<Vec<f32>> {
        let be = backend();
        let h = heads * head_dim;
        let (qt, kt, vt) = (
            be.upload(q, t, h)?,
            be.upload(k, t, h)?,
            be.upload(v, t, h)?,
        );
        be.download(&be.attention(&qt, &kt, &vt, heads, scale)?)
    }

    /// a + b (returns the sum instead of updating in place like `cpu::add`).
    pub fn add(a: &[f32], b: &[f32]) -> anyhow::Result<Vec<f32>> {
        let be = backend();
        let (at, bt) = (be.upload(a, 1, a.len())?, be.upload(b, 1, b.len())?);
        be.download(&be.add(&at, &bt)?)
    }

    /// Like `cpu::transpose`.
    pub fn transpose(x: &[f32], rows: usize, cols: usize) -> anyhow::Result<Vec<f32>> {
        let be = backend();
        let xt = be.upload(x, rows, cols)?;
        be.download(&be.transpose(&xt)?)
    }
}
