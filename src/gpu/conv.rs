//! Grouped, strided 1-D convolution as an implicit GEMM, `shaders/conv1d.wgsl`.
//!
//! Covers the feature extractor (c_in=1 k=10 s=5; c_in=512 k=3/2 s=2; no bias)
//! and the positional conv (k=128, 16 groups, padding 64, bias). Tile: 64
//! output channels × 64 output frames per 16×16 workgroup, 4×4 per thread,
//! K (= c_in/groups · k) slices of 16; one grid z-slice per group.

use bytemuck::{Pod, Zeroable};

use super::batch::Batch;
use super::{Tensor, act_code, check_len, u32_of, with_common};
use crate::ops::Act;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    t_in: u32,
    t_out: u32,
    cig: u32,
    cog: u32,
    k: u32,
    stride: u32,
    pad: u32,
    has_bias: u32,
    act: u32,
    _p: [u32; 3],
}

/// Shape of one conv call (same meaning as `cpu::conv1d`'s arguments).
#[derive(Clone, Copy, Debug)]
pub struct ConvShape {
    pub c_in: usize,
    pub t: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub groups: usize,
}

impl ConvShape {
    /// Output frames: floor((t + 2·pad − k)/stride) + 1.
    pub fn t_out(&self) -> usize {
        (self.t + 2 * self.pad).saturating_sub(self.k) / self.stride + 1
    }
}

/// y [c_out, t_out] = act(conv1d(x [c_in, t], w [c_out, c_in/groups, k]) + bias).
pub fn conv1d(
    b: &mut Batch,
    x: &Tensor,
    w: &Tensor,
    s: ConvShape,
    bias: Option<&Tensor>,
    act: Act,
) -> anyhow::Result<(Tensor, usize)> {
    anyhow::ensure!(
        s.groups > 0
            && s.c_in.is_multiple_of(s.groups)
            && s.c_out.is_multiple_of(s.groups)
            && s.stride > 0,
        "GPU conv1d: bad shape {s:?}"
    );
    anyhow::ensure!(
        s.t + 2 * s.pad >= s.k,
        "GPU conv1d: input of {} frames (+2·{} padding) shorter than the kernel {}",
        s.t,
        s.pad,
        s.k
    );
    check_len("conv1d", "x", x.len(), s.c_in * s.t)?;
    check_len("conv1d", "w", w.len(), s.c_out * (s.c_in / s.groups) * s.k)?;
    if let Some(bias) = bias {
        check_len("conv1d", "bias", bias.len(), s.c_out)?;
    }
    let t_out = s.t_out();
    let cog = s.c_out / s.groups;
    let kern = b.gpu().kernel("conv1d", || {
        with_common(concat!(
            include_str!("../../shaders/tile_fma.wgsl"),
            include_str!("../../shaders/conv1d.wgsl")
        ))
    })?;
    let y = b.alloc(s.c_out * t_out)?;
    let p = Params {
        t_in: u32_of("conv1d", "t", s.t)?,
        t_out: u32_of("conv1d", "t_out", t_out)?,
        cig: u32_of("conv1d", "c_in/groups", s.c_in / s.groups)?,
        cog: u32_of("conv1d", "c_out/groups", cog)?,
        k: u32_of("conv1d", "k", s.k)?,
        stride: u32_of("conv1d", "stride", s.stride)?,
        pad: u32_of("conv1d", "pad", s.pad)?,
        has_bias: bias.is_some() as u32,
        act: act_code(act),
        _p: [0; 3],
    };
    let groups = [
        u32_of("conv1d", "frame tiles", t_out.div_ceil(64))?,
        u32_of("conv1d", "channel tiles", cog.div_ceil(64))?,
        u32_of("conv1d", "groups", s.groups)?,
    ];
    anyhow::ensure!(
        groups.iter().all(|&g| g <= 65535),
        "GPU conv1d: {s:?} exceeds the dispatch grid"
    );
    let op = || format!("conv1d({s:?}, bias={}, act={act:?})", bias.is_some());
    b.dispatch(
        &kern,
        &op,
        &[
            x.buffer(),
            w.buffer(),
            bias.unwrap_or(w).buffer(),
            y.buffer(),
        ],
        bytemuck::bytes_of(&p),
        groups,
    )?;
    Ok((y, t_out))
}
