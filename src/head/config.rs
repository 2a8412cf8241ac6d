//! Head and training settings, as they appear in `pipeline.toml`.

use anyhow::{Result, ensure};
use serde::{Deserialize, Serialize};

/// Network shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// Linear probe D → 19.
    Linear,
    /// D → hidden → act → dropout → 19.
    Mlp,
    /// Shared trunk D → hidden → act → dropout, then for each of the 19
    /// dimensions its own hidden → head_hidden → act → 1 (no dropout inside
    /// the small heads). The trunk learns shared features; each dimension
    /// gets its own nonlinearity instead of one shared output matrix.
    MlpPerDim,
    /// Frames: attention pooling → standard head (B2b).
    Attention,
    /// Frames: BiLSTM → attention pooling → standard head (B2c).
    Bilstm,
    /// Frames: pre-LN transformer encoder → attention pooling → head (D5).
    Transformer,
    /// Frames: `per_dim_dims` through BiLSTM → attention → their own head,
    /// the other dimensions from the masked mean → standard head (D3).
    PerDim,
    /// Frames of a spectrogram: conv blocks → global mean → head (A2).
    MelCnn,
    /// Two frame sets: each attention-pooled with its own head, averaged (D9).
    Ensemble,
    /// Two frame sets: each attention-pooled and projected, concatenated (D9b).
    Concat,
    /// Two frame sets: per-dimension sigmoid gate between projections (D9c).
    Gated,
}

impl Arch {
    /// What the head reads: a pooled vector, one frame set, or two.
    pub fn input(self) -> InputKind {
        match self {
            Arch::Linear | Arch::Mlp | Arch::MlpPerDim => InputKind::Pooled,
            Arch::Attention | Arch::Bilstm | Arch::Transformer | Arch::PerDim | Arch::MelCnn => {
                InputKind::Frames
            }
            Arch::Ensemble | Arch::Concat | Arch::Gated => InputKind::TwoFrames,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::Linear => "linear",
            Arch::Mlp => "mlp",
            Arch::MlpPerDim => "mlp_per_dim",
            Arch::Attention => "attention",
            Arch::Bilstm => "bilstm",
            Arch::Transformer => "transformer",
            Arch::PerDim => "per_dim",
            Arch::MelCnn => "mel_cnn",
            Arch::Ensemble => "ensemble",
            Arch::Concat => "concat",
            Arch::Gated => "gated",
        }
    }
}

/// The input a head kind reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    Pooled,
    Frames,
    TwoFrames,
}

/// Hidden widths of the standard head: one number (`hidden = 512`, the
/// hand-written MLP's one layer) or a list (`hidden = [512, 512]`).
/// Serialised as a number when it has one entry, so existing configs keep
/// their keys.
#[derive(Clone, Debug, PartialEq)]
pub struct Hidden(pub Vec<usize>);

impl Serialize for Hidden {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_u64(*one as u64),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Hidden {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(usize),
            Many(Vec<usize>),
        }
        Ok(Hidden(match OneOrMany::deserialize(d)? {
            OneOrMany::One(n) => vec![n],
            OneOrMany::Many(v) => v,
        }))
    }
}

/// Learning-rate schedule over epochs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    #[default]
    Constant,
    /// `CosineAnnealingLR(T_max = max_epochs, eta_min = lr_floor)` stepped
    /// once per epoch: lr_e = floor + (lr − floor)·(1 + cos(π·e/max_epochs))/2.
    Cosine,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Exact (erf) GELU, like `torch.nn.GELU()`.
    Gelu,
    Relu,
}

/// Activation applied to the 19 outputs.
///
/// PercePiano labels lie in [1/7, 1]. `Sigmoid` (the default) maps into
/// (0, 1), a range that covers every label while ruling out impossible
/// scores, and with PyTorch's default init it starts at 0.5 — already near
/// the label mean (~0.55) — so Adam at lr 1e-4 does not spend its first
/// hundreds of epochs moving output biases from 0 to 0.55 as a `Linear`
/// output would. Its gradient vanishes only at the extremes 0 and 1, which
/// the labels avoid except for the ceiling 1.0 that few clips reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputActivation {
    Sigmoid,
    Linear,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Mean squared error over all clips and dimensions.
    Mse,
    /// 1 − CCC, CCC per dimension over the batch, averaged over dimensions.
    Ccc,
    /// MSE + `ccc_weight` · (1 − CCC).
    Hybrid,
    /// Kendall et al. (2018): Σ_d 0.5·exp(−s_d)·MSE_d + 0.5·s_d with a learned
    /// log-variance s_d per dimension (initialised to 0).
    Uncertainty,
}

