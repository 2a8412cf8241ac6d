//! The three head shapes with hand-written forward and backward passes.
//!
//! Parameters live in one flat `Vec<f32>` (so Adam, checkpoints and gradient
//! checks see a single vector); [`Layout`] gives each tensor's offset.
//! Weight matrices are stored `[in, out]` row-major so the forward product
//! `X·W` streams contiguous rows of W.

use super::act::{self, sigmoid};
use super::config::{Activation, Arch, HeadConfig, OutputActivation};
use super::gemm::{matmul, matmul_at_b, transpose};
use crate::rng::Rng;

/// Offsets of each tensor in the flat parameter vector. For `Linear`, `w1`
/// is the `[d_in, n_out]` output matrix and the other layers are empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub w1: usize,
    pub b1: usize,
    pub w2: usize,
    pub b2: usize,
    pub w3: usize,
    pub b3: usize,
    pub total: usize,
}

/// A head's shape; the parameters are passed to each call.
#[derive(Clone, Debug, PartialEq)]
pub struct Net {
    pub arch: Arch,
    pub d_in: usize,
    pub hidden: usize,
    pub head_hidden: usize,
    pub n_out: usize,
    pub act: Activation,
    pub output: OutputActivation,
    pub dropout: f32,
}

/// Activations kept from a forward pass for the backward pass, plus scratch.
#[derive(Clone, Debug, Default)]
pub struct Cache {
    batch: usize,
    /// MLPs: hidden activations after dropout `[b, hidden]`.
    h: Vec<f32>,
    /// act'(z1)·dropout mask `[b, hidden]`.
    dact1: Vec<f32>,
    /// Per-dimension heads: activations `[n_out][b, head_hidden]`.
    v: Vec<f32>,
    dact2: Vec<f32>,
    /// Outputs after the output activation `[b, n_out]`.
    pub out: Vec<f32>,
    dz: Vec<f32>,
    dh: Vec<f32>,
    du: Vec<f32>,
    wt: Vec<f32>,
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
        Net {
            arch: cfg.arch,
            d_in,
            hidden: cfg.hidden.0[0],
            head_hidden: cfg.head_hidden,
            n_out,
            act: cfg.activation,
            output: cfg.output,
            dropout: cfg.dropout,
        }
    }

    pub fn layout(&self) -> Layout {
        let (d, h, hh, k) = (self.d_in, self.hidden, self.head_hidden, self.n_out);
        let (w1_len, b1_len, w2_len, b2_len, w3_len, b3_len) = match self.arch {
            Arch::Linear => (d * k, k, 0, 0, 0, 0),
            Arch::Mlp => (d * h, h, h * k, k, 0, 0),
            Arch::MlpPerDim => (d * h, h, k * h * hh, k * hh, k * hh, k),
            other => unreachable!("head {other:?} trains on the autodiff stack (graph)"),
        };
        let w1 = 0;
        let b1 = w1 + w1_len;
        let w2 = b1 + b1_len;
        let b2 = w2 + w2_len;
        let w3 = b2 + b2_len;
        let b3 = w3 + w3_len;
        Layout {
            w1,
            b1,
            w2,
            b2,
            w3,
            b3,
            total: b3 + b3_len,
        }
    }

    /// PyTorch's `nn.Linear` default: weights and biases ~ U(±1/√fan_in).
    pub fn init(&self, rng: &mut Rng) -> Vec<f32> {
        let l = self.layout();
        let mut p = vec![0f32; l.total];
        let mut fill = |range: std::ops::Range<usize>, fan_in: usize| {
            let bound = 1.0 / (fan_in as f32).sqrt();
            for x in &mut p[range] {
                *x = (2.0 * rng.uniform_f32() - 1.0) * bound;
            }
        };
        match self.arch {
            Arch::Linear => {
                fill(l.w1..l.b1, self.d_in);
                fill(l.b1..l.w2, self.d_in);
            }
            Arch::Mlp => {
                fill(l.w1..l.b1, self.d_in);
                fill(l.b1..l.w2, self.d_in);
                fill(l.w2..l.b2, self.hidden);
                fill(l.b2..l.w3, self.hidden);
            }
            Arch::MlpPerDim => {
                fill(l.w1..l.b1, self.d_in);
                fill(l.b1..l.w2, self.d_in);
                fill(l.w2..l.b2, self.hidden);
                fill(l.b2..l.w3, self.hidden);
                fill(l.w3..l.b3, self.head_hidden);
                fill(l.b3..l.total, self.head_hidden);
            }
            other => unreachable!("head {other:?} trains on the autodiff stack (graph)"),
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
        dropout_rng: Option<&mut Rng>,
        cache: &mut Cache,
    ) {
        let l = self.layout();
        assert_eq!(
            params.len(),
            l.total,
            "parameter vector has the wrong length"
        );
        assert_eq!(x.len(), b * self.d_in, "input is not [{b}, {}]", self.d_in);
        let (d, h, hh, k) = (self.d_in, self.hidden, self.head_hidden, self.n_out);
        cache.batch = b;
        cache.out.resize(b * k, 0.0);
        if self.arch == Arch::Linear {
            matmul(&mut cache.out, x, &params[l.w1..l.b1], b, d, k, false);
            add_bias(&mut cache.out, &params[l.b1..l.w2]);
            self.output_activation(&mut cache.out);
            return;
        }
        // Trunk: z1 = X·W1 + b1, h = act(z1)·mask.
        cache.tmp.resize(b * h, 0.0);
        cache.h.resize(b * h, 0.0);
        cache.dact1.resize(b * h, 0.0);
        matmul(&mut cache.tmp, x, &params[l.w1..l.b1], b, d, h, false);
        add_bias(&mut cache.tmp, &params[l.b1..l.w2]);
        act::forward(self.act, &cache.tmp, &mut cache.h, &mut cache.dact1);
        if let Some(rng) = dropout_rng
            && self.dropout > 0.0
        {
            // Inverted dropout: survivors scaled by 1/(1-p), so eval needs no rescale.
            let scale = 1.0 / (1.0 - self.dropout);
            for (hv, dv) in cache.h.iter_mut().zip(cache.dact1.iter_mut()) {
                let m = if rng.uniform_f32() < self.dropout {
                    0.0
                } else {
                    scale
                };
                *hv *= m;
                *dv *= m;
            }
        }
        match self.arch {
            Arch::Mlp => {
                matmul(
                    &mut cache.out,
                    &cache.h,
                    &params[l.w2..l.b2],
                    b,
                    h,
                    k,
                    false,
                );
                add_bias(&mut cache.out, &params[l.b2..l.w3]);
            }
            Arch::MlpPerDim => {
                cache.v.resize(k * b * hh, 0.0);
                cache.dact2.resize(k * b * hh, 0.0);
                cache.tmp.resize(b * hh, 0.0);
                for dim in 0..k {
                    let w2 = &params[l.w2 + dim * h * hh..l.w2 + (dim + 1) * h * hh];
                    let b2 = &params[l.b2 + dim * hh..l.b2 + (dim + 1) * hh];
                    let w3 = &params[l.w3 + dim * hh..l.w3 + (dim + 1) * hh];
                    let b3 = params[l.b3 + dim];
                    let tmp = &mut cache.tmp[..b * hh];
                    matmul(tmp, &cache.h, w2, b, h, hh, false);
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
            _ => unreachable!("linear handled above; others checked by layout()"),
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
        let l = self.layout();
        let b = cache.batch;
        let (d, h, hh, k) = (self.d_in, self.hidden, self.head_hidden, self.n_out);
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
        if self.arch == Arch::Linear {
            matmul_at_b(&mut grad[l.w1..l.b1], x, &cache.dz, b, d, k, false);
            col_sums(&cache.dz, k, &mut grad[l.b1..l.w2]);
            return;
        }
        cache.dh.resize(b * h, 0.0);
        match self.arch {
            Arch::Mlp => {
                matmul_at_b(&mut grad[l.w2..l.b2], &cache.h, &cache.dz, b, h, k, false);
                col_sums(&cache.dz, k, &mut grad[l.b2..l.w3]);
                transpose(&params[l.w2..l.b2], h, k, &mut cache.wt);
                matmul(&mut cache.dh, &cache.dz, &cache.wt, b, k, h, false);
            }
            Arch::MlpPerDim => {
                cache.dh.fill(0.0);
                cache.du.resize(b * hh, 0.0);
                for dim in 0..k {
                    let span = dim * b * hh..(dim + 1) * b * hh;
                    let v = &cache.v[span.clone()];
                    let dact2 = &cache.dact2[span];
                    let w3 = &params[l.w3 + dim * hh..l.w3 + (dim + 1) * hh];
                    // Output unit of this head: z = v·w3 + b3.
                    let mut db3 = 0f32;
                    let gw3 = &mut grad[l.w3 + dim * hh..l.w3 + (dim + 1) * hh];
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
                    grad[l.b3 + dim] = db3;
                    // Hidden layer of this head: u = h·W2_d + b2_d.
                    let w2 = l.w2 + dim * h * hh..l.w2 + (dim + 1) * h * hh;
                    matmul_at_b(&mut grad[w2.clone()], &cache.h, &cache.du, b, h, hh, false);
                    col_sums(
                        &cache.du,
                        hh,
                        &mut grad[l.b2 + dim * hh..l.b2 + (dim + 1) * hh],
                    );
                    transpose(&params[w2], h, hh, &mut cache.wt);
                    matmul(&mut cache.dh, &cache.du, &cache.wt, b, hh, h, true);
                }
            }
            _ => unreachable!("linear handled above; others checked by layout()"),
        }
        // Trunk: dz1 = dh ⊙ act'(z1) ⊙ mask (folded into dact1).
        for (g, &da) in cache.dh.iter_mut().zip(&cache.dact1) {
            *g *= da;
        }
        matmul_at_b(&mut grad[l.w1..l.b1], x, &cache.dh, b, d, h, false);
        col_sums(&cache.dh, h, &mut grad[l.b1..l.w2]);
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
