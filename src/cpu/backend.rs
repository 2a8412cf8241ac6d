//! [`Backend`] on the host: each op is a thin wrapper over the reference op in `crate::cpu`.

use super::{
    activate, add, attention, conv1d, fast, glu, group_norm, layer_norm, linear, patches2d, rope,
    transpose,
};
use crate::backend::checks;
use crate::backend::prelude::*;
use crate::ops::{Act, ColumnStats, Patches2d};
use anyhow::{Result, ensure};

/// A host tensor `[rows, cols]`, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuTensor {
    pub data: Vec<f32>,
    pub rows: usize,
    pub cols: usize,
}

/// Linear weights kept in PyTorch layout.
#[derive(Clone, Debug)]
pub struct CpuLinear {
    w: Vec<f32>,
    bias: Option<Vec<f32>>,
    out_dim: usize,
    in_dim: usize,
}

/// Conv1d weights kept in PyTorch layout.
#[derive(Clone, Debug)]
pub struct CpuConv1d {
    w: Vec<f32>,
    bias: Option<Vec<f32>>,
    c_out: usize,
    c_in: usize,
    k: usize,
    groups: usize,
}

/// The CPU backend. `CpuBackend::new()` runs linear, conv1d and attention on the
/// `gemm` crate (`cpu::fast`); `CpuBackend::reference()` runs only the plain reference
/// ops (the oracle). Every other op is the reference op in both.
#[derive(Clone, Copy, Debug)]
pub struct CpuBackend {
    fast: bool,
}

impl Default for CpuBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuBackend {
    /// Fast backend (gemm for the matmul-shaped ops).
    pub fn new() -> Self {
        Self { fast: true }
    }

    /// Plain reference ops only.
    pub fn reference() -> Self {
        Self { fast: false }
    }

    fn act(&self, x: &mut [f32], act: Act) {
        if self.fast {
            fast::activate(x, act)
        } else {
            activate(x, act)
        }
    }
}

impl Storage for CpuBackend {
    type Tensor = CpuTensor;

    fn name(&self) -> String {
        let kind = if self.fast { "gemm" } else { "reference" };
        format!("cpu-{kind} ({} threads)", rayon::current_num_threads())
    }

    fn upload(&self, data: &[f32], rows: usize, cols: usize) -> Result<CpuTensor> {
        checks::upload(data, rows, cols)?;
        Ok(CpuTensor {
            data: data.to_vec(),
            rows,
            cols,
        })
    }

    fn download(&self, x: &CpuTensor) -> Result<Vec<f32>> {
        Ok(x.data.clone())
    }

    fn shape(&self, x: &CpuTensor) -> (usize, usize) {
        (x.rows, x.cols)
    }
}

impl LayoutOps for CpuBackend {
    fn transpose(&self, x: &CpuTensor) -> Result<CpuTensor> {
        Ok(CpuTensor {
            data: transpose(&x.data, x.rows, x.cols),
            rows: x.cols,
            cols: x.rows,
        })
    }

    fn slice_rows(&self, x: &CpuTensor, start: usize, len: usize) -> Result<CpuTensor> {
        ensure!(
            start + len <= x.rows,
            "slice_rows: {start}..{} out of {} rows",
            start + len,
            x.rows
        );
        let data = x.data[start * x.cols..(start + len) * x.cols].to_vec();
        Ok(CpuTensor {
            data,
            rows: len,
            cols: x.cols,
        })
    }

    fn reshape(&self, x: CpuTensor, rows: usize, cols: usize) -> Result<CpuTensor> {
        checks::reshape((x.rows, x.cols), rows, cols)?;
        Ok(CpuTensor {
            data: x.data,
            rows,
            cols,
        })
    }

    fn concat_rows(&self, parts: &[&CpuTensor]) -> Result<CpuTensor> {
        let shapes: Vec<(usize, usize)> = parts.iter().map(|p| (p.rows, p.cols)).collect();
        checks::concat_rows(&shapes)?;
        Ok(CpuTensor {
            data: parts.iter().flat_map(|p| p.data.iter().copied()).collect(),
            rows: shapes.iter().map(|s| s.0).sum(),
            cols: shapes[0].1,
        })
    }
}

