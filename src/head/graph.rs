//! Training the autodiff heads ([`kinds`](super::kinds)): the same protocol
//! as the hand-written [`fit`](super::fit) — standardisation on the training
//! rows, shuffled mini-batches, the configured loss (one implementation,
//! [`Loss`]), Adam from [`adam`](super::adam), early stopping on the
//! validation loss (or R², [`stop_score`]) with the best weights restored — plus what only these
//! heads offer: the cosine schedule, global gradient-norm clipping and the
//! auxiliary contrastive loss.
//!
//! The configured loss and its gradient w.r.t. the predictions come from
//! [`Loss::eval`] (f64 sums); autodiff carries that gradient into the
//! network by backpropagating Σ pred ⊙ ∂L/∂pred, plus λ·contrastive.
//! Single-threaded draws from the seeded [`Rng`] and candle's CPU kernels,
//! whose results do not depend on the thread count, make runs bit-identical.

use std::time::Instant;

use anyhow::{Result, bail, ensure};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::adam::Adam;
use super::config::{HeadConfig, LrSchedule};
use super::frames::HeadInput;
use super::kinds::{InputDims, Model};
use super::loss::Loss;
use super::nn::contrastive::kl_loss;
use super::train::{FitReport, Standardizer, stop_score, val_r2};
use crate::rng::Rng;

const STREAM_INIT: u64 = 0;
const STREAM_SHUFFLE: u64 = 1;
const STREAM_DROPOUT: u64 = 2;
/// Clips per forward pass when predicting.
const PREDICT_CHUNK: usize = 64;

/// A trained autodiff head: everything needed to score new inputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraphHead {
    pub config: HeadConfig,
    pub dims: InputDims,
    pub n_out: usize,
    pub standardizers: Vec<Standardizer>,
    pub params: Vec<f32>,
    /// Non-trainable state (BatchNorm running statistics).
    pub buffers: Vec<f32>,
    pub loss_params: Vec<f32>,
}

impl GraphHead {
    /// The network its config builds, before its weights are set.
    fn empty_model(&self) -> Result<Model> {
        Model::new(
            &self.config,
            self.dims,
            self.n_out,
            DType::F32,
            Rng::new(0, 0),
        )
    }

    fn model(&self) -> Result<Model> {
        let m = self.empty_model()?;
        m.params.set_flat(&self.params)?;
        m.params.set_buffers_flat(&self.buffers)?;
        Ok(m)
    }

    /// Checks the kept parameters and buffers against what the config and
    /// input widths build (a head read back from a file).
    pub fn check_shapes(&self) -> Result<()> {
        let m = self.empty_model()?;
        let (params, buffers) = (m.params.len(), m.params.buffers_flat()?.len());
        ensure!(
            self.params.len() == params && self.buffers.len() == buffers,
            "{} parameters and {} buffer values; a {:?} head on inputs {:?} has {params} and {buffers}",
            self.params.len(),
            self.buffers.len(),
            self.config.arch.name(),
            self.dims
        );
        Ok(())
    }

    /// Predictions `[rows.len(), n_out]` for clips `rows` of `input`.
    pub fn predict(&self, input: &HeadInput, rows: &[usize]) -> Result<Vec<f32>> {
        ensure!(
            input.dims() == self.dims,
            "input widths {:?} differ from the head's {:?}",
            input.dims(),
            self.dims
        );
        predict_rows(&self.model()?, input, rows, &self.standardizers)
    }
}

