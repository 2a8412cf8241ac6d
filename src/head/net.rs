//! The three head shapes with hand-written forward and backward passes.
//!
//! Parameters live in one flat `Vec<f32>` (so Adam, checkpoints and gradient
//! checks see a single vector); [`Layout`] gives each tensor's offset.
//! Weight matrices are stored `[in, out]` row-major so the forward product
//! `X·W` streams contiguous rows of W.

use super::act::{self, sigmoid};
use super::config::{Activation, Arch, HeadConfig, OutputActivation};
use super::gemm::{matmul, matmul_a_bt, matmul_at_b};
use crate::rng::Rng;

/// Where each tensor lives in the flat parameter vector: a stack of dense
/// layers, input first, each its weights `[in, out]` then its bias `[out]`
/// (for `Linear` and `Mlp` the last is the output layer), then for
/// `MlpPerDim` the per-dimension heads after the one trunk layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub stack: Vec<Dense>,
    pub per_dim: Option<PerDimLayout>,
    pub total: usize,
}

/// One dense layer's place in the parameter vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dense {
    pub fan_in: usize,
    pub fan_out: usize,
    pub w: std::ops::Range<usize>,
    pub b: std::ops::Range<usize>,
}

/// Offsets of the per-dimension heads (`MlpPerDim`): for each dimension
/// `W2_d` `[hidden, head_hidden]`, then all `b2`, all `w3`, all `b3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PerDimLayout {
    pub w2: usize,
    pub b2: usize,
    pub w3: usize,
    pub b3: usize,
}

/// A head's shape; the parameters are passed to each call.
#[derive(Clone, Debug, PartialEq)]
pub struct Net {
    pub arch: Arch,
    pub d_in: usize,
    /// Hidden widths of the stack: every one of `head.hidden` for `Mlp`,
    /// the one trunk layer for `MlpPerDim`, none for `Linear`.
    pub hidden: Vec<usize>,
    pub head_hidden: usize,
    pub n_out: usize,
    pub act: Activation,
    pub output: OutputActivation,
    pub dropout: f32,
    layout: Layout,
}

/// Activations kept from a forward pass for the backward pass, plus scratch.
#[derive(Clone, Debug, Default)]
pub struct Cache {
    batch: usize,
    /// Each hidden layer's activations after dropout `[b, width]`.
    hs: Vec<Vec<f32>>,
    /// Each hidden layer's act'(z)·dropout mask `[b, width]`.
    dacts: Vec<Vec<f32>>,
    /// Per-dimension heads: activations `[n_out][b, head_hidden]`.
    v: Vec<f32>,
    dact2: Vec<f32>,
    /// Outputs after the output activation `[b, n_out]`.
    pub out: Vec<f32>,
    dz: Vec<f32>,
    dh: Vec<f32>,
    du: Vec<f32>,
    tmp: Vec<f32>,
}

fn add_bias(z: &mut [f32], bias: &[f32]) {
    for row in z.chunks_exact_mut(bias.len()) {
        for (x, b) in row.iter_mut().zip(bias) {
            *x += b;
        }
    }
}

/// Column sums of `[rows, cols]` into `out`, rows in order.
fn col_sums(m: &[f32], cols: usize, out: &mut [f32]) {
    out.fill(0.0);
    for row in m.chunks_exact(cols) {
        for (o, x) in out.iter_mut().zip(row) {
            *o += x;
        }
    }
}

