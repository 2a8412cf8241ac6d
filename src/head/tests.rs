//! Gradient checks, learnability, determinism and split tests for the heads.

use super::loss::Loss;
use super::net::{Cache, Net};
use super::*;
use crate::dims::N_DIMS;
use crate::metrics::{OutOfFold, rows_by_fold};
use crate::rng::Rng;

fn random(len: usize, lo: f32, hi: f32, rng: &mut Rng) -> Vec<f32> {
    (0..len)
        .map(|_| lo + (hi - lo) * rng.uniform_f32())
        .collect()
}

/// Central-difference check of `grad` against `f` at a spread of indices.
/// Tolerance: 2% relative plus an absolute floor for f32 rounding noise.
fn check_grad(name: &str, theta: &[f32], grad: &[f32], f: impl Fn(&[f32]) -> f64, h: f32) {
    let max_g = grad.iter().fold(0f32, |m, g| m.max(g.abs()));
    assert!(
        max_g > 1e-3,
        "{name}: gradient is (nearly) zero, the check would be vacuous"
    );
    let step = (theta.len() / 60).max(1);
    let mut checked = 0;
    for i in (0..theta.len()).step_by(step) {
        let mut t = theta.to_vec();
        t[i] = theta[i] + h;
        let up = f(&t);
        t[i] = theta[i] - h;
        let down = f(&t);
        let fd = (up - down) / (2.0 * h as f64);
        let an = grad[i] as f64;
        let tol = 2e-2 * an.abs().max(fd.abs()) + 3e-5;
        assert!(
            (fd - an).abs() <= tol,
            "{name}: d/dθ[{i}] analytic {an:e} vs finite difference {fd:e}"
        );
        checked += 1;
    }
    assert!(
        checked >= theta.len().min(10),
        "{name}: only {checked} entries checked"
    );
}

#[test]
fn loss_gradients_match_finite_differences() {
    let mut rng = Rng::new(1, 0);
    let (b, k) = (7, 5);
    let pred = random(b * k, 0.2, 0.9, &mut rng);
    let target = random(b * k, 0.15, 1.0, &mut rng);
    for kind in [
        LossKind::Mse,
        LossKind::Ccc,
        LossKind::Hybrid,
        LossKind::Uncertainty,
    ] {
        let loss = Loss {
            kind,
            ccc_weight: 0.5,
            n_out: k,
        };
        let s = random(loss.n_params(), -0.5, 0.5, &mut rng);
        let mut gp = vec![0f32; b * k];
        let mut gs = vec![0f32; s.len()];
        loss.eval(&pred, &target, &s, Some((&mut gp, &mut gs)));
        let name = format!("{kind:?} w.r.t. predictions");
        check_grad(&name, &pred, &gp, |p| loss.eval(p, &target, &s, None), 1e-3);
        if !s.is_empty() {
            check_grad(
                "uncertainty w.r.t. log-variances",
                &s,
                &gs,
                |s| loss.eval(&pred, &target, s, None),
                1e-3,
            );
        }
    }
}

#[test]
fn loss_values_hand_computed() {
    let mse = Loss {
        kind: LossKind::Mse,
        ccc_weight: 0.5,
        n_out: 2,
    };
    // Errors 0.1, -0.2, 0, 0.3: mean square = 0.14/4.
    let (p, t) = ([0.6f32, 0.3, 0.5, 0.9], [0.5f32, 0.5, 0.5, 0.6]);
    assert!((mse.eval(&p, &t, &[], None) - 0.035).abs() < 1e-7);
    // Perfect predictions: CCC = 1, loss 0. Negated deviations: CCC = -1, loss 2.
    let ccc = Loss {
        kind: LossKind::Ccc,
        ..mse
    };
    let y = [0.2f32, 0.8, 0.4, 0.6, 0.9, 0.1];
    assert!(ccc.eval(&y, &y, &[], None).abs() < 1e-6);
    // Both columns (0.2,0.4,0.9 and 0.8,0.6,0.1) have mean 0.5, so 1 - y
    // reflects each about its mean: same mean and variance, cov = -var.
    let neg: Vec<f32> = y.iter().map(|v| 1.0 - v).collect();
    assert!(
        (ccc.eval(&neg, &y, &[], None) - 2.0).abs() < 1e-5,
        "{}",
        ccc.eval(&neg, &y, &[], None)
    );
    // Uncertainty with s = 0: Σ_d 0.5·MSE_d. MSE_0 = (0.01+0)/2, MSE_1 = (0.04+0.09)/2.
    let unc = Loss {
        kind: LossKind::Uncertainty,
        ..mse
    };
    let want = 0.5 * (0.005 + 0.065);
    assert!((unc.eval(&p, &t, &[0.0, 0.0], None) - want).abs() < 1e-7);
    // s_d = ln(MSE_d) minimises Σ 0.5·e^{-s}·MSE + 0.5·s; the gradient there is 0.
    let s = [0.005f32.ln(), 0.065f32.ln()];
    let mut gp = [0f32; 4];
    let mut gs = [0f32; 2];
    unc.eval(&p, &t, &s, Some((&mut gp, &mut gs)));
    assert!(gs.iter().all(|g| g.abs() < 1e-6), "{gs:?}");
}

