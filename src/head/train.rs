//! Training one head on given train/validation rows: standardisation,
//! mini-batch Adam, early stopping on the validation loss (or, under the
//! study's protocol, on the validation R²) with the best weights restored.

use std::time::Instant;

use anyhow::{Result, bail, ensure};
use serde::{Deserialize, Serialize};

use super::adam::Adam;
use super::config::{HeadConfig, Validation};
use super::loss::Loss;
use super::net::{Cache, Net};
use crate::rng::Rng;

/// Per-feature affine map fitted on training rows: (x − mean) / std.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    pub mean: Vec<f32>,
    /// 1/std (population std); 1 for constant features, which then map to 0.
    pub inv_std: Vec<f32>,
}

impl Standardizer {
    /// Fits on `rows` of row-major `features` `[n, d]` (sums in f64).
    pub fn fit(features: &[f32], d: usize, rows: &[usize]) -> Self {
        let n = rows.len() as f64;
        let mut mean = vec![0f64; d];
        for &r in rows {
            for (m, &x) in mean.iter_mut().zip(&features[r * d..(r + 1) * d]) {
                *m += x as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0f64; d];
        for &r in rows {
            for ((v, &x), m) in var.iter_mut().zip(&features[r * d..(r + 1) * d]).zip(&mean) {
                *v += (x as f64 - m) * (x as f64 - m);
            }
        }
        let inv_std = var
            .iter()
            .map(|v| {
                let s = (v / n).sqrt();
                if s > 1e-12 { (1.0 / s) as f32 } else { 1.0 }
            })
            .collect();
        Standardizer {
            mean: mean.iter().map(|&m| m as f32).collect(),
            inv_std,
        }
    }

    /// Identity map (standardisation switched off).
    pub fn identity(d: usize) -> Self {
        Standardizer {
            mean: vec![0.0; d],
            inv_std: vec![1.0; d],
        }
    }

    /// Standardised copies of `rows`, packed `[rows.len(), d]`.
    pub fn apply_rows(&self, features: &[f32], rows: &[usize]) -> Vec<f32> {
        let d = self.mean.len();
        let mut out = Vec::with_capacity(rows.len() * d);
        for &r in rows {
            let src = &features[r * d..(r + 1) * d];
            out.extend(
                src.iter()
                    .zip(&self.mean)
                    .zip(&self.inv_std)
                    .map(|((x, m), s)| (x - m) * s),
            );
        }
        out
    }
}

/// A trained head: everything needed to score new feature vectors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainedHead {
    pub config: HeadConfig,
    pub d_in: usize,
    pub n_out: usize,
    pub standardizer: Standardizer,
    /// Network parameters (see [`Net::layout`]).
    pub params: Vec<f32>,
    /// Learned log-variances of the uncertainty-weighted loss (else empty).
    pub loss_params: Vec<f32>,
}

impl TrainedHead {
    fn net(&self) -> Net {
        Net::new(&self.config, self.d_in, self.n_out)
    }

    /// Scores `features` `[n, d_in]` (raw, unstandardised); returns `[n, n_out]`.
    pub fn predict(&self, features: &[f32]) -> Result<Vec<f32>> {
        ensure!(
            features.len().is_multiple_of(self.d_in),
            "features have {} values, not a multiple of the head's input width {}",
            features.len(),
            self.d_in
        );
        let rows: Vec<usize> = (0..features.len() / self.d_in).collect();
        let x = self.standardizer.apply_rows(features, &rows);
        Ok(self.net().predict(&self.params, &x))
    }
}

/// How a training run went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    pub epochs_run: usize,
    /// 1-based epoch whose weights were kept.
    pub best_epoch: usize,
    /// Validation loss of the kept epoch.
    pub best_val_loss: f64,
    /// Validation R² of the kept epoch ([`val_r2`]): under the study's
    /// protocol the fold's test R², and the mean over folds of this is the
    /// study's headline aggregate.
    /// `None` where a dimension's validation labels are constant.
    pub best_val_r2: Option<f64>,
    pub train_seconds: f64,
}

/// Training inputs: row-major `features` `[n, d_in]` and `labels` `[n, n_out]`,
/// with the rows to train on and the rows for early stopping.
#[derive(Clone, Copy, Debug)]
pub struct FitData<'a> {
    pub features: &'a [f32],
    pub d_in: usize,
    pub labels: &'a [f32],
    pub n_out: usize,
    pub train_rows: &'a [usize],
    pub val_rows: &'a [usize],
}

/// Random streams of one training run, derived from (seed, stream base).
const STREAM_INIT: u64 = 0;
const STREAM_SHUFFLE: u64 = 1;
const STREAM_DROPOUT: u64 = 2;

/// R² of `pred` against `y` (both `[rows, n_out]`): the mean over
/// dimensions of each dimension's R², the very function the evaluation
/// scores a fold with, so under the study's protocol the kept epoch's value
/// equals the fold's test R². `None` if a dimension's labels are constant.
pub fn val_r2(y: &[f32], pred: &[f32], n_out: usize) -> Option<f64> {
    let oof = crate::metrics::OutOfFold {
        y_true: y,
        y_pred: pred,
        n_dims: n_out,
    };
    let rows: Vec<usize> = (0..y.len() / n_out).collect();
    oof.dim_mean_r2(&rows)
}

/// What early stopping minimises: the validation loss (ours), or −R² (the
/// study's "patience 15 on validation R²"). NaN never counts as better.
pub(crate) fn stop_score(validation: Validation, loss: f64, r2: Option<f64>) -> f64 {
    match validation {
        Validation::HeldOutPieces => loss,
        Validation::TestFold => r2.map_or(f64::NAN, |r| -r),
    }
}

