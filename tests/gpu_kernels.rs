//! Every GPU kernel against its CPU reference op, on seeded random inputs at
//! awkward sizes. Relative error = max|gpu − cpu| / max(1, max|cpu|) ≤ 1e-5.
//! Outputs are NaN-poisoned before each kernel runs, so an unwritten element
//! fails the comparison.

use crate::common::gpu::{check, gpu, ops, rand_vec};
use pipe::cpu;
use pipe::gpu as g;
use pipe::gpu::attention::QkvLayout;
use pipe::ops::Act;

const TOL: f32 = 1e-5;

fn linear_case(seed: u64, rows: usize, k: usize, n: usize, bias: bool, act: Act, residual: bool) {
    let Some(_gpu) = gpu() else {
        return;
    };
    let x = rand_vec(seed, rows * k, -1.0, 1.0);
    let w = rand_vec(seed + 1, n * k, -0.5, 0.5);
    let b = bias.then(|| rand_vec(seed + 2, n, -1.0, 1.0));
    let r = residual.then(|| rand_vec(seed + 3, rows * n, -2.0, 2.0));
    let mut want = cpu::linear(&x, rows, k, &w, n, b.as_deref(), act);
    if let Some(r) = &r {
        cpu::add(&mut want, r);
    }
    let got = ops::linear(&x, rows, k, &w, n, b.as_deref(), act, r.as_deref()).unwrap();
    check(
        &format!("linear {rows}x{k}->{n} bias={bias} {act:?} res={residual}"),
        &got,
        &want,
        TOL,
    );
}

#[test]
fn linear_single_row() {
    linear_case(1, 1, 768, 768, true, Act::None, false);
    linear_case(2, 1, 7, 5, false, Act::None, false);
}

#[test]
fn linear_odd_sizes_scalar_path() {
    // K not a multiple of 4 takes the scalar-load variant; M, N not multiples of the tile.
    linear_case(3, 37, 13, 129, true, Act::Gelu, false);
    linear_case(4, 65, 63, 1, true, Act::None, true);
}

#[test]
fn linear_vec4_path_all_activations() {
    linear_case(5, 70, 68, 66, true, Act::Gelu, false);
    linear_case(6, 70, 68, 66, true, Act::Relu, false);
    linear_case(7, 70, 68, 66, true, Act::Silu, false);
    linear_case(8, 64, 64, 64, false, Act::None, true);
}

#[test]
fn linear_large_k() {
    // FFN output projection shape (K = 3072), with bias and residual.
    linear_case(9, 33, 3072, 96, true, Act::None, true);
}

#[test]
fn linear_ffn_shape() {
    linear_case(10, 75, 768, 3072, true, Act::Gelu, false);
}

#[allow(clippy::too_many_arguments)]
fn conv_case(
    seed: u64,
    c_in: usize,
    t: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    pad: usize,
    groups: usize,
    bias: bool,
) {
    let Some(_gpu) = gpu() else {
        return;
    };
    let x = rand_vec(seed, c_in * t, -1.0, 1.0);
    let w = rand_vec(seed + 1, c_out * (c_in / groups) * k, -0.3, 0.3);
    let b = bias.then(|| rand_vec(seed + 2, c_out, -1.0, 1.0));
    let (want, t_want) = cpu::conv1d(&x, c_in, t, &w, c_out, k, stride, pad, groups, b.as_deref());
    let (got, t_got) =
        ops::conv1d(&x, c_in, t, &w, c_out, k, stride, pad, groups, b.as_deref()).unwrap();
    assert_eq!(t_got, t_want);
    check(
        &format!("conv1d c_in={c_in} t={t} c_out={c_out} k={k} s={stride} pad={pad} g={groups}"),
        &got,
        &want,
        TOL,
    );
}

#[test]
fn conv_first_feature_layer() {
    // MERT conv layer 0: 1 channel, k=10, stride 5, no bias.
    conv_case(20, 1, 4003, 512, 10, 5, 0, 1, false);
}

