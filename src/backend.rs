//! The backend contract: the op families the encoder forward passes are
//! written against, once, for every backend (split as burn splits its
//! backend: [`Storage`], [`LayoutOps`], [`ElementwiseOps`], [`LinearOps`],
//! [`ConvOps`], [`NormOps`], [`AttentionOps`], [`StatsOps`]; [`Backend`] is
//! all of them). It sits below `cpu` and `gpu`, which implement it, and
//! `encoder`, which calls it. Code generic over `B: Backend` calls every op;
//! code on a concrete backend imports the families it calls, or [`prelude`].
//!
//! Must not import any module of the crate but `ops`.
//!
//! # Implementing a backend
//!
//! A backend owns a device and runs a small set of ops on tensors that stay on
//! that device between ops. The model code never looks inside a tensor: it
//! uploads the input once, chains ops, and downloads only the hidden states the
//! caller asked for.
//!
//! - **Tensors** are 2-D, row-major f32, shape `[rows, cols]`. Time-major
//!   activations are `[t, hidden]`; conv activations are channel-major
//!   `[channels, t]` (as PyTorch's `[C, T]` for one clip). Every op returns a
//!   new tensor; inputs are borrowed and never modified (except [`ElementwiseOps::activate`],
//!   which consumes its input so it may run in place).
//! - **Weights** are prepared once per model with the `prepare_*` methods, from
//!   PyTorch-layout host slices. The backend may store them in any layout
//!   (transposed, packed, f16, ...) as long as the ops compute the documented
//!   result. Prepared weights are never modified by the ops.
//! - **Numerics**: each op must match the plain reference op of the same name
//!   in [`crate::cpu`] (the oracle; its unit tests and the GPU kernel tests
//!   compare against it) to f32 accuracy. GELU is the exact erf form with
//!   [`crate::ops::erf`]'s formula. Normalisations use the population variance.
//! - **Shapes** are checked by the model code before calling; a backend may
//!   still return an error (out of memory, device lost, shape mismatch) with
//!   context, and must never read or write out of bounds.
//! - **Errors** are `anyhow::Error`. Ops may be asynchronous on the device: a
//!   backend only needs to synchronise in [`Storage::download`].
//!
//! [`crate::cpu::CpuBackend`] is the reference implementation: every method is
//! a thin wrapper over the matching `crate::cpu` function (`CpuBackend::reference()`),
//! or its gemm fast path (`CpuBackend::new()`).
//!
//! To test a new backend, call
//! [`crate::encoder::conformance::check_backend`]`(&backend, 1e-5)`: it runs every
//! op on small odd-sized tensors and compares with the reference ops; then run the
//! MERT goldens through `Mert::<YourBackend>::load` (see `tests/encoder_golden.rs`).

use crate::ops::{Act, ColumnStats, Patches2d};
use anyhow::Result;

/// Every op family at once, for `use crate::backend::prelude::*`.
pub mod prelude {
    pub use super::{
        AttentionOps, Backend, ConvOps, ElementwiseOps, LayoutOps, LinearOps, NormOps, StatsOps,
        Storage,
    };
}

/// A device that runs the encoder op set: every op family. See the module
/// docs for the contract. Implement the families; this follows.
pub trait Backend:
    Storage + LayoutOps + ElementwiseOps + LinearOps + ConvOps + NormOps + AttentionOps + StatsOps
{
}

impl<T> Backend for T where
    T: Storage
        + LayoutOps
        + ElementwiseOps
        + LinearOps
        + ConvOps
        + NormOps
        + AttentionOps
        + StatsOps
{
}

