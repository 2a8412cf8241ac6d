//! A head's inputs: pooled vectors, or clips' frame sequences (one or two
//! feature sets), with per-input standardisation and padded batches.

use anyhow::{Result, ensure};
use candle_core::{DType, Device, Tensor};

use super::kinds::{Batch, InputDims};
use super::nn::Padded;
use super::train::Standardizer;

/// Clips' frame sequences of width `dim`: clip i is
/// `values[offsets[i]·dim .. offsets[i+1]·dim]`, `[len_i, dim]` row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameSet {
    pub dim: usize,
    pub offsets: Vec<usize>,
    pub values: Vec<f32>,
}

impl FrameSet {
    /// From one `[len_i·dim]` vector per clip; every clip needs ≥ 1 frame.
    pub fn new(dim: usize, clips: &[&[f32]]) -> Result<FrameSet> {
        ensure!(dim > 0, "frame width is 0");
        let mut offsets = Vec::with_capacity(clips.len() + 1);
        offsets.push(0);
        let mut values = Vec::with_capacity(clips.iter().map(|c| c.len()).sum());
        for (i, c) in clips.iter().enumerate() {
            ensure!(
                !c.is_empty() && c.len().is_multiple_of(dim),
                "clip {i} has {} values: not a non-empty sequence of {dim}-wide frames",
                c.len()
            );
            values.extend_from_slice(c);
            offsets.push(offsets[i] + c.len() / dim);
        }
        Ok(FrameSet {
            dim,
            offsets,
            values,
        })
    }

    pub fn n_clips(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn clip(&self, i: usize) -> &[f32] {
        &self.values[self.offsets[i] * self.dim..self.offsets[i + 1] * self.dim]
    }

    /// Frame rows (indices into `values` as `[frames, dim]`) of `clips`.
    fn frame_rows(&self, clips: &[usize]) -> Vec<usize> {
        clips
            .iter()
            .flat_map(|&c| self.offsets[c]..self.offsets[c + 1])
            .collect()
    }
}

/// What a head reads for every clip.
#[derive(Clone, Debug, PartialEq)]
pub enum HeadInput {
    /// `[n, dim]` pooled vectors.
    Pooled {
        values: Vec<f32>,
        dim: usize,
    },
    Frames(FrameSet),
    /// Two feature sets of the same clips (same order).
    Two(FrameSet, FrameSet),
}

impl HeadInput {
    pub fn n_clips(&self) -> usize {
        match self {
            HeadInput::Pooled { values, dim } => values.len() / dim.max(&1),
            HeadInput::Frames(f) | HeadInput::Two(f, _) => f.n_clips(),
        }
    }

    pub fn dims(&self) -> InputDims {
        match self {
            HeadInput::Pooled { dim, .. } => InputDims { a: *dim, b: None },
            HeadInput::Frames(f) => InputDims { a: f.dim, b: None },
            HeadInput::Two(a, b) => InputDims {
                a: a.dim,
                b: Some(b.dim),
            },
        }
    }

    /// One standardiser per input, fitted on the training clips (their
    /// frames, for sequences), or identities.
    pub fn standardizers(&self, train_rows: &[usize], standardize: bool) -> Vec<Standardizer> {
        let fit = |values: &[f32], dim: usize, rows: &[usize]| {
            if standardize {
                Standardizer::fit(values, dim, rows)
            } else {
                Standardizer::identity(dim)
            }
        };
        match self {
            HeadInput::Pooled { values, dim } => vec![fit(values, *dim, train_rows)],
            HeadInput::Frames(f) => vec![fit(&f.values, f.dim, &f.frame_rows(train_rows))],
            HeadInput::Two(a, b) => vec![
                fit(&a.values, a.dim, &a.frame_rows(train_rows)),
                fit(&b.values, b.dim, &b.frame_rows(train_rows)),
            ],
        }
    }

    /// The batch of clips `rows`, standardised, in `dtype`.
    pub fn batch(&self, rows: &[usize], std: &[Standardizer], dtype: DType) -> Result<Batch> {
        let padded = |f: &FrameSet, s: &Standardizer| -> Result<Padded> {
            let clips: Vec<Vec<f32>> = rows
                .iter()
                .map(|&r| {
                    let c = f.clip(r);
                    let frames: Vec<usize> = (0..c.len() / f.dim).collect();
                    s.apply_rows(c, &frames)
                })
                .collect();
            let refs: Vec<&[f32]> = clips.iter().map(Vec::as_slice).collect();
            Padded::new(&refs, f.dim, dtype)
        };
        Ok(match self {
            HeadInput::Pooled { values, dim } => {
                let x = std[0].apply_rows(values, rows);
                Batch::Pooled(
                    Tensor::from_vec(x, (rows.len(), *dim), &Device::Cpu)?.to_dtype(dtype)?,
                )
            }
            HeadInput::Frames(f) => Batch::Frames(padded(f, &std[0])?),
            HeadInput::Two(a, b) => Batch::Two(padded(a, &std[0])?, padded(b, &std[1])?),
        })
    }
}
