//! Kernels the Conformer (MuQ) adds: 2-D conv patches, rotary encoding, GLU
//! (`shaders/{patches2d,rope,glu}.wgsl`; CPU twins in `crate::cpu::conformer`).

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

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    a: u32,
    b: u32,
    c: u32,
    _p: u32,
}

/// y = the row blocks `parts` (each `len` floats) stacked, by buffer copies.
pub fn concat(b: &mut Batch, parts: &[&Tensor]) -> anyhow::Result<Tensor> {
    let total = parts.iter().map(|p| p.len()).sum();
    let y = b.alloc(total)?;
    let mut at = 0;
    for p in parts {
        b.copy_into(p, &y, at)?;
        at += p.len();
    }
    Ok(y)
}

/// y `[rows, cols]` = rotary encoding of x with `table` `[rows, head_dim]`.
pub fn rope(
    b: &mut Batch,
    x: &Tensor,
    table: &Tensor,
    rows: usize,
    cols: usize,
    head_dim: usize,
) -> anyhow::Result<Tensor> {
    check_len("rope", "x", x.len(), rows * cols)?;
    check_len("rope", "table", table.len(), rows * head_dim)?;
    let y = b.alloc(rows * cols)?;
    let k = b.gpu().kernel("rope", || {
        with_common(include_str!("../../shaders/rope.wgsl"))
    })?;
    let p = Params {
        a: u32_of("rope", "rows", rows)?,
        b: u32_of("rope", "cols", cols)?,
        c: u32_of("rope", "head_dim", head_dim)?,
        _p: 0,
    };
    u32_of("rope", "length", rows * cols)?;
    let op = || format!("rope(rows={rows}, cols={cols}, head_dim={head_dim})");
    b.dispatch(
        &k,
        &op,
        &[x.buffer(), table.buffer(), y.buffer()],
        bytemuck::bytes_of(&p),
        grid_1d((rows * cols).div_ceil(256)),
    )?;
    Ok(y)
}

/// y `[rows, cols/2]` = GLU of x `[rows, cols]`.
pub fn glu(b: &mut Batch, x: &Tensor, rows: usize, cols: usize) -> anyhow::Result<Tensor> {
    check_len("glu", "x", x.len(), rows * cols)?;
    let c = cols / 2;
    let y = b.alloc(rows * c)?;
    let k = b.gpu().kernel("glu", || {
        with_common(include_str!("../../shaders/glu.wgsl"))
    })?;
    let p = Params {
        a: u32_of("glu", "rows", rows)?,
        b: u32_of("glu", "c", c)?,
        c: 0,
        _p: 0,
    };
    u32_of("glu", "length", rows * cols)?;
    let op = || format!("glu(rows={rows}, cols={cols})");
    b.dispatch(
        &k,
        &op,
        &[x.buffer(), y.buffer()],
        bytemuck::bytes_of(&p),
        grid_1d((rows * c).div_ceil(256)),
    )?;
    Ok(y)
}