/// A device's tensors: moving them to and from the host, their shapes.
pub trait Storage {
    /// A device-resident 2-D f32 tensor `[rows, cols]`, row-major.
    type Tensor;
    /// Short human-readable name of the device, for logs.
    fn name(&self) -> String;
    /// Copy a host `[rows, cols]` row-major slice to the device.
    fn upload(&self, data: &[f32], rows: usize, cols: usize) -> Result<Self::Tensor>;
    /// Copy a tensor back to the host, row-major (`rows·cols` values). Waits for pending work.
    fn download(&self, x: &Self::Tensor) -> Result<Vec<f32>>;
    /// `(rows, cols)` of a tensor, without synchronising.
    fn shape(&self, x: &Self::Tensor) -> (usize, usize);
    /// The most f32 values one tensor may hold on this device (a GPU's
    /// storage-binding limit); models split larger intermediates.
    fn max_tensor_len(&self) -> usize {
        usize::MAX
    }
}

/// Moving elements without arithmetic: transpose, row slices and stacks, reshapes.
pub trait LayoutOps: Storage {
    /// `[rows, cols]` → `[cols, rows]`.
    fn transpose(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// Rows `start..start+len` of `x` (a contiguous copy).
    fn slice_rows(&self, x: &Self::Tensor, start: usize, len: usize) -> Result<Self::Tensor>;
    /// The same elements viewed as `[rows, cols]` (row-major order unchanged;
    /// no copy). The element count must match.
    fn reshape(&self, x: Self::Tensor, rows: usize, cols: usize) -> Result<Self::Tensor>;
    /// The row blocks `parts` (same column count) stacked in order.
    fn concat_rows(&self, parts: &[&Self::Tensor]) -> Result<Self::Tensor>;
}

/// Element-wise ops: activations, sums, gated units.
pub trait ElementwiseOps: Storage {
    /// Element-wise activation; consumes `x` so the device can run it in place.
    fn activate(&self, x: Self::Tensor, act: Act) -> Result<Self::Tensor>;
    /// Element-wise `a + b` (same shapes).
    fn add(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    /// Gated linear unit over columns: `[t, 2c]` → `x[:, :c]·sigmoid(x[:, c:])`.
    fn glu(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
}

/// The fused linear layer, on weights prepared once.
pub trait LinearOps: Storage {
    /// Prepared weights for [`LinearOps::linear`]: `W` `[out, in]` (PyTorch layout) and an optional bias `[out]`.
    type Linear;
    /// Prepare linear weights: `w` is `[out_dim, in_dim]`, `bias` is `[out_dim]`.
    fn prepare_linear(
        &self,
        w: &[f32],
        out_dim: usize,
        in_dim: usize,
        bias: Option<&[f32]>,
    ) -> Result<Self::Linear>;
    /// Fused linear: `y = act(x Wᵀ + b) + residual`, `x` `[rows, in]` → `[rows, out]`.
    /// The residual (same shape as `y`) is added **after** the activation.
    fn linear(
        &self,
        x: &Self::Tensor,
        w: &Self::Linear,
        act: Act,
        residual: Option<&Self::Tensor>,
    ) -> Result<Self::Tensor>;
}

/// Convolutions: 1-D on prepared weights, and 2-D as patches for a linear.
pub trait ConvOps: Storage {
    /// Prepared weights for [`ConvOps::conv1d`]: `W` `[c_out, c_in/groups, k]`, optional bias `[c_out]`, and `groups`.
    type Conv1d;
    /// Prepare conv1d weights: `w` is `[c_out, c_in/groups, k]`, `bias` is `[c_out]`.
    fn prepare_conv1d(
        &self,
        w: &[f32],
        c_out: usize,
        c_in: usize,
        k: usize,
        groups: usize,
        bias: Option<&[f32]>,
    ) -> Result<Self::Conv1d>;
    /// `act(conv1d(x))` with zero padding `pad` on both sides, no dilation:
    /// `x` `[c_in, t]` → `[c_out, t_out]`, `t_out = floor((t + 2·pad − k)/stride) + 1`
    /// (see [`crate::cpu::conv1d`]).
    fn conv1d(
        &self,
        x: &Self::Tensor,
        w: &Self::Conv1d,
        stride: usize,
        pad: usize,
        act: Act,
    ) -> Result<Self::Tensor>;
    /// 2-D conv patches of a time-major image `x` `[time·freq, channels]` for
    /// the output time steps `times` → `[times.len()·out_freq, channels·k·k]`,
    /// zero padded (see [`crate::cpu::patches2d`]); a [`LinearOps::linear`] with
    /// the PyTorch conv weight then is that block of the conv's output.
    fn patches2d(
        &self,
        x: &Self::Tensor,
        g: Patches2d,
        times: std::ops::Range<usize>,
    ) -> Result<Self::Tensor>;
}

/// Normalisations on prepared parameter vectors.
pub trait NormOps: Storage {
    /// A prepared parameter vector (norm `gamma`/`beta`).
    type Vector;
    /// Prepare a parameter vector.
    fn prepare_vector(&self, v: &[f32]) -> Result<Self::Vector>;
    /// `act(GroupNorm(x))` on `x` `[channels, t]`: statistics per group of
    /// `channels/groups` channels over all their time steps (see [`crate::cpu::group_norm`]).
    fn group_norm(
        &self,
        x: &Self::Tensor,
        groups: usize,
        gamma: &Self::Vector,
        beta: &Self::Vector,
        eps: f32,
        act: Act,
    ) -> Result<Self::Tensor>;
    /// LayerNorm over the last axis (`cols`) of each row.
    fn layer_norm(
        &self,
        x: &Self::Tensor,
        gamma: &Self::Vector,
        beta: &Self::Vector,
        eps: f32,
    ) -> Result<Self::Tensor>;
}

/// Attention and the rotary position encoding.
pub trait AttentionOps: Storage {
    /// Attention core on `q`, `k`, `v` `[t, heads·head_dim]`, heads split
    /// contiguously: `softmax(scale·q kᵀ) v` per head over all keys (no mask),
    /// heads merged back into `[t, heads·head_dim]` (see [`crate::cpu::attention`]).
    fn attention(
        &self,
        q: &Self::Tensor,
        k: &Self::Tensor,
        v: &Self::Tensor,
        heads: usize,
        scale: f32,
    ) -> Result<Self::Tensor>;
    /// Rotary position encoding of `x` `[t, cols]` per `head_dim` chunk, with
    /// `table` `[t, head_dim]` = cos then sin of each row's angles
    /// (see [`crate::cpu::rope`], [`crate::cpu::rope_table`]).
    fn rope(&self, x: &Self::Tensor, table: &Self::Tensor, head_dim: usize)
    -> Result<Self::Tensor>;
}

/// What pooling needs: the mean of hidden states and per-column statistics.
pub trait StatsOps: ElementwiseOps {
    /// The element-wise mean of two or more same-shaped tensors, as `(t, s)`
    /// with `t·s` the mean. The default sums with [`ElementwiseOps::add`] and leaves
    /// the `1/n` in `s` for [`StatsOps::column_stats`] to apply in f64; a
    /// backend may return the mean itself with `s = 1` (the CPU backend
    /// accumulates in f64 with [`crate::ops::mean_of`], as the host pooling does).
    fn mean_states(&self, xs: &[&Self::Tensor]) -> Result<(Self::Tensor, f32)> {
        anyhow::ensure!(
            xs.len() >= 2,
            "mean_states: {} tensor(s), need 2+",
            xs.len()
        );
        let mut acc = self.add(xs[0], xs[1])?;
        for x in &xs[2..] {
            acc = self.add(&acc, x)?;
        }
        Ok((acc, 1.0 / xs.len() as f32))
    }
    /// Per-column statistics of `rows` of `x`, times `scale` (> 0), on the
    /// host. Only these 4·cols numbers need to leave a device that
    /// overrides this (the default downloads `x`).
    fn column_stats(
        &self,
        x: &Self::Tensor,
        rows: std::ops::Range<usize>,
        scale: f32,
    ) -> Result<ColumnStats> {
        let (r, cols) = self.shape(x);
        anyhow::ensure!(
            rows.start < rows.end && rows.end <= r,
            "column_stats: rows {rows:?} of {r}"
        );
        Ok(ColumnStats::of(
            &self.download(x)?,
            cols,
            rows,
            f64::from(scale),
        ))
    }
}

/// Argument checks every backend makes before an op, in one place so the
/// backends agree on what is an error and say it the same way.
pub mod checks {
    use anyhow::{Result, ensure};

    pub fn upload(data: &[f32], rows: usize, cols: usize) -> Result<()> {
        ensure!(
            data.len() == rows * cols,
            "upload: {} values is not [{rows}, {cols}]",
            data.len()
        );
        Ok(())
    }

    /// `w` `[out_dim, in_dim]`, `bias` `[out_dim]`.
    pub fn linear_weights(
        w: &[f32],
        out_dim: usize,
        in_dim: usize,
        bias: Option<&[f32]>,
    ) -> Result<()> {
        ensure!(
            w.len() == out_dim * in_dim,
            "linear weight: {} values is not [{out_dim}, {in_dim}]",
            w.len()
        );
        if let Some(b) = bias {
            ensure!(
                b.len() == out_dim,
                "linear bias: {} values is not [{out_dim}]",
                b.len()
            );
        }
        Ok(())
    }

    /// `w` `[c_out, c_in/groups, k]`, `bias` `[c_out]`, groups dividing both channel counts.
    pub fn conv1d_weights(
        w: &[f32],
        c_out: usize,
        c_in: usize,
        k: usize,
        groups: usize,
        bias: Option<&[f32]>,
    ) -> Result<()> {
        ensure!(
            groups > 0 && c_in.is_multiple_of(groups) && c_out.is_multiple_of(groups),
            "conv1d: groups {groups} must divide c_in {c_in} and c_out {c_out}"
        );
        let want = c_out * (c_in / groups) * k;
        ensure!(
            w.len() == want,
            "conv1d weight: {} values is not [{c_out}, {}, {k}]",
            w.len(),
            c_in / groups
        );
        if let Some(b) = bias {
            ensure!(
                b.len() == c_out,
                "conv1d bias: {} values is not [{c_out}]",
                b.len()
            );
        }
        Ok(())
    }

    /// `x` `[rows, in_dim]` for a linear layer.
    pub fn linear_input(x: &[f32], rows: usize, in_dim: usize) -> Result<()> {
        ensure!(
            x.len() == rows * in_dim,
            "linear: x has {} values, not [{rows}, {in_dim}]",
            x.len()
        );
        Ok(())
    }

    /// `x` `[c_in, t]` for a conv with a positive `stride`.
    pub fn conv1d_input(x: &[f32], c_in: usize, t: usize, stride: usize) -> Result<()> {
        ensure!(stride > 0, "conv1d: stride must be positive");
        ensure!(
            x.len() == c_in * t,
            "conv1d: x has {} values, not [{c_in}, {t}]",
            x.len()
        );
        Ok(())
    }

    /// `x` `[channels, t]` in `groups` groups, `gamma`/`beta` `[channels]`.
    pub fn group_norm(
        x: &[f32],
        channels: usize,
        t: usize,
        groups: usize,
        gamma: &[f32],
        beta: &[f32],
    ) -> Result<()> {
        ensure!(
            groups > 0 && channels.is_multiple_of(groups),
            "group_norm: groups {groups} must divide {channels} channels"
        );
        ensure!(
            x.len() == channels * t,
            "group_norm: x has {} values, not [{channels}, {t}]",
            x.len()
        );
        norm_params("group_norm", gamma, beta, channels)
    }

    /// `x` `[rows, dim]`, `gamma`/`beta` `[dim]`.
    pub fn layer_norm(
        x: &[f32],
        rows: usize,
        dim: usize,
        gamma: &[f32],
        beta: &[f32],
    ) -> Result<()> {
        ensure!(
            x.len() == rows * dim,
            "layer_norm: x has {} values, not [{rows}, {dim}]",
            x.len()
        );
        norm_params("layer_norm", gamma, beta, dim)
    }

    fn norm_params(op: &str, gamma: &[f32], beta: &[f32], n: usize) -> Result<()> {
        ensure!(
            gamma.len() == n && beta.len() == n,
            "{op}: gamma/beta have {}/{} values, not [{n}]",
            gamma.len(),
            beta.len()
        );
        Ok(())
    }

    /// q, k, v slices of `[t, heads·head_dim]` each.
    pub fn attention_slices(q: &[f32], k: &[f32], v: &[f32], t: usize, hd: usize) -> Result<()> {
        ensure!(
            [q.len(), k.len(), v.len()].iter().all(|&n| n == t * hd),
            "attention: q, k, v have {}, {}, {} values, not [{t}, {hd}]",
            q.len(),
            k.len(),
            v.len()
        );
        Ok(())
    }

    /// q, k, v of one shape `(rows, cols)`, cols splitting into `heads`.
    pub fn attention(
        q: (usize, usize),
        k: (usize, usize),
        v: (usize, usize),
        heads: usize,
    ) -> Result<()> {
        ensure!(
            heads > 0 && q.1.is_multiple_of(heads),
            "attention: {} columns do not split into {heads} heads",
            q.1
        );
        ensure!(k == q && v == q, "attention: q, k, v shapes differ");
        Ok(())
    }

    /// Same element count under a new shape.
    pub fn reshape(from: (usize, usize), rows: usize, cols: usize) -> Result<()> {
        ensure!(
            from.0 * from.1 == rows * cols,
            "reshape: [{}, {}] has {} values, not [{rows}, {cols}]",
            from.0,
            from.1,
            from.0 * from.1
        );
        Ok(())
    }

    /// `x` is the image `g` describes, the kernel fits the padded image, and
    /// `times` is a non-empty block of its output steps.
    pub fn patches2d(
        x: (usize, usize),
        g: crate::ops::Patches2d,
        times: &std::ops::Range<usize>,
    ) -> Result<()> {
        ensure!(
            x == (g.time * g.freq, g.channels),
            "patches2d: input [{}, {}] is not [time {} x freq {}, channels {}]",
            x.0,
            x.1,
            g.time,
            g.freq,
            g.channels
        );
        ensure!(
            g.k > 0 && g.stride > 0 && g.out_time() > 0 && g.out_freq() > 0,
            "patches2d: a {k}x{k} kernel (stride {s}, pad {p}) does not fit a {t}x{f} image",
            k = g.k,
            s = g.stride,
            p = g.pad,
            t = g.time,
            f = g.freq
        );
        ensure!(
            times.start < times.end && times.end <= g.out_time(),
            "patches2d: output steps {times:?} of {}",
            g.out_time()
        );
        Ok(())
    }

    /// At least one part, all with the same column count.
    pub fn concat_rows(shapes: &[(usize, usize)]) -> Result<()> {
        ensure!(!shapes.is_empty(), "concat_rows: no parts");
        ensure!(
            shapes.iter().all(|s| s.1 == shapes[0].1),
            "concat_rows: parts have different column counts {shapes:?}"
        );
        Ok(())
    }

    /// `x` `[t, cols]`, `table` `[t, head_dim]`, even `head_dim` dividing `cols`.
    pub fn rope(x: (usize, usize), table: (usize, usize), head_dim: usize) -> Result<()> {
        ensure!(
            head_dim >= 2 && head_dim.is_multiple_of(2) && x.1.is_multiple_of(head_dim),
            "rope: head_dim {head_dim} must be even and divide {} columns",
            x.1
        );
        ensure!(
            table == (x.0, head_dim),
            "rope: table is [{}, {}], expected [{}, {head_dim}]",
            table.0,
            table.1,
            x.0
        );
        Ok(())
    }

    /// An even column count.
    pub fn glu(x: (usize, usize)) -> Result<()> {
        ensure!(x.1.is_multiple_of(2), "glu: {} columns is odd", x.1);
        Ok(())
    }
}
