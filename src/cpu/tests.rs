//! Hand-checked tiny cases for every reference op.

use super::*;

fn close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "length: got {got:?}, want {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol,
            "index {i}: got {g}, want {w} (all: {got:?})"
        );
    }
}

#[test]
fn linear_bias_and_layout() {
    // x [2,2], w [3,2] (PyTorch [out,in]): y = x Wᵀ + b.
    let x = [1.0, 2.0, 3.0, 4.0];
    let w = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
    let y = linear(&x, 2, 2, &w, 3, Some(&[0.5, -1.0, 0.0]), Act::None);
    close(&y, &[1.5, 1.0, 3.0, 3.5, 3.0, 7.0], 0.0);
    let y = linear(&x, 2, 2, &w, 3, Some(&[-2.0, -4.0, 0.0]), Act::Relu);
    close(&y, &[0.0, 0.0, 3.0, 1.0, 0.0, 7.0], 0.0);
    let y = linear(&x, 2, 2, &w, 3, None, Act::Gelu);
    // gelu(1) = 0.8413447, gelu(2) = 1.9544997, gelu(3) = 2.9959502, gelu(4) = 3.9998732, gelu(7) ≈ 7.
    close(
        &y,
        &[
            0.841_344_7,
            1.954_499_7,
            2.995_950_2,
            2.995_950_2,
            3.999_873_2,
            7.0,
        ],
        1e-6,
    );
}

#[test]
fn linear_long_rows_use_remainder() {
    // in_dim 19 is not a multiple of the 8-wide accumulator: sum 1..=19 = 190.
    let x: Vec<f32> = (1..=19).map(|v| v as f32).collect();
    let w = vec![1.0; 19 * 2];
    let y = linear(&x, 1, 19, &w, 2, None, Act::None);
    close(&y, &[190.0, 190.0], 0.0);
}

#[test]
fn conv1d_kernel_stride_pad() {
    // Difference filter: y[t] = x[t] - x[t+1].
    let (y, n) = conv1d(
        &[1.0, 2.0, 3.0, 4.0, 5.0],
        1,
        5,
        &[1.0, -1.0],
        1,
        2,
        1,
        0,
        1,
        None,
    );
    assert_eq!(n, 4);
    close(&y, &[-1.0, -1.0, -1.0, -1.0], 0.0);
    // Box filter k=3, stride 2, pad 1: padded [0,1,2,3,4,5,0] -> windows at 0,2,4.
    let (y, n) = conv1d(
        &[1.0, 2.0, 3.0, 4.0, 5.0],
        1,
        5,
        &[1.0; 3],
        1,
        3,
        2,
        1,
        1,
        Some(&[0.25]),
    );
    assert_eq!(n, 3);
    close(&y, &[3.25, 9.25, 9.25], 0.0);
}

#[test]
fn conv1d_channels_and_groups() {
    let x = [1.0, 2.0, 3.0, 10.0, 20.0, 30.0]; // [2 channels, 3]
    // groups=2: each output channel sees only its own input channel.
    let (y, n) = conv1d(&x, 2, 3, &[1.0, 2.0], 2, 1, 1, 0, 2, None);
    assert_eq!(n, 3);
    close(&y, &[1.0, 2.0, 3.0, 20.0, 40.0, 60.0], 0.0);
    // groups=1: sum over input channels, plus bias.
    let (y, _) = conv1d(&x, 2, 3, &[1.0, 1.0], 1, 1, 1, 0, 1, Some(&[0.5]));
    close(&y, &[11.5, 22.5, 33.5], 0.0);
    // Kernel longer than the padded input: no outputs.
    let (y, n) = conv1d(&[1.0, 2.0], 1, 2, &[1.0; 3], 1, 3, 1, 0, 1, None);
    assert_eq!((y.len(), n), (0, 0));
}

#[test]
fn group_norm_per_channel_and_shared() {
    let x = [1.0, 2.0, 3.0, 10.0, 20.0, 30.0]; // [2 channels, 3]
    // One group per channel (MERT conv-0 mode): each row normalised on its own.
    let y = group_norm(&x, 2, 3, 2, &[1.0, 2.0], &[0.0, 1.0], 1e-5);
    let a = 1.224_735_7; // 1/sqrt(2/3 + 1e-5)
    let b = 1.224_744_8; // 10/sqrt(200/3 + 1e-5)
    close(&y, &[-a, 0.0, a, 1.0 - 2.0 * b, 1.0, 1.0 + 2.0 * b], 1e-6);
    // One group for both channels: shared mean 11 and variance over 6 values.
    let y = group_norm(&x, 2, 3, 1, &[1.0, 1.0], &[0.0, 0.0], 0.0);
    let (m, s) = (
        11.0f32,
        (((100.0 + 81.0 + 64.0 + 1.0 + 81.0 + 361.0) / 6.0) as f32).sqrt(),
    );
    let want: Vec<f32> = x.iter().map(|v| (v - m) / s).collect();
    close(&y, &want, 1e-6);
}

#[test]
fn layer_norm_rows() {
    let x = [1.0, 2.0, 3.0, 0.0, 0.0, 0.0];
    let y = layer_norm(&x, 2, 3, &[1.0, 1.0, 2.0], &[0.0, 0.5, 0.0], 1e-5);
    let a = 1.224_735_7;
    // A constant row normalises to 0, leaving beta.
    close(&y, &[-a, 0.5, 2.0 * a, 0.0, 0.5, 0.0], 1e-6);
}

#[test]
fn activations_in_place() {
    let mut x = [-1.0, 0.0, 1.0];
    gelu(&mut x);
    close(&x, &[-0.158_655_26, 0.0, 0.841_344_7], 1e-6);
    let mut x = [-1.0, 0.0, 1.0];
    silu(&mut x);
    close(&x, &[-0.268_941_43, 0.0, 0.731_058_6], 1e-6);
    let mut x = [-1.0, 0.0, 1.0];
    relu(&mut x);
    close(&x, &[0.0, 0.0, 1.0], 0.0);
}

#[test]
fn attention_softmax_and_heads() {
    // t=2, 2 heads of dim 1. Head 0: query 0 scores keys [0, ln 3] -> weights [1/4, 3/4]
    // over v [4, 8] -> 7; query 1 is zero -> uniform -> 6. Head 1 queries are zero -> mean 15.
    let ln3 = 3.0f32.ln();
    let q = [1.0, 0.0, 0.0, 0.0];
    let k = [0.0, 5.0, ln3, 7.0];
    let v = [4.0, 10.0, 8.0, 20.0];
    let y = attention(&q, &k, &v, 2, 2, 1, 1.0);
    close(&y, &[7.0, 15.0, 6.0, 15.0], 1e-5);
    // Scale multiplies the scores: q=0.5 with scale 2 is the same as q=1.
    let y = attention(&[0.5, 0.0, 0.0, 0.0], &k, &v, 2, 2, 1, 2.0);
    close(&y, &[7.0, 15.0, 6.0, 15.0], 1e-5);
    // head_dim 2: scores are dot products over the head's two channels.
    let y = attention(&[1.0, 1.0], &[0.0, 0.0], &[3.0, -3.0], 1, 1, 2, 0.125);
    close(&y, &[3.0, -3.0], 0.0);
}

#[test]
fn add_and_transpose() {
    let mut a = [1.0, 2.0];
    add(&mut a, &[0.5, -2.0]);
    close(&a, &[1.5, 0.0], 0.0);
    let t = transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3);
    close(&t, &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0], 0.0);
}