fn tiny_net(arch: Arch, act: Activation, output: OutputActivation) -> Net {
    tiny_net_of(arch, act, output, &[8])
}

fn tiny_net_of(arch: Arch, act: Activation, output: OutputActivation, hidden: &[usize]) -> Net {
    let cfg = HeadConfig {
        arch,
        hidden: Hidden(hidden.to_vec()),
        head_hidden: 3,
        activation: act,
        output,
        dropout: 0.25,
        ..Default::default()
    };
    Net::new(&cfg, 6, 5)
}

#[test]
fn network_gradients_match_finite_differences() {
    let cases: [(Arch, Activation, OutputActivation, &[usize]); 8] = [
        (
            Arch::Linear,
            Activation::Gelu,
            OutputActivation::Linear,
            &[8],
        ),
        (
            Arch::Linear,
            Activation::Gelu,
            OutputActivation::Sigmoid,
            &[8],
        ),
        (Arch::Mlp, Activation::Gelu, OutputActivation::Sigmoid, &[8]),
        (Arch::Mlp, Activation::Relu, OutputActivation::Linear, &[8]),
        (
            Arch::Mlp,
            Activation::Gelu,
            OutputActivation::Sigmoid,
            &[8, 7],
        ),
        (
            Arch::Mlp,
            Activation::Relu,
            OutputActivation::Linear,
            &[8, 7, 5],
        ),
        (
            Arch::MlpPerDim,
            Activation::Gelu,
            OutputActivation::Sigmoid,
            &[8],
        ),
        (
            Arch::MlpPerDim,
            Activation::Relu,
            OutputActivation::Sigmoid,
            &[8],
        ),
    ];
    for (arch, act, output, hidden) in cases {
        let net = tiny_net_of(arch, act, output, hidden);
        let mut rng = Rng::new(2, 0);
        // Larger than the default init so every layer carries gradient.
        let theta: Vec<f32> = net.init(&mut rng).iter().map(|w| 3.0 * w).collect();
        let b = 9;
        let x = random(b * net.d_in, -1.5, 1.5, &mut rng);
        let y = random(b * net.n_out, 0.15, 1.0, &mut rng);
        let loss = Loss {
            kind: LossKind::Hybrid,
            ccc_weight: 0.5,
            n_out: net.n_out,
        };
        // The same dropout mask on every evaluation: clone the stream.
        let dropout = Rng::new(3, 0);
        let value = |t: &[f32]| {
            let mut cache = Cache::default();
            net.forward(t, &x, b, Some(&mut dropout.clone()), &mut cache);
            loss.eval(&cache.out, &y, &[], None)
        };
        let mut cache = Cache::default();
        net.forward(&theta, &x, b, Some(&mut dropout.clone()), &mut cache);
        let mut d_out = vec![0f32; b * net.n_out];
        loss.eval(&cache.out, &y, &[], Some((&mut d_out, &mut [])));
        let mut grad = vec![f32::NAN; theta.len()];
        net.backward(&theta, &x, &mut cache, &d_out, &mut grad);
        assert!(
            grad.iter().all(|g| g.is_finite()),
            "{arch:?}: backward left entries unset"
        );
        let name = format!("{arch:?}{hidden:?}/{act:?}/{output:?}");
        check_grad(&name, &theta, &grad, value, 2e-3);
        // Every tensor of the layout got checked entries: spot-check the
        // last parameter (output bias) explicitly.
        let i = theta.len() - 1;
        let mut t = theta.clone();
        t[i] += 2e-3;
        let up = value(&t);
        t[i] -= 4e-3;
        let fd = (up - value(&t)) / 4e-3;
        assert!(
            (fd - grad[i] as f64).abs() < 2e-2 * fd.abs() + 3e-5,
            "{name}: output bias"
        );
    }
}

