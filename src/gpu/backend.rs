//! [`Backend`] on the GPU: weights uploaded once in the layout the kernels
//! read, activations kept on the device, ops recorded into one command
//! encoder that is submitted every `FLUSH_EVERY` dispatches (a few layers) or
//! when a tensor is downloaded.

use std::sync::Mutex;

use anyhow::{Result, ensure};

use super::attention::QkvLayout;
use super::conv::ConvShape;
use super::device::lock;
use super::{
    Batch, Gpu, InitError, Tensor, attention, conv, eltwise, glu, matmul, norm, patches, rotary,
};
use crate::backend::checks;
use crate::backend::prelude::*;
use crate::ops::{Act, ColumnStats, Patches2d};

/// Submit after this many recorded dispatches so released buffers get
/// recycled (bounded memory) and the device starts working early.
const FLUSH_EVERY: usize = 96;

/// A device tensor `[rows, cols]`, row-major.
pub struct GpuTensor {
    t: Tensor,
    rows: usize,
    cols: usize,
}

/// Linear weights `[out, in]` as stored (the matmul reads both operands
/// K-contiguous, so no transpose is needed) and the optional bias.
pub struct GpuLinear {
    w: Tensor,
    bias: Option<Tensor>,
    out_dim: usize,
    in_dim: usize,
}

/// Conv weights `[c_out, c_in/groups, k]` as stored: that is the implicit
/// GEMM's A operand, row-major with K = (c_in/groups)·k.
pub struct GpuConv1d {
    w: Tensor,
    bias: Option<Tensor>,
    c_out: usize,
    c_in: usize,
    k: usize,
    groups: usize,
}

/// The wgpu backend. Ops from several threads serialise on its encoder.
pub struct GpuBackend {
    gpu: &'static Gpu,
    batch: Mutex<Batch<'static>>,
}

impl GpuBackend {
    /// Open the shared GPU; `Err(InitError::NoAdapter)` means: use the CPU backend.
    pub fn new() -> std::result::Result<GpuBackend, InitError> {
        let gpu = Gpu::get()?;
        Ok(GpuBackend {
            gpu,
            batch: Mutex::new(gpu.batch()),
        })
    }

    pub fn gpu(&self) -> &'static Gpu {
        self.gpu
    }

    /// Run `f` on the shared batch, then submit if enough work has piled up.
    fn with_batch<T>(&self, f: impl FnOnce(&mut Batch<'static>) -> Result<T>) -> Result<T> {
        let mut b = lock(&self.batch);
        let out = f(&mut b)?;
        if b.pending_dispatches() >= FLUSH_EVERY {
            b.submit()?;
        }
        Ok(out)
    }

    /// Upload weights and submit right away, so the staging copies of a large
    /// model are not all held until the first op.
    fn upload_now(&self, data: &[f32]) -> Result<Tensor> {
        let mut b = lock(&self.batch);
        let t = b.upload(data)?;
        b.submit()?;
        Ok(t)
    }

    fn wrap(t: Tensor, rows: usize, cols: usize) -> GpuTensor {
        GpuTensor { t, rows, cols }
    }
}

impl Storage for GpuBackend {
    type Tensor = GpuTensor;

    fn name(&self) -> String {
        format!("gpu {}", self.gpu.info())
    }

    fn upload(&self, data: &[f32], rows: usize, cols: usize) -> Result<GpuTensor> {
        checks::upload(data, rows, cols)?;
        let t = self.with_batch(|b| b.upload(data))?;
        Ok(Self::wrap(t, rows, cols))
    }

    fn download(&self, x: &GpuTensor) -> Result<Vec<f32>> {
        lock(&self.batch).read(&x.t)
    }

    fn shape(&self, x: &GpuTensor) -> (usize, usize) {
        (x.rows, x.cols)
    }

    fn max_tensor_len(&self) -> usize {
        let l = self.gpu.limits();
        (l.max_storage_buffer_binding_size.min(l.max_buffer_size) / 4) as usize
    }
}

impl LayoutOps for GpuBackend {
    fn transpose(&self, x: &GpuTensor) -> Result<GpuTensor> {
        let y = self.with_batch(|b| eltwise::transpose(b, &x.t, x.rows, x.cols))?;
        Ok(Self::wrap(y, x.cols, x.rows))
    }