impl Net {
    pub fn new(cfg: &HeadConfig, d_in: usize, n_out: usize) -> Self {
        let hidden = match cfg.arch {
            Arch::Linear => Vec::new(),
            Arch::Mlp => cfg.hidden.0.clone(),
            Arch::MlpPerDim => vec![cfg.hidden.0[0]],
            other => unreachable!("head {other:?} trains on the autodiff stack (graph)"),
        };
        let mut net = Net {
            arch: cfg.arch,
            d_in,
            hidden,
            head_hidden: cfg.head_hidden,
            n_out,
            act: cfg.activation,
            output: cfg.output,
            dropout: cfg.dropout,
            layout: Layout {
                stack: Vec::new(),
                per_dim: None,
                total: 0,
            },
        };
        net.layout = net.make_layout();
        net
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn make_layout(&self) -> Layout {
        let mut widths = vec![self.d_in];
        widths.extend(&self.hidden);
        if self.arch != Arch::MlpPerDim {
            widths.push(self.n_out);
        }
        let mut at = 0;
        let stack = widths
            .windows(2)
            .map(|w| {
                let (fan_in, fan_out) = (w[0], w[1]);
                let dense = Dense {
                    fan_in,
                    fan_out,
                    w: at..at + fan_in * fan_out,
                    b: at + fan_in * fan_out..at + fan_in * fan_out + fan_out,
                };
                at = dense.b.end;
                dense
            })
            .collect();
        let per_dim = (self.arch == Arch::MlpPerDim).then(|| {
            let (h, hh, k) = (self.hidden[0], self.head_hidden, self.n_out);
            let w2 = at;
            let b2 = w2 + k * h * hh;
            let w3 = b2 + k * hh;
            let b3 = w3 + k * hh;
            at = b3 + k;
            PerDimLayout { w2, b2, w3, b3 }
        });
        Layout {
            stack,
            per_dim,
            total: at,
        }
    }

    /// PyTorch's `nn.Linear` default: weights and biases ~ U(±1/√fan_in),
    /// drawn tensor by tensor in layout order.
    pub fn init(&self, rng: &mut Rng) -> Vec<f32> {
        let l = &self.layout;
        let mut p = vec![0f32; l.total];
        let mut fill = |range: std::ops::Range<usize>, fan_in: usize| {
            let bound = 1.0 / (fan_in as f32).sqrt();
            for x in &mut p[range] {
                *x = (2.0 * rng.uniform_f32() - 1.0) * bound;
            }
        };
        for dense in &l.stack {
            fill(dense.w.clone(), dense.fan_in);
            fill(dense.b.clone(), dense.fan_in);
        }
        if let Some(pd) = l.per_dim {
            fill(pd.w2..pd.b2, self.hidden[0]);
            fill(pd.b2..pd.w3, self.hidden[0]);
            fill(pd.w3..pd.b3, self.head_hidden);
            fill(pd.b3..l.total, self.head_hidden);
        }
        p
    }

    /// Forward pass on `x` `[b, d_in]`; outputs land in `cache.out`
    /// `[b, n_out]`. `dropout_rng` = `Some` means training mode.
    pub fn forward(
        &self,
        params: &[f32],
        x: &[f32],
        b: usize,
        mut dropout_rng: Option<&mut Rng>,
        cache: &mut Cache,
    ) {
        let l = &self.layout;
        assert_eq!(
            params.len(),
            l.total,
            "parameter vector has the wrong length"
        );
        assert_eq!(x.len(), b * self.d_in, "input is not [{b}, {}]", self.d_in);
        let k = self.n_out;
        cache.batch = b;
        cache.out.resize(b * k, 0.0);
        // Hidden layers: z = input·W + b, h = act(z)·mask.
        let n_hidden = self.hidden.len();
        cache.hs.resize(n_hidden, Vec::new());
        cache.dacts.resize(n_hidden, Vec::new());
        for (i, dense) in l.stack[..n_hidden].iter().enumerate() {
            let width = dense.fan_out;
            cache.tmp.resize(b * width, 0.0);
            let (below, here) = cache.hs.split_at_mut(i);
            let input = if i == 0 { x } else { &below[i - 1] };
            matmul(
                &mut cache.tmp,
                input,
                &params[dense.w.clone()],
                b,
                dense.fan_in,
                width,
                false,
            );
            add_bias(&mut cache.tmp, &params[dense.b.clone()]);
            let (h, dact) = (&mut here[0], &mut cache.dacts[i]);
            h.resize(b * width, 0.0);
            dact.resize(b * width, 0.0);
            act::forward(self.act, &cache.tmp, h, dact);
            if let Some(rng) = dropout_rng.as_deref_mut()
                && self.dropout > 0.0
            {
                // Inverted dropout: survivors scaled by 1/(1-p), so eval needs no rescale.
                let scale = 1.0 / (1.0 - self.dropout);
                for (hv, dv) in h.iter_mut().zip(dact.iter_mut()) {
                    let m = if rng.uniform_f32() < self.dropout {
                        0.0
                    } else {
                        scale
                    };
                    *hv *= m;
                    *dv *= m;
                }
            }
        }
        let top: &[f32] = match n_hidden {
            0 => x,
            n => &cache.hs[n - 1],
        };
        match l.per_dim {
            None => {
                let dense = &l.stack[n_hidden];
                matmul(
                    &mut cache.out,
                    top,
                    &params[dense.w.clone()],
                    b,
                    dense.fan_in,
                    k,
                    false,
                );
                add_bias(&mut cache.out, &params[dense.b.clone()]);
            }
            Some(pd) => {
                let (h, hh) = (self.hidden[0], self.head_hidden);
                cache.v.resize(k * b * hh, 0.0);
                cache.dact2.resize(k * b * hh, 0.0);
                cache.tmp.resize(b * hh, 0.0);
                for dim in 0..k {
                    let w2 = &params[pd.w2 + dim * h * hh..pd.w2 + (dim + 1) * h * hh];
                    let b2 = &params[pd.b2 + dim * hh..pd.b2 + (dim + 1) * hh];
                    let w3 = &params[pd.w3 + dim * hh..pd.w3 + (dim + 1) * hh];
                    let b3 = params[pd.b3 + dim];
                    let tmp = &mut cache.tmp[..b * hh];
                    matmul(tmp, top, w2, b, h, hh, false);
                    add_bias(tmp, b2);
                    let span = dim * b * hh..(dim + 1) * b * hh;
                    act::forward(
                        self.act,
                        tmp,
                        &mut cache.v[span.clone()],
                        &mut cache.dact2[span.clone()],
                    );
                    for (i, vrow) in cache.v[span].chunks_exact(hh).enumerate() {
                        let mut z = b3;
                        for (vv, ww) in vrow.iter().zip(w3) {
                            z += vv * ww;
                        }
                        cache.out[i * k + dim] = z;
                    }
                }
            }
        }
        self.output_activation(&mut cache.out);
    }

    fn output_activation(&self, out: &mut [f32]) {
        if self.output == OutputActivation::Sigmoid {
            for o in out {
                *o = sigmoid(*o);
            }
        }
    }

    /// Gradient of the loss w.r.t. the parameters into `grad` (overwritten),
    /// given dLoss/dOutput `d_out` `[b, n_out]` and the cache of the forward
    /// pass on the same `x`.
    pub fn backward(
        &self,
        params: &[f32],
        x: &[f32],
        cache: &mut Cache,
        d_out: &[f32],
        grad: &mut [f32],
    ) {
        let l = &self.layout;
        let b = cache.batch;
        let k = self.n_out;
        assert_eq!(grad.len(), l.total);
        assert_eq!(d_out.len(), b * k);
        // Through the output activation: sigmoid' = s(1-s), from the stored output.
        cache.dz.clear();
        cache.dz.extend(
            d_out
                .iter()
                .zip(&cache.out)
                .map(|(&g, &o)| match self.output {
                    OutputActivation::Sigmoid => g * o * (1.0 - o),
                    OutputActivation::Linear => g,
                }),
        );
        let n_hidden = self.hidden.len();
        let top: &[f32] = match n_hidden {
            0 => x,
            n => &cache.hs[n - 1],
        };
        // dLoss/d(top hidden activations) into cache.dh.
        match l.per_dim {
            None => {
                let dense = &l.stack[n_hidden];
                let fan_in = dense.fan_in;
                matmul_at_b(
                    &mut grad[dense.w.clone()],
                    top,
                    &cache.dz,
                    b,
                    fan_in,
                    k,
                    false,
                );
                col_sums(&cache.dz, k, &mut grad[dense.b.clone()]);
                if n_hidden == 0 {
                    return;
                }
                cache.dh.resize(b * fan_in, 0.0);
                let w = &params[dense.w.clone()];
                matmul_a_bt(&mut cache.dh, &cache.dz, w, b, k, fan_in, false);
            }
            Some(pd) => {
                let (h, hh) = (self.hidden[0], self.head_hidden);
                cache.dh.resize(b * h, 0.0);
                cache.dh.fill(0.0);
                cache.du.resize(b * hh, 0.0);
                for dim in 0..k {
                    let span = dim * b * hh..(dim + 1) * b * hh;
                    let v = &cache.v[span.clone()];
                    let dact2 = &cache.dact2[span];
                    let w3 = &params[pd.w3 + dim * hh..pd.w3 + (dim + 1) * hh];
                    // Output unit of this head: z = v·w3 + b3.
                    let mut db3 = 0f32;
                    let gw3 = &mut grad[pd.w3 + dim * hh..pd.w3 + (dim + 1) * hh];
                    gw3.fill(0.0);
                    for i in 0..b {
                        let g = cache.dz[i * k + dim];
                        db3 += g;
                        let o = i * hh;
                        for j in 0..hh {
                            gw3[j] += v[o + j] * g;
                            cache.du[o + j] = g * w3[j] * dact2[o + j];
                        }
                    }
                    grad[pd.b3 + dim] = db3;
                    // Hidden layer of this head: u = h·W2_d + b2_d.
                    let w2 = pd.w2 + dim * h * hh..pd.w2 + (dim + 1) * h * hh;
                    matmul_at_b(&mut grad[w2.clone()], top, &cache.du, b, h, hh, false);
                    col_sums(
                        &cache.du,
                        hh,
                        &mut grad[pd.b2 + dim * hh..pd.b2 + (dim + 1) * hh],
                    );
                    matmul_a_bt(&mut cache.dh, &cache.du, &params[w2], b, hh, h, true);
                }
            }
        }
        // Hidden layers, top down: dz = dh ⊙ act'(z) ⊙ mask (folded into dacts).
        for i in (0..n_hidden).rev() {
            let dense = &l.stack[i];
            for (g, &da) in cache.dh.iter_mut().zip(&cache.dacts[i]) {
                *g *= da;
            }
            let input = if i == 0 { x } else { &cache.hs[i - 1] };
            matmul_at_b(
                &mut grad[dense.w.clone()],
                input,
                &cache.dh,
                b,
                dense.fan_in,
                dense.fan_out,
                false,
            );
            col_sums(&cache.dh, dense.fan_out, &mut grad[dense.b.clone()]);
            if i > 0 {
                cache.tmp.resize(b * dense.fan_in, 0.0);
                matmul_a_bt(
                    &mut cache.tmp,
                    &cache.dh,
                    &params[dense.w.clone()],
                    b,
                    dense.fan_out,
                    dense.fan_in,
                    false,
                );
                std::mem::swap(&mut cache.dh, &mut cache.tmp);
            }
        }
    }

    /// Eval-mode predictions `[n, n_out]` for `x` `[n, d_in]`, in chunks.
    pub fn predict(&self, params: &[f32], x: &[f32]) -> Vec<f32> {
        const CHUNK: usize = 256;
        let n = x.len() / self.d_in;
        let mut out = Vec::with_capacity(n * self.n_out);
        let mut cache = Cache::default();
        for start in (0..n).step_by(CHUNK) {
            let end = (start + CHUNK).min(n);
            self.forward(
                params,
                &x[start * self.d_in..end * self.d_in],
                end - start,
                None,
                &mut cache,
            );
            out.extend_from_slice(&cache.out);
        }
        out
    }
}