impl ElementwiseOps for CpuBackend {
    fn activate(&self, mut x: CpuTensor, act: Act) -> Result<CpuTensor> {
        self.act(&mut x.data, act);
        Ok(x)
    }

    fn add(&self, a: &CpuTensor, b: &CpuTensor) -> Result<CpuTensor> {
        ensure!((a.rows, a.cols) == (b.rows, b.cols), "add: shapes differ");
        let mut y = a.data.clone();
        add(&mut y, &b.data);
        Ok(CpuTensor {
            data: y,
            rows: a.rows,
            cols: a.cols,
        })
    }

    fn glu(&self, x: &CpuTensor) -> Result<CpuTensor> {
        checks::glu((x.rows, x.cols))?;
        Ok(CpuTensor {
            data: glu(&x.data, x.rows, x.cols),
            rows: x.rows,
            cols: x.cols / 2,
        })
    }
}

impl LinearOps for CpuBackend {
    type Linear = CpuLinear;

    fn prepare_linear(
        &self,
        w: &[f32],
        out_dim: usize,
        in_dim: usize,
        bias: Option<&[f32]>,
    ) -> Result<CpuLinear> {
        checks::linear_weights(w, out_dim, in_dim, bias)?;
        Ok(CpuLinear {
            w: w.to_vec(),
            bias: bias.map(<[f32]>::to_vec),
            out_dim,
            in_dim,
        })
    }

    fn linear(
        &self,
        x: &CpuTensor,
        w: &CpuLinear,
        act: Act,
        residual: Option<&CpuTensor>,
    ) -> Result<CpuTensor> {
        ensure!(
            x.cols == w.in_dim,
            "linear: input has {} columns, weight expects {}",
            x.cols,
            w.in_dim
        );
        let f = if self.fast { fast::linear } else { linear };
        let mut y = f(
            &x.data,
            x.rows,
            x.cols,
            &w.w,
            w.out_dim,
            w.bias.as_deref(),
            act,
        );
        if let Some(r) = residual {
            ensure!(
                (r.rows, r.cols) == (x.rows, w.out_dim),
                "linear: residual shape mismatch"
            );
            add(&mut y, &r.data);
        }
        Ok(CpuTensor {
            data: y,
            rows: x.rows,
            cols: w.out_dim,
        })
    }
}

impl ConvOps for CpuBackend {
    type Conv1d = CpuConv1d;

    fn prepare_conv1d(
        &self,
        w: &[f32],
        c_out: usize,
        c_in: usize,
        k: usize,
        groups: usize,
        bias: Option<&[f32]>,
    ) -> Result<CpuConv1d> {
        checks::conv1d_weights(w, c_out, c_in, k, groups, bias)?;
        Ok(CpuConv1d {
            w: w.to_vec(),
            bias: bias.map(<[f32]>::to_vec),
            c_out,
            c_in,
            k,
            groups,
        })
    }

    fn conv1d(
        &self,
        x: &CpuTensor,
        w: &CpuConv1d,
        stride: usize,
        pad: usize,
        act: Act,
    ) -> Result<CpuTensor> {
        ensure!(
            x.rows == w.c_in,
            "conv1d: input has {} channels, weight expects {}",
            x.rows,
            w.c_in
        );
        let (c_in, t, b) = (x.rows, x.cols, w.bias.as_deref());
        let (y, t_out) = if self.fast {
            fast::conv1d(
                &x.data, c_in, t, &w.w, w.c_out, w.k, stride, pad, w.groups, b, act,
            )
        } else {
            let (mut y, t_out) = conv1d(
                &x.data, c_in, t, &w.w, w.c_out, w.k, stride, pad, w.groups, b,
            );
            activate(&mut y, act);
            (y, t_out)
        };
        Ok(CpuTensor {
            data: y,
            rows: w.c_out,
            cols: t_out,
        })
    }

    fn patches2d(
        &self,
        x: &CpuTensor,
        g: Patches2d,
        times: std::ops::Range<usize>,
    ) -> Result<CpuTensor> {
        checks::patches2d((x.rows, x.cols), g, &times)?;
        Ok(CpuTensor {
            rows: times.len() * g.out_freq(),
            data: patches2d(&x.data, g, times),
            cols: g.patch_len(),
        })
    }
}