    fn slice_rows(&self, x: &GpuTensor, start: usize, len: usize) -> Result<GpuTensor> {
        ensure!(
            start + len <= x.rows,
            "slice_rows: {start}..{} out of {} rows",
            start + len,
            x.rows
        );
        let y = self.with_batch(|b| b.copy(&x.t, start * x.cols, len * x.cols))?;
        Ok(Self::wrap(y, len, x.cols))
    }

    fn reshape(&self, x: GpuTensor, rows: usize, cols: usize) -> Result<GpuTensor> {
        checks::reshape((x.rows, x.cols), rows, cols)?;
        Ok(Self::wrap(x.t, rows, cols))
    }

    fn concat_rows(&self, parts: &[&GpuTensor]) -> Result<GpuTensor> {
        let shapes: Vec<(usize, usize)> = parts.iter().map(|p| (p.rows, p.cols)).collect();
        checks::concat_rows(&shapes)?;
        let tensors: Vec<&Tensor> = parts.iter().map(|p| &p.t).collect();
        let y = self.with_batch(|b| eltwise::concat(b, &tensors))?;
        Ok(Self::wrap(y, shapes.iter().map(|s| s.0).sum(), shapes[0].1))
    }
}

impl ElementwiseOps for GpuBackend {
    fn activate(&self, x: GpuTensor, act: Act) -> Result<GpuTensor> {
        self.with_batch(|b| eltwise::act(b, &x.t, act))?;
        Ok(x)
    }

    fn add(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        ensure!((a.rows, a.cols) == (b.rows, b.cols), "add: shapes differ");
        let y = self.with_batch(|batch| {
            let y = batch.copy(&a.t, 0, a.t.len())?;
            eltwise::add(batch, &y, &b.t)?;
            Ok(y)
        })?;
        Ok(Self::wrap(y, a.rows, a.cols))
    }

    fn glu(&self, x: &GpuTensor) -> Result<GpuTensor> {
        checks::glu((x.rows, x.cols))?;
        let y = self.with_batch(|b| glu::glu(b, &x.t, x.rows, x.cols))?;
        Ok(Self::wrap(y, x.rows, x.cols / 2))
    }
}

impl LinearOps for GpuBackend {
    type Linear = GpuLinear;

    fn prepare_linear(
        &self,
        w: &[f32],
        out_dim: usize,
        in_dim: usize,
        bias: Option<&[f32]>,
    ) -> Result<GpuLinear> {
        checks::linear_weights(w, out_dim, in_dim, bias)?;
        Ok(GpuLinear {
            w: self.upload_now(w)?,
            bias: bias.map(|b| self.upload_now(b)).transpose()?,
            out_dim,
            in_dim,
        })
    }

    fn linear(
        &self,
        x: &GpuTensor,
        w: &GpuLinear,
        act: Act,
        residual: Option<&GpuTensor>,
    ) -> Result<GpuTensor> {
        ensure!(
            x.cols == w.in_dim,
            "linear: input has {} columns, weight expects {}",
            x.cols,
            w.in_dim
        );
        if let Some(r) = residual {
            ensure!(
                (r.rows, r.cols) == (x.rows, w.out_dim),
                "linear: residual is [{}, {}], output is [{}, {}]",
                r.rows,
                r.cols,
                x.rows,
                w.out_dim
            );
        }
        let y = self.with_batch(|b| {
            matmul::linear(
                b,
                &x.t,
                x.rows,
                x.cols,
                &w.w,
                w.out_dim,
                w.bias.as_ref(),
                act,
                residual.map(|r| &r.t),
            )
        })?;
        Ok(Self::wrap(y, x.rows, w.out_dim))
    }
}

impl ConvOps for GpuBackend {
    type Conv1d = GpuConv1d;

    fn prepare_conv1d(
        &self,
        w: &[f32],
        c_out: usize,
        c_in: usize,
        k: usize,
        groups: usize,
        bias: Option<&[f32]>,
    ) -> Result<GpuConv1d> {
        checks::conv1d_weights(w, c_out, c_in, k, groups, bias)?;
        Ok(GpuConv1d {
            w: self.upload_now(w)?,
            bias: bias.map(|b| self.upload_now(b)).transpose()?,
            c_out,
            c_in,
            k,
            groups,
        })
    }