fn gather(src: &[f32], width: usize, rows: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * width);
    for &r in rows {
        out.extend_from_slice(&src[r * width..(r + 1) * width]);
    }
    out
}

/// Trains a head. `stream` separates the random streams of runs sharing a
/// seed (e.g. the folds of a CV). Single-threaded and bit-reproducible.
///
/// Each epoch shuffles the training rows and takes mini-batches of
/// `batch_size` (the last one may be smaller, like PyTorch's default
/// `drop_last=False`). After each epoch the *validation loss* is the
/// configured loss on all validation rows at once, in eval mode (no
/// dropout): CCC over the whole split, and for the uncertainty loss
/// including its 0.5·s_d terms. Training stops after `patience` epochs
/// without a strictly lower validation loss (under `validation =
/// "test_fold"`: a strictly higher validation R², [`stop_score`]), and the
/// weights of the best epoch are returned. Features are standardised with statistics of the
/// training rows only (not validation, not test).
pub fn fit(cfg: &HeadConfig, data: &FitData, stream: u64) -> Result<(TrainedHead, FitReport)> {
    cfg.validate()?;
    let FitData {
        features,
        d_in,
        labels,
        n_out,
        train_rows,
        val_rows,
    } = *data;
    ensure!(!train_rows.is_empty(), "no training rows");
    ensure!(!val_rows.is_empty(), "no validation rows");
    let start = Instant::now();
    let standardizer = if cfg.standardize {
        Standardizer::fit(features, d_in, train_rows)
    } else {
        Standardizer::identity(d_in)
    };
    let x_train = standardizer.apply_rows(features, train_rows);
    let y_train = gather(labels, n_out, train_rows);
    let x_val = standardizer.apply_rows(features, val_rows);
    let y_val = gather(labels, n_out, val_rows);

    let net = Net::new(cfg, d_in, n_out);
    let loss = Loss {
        kind: cfg.loss,
        ccc_weight: cfg.ccc_weight as f64,
        n_out,
    };
    let n_net = net.layout().total;
    // θ = network parameters followed by the loss's own (log-variances, init 0).
    let mut theta = net.init(&mut Rng::new(cfg.seed, stream + STREAM_INIT));
    theta.resize(n_net + loss.n_params(), 0.0);
    let mut grad = vec![0f32; theta.len()];
    let mut adam = Adam::new(theta.len(), cfg.lr, cfg.weight_decay, cfg.weight_decay_mode);
    let mut shuffle_rng = Rng::new(cfg.seed, stream + STREAM_SHUFFLE);
    let mut dropout_rng = Rng::new(cfg.seed, stream + STREAM_DROPOUT);

    let n = train_rows.len();
    let mut order: Vec<usize> = (0..n).collect();
    let mut cache = Cache::default();
    let (mut xb, mut yb) = (Vec::new(), Vec::new());
    let mut d_pred = Vec::new();
    // (score, epoch, θ, loss, R²) of the best epoch so far.
    let mut best = (f64::INFINITY, 0usize, theta.clone(), f64::NAN, None);
    let mut since_best = 0;
    let mut epochs_run = 0;
    for epoch in 1..=cfg.max_epochs {
        epochs_run = epoch;
        shuffle_rng.shuffle(&mut order);
        for batch in order.chunks(cfg.batch_size) {
            xb.clear();
            yb.clear();
            for &i in batch {
                xb.extend_from_slice(&x_train[i * d_in..(i + 1) * d_in]);
                yb.extend_from_slice(&y_train[i * n_out..(i + 1) * n_out]);
            }
            let (params, loss_params) = theta.split_at(n_net);
            net.forward(params, &xb, batch.len(), Some(&mut dropout_rng), &mut cache);
            d_pred.resize(cache.out.len(), 0.0);
            let (g_net, g_loss) = grad.split_at_mut(n_net);
            let value = loss.eval(&cache.out, &yb, loss_params, Some((&mut d_pred, g_loss)));
            if !value.is_finite() {
                bail!("training diverged: loss {value} at epoch {epoch}");
            }
            net.backward(params, &xb, &mut cache, &d_pred, g_net);
            adam.step(&mut theta, &grad);
        }
        let (params, loss_params) = theta.split_at(n_net);
        let val_pred = net.predict(params, &x_val);
        let val_loss = loss.eval(&val_pred, &y_val, loss_params, None);
        let r2 = val_r2(&y_val, &val_pred, n_out);
        let score = stop_score(cfg.validation, val_loss, r2);
        if score < best.0 {
            best = (score, epoch, theta.clone(), val_loss, r2);
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= cfg.patience {
                break;
            }
        }
    }
    let (_, best_epoch, mut best_theta, best_val_loss, best_val_r2) = best;
    ensure!(
        best_epoch > 0,
        "validation {} was never finite",
        match cfg.validation {
            Validation::HeldOutPieces => "loss",
            Validation::TestFold => "R²",
        }
    );
    let loss_params = best_theta.split_off(n_net);
    let head = TrainedHead {
        config: cfg.clone(),
        d_in,
        n_out,
        standardizer,
        params: best_theta,
        loss_params,
    };
    let report = FitReport {
        epochs_run,
        best_epoch,
        best_val_loss,
        best_val_r2,
        train_seconds: start.elapsed().as_secs_f64(),
    };
    Ok((head, report))
}
