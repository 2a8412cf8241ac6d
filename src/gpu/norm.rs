//! Normalisation kernels: GroupNorm over time (`shaders/group_norm.wgsl`) and
//! LayerNorm over the last dim (`shaders/layer_norm.wgsl`). 256 threads per
//! workgroup, one workgroup per group / row, two-pass mean and variance.

use bytemuck::{Pod, Zeroable};

use super::batch::{Batch, grid_1d};
use super::{Tensor, act_code, check_len, u32_of, with_common};
use crate::ops::Act;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GnParams {
    t: u32,
    cg: u32,
    act: u32,
    eps: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct LnParams {
    rows: u32,
    dim: u32,
    eps: f32,
    _p: u32,
}

/// GroupNorm of x [channels, t] (stats per group over its channels and all
/// frames), then `act` (the feature extractor fuses GELU here).
#[allow(clippy::too_many_arguments)]
pub fn group_norm(
    b: &mut Batch,
    x: &Tensor,
    channels: usize,
    t: usize,
    groups: usize,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f32,
    act: Act,
) -> anyhow::Result<Tensor> {
    anyhow::ensure!(
        groups > 0 && channels.is_multiple_of(groups),
        "GPU group_norm: {channels} channels not divisible into {groups} groups"
    );
    check_len("group_norm", "x", x.len(), channels * t)?;
    check_len("group_norm", "gamma", gamma.len(), channels)?;
    check_len("group_norm", "beta", beta.len(), channels)?;
    let k = b.gpu().kernel("group_norm", || {
        with_common(concat!(
            include_str!("../../shaders/workgroup_sum.wgsl"),
            include_str!("../../shaders/group_norm.wgsl")
        ))
    })?;
    let y = b.alloc(channels * t)?;
    let p = GnParams {
        t: u32_of("group_norm", "t", t)?,
        cg: u32_of("group_norm", "channels/group", channels / groups)?,
        act: act_code(act),
        eps,
    };
    let groups_u = u32_of("group_norm", "groups", groups)?;
    anyhow::ensure!(
        groups_u <= 65535,
        "GPU group_norm: too many groups ({groups})"
    );
    let op = || format!("group_norm(channels={channels}, t={t}, groups={groups}, act={act:?})");
    b.dispatch(
        &k,
        &op,
        &[x.buffer(), gamma.buffer(), beta.buffer(), y.buffer()],
        bytemuck::bytes_of(&p),
        [groups_u, 1, 1],
    )?;
    Ok(y)
}

/// LayerNorm of each row of x [rows, dim].
pub fn layer_norm(
    b: &mut Batch,
    x: &Tensor,
    rows: usize,
    dim: usize,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f32,
) -> anyhow::Result<Tensor> {
    check_len("layer_norm", "x", x.len(), rows * dim)?;
    check_len("layer_norm", "gamma", gamma.len(), dim)?;
    check_len("layer_norm", "beta", beta.len(), dim)?;
    let k = b.gpu().kernel("layer_norm", || {
        with_common(concat!(
            include_str!("../../shaders/workgroup_sum.wgsl"),
            include_str!("../../shaders/layer_norm.wgsl")
        ))
    })?;
    let y = b.alloc(rows * dim)?;
    let p = LnParams {
        rows: u32_of("layer_norm", "rows", rows)?,
        dim: u32_of("layer_norm", "dim", dim)?,
        eps,
        _p: 0,
    };
    let op = || format!("layer_norm(rows={rows}, dim={dim})");
    b.dispatch(
        &k,
        &op,
        &[x.buffer(), gamma.buffer(), beta.buffer(), y.buffer()],
        bytemuck::bytes_of(&p),
        grid_1d(rows),
    )?;
    Ok(y)
}
