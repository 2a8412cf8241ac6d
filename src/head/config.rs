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

/// Everything that defines a head and its training. Defaults are the study's
/// numbers; unknown TOML keys are errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeadConfig {
    pub arch: Arch,
    /// Width of the hidden (trunk) layer.
    pub hidden: usize,
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
    /// Standardise features with the training split's mean and std.
    pub standardize: bool,
}

impl Default for HeadConfig {
    fn default() -> Self {
        HeadConfig {
            arch: Arch::Mlp,
            hidden: 512,
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
        }
    }
}

impl HeadConfig {
    /// Rejects settings that cannot train, naming the key.
    pub fn validate(&self) -> Result<()> {
        use crate::bounds::{BATCH, EPOCHS, HEAD_WIDTH, check};
        check("head.hidden", self.hidden, &HEAD_WIDTH)?;
        check("head.head_hidden", self.head_hidden, &HEAD_WIDTH)?;
        check("head.batch_size", self.batch_size, &BATCH)?;
        check("head.max_epochs", self.max_epochs, &EPOCHS)?;
        check("head.patience", self.patience, &(0..=*EPOCHS.end()))?;
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
            (c.hidden, c.batch_size, c.max_epochs, c.patience, c.seed),
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
        assert_eq!(c.hidden, 512);
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
