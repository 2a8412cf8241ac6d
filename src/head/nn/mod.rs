//! The layers of the trainable heads, built from candle's autodiff tensor ops
//! on the CPU (no hand-written backward passes): one file per layer.
//!
//! - [`params`]: a head's trainable tensors in one flat order (what Adam,
//!   checkpoints and gradient checks see), PyTorch-style seeded init.
//! - [`ops`]: masked softmax, masked mean, layer norm, sigmoid, dropout.
//! - [`linear`]: `nn.Linear` and the standard head (Linear → act → dropout)*.
//! - [`attention`]: attention pooling s_t = w₂ᵀ tanh(W₁x_t), masked softmax.
//! - [`lstm`]: (bi)directional LSTM whose backward direction starts at each
//!   clip's own last frame, so padding never reaches a real frame.
//! - [`transformer`]: pre-LN encoder layers with a key padding mask.
//! - [`cnn`]: conv blocks with masked BatchNorm, ReLU and 2×2 max-pool, and a
//!   masked global average pool.
//! - [`contrastive`]: the study's KL contrastive loss and its projection.
//!
//! Masks: a batch is zero-padded to its longest clip, `mask` is 1 on real
//! frames; every layer either ignores padded positions by construction or
//! masks them, so a clip's prediction is the same alone and in a batch.

pub mod attention;
pub mod cnn;
pub mod contrastive;
pub mod linear;
pub mod lstm;
pub mod ops;
pub mod params;
pub mod transformer;

#[cfg(test)]
pub(crate) mod gradcheck;

pub use candle_core::{DType, Device, Tensor};

/// Errors of the tensor library, as anyhow errors.
pub type Result<T> = anyhow::Result<T>;

/// A zero-padded batch of frame sequences.
#[derive(Clone, Debug)]
pub struct Padded {
    /// `[b, t, d]`, zeros past each clip's length.
    pub x: Tensor,
    /// `[b, t]`: 1 on real frames, 0 on padding.
    pub mask: Tensor,
    /// Real length of each clip (≥ 1).
    pub lens: Vec<usize>,
}

impl Padded {
    /// Packs `clips` (each `[len_i, d]` row-major) into one padded batch.
    pub fn new(clips: &[&[f32]], d: usize, dtype: DType) -> Result<Padded> {
        let lens: Vec<usize> = clips.iter().map(|c| c.len() / d).collect();
        let t = lens.iter().copied().max().unwrap_or(0).max(1);
        let b = clips.len();
        let mut x = vec![0f32; b * t * d];
        let mut mask = vec![0f32; b * t];
        for (i, c) in clips.iter().enumerate() {
            anyhow::ensure!(!c.is_empty(), "clip {i} of the batch has no frames");
            x[i * t * d..i * t * d + c.len()].copy_from_slice(c);
            mask[i * t..i * t + lens[i]].fill(1.0);
        }
        let dev = Device::Cpu;
        Ok(Padded {
            x: Tensor::from_vec(x, (b, t, d), &dev)?.to_dtype(dtype)?,
            mask: Tensor::from_vec(mask, (b, t), &dev)?.to_dtype(dtype)?,
            lens,
        })
    }

    pub fn batch(&self) -> usize {
        self.lens.len()
    }

    pub fn frames(&self) -> usize {
        self.x.dim(1).unwrap_or(0)
    }
}