#[test]
fn conv_strided_feature_layers() {
    conv_case(21, 512, 151, 512, 3, 2, 0, 1, false);
    conv_case(22, 512, 38, 512, 2, 2, 0, 1, false);
    // Shortest input a k=3 s=2 layer accepts: one output frame.
    conv_case(23, 512, 3, 512, 3, 2, 0, 1, false);
}

#[test]
fn conv_grouped_positional() {
    // Positional conv: 128 taps, 16 groups, padding 64, bias (H=768 real shape, short clip).
    conv_case(24, 768, 21, 768, 128, 1, 64, 16, true);
    // Fewer channels, longer clip, odd channel count per group.
    conv_case(25, 80, 75, 80, 128, 1, 64, 16, true);
}

#[test]
fn group_norm_per_channel() {
    let Some(_gpu) = gpu() else {
        return;
    };
    for (seed, c, t, groups) in [
        (30u64, 512, 799, 512),
        (31, 8, 33, 4),
        (32, 6, 1, 3),
        (33, 3, 1000, 1),
    ] {
        // Offset mean so a one-pass variance would lose digits.
        let x = rand_vec(seed, c * t, 2.0, 4.0);
        let gamma = rand_vec(seed + 1, c, 0.5, 1.5);
        let beta = rand_vec(seed + 2, c, -1.0, 1.0);
        let want = cpu::group_norm(&x, c, t, groups, &gamma, &beta, 1e-5);
        let got = ops::group_norm(&x, c, t, groups, &gamma, &beta, 1e-5).unwrap();
        check(
            &format!("group_norm c={c} t={t} groups={groups}"),
            &got,
            &want,
            TOL,
        );
    }
}

#[test]
fn layer_norm_rows() {
    let Some(_gpu) = gpu() else {
        return;
    };
    for (seed, rows, dim) in [(40u64, 1, 768), (41, 37, 512), (42, 5, 1000), (43, 300, 3)] {
        let x = rand_vec(seed, rows * dim, -3.0, 5.0);
        let gamma = rand_vec(seed + 1, dim, 0.5, 1.5);
        let beta = rand_vec(seed + 2, dim, -1.0, 1.0);
        let want = cpu::layer_norm(&x, rows, dim, &gamma, &beta, 1e-5);
        let got = ops::layer_norm(&x, rows, dim, &gamma, &beta, 1e-5).unwrap();
        check(&format!("layer_norm {rows}x{dim}"), &got, &want, TOL);
    }
}

#[test]
fn activations_match_cpu() {
    let Some(_gpu) = gpu() else {
        return;
    };
    let mut x = rand_vec(50, 100_003, -10.0, 10.0);
    // Branch points of erf, zero, tiny and large values.
    x.extend([
        0.0,
        0.5,
        -0.5,
        0.499_999_97,
        0.707_106_77,
        -0.707_106_77,
        1e-7,
        -1e-7,
        30.0,
        -30.0,
        100.0,
        -100.0,
    ]);
    for (act, f) in [
        (Act::Gelu, cpu::gelu as fn(&mut [f32])),
        (Act::Silu, cpu::silu),
        (Act::Relu, cpu::relu),
    ] {
        let mut want = x.clone();
        f(&mut want);
        let got = ops::act(&x, act).unwrap();
        check(&format!("{act:?}"), &got, &want, TOL);
        // Absolute precision near zero matters for GELU of small activations.
        for (i, (&gv, &cv)) in got.iter().zip(&want).enumerate().skip(100_003) {
            assert!(
                (gv - cv).abs() <= 1e-6 * cv.abs().max(1e-6),
                "{act:?}({}) = {gv}, cpu {cv}",
                x[i]
            );
        }
    }
}

