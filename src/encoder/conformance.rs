//! Op-by-op conformance check of any [`Backend`] against the plain CPU reference ops.
//!
//! A new backend calls `check_backend(&backend, 1e-5)` in its tests: every op in the
//! trait runs on small pseudo-random tensors (odd sizes, MERT-like conv strides,
//! grouped and padded convs) and is compared with the `crate::cpu` oracle.

use crate::backend::Backend;
use crate::cpu;
use crate::ops::Act;
use crate::rng::pseudo;
use anyhow::{Context, Result, ensure};

/// Max abs difference, relative to `max(1, max|want|)`; errors if above `tol` or on a shape mismatch.
fn compare(op: &str, got: &[f32], want: &[f32], tol: f32) -> Result<()> {
    ensure!(
        got.len() == want.len(),
        "{op}: {} values, reference has {}",
        got.len(),
        want.len()
    );
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let err = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    ensure!(
        err <= tol * scale,
        "{op}: max abs error {err:e} exceeds {tol:e} x {scale}"
    );
    ensure!(got.iter().all(|v| v.is_finite()), "{op}: non-finite output");
    Ok(())
}

/// Check every op of `b` against the reference, with relative tolerance `tol`.
pub fn check_backend<B: Backend>(b: &B, tol: f32) -> Result<()> {
    let up = |d: &[f32], r: usize, c: usize| b.upload(d, r, c);

    // Upload / download / shape.
    let x = pseudo(7 * 13, 1);
    let tx = up(&x, 7, 13)?;
    ensure!(
        b.shape(&tx) == (7, 13),
        "shape: got {:?}, want (7, 13)",
        b.shape(&tx)
    );
    compare("upload/download", &b.download(&tx)?, &x, 0.0)?;

    // Fused linear: act(x Wᵀ + b) + residual, for every activation, with and without bias/residual.
    let (rows, inp, out) = (7, 13, 21);
    let w = pseudo(out * inp, 2);
    let bias = pseudo(out, 3);
    let res = pseudo(rows * out, 4);
    let tres = up(&res, rows, out)?;
    let lin_b = b.prepare_linear(&w, out, inp, Some(&bias))?;
    let lin = b.prepare_linear(&w, out, inp, None)?;
    for act in [Act::None, Act::Gelu, Act::Relu, Act::Silu] {
        let want = cpu::linear(&x, rows, inp, &w, out, Some(&bias), act);
        compare(
            &format!("linear {act:?}"),
            &b.download(&b.linear(&tx, &lin_b, act, None)?)?,
            &want,
            tol,
        )?;
        let mut want_r = want.clone();
        cpu::add(&mut want_r, &res);
        let got = b.download(&b.linear(&tx, &lin_b, act, Some(&tres))?)?;
        compare(&format!("linear {act:?} + residual"), &got, &want_r, tol)?;
    }
    let want = cpu::linear(&x, rows, inp, &w, out, None, Act::None);
    compare(
        "linear no bias",
        &b.download(&b.linear(&tx, &lin, Act::None, None)?)?,
        &want,
        tol,
    )?;

    // conv1d: (c_in, t, c_out, k, stride, pad, groups, bias, act).
    let convs = [
        (1, 203, 8, 10, 5, 0, 1, false, Act::None),
        (8, 40, 8, 3, 2, 0, 1, false, Act::Gelu),
        (8, 19, 8, 2, 2, 0, 1, true, Act::Gelu),
        (16, 9, 16, 8, 1, 4, 4, true, Act::Gelu),
        (6, 5, 3, 3, 1, 1, 3, true, Act::Silu),
        // Depthwise (MuQ's conv module): kernel 31 wider than the clip, and strided.
        (12, 23, 12, 31, 1, 15, 12, true, Act::Silu),
        (5, 40, 5, 3, 2, 1, 5, false, Act::None),
    ];
    for (i, &(c_in, t, c_out, k, stride, pad, groups, has_bias, act)) in convs.iter().enumerate() {
        let xv = pseudo(c_in * t, 10 + i as u32);
        let wv = pseudo(c_out * c_in / groups * k, 20 + i as u32);
        let bv = pseudo(c_out, 30 + i as u32);
        let bias = has_bias.then_some(&bv[..]);
        let (mut want, t_out) = cpu::conv1d(&xv, c_in, t, &wv, c_out, k, stride, pad, groups, bias);
        cpu::activate(&mut want, act);
        let wc = b.prepare_conv1d(&wv, c_out, c_in, k, groups, bias)?;
        let y = b.conv1d(&up(&xv, c_in, t)?, &wc, stride, pad, act)?;
        let op = format!(
            "conv1d #{i} (c_in {c_in}, t {t}, k {k}, stride {stride}, pad {pad}, groups {groups})"
        );
        ensure!(
            b.shape(&y) == (c_out, t_out),
            "{op}: shape {:?}, want {:?}",
            b.shape(&y),
            (c_out, t_out)
        );
        compare(&op, &b.download(&y)?, &want, tol)?;
    }

    // group_norm (per channel as MERT conv 0, and shared groups), with a fused activation.
    let (ch, t) = (8, 37);
    let xv: Vec<f32> = pseudo(ch * t, 40).iter().map(|v| 3.0 * v + 0.5).collect();
    let (g, be) = (pseudo(ch, 41), pseudo(ch, 42));
    let (gv, bv) = (b.prepare_vector(&g)?, b.prepare_vector(&be)?);
    for (groups, act) in [(8, Act::Gelu), (2, Act::None)] {
        let mut want = cpu::group_norm(&xv, ch, t, groups, &g, &be, 1e-5);
        cpu::activate(&mut want, act);
        let got = b.download(&b.group_norm(&up(&xv, ch, t)?, groups, &gv, &bv, 1e-5, act)?)?;
        compare(
            &format!("group_norm groups {groups} {act:?}"),
            &got,
            &want,
            tol,
        )?;
    }

    // layer_norm over rows of 13.
    let (g, be) = (pseudo(13, 43), pseudo(13, 44));
    let want = cpu::layer_norm(&x, 7, 13, &g, &be, 1e-5);
    let got =
        b.download(&b.layer_norm(&tx, &b.prepare_vector(&g)?, &b.prepare_vector(&be)?, 1e-5)?)?;
    compare("layer_norm", &got, &want, tol)?;

    // activate, add, transpose, slice_rows.
    for act in [Act::None, Act::Gelu, Act::Relu, Act::Silu] {
        let xs: Vec<f32> = x.iter().map(|v| v * 6.0).collect();
        let mut want = xs.clone();
        cpu::activate(&mut want, act);
        compare(
            &format!("activate {act:?}"),
            &b.download(&b.activate(up(&xs, 7, 13)?, act)?)?,
            &want,
            tol,
        )?;
    }
    let y = pseudo(7 * 13, 5);
    let mut want = x.clone();
    cpu::add(&mut want, &y);
    compare(
        "add",
        &b.download(&b.add(&tx, &up(&y, 7, 13)?)?)?,
        &want,
        tol,
    )?;
    let tt = b.transpose(&tx)?;
    ensure!(
        b.shape(&tt) == (13, 7),
        "transpose: shape {:?}",
        b.shape(&tt)
    );
    compare(
        "transpose",
        &b.download(&tt)?,
        &cpu::transpose(&x, 7, 13),
        0.0,
    )?;
    compare(
        "slice_rows",
        &b.download(&b.slice_rows(&tx, 2, 4)?)?,
        &x[2 * 13..6 * 13],
        0.0,
    )?;

    // attention: 3 heads of 5, 11 steps.
    let (t, heads, d) = (11, 3, 5);
    let (q, k, v) = (
        pseudo(t * heads * d, 50),
        pseudo(t * heads * d, 51),
        pseudo(t * heads * d, 52),
    );
    let want = cpu::attention(&q, &k, &v, t, heads, d, 0.6);
    let got = b.attention(
        &up(&q, t, heads * d)?,
        &up(&k, t, heads * d)?,
        &up(&v, t, heads * d)?,
        heads,
        0.6,
    )?;
    compare("attention", &b.download(&got)?, &want, tol)
        .context("attention (3 heads x 5, t 11)")?;

    // Conformer ops: 2-D patches (odd image, 3 channels, both strides), rope, glu, reshape.
    for (stride, pad) in [(2, 1), (1, 1), (2, 0)] {
        let g = crate::ops::Patches2d {
            time: 7,
            freq: 5,
            channels: 3,
            k: 3,
            stride,
            pad,
        };
        let img = pseudo(7 * 5 * 3, 60);
        let ot = g.out_time();
        for times in [0..ot, ot / 2..ot] {
            let got = b.patches2d(&up(&img, 35, 3)?, g, times.clone())?;
            ensure!(
                b.shape(&got) == (times.len() * g.out_freq(), 27),
                "patches2d: shape {:?}",
                b.shape(&got)
            );
            compare(
                &format!("patches2d stride {stride} pad {pad} steps {times:?}"),
                &b.download(&got)?,
                &cpu::patches2d(&img, g, times),
                0.0,
            )?;
        }
    }
    let parts = [pseudo(3 * 4, 63), pseudo(4, 64), pseudo(2 * 4, 65)];
    let tensors = [
        up(&parts[0], 3, 4)?,
        up(&parts[1], 1, 4)?,
        up(&parts[2], 2, 4)?,
    ];
    let got = b.concat_rows(&tensors.iter().collect::<Vec<_>>())?;
    ensure!(
        b.shape(&got) == (6, 4),
        "concat_rows: shape {:?}",
        b.shape(&got)
    );
    compare("concat_rows", &b.download(&got)?, &parts.concat(), 0.0)?;
    let (t, cols, hd) = (9, 12, 4);
    let xr = pseudo(t * cols, 61);
    let table = cpu::rope_table(t, hd, 10_000.0);
    let got = b.rope(&up(&xr, t, cols)?, &up(&table, t, hd)?, hd)?;
    compare(
        "rope",
        &b.download(&got)?,
        &cpu::rope(&xr, t, cols, &table, hd),
        tol,
    )?;
    let xg: Vec<f32> = pseudo(t * 2 * 7, 62).iter().map(|v| v * 8.0).collect();
    let got = b.glu(&up(&xg, t, 14)?)?;
    ensure!(b.shape(&got) == (t, 7), "glu: shape {:?}", b.shape(&got));
    compare("glu", &b.download(&got)?, &cpu::glu(&xg, t, 14), tol)?;
    let r = b.reshape(up(&x, 7, 13)?, 13, 7)?;
    ensure!(b.shape(&r) == (13, 7), "reshape: shape {:?}", b.shape(&r));
    compare("reshape", &b.download(&r)?, &x, 0.0)?;
    ensure!(
        b.reshape(up(&x, 7, 13)?, 7, 12).is_err(),
        "reshape to another element count must fail"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::prelude::*;
    use crate::cpu::CpuBackend;

    #[test]
    fn cpu_backends_conform() {
        check_backend(&CpuBackend::reference(), 0.0).unwrap();
        check_backend(&CpuBackend::new(), 1e-5).unwrap();
    }

    #[test]
    fn conformance_catches_a_wrong_op() {
        // A backend whose GELU is the tanh approximation must fail, naming the op.
        struct TanhGelu(CpuBackend);
        impl Storage for TanhGelu {
            type Tensor = <CpuBackend as Storage>::Tensor;

            fn name(&self) -> String {
                "tanh-gelu".into()
            }

            fn upload(&self, d: &[f32], r: usize, c: usize) -> Result<Self::Tensor> {
                self.0.upload(d, r, c)
            }

            fn download(&self, x: &Self::Tensor) -> Result<Vec<f32>> {
                self.0.download(x)
            }

            fn shape(&self, x: &Self::Tensor) -> (usize, usize) {
                self.0.shape(x)
            }
        }

        impl LayoutOps for TanhGelu {
            fn transpose(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
                self.0.transpose(x)
            }

            fn slice_rows(&self, x: &Self::Tensor, s: usize, l: usize) -> Result<Self::Tensor> {
                self.0.slice_rows(x, s, l)
            }

            fn reshape(&self, x: Self::Tensor, r: usize, c: usize) -> Result<Self::Tensor> {
                self.0.reshape(x, r, c)
            }

            fn concat_rows(&self, p: &[&Self::Tensor]) -> Result<Self::Tensor> {
                self.0.concat_rows(p)
            }
        }

        impl ElementwiseOps for TanhGelu {
            fn activate(&self, mut x: Self::Tensor, act: Act) -> Result<Self::Tensor> {
                if act != Act::Gelu {
                    return self.0.activate(x, act);
                }
                for v in x.data.iter_mut() {
                    let u = *v;
                    *v = 0.5 * u * (1.0 + (0.797_884_6 * (u + 0.044_715 * u * u * u)).tanh());
                }
                Ok(x)
            }

            fn add(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
                self.0.add(a, b)
            }

            fn glu(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
                self.0.glu(x)
            }
        }

        impl LinearOps for TanhGelu {
            type Linear = <CpuBackend as LinearOps>::Linear;

            fn prepare_linear(
                &self,
                w: &[f32],
                o: usize,
                i: usize,
                b: Option<&[f32]>,
            ) -> Result<Self::Linear> {
                self.0.prepare_linear(w, o, i, b)
            }

            fn linear(
                &self,
                x: &Self::Tensor,
                w: &Self::Linear,
                act: Act,
                r: Option<&Self::Tensor>,
            ) -> Result<Self::Tensor> {
                self.0.linear(x, w, act, r)
            }
        }

        impl ConvOps for TanhGelu {
            type Conv1d = <CpuBackend as ConvOps>::Conv1d;

            fn prepare_conv1d(
                &self,
                w: &[f32],
                co: usize,
                ci: usize,
                k: usize,
                g: usize,
                b: Option<&[f32]>,
            ) -> Result<Self::Conv1d> {
                self.0.prepare_conv1d(w, co, ci, k, g, b)
            }

            fn conv1d(
                &self,
                x: &Self::Tensor,
                w: &Self::Conv1d,
                s: usize,
                p: usize,
                a: Act,
            ) -> Result<Self::Tensor> {
                self.0.conv1d(x, w, s, p, a)
            }

            fn patches2d(
                &self,
                x: &Self::Tensor,
                g: crate::ops::Patches2d,
                t: std::ops::Range<usize>,
            ) -> Result<Self::Tensor> {
                self.0.patches2d(x, g, t)
            }
        }

        impl NormOps for TanhGelu {
            type Vector = <CpuBackend as NormOps>::Vector;

            fn prepare_vector(&self, v: &[f32]) -> Result<Self::Vector> {
                self.0.prepare_vector(v)
            }

            fn group_norm(
                &self,
                x: &Self::Tensor,
                g: usize,
                ga: &Self::Vector,
                be: &Self::Vector,
                eps: f32,
                a: Act,
            ) -> Result<Self::Tensor> {
                self.0.group_norm(x, g, ga, be, eps, a)
            }

            fn layer_norm(
                &self,
                x: &Self::Tensor,
                g: &Self::Vector,
                be: &Self::Vector,
                eps: f32,
            ) -> Result<Self::Tensor> {
                self.0.layer_norm(x, g, be, eps)
            }
        }

        impl AttentionOps for TanhGelu {
            fn attention(
                &self,
                q: &Self::Tensor,
                k: &Self::Tensor,
                v: &Self::Tensor,
                h: usize,
                s: f32,
            ) -> Result<Self::Tensor> {
                self.0.attention(q, k, v, h, s)
            }

            fn rope(&self, x: &Self::Tensor, t: &Self::Tensor, d: usize) -> Result<Self::Tensor> {
                self.0.rope(x, t, d)
            }
        }

        impl StatsOps for TanhGelu {}

        let e = check_backend(&TanhGelu(CpuBackend::new()), 1e-5)
            .unwrap_err()
            .to_string();
        assert!(e.contains("activate Gelu"), "{e}");
    }
}
