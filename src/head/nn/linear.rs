//! `nn.Linear` (weights stored `[in, out]`, PyTorch's default init) and the
//! standard head: (Linear → activation → dropout) per hidden width, then
//! Linear to the outputs and the output activation.

use candle_core::Tensor;

use super::Result;
use super::ops::{activate, dropout, sigmoid};
use super::params::Params;
use crate::head::config::{Activation, OutputActivation};
use crate::rng::Rng;

#[derive(Clone, Debug)]
pub struct Linear {
    /// `[in, out]`.
    pub w: Tensor,
    /// `[out]`, or none.
    pub b: Option<Tensor>,
}

impl Linear {
    /// Weight then bias ~ U(±1/√in), as `nn.Linear`.
    pub fn new(p: &mut Params, d_in: usize, d_out: usize) -> Result<Linear> {
        let bound = 1.0 / (d_in as f32).sqrt();
        Ok(Linear {
            w: p.uniform(&[d_in, d_out], bound)?,
            b: Some(p.uniform(&[d_out], bound)?),
        })
    }

    pub fn no_bias(p: &mut Params, d_in: usize, d_out: usize) -> Result<Linear> {
        let bound = 1.0 / (d_in as f32).sqrt();
        Ok(Linear {
            w: p.uniform(&[d_in, d_out], bound)?,
            b: None,
        })
    }

    /// `x` `[..., in]` → `[..., out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let d_in = *dims.last().unwrap_or(&0);
        let rows = x.elem_count() / d_in.max(1);
        let mut y = x.reshape((rows, d_in))?.matmul(&self.w)?;
        if let Some(b) = &self.b {
            y = y.broadcast_add(b)?;
        }
        let mut out = dims;
        *out.last_mut().expect("at least 1-d") = self.w.dim(1)?;
        Ok(y.reshape(out)?)
    }
}

/// The standard head: `d_in` → hidden… → `n_out`, with the same parameter
/// order, init and dropout draws as the hand-written MLP for one hidden layer.
#[derive(Clone, Debug)]
pub struct StdHead {
    pub layers: Vec<Linear>,
    pub act: Activation,
    pub dropout: f32,
    pub output: OutputActivation,
}

impl StdHead {
    pub fn new(
        p: &mut Params,
        d_in: usize,
        hidden: &[usize],
        n_out: usize,
        act: Activation,
        dropout: f32,
        output: OutputActivation,
    ) -> Result<StdHead> {
        let mut layers = Vec::new();
        let mut d = d_in;
        for &h in hidden.iter().chain(std::iter::once(&n_out)) {
            layers.push(Linear::new(p, d, h)?);
            d = h;
        }
        Ok(StdHead {
            layers,
            act,
            dropout,
            output,
        })
    }

    /// `x` `[b, d_in]` → `[b, n_out]`; `rng` = training mode (dropout on).
    pub fn forward(&self, x: &Tensor, mut rng: Option<&mut Rng>) -> Result<Tensor> {
        let (last, hidden) = self.layers.split_last().expect("an output layer");
        let mut h = x.clone();
        for l in hidden {
            h = activate(&l.forward(&h)?, self.act)?;
            h = dropout(&h, self.dropout, rng.as_deref_mut())?;
        }
        let z = last.forward(&h)?;
        match self.output {
            OutputActivation::Sigmoid => sigmoid(&z),
            OutputActivation::Linear => Ok(z),
        }
    }
}