fn attention_case(seed: u64, t: usize, heads: usize, hd: usize, spread: f32) {
    let Some(_gpu) = gpu() else {
        return;
    };
    let n = t * heads * hd;
    let q = rand_vec(seed, n, -spread, spread);
    let k = rand_vec(seed + 1, n, -spread, spread);
    let v = rand_vec(seed + 2, n, -1.0, 1.0);
    let scale = 1.0 / (hd as f32).sqrt();
    let want = cpu::attention(&q, &k, &v, t, heads, hd, scale);
    let got = ops::attention(&q, &k, &v, t, heads, hd, scale).unwrap();
    check(
        &format!("attention t={t} heads={heads} hd={hd}"),
        &got,
        &want,
        TOL,
    );
}

#[test]
fn attention_single_frame() {
    attention_case(60, 1, 2, 64, 1.0);
}

#[test]
fn attention_long_clip() {
    // T=700: 11 query blocks, 44 key tiles, last ones partial.
    attention_case(61, 700, 4, 64, 1.0);
}

#[test]
fn attention_small_head_dim_and_peaked_scores() {
    attention_case(62, 65, 3, 24, 1.0);
    // Large logits: the online softmax must rescale without overflow.
    attention_case(63, 97, 2, 64, 6.0);
}

#[test]
fn attention_fused_qkv_layout() {
    let Some(gpu) = gpu() else { return };
    let (t, heads, hd) = (50, 3, 16);
    let h = heads * hd;
    let qkv = rand_vec(64, t * 3 * h, -1.0, 1.0);
    let split = |part: usize| -> Vec<f32> {
        (0..t)
            .flat_map(|r| qkv[r * 3 * h + part * h..r * 3 * h + (part + 1) * h].to_vec())
            .collect()
    };
    let want = cpu::attention(&split(0), &split(1), &split(2), t, heads, hd, 0.25);
    let mut b = gpu.batch();
    let x = b.upload(&qkv).unwrap();
    let layout = QkvLayout {
        stride: 3 * h,
        q_off: 0,
        k_off: h,
        v_off: 2 * h,
    };
    let y = g::attention::attention(&mut b, &x, &x, &x, layout, t, heads, hd, 0.25).unwrap();
    check("attention fused qkv", &b.read(&y).unwrap(), &want, TOL);
}

#[test]
fn residual_add() {
    let Some(_gpu) = gpu() else {
        return;
    };
    for n in [1usize, 255, 70_001] {
        let a = rand_vec(70 + n as u64, n, -1.0, 1.0);
        let b = rand_vec(71 + n as u64, n, -1.0, 1.0);
        let mut want = a.clone();
        cpu::add(&mut want, &b);
        check(
            &format!("add n={n}"),
            &ops::add(&a, &b).unwrap(),
            &want,
            0.0,
        );
    }
}

#[test]
fn transpose_shapes() {
    let Some(_gpu) = gpu() else {
        return;
    };
    for (rows, cols) in [(1usize, 1usize), (1, 37), (37, 65), (512, 75), (17, 600)] {
        let x = rand_vec((rows * 1000 + cols) as u64, rows * cols, -1.0, 1.0);
        let want = cpu::transpose(&x, rows, cols);
        check(
            &format!("transpose {rows}x{cols}"),
            &ops::transpose(&x, rows, cols).unwrap(),
            &want,
            0.0,
        );
    }
}