impl NormOps for CpuBackend {
    type Vector = Vec<f32>;

    fn prepare_vector(&self, v: &[f32]) -> Result<Vec<f32>> {
        Ok(v.to_vec())
    }

    fn group_norm(
        &self,
        x: &CpuTensor,
        groups: usize,
        gamma: &Vec<f32>,
        beta: &Vec<f32>,
        eps: f32,
        act: Act,
    ) -> Result<CpuTensor> {
        let y = if self.fast {
            fast::group_norm(&x.data, x.rows, x.cols, groups, gamma, beta, eps, act)
        } else {
            let mut y = group_norm(&x.data, x.rows, x.cols, groups, gamma, beta, eps);
            self.act(&mut y, act);
            y
        };
        Ok(CpuTensor {
            data: y,
            rows: x.rows,
            cols: x.cols,
        })
    }

    fn layer_norm(
        &self,
        x: &CpuTensor,
        gamma: &Vec<f32>,
        beta: &Vec<f32>,
        eps: f32,
    ) -> Result<CpuTensor> {
        ensure!(
            gamma.len() == x.cols,
            "layer_norm: gamma has {} values for {} columns",
            gamma.len(),
            x.cols
        );
        let f = if self.fast {
            fast::layer_norm
        } else {
            layer_norm
        };
        Ok(CpuTensor {
            data: f(&x.data, x.rows, x.cols, gamma, beta, eps),
            rows: x.rows,
            cols: x.cols,
        })
    }
}

impl AttentionOps for CpuBackend {
    fn attention(
        &self,
        q: &CpuTensor,
        k: &CpuTensor,
        v: &CpuTensor,
        heads: usize,
        scale: f32,
    ) -> Result<CpuTensor> {
        checks::attention((q.rows, q.cols), (k.rows, k.cols), (v.rows, v.cols), heads)?;
        let f = if self.fast {
            fast::attention
        } else {
            attention
        };
        let y = f(
            &q.data,
            &k.data,
            &v.data,
            q.rows,
            heads,
            q.cols / heads,
            scale,
        );
        Ok(CpuTensor {
            data: y,
            rows: q.rows,
            cols: q.cols,
        })
    }

    fn rope(&self, x: &CpuTensor, table: &CpuTensor, head_dim: usize) -> Result<CpuTensor> {
        checks::rope((x.rows, x.cols), (table.rows, table.cols), head_dim)?;
        Ok(CpuTensor {
            data: rope(&x.data, x.rows, x.cols, &table.data, head_dim),
            rows: x.rows,
            cols: x.cols,
        })
    }
}

impl StatsOps for CpuBackend {
    /// The mean itself (`s = 1`), in f64 as the host pooling takes it, so the
    /// CPU backend's pooled features equal the host oracle's.
    fn mean_states(&self, xs: &[&CpuTensor]) -> Result<(CpuTensor, f32)> {
        ensure!(
            xs.len() >= 2,
            "mean_states: {} tensor(s), need 2+",
            xs.len()
        );
        let (rows, cols) = (xs[0].rows, xs[0].cols);
        ensure!(
            xs.iter().all(|x| (x.rows, x.cols) == (rows, cols)),
            "mean_states: shapes differ"
        );
        let slices: Vec<&[f32]> = xs.iter().map(|x| x.data.as_slice()).collect();
        let data = crate::ops::mean_of(&slices, rows * cols);
        Ok((CpuTensor { data, rows, cols }, 1.0))
    }

    /// As the default, without copying the tensor first.
    fn column_stats(
        &self,
        x: &CpuTensor,
        rows: std::ops::Range<usize>,
        scale: f32,
    ) -> Result<ColumnStats> {
        ensure!(
            rows.start < rows.end && rows.end <= x.rows,
            "column_stats: rows {rows:?} of {}",
            x.rows
        );
        Ok(ColumnStats::of(&x.data, x.cols, rows, f64::from(scale)))
    }
}