#[test]
fn dropout_is_inverted_and_off_in_eval() {
    let net = tiny_net(Arch::Mlp, Activation::Relu, OutputActivation::Linear);
    let mut rng = Rng::new(4, 0);
    let theta = net.init(&mut rng);
    let x = random(net.d_in, -1.0, 1.0, &mut rng);
    let eval = net.predict(&theta, &x);
    let mut cache = Cache::default();
    net.forward(&theta, &x, 1, None, &mut cache);
    assert_eq!(cache.out, eval);
    // Averaged over many masks, training outputs match eval outputs.
    let mut drng = Rng::new(5, 0);
    let mut mean = vec![0f64; net.n_out];
    let reps = 20_000;
    let mut differs = false;
    for _ in 0..reps {
        net.forward(&theta, &x, 1, Some(&mut drng), &mut cache);
        differs |= cache.out != eval;
        for (m, o) in mean.iter_mut().zip(&cache.out) {
            *m += *o as f64 / reps as f64;
        }
    }
    assert!(differs);
    for (m, e) in mean.iter().zip(&eval) {
        assert!((m - *e as f64).abs() < 0.02, "mean {m} vs eval {e}");
    }
}

/// `n_pieces` pieces of `per_piece` clips; piece p sits in fold p % 4.
/// Labels are a linear function of `d` uniform features plus noise, scaled
/// into the PercePiano range (mean 0.55, sd ≈ 0.1).
struct Synthetic {
    features: Vec<f32>,
    labels: Vec<f32>,
    folds: Vec<usize>,
    groups: Vec<u32>,
    d: usize,
}

fn synthetic(n_pieces: usize, per_piece: usize, d: usize, noise: f32, seed: u64) -> Synthetic {
    let mut rng = Rng::new(seed, 0);
    let n = n_pieces * per_piece;
    let a = random(d * N_DIMS, -1.0, 1.0, &mut rng);
    let features = random(n * d, -1.0, 1.0, &mut rng);
    // Var of Σ_j a_j x_j ≈ d · (1/3) · (1/3); scale to sd 0.1.
    let scale = 0.1 / (d as f32 / 9.0).sqrt();
    let mut labels = Vec::with_capacity(n * N_DIMS);
    for i in 0..n {
        for k in 0..N_DIMS {
            let z: f32 = (0..d)
                .map(|j| a[j * N_DIMS + k] * features[i * d + j])
                .sum();
            let e = noise * (rng.uniform_f32() - 0.5) * 3.46; // uniform, sd = noise
            labels.push(0.55 + scale * z + e);
        }
    }
    let groups: Vec<u32> = (0..n).map(|i| (i / per_piece) as u32).collect();
    let folds = groups.iter().map(|&g| g as usize % 4).collect();
    Synthetic {
        features,
        labels,
        folds,
        groups,
        d,
    }
}

impl Synthetic {
    fn data(&self) -> CvData<'_, u32> {
        CvData {
            features: &self.features,
            d_in: self.d,
            labels: &self.labels,
            folds: &self.folds,
            groups: &self.groups,
        }
    }

    fn oof_r2(&self, pred: &[f32]) -> f64 {
        let oof = OutOfFold::new(&self.labels, pred, N_DIMS).unwrap();
        oof.fold_mean_r2(&rows_by_fold(&self.folds).unwrap())
            .unwrap()
    }
}

/// Fast-converging settings for the small test problems (the defaults are
/// the study's, tuned for ~1,000 real clips and many more epochs).
fn fast(arch: Arch) -> HeadConfig {
    HeadConfig {
        arch,
        hidden: Hidden(vec![16]),
        head_hidden: 4,
        lr: 1e-2,
        batch_size: 32,
        max_epochs: 60,
        patience: 10,
        dropout: 0.1,
        ..Default::default()
    }
}