fn predict_rows(
    model: &Model,
    input: &HeadInput,
    rows: &[usize],
    std: &[Standardizer],
) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    for chunk in rows.chunks(PREDICT_CHUNK) {
        let batch = input.batch(chunk, std, DType::F32)?;
        let (pred, _) = model.forward(&batch, None)?;
        out.extend(pred.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(out)
}

/// Learning rate of 0-based epoch `e`.
pub fn lr_at(cfg: &HeadConfig, e: usize) -> f32 {
    match cfg.lr_schedule {
        LrSchedule::Constant => cfg.lr,
        LrSchedule::Cosine => {
            let cos = (std::f64::consts::PI * e as f64 / cfg.max_epochs as f64).cos();
            (cfg.lr_floor as f64 + (cfg.lr - cfg.lr_floor) as f64 * (1.0 + cos) / 2.0) as f32
        }
    }
}

/// Contrastive weight λ of 0-based epoch `e`: weight · decay^(e / max_epochs)
/// (the study's D10d: 0.5 · 0.1^(e/200)).
pub fn contrastive_weight_at(cfg: &HeadConfig, e: usize) -> f64 {
    cfg.contrastive_weight as f64
        * (cfg.contrastive_decay as f64).powf(e as f64 / cfg.max_epochs as f64)
}

/// Scales `grad` so its global L2 norm is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_` (coefficient max/(norm + 1e-6), capped
/// at 1). Returns the norm before clipping.
pub fn clip_grad_norm(grad: &mut [f32], max_norm: f32) -> f64 {
    let norm = grad
        .iter()
        .map(|&g| g as f64 * g as f64)
        .sum::<f64>()
        .sqrt();
    if max_norm > 0.0 {
        let coef = max_norm as f64 / (norm + 1e-6);
        if coef < 1.0 {
            for g in grad.iter_mut() {
                *g = (*g as f64 * coef) as f32;
            }
        }
    }
    norm
}

/// Trains an autodiff head on clips `train_rows`, early-stopping on
/// `val_rows`. `stream` separates the random streams of runs sharing a seed.
pub fn fit_graph(
    cfg: &HeadConfig,
    input: &HeadInput,
    labels: &[f32],
    n_out: usize,
    train_rows: &[usize],
    val_rows: &[usize],
    stream: u64,
) -> Result<(GraphHead, FitReport)> {
    cfg.validate()?;
    ensure!(!train_rows.is_empty(), "no training rows");
    ensure!(!val_rows.is_empty(), "no validation rows");
    let start = Instant::now();
    let std = input.standardizers(train_rows, cfg.standardize);
    let dims = input.dims();
    let model = Model::new(
        cfg,
        dims,
        n_out,
        DType::F32,
        Rng::new(cfg.seed, stream + STREAM_INIT),
    )?;
    let loss = Loss {
        kind: cfg.loss,
        ccc_weight: cfg.ccc_weight as f64,
        n_out,
    };
    let n_net = model.params.len();
    let mut theta = model.params.flat()?;
    theta.resize(n_net + loss.n_params(), 0.0);
    let mut grad = vec![0f32; theta.len()];
    let mut adam = Adam::new(theta.len(), cfg.lr, cfg.weight_decay, cfg.weight_decay_mode);
    let mut shuffle_rng = Rng::new(cfg.seed, stream + STREAM_SHUFFLE);
    let mut dropout_rng = Rng::new(cfg.seed, stream + STREAM_DROPOUT);
    let labels_of = |rows: &[usize]| -> Vec<f32> {
        rows.iter()
            .flat_map(|&r| labels[r * n_out..(r + 1) * n_out].iter().copied())
            .collect()
    };
    let y_val = labels_of(val_rows);
    let mut order: Vec<usize> = train_rows.to_vec();
    let mut d_pred = Vec::new();
    // (score, epoch, θ, buffers, loss, R²) of the best epoch so far.
    let mut best = (
        f64::INFINITY,
        0usize,
        theta.clone(),
        model.params.buffers_flat()?,
        f64::NAN,
        None,
    );
    let (mut since_best, mut epochs_run) = (0, 0);
    for epoch in 1..=cfg.max_epochs {
        epochs_run = epoch;
        adam.set_lr(lr_at(cfg, epoch - 1));
        let lambda = contrastive_weight_at(cfg, epoch - 1);
        shuffle_rng.shuffle(&mut order);
        for rows in order.chunks(cfg.batch_size) {
            let batch = input.batch(rows, &std, DType::F32)?;
            let (pred, repr) = model.forward(&batch, Some(&mut dropout_rng))?;
            let p: Vec<f32> = pred.flatten_all()?.to_vec1()?;
            let yb = labels_of(rows);
            d_pred.resize(p.len(), 0.0);
            let (params, loss_params) = theta.split_at(n_net);
            debug_assert_eq!(params.len(), n_net);
            let (_, g_loss) = grad.split_at_mut(n_net);
            let value = loss.eval(&p, &yb, loss_params, Some((&mut d_pred, g_loss)));
            if !value.is_finite() {
                bail!("training diverged: loss {value} at epoch {epoch}");
            }
            let seed = Tensor::from_vec(d_pred.clone(), pred.dims(), &Device::Cpu)?;
            let mut objective = (pred * seed)?.sum_all()?;
            if lambda > 0.0
                && let Some(z) = model.embed(&repr)?
            {
                let y = Tensor::from_vec(yb, (rows.len(), n_out), &Device::Cpu)?;
                let c = kl_loss(&z, &y, cfg.contrastive_temperature as f64)?;
                let cv = c.to_scalar::<f32>()?;
                if !cv.is_finite() {
                    bail!("training diverged: contrastive loss {cv} at epoch {epoch}");
                }
                objective = (objective + (c * lambda)?)?;
            }
            let grads = objective.backward()?;
            model.params.grads_flat(&grads, &mut grad[..n_net])?;
            clip_grad_norm(&mut grad, cfg.grad_clip);
            adam.step(&mut theta, &grad);
            model.params.set_flat(&theta[..n_net])?;
        }
        let val_pred = predict_rows(&model, input, val_rows, &std)?;
        let val_loss = loss.eval(&val_pred, &y_val, &theta[n_net..], None);
        let r2 = val_r2(&y_val, &val_pred, n_out);
        let score = stop_score(cfg.validation, val_loss, r2);
        if score < best.0 {
            let buffers = model.params.buffers_flat()?;
            best = (score, epoch, theta.clone(), buffers, val_loss, r2);
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= cfg.patience {
                break;
            }
        }
    }
    let (_, best_epoch, mut best_theta, buffers, best_val_loss, best_val_r2) = best;
    ensure!(best_epoch > 0, "validation loss (or R²) was never finite");
    let loss_params = best_theta.split_off(n_net);
    let head = GraphHead {
        config: cfg.clone(),
        dims,
        n_out,
        standardizers: std,
        params: best_theta,
        buffers,
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