/// How Adam applies `weight_decay`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightDecay {
    /// Added to the gradient before the moments (`torch.optim.Adam`'s
    /// `weight_decay`, what the study used).
    L2,
    /// Subtracted from the weights outside the moments (AdamW).
    Decoupled,
}

/// Which clips early stopping and the choice of the kept epoch look at
/// (`[evaluation] validation`, or an experiment's `validation`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Validation {
    /// Ours: whole pieces held out from the training folds
    /// ([`split_train_val`](super::split_train_val)); early stopping on the
    /// configured loss. The test fold is never looked at while training.
    #[default]
    HeldOutPieces,
    /// The study's: the training folds all train, and early stopping and the
    /// kept epoch are chosen by R² on the test fold itself, the fold that is
    /// then scored. Its out-of-fold R² is optimistic by construction; it is
    /// here to measure by how much.
    TestFold,
    /// The study's training clips and criterion without its peek: the
    /// training folds less held-out pieces train until R² on those pieces
    /// stops improving (patience as configured); then a second fit on all
    /// the training folds runs exactly the epoch count that scored best,
    /// on the same learning-rate schedule, and keeps its last epoch. Beside
    /// `test_fold` on the same setup it splits the study's inflation into
    /// peeking and training-set size plus criterion.
    HeldOutEpoch,
}

impl Validation {
    pub fn name(self) -> &'static str {
        match self {
            Validation::HeldOutPieces => "held_out_pieces",
            Validation::TestFold => "test_fold",
            Validation::HeldOutEpoch => "held_out_epoch",
        }
    }
}

/// Everything that defines a head and its training. Defaults are the study's
/// numbers; unknown TOML keys are errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeadConfig {
    pub arch: Arch,
    /// Widths of the standard head's hidden layers (`512` or `[512, 512]`).
    pub hidden: Hidden,
    /// Width of each per-dimension head's hidden layer (`mlp_per_dim` only).
    pub head_hidden: usize,
    pub activation: Activation,
    /// Inverted dropout after the hidden activation (MLPs only).
    pub dropout: f32,
    pub output: OutputActivation,
    pub loss: LossKind,
    /// Weight of the (1 − CCC) term in the hybrid loss.
    pub ccc_weight: f32,
    pub lr: f32,
    pub weight_decay: f32,
    pub weight_decay_mode: WeightDecay,
    pub batch_size: usize,
    pub max_epochs: usize,
    /// Stop after this many epochs without a new best validation loss.
    pub patience: usize,
    pub seed: u64,
    /// Share of the training folds' pieces held out for early stopping.
    pub val_fraction: f32,
    /// Standardise features with the training split's mean and std (for
    /// frame sequences: per frame component over the training clips' frames).
    pub standardize: bool,

    // Keys of the autodiff heads. Left at their defaults they are not
    // serialised, so the keys of experiments that do not use them stay the same.
    /// Attention pooling's hidden width (default: input width / 4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attention_hidden: Option<usize>,
    /// BiLSTM layers (default 1 for `bilstm`, 2 for `per_dim`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lstm_layers: Option<usize>,
    /// Hidden units per direction.
    #[serde(skip_serializing_if = "is_default_lstm_hidden")]
    pub lstm_hidden: usize,
    /// Dropout between stacked LSTM layers.
    #[serde(skip_serializing_if = "is_default_dropout")]
    pub lstm_dropout: f32,
    #[serde(skip_serializing_if = "is_default_tf_layers")]
    pub transformer_layers: usize,
    #[serde(skip_serializing_if = "is_default_tf_heads")]
    pub transformer_heads: usize,
    #[serde(skip_serializing_if = "is_default_tf_ffn")]
    pub transformer_ffn: usize,
    /// Add sinusoidal positions before the transformer layers.
    #[serde(skip_serializing_if = "is_false")]
    pub positional_encoding: bool,
    /// `per_dim`: dimensions with their own sequence branch.
    #[serde(skip_serializing_if = "is_default_per_dim_dims")]
    pub per_dim_dims: Vec<String>,
    /// `per_dim`: hidden widths of the sequence branch's head.
    #[serde(skip_serializing_if = "is_default_per_dim_hidden")]
    pub per_dim_hidden: Vec<usize>,
    /// `mel_cnn`: channels of the conv blocks.
    #[serde(skip_serializing_if = "is_default_cnn_channels")]
    pub cnn_channels: Vec<usize>,
    /// `mel_cnn`: the first this many blocks end in a 2×2 max-pool.
    #[serde(skip_serializing_if = "is_default_cnn_pools")]
    pub cnn_pools: usize,
    /// `concat`, `gated`: projection width of each input.
    #[serde(skip_serializing_if = "is_default_fusion_dim")]
    pub fusion_dim: usize,
    /// `gated`: hidden width of each dimension's head.
    #[serde(skip_serializing_if = "is_default_gate_head_hidden")]
    pub gate_head_hidden: usize,
    /// Weight λ of the contrastive loss (0 = off).
    #[serde(skip_serializing_if = "is_zero")]
    pub contrastive_weight: f32,
    /// λ at epoch e (0-based) = contrastive_weight · contrastive_decay^(e / max_epochs).
    #[serde(skip_serializing_if = "is_one")]
    pub contrastive_decay: f32,
    #[serde(skip_serializing_if = "is_default_temperature")]
    pub contrastive_temperature: f32,
    /// Projection widths of the contrastive embedding.
    #[serde(skip_serializing_if = "is_default_projection")]
    pub contrastive_projection: Vec<usize>,
    #[serde(skip_serializing_if = "is_constant")]
    pub lr_schedule: LrSchedule,
    /// Floor of the cosine schedule.
    #[serde(skip_serializing_if = "is_default_lr_floor")]
    pub lr_floor: f32,
    /// Clip the gradient's global L2 norm to this (0 = off), as
    /// `torch.nn.utils.clip_grad_norm_`.
    #[serde(skip_serializing_if = "is_zero")]
    pub grad_clip: f32,
    /// The validation protocol. Not a `head` key: set from `[evaluation]
    /// validation` or the experiment's `validation` when the config loads
    /// ([`crate::config::Config::parse`]). Serialised only when it is the
    /// study's, so it is part of the train node's key without changing the
    /// keys of experiments on ours.
    #[serde(skip_deserializing, skip_serializing_if = "is_held_out")]
    pub validation: Validation,
    /// Set by the trainer, never by a config: train exactly this many
    /// epochs with no validation and keep the last (the second fit of
    /// `validation = "held_out_epoch"`).
    #[serde(skip)]
    pub run_epochs: Option<usize>,
}