#[test]
fn linear_probe_and_mlp_learn_a_linear_target() {
    let s = synthetic(40, 10, 8, 0.01, 7);
    for (arch, output) in [
        (Arch::Linear, OutputActivation::Linear),
        (Arch::Linear, OutputActivation::Sigmoid),
        (Arch::Mlp, OutputActivation::Sigmoid),
    ] {
        let cfg = HeadConfig {
            output,
            ..fast(arch)
        };
        let out = train_cv(&cfg, &s.data()).unwrap();
        assert!(out.predictions.iter().all(|p| p.is_finite()));
        let r2 = s.oof_r2(&out.predictions);
        assert!(r2 > 0.95, "{arch:?}/{output:?}: out-of-fold R² {r2}");
        for f in &out.folds {
            assert!(f.fit.epochs_run >= f.fit.best_epoch && f.fit.best_epoch >= 1);
            assert_eq!(f.n_train + f.n_val + f.n_test, 400);
        }
    }
}

#[test]
fn per_dimension_heads_learn_a_linear_target() {
    // Smaller problem: 19 heads per step make this arch the slowest in debug.
    let s = synthetic(24, 8, 8, 0.01, 13);
    let cfg = HeadConfig {
        batch_size: 64,
        lr: 2e-2,
        max_epochs: 40,
        ..fast(Arch::MlpPerDim)
    };
    let out = train_cv(&cfg, &s.data()).unwrap();
    let r2 = s.oof_r2(&out.predictions);
    assert!(r2 > 0.9, "out-of-fold R² {r2}");
}

#[test]
fn shuffled_labels_give_no_skill() {
    let mut s = synthetic(40, 10, 8, 0.01, 8);
    // Permute whole label rows across clips: features no longer carry signal.
    let mut perm: Vec<usize> = (0..400).collect();
    Rng::new(9, 0).shuffle(&mut perm);
    let labels = s.labels.clone();
    for (i, &p) in perm.iter().enumerate() {
        s.labels[i * N_DIMS..(i + 1) * N_DIMS]
            .copy_from_slice(&labels[p * N_DIMS..(p + 1) * N_DIMS]);
    }
    let out = train_cv(&fast(Arch::Mlp), &s.data()).unwrap();
    let r2 = s.oof_r2(&out.predictions);
    assert!(r2 < 0.05, "R² on shuffled labels {r2}");
}

#[test]
fn training_is_bitwise_deterministic_across_runs_and_thread_counts() {
    let s = synthetic(12, 6, 5, 0.02, 10);
    let cfg = HeadConfig {
        max_epochs: 8,
        loss: LossKind::Hybrid,
        ..fast(Arch::Mlp)
    };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| train_cv(&cfg, &s.data()).unwrap())
    };
    let bits = |o: &CvOutput| {
        o.predictions
            .iter()
            .map(|p| p.to_bits())
            .collect::<Vec<_>>()
    };
    let (a, b, c) = (run(1), run(1), run(2));
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(bits(&a), bits(&c));
    // A different seed really changes the result (the test is not vacuous).
    let other = train_cv(
        &HeadConfig {
            seed: 43,
            ..cfg.clone()
        },
        &s.data(),
    )
    .unwrap();
    assert_ne!(bits(&a), bits(&other));
}

#[test]
fn validation_split_takes_whole_pieces_from_training_folds_only() {
    // 20 pieces of varying size; piece p in fold p % 4.
    let mut groups = Vec::new();
    for p in 0..20u32 {
        for _ in 0..(1 + p % 3) {
            groups.push(p);
        }
    }
    let folds: Vec<usize> = groups.iter().map(|&g| g as usize % 4).collect();
    for test in 0..4 {
        let (train, val) = split_train_val(&groups, &folds, test, 0.15, 42).unwrap();
        // 15 training pieces -> round(2.25) = 2 validation pieces.
        let val_pieces: std::collections::BTreeSet<u32> = val.iter().map(|&r| groups[r]).collect();
        let train_pieces: std::collections::BTreeSet<u32> =
            train.iter().map(|&r| groups[r]).collect();
        assert_eq!(val_pieces.len(), 2, "fold {test}");
        assert!(
            val_pieces.is_disjoint(&train_pieces),
            "fold {test}: a piece in train and val"
        );
        assert!(
            val.iter().chain(&train).all(|&r| folds[r] != test),
            "fold {test}: test clip leaked"
        );
        // Every non-test clip is in exactly one of train/val.
        let mut all: Vec<usize> = train.iter().chain(&val).copied().collect();
        all.sort_unstable();
        let want: Vec<usize> = (0..groups.len()).filter(|&r| folds[r] != test).collect();
        assert_eq!(all, want);
        // Deterministic for a seed, different for another.
        assert_eq!(
            split_train_val(&groups, &folds, test, 0.15, 42).unwrap().1,
            val
        );
    }
    let differs = (0..4).any(|t| {
        split_train_val(&groups, &folds, t, 0.15, 42).unwrap().1
            != split_train_val(&groups, &folds, t, 0.15, 7).unwrap().1
    });
    assert!(differs);
}

