//! [`Timed`]: a [`Backend`] wrapper that delegates every op and accumulates its wall time.
//!
//! It gives a per-op profile of any backend without touching the encoder.
//! On the CPU backend the ops are synchronous, so the wall time of a call is the
//! op's cost (plus ~100 ns for the clock and the lock). On an asynchronous
//! device (the GPU backend) a call only records work: its time is attributed
//! to whichever later op waits (usually [`Storage::download`]). Exact per-op
//! GPU times need a sync after each op (a download) or timestamp queries; a
//! GPU profile taken through this wrapper is only approximate.

use crate::backend::prelude::*;
use crate::ops::Act;
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

/// Calls and accumulated wall time of one op (or one op on one shape).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct OpStat {
    pub calls: u64,
    pub secs: f64,
}

/// What a [`Timed`] backend recorded: per op name, and per op name with its shapes.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    pub ops: BTreeMap<&'static str, OpStat>,
    /// Key `"op in_rows×in_cols→out_rows×out_cols"` (tensor-producing ops only).
    pub shapes: BTreeMap<String, OpStat>,
}

impl Profile {
    /// The `n` entries of `map` with the most time, most first.
    pub fn top<K: ToString>(map: &BTreeMap<K, OpStat>, n: usize) -> Vec<(String, OpStat)> {
        let mut v: Vec<(String, OpStat)> = map.iter().map(|(k, s)| (k.to_string(), *s)).collect();
        v.sort_by(|a, b| b.1.secs.total_cmp(&a.1.secs));
        v.truncate(n);
        v
    }

    /// Sum of the time of every recorded op.
    pub fn total_secs(&self) -> f64 {
        self.ops.values().map(|s| s.secs).sum()
    }
}

/// A backend that times every op of the backend it wraps.
pub struct Timed<B: Backend> {
    inner: B,
    profile: Mutex<Profile>,
}

impl<B: Backend> Timed<B> {
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            profile: Mutex::new(Profile::default()),
        }
    }

    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// A copy of what was recorded so far.
    pub fn profile(&self) -> Profile {
        self.lock().clone()
    }

    /// Forget what was recorded (e.g. after preparing the weights or a warm-up pass).
    pub fn reset(&self) {
        *self.lock() = Profile::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Profile> {
        // A panic while holding the lock cannot leave the maps half-updated in a
        // way that matters for timing; keep going with what is there.
        self.profile.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, op: &'static str, secs: f64, shapes: Option<String>) {
        let mut p = self.lock();
        let s = p.ops.entry(op).or_default();
        s.calls += 1;
        s.secs += secs;
        if let Some(key) = shapes {
            let s = p.shapes.entry(key).or_default();
            s.calls += 1;
            s.secs += secs;
        }
    }

    /// Time `f` as op `op` (no shape entry).
    fn time<T>(&self, op: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let t0 = Instant::now();
        let out = f();
        self.record(op, t0.elapsed().as_secs_f64(), None);
        out
    }

    /// Time a tensor-producing op on input shape `x`, recording the output shape too.
    fn time_op(
        &self,
        op: &'static str,
        x: (usize, usize),
        f: impl FnOnce() -> Result<B::Tensor>,
    ) -> Result<B::Tensor> {
        let t0 = Instant::now();
        let out = f();
        let secs = t0.elapsed().as_secs_f64();
        let key = out.as_ref().ok().map(|y| {
            let (r, c) = self.inner.shape(y);
            format!("{op} {}×{}→{r}×{c}", x.0, x.1)
        });
        self.record(op, secs, key);
        out
    }
}

impl<B: Backend> Storage for Timed<B> {
    type Tensor = B::Tensor;

    fn name(&self) -> String {
        self.inner.name()
    }

    fn upload(&self, data: &[f32], rows: usize, cols: usize) -> Result<Self::Tensor> {
        self.time("upload", || self.inner.upload(data, rows, cols))
    }

    fn download(&self, x: &Self::Tensor) -> Result<Vec<f32>> {
        self.time("download", || self.inner.download(x))
    }