fn is_held_out(v: &Validation) -> bool {
    *v == Validation::HeldOutPieces
}

fn is_default_lstm_hidden(v: &usize) -> bool {
    *v == 256
}
fn is_default_dropout(v: &f32) -> bool {
    *v == 0.2
}
fn is_default_tf_layers(v: &usize) -> bool {
    *v == 2
}
fn is_default_tf_heads(v: &usize) -> bool {
    *v == 8
}
fn is_default_tf_ffn(v: &usize) -> bool {
    *v == 2048
}
fn is_false(v: &bool) -> bool {
    !*v
}
fn default_per_dim_dims() -> Vec<String> {
    vec!["timing".into(), "pace".into()]
}
fn is_default_per_dim_dims(v: &[String]) -> bool {
    v == default_per_dim_dims().as_slice()
}
fn is_default_per_dim_hidden(v: &[usize]) -> bool {
    v == [256]
}
fn is_default_cnn_channels(v: &[usize]) -> bool {
    v == [32, 64, 128, 256]
}
fn is_default_cnn_pools(v: &usize) -> bool {
    *v == 3
}
fn is_default_fusion_dim(v: &usize) -> bool {
    *v == 512
}
fn is_default_gate_head_hidden(v: &usize) -> bool {
    *v == 256
}
fn is_zero(v: &f32) -> bool {
    *v == 0.0
}
fn is_one(v: &f32) -> bool {
    *v == 1.0
}
fn is_default_temperature(v: &f32) -> bool {
    *v == 0.07
}
fn is_default_projection(v: &[usize]) -> bool {
    v == [256, 128]
}
fn is_constant(v: &LrSchedule) -> bool {
    *v == LrSchedule::Constant
}
fn is_default_lr_floor(v: &f32) -> bool {
    *v == 1e-6
}

