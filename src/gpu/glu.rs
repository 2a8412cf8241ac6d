//! The gated linear unit (`shaders/glu.wgsl`; CPU twin `crate::cpu::glu`).

use bytemuck::{Pod, Zeroable};

use super::batch::{Batch, grid_1d};
use super::{Tensor, check_len, u32_of, with_common};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    half_cols: u32,
    _p: [u32; 2],
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
        rows: u32_of("glu", "rows", rows)?,
        half_cols: u32_of("glu", "c", c)?,
        _p: [0; 2],
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
