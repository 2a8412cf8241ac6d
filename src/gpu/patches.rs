//! 2-D conv patches of a time-major image (`shaders/patches2d.wgsl`; CPU twin
//! `crate::cpu::patches2d`).

use bytemuck::{Pod, Zeroable};

use super::batch::{Batch, grid_1d};
use super::{Tensor, check_len, u32_of, with_common};
use crate::ops::Patches2d;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PatchParams {
    time: u32,
    freq: u32,
    channels: u32,
    k: u32,
    stride: u32,
    pad: u32,
    out_freq: u32,
    /// First output time step and how many.
    t_start: u32,
    t_count: u32,
    _p: [u32; 3],
}

/// y `[times.len()·out_freq, channels·k·k]` = patches of x `[time·freq, channels]`
/// for output steps `times`.
pub fn patches2d(
    b: &mut Batch,
    x: &Tensor,
    g: Patches2d,
    times: std::ops::Range<usize>,
) -> anyhow::Result<Tensor> {
    check_len("patches2d", "x", x.len(), g.time * g.freq * g.channels)?;
    let n = times.len() * g.out_freq() * g.patch_len();
    let y = b.alloc(n)?;
    let k = b.gpu().kernel("patches2d", || {
        with_common(include_str!("../../shaders/patches2d.wgsl"))
    })?;
    let u = |what, v| u32_of("patches2d", what, v);
    let p = PatchParams {
        time: u("time", g.time)?,
        freq: u("freq", g.freq)?,
        channels: u("channels", g.channels)?,
        k: u("k", g.k)?,
        stride: u("stride", g.stride)?,
        pad: u("pad", g.pad)?,
        out_freq: u("out_freq", g.out_freq())?,
        t_start: u("t_start", times.start)?,
        t_count: u("t_count", times.len())?,
        _p: [0; 3],
    };
    u("output length", n)?;
    let op = || format!("patches2d({g:?}, {times:?})");
    b.dispatch(
        &k,
        &op,
        &[x.buffer(), y.buffer()],
        bytemuck::bytes_of(&p),
        grid_1d(n.div_ceil(256)),
    )?;
    Ok(y)
}
