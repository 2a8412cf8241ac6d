//! The study's auxiliary contrastive loss (D10): clips whose labels are alike
//! should have alike embeddings.
//!
//! Embedding z = L2-normalise(Linear → ReLU → … → Linear (pooled representation)).
//! Over a batch, P = softmax_j(cos(y_i, y_j)/τ) from the labels and
//! Q = softmax_j(cos(z_i, z_j)/τ) from the embeddings; the loss is
//! KL(P‖Q) = Σ_ij P_ij (log P_ij − log Q_ij) / b. A clip is never its own
//! pair: the diagonal is masked out of *both* softmaxes (the study's code
//! masked one side only).

use candle_core::Tensor;

use super::Result;
use super::linear::Linear;
use super::ops::{l2_normalize, log_softmax_last, mask_scores, softmax_last};
use super::params::Params;

#[derive(Clone, Debug)]
pub struct Projection {
    pub layers: Vec<Linear>,
}

impl Projection {
    pub fn new(p: &mut Params, d_in: usize, sizes: &[usize]) -> Result<Projection> {
        let mut layers = Vec::new();
        let mut d = d_in;
        for &s in sizes {
            layers.push(Linear::new(p, d, s)?);
            d = s;
        }
        Ok(Projection { layers })
    }

    /// `r` `[b, d_in]` → unit-norm `[b, last size]`.
    pub fn forward(&self, r: &Tensor) -> Result<Tensor> {
        let mut h = r.clone();
        for (k, l) in self.layers.iter().enumerate() {
            if k > 0 {
                h = h.relu()?;
            }
            h = l.forward(&h)?;
        }
        l2_normalize(&h)
    }
}

/// KL(P‖Q) over the batch's pairs (see module docs); `z` unit rows `[b, p]`,
/// `labels` `[b, k]`. A batch of one has no pairs: 0.
pub fn kl_loss(z: &Tensor, labels: &Tensor, tau: f64) -> Result<Tensor> {
    let b = z.dim(0)?;
    if b < 2 {
        return Ok(z.sum_all()?.affine(0.0, 0.0)?);
    }
    let off_diag =
        (Tensor::ones((b, b), z.dtype(), z.device())? - Tensor::eye(b, z.dtype(), z.device())?)?;
    let y = l2_normalize(&labels.detach())?;
    let label_logits = mask_scores(&(y.matmul(&y.t()?)? / tau)?, &off_diag)?;
    let emb_logits = mask_scores(&(z.matmul(&z.t()?)? / tau)?, &off_diag)?;
    let p = softmax_last(&label_logits)?;
    let log_p = log_softmax_last(&label_logits)?;
    let log_q = log_softmax_last(&emb_logits)?;
    Ok(((p * (log_p - log_q)?)?.sum_all()? / b as f64)?)
}
