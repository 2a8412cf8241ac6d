//! Building blocks every encoder shares: the host weight types a weight walk
//! produces ([`LinearW`], [`NormW`]), their backend-prepared forms ([`Norm`],
//! [`prep_linear`]) and HF activation names ([`parse_act`]).

use crate::backend::Backend;
use crate::ops::Act;
use anyhow::{Result, bail};

/// A linear layer in PyTorch layout: `w` `[out, inp]`, `b` `[out]`.
#[derive(Clone, Debug)]
pub struct LinearW {
    pub w: Vec<f32>,
    pub b: Option<Vec<f32>>,
    pub out: usize,
    pub inp: usize,
}

/// LayerNorm / GroupNorm affine parameters.
#[derive(Clone, Debug)]
pub struct NormW {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

/// Norm parameters prepared on a backend.
pub struct Norm<B: Backend> {
    pub gamma: B::Vector,
    pub beta: B::Vector,
}

pub fn prep_norm<B: Backend>(b: &B, n: &NormW) -> Result<Norm<B>> {
    Ok(Norm {
        gamma: b.prepare_vector(&n.gamma)?,
        beta: b.prepare_vector(&n.beta)?,
    })
}

pub fn prep_linear<B: Backend>(b: &B, l: &LinearW) -> Result<B::Linear> {
    b.prepare_linear(&l.w, l.out, l.inp, l.b.as_deref())
}

/// HF activation name → op.
pub fn parse_act(name: &str) -> Result<Act> {
    Ok(match name {
        "gelu" => Act::Gelu,
        "relu" => Act::Relu,
        "silu" | "swish" => Act::Silu,
        other => bail!("unsupported activation {other:?} (expected gelu, relu, silu or swish)"),
    })
}