impl Default for HeadConfig {
    fn default() -> Self {
        HeadConfig {
            arch: Arch::Mlp,
            hidden: Hidden(vec![512]),
            head_hidden: 32,
            activation: Activation::Gelu,
            dropout: 0.2,
            output: OutputActivation::Sigmoid,
            loss: LossKind::Mse,
            ccc_weight: 0.5,
            lr: 1e-4,
            weight_decay: 1e-5,
            weight_decay_mode: WeightDecay::L2,
            batch_size: 64,
            max_epochs: 200,
            patience: 15,
            seed: 42,
            val_fraction: 0.15,
            standardize: true,
            attention_hidden: None,
            lstm_layers: None,
            lstm_hidden: 256,
            lstm_dropout: 0.2,
            transformer_layers: 2,
            transformer_heads: 8,
            transformer_ffn: 2048,
            positional_encoding: false,
            per_dim_dims: default_per_dim_dims(),
            per_dim_hidden: vec![256],
            cnn_channels: vec![32, 64, 128, 256],
            cnn_pools: 3,
            fusion_dim: 512,
            gate_head_hidden: 256,
            contrastive_weight: 0.0,
            contrastive_decay: 1.0,
            contrastive_temperature: 0.07,
            contrastive_projection: vec![256, 128],
            lr_schedule: LrSchedule::Constant,
            lr_floor: 1e-6,
            grad_clip: 0.0,
            validation: Validation::HeldOutPieces,
            run_epochs: None,
        }
    }
}

impl HeadConfig {
    /// Whether this head trains on the autodiff stack ([`super::graph`]):
    /// every sequence and fusion kind, and the contrastive loss. Pooled
    /// linear and MLP heads of any depth, with or without the cosine
    /// schedule and gradient clipping, take the hand-written path
    /// ([`super::fit`]), faster on these sizes (the default run's train stage
    /// took 213 s instead of 244 s when the study's MLPs moved to it).
    pub fn uses_autodiff(&self) -> bool {
        self.arch.input() != InputKind::Pooled || self.contrastive_weight > 0.0
    }

    /// Indices of `per_dim_dims` in PercePiano's order.
    pub fn per_dim_indices(&self) -> Result<Vec<usize>> {
        let mut out = Vec::new();
        for name in &self.per_dim_dims {
            let i = crate::dims::index_of(name).ok_or_else(|| {
                anyhow::anyhow!(
                    "head.per_dim_dims: unknown dimension {name:?} (known: {})",
                    crate::dims::DIMENSIONS.join(", ")
                )
            })?;
            ensure!(!out.contains(&i), "head.per_dim_dims names {name:?} twice");
            out.push(i);
        }
        Ok(out)
    }

