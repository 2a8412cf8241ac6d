//! The one encode-and-pool path, for every backend: pooling where the hidden
//! states are, so with a GPU only per-column statistics (4 numbers a column),
//! or for `frames` the selected sequence, come back to the host, never the
//! hidden states.
//!
//! Each window of a long clip contributes partial statistics over the frames
//! it holds; they merge on the host ([`ColumnStats::merge`]). A layer mean is
//! [`StatsOps::mean_states`] (on a GPU a sum of states with the 1/n folded into
//! the statistics; on the CPU the f64 mean itself); a layer list is pooled
//! state by state (a per-frame concatenation pools to the concatenation of
//! its blocks). Same definitions as [`super::pool`], the host oracle:
//! `tests/features_device.rs` holds the two together on both backends (on the
//! CPU a one-window clip pools to the same bits).

use std::collections::HashMap;
use std::ops::Range;

use anyhow::{Context, Result, bail};

use super::layers::LayerSelection;
use super::pool::{MULTISCALE_WINDOWS, Pooling, segments};
use super::spec::FeatureSetSpec;
use crate::backend::Backend;
use crate::encoder::{Encoder, EncoderOutput, OnDevice, Prepared};
use crate::ops::ColumnStats;

/// The hidden states averaged into one pooled block.
type Block = Vec<usize>;

fn blocks(layers: &LayerSelection, n_states: usize) -> Result<Vec<Block>> {
    let idx = layers.indices(n_states)?;
    Ok(match layers {
        LayerSelection::Single(_) | LayerSelection::Concat(_) | LayerSelection::ConcatAll => {
            idx.into_iter().map(|i| vec![i]).collect()
        }
        LayerSelection::MeanRange { .. } | LayerSelection::MeanAll => vec![idx],
    })
}

/// The frame ranges a pooling needs statistics of, for `used` frames.
fn ranges(pooling: Pooling, used: usize) -> Vec<Range<usize>> {
    match pooling {
        Pooling::Frames => Vec::new(),
        Pooling::Multiscale => std::iter::once(0..used)
            .chain(segments(used, MULTISCALE_WINDOWS))
            .collect(),
        _ => std::iter::once(0..used).collect(),
    }
}

fn intersect(a: &Range<usize>, b: &Range<usize>) -> Range<usize> {
    a.start.max(b.start)..a.end.min(b.end).max(a.start.max(b.start))
}

/// Encodes `wave` once and pools it for every spec (same order as `specs`).
pub fn encode_and_pool<B: Backend>(
    backend: &B,
    encoder: &Encoder<B>,
    wave: &[f32],
    specs: &[FeatureSetSpec],
) -> Result<Vec<Vec<f32>>> {
    encode_and_pool_prepared(backend, encoder, &encoder.prepare(wave)?, specs)
}

/// [`encode_and_pool_prepared`] as work for an [`crate::encoder::EncoderRuntime`].
pub struct PoolAll<'a>(pub &'a [FeatureSetSpec]);

impl OnDevice for PoolAll<'_> {
    type Output = Vec<Vec<f32>>;
    fn run<B: Backend>(
        self,
        backend: &B,
        encoder: &Encoder<B>,
        input: &Prepared,
    ) -> Result<Self::Output> {
        encode_and_pool_prepared(backend, encoder, input, self.0)
    }
}

/// [`encode_and_pool`] on a clip the encoder already [`Encoder::prepare`]d
/// (so a caller can run the host half outside its turn on a shared device).
pub fn encode_and_pool_prepared<B: Backend>(
    backend: &B,
    encoder: &Encoder<B>,
    input: &Prepared,
    specs: &[FeatureSetSpec],
) -> Result<Vec<Vec<f32>>> {
    encode_pool_keep(backend, encoder, input, specs, &[]).map(|(pooled, _)| pooled)
}

/// [`encode_pool_keep`] as work for an [`crate::encoder::EncoderRuntime`].
pub struct PoolAndKeep<'a> {
    pub specs: &'a [FeatureSetSpec],
    /// Hidden states to download whole (for the states cache).
    pub keep: &'a [usize],
}

impl OnDevice for PoolAndKeep<'_> {
    type Output = (Vec<Vec<f32>>, EncoderOutput);
    fn run<B: Backend>(
        self,
        backend: &B,
        encoder: &Encoder<B>,
        input: &Prepared,
    ) -> Result<Self::Output> {
        encode_pool_keep(backend, encoder, input, self.specs, self.keep)
    }
}

