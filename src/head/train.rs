//! Training one head on given train/validation rows: the one fit loop every
//! head kind goes through ([`fit_loop`] over a [`Trainable`]: mini-batch
//! Adam with the lr schedule and clipping, early stopping on the validation
//! loss or, under the study's protocol, R², the best weights kept), and the
//! hand-written linear/MLP heads on it ([`fit`]).

use std::time::Instant;

use anyhow::{Result, bail, ensure};
use serde::{Deserialize, Serialize};

use super::adam::{Adam, clip_grad_norm, lr_at};
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
/// study's "patience 15 on validation R²", also what `held_out_epoch`
/// chooses its epoch by). NaN never counts as better.
pub(crate) fn stop_score(validation: Validation, loss: f64, r2: Option<f64>) -> f64 {
    match validation {
        Validation::HeldOutPieces => loss,
        Validation::TestFold | Validation::HeldOutEpoch => r2.map_or(f64::NAN, |r| -r),
    }
}

fn gather(src: &[f32], width: usize, rows: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * width);
    for &r in rows {
        out.extend_from_slice(&src[r * width..(r + 1) * width]);
    }
    out
}

/// A head the [fit loop](fit_loop) can train: a network behind one flat
/// parameter vector, fed clips by their row index. The hand-written
/// linear/MLP heads ([`Net`]) and the autodiff ones
/// ([`graph`](super::graph)) are both this; the protocol is written once.
pub(crate) trait Trainable {
    /// The initial network parameters, drawn from `rng`.
    fn init(&mut self, rng: &mut Rng) -> Result<Vec<f32>>;
    /// Training-mode predictions `[rows.len(), n_out]` for clips `rows`,
    /// keeping what [`Trainable::backward`] needs.
    fn forward(&mut self, theta: &[f32], rows: &[usize], dropout: &mut Rng) -> Result<Vec<f32>>;
    /// Into `grad`: the gradient w.r.t. the network parameters of the last
    /// forward's Σ pred ⊙ `d_pred`, plus any auxiliary loss the head adds at
    /// 0-based `epoch` on the batch's labels `y`.
    fn backward(
        &mut self,
        theta: &[f32],
        d_pred: &[f32],
        y: &[f32],
        epoch: usize,
        grad: &mut [f32],
    ) -> Result<()>;
    /// Eval-mode predictions `[rows.len(), n_out]`.
    fn predict(&mut self, theta: &[f32], rows: &[usize]) -> Result<Vec<f32>>;
    /// Non-trainable state kept with the best epoch (BatchNorm statistics).
    fn buffers(&self) -> Result<Vec<f32>> {
        Ok(Vec::new())
    }
}

/// What the fit loop keeps: the best epoch's network parameters, buffers
/// and loss parameters (the uncertainty loss's log-variances).
pub(crate) struct Fitted {
    pub params: Vec<f32>,
    pub buffers: Vec<f32>,
    pub loss_params: Vec<f32>,
    pub report: FitReport,
}

