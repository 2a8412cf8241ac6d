//! Tests of the autodiff heads: finite-difference gradient checks of every
//! kind and of the contrastive loss, padding invariance, synthetic tasks
//! each kind must learn, determinism across runs and thread counts, and
//! the hand-written MLP against the same MLP on the autodiff stack.

use candle_core::{DType, Tensor};

use super::adam::{clip_grad_norm, lr_at};
use super::config::{Arch, HeadConfig, Hidden, LossKind, LrSchedule, WeightDecay};
use super::frames::{FrameSet, HeadInput};
use super::graph::{contrastive_weight_at, fit_graph};
use super::kinds::{Batch, InputDims, Model};
use super::nn::contrastive::kl_loss;
use super::nn::gradcheck::max_error;
use super::nn::ops::l2_normalize;
use super::nn::params::Params;
use super::nn::{Padded, Result};
use super::train_cv_input;
use crate::dims::N_DIMS;
use crate::rng::Rng;

/// Small versions of every head kind, dropout on.
fn small(arch: Arch) -> HeadConfig {
    HeadConfig {
        arch,
        hidden: Hidden(vec![6, 5]),
        attention_hidden: Some(4),
        lstm_hidden: 3,
        lstm_layers: Some(2),
        transformer_layers: 2,
        transformer_heads: 2,
        transformer_ffn: 7,
        positional_encoding: true,
        per_dim_hidden: vec![4],
        cnn_channels: vec![2, 3, 4],
        cnn_pools: 2,
        fusion_dim: 4,
        gate_head_hidden: 3,
        dropout: 0.25,
        lstm_dropout: 0.25,
        ..Default::default()
    }
}

fn random_clips(rng: &mut Rng, lens: &[usize], d: usize) -> Vec<Vec<f32>> {
    lens.iter()
        .map(|&l| (0..l * d).map(|_| rng.uniform_f32() * 2.0 - 1.0).collect())
        .collect()
}

fn padded(clips: &[Vec<f32>], d: usize, dtype: DType) -> Padded {
    let refs: Vec<&[f32]> = clips.iter().map(Vec::as_slice).collect();
    Padded::new(&refs, d, dtype).unwrap()
}

