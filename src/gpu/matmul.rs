//! Tiled matmul / Linear: y = act(x Wᵀ + b) (+ residual), `shaders/matmul.wgsl`.
//!
//! W stays in the PyTorch `[out, in]` layout: the kernel reads x and W the same
//! K-contiguous way, so weights are uploaded as they are stored, untransposed.
//! Tile: 64×64 outputs per 16×16 workgroup, 4×4 register block per thread,
//! K slices of 16. With K % 4 == 0 operands are read as vec4.

use bytemuck::{Pod, Zeroable};

use super::batch::Batch;
use super::{Tensor, act_code, check_len, u32_of, with_common};
use crate::ops::Act;

pub const TILE_M: usize = 64;
pub const TILE_N: usize = 64;
pub const TILE_K: usize = 16;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    act: u32,
    has_bias: u32,
    has_res: u32,
    _p: [u32; 2],
}

/// Operand loads when K % 4 == 0: one aligned vec4 per call.
const LOAD_VEC4: &str = r#"
@group(0) @binding(0) var<storage, read> xv: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> wv: array<vec4<f32>>;
fn load_x4(m: u32, k: u32) -> vec4<f32> {
    if (m >= P.M || k >= P.K) { return vec4<f32>(0.0); }
    return xv[(m * P.K + k) / 4u];
}
fn load_w4(n: u32, k: u32) -> vec4<f32> {
    if (n >= P.N || k >= P.K) { return vec4<f32>(0.0); }
    return wv[(n * P.K + k) / 4u];
}
"#;

/// Operand loads for any K: four bounds-checked scalars.
const LOAD_SCALAR: &str = r#"
@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read> ws: array<f32>;
fn load_x4(m: u32, k: u32) -> vec4<f32> {
    var r = vec4<f32>(0.0);
    if (m < P.M) {
        for (var i = 0u; i < 4u; i++) {
            if (k + i < P.K) { r[i] = xs[m * P.K + k + i]; }
        }
    }
    return r;
}
fn load_w4(n: u32, k: u32) -> vec4<f32> {
    var r = vec4<f32>(0.0);
    if (n < P.N) {
        for (var i = 0u; i < 4u; i++) {
            if (k + i < P.K) { r[i] = ws[n * P.K + k + i]; }
        }
    }
    return r;
}
"#;

const BODY: &str = concat!(
    include_str!("../../shaders/tile_fma.wgsl"),
    include_str!("../../shaders/matmul.wgsl")
);

/// y[rows, out] = act(x[rows, in] · w[out, in]ᵀ + bias) (+ residual[rows, out]).
#[allow(clippy::too_many_arguments)]
pub fn linear(
    b: &mut Batch,
    x: &Tensor,
    rows: usize,
    in_dim: usize,
    w: &Tensor,
    out_dim: usize,
    bias: Option<&Tensor>,
    act: Act,
    residual: Option<&Tensor>,
) -> anyhow::Result<Tensor> {
    check_len("linear", "x", x.len(), rows * in_dim)?;
    check_len("linear", "w", w.len(), out_dim * in_dim)?;
    if let Some(bias) = bias {
        check_len("linear", "bias", bias.len(), out_dim)?;
    }
    if let Some(r) = residual {
        check_len("linear", "residual", r.len(), rows * out_dim)?;
    }
    let vec4 = in_dim.is_multiple_of(4);
    let k = if vec4 {
        b.gpu().kernel("matmul_vec4", || {
            with_common(&format!("{LOAD_VEC4}\n{BODY}"))
        })?
    } else {
        b.gpu().kernel("matmul_scalar", || {
            with_common(&format!("{LOAD_SCALAR}\n{BODY}"))
        })?
    };
    let y = b.alloc(rows * out_dim)?;
    let p = Params {
        m: u32_of("linear", "rows", rows)?,
        n: u32_of("linear", "out_dim", out_dim)?,
        k: u32_of("linear", "in_dim", in_dim)?,
        act: act_code(act),
        has_bias: bias.is_some() as u32,
        has_res: residual.is_some() as u32,
        _p: [0; 2],
    };
    // Absent bias/residual bind a real buffer the kernel never reads.
    let bias_buf = bias.unwrap_or(x).buffer();
    let res_buf = residual.unwrap_or(x).buffer();
    let groups = [
        u32_of("linear", "n tiles", out_dim.div_ceil(TILE_N))?,
        u32_of("linear", "m tiles", rows.div_ceil(TILE_M))?,
        1,
    ];
    anyhow::ensure!(
        groups[1] <= 65535,
        "GPU linear: {rows} rows exceed the dispatch grid"
    );
    let op = || {
        format!(
            "linear(rows={rows}, in={in_dim}, out={out_dim}, bias={}, act={act:?}, residual={})",
            bias.is_some(),
            residual.is_some()
        )
    };
    b.dispatch(
        &k,
        &op,
        &[x.buffer(), w.buffer(), bias_buf, res_buf, y.buffer()],
        bytemuck::bytes_of(&p),
        groups,
    )?;
    Ok(y)
}