/// One pass: pooled vectors for `specs` (pooled where the states are), and
/// the states in `keep` downloaded whole, every window's frames concatenated
/// (the others `None`).
pub fn encode_pool_keep<B: Backend>(
    backend: &B,
    encoder: &Encoder<B>,
    input: &Prepared,
    specs: &[FeatureSetSpec],
    keep: &[usize],
) -> Result<(Vec<Vec<f32>>, EncoderOutput)> {
    let cfg = encoder.config();
    let n_states = cfg.num_hidden_states();
    let total = encoder.planned_frames(input)?;
    if let Some(&i) = keep.iter().find(|&&i| i >= n_states) {
        bail!(
            "hidden state {i} requested, the encoder has {n_states} (0..={})",
            n_states - 1
        );
    }
    let mut kept = EncoderOutput {
        frames: total,
        hidden: cfg.hidden_size(),
        states: vec![None; n_states],
    };
    let mut plans = Vec::with_capacity(specs.len());
    let mut want: Vec<usize> = Vec::new();
    for spec in specs {
        spec.validate(n_states)?;
        let blocks = blocks(&spec.layers, n_states).with_context(|| spec.to_string())?;
        want.extend(blocks.iter().flatten().copied());
        let used = spec.frames_used(total);
        plans.push((blocks, used, ranges(spec.pooling, used)));
    }
    want.extend_from_slice(keep);
    want.sort_unstable();
    want.dedup();

    // (block, range) -> statistics so far; (block, frames used) -> the sequence so far.
    let mut stats: HashMap<(Block, Range<usize>), ColumnStats> = HashMap::new();
    let mut seqs: HashMap<(Block, usize), Vec<f32>> = HashMap::new();
    encoder.encode_prepared(backend, input, &want, &mut |w, states| {
        let here = w.frame_start..w.frame_start + w.frames;
        let mut means: HashMap<Block, (B::Tensor, f32)> = HashMap::new();
        // (block, range) already reduced in this window: sets sharing them reuse it.
        let mut done: std::collections::HashSet<(Block, Range<usize>)> = Default::default();
        for ((blocks, used, rngs), spec) in plans.iter().zip(specs) {
            for block in blocks {
                let state = |i: usize| {
                    states[i]
                        .as_ref()
                        .with_context(|| format!("hidden state {i} was not computed"))
                };
                if block.len() > 1 && !means.contains_key(block) {
                    let xs = block
                        .iter()
                        .map(|&i| state(i))
                        .collect::<Result<Vec<_>>>()?;
                    means.insert(block.clone(), backend.mean_states(&xs)?);
                }
                let (tensor, scale) = match means.get(block) {
                    Some((t, s)) => (t, *s),
                    None => (state(block[0])?, 1.0),
                };
                for r in rngs {
                    let local = intersect(r, &here);
                    if local.is_empty() {
                        continue;
                    }
                    let key = (block.clone(), r.clone());
                    if !done.insert(key.clone()) {
                        continue;
                    }
                    let rows = local.start - w.frame_start..local.end - w.frame_start;
                    let part = backend.column_stats(tensor, rows.clone(), scale)?;
                    if !finite(&part) {
                        return Err(non_finite(backend, states, block, rows, w.frame_start));
                    }
                    let merged = match stats.get(&key) {
                        Some(prev) => prev.merge(&part),
                        None => part,
                    };
                    stats.insert(key, merged);
                }
                if spec.pooling == Pooling::Frames {
                    let local = intersect(&(0..*used), &here);
                    if local.is_empty() {
                        continue;
                    }
                    let (_, cols) = backend.shape(tensor);
                    let rows =
                        backend.slice_rows(tensor, local.start - w.frame_start, local.len())?;
                    let v = backend.download(&rows)?;
                    if v.iter().any(|x| !x.is_finite()) {
                        let rows = local.start - w.frame_start..local.end - w.frame_start;
                        return Err(non_finite(backend, states, block, rows, w.frame_start));
                    }
                    let seq = seqs.entry((block.clone(), *used)).or_default();
                    if seq.len() == local.start * cols {
                        seq.extend(v.iter().map(|x| x * scale));
                    }
                }
            }
        }
        for &i in keep {
            let t = states[i]
                .as_ref()
                .with_context(|| format!("hidden state {i} was not computed"))?;
            let v = backend.download(t)?;
            kept.states[i]
                .get_or_insert_with(Vec::new)
                .extend_from_slice(&v);
        }
        Ok(())
    })?;

    let pooled = plans
        .iter()
        .zip(specs)
        .map(|((blocks, used, rngs), spec)| {
            if spec.pooling == Pooling::Frames {
                return interleave(blocks, *used, &seqs);
            }
            let get = |b: &Block, r: &Range<usize>| {
                stats
                    .get(&(b.clone(), r.clone()))
                    .with_context(|| format!("{spec}: no frames in {r:?}"))
            };
            let mut out = Vec::new();
            for r in rngs {
                let parts = blocks
                    .iter()
                    .map(|b| get(b, r))
                    .collect::<Result<Vec<_>>>()?;
                let mut push = |f: &dyn Fn(&ColumnStats) -> Vec<f64>| {
                    for p in &parts {
                        out.extend(f(p).iter().map(|&x| x as f32));
                    }
                };
                match spec.pooling {
                    Pooling::Mean => push(&|s| s.mean.clone()),
                    Pooling::Max => push(&|s| s.max.clone()),
                    Pooling::MeanStd | Pooling::Multiscale => {
                        push(&|s| s.mean.clone());
                        push(&|s| s.std());
                    }
                    Pooling::Stats4 => {
                        push(&|s| s.mean.clone());
                        push(&|s| s.std());
                        push(&|s| s.min.clone());
                        push(&|s| s.max.clone());
                    }
                    Pooling::Frames => bail!("frames are not pooled"),
                }
            }
            Ok(out)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((pooled, kept))
}

fn finite(s: &ColumnStats) -> bool {
    [&s.mean, &s.m2, &s.min, &s.max]
        .iter()
        .all(|v| v.iter().all(|x| x.is_finite()))
}

/// The error for non-finite output in `rows` of a window starting at frame
/// `start`: which of the block's hidden states holds it (their statistics,
/// one by one: only on this error path). A NaN/inf feature would otherwise
/// surface only at training, far from its cause.
fn non_finite<B: Backend>(
    backend: &B,
    states: &[Option<B::Tensor>],
    block: &[usize],
    rows: Range<usize>,
    start: usize,
) -> anyhow::Error {
    let frames = format!("frames {}..{}", start + rows.start, start + rows.end);
    let culprit = block.iter().copied().find(|&i| {
        states.get(i).and_then(Option::as_ref).is_some_and(|t| {
            backend
                .column_stats(t, rows.clone(), 1.0)
                .is_ok_and(|s| !finite(&s))
        })
    });
    match culprit {
        Some(i) => anyhow::anyhow!(
            "hidden state {i} (layer {i}) is NaN or infinite in {frames}: the encoder gives no usable output for this clip"
        ),
        None => anyhow::anyhow!(
            "the mean of hidden states {block:?} is NaN or infinite in {frames}: the encoder gives no usable output for this clip"
        ),
    }
}

/// `[frames, D]` with each frame the concatenation of its blocks' rows.
fn interleave(
    blocks: &[Block],
    used: usize,
    seqs: &HashMap<(Block, usize), Vec<f32>>,
) -> Result<Vec<f32>> {
    let parts = blocks
        .iter()
        .map(|b| {
            seqs.get(&(b.clone(), used))
                .with_context(|| format!("no frames for hidden states {b:?}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let widths: Vec<usize> = parts.iter().map(|p| p.len() / used.max(1)).collect();
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for t in 0..used {
        for (p, &w) in parts.iter().zip(&widths) {
            out.extend_from_slice(&p[t * w..(t + 1) * w]);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::prelude::*;
    use crate::cpu::CpuBackend;

    /// Non-finite encoder output is named by hidden state and frames (it
    /// used to reach training as "feature 9 of clip 10 is NaN").
    #[test]
    fn non_finite_output_names_the_hidden_state_and_frames() {
        let b = CpuBackend::new();
        let good = vec![0.5f32; 8];
        let mut bad = good.clone();
        bad[5] = f32::INFINITY; // row 2 of [4, 2]
        let states = vec![
            Some(b.upload(&good, 4, 2).unwrap()),
            None,
            Some(b.upload(&bad, 4, 2).unwrap()),
        ];
        let stats = |i: usize, rows| {
            b.column_stats(states[i].as_ref().unwrap(), rows, 1.0)
                .unwrap()
        };
        assert!(finite(&stats(0, 0..4)));
        assert!(!finite(&stats(2, 0..4)));
        assert!(finite(&stats(2, 0..2)), "rows without the inf");
        let e = non_finite(&b, &states, &[0, 2], 1..3, 100).to_string();
        assert!(
            e.contains("hidden state 2 (layer 2)") && e.contains("frames 101..103"),
            "{e}"
        );
    }
}
