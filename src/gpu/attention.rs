//! Flash-style multi-head attention, `shaders/attention.wgsl`: 64 queries of
//! one head per workgroup, keys/values streamed 16 at a time through
//! workgroup memory with an online softmax; no T×T matrix is ever stored.

use bytemuck::{Pod, Zeroable};

use super::batch::Batch;
use super::{Tensor, u32_of, with_common};

/// Largest head dim the kernel's register arrays hold.
pub const MAX_HEAD_DIM: usize = 64;
const QUERIES_PER_GROUP: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    t: u32,
    hd: u32,
    stride: u32,
    o_stride: u32,
    q_off: u32,
    k_off: u32,
    v_off: u32,
    scale: f32,
}

/// Where q, k and v live: rows of `stride` floats, q/k/v starting at the
/// column offsets (equal tensors and offsets 0/H/2H for a fused QKV projection).
#[derive(Clone, Copy, Debug)]
pub struct QkvLayout {
    pub stride: usize,
    pub q_off: usize,
    pub k_off: usize,
    pub v_off: usize,
}

/// out [t, heads·head_dim] = softmax(scale·q kᵀ) v per head (bidirectional, no mask).
#[allow(clippy::too_many_arguments)]
pub fn attention(
    b: &mut Batch,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    layout: QkvLayout,
    t: usize,
    heads: usize,
    head_dim: usize,
    scale: f32,
) -> anyhow::Result<Tensor> {
    let h = heads * head_dim;
    anyhow::ensure!(
        head_dim > 0 && head_dim <= MAX_HEAD_DIM,
        "GPU attention: head_dim {head_dim} not in 1..={MAX_HEAD_DIM}"
    );
    for (name, tensor, off) in [
        ("q", q, layout.q_off),
        ("k", k, layout.k_off),
        ("v", v, layout.v_off),
    ] {
        anyhow::ensure!(
            off + h <= layout.stride && tensor.len() >= t * layout.stride,
            "GPU attention: {name} ({} floats, offset {off}) does not hold {t} rows of stride {} with {h} channels",
            tensor.len(),
            layout.stride
        );
    }
    let kern = b.gpu().kernel("attention", || {
        with_common(include_str!("../../shaders/attention.wgsl"))
    })?;
    let out = b.alloc(t * h)?;
    let p = Params {
        t: u32_of("attention", "t", t)?,
        hd: head_dim as u32,
        stride: u32_of("attention", "stride", layout.stride)?,
        o_stride: u32_of("attention", "heads·head_dim", h)?,
        q_off: u32_of("attention", "q_off", layout.q_off)?,
        k_off: u32_of("attention", "k_off", layout.k_off)?,
        v_off: u32_of("attention", "v_off", layout.v_off)?,
        scale,
    };
    let groups = [
        u32_of("attention", "query blocks", t.div_ceil(QUERIES_PER_GROUP))?,
        u32_of("attention", "heads", heads)?,
        1,
    ];
    let op = || format!("attention(t={t}, heads={heads}, head_dim={head_dim}, {layout:?})");
    b.dispatch(
        &kern,
        &op,
        &[q.buffer(), k.buffer(), v.buffer(), out.buffer()],
        bytemuck::bytes_of(&p),
        groups,
    )?;
    Ok(out)
}