#[test]
fn bad_inputs_get_errors_with_context() {
    let s = synthetic(8, 3, 4, 0.01, 11);
    let cfg = fast(Arch::Linear);
    let short = &s.labels[..s.labels.len() - 1];
    let e = train_cv(
        &cfg,
        &CvData {
            labels: short,
            ..s.data()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("19 PercePiano dimensions"), "{e}");
    let mut labels = s.labels.clone();
    labels[3 * N_DIMS + 7] = 5.0;
    let e = train_cv(
        &cfg,
        &CvData {
            labels: &labels,
            ..s.data()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("label dimension 7 of clip 3 is 5") && e.contains("linear"),
        "{e}"
    );
    let linear = HeadConfig {
        output: OutputActivation::Linear,
        max_epochs: 2,
        ..cfg.clone()
    };
    assert!(
        train_cv(
            &linear,
            &CvData {
                labels: &labels,
                ..s.data()
            }
        )
        .is_ok()
    );
    let mut feats = s.features.clone();
    feats[4 * 5 + 2] = f32::NAN;
    let e = train_cv(
        &cfg,
        &CvData {
            features: &feats,
            ..s.data()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("feature 2 of clip 5"), "{e}");
}

#[test]
fn early_stopping_restores_the_best_weights() {
    // Tiny noisy problem with a big MLP overfits fast: validation loss turns.
    let s = synthetic(12, 4, 6, 0.08, 12);
    let cfg = HeadConfig {
        hidden: Hidden(vec![64]),
        lr: 3e-2,
        batch_size: 8,
        max_epochs: 100,
        patience: 5,
        dropout: 0.0,
        ..fast(Arch::Mlp)
    };
    let train_rows: Vec<usize> = (0..36).collect();
    let val_rows: Vec<usize> = (36..48).collect();
    let data = FitData {
        features: &s.features,
        d_in: s.d,
        labels: &s.labels,
        n_out: N_DIMS,
        train_rows: &train_rows,
        val_rows: &val_rows,
    };
    let (head, report) = fit(&cfg, &data, 0).unwrap();
    assert!(report.epochs_run < 100, "never stopped early: {report:?}");
    assert_eq!(report.epochs_run, report.best_epoch + cfg.patience);
    // The returned weights are the best epoch's: their validation loss is
    // exactly the reported best.
    let x_val: Vec<f32> = val_rows
        .iter()
        .flat_map(|&r| s.features[r * s.d..(r + 1) * s.d].to_vec())
        .collect();
    let y_val: Vec<f32> = val_rows
        .iter()
        .flat_map(|&r| s.labels[r * N_DIMS..(r + 1) * N_DIMS].to_vec())
        .collect();
    let pred = head.predict(&x_val).unwrap();
    let loss = Loss {
        kind: cfg.loss,
        ccc_weight: 0.5,
        n_out: N_DIMS,
    };
    assert_eq!(loss.eval(&pred, &y_val, &[], None), report.best_val_loss);
}

#[test]
fn standardizer_uses_training_rows_only() {
    let features = [1.0f32, 10.0, 3.0, 10.0, 1000.0, -5.0];
    let st = Standardizer::fit(&features, 2, &[0, 1]);
    // Column 0 over rows 0,1: mean 2, std 1. Column 1 is constant: inv_std 1.
    assert_eq!(st.mean, vec![2.0, 10.0]);
    assert_eq!(st.inv_std, vec![1.0, 1.0]);
    assert_eq!(st.apply_rows(&features, &[2]), vec![998.0, -15.0]);
}

#[test]
fn split_needs_two_training_pieces() {
    // Two pieces, two folds: the training side has one piece, nothing to hold out.
    let e = split_train_val(&[0u32, 0, 1, 1], &[0, 0, 1, 1], 0, 0.15, 42).unwrap_err();
    assert!(e.to_string().contains("hold 1 piece(s)"), "{e}");
}

#[test]
fn trained_head_round_trips_through_json_and_predicts_the_same() {
    let s = synthetic(8, 4, 5, 0.01, 14);
    let rows: Vec<usize> = (0..24).collect();
    let val: Vec<usize> = (24..32).collect();
    let data = FitData {
        features: &s.features,
        d_in: s.d,
        labels: &s.labels,
        n_out: N_DIMS,
        train_rows: &rows,
        val_rows: &val,
    };
    let cfg = HeadConfig {
        max_epochs: 3,
        loss: LossKind::Uncertainty,
        ..fast(Arch::Mlp)
    };
    let (head, _) = fit(&cfg, &data, 0).unwrap();
    assert_eq!(head.loss_params.len(), N_DIMS);
    // The log-variances moved from their initial 0.
    assert!(head.loss_params.iter().any(|&v| v != 0.0));
    let back: TrainedHead = serde_json::from_str(&serde_json::to_string(&head).unwrap()).unwrap();
    let x = &s.features[..4 * s.d];
    assert_eq!(head.predict(x).unwrap(), back.predict(x).unwrap());
    let e = head.predict(&x[..7]).unwrap_err();
    assert!(e.to_string().contains("input width 5"), "{e}");
}

#[test]
fn final_head_trains_on_all_pieces_minus_a_validation_split() {
    let s = synthetic(20, 5, 6, 0.01, 15);
    let cfg = HeadConfig {
        max_epochs: 40,
        ..fast(Arch::Linear)
    };
    let (head, report) = train_final(&cfg, &s.features, s.d, &s.labels, &s.groups).unwrap();
    assert!(report.best_epoch >= 1);
    // In-sample fit of a learnable target is good.
    let pred = head.predict(&s.features).unwrap();
    let oof = OutOfFold::new(&s.labels, &pred, N_DIMS).unwrap();
    let r2 = oof.dim_mean_r2(&(0..100).collect::<Vec<_>>()).unwrap();
    assert!(r2 > 0.95, "R² {r2}");
    let e = train_final(&cfg, &s.features, s.d, &s.labels[..19], &s.groups).unwrap_err();
    assert!(e.to_string().contains("19 PercePiano dimensions"), "{e}");
}

/// The study's protocol (`validation = "test_fold"`) picks each fold's epoch
/// by R² on the fold it then scores: on a weak, noisy target that a small
/// head overfits, its out-of-fold R² is at least ours, each fold's kept
/// validation R² is exactly that fold's test R², and the study's aggregate
/// (mean of the folds' best validation R²) is the fold-mean test R².
#[test]
fn test_fold_protocol_scores_on_the_fold_it_validates_on_and_inflates_r2() {
    // Signal sd 0.1, noise sd 0.12, 96 clips: plenty of room to overfit.
    let s = synthetic(24, 4, 8, 0.12, 21);
    let by_fold = rows_by_fold(&s.folds).unwrap();
    for ours in [
        HeadConfig {
            max_epochs: 80,
            patience: 80,
            ..fast(Arch::Mlp)
        },
        // The autodiff path (a hidden list) shares the protocol.
        HeadConfig {
            hidden: Hidden(vec![16, 16]),
            max_epochs: 30,
            patience: 30,
            ..fast(Arch::Mlp)
        },
    ] {
        let study = HeadConfig {
            validation: Validation::TestFold,
            ..ours.clone()
        };
        let input = HeadInput::Pooled {
            values: s.features.clone(),
            dim: s.d,
        };
        let run =
            |cfg: &HeadConfig| train_cv_input(cfg, &input, &s.labels, &s.folds, &s.groups).unwrap();
        let (a, b) = (run(&ours), run(&study));
        let (r2_ours, r2_study) = (s.oof_r2(&a.predictions), s.oof_r2(&b.predictions));
        assert!(
            r2_study >= r2_ours,
            "hidden {:?}: study protocol R² {r2_study} < ours {r2_ours}",
            ours.hidden
        );
        assert_ne!(a.predictions, b.predictions);
        let oof = OutOfFold::new(&s.labels, &b.predictions, N_DIMS).unwrap();
        for f in &b.folds {
            // Validation = the test fold: every other fold trains.
            assert_eq!(f.n_val, f.n_test);
            assert_eq!(f.n_train + f.n_test, s.folds.len());
            let test_r2 = oof.dim_mean_r2(&by_fold[f.fold]).unwrap();
            assert_eq!(f.fit.best_val_r2, Some(test_r2), "fold {}", f.fold);
        }
        let agg = mean_best_val_r2(&b.folds).unwrap();
        assert!((agg - r2_study).abs() < 1e-12, "{agg} vs {r2_study}");
        // Ours holds pieces out of the training folds instead.
        for f in &a.folds {
            assert!(f.n_val > 0 && f.n_train + f.n_val + f.n_test == s.folds.len());
        }
        // Same seed, same bits, whatever the thread count.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let again = pool.install(|| run(&study));
        let bits = |o: &CvOutput| {
            o.predictions
                .iter()
                .map(|p| p.to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&again), bits(&b));
    }
}

/// `validation = "held_out_epoch"`: each fold's first fit chooses the epoch
/// by R² on held-out pieces (the same pieces ours holds out), the second
/// fit trains on every training-fold clip for exactly that many epochs and
/// is what predicts: the same bits as a direct fit with `run_epochs` on
/// those clips, the test fold never looked at.
#[test]
fn held_out_epoch_refits_on_all_training_folds_for_the_epoch_held_out_pieces_chose() {
    let s = synthetic(24, 4, 8, 0.12, 21);
    let ours = HeadConfig {
        max_epochs: 40,
        patience: 5,
        ..fast(Arch::Mlp)
    };
    let fixed = HeadConfig {
        validation: Validation::HeldOutEpoch,
        ..ours.clone()
    };
    let input = HeadInput::Pooled {
        values: s.features.clone(),
        dim: s.d,
    };
    let run =
        |cfg: &HeadConfig| train_cv_input(cfg, &input, &s.labels, &s.folds, &s.groups).unwrap();
    let (a, b) = (run(&ours), run(&fixed));
    let by_fold = rows_by_fold(&s.folds).unwrap();
    // A fit on `rows` with no validation rows.
    fn unvalidated<'a>(s: &'a Synthetic, rows: &'a [usize]) -> FitData<'a> {
        FitData {
            features: &s.features,
            d_in: s.d,
            labels: &s.labels,
            n_out: N_DIMS,
            train_rows: rows,
            val_rows: &[],
        }
    }
    for (fa, fb) in a.folds.iter().zip(&b.folds) {
        // The same held-out pieces choose, but by R² (ours: the loss).
        assert_eq!((fa.n_val, fa.n_val_pieces), (fb.n_val, fb.n_val_pieces));
        // Every training-fold clip trains the scored model.
        assert_eq!(fb.n_train + fb.n_test, s.folds.len());
        assert!(fb.fit.best_epoch >= 1 && fb.fit.best_epoch <= fb.fit.epochs_run);
        // The scored model is a plain fit of best_epoch epochs on them.
        let learn: Vec<usize> = (0..s.folds.len())
            .filter(|&i| s.folds[i] != fb.fold)
            .collect();
        let refit = HeadConfig {
            run_epochs: Some(fb.fit.best_epoch),
            ..fixed.clone()
        };
        let data = unvalidated(&s, &learn);
        let (head, report) = fit(&refit, &data, 16 * (fb.fold as u64 + 1)).unwrap();
        assert_eq!(
            (report.epochs_run, report.best_epoch),
            (fb.fit.best_epoch, fb.fit.best_epoch)
        );
        let test = &by_fold[fb.fold];
        let x: Vec<f32> = (test.iter())
            .flat_map(|&r| s.features[r * s.d..(r + 1) * s.d].iter().copied())
            .collect();
        let want = head.predict(&x).unwrap();
        let got: Vec<f32> = (test.iter())
            .flat_map(|&r| b.predictions[r * N_DIMS..(r + 1) * N_DIMS].iter().copied())
            .collect();
        assert_eq!(got, want, "fold {}", fb.fold);
    }
    // Without validation rows and without run_epochs there is nothing to stop on.
    let e = fit(&ours, &unvalidated(&s, &[0, 1, 2]), 0).unwrap_err();
    assert!(e.to_string().contains("no validation rows"), "{e}");
}