#[test]
fn conv_gelu_and_group_norm_gelu_fusions() {
    let Some(gpu) = gpu() else { return };
    // Feature-extractor layer 0 exactly as the encoder runs it: conv, GroupNorm(512), GELU.
    let (t, c) = (2003, 512);
    let x = rand_vec(80, t, -1.0, 1.0);
    let w = rand_vec(81, c * 10, -0.3, 0.3);
    let gamma = rand_vec(82, c, 0.5, 1.5);
    let beta = rand_vec(83, c, -0.5, 0.5);
    let (h, t1) = cpu::conv1d(&x, 1, t, &w, c, 10, 5, 0, 1, None);
    let mut want = cpu::group_norm(&h, c, t1, c, &gamma, &beta, 1e-5);
    cpu::gelu(&mut want);
    // Layer 1: conv k=3 s=2 with fused GELU.
    let w1 = rand_vec(84, c * c * 3, -0.05, 0.05);
    let (mut want1, t2) = cpu::conv1d(&want, c, t1, &w1, c, 3, 2, 0, 1, None);
    cpu::gelu(&mut want1);

    let mut b = gpu.batch();
    let (xt, wt, gt, bt, w1t) = (
        b.upload(&x).unwrap(),
        b.upload(&w).unwrap(),
        b.upload(&gamma).unwrap(),
        b.upload(&beta).unwrap(),
        b.upload(&w1).unwrap(),
    );
    let shape0 = g::conv::ConvShape {
        c_in: 1,
        t,
        c_out: c,
        k: 10,
        stride: 5,
        pad: 0,
        groups: 1,
    };
    let (h0, t1g) = g::conv::conv1d(&mut b, &xt, &wt, shape0, None, Act::None).unwrap();
    assert_eq!(t1g, t1);
    let n0 = g::norm::group_norm(&mut b, &h0, c, t1, c, &gt, &bt, 1e-5, Act::Gelu).unwrap();
    check("conv0+group_norm+gelu", &b.read(&n0).unwrap(), &want, TOL);
    let shape1 = g::conv::ConvShape {
        c_in: c,
        t: t1,
        c_out: c,
        k: 3,
        stride: 2,
        pad: 0,
        groups: 1,
    };
    let (h1, t2g) = g::conv::conv1d(&mut b, &n0, &w1t, shape1, None, Act::Gelu).unwrap();
    assert_eq!(t2g, t2);
    check("conv1+gelu", &b.read(&h1).unwrap(), &want1, TOL);
}

#[test]
fn chained_ops_in_one_batch_reuse_buffers_safely() {
    let Some(gpu) = gpu() else { return };
    // 12 residual blocks recorded into one encoder, intermediates dropped as we
    // go: released buffers must not be handed out again before the submit.
    let (rows, dim) = (19, 40);
    let mut want = rand_vec(90, rows * dim, -1.0, 1.0);
    let mut b = gpu.batch();
    let mut x = b.upload(&want).unwrap();
    let gamma = vec![1.0; dim];
    let beta = vec![0.0; dim];
    let (gt, bt) = (b.upload(&gamma).unwrap(), b.upload(&beta).unwrap());
    for layer in 0..12u64 {
        let w = rand_vec(100 + layer, dim * dim, -0.3, 0.3);
        let bias = rand_vec(200 + layer, dim, -0.1, 0.1);
        let mut y = cpu::linear(&want, rows, dim, &w, dim, Some(&bias), Act::Gelu);
        cpu::add(&mut y, &want);
        want = cpu::layer_norm(&y, rows, dim, &gamma, &beta, 1e-5);

        let wt = b.upload(&w).unwrap();
        let btt = b.upload(&bias).unwrap();
        let yt = g::matmul::linear(
            &mut b,
            &x,
            rows,
            dim,
            &wt,
            dim,
            Some(&btt),
            Act::Gelu,
            Some(&x),
        )
        .unwrap();
        x = g::norm::layer_norm(&mut b, &yt, rows, dim, &gt, &bt, 1e-5).unwrap();
    }
    assert!(b.pending_dispatches() >= 24, "ops were not batched");
    check("12 chained blocks", &b.read(&x).unwrap(), &want, 1e-4);
}