    fn shape(&self, x: &Self::Tensor) -> (usize, usize) {
        self.inner.shape(x)
    }

    fn max_tensor_len(&self) -> usize {
        self.inner.max_tensor_len()
    }
}

impl<B: Backend> LayoutOps for Timed<B> {
    fn transpose(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        self.time_op("transpose", self.inner.shape(x), || self.inner.transpose(x))
    }

    fn slice_rows(&self, x: &Self::Tensor, start: usize, len: usize) -> Result<Self::Tensor> {
        self.time_op("slice_rows", self.inner.shape(x), || {
            self.inner.slice_rows(x, start, len)
        })
    }

    fn reshape(&self, x: Self::Tensor, rows: usize, cols: usize) -> Result<Self::Tensor> {
        // Free (no device work): forwarded untimed.
        self.inner.reshape(x, rows, cols)
    }

    fn concat_rows(&self, parts: &[&Self::Tensor]) -> Result<Self::Tensor> {
        let shape = parts.first().map_or((0, 0), |p| self.inner.shape(p));
        self.time_op("concat_rows", shape, || self.inner.concat_rows(parts))
    }
}

impl<B: Backend> ElementwiseOps for Timed<B> {
    fn activate(&self, x: Self::Tensor, act: Act) -> Result<Self::Tensor> {
        let shape = self.inner.shape(&x);
        self.time_op("activate", shape, || self.inner.activate(x, act))
    }

    fn add(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.time_op("add", self.inner.shape(a), || self.inner.add(a, b))
    }

    fn glu(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        self.time_op("glu", self.inner.shape(x), || self.inner.glu(x))
    }
}

impl<B: Backend> LinearOps for Timed<B> {
    type Linear = B::Linear;

    fn prepare_linear(
        &self,
        w: &[f32],
        out_dim: usize,
        in_dim: usize,
        bias: Option<&[f32]>,
    ) -> Result<Self::Linear> {
        self.time("prepare_linear", || {
            self.inner.prepare_linear(w, out_dim, in_dim, bias)
        })
    }

    fn linear(
        &self,
        x: &Self::Tensor,
        w: &Self::Linear,
        act: Act,
        residual: Option<&Self::Tensor>,
    ) -> Result<Self::Tensor> {
        self.time_op("linear", self.inner.shape(x), || {
            self.inner.linear(x, w, act, residual)
        })
    }
}

impl<B: Backend> ConvOps for Timed<B> {
    type Conv1d = B::Conv1d;

    fn prepare_conv1d(
        &self,
        w: &[f32],
        c_out: usize,
        c_in: usize,
        k: usize,
        groups: usize,
        bias: Option<&[f32]>,
    ) -> Result<Self::Conv1d> {
        self.time("prepare_conv1d", || {
            self.inner.prepare_conv1d(w, c_out, c_in, k, groups, bias)
        })
    }

    fn conv1d(
        &self,
        x: &Self::Tensor,
        w: &Self::Conv1d,
        stride: usize,
        pad: usize,
        act: Act,
    ) -> Result<Self::Tensor> {
        self.time_op("conv1d", self.inner.shape(x), || {
            self.inner.conv1d(x, w, stride, pad, act)
        })
    }

    fn patches2d(
        &self,
        x: &Self::Tensor,
        g: crate::ops::Patches2d,
        times: std::ops::Range<usize>,
    ) -> Result<Self::Tensor> {
        self.time_op("patches2d", self.inner.shape(x), || {
            self.inner.patches2d(x, g, times)
        })
    }
}

impl<B: Backend> NormOps for Timed<B> {
    type Vector = B::Vector;

    fn prepare_vector(&self, v: &[f32]) -> Result<Self::Vector> {
        self.time("prepare_vector", || self.inner.prepare_vector(v))
    }

    fn group_norm(
        &self,
        x: &Self::Tensor,
        groups: usize,
        gamma: &Self::Vector,
        beta: &Self::Vector,
        eps: f32,
        act: Act,
    ) -> Result<Self::Tensor> {
        self.time_op("group_norm", self.inner.shape(x), || {
            self.inner.group_norm(x, groups, gamma, beta, eps, act)
        })
    }

