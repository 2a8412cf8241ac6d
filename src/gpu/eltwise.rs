//! Element-wise kernels: in-place activation, residual add,
//! transpose, column statistics; and row concatenation by buffer copies.

use bytemuck::{Pod, Zeroable};

use super::batch::{Batch, grid_1d};
use super::{Tensor, act_code, check_len, u32_of, with_common};
use crate::ops::Act;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    a: u32,
    _p: [u32; 2],
}

/// x = act(x), in place.
pub fn act(b: &mut Batch, x: &Tensor, act: Act) -> anyhow::Result<()> {
    if act == Act::None {
        return Ok(());
    }
    let k = b.gpu().kernel("act", || {
        with_common(include_str!("../../shaders/act.wgsl"))
    })?;
    let p = Params {
        n: u32_of("act", "len", x.len())?,
        a: act_code(act),
        _p: [0; 2],
    };
    let op = || format!("act({act:?}, len={})", x.len());
    b.dispatch(
        &k,
        &op,
        &[x.buffer()],
        bytemuck::bytes_of(&p),
        grid_1d(x.len().div_ceil(256)),
    )
}

/// a += b, in place (residual connections).
pub fn add(b: &mut Batch, a: &Tensor, other: &Tensor) -> anyhow::Result<()> {
    check_len("add", "b", other.len(), a.len())?;
    let k = b.gpu().kernel("add", || {
        with_common(include_str!("../../shaders/add.wgsl"))
    })?;
    let p = Params {
        n: u32_of("add", "len", a.len())?,
        a: 0,
        _p: [0; 2],
    };
    let op = || format!("add(len={})", a.len());
    b.dispatch(
        &k,
        &op,
        &[a.buffer(), other.buffer()],
        bytemuck::bytes_of(&p),
        grid_1d(a.len().div_ceil(256)),
    )
}

/// y[cols, rows] = x[rows, cols]ᵀ.
pub fn transpose(b: &mut Batch, x: &Tensor, rows: usize, cols: usize) -> anyhow::Result<Tensor> {
    check_len("transpose", "x", x.len(), rows * cols)?;
    let y = b.alloc(rows * cols)?;
    let k = b.gpu().kernel("transpose", || {
        with_common(include_str!("../../shaders/transpose.wgsl"))
    })?;
    let p = Params {
        n: u32_of("transpose", "rows", rows)?,
        a: u32_of("transpose", "cols", cols)?,
        _p: [0; 2],
    };
    let op = || format!("transpose(rows={rows}, cols={cols})");
    let groups = [
        u32_of("transpose", "col tiles", cols.div_ceil(16))?,
        u32_of("transpose", "row tiles", rows.div_ceil(16))?,
        1,
    ];
    b.dispatch(
        &k,
        &op,
        &[x.buffer(), y.buffer()],
        bytemuck::bytes_of(&p),
        groups,
    )?;
    Ok(y)
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ColStatsParams {
    cols: u32,
    start: u32,
    end: u32,
    scale: f32,
}

/// `[mean | m2 | min | max]` (4·cols) of rows `start..end` of x `[rows, cols]`,
/// times `scale` (see shaders/col_stats.wgsl).
pub fn col_stats(
    b: &mut Batch,
    x: &Tensor,
    rows: usize,
    cols: usize,
    range: std::ops::Range<usize>,
    scale: f32,
) -> anyhow::Result<Tensor> {
    check_len("col_stats", "x", x.len(), rows * cols)?;
    anyhow::ensure!(
        range.start < range.end && range.end <= rows,
        "col_stats: rows {range:?} of {rows}"
    );
    let y = b.alloc(4 * cols)?;
    let k = b.gpu().kernel("col_stats", || {
        with_common(include_str!("../../shaders/col_stats.wgsl"))
    })?;
    let p = ColStatsParams {
        cols: u32_of("col_stats", "cols", cols)?,
        start: u32_of("col_stats", "start", range.start)?,
        end: u32_of("col_stats", "end", range.end)?,
        scale,
    };
    let op = || format!("col_stats(rows={rows}, cols={cols}, {range:?})");
    b.dispatch(
        &k,
        &op,
        &[x.buffer(), y.buffer()],
        bytemuck::bytes_of(&p),
        grid_1d(cols.div_ceil(64)),
    )?;
    Ok(y)
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