#[test]
fn column_stats_match_the_f64_host_statistics() {
    use pipe::backend::prelude::*;
    let Some(_gpu) = gpu() else {
        return;
    };
    let backend = g::GpuBackend::new().unwrap();
    for (seed, rows, cols, range, scale) in [
        (80u64, 37usize, 70usize, 5usize..33usize, 0.25f32),
        (81, 1, 3, 0..1, 1.0),
        (82, 300, 129, 0..300, 1.0 / 6.0),
    ] {
        let x = rand_vec(seed, rows * cols, -2.0, 3.0);
        let t = backend.upload(&x, rows, cols).unwrap();
        let got = backend.column_stats(&t, range.clone(), scale).unwrap();
        let want = pipe::ops::ColumnStats::of(&x, cols, range.clone(), f64::from(scale));
        assert_eq!(got.n, range.len());
        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        for (name, a, b) in [
            ("mean", &got.mean, &want.mean),
            ("min", &got.min, &want.min),
            ("max", &got.max, &want.max),
        ] {
            check(
                &format!("column_stats {name} {rows}x{cols}"),
                &f(a),
                &f(b),
                TOL,
            );
        }
        // m2 sums `rows` squares in f32: relative to its own scale.
        let scale_m2 = want.m2.iter().fold(1f64, |m, x| m.max(x.abs()));
        let err = got
            .m2
            .iter()
            .zip(&want.m2)
            .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            err / scale_m2 <= 1e-5,
            "column_stats m2 {rows}x{cols}: {err} of {scale_m2}"
        );
    }
}

#[test]
fn conformer_kernels_match_cpu_at_awkward_sizes() {
    use pipe::backend::prelude::*;
    use pipe::ops::Patches2d;
    let Some(_gpu) = gpu() else {
        return;
    };
    let b = g::GpuBackend::new().unwrap();
    // 2-D patches: MuQ's first block (1 channel) and a multi-channel block,
    // odd time and freq, stride 2 and 1; > 65535 workgroups' worth of rows is
    // not needed here, but > 1 grid row is (the 2-D dispatch split).
    for (seed, time, freq, channels, stride) in [
        (90u64, 37usize, 128usize, 1usize, 2usize),
        (91, 19, 33, 7, 2),
        (92, 10, 64, 24, 1),
    ] {
        let g = Patches2d {
            time,
            freq,
            channels,
            k: 3,
            stride,
            pad: 1,
        };
        let x = rand_vec(seed, time * freq * channels, -1.0, 1.0);
        let t = b.upload(&x, time * freq, channels).unwrap();
        let ot = g.out_time();
        for times in [0..ot, 1..ot / 2 + 1] {
            let got = b
                .download(&b.patches2d(&t, g, times.clone()).unwrap())
                .unwrap();
            check(
                &format!("patches2d {time}x{freq}x{channels} s{stride} steps {times:?}"),
                &got,
                &cpu::patches2d(&x, g, times),
                0.0,
            );
        }
    }
    // Rotary: MuQ-large's head dim 64 over 16 heads, and a small odd row count.
    for (seed, t, cols, hd) in [(93u64, 251usize, 1024usize, 64usize), (94, 3, 10, 2)] {
        let x = rand_vec(seed, t * cols, -2.0, 2.0);
        let table = cpu::rope_table(t, hd, 10_000.0);
        let got = b
            .rope(
                &b.upload(&x, t, cols).unwrap(),
                &b.upload(&table, t, hd).unwrap(),
                hd,
            )
            .unwrap();
        check(
            &format!("rope {t}x{cols} hd {hd}"),
            &b.download(&got).unwrap(),
            &cpu::rope(&x, t, cols, &table, hd),
            TOL,
        );
    }
    // GLU, gates spanning saturation on both sides.
    for (seed, t, cols) in [(95u64, 251usize, 2048usize), (96, 5, 6)] {
        let x = rand_vec(seed, t * cols, -30.0, 30.0);
        let got = b.glu(&b.upload(&x, t, cols).unwrap()).unwrap();
        check(
            &format!("glu {t}x{cols}"),
            &b.download(&got).unwrap(),
            &cpu::glu(&x, t, cols),
            TOL,
        );
    }
}
