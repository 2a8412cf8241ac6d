//! LSTM layers as `torch.nn.LSTM` (gates i, f, g, o; two biases; every
//! weight ~ U(±1/√hidden)), bidirectional with dropout between layers.
//!
//! Padding: the forward direction only looks back, so padded steps after a
//! clip's end never reach its real frames. The backward direction runs the
//! same forward recurrence over each clip reversed *within its own length*
//! (frame len−1 first, padding last), then flips the outputs back, so it too
//! starts at the clip's last real frame whatever the batch's longest clip.

use candle_core::{Device, Tensor};

use super::Result;
use super::linear::Linear;
use super::ops::{dropout, sigmoid};
use super::params::Params;
use crate::rng::Rng;

/// One direction of one layer.
#[derive(Clone, Debug)]
pub struct LstmCell {
    /// x → 4h with both torch biases folded into one add.
    pub ih: Linear,
    pub hh: Linear,
    pub hidden: usize,
}

impl LstmCell {
    pub fn new(p: &mut Params, d_in: usize, hidden: usize) -> Result<LstmCell> {
        let bound = 1.0 / (hidden as f32).sqrt();
        let w_ih = p.uniform(&[d_in, 4 * hidden], bound)?;
        let w_hh = p.uniform(&[hidden, 4 * hidden], bound)?;
        let b_ih = p.uniform(&[4 * hidden], bound)?;
        let b_hh = p.uniform(&[4 * hidden], bound)?;
        Ok(LstmCell {
            ih: Linear {
                w: w_ih,
                b: Some(b_ih),
            },
            hh: Linear {
                w: w_hh,
                b: Some(b_hh),
            },
            hidden,
        })
    }

    /// `x` `[b, t, d]` → hidden states `[b, t, h]`, zero initial state.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let h_size = self.hidden;
        let xw = self.ih.forward(x)?; // [b, t, 4h], input projection for all steps at once
        let mut h = Tensor::zeros((b, h_size), x.dtype(), x.device())?;
        let mut c = h.clone();
        let mut outs = Vec::with_capacity(t);
        for step in 0..t {
            let g = (xw.narrow(1, step, 1)?.squeeze(1)? + self.hh.forward(&h)?)?;
            let s = sigmoid(&g)?;
            let i = s.narrow(1, 0, h_size)?;
            let f = s.narrow(1, h_size, h_size)?;
            let o = s.narrow(1, 3 * h_size, h_size)?;
            let gg = g.narrow(1, 2 * h_size, h_size)?.tanh()?;
            c = ((f * &c)? + (i * gg)?)?;
            h = (o * c.tanh()?)?;
            outs.push(h.clone());
        }
        Ok(Tensor::stack(&outs, 1)?)
    }
}

/// Row indices that reverse each clip within its length in a flattened
/// `[b·t, …]` batch (padding keeps its place).
fn reverse_index(lens: &[usize], t: usize) -> Result<Tensor> {
    let mut idx = Vec::with_capacity(lens.len() * t);
    for (i, &len) in lens.iter().enumerate() {
        for s in 0..t {
            let src = if s < len { len - 1 - s } else { s };
            idx.push((i * t + src) as u32);
        }
    }
    Ok(Tensor::from_vec(idx, lens.len() * t, &Device::Cpu)?)
}

fn reverse_within(x: &Tensor, rev: &Tensor) -> Result<Tensor> {
    let (b, t, d) = x.dims3()?;
    Ok(x.reshape((b * t, d))?
        .index_select(rev, 0)?
        .reshape((b, t, d))?)
}

/// Stacked bidirectional LSTM: output `[b, t, 2h]` (forward ‖ backward).
#[derive(Clone, Debug)]
pub struct BiLstm {
    pub layers: Vec<(LstmCell, LstmCell)>,
    /// Dropout on each layer's output except the last (torch's `dropout`).
    pub dropout: f32,
}

impl BiLstm {
    pub fn new(
        p: &mut Params,
        d_in: usize,
        hidden: usize,
        layers: usize,
        dropout: f32,
    ) -> Result<BiLstm> {
        let mut out = Vec::with_capacity(layers);
        let mut d = d_in;
        for _ in 0..layers {
            out.push((LstmCell::new(p, d, hidden)?, LstmCell::new(p, d, hidden)?));
            d = 2 * hidden;
        }
        Ok(BiLstm {
            layers: out,
            dropout,
        })
    }

    pub fn out_dim(&self) -> usize {
        2 * self.layers[0].0.hidden
    }

    pub fn forward(&self, x: &Tensor, lens: &[usize], mut rng: Option<&mut Rng>) -> Result<Tensor> {
        let rev = reverse_index(lens, x.dim(1)?)?;
        let mut h = x.clone();
        for (k, (fwd, bwd)) in self.layers.iter().enumerate() {
            if k > 0 {
                h = dropout(&h, self.dropout, rng.as_deref_mut())?;
            }
            let f = fwd.forward(&h)?;
            let b = reverse_within(&bwd.forward(&reverse_within(&h, &rev)?)?, &rev)?;
            h = Tensor::cat(&[f, b], 2)?;
        }
        Ok(h)
    }
}
