//! The GPU ops with the `cpu::*` signatures: upload, run one batch, read back.
//! For tests and one-off calls; the encoder keeps tensors on the device instead.

use super::attention::QkvLayout;
use super::conv::ConvShape;
use super::{Gpu, eltwise, matmul, norm};
use crate::ops::Act;

fn gpu() -> anyhow::Result<&'static Gpu> {
    Ok(Gpu::get()?)
}

/// act(x Wᵀ + b), like `cpu::linear`.
pub fn linear(
    x: &[f32],
    rows: usize,
    in_dim: usize,
    w: &[f32],
    out_dim: usize,
    bias: Option<&[f32]>,
    act: Act,
) -> anyhow::Result<Vec<f32>> {
    linear_residual(x, rows, in_dim, w, out_dim, bias, act, None)
}

/// act(x Wᵀ + b) + residual.
#[allow(clippy::too_many_arguments)]
pub fn linear_residual(
    x: &[f32],
    rows: usize,
    in_dim: usize,
    w: &[f32],
    out_dim: usize,
    bias: Option<&[f32]>,
    act: Act,
    residual: Option<&[f32]>,
) -> anyhow::Result<Vec<f32>> {
    let mut b = gpu()?.batch();
    let xt = b.upload(x)?;
    let wt = b.upload(w)?;
    let bt = bias.map(|v| b.upload(v)).transpose()?;
    let rt = residual.map(|v| b.upload(v)).transpose()?;
    let y = matmul::linear(
        &mut b,
        &xt,
        rows,
        in_dim,
        &wt,
        out_dim,
        bt.as_ref(),
        act,
        rt.as_ref(),
    )?;
    b.read(&y)
}

/// Like `cpu::conv1d`: returns (y [c_out, t_out], t_out).
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
    let mut b = gpu()?.batch();
    let xt = b.upload(x)?;
    let wt = b.upload(w)?;
    let bt = bias.map(|v| b.upload(v)).transpose()?;
    let shape = ConvShape {
        c_in,
        t,
        c_out,
        k,
        stride,
        pad,
        groups,
    };
    let (y, t_out) = super::conv::conv1d(&mut b, &xt, &wt, shape, bt.as_ref(), Act::None)?;
    Ok((b.read(&y)?, t_out))
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
    let mut b = gpu()?.batch();
    let xt = b.upload(x)?;
    let g = b.upload(gamma)?;
    let be = b.upload(beta)?;
    let y = norm::group_norm(&mut b, &xt, channels, t, groups, &g, &be, eps, Act::None)?;
    b.read(&y)
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
    let mut b = gpu()?.batch();
    let xt = b.upload(x)?;
    let g = b.upload(gamma)?;
    let be = b.upload(beta)?;
    let y = norm::layer_norm(&mut b, &xt, rows, dim, &g, &be, eps)?;
    b.read(&y)
}

/// Element-wise activation (like `cpu::gelu` / `silu` / `relu`, returning the result).
pub fn act(x: &[f32], act: Act) -> anyhow::Result<Vec<f32>> {
    let mut b = gpu()?.batch();
    let xt = b.upload(x)?;
    eltwise::act(&mut b, &xt, act)?;
    b.read(&xt)
}

/// Like `cpu::attention` (q, k, v as [t, heads·head_dim]).
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    t: usize,
    heads: usize,
    head_dim: usize,
    scale: f32,
) -> anyhow::Result<Vec<f32>> {
    let mut b = gpu()?.batch();
    let (qt, kt, vt) = (b.upload(q)?, b.upload(k)?, b.upload(v)?);
    let h = heads * head_dim;
    let layout = QkvLayout {
        stride: h,
        q_off: 0,
        k_off: 0,
        v_off: 0,
    };
    let y = super::attention::attention(&mut b, &qt, &kt, &vt, layout, t, heads, head_dim, scale)?;
    b.read(&y)
}

/// a + b, like `cpu::add` (returns the sum instead of updating in place).
pub fn add(a: &[f32], other: &[f32]) -> anyhow::Result<Vec<f32>> {
    let mut b = gpu()?.batch();
    let (at, ot) = (b.upload(a)?, b.upload(other)?);
    eltwise::add(&mut b, &at, &ot)?;
    b.read(&at)
}

/// Like `cpu::transpose`.
pub fn transpose(x: &[f32], rows: usize, cols: usize) -> anyhow::Result<Vec<f32>> {
    let mut b = gpu()?.batch();
    let xt = b.upload(x)?;
    let y = eltwise::transpose(&mut b, &xt, rows, cols)?;
    b.read(&y)
}
