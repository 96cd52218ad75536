//! The optimizers a training run can use, built from one set of torch-style hyper-parameters.

use adamlab_optim::{AdamConfig, AdamConfigError, check_learning_rate};
use burn::optim::ModuleOptimizer;
use burn::optim::decay::WeightDecayConfig;
use std::fmt;

/// Which optimizer updates the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizerKind {
    /// adamlab's Adam ([`adamlab_optim::Adam`]), L2 weight decay.
    Adam,
    /// adamlab's Adam with decoupled weight decay, as `torch.optim.AdamW`.
    AdamW,
    /// burn's built-in `burn::optim::Adam`, for side-by-side comparison.
    BurnAdam,
    /// burn's built-in `burn::optim::AdamW`.
    BurnAdamW,
}

impl OptimizerKind {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Adam => "adam",
            Self::AdamW => "adamw",
            Self::BurnAdam => "burn-adam",
            Self::BurnAdamW => "burn-adamw",
        }
    }

    /// torch.optim's default weight decay for this algorithm: 0 for Adam, 1e-2 for AdamW.
    pub fn default_weight_decay(self) -> f64 {
        match self {
            Self::Adam | Self::BurnAdam => 0.0,
            Self::AdamW | Self::BurnAdamW => 1e-2,
        }
    }
}

impl fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An optimizer choice that cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptimizerError {
    /// A hyper-parameter is out of range.
    #[error(transparent)]
    Config(#[from] AdamConfigError),
    /// burn's built-in optimizers have no `maximize`.
    #[error("{0} has no `maximize` option: use `adam` or `adamw`")]
    MaximizeUnsupported(OptimizerKind),
}

/// Hyper-parameters with torch.optim's names and defaults, shared by every [`OptimizerKind`].
///
/// burn's built-ins get the same values: in particular eps 1e-8 (burn's own default is 1e-5), so
/// that a comparison measures the implementations, not their defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerSettings {
    /// Which optimizer.
    pub kind: OptimizerKind,
    /// Learning rate.
    pub lr: f64,
    /// β₁, default 0.9.
    pub beta1: f64,
    /// β₂, default 0.999.
    pub beta2: f64,
    /// ε, default 1e-8.
    pub eps: f64,
    /// Weight decay; `None` takes the algorithm's torch default.
    pub weight_decay: Option<f64>,
    /// AMSGrad.
    pub amsgrad: bool,
    /// Maximise instead of minimise (adamlab's optimizers only).
    pub maximize: bool,
}

impl OptimizerSettings {
    /// `kind` with learning rate `lr` and torch.optim's defaults for everything else.
    pub fn new(kind: OptimizerKind, lr: f64) -> Self {
        Self {
            kind,
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: None,
            amsgrad: false,
            maximize: false,
        }
    }

    /// The weight decay in effect: the one set, or the algorithm's default.
    pub fn effective_weight_decay(&self) -> f64 {
        self.weight_decay
            .unwrap_or_else(|| self.kind.default_weight_decay())
    }

    /// adamlab's [`AdamConfig`] for these settings (for `Adam` and `AdamW`; burn's kinds map to
    /// the same values).
    pub fn adam_config(&self) -> AdamConfig {
        AdamConfig::new()
            .with_beta1(self.beta1)
            .with_beta2(self.beta2)
            .with_eps(self.eps)
            .with_weight_decay(self.effective_weight_decay())
            .with_decoupled_weight_decay(matches!(
                self.kind,
                OptimizerKind::AdamW | OptimizerKind::BurnAdamW
            ))
            .with_amsgrad(self.amsgrad)
            .with_maximize(self.maximize)
    }

    /// Checks every value, the learning rate included, whichever optimizer is chosen.
    pub fn validate(&self) -> Result<(), OptimizerError> {
        check_learning_rate(self.lr)?;
        self.adam_config().validate()?;
        let is_burn = matches!(self.kind, OptimizerKind::BurnAdam | OptimizerKind::BurnAdamW);
        if is_burn && self.maximize {
            return Err(OptimizerError::MaximizeUnsupported(self.kind));
        }
        Ok(())
    }

    /// The module optimizer for these settings.
    pub fn build(&self) -> Result<ModuleOptimizer, OptimizerError> {
        self.validate()?;
        let weight_decay = self.effective_weight_decay();
        Ok(match self.kind {
            OptimizerKind::Adam | OptimizerKind::AdamW => self.adam_config().init()?,
            OptimizerKind::BurnAdam => burn::optim::AdamConfig::new()
                .with_beta_1(self.beta1 as f32)
                .with_beta_2(self.beta2 as f32)
                .with_epsilon(self.eps as f32)
                .with_amsgrad(self.amsgrad)
                .with_weight_decay(
                    (weight_decay != 0.0).then(|| WeightDecayConfig::new(weight_decay as f32)),
                )
                .init(),
            OptimizerKind::BurnAdamW => burn::optim::AdamWConfig::new()
                .with_beta_1(self.beta1 as f32)
                .with_beta_2(self.beta2 as f32)
                .with_epsilon(self.eps as f32)
                .with_amsgrad(self.amsgrad)
                .with_weight_decay(weight_decay as f32)
                .init(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adamw_defaults_to_torchs_weight_decay_and_adam_to_none() {
        assert_eq!(OptimizerSettings::new(OptimizerKind::AdamW, 1e-3).effective_weight_decay(), 1e-2);
        assert_eq!(OptimizerSettings::new(OptimizerKind::Adam, 1e-3).effective_weight_decay(), 0.0);
    }

    #[test]
    fn burn_optimizers_refuse_maximize() {
        let mut settings = OptimizerSettings::new(OptimizerKind::BurnAdam, 1e-3);
        settings.maximize = true;
        assert_eq!(
            settings.validate(),
            Err(OptimizerError::MaximizeUnsupported(OptimizerKind::BurnAdam))
        );
    }

    #[test]
    fn a_negative_learning_rate_is_refused_for_every_optimizer() {
        for kind in [OptimizerKind::Adam, OptimizerKind::BurnAdamW] {
            let settings = OptimizerSettings::new(kind, -1.0);
            assert_eq!(
                settings.validate(),
                Err(OptimizerError::Config(AdamConfigError::LearningRate(-1.0)))
            );
        }
    }
}
