//! The autodiff heads ([`kinds`](super::kinds): sequence, fusion, mel-CNN,
//! and anything with the contrastive loss) as a [`Trainable`] for the one
//! fit loop ([`fit_loop`]: standardisation on the training rows, shuffled
//! mini-batches, the configured loss, Adam with the schedule and clipping,
//! early stopping with the best weights kept). What only these heads add is
//! here: candle's autodiff carries ∂L/∂pred into the network by
//! backpropagating Σ pred ⊙ ∂L/∂pred, plus λ·contrastive. On pooled linear
//! and MLP heads it is the tested oracle of the hand-written path.
//! Single-threaded draws from the seeded [`Rng`] and candle's CPU kernels,
//! whose results do not depend on the thread count, make runs bit-identical.

use anyhow::{Result, bail, ensure};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::config::HeadConfig;
use super::frames::HeadInput;
use super::kinds::{InputDims, Model};
use super::nn::contrastive::kl_loss;
use super::train::{FitReport, Standardizer, Trainable, fit_loop};
use crate::rng::Rng;

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

/// Contrastive weight λ of 0-based epoch `e`: weight · decay^(e / max_epochs)
/// (the study's D10d: 0.5 · 0.1^(e/200)).
pub fn contrastive_weight_at(cfg: &HeadConfig, e: usize) -> f64 {
    cfg.contrastive_weight as f64
        * (cfg.contrastive_decay as f64).powf(e as f64 / cfg.max_epochs as f64)
}

/// An autodiff head over its input's clips, for the [fit loop](fit_loop).
struct GraphTrainer<'a> {
    cfg: &'a HeadConfig,
    input: &'a HeadInput,
    std: &'a [Standardizer],
    dims: InputDims,
    n_out: usize,
    /// Built by `init` (its parameters are drawn on construction).
    model: Option<Model>,
    /// The last training forward's (predictions, pooled representation).
    last: Option<(Tensor, Tensor)>,
}

impl GraphTrainer<'_> {
    fn model(&self) -> Result<&Model> {
        self.model
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the model is built by init"))
    }
}

impl Trainable for GraphTrainer<'_> {
    fn init(&mut self, rng: &mut Rng) -> Result<Vec<f32>> {
        let model = Model::new(self.cfg, self.dims, self.n_out, DType::F32, rng.clone())?;
        let theta = model.params.flat()?;
        self.model = Some(model);
        Ok(theta)
    }

    fn forward(&mut self, theta: &[f32], rows: &[usize], dropout: &mut Rng) -> Result<Vec<f32>> {
        let model = self.model()?;
        model.params.set_flat(theta)?;
        let batch = self.input.batch(rows, self.std, DType::F32)?;
        let (pred, repr) = model.forward(&batch, Some(dropout))?;
        let p = pred.flatten_all()?.to_vec1()?;
        self.last = Some((pred, repr));
        Ok(p)
    }

    /// Backpropagates Σ pred ⊙ ∂L/∂pred, plus λ·contrastive.
    fn backward(
        &mut self,
        _theta: &[f32],
        d_pred: &[f32],
        y: &[f32],
        epoch: usize,
        grad: &mut [f32],
    ) -> Result<()> {
        let (pred, repr) = self
            .last
            .take()
            .ok_or_else(|| anyhow::anyhow!("backward before forward"))?;
        let model = self.model()?;
        let seed = Tensor::from_vec(d_pred.to_vec(), pred.dims(), &Device::Cpu)?;
        let mut objective = (pred * seed)?.sum_all()?;
        let lambda = contrastive_weight_at(self.cfg, epoch);
        if lambda > 0.0
            && let Some(z) = model.embed(&repr)?
        {
            let rows = y.len() / self.n_out;
            let y = Tensor::from_vec(y.to_vec(), (rows, self.n_out), &Device::Cpu)?;
            let c = kl_loss(&z, &y, self.cfg.contrastive_temperature as f64)?;
            let cv = c.to_scalar::<f32>()?;
            if !cv.is_finite() {
                bail!(
                    "training diverged: contrastive loss {cv} at epoch {}",
                    epoch + 1
                );
            }
            objective = (objective + (c * lambda)?)?;
        }
        let grads = objective.backward()?;
        model.params.grads_flat(&grads, grad)?;
        Ok(())
    }

    fn predict(&mut self, theta: &[f32], rows: &[usize]) -> Result<Vec<f32>> {
        let model = self.model()?;
        model.params.set_flat(theta)?;
        predict_rows(model, self.input, rows, self.std)
    }

    fn buffers(&self) -> Result<Vec<f32>> {
        self.model()?.params.buffers_flat()
    }
}

/// Trains an autodiff head on clips `train_rows`, early-stopping on
/// `val_rows` ([`fit_loop`]'s protocol). `stream` separates the random
/// streams of runs sharing a seed.
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
    let std = input.standardizers(train_rows, cfg.standardize);
    let dims = input.dims();
    let mut trainer = GraphTrainer {
        cfg,
        input,
        std: &std,
        dims,
        n_out,
        model: None,
        last: None,
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
    let head = GraphHead {
        config: cfg.clone(),
        dims,
        n_out,
        standardizers: std,
        params: fitted.params,
        buffers: fitted.buffers,
        loss_params: fitted.loss_params,
    };
    Ok((head, fitted.report))
}