/// The one training protocol of every head. `stream` separates the random
/// streams of runs sharing a seed (e.g. the folds of a CV). Single-threaded
/// draws from the seeded [`Rng`], so runs are reproducible bit for bit.
///
/// Each epoch sets the learning rate of the schedule, shuffles the training
/// rows and takes mini-batches of `batch_size` (the last one may be smaller,
/// like PyTorch's default `drop_last=False`); each step clips the gradient's
/// global norm (if `grad_clip`) before Adam. After each epoch the
/// *validation loss* is the configured loss on all validation rows at once,
/// in eval mode (no dropout): CCC over the whole split, and for the
/// uncertainty loss including its 0.5·s_d terms. Training stops after
/// `patience` epochs without a strictly lower validation loss (under
/// `validation = "test_fold"` or `"held_out_epoch"`: a strictly higher
/// validation R², [`stop_score`]), and the best epoch's weights are kept.
/// With `cfg.run_epochs = Some(e)` it trains exactly `e` epochs of the same
/// schedule, looks at no validation rows and keeps the last.
pub(crate) fn fit_loop<M: Trainable>(
    cfg: &HeadConfig,
    model: &mut M,
    labels: &[f32],
    n_out: usize,
    train_rows: &[usize],
    val_rows: &[usize],
    stream: u64,
) -> Result<Fitted> {
    ensure!(!train_rows.is_empty(), "no training rows");
    ensure!(
        !val_rows.is_empty() || cfg.run_epochs.is_some(),
        "no validation rows"
    );
    let start = Instant::now();
    let loss = Loss {
        kind: cfg.loss,
        ccc_weight: cfg.ccc_weight as f64,
        n_out,
    };
    // θ = network parameters followed by the loss's own (log-variances, init 0).
    let mut theta = model.init(&mut Rng::new(cfg.seed, stream + STREAM_INIT))?;
    let n_net = theta.len();
    theta.resize(n_net + loss.n_params(), 0.0);
    let mut grad = vec![0f32; theta.len()];
    let mut adam = Adam::new(theta.len(), cfg.lr, cfg.weight_decay, cfg.weight_decay_mode);
    let mut shuffle_rng = Rng::new(cfg.seed, stream + STREAM_SHUFFLE);
    let mut dropout_rng = Rng::new(cfg.seed, stream + STREAM_DROPOUT);
    let y_val = gather(labels, n_out, val_rows);
    let mut order = train_rows.to_vec();
    let mut yb = Vec::new();
    let mut d_pred = Vec::new();
    // (score, epoch, θ, buffers, loss, R²) of the best epoch so far.
    let mut best = (
        f64::INFINITY,
        0usize,
        theta.clone(),
        Vec::new(),
        f64::NAN,
        None,
    );
    let (mut since_best, mut epochs_run) = (0, 0);
    for epoch in 1..=cfg.run_epochs.unwrap_or(cfg.max_epochs) {
        epochs_run = epoch;
        adam.set_lr(lr_at(cfg, epoch - 1));
        shuffle_rng.shuffle(&mut order);
        for rows in order.chunks(cfg.batch_size) {
            yb.clear();
            for &r in rows {
                yb.extend_from_slice(&labels[r * n_out..(r + 1) * n_out]);
            }
            let (params, loss_params) = theta.split_at(n_net);
            let pred = model.forward(params, rows, &mut dropout_rng)?;
            d_pred.resize(pred.len(), 0.0);
            let (g_net, g_loss) = grad.split_at_mut(n_net);
            let value = loss.eval(&pred, &yb, loss_params, Some((&mut d_pred, g_loss)));
            if !value.is_finite() {
                bail!("training diverged: loss {value} at epoch {epoch}");
            }
            model.backward(params, &d_pred, &yb, epoch - 1, g_net)?;
            clip_grad_norm(&mut grad, cfg.grad_clip);
            adam.step(&mut theta, &grad);
        }
        if cfg.run_epochs.is_some() {
            continue;
        }
        let (params, loss_params) = theta.split_at(n_net);
        let val_pred = model.predict(params, val_rows)?;
        let val_loss = loss.eval(&val_pred, &y_val, loss_params, None);
        let r2 = val_r2(&y_val, &val_pred, n_out);
        let score = stop_score(cfg.validation, val_loss, r2);
        if score < best.0 {
            best = (score, epoch, theta.clone(), model.buffers()?, val_loss, r2);
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= cfg.patience {
                break;
            }
        }
    }
    if cfg.run_epochs.is_some() {
        ensure!(epochs_run > 0, "run_epochs = 0: nothing to train");
        best = (
            f64::NAN,
            epochs_run,
            theta,
            model.buffers()?,
            f64::NAN,
            None,
        );
    }
    let (_, best_epoch, mut params, buffers, best_val_loss, best_val_r2) = best;
    ensure!(
        best_epoch > 0,
        "validation {} was never finite",
        match cfg.validation {
            Validation::HeldOutPieces => "loss",
            Validation::TestFold | Validation::HeldOutEpoch => "R²",
        }
    );
    let loss_params = params.split_off(n_net);
    Ok(Fitted {
        params,
        buffers,
        loss_params,
        report: FitReport {
            epochs_run,
            best_epoch,
            best_val_loss,
            best_val_r2,
            train_seconds: start.elapsed().as_secs_f64(),
        },
    })
}

/// A hand-written head on pooled vectors, standardised once.
struct NetTrainer {
    net: Net,
    /// Every clip's standardised features `[n, d_in]`.
    x: Vec<f32>,
    cache: Cache,
    xb: Vec<f32>,
}

impl NetTrainer {
    fn gather(&mut self, rows: &[usize]) {
        let d = self.net.d_in;
        self.xb.clear();
        for &r in rows {
            self.xb.extend_from_slice(&self.x[r * d..(r + 1) * d]);
        }
    }
}

impl Trainable for NetTrainer {
    fn init(&mut self, rng: &mut Rng) -> Result<Vec<f32>> {
        Ok(self.net.init(rng))
    }

    fn forward(&mut self, theta: &[f32], rows: &[usize], dropout: &mut Rng) -> Result<Vec<f32>> {
        self.gather(rows);
        self.net
            .forward(theta, &self.xb, rows.len(), Some(dropout), &mut self.cache);
        Ok(self.cache.out.clone())
    }

    fn backward(
        &mut self,
        theta: &[f32],
        d_pred: &[f32],
        _y: &[f32],
        _epoch: usize,
        grad: &mut [f32],
    ) -> Result<()> {
        self.net
            .backward(theta, &self.xb, &mut self.cache, d_pred, grad);
        Ok(())
    }

    fn predict(&mut self, theta: &[f32], rows: &[usize]) -> Result<Vec<f32>> {
        self.gather(rows);
        Ok(self.net.predict(theta, &self.xb))
    }
}

/// Trains a linear or MLP head on pooled vectors ([`fit_loop`]'s protocol);
/// features are standardised with statistics of the training rows only
/// (not validation, not test).
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
    let standardizer = if cfg.standardize {
        Standardizer::fit(features, d_in, train_rows)
    } else {
        Standardizer::identity(d_in)
    };
    let all: Vec<usize> = (0..features.len() / d_in).collect();
    let mut trainer = NetTrainer {
        net: Net::new(cfg, d_in, n_out),
        x: standardizer.apply_rows(features, &all),
        cache: Cache::default(),
        xb: Vec::new(),
    };
    let fitted = fit_loop(
        cfg,
        &mut trainer,
        labels,
        n_out,
        train_rows,
        val_rows,
        stream,
    )?;
    let head = TrainedHead {
        config: cfg.clone(),
        d_in,
        n_out,
        standardizer,
        params: fitted.params,
        loss_params: fitted.loss_params,
    };
    Ok((head, fitted.report))
}
