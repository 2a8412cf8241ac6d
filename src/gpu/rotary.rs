//! Rotary position encoding (`shaders/rope.wgsl`; CPU twin `crate::cpu::rope`).

use bytemuck::{Pod, Zeroable};

use super::batch::{Batch, grid_1d};
use super::{Tensor, check_len, u32_of, with_common};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    head_dim: u32,
    _p: u32,
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
        rows: u32_of("rope", "rows", rows)?,
        cols: u32_of("rope", "cols", cols)?,
        head_dim: u32_of("rope", "head_dim", head_dim)?,
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