    fn conv1d(
        &self,
        x: &GpuTensor,
        w: &GpuConv1d,
        stride: usize,
        pad: usize,
        act: Act,
    ) -> Result<GpuTensor> {
        ensure!(
            x.rows == w.c_in,
            "conv1d: input has {} channels, weight expects {}",
            x.rows,
            w.c_in
        );
        let shape = ConvShape {
            c_in: w.c_in,
            t: x.cols,
            c_out: w.c_out,
            k: w.k,
            stride,
            pad,
            groups: w.groups,
        };
        let (y, t_out) =
            self.with_batch(|b| conv::conv1d(b, &x.t, &w.w, shape, w.bias.as_ref(), act))?;
        Ok(Self::wrap(y, w.c_out, t_out))
    }

    fn patches2d(
        &self,
        x: &GpuTensor,
        g: Patches2d,
        times: std::ops::Range<usize>,
    ) -> Result<GpuTensor> {
        checks::patches2d((x.rows, x.cols), g, &times)?;
        let rows = times.len() * g.out_freq();
        let y = self.with_batch(|b| patches::patches2d(b, &x.t, g, times))?;
        Ok(Self::wrap(y, rows, g.patch_len()))
    }
}

impl NormOps for GpuBackend {
    type Vector = Tensor;

    fn prepare_vector(&self, v: &[f32]) -> Result<Tensor> {
        self.upload_now(v)
    }

    fn group_norm(
        &self,
        x: &GpuTensor,
        groups: usize,
        gamma: &Tensor,
        beta: &Tensor,
        eps: f32,
        act: Act,
    ) -> Result<GpuTensor> {
        let y = self.with_batch(|b| {
            norm::group_norm(b, &x.t, x.rows, x.cols, groups, gamma, beta, eps, act)
        })?;
        Ok(Self::wrap(y, x.rows, x.cols))
    }

    fn layer_norm(
        &self,
        x: &GpuTensor,
        gamma: &Tensor,
        beta: &Tensor,
        eps: f32,
    ) -> Result<GpuTensor> {
        let y = self.with_batch(|b| norm::layer_norm(b, &x.t, x.rows, x.cols, gamma, beta, eps))?;
        Ok(Self::wrap(y, x.rows, x.cols))
    }
}

impl AttentionOps for GpuBackend {
    fn attention(
        &self,
        q: &GpuTensor,
        k: &GpuTensor,
        v: &GpuTensor,
        heads: usize,
        scale: f32,
    ) -> Result<GpuTensor> {
        checks::attention((q.rows, q.cols), (k.rows, k.cols), (v.rows, v.cols), heads)?;
        let layout = QkvLayout {
            stride: q.cols,
            q_off: 0,
            k_off: 0,
            v_off: 0,
        };
        let y = self.with_batch(|b| {
            attention::attention(
                b,
                &q.t,
                &k.t,
                &v.t,
                layout,
                q.rows,
                heads,
                q.cols / heads,
                scale,
            )
        })?;
        Ok(Self::wrap(y, q.rows, q.cols))
    }

    fn rope(&self, x: &GpuTensor, table: &GpuTensor, head_dim: usize) -> Result<GpuTensor> {
        checks::rope((x.rows, x.cols), (table.rows, table.cols), head_dim)?;
        let y = self.with_batch(|b| rotary::rope(b, &x.t, &table.t, x.rows, x.cols, head_dim))?;
        Ok(Self::wrap(y, x.rows, x.cols))
    }
}

impl StatsOps for GpuBackend {
    fn column_stats(
        &self,
        x: &GpuTensor,
        rows: std::ops::Range<usize>,
        scale: f32,
    ) -> Result<ColumnStats> {
        let n = rows.len();
        let y = self.with_batch(|b| eltwise::col_stats(b, &x.t, x.rows, x.cols, rows, scale))?;
        let v = lock(&self.batch).read(&y)?;
        let block = |i: usize| {
            v[i * x.cols..(i + 1) * x.cols]
                .iter()
                .map(|&f| f64::from(f))
                .collect()
        };
        Ok(ColumnStats {
            n,
            mean: block(0),
            m2: block(1),
            min: block(2),
            max: block(3),
        })
    }
}