    /// Rejects settings that cannot train, naming the key.
    pub fn validate(&self) -> Result<()> {
        use crate::bounds::{BATCH, EPOCHS, HEAD_WIDTH, check};
        for (key, widths) in [
            ("head.hidden", &self.hidden.0),
            ("head.per_dim_hidden", &self.per_dim_hidden),
            ("head.cnn_channels", &self.cnn_channels),
            ("head.contrastive_projection", &self.contrastive_projection),
        ] {
            for &w in widths.iter() {
                check(key, w, &HEAD_WIDTH)?;
            }
        }
        for (key, w) in [
            ("head.head_hidden", self.head_hidden),
            ("head.lstm_hidden", self.lstm_hidden),
            ("head.transformer_ffn", self.transformer_ffn),
            ("head.fusion_dim", self.fusion_dim),
            ("head.gate_head_hidden", self.gate_head_hidden),
        ] {
            check(key, w, &HEAD_WIDTH)?;
        }
        check("head.batch_size", self.batch_size, &BATCH)?;
        check("head.max_epochs", self.max_epochs, &EPOCHS)?;
        check("head.patience", self.patience, &(0..=*EPOCHS.end()))?;
        ensure!(
            !self.hidden.0.is_empty() && self.hidden.0.iter().all(|&h| h > 0),
            "head.hidden must be one width > 0 or a non-empty list of them"
        );
        if self.arch == Arch::MlpPerDim {
            ensure!(
                self.hidden.0.len() == 1 && self.contrastive_weight == 0.0,
                "head.arch = \"mlp_per_dim\" takes one hidden width (its trunk) and no contrastive_weight"
            );
        }
        if self.arch == Arch::PerDim {
            let idx = self.per_dim_indices()?;
            ensure!(
                !idx.is_empty() && idx.len() < crate::dims::N_DIMS,
                "head.per_dim_dims must name between 1 and 18 dimensions"
            );
            ensure!(
                !self.per_dim_hidden.is_empty() && self.per_dim_hidden.iter().all(|&h| h > 0),
                "head.per_dim_hidden must be a non-empty list of widths > 0"
            );
        }
        ensure!(self.lstm_hidden > 0, "head.lstm_hidden must be > 0");
        ensure!(self.lstm_layers != Some(0), "head.lstm_layers must be > 0");
        ensure!(
            (0.0..1.0).contains(&self.lstm_dropout),
            "head.lstm_dropout must be in [0, 1), got {}",
            self.lstm_dropout
        );
        ensure!(
            self.attention_hidden != Some(0),
            "head.attention_hidden must be > 0"
        );
        ensure!(
            self.transformer_layers > 0,
            "head.transformer_layers must be > 0"
        );
        ensure!(
            self.transformer_heads > 0,
            "head.transformer_heads must be > 0"
        );
        ensure!(self.transformer_ffn > 0, "head.transformer_ffn must be > 0");
        ensure!(
            !self.cnn_channels.is_empty() && self.cnn_channels.iter().all(|&c| c > 0),
            "head.cnn_channels must be a non-empty list of channel counts > 0"
        );
        ensure!(
            self.cnn_pools <= self.cnn_channels.len(),
            "head.cnn_pools = {} but there are {} conv blocks",
            self.cnn_pools,
            self.cnn_channels.len()
        );
        ensure!(self.fusion_dim > 0, "head.fusion_dim must be > 0");
        ensure!(
            self.gate_head_hidden > 0,
            "head.gate_head_hidden must be > 0"
        );
        ensure!(
            self.contrastive_weight >= 0.0 && self.contrastive_weight.is_finite(),
            "head.contrastive_weight must be >= 0"
        );
        ensure!(
            self.contrastive_decay > 0.0 && self.contrastive_decay.is_finite(),
            "head.contrastive_decay must be > 0"
        );
        ensure!(
            self.contrastive_temperature > 0.0,
            "head.contrastive_temperature must be > 0"
        );
        ensure!(
            !self.contrastive_projection.is_empty()
                && self.contrastive_projection.iter().all(|&w| w > 0),
            "head.contrastive_projection must be a non-empty list of widths > 0"
        );
        ensure!(
            self.lr_floor >= 0.0 && self.lr_floor <= self.lr,
            "head.lr_floor must be in [0, lr], got {}",
            self.lr_floor
        );
        ensure!(
            self.grad_clip >= 0.0 && self.grad_clip.is_finite(),
            "head.grad_clip must be >= 0 (0 = off)"
        );
        ensure!(self.head_hidden > 0, "head.head_hidden must be > 0");
        ensure!(
            (0.0..1.0).contains(&self.dropout),
            "head.dropout must be in [0, 1), got {}",
            self.dropout
        );
        ensure!(
            self.lr > 0.0 && self.lr.is_finite(),
            "head.lr must be > 0, got {}",
            self.lr
        );
        ensure!(
            self.weight_decay >= 0.0 && self.weight_decay.is_finite(),
            "head.weight_decay must be >= 0, got {}",
            self.weight_decay
        );
        ensure!(
            self.ccc_weight >= 0.0 && self.ccc_weight.is_finite(),
            "head.ccc_weight must be >= 0, got {}",
            self.ccc_weight
        );
        ensure!(
            self.val_fraction > 0.0 && self.val_fraction < 1.0,
            "head.val_fraction must be in (0, 1), got {}",
            self.val_fraction
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_study_numbers() {
        let c = HeadConfig::default();
        assert_eq!(
            (
                c.hidden.0[0],
                c.batch_size,
                c.max_epochs,
                c.patience,
                c.seed
            ),
            (512, 64, 200, 15, 42)
        );
        assert_eq!((c.lr, c.weight_decay, c.dropout), (1e-4, 1e-5, 0.2));
        assert_eq!(c.weight_decay_mode, WeightDecay::L2);
        c.validate().unwrap();
    }

    #[test]
    fn toml_overrides_and_rejects_unknown_keys() {
        let c: HeadConfig = toml::from_str(
            "arch = \"mlp_per_dim\"\nloss = \"uncertainty\"\nactivation = \"relu\"\nlr = 0.001\n",
        )
        .unwrap();
        assert_eq!(c.arch, Arch::MlpPerDim);
        assert_eq!(c.loss, LossKind::Uncertainty);
        assert_eq!(c.activation, Activation::Relu);
        assert_eq!(c.lr, 1e-3);
        assert_eq!(c.hidden, Hidden(vec![512]));
        let err = toml::from_str::<HeadConfig>("learning_rate = 0.1\n").unwrap_err();
        assert!(err.to_string().contains("learning_rate"), "{err}");
        let bad = HeadConfig {
            dropout: 1.0,
            ..Default::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("head.dropout")
        );
    }
}