    fn layer_norm(
        &self,
        x: &Self::Tensor,
        gamma: &Self::Vector,
        beta: &Self::Vector,
        eps: f32,
    ) -> Result<Self::Tensor> {
        self.time_op("layer_norm", self.inner.shape(x), || {
            self.inner.layer_norm(x, gamma, beta, eps)
        })
    }
}

impl<B: Backend> AttentionOps for Timed<B> {
    fn attention(
        &self,
        q: &Self::Tensor,
        k: &Self::Tensor,
        v: &Self::Tensor,
        heads: usize,
        scale: f32,
    ) -> Result<Self::Tensor> {
        self.time_op("attention", self.inner.shape(q), || {
            self.inner.attention(q, k, v, heads, scale)
        })
    }

    fn rope(
        &self,
        x: &Self::Tensor,
        table: &Self::Tensor,
        head_dim: usize,
    ) -> Result<Self::Tensor> {
        self.time_op("rope", self.inner.shape(x), || {
            self.inner.rope(x, table, head_dim)
        })
    }
}

impl<B: Backend> StatsOps for Timed<B> {
    fn mean_states(&self, xs: &[&Self::Tensor]) -> Result<(Self::Tensor, f32)> {
        // Not an encoder op (pooling): forwarded untimed.
        self.inner.mean_states(xs)
    }

    fn column_stats(
        &self,
        x: &Self::Tensor,
        rows: std::ops::Range<usize>,
        scale: f32,
    ) -> Result<crate::ops::ColumnStats> {
        // Not an encoder op: forwarded untimed.
        self.inner.column_stats(x, rows, scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::CpuBackend;
    use crate::encoder::Mert;
    use std::path::Path;

    #[test]
    fn timed_matches_the_wrapped_backend_and_records_each_op() {
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spec/mert_tiny_postln");
        let plain = CpuBackend::new();
        let timed = Timed::new(CpuBackend::new());
        let m_plain = Mert::load(&plain, &dir).unwrap();
        let m_timed = Mert::load(&timed, &dir).unwrap();
        let prepared = timed.profile();
        for op in ["prepare_linear", "prepare_conv1d", "prepare_vector"] {
            assert!(prepared.ops[op].calls > 0, "{op} not recorded");
        }
        timed.reset();
        assert!(timed.profile().ops.is_empty());

        let wave: Vec<f32> = (0..12_000).map(|i| (i as f32 * 0.013).sin()).collect();
        let all: Vec<usize> = (0..m_plain.config().num_hidden_states()).collect();
        let a = m_plain.encode(&plain, &wave, &all).unwrap();
        let b = m_timed.encode(&timed, &wave, &all).unwrap();
        assert_eq!(a.frames, b.frames);
        assert_eq!(a.states, b.states, "wrapper changed the outputs");

        let p = timed.profile();
        for op in [
            "upload",
            "download",
            "linear",
            "conv1d",
            "group_norm",
            "layer_norm",
            "attention",
            "add",
            "transpose",
        ] {
            assert!(
                p.ops.get(op).is_some_and(|s| s.calls > 0),
                "{op} missing: {:?}",
                p.ops.keys()
            );
        }
        // 2 layers × (q, k, v, out, ffn_in, ffn_out) + projection; one attention per layer.
        assert_eq!(p.ops["linear"].calls, 13);
        assert_eq!(p.ops["attention"].calls, 2);
        // 7 conv layers + the positional conv; the shape key names the first conv layer.
        assert_eq!(p.ops["conv1d"].calls, 8);
        assert!(
            p.shapes.contains_key("conv1d 1×12000→32×2399"),
            "{:?}",
            p.shapes.keys()
        );
        let top = Profile::top(&p.ops, 3);
        assert_eq!(top.len(), 3);
        assert!(top[0].1.secs >= top[1].1.secs && top[1].1.secs >= top[2].1.secs);
        assert!(p.total_secs() > 0.0);
    }
}