/// A batch for `arch`: 3 clips of lengths 5, 3, 4 (two inputs: widths 6 and 5).
fn batch_for(arch: Arch, dtype: DType) -> (Batch, InputDims) {
    let mut rng = Rng::new(5, 5);
    let lens = [5, 3, 4];
    match arch {
        Arch::Mlp | Arch::Linear => {
            let x: Vec<f32> = (0..18).map(|_| rng.uniform_f32() - 0.5).collect();
            let t = Tensor::from_vec(x, (3, 6), &candle_core::Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            (Batch::Pooled(t), InputDims { a: 6, b: None })
        }
        Arch::MelCnn => {
            let d = 8;
            let c = random_clips(&mut rng, &[9, 4, 6], d);
            (
                Batch::Frames(padded(&c, d, dtype)),
                InputDims { a: d, b: None },
            )
        }
        Arch::Ensemble | Arch::Concat | Arch::Gated => {
            let a = random_clips(&mut rng, &lens, 6);
            let b = random_clips(&mut rng, &[2, 4, 1], 5);
            (
                Batch::Two(padded(&a, 6, dtype), padded(&b, 5, dtype)),
                InputDims { a: 6, b: Some(5) },
            )
        }
        _ => {
            let c = random_clips(&mut rng, &lens, 6);
            (
                Batch::Frames(padded(&c, 6, dtype)),
                InputDims { a: 6, b: None },
            )
        }
    }
}

const ALL_KINDS: [Arch; 9] = [
    Arch::Mlp,
    Arch::Attention,
    Arch::Bilstm,
    Arch::Transformer,
    Arch::PerDim,
    Arch::MelCnn,
    Arch::Ensemble,
    Arch::Concat,
    Arch::Gated,
];

#[test]
fn every_kind_s_gradients_match_finite_differences() {
    for arch in ALL_KINDS {
        let mut cfg = small(arch);
        // The contrastive projection joins the check on two kinds.
        if matches!(arch, Arch::Attention | Arch::Gated) {
            cfg.contrastive_weight = 0.3;
        }
        let (batch, dims) = batch_for(arch, DType::F64);
        let model = Model::new(&cfg, dims, N_DIMS, DType::F64, Rng::new(1, 2)).unwrap();
        let mut wr = Rng::new(3, 3);
        let w: Vec<f64> = (0..3 * N_DIMS).map(|_| wr.uniform_f64() - 0.5).collect();
        let w = Tensor::from_vec(w, (3, N_DIMS), &candle_core::Device::Cpu).unwrap();
        let y = Tensor::from_vec(
            (0..3 * N_DIMS)
                .map(|i| 0.2 + (i % 7) as f64 * 0.1)
                .collect::<Vec<_>>(),
            (3, N_DIMS),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let f = || -> Result<Tensor> {
            // Same dropout masks on every evaluation: a fixed stream.
            let mut drop = Rng::new(11, 11);
            let (pred, repr) = model.forward(&batch, Some(&mut drop))?;
            let mut out = (pred * &w)?.sum_all()?;
            if let Some(z) = model.embed(&repr)? {
                out = (out + kl_loss(&z, &y, 0.5)?)?;
            }
            Ok(out)
        };
        let (err, at) = max_error(&model.params, 6, &f).unwrap();
        assert!(err < 1e-6, "{arch:?}: gradient error {err:e} at {at}");
    }
}

#[test]
fn contrastive_loss_matches_its_definition_and_its_gradient() {
    let dev = candle_core::Device::Cpu;
    let z_raw: Vec<f64> = vec![0.3, -1.0, 0.5, 0.2, 0.9, -0.4, -0.7, 0.1, 0.6];
    let y: Vec<f64> = vec![0.9, 0.1, 0.5, 0.8, 0.2, 0.6, 0.1, 0.9, 0.3];
    let yt = Tensor::from_vec(y.clone(), (3, 3), &dev).unwrap();
    let mut p = Params::new(DType::F64, Rng::new(0, 0));
    let zv = p.constant(&[3, 3], 0.0).unwrap();
    p.vars()[0]
        .set(&Tensor::from_vec(z_raw.clone(), (3, 3), &dev).unwrap())
        .unwrap();
    let tau = 0.2;
    let loss = || kl_loss(&l2_normalize(&zv)?, &yt, tau);
    // By hand: row-normalise, cosines, softmax over j ≠ i, Σ P (log P − log Q) / 3.
    let unit = |v: &[f64]| -> Vec<Vec<f64>> {
        v.chunks(3)
            .map(|r| {
                let n = r.iter().map(|x| x * x).sum::<f64>().sqrt();
                r.iter().map(|x| x / n).collect()
            })
            .collect()
    };
    let (zu, yu) = (unit(&z_raw), unit(&y));
    let soft = |u: &[Vec<f64>], i: usize| -> Vec<f64> {
        let s: Vec<f64> = (0..3)
            .map(|j| {
                if j == i {
                    f64::NEG_INFINITY
                } else {
                    u[i].iter().zip(&u[j]).map(|(a, b)| a * b).sum::<f64>() / tau
                }
            })
            .collect();
        let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
        let sum: f64 = e.iter().sum();
        e.iter().map(|x| x / sum).collect()
    };
    let mut want = 0.0;
    for i in 0..3 {
        let (pp, qq) = (soft(&yu, i), soft(&zu, i));
        for j in 0..3 {
            if j != i {
                want += pp[j] * (pp[j].ln() - qq[j].ln());
            }
        }
    }
    want /= 3.0;
    let got = loss().unwrap().to_scalar::<f64>().unwrap();
    assert!((got - want).abs() < 1e-12, "KL {got} vs hand {want}");
    assert!(want > 0.0);
    let (err, at) = max_error(&p, 9, &|| loss()).unwrap();
    assert!(err < 1e-7, "contrastive gradient error {err:e} at {at}");
    // One clip: no pairs, no loss.
    let one = kl_loss(
        &zv.narrow(0, 0, 1).unwrap(),
        &yt.narrow(0, 0, 1).unwrap(),
        tau,
    )
    .unwrap()
    .to_scalar::<f64>()
    .unwrap();
    assert_eq!(one, 0.0);
}

#[test]
fn padding_never_changes_a_prediction() {
    for arch in ALL_KINDS.into_iter().filter(|a| *a != Arch::Mlp) {
        let cfg = small(arch);
        let (batch, dims) = batch_for(arch, DType::F32);
        let model = Model::new(&cfg, dims, N_DIMS, DType::F32, Rng::new(1, 2)).unwrap();
        // Move BatchNorm's running statistics off their init so eval mode uses them.
        model.forward(&batch, Some(&mut Rng::new(4, 4))).unwrap();
        let (all, _) = model.forward(&batch, None).unwrap();
        let all: Vec<Vec<f32>> = all.to_vec2().unwrap();
        for (i, row) in all.iter().enumerate() {
            let one = match &batch {
                Batch::Frames(p) => Batch::Frames(single(p, i)),
                Batch::Two(a, b) => Batch::Two(single(a, i), single(b, i)),
                Batch::Pooled(_) => unreachable!(),
            };
            let (alone, _) = model.forward(&one, None).unwrap();
            let alone: Vec<f32> = alone.flatten_all().unwrap().to_vec1().unwrap();
            let diff = alone
                .iter()
                .zip(row)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                diff <= 1e-6,
                "{arch:?}: clip {i} alone differs by {diff:e} from the padded batch"
            );
        }
    }
}

/// Clip `i` of a padded batch, cut to its own length.
fn single(p: &Padded, i: usize) -> Padded {
    let len = p.lens[i];
    let d = p.x.dim(2).unwrap();
    let x: Vec<f32> =
        p.x.narrow(0, i, 1)
            .unwrap()
            .narrow(1, 0, len)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
    Padded::new(&[&x], d, DType::F32).unwrap()
}

// ------------------------------------------------------------ learning

/// Held-out R² (uniform over dimensions) of `pred` vs `y`, both `[n, 19]`.
fn r2(pred: &[f32], y: &[f32]) -> f64 {
    let n = y.len() / N_DIMS;
    let mut total = 0.0;
    for d in 0..N_DIMS {
        let col = |v: &[f32], i: usize| v[i * N_DIMS + d] as f64;
        let mean = (0..n).map(|i| col(y, i)).sum::<f64>() / n as f64;
        let ss_tot: f64 = (0..n).map(|i| (col(y, i) - mean).powi(2)).sum();
        let ss_res: f64 = (0..n).map(|i| (col(y, i) - col(pred, i)).powi(2)).sum();
        total += 1.0 - ss_res / ss_tot;
    }
    total / N_DIMS as f64
}

/// Trains on clips 0..n_train (the last 20 % of them validate), returns the
/// R² on the rest.
fn learn(cfg: &HeadConfig, input: &HeadInput, y: &[f32], n_train: usize) -> f64 {
    let n = input.n_clips();
    let rows: Vec<usize> = (0..n_train).collect();
    let (tr, va) = rows.split_at(n_train * 4 / 5);
    let (head, _) = fit_graph(cfg, input, y, N_DIMS, tr, va, 16).unwrap();
    let test: Vec<usize> = (n_train..n).collect();
    let pred = head.predict(input, &test).unwrap();
    r2(&pred, &y[n_train * N_DIMS..])
}

/// Every dimension gets target t scaled into the labels' range, with a
/// per-dimension sign and offset so the 19 columns differ.
fn labels_from(targets: &[f64]) -> Vec<f32> {
    targets
        .iter()
        .flat_map(|&t| {
            (0..N_DIMS).map(move |d| {
                let s = if d % 2 == 0 { 1.0 } else { -1.0 };
                (0.5 + 0.02 * (d % 5) as f64 + s * 0.3 * t.tanh()) as f32
            })
        })
        .collect()
}

fn train_cfg(arch: Arch) -> HeadConfig {
    HeadConfig {
        arch,
        hidden: Hidden(vec![32]),
        lr: 3e-3,
        batch_size: 16,
        max_epochs: 120,
        patience: 20,
        dropout: 0.0,
        lstm_dropout: 0.0,
        ..Default::default()
    }
}

/// Random frames; one frame per clip is flagged (feature 0 = 3) and the
/// target is feature 1 of that frame alone.
fn one_informative_frame(n: usize) -> (HeadInput, Vec<f32>) {
    let mut rng = Rng::new(21, 0);
    let d = 6;
    let mut clips = Vec::new();
    let mut t = Vec::new();
    for _ in 0..n {
        let len = 4 + rng.below(12);
        let mut c: Vec<f32> = (0..len * d)
            .map(|_| rng.uniform_f32() * 2.0 - 1.0)
            .collect();
        for f in 0..len {
            c[f * d] = c[f * d] * 0.5 - 1.0;
        }
        let k = rng.below(len);
        c[k * d] = 3.0;
        t.push(c[k * d + 1] as f64 * 2.0);
        clips.push(c);
    }
    let refs: Vec<&[f32]> = clips.iter().map(Vec::as_slice).collect();
    (
        HeadInput::Frames(FrameSet::new(d, &refs).unwrap()),
        labels_from(&t),
    )
}

#[test]
fn attention_pooling_finds_the_informative_frame() {
    let (input, y) = one_informative_frame(400);
    let r2 = learn(&train_cfg(Arch::Attention), &input, &y, 320);
    assert!(r2 > 0.8, "attention: held-out R² {r2}");
}

/// The target is the first half's mean minus the second half's of feature
/// 0: a permutation-invariant pool (mean, attention) cannot see it.
fn order_task(n: usize, seed: u64) -> (HeadInput, Vec<f32>) {
    order_task_d(n, seed, 2)
}

/// [`order_task`] with `d − 1` noise features after the informative one.
fn order_task_d(n: usize, seed: u64, d: usize) -> (HeadInput, Vec<f32>) {
    let mut rng = Rng::new(seed, 0);
    let mut clips = Vec::new();
    let mut t = Vec::new();
    for _ in 0..n {
        let len = 4 + 2 * rng.below(4);
        let c: Vec<f32> = (0..len * d)
            .map(|_| rng.uniform_f32() * 2.0 - 1.0)
            .collect();
        let half = len / 2;
        let m = |r: std::ops::Range<usize>| {
            r.clone().map(|f| c[f * d] as f64).sum::<f64>() / r.len() as f64
        };
        t.push(1.5 * (m(0..half) - m(half..len)));
        clips.push(c);
    }
    let refs: Vec<&[f32]> = clips.iter().map(Vec::as_slice).collect();
    (
        HeadInput::Frames(FrameSet::new(d, &refs).unwrap()),
        labels_from(&t),
    )
}

#[test]
fn bilstm_learns_an_order_dependent_target_that_attention_cannot() {
    let (input, y) = order_task(400, 31);
    let cfg = HeadConfig {
        lstm_hidden: 16,
        lstm_layers: Some(1),
        ..train_cfg(Arch::Bilstm)
    };
    let lstm = learn(&cfg, &input, &y, 320);
    let att = learn(&train_cfg(Arch::Attention), &input, &y, 320);
    assert!(lstm > 0.7, "bilstm: held-out R² {lstm}");
    assert!(att < 0.3, "attention should not see order: R² {att}");
}

#[test]
fn transformer_finds_the_informative_frame_through_its_layers() {
    let (input, y) = one_informative_frame(400);
    let cfg = HeadConfig {
        transformer_layers: 2,
        transformer_heads: 2,
        transformer_ffn: 32,
        ..train_cfg(Arch::Transformer)
    };
    let r2 = learn(&cfg, &input, &y, 320);
    assert!(r2 > 0.8, "transformer: held-out R² {r2}");
}

#[test]
fn transformer_sees_order_only_with_positional_encoding() {
    // Self-attention and attention pooling are permutation-equivariant and
    // -invariant: reversing a clip's frames changes nothing unless positions
    // are added.
    let (batch, dims) = batch_for(Arch::Transformer, DType::F32);
    let Batch::Frames(p) = &batch else {
        unreachable!()
    };
    let clip = single(p, 0);
    let x: Vec<f32> = clip.x.flatten_all().unwrap().to_vec1().unwrap();
    let rev: Vec<f32> = x.chunks(6).rev().flatten().copied().collect();
    let reversed = Padded::new(&[&rev], 6, DType::F32).unwrap();
    for (posenc, same) in [(false, true), (true, false)] {
        let cfg = HeadConfig {
            positional_encoding: posenc,
            ..small(Arch::Transformer)
        };
        let model = Model::new(&cfg, dims, N_DIMS, DType::F32, Rng::new(1, 2)).unwrap();
        let run = |p: &Padded| -> Vec<f32> {
            let (y, _) = model.forward(&Batch::Frames(p.clone()), None).unwrap();
            y.flatten_all().unwrap().to_vec1().unwrap()
        };
        let (a, b) = (run(&clip), run(&reversed));
        let diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        if same {
            assert!(
                diff < 1e-6,
                "without positions: reversed clip differs by {diff:e}"
            );
        } else {
            assert!(
                diff > 1e-4,
                "with positions: reversal changed only {diff:e}"
            );
        }
    }
}

#[test]
fn per_dim_sequence_branch_learns_its_dimensions_and_the_mean_the_rest() {
    // timing (0) and pace (11) follow the order target; the rest the mean of feature 1.
    let (input, y_order) = order_task(400, 33);
    let HeadInput::Frames(f) = &input else {
        unreachable!()
    };
    let mean1: Vec<f64> = (0..f.n_clips())
        .map(|i| {
            let c = f.clip(i);
            let n = c.len() / 2;
            3.0 * (0..n).map(|k| c[k * 2 + 1] as f64).sum::<f64>() / n as f64
        })
        .collect();
    let y_mean = labels_from(&mean1);
    let y: Vec<f32> = (0..y_order.len())
        .map(|i| {
            if matches!(i % N_DIMS, 0 | 11) {
                y_order[i]
            } else {
                y_mean[i]
            }
        })
        .collect();
    let cfg = HeadConfig {
        lstm_hidden: 16,
        lstm_layers: Some(1),
        per_dim_hidden: vec![16],
        ..train_cfg(Arch::PerDim)
    };
    let r2 = learn(&cfg, &input, &y, 320);
    assert!(r2 > 0.7, "per_dim: held-out R² {r2}");
}

#[test]
fn mel_cnn_learns_a_spectral_tilt() {
    // Bands rise or fall with slope a; the target is a.
    let mut rng = Rng::new(41, 0);
    let bands = 16;
    let mut clips = Vec::new();
    let mut t = Vec::new();
    for _ in 0..300 {
        let a = rng.uniform_f64() * 2.0 - 1.0;
        let len = 8 + rng.below(9);
        let c: Vec<f32> = (0..len * bands)
            .map(|i| {
                let f = (i % bands) as f64 / bands as f64 - 0.5;
                (a * 2.0 * f + 0.3 * (rng.uniform_f64() - 0.5)) as f32
            })
            .collect();
        t.push(a * 1.5);
        clips.push(c);
    }
    let refs: Vec<&[f32]> = clips.iter().map(Vec::as_slice).collect();
    let input = HeadInput::Frames(FrameSet::new(bands, &refs).unwrap());
    let cfg = HeadConfig {
        cnn_channels: vec![4, 8],
        cnn_pools: 1,
        ..train_cfg(Arch::MelCnn)
    };
    let r2 = learn(&cfg, &input, &labels_from(&t), 240);
    assert!(r2 > 0.8, "mel_cnn: held-out R² {r2}");
}

/// Two inputs, each carrying half of the target in its flagged frame.
fn two_input_task(n: usize) -> (HeadInput, Vec<f32>) {
    let (a, ya) = one_informative_frame(n);
    let (HeadInput::Frames(fa), HeadInput::Frames(fb)) = (a, one_informative_frame_seed(n, 22).0)
    else {
        unreachable!()
    };
    let key = |f: &FrameSet, i: usize| {
        let c = f.clip(i);
        (0..c.len() / 6)
            .find(|&k| c[k * 6] == 3.0)
            .map(|k| c[k * 6 + 1] as f64)
            .unwrap()
    };
    let t: Vec<f64> = (0..n).map(|i| key(&fa, i) + key(&fb, i)).collect();
    let _ = ya;
    (HeadInput::Two(fa, fb), labels_from(&t))
}

fn one_informative_frame_seed(n: usize, seed: u64) -> (HeadInput, Vec<f32>) {
    let mut rng = Rng::new(seed, 0);
    let d = 6;
    let mut clips = Vec::new();
    for _ in 0..n {
        let len = 3 + rng.below(8);
        let mut c: Vec<f32> = (0..len * d)
            .map(|_| rng.uniform_f32() * 2.0 - 1.0)
            .collect();
        for f in 0..len {
            c[f * d] = c[f * d] * 0.5 - 1.0;
        }
        c[rng.below(len) * d] = 3.0;
        clips.push(c);
    }
    let refs: Vec<&[f32]> = clips.iter().map(Vec::as_slice).collect();
    (
        HeadInput::Frames(FrameSet::new(d, &refs).unwrap()),
        Vec::new(),
    )
}

#[test]
fn two_input_heads_use_both_inputs() {
    let (input, y) = two_input_task(400);
    for arch in [Arch::Ensemble, Arch::Concat, Arch::Gated] {
        let cfg = HeadConfig {
            fusion_dim: 16,
            gate_head_hidden: 8,
            ..train_cfg(arch)
        };
        let r2 = learn(&cfg, &input, &y, 320);
        // Either input alone explains about half of the target's variance.
        assert!(r2 > 0.75, "{arch:?}: held-out R² {r2}");
    }
}

#[test]
fn contrastive_loss_trains_alongside_the_regression() {
    let (input, y) = one_informative_frame(400);
    let cfg = HeadConfig {
        contrastive_weight: 0.5,
        contrastive_decay: 0.1,
        contrastive_projection: vec![16, 8],
        ..train_cfg(Arch::Attention)
    };
    let r2 = learn(&cfg, &input, &y, 320);
    assert!(r2 > 0.8, "attention + contrastive: held-out R² {r2}");
}

// ------------------------------------------------------------ options

#[test]
fn cosine_schedule_contrastive_decay_and_clipping_follow_their_formulas() {
    let cfg = HeadConfig {
        lr: 1e-3,
        lr_floor: 1e-5,
        lr_schedule: LrSchedule::Cosine,
        max_epochs: 200,
        contrastive_weight: 0.5,
        contrastive_decay: 0.1,
        ..Default::default()
    };
    assert_eq!(lr_at(&cfg, 0), 1e-3);
    assert!((lr_at(&cfg, 100) - (1e-5 + (1e-3 - 1e-5) / 2.0)).abs() < 1e-9);
    assert!((lr_at(&cfg, 200) - 1e-5).abs() < 1e-9);
    // The study's D10d: 0.5·0.1^(epoch/200).
    assert!((contrastive_weight_at(&cfg, 0) - 0.5).abs() < 1e-12);
    assert!((contrastive_weight_at(&cfg, 100) - 0.5 * 0.1f64.sqrt()).abs() < 1e-7);
    let mut g = vec![3.0f32, 4.0];
    let norm = clip_grad_norm(&mut g, 1.0);
    assert_eq!(norm, 5.0);
    assert!(
        (g[0] - 0.6).abs() < 1e-6 && (g[1] - 0.8).abs() < 1e-6,
        "{g:?}"
    );
    let mut small = vec![0.3f32, 0.4];
    clip_grad_norm(&mut small, 1.0);
    assert_eq!(small, [0.3, 0.4]);
}

// ------------------------------------------------------------ determinism

fn cv_fixture() -> (HeadInput, Vec<f32>, Vec<usize>, Vec<String>) {
    let (input, y) = one_informative_frame(96);
    let folds = (0..96).map(|i| (i / 3) % 4).collect();
    let groups = (0..96).map(|i| format!("p{}", i / 3)).collect();
    (input, y, folds, groups)
}

#[test]
fn same_seed_gives_bit_identical_predictions_on_one_or_two_threads() {
    let (input, y, folds, groups) = cv_fixture();
    let cfg = HeadConfig {
        max_epochs: 6,
        dropout: 0.2,
        contrastive_weight: 0.1,
        lr_schedule: LrSchedule::Cosine,
        grad_clip: 1.0,
        ..train_cfg(Arch::Bilstm)
    };
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| train_cv_input(&cfg, &input, &y, &folds, &groups).unwrap())
    };
    let a = run(1);
    let b = run(2);
    let c = run(2);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert!(a.predictions.iter().all(|p| p.is_finite()));
    assert_eq!(bits(&a.predictions), bits(&b.predictions), "1 vs 2 threads");
    assert_eq!(bits(&b.predictions), bits(&c.predictions), "two runs");
    let other = train_cv_input(
        &HeadConfig {
            seed: 7,
            ..cfg.clone()
        },
        &input,
        &y,
        &folds,
        &groups,
    )
    .unwrap();
    assert_ne!(
        bits(&a.predictions),
        bits(&other.predictions),
        "the seed matters"
    );
}

// ------------------------------------------------------------ one MLP, two stacks

/// The pooled heads the study trains (linear probe, MLP of one or two
/// hidden layers, with the study's optimiser: AdamW, cosine schedule,
/// gradient clipping) give the same predictions on both stacks: the
/// hand-written path that trains them in runs, and the autodiff oracle.
#[test]
fn hand_written_and_autodiff_mlps_agree() {
    // Pooled data with a learnable target; same config through both stacks.
    let mut rng = Rng::new(8, 8);
    let (n, d) = (160, 10);
    let x: Vec<f32> = (0..n * d).map(|_| rng.uniform_f32() * 2.0 - 1.0).collect();
    let t: Vec<f64> = (0..n)
        .map(|i| x[i * d] as f64 * 1.5 - x[i * d + 3] as f64)
        .collect();
    let y = labels_from(&t);
    let base = HeadConfig {
        hidden: Hidden(vec![16]),
        lr: 1e-3,
        batch_size: 32,
        max_epochs: 40,
        patience: 40,
        ..Default::default()
    };
    let study = HeadConfig {
        hidden: Hidden(vec![16, 12]),
        weight_decay_mode: WeightDecay::Decoupled,
        lr_schedule: LrSchedule::Cosine,
        // Small enough that clipping acts on most steps.
        grad_clip: 0.05,
        loss: LossKind::Hybrid,
        ..base.clone()
    };
    let linear = HeadConfig {
        arch: Arch::Linear,
        ..study.clone()
    };
    let rows: Vec<usize> = (0..n).collect();
    let (tr, va) = rows.split_at(128);
    let data = super::FitData {
        features: &x,
        d_in: d,
        labels: &y,
        n_out: N_DIMS,
        train_rows: tr,
        val_rows: va,
    };
    let input = HeadInput::Pooled {
        values: x.clone(),
        dim: d,
    };
    for (name, cfg) in [("mlp", base), ("study mlp", study), ("linear", linear)] {
        assert!(
            !cfg.uses_autodiff(),
            "{name} trains on the hand-written path"
        );
        let (hand, hand_report) = super::fit(&cfg, &data, 16).unwrap();
        let (graph, graph_report) = fit_graph(&cfg, &input, &y, N_DIMS, tr, va, 16).unwrap();
        let p_hand = hand.predict(&x).unwrap();
        let p_graph = graph.predict(&input, &rows).unwrap();
        let max_diff = p_hand
            .iter()
            .zip(&p_graph)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert_eq!(hand_report.best_epoch, graph_report.best_epoch, "{name}");
        // Same init, shuffles, dropout masks, loss, clipping and Adam; only the
        // kernels' summation order and the GELU's erf (A&S 7.1.26 vs libm) differ.
        assert!(
            max_diff < 1e-4,
            "{name}: predictions differ by up to {max_diff:e}"
        );
        assert_eq!(
            hand.params.len(),
            graph.params.len(),
            "{name}: parameter count"
        );
    }
}
