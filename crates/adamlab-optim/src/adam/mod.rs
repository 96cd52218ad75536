//! Adam, with torch.optim.Adam's semantics and defaults.
//!
//! Its step ([`Optimizer::step`](burn::optim::Optimizer::step)) is written twice: the tensor-op
//! [reference](Adam::reference_step), which reads like the paper, and the fused step beside it
//! ([`kernel`]: the update of one element, which the CPU loop runs on Flex and NdArray, and the
//! CubeCL kernel computing it on wgpu), which makes one pass over memory and updates θ and the
//! state in place. Both compute the same arithmetic, operation for operation, so they agree bit for
//! bit on the CPU; the `fused` keyword picks between them.
//!
//! `state_dtype=bf16` keeps the moments in bfloat16 ([`StateDtype`]): half the state's bytes, the
//! same f32 update. `bf16_stochastic_round` steps bfloat16 parameters in f32 and rounds them back
//! at random, as torchao's optimizers do ([`Optimizer::step`](burn::optim::Optimizer::step)).

mod kernel;

use crate::hyper::param;
use burn::optim::LearningRate;
use burn::config::Config;
use burn::tensor::{DType, Device, Tensor};

use crate::RecordState;
use crate::fused;
use crate::stochastic::{self, Streams};
use crate::hyper::{CycledMomentum, HyperParam, HyperValue, Keyword, Kind, Value};
use crate::keywords::{EPS, LR, WEIGHT_DECAY};
use crate::registry::OptimizerEntry;

crate::hyper_config! {
    /// Configuration of [`Adam`], with `torch.optim.Adam`'s defaults.
    pub struct AdamConfig {
        LR => 0.001;
        BETAS;
        EPS => {
            /// Added to the bias-corrected `√v̂` for numerical stability, outside the square
            /// root (torch's default; burn's own Adam defaults to 1e-5).
            eps: f64 = 1e-8,
        }
        WEIGHT_DECAY_L2_OR_DECOUPLED;
        DECOUPLED_WEIGHT_DECAY;
        AMSGRAD => {
            /// Use AMSGrad: the denominator takes the running maximum of the raw second moment
            /// `v`.
            amsgrad: bool = false,
        }
        MAXIMIZE;
        FUSED;
        BF16_STOCHASTIC_ROUND => {
            /// bfloat16 parameters are stepped in f32 (θ and g widened, f32 moments unless
            /// `state_dtype` says otherwise) and θ is rounded back to bfloat16 stochastically, as
            /// torchao's `bf16_stochastic_round` does: updates smaller than half of θ's bfloat16
            /// gap still move it on average. No effect on parameters of other dtypes.
            bf16_stochastic_round: bool = false,
        }
        SEED => {
            /// Seed of the stochastic rounding's random draws ([`crate::stochastic`]).
            seed: usize = 0,
        }
        @other {
            /// The dtype the moments are kept in between steps (keyword `state_dtype`, which the
            /// registry's builds set); f32, as torch keeps them for f32 parameters.
            state_dtype: StateDtype = "StateDtype::F32",
        }
        @nested { STATE_DTYPE }
    }
}

/// The dtype Adam keeps its moments in between steps.
///
/// With `Bf16`, m and v (and AMSGrad's maximum of v) are stored as bfloat16. Each step reads them
/// to f32 (exact), computes the f32 step exactly as with `F32`, updates θ with these f32 moments,
/// and stores them rounded to the nearest bfloat16, ties to even (torch's `.to(torch.bfloat16)`);
/// the rounding shows from the next step on. The reference is torch.optim.Adam's own step run on
/// f32 copies of bfloat16 state tensors (`tools/reference/bf16_states.py`): neither torch.optim
/// nor torchao keeps bfloat16 moments for f32 parameters (torchao's `_AdamW` keeps
/// `zeros_like(p)`). On a backend that cannot store bfloat16 ([`state_storage`]: NdArray, and
/// wgpu on most adapters) the moments are f32 tensors holding the same bfloat16 values: the same
/// numbers, without the memory saving.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum StateDtype {
    /// f32 moments, 8 bytes of state per element.
    F32,
    /// bfloat16 moments, 4 bytes of state per element where the backend stores bfloat16.
    Bf16,
}

impl StateDtype {
    /// The spec's names, in the order of the variants.
    pub const NAMES: &'static [&'static str] = &["f32", "bf16"];
}

impl HyperValue for StateDtype {
    fn to_value(&self) -> Value {
        Value::Name(Self::NAMES[*self as usize].to_string())
    }
    fn from_value(value: &Value) -> Self {
        match value {
            Value::Name(name) if name == "bf16" => Self::Bf16,
            Value::Name(name) if name == "f32" => Self::F32,
            other => unreachable!("{other} is checked to be one of {:?}", Self::NAMES),
        }
    }
}

/// `state_dtype`: adamlab's keyword (torch's Adam keeps the parameter's dtype).
pub const STATE_DTYPE: HyperParam = Keyword {
    name: "state_dtype",
    kind: Kind::Choice(StateDtype::NAMES),
    help: "dtype of the stored moments: f32, or bf16 (half the bytes; each step in f32, stored rounded to nearest even)",
}
.with_default("f32");

/// The `state_dtype` the registry resolved (given, or its default).
fn state_dtype(args: &crate::hyper::Args) -> StateDtype {
    StateDtype::from_value(args.value(STATE_DTYPE.name).expect("adam and adamw declare state_dtype"))
}

/// The dtype a bfloat16 state is stored in on `device`: bfloat16 where the backend stores it
/// (Flex), else f32 holding bfloat16 values.
pub fn state_storage(device: &Device) -> DType {
    if device.supports_dtype(DType::BF16) {
        DType::BF16
    } else {
        DType::F32
    }
}

/// `bf16_stochastic_round`: torchao's keyword (its Adam and AdamW optimizers).
pub const BF16_STOCHASTIC_ROUND: Keyword = Keyword {
    name: "bf16_stochastic_round",
    kind: Kind::Bool,
    help: "step bfloat16 parameters in f32 and round them back to bfloat16 at random, unbiased \
           (torchao's keyword; no effect on f32 parameters)",
};

/// `seed`: adamlab's keyword (torchao draws from torch's global generator).
pub const SEED: Keyword = Keyword {
    name: "seed",
    kind: Kind::Int { min: 0, max: i64::MAX },
    help: "seed of bf16_stochastic_round's random draws",
};

/// `amsgrad`.
pub const AMSGRAD: Keyword = Keyword {
    name: "amsgrad",
    kind: crate::hyper::Kind::Bool,
    help: "use the running maximum of the second moment (AMSGrad)",
};

/// AdamW's weight decay: decoupled, torch.optim.AdamW's default 1e-2 (burn's own AdamW defaults
/// to 1e-4). The one default AdamW states apart from Adam's; [`AdamConfig::adamw`] reads it.
pub const ADAMW_WEIGHT_DECAY: f64 = 1e-2;

/// The registry's `adam`: `torch.optim.Adam`.
pub const ADAM: OptimizerEntry = OptimizerEntry {
    name: "adam",
    summary: "Adam (Kingma & Ba, 2015), L2 weight decay; AMSGrad and AdamW's decay as options",
    reference: "torch.optim.Adam (torch 2.15)",
    params: AdamConfig::PARAMS,
    build: |args| {
        let adam = AdamConfig::new()
            .with_args(args)
            .with_state_dtype(state_dtype(args))
            .build()?
            .with_cycled_beta1(args.cycled_momentum());
        Ok(Box::new(adam))
    },
};

/// The registry's `adamw`: `torch.optim.AdamW`, Adam's keywords but `decoupled_weight_decay`
/// (always on), with weight decay 1e-2.
pub const ADAMW: OptimizerEntry = OptimizerEntry {
    name: "adamw",
    summary: "AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay",
    reference: "torch.optim.AdamW (torch 2.15)",
    params: &[
        param(AdamConfig::PARAMS, "lr"),
        param(AdamConfig::PARAMS, "betas"),
        param(AdamConfig::PARAMS, "eps"),
        WEIGHT_DECAY
            .help("decoupled weight decay λ: θ ← θ·(1 − lr·λ)")
            .with_default("0.01"),
        param(AdamConfig::PARAMS, "amsgrad"),
        param(AdamConfig::PARAMS, "maximize"),
        param(AdamConfig::PARAMS, "fused"),
        param(AdamConfig::PARAMS, "bf16_stochastic_round"),
        param(AdamConfig::PARAMS, "seed"),
        STATE_DTYPE,
    ],
    build: |args| {
        let adam = AdamConfig::adamw()
            .with_args(args)
            .with_state_dtype(state_dtype(args))
            .build()?
            .with_cycled_beta1(args.cycled_momentum());
        Ok(Box::new(adam))
    },
};

impl AdamConfig {
    /// AdamW as `torch.optim.AdamW` configures it: decoupled weight decay of
    /// [`ADAMW_WEIGHT_DECAY`], everything else as Adam.
    pub fn adamw() -> Self {
        Self::new()
            .with_decoupled_weight_decay(true)
            .with_weight_decay(ADAMW_WEIGHT_DECAY)
    }
}

/// Adam (Kingma & Ba, 2015, <https://arxiv.org/abs/1412.6980>), computed as `torch.optim.Adam`
/// computes it, so that the same gradients give the same parameters to f32 rounding.
///
/// For each parameter θ with gradient g, at step t = 1, 2, …:
///
/// ```text
/// g ← −g                                   if maximize
/// θ ← θ·(1 − lr·λ)                         if decoupled weight decay (AdamW)
/// g ← g + λ·θ                              otherwise, L2 weight decay
/// m ← β₁·m + (1 − β₁)·g                    first moment
/// v ← β₂·v + (1 − β₂)·g²                   second moment
/// v_max ← max(v_max, v)                    if AMSGrad; the denominator then uses v_max
/// m̂ = m / (1 − β₁ᵗ)                        bias corrections
/// v̂ = v / (1 − β₂ᵗ)
/// θ ← θ − lr · m̂ / (√v̂ + ε)
/// ```
///
/// The last three lines are evaluated in torch's order: `θ − (lr/(1 − β₁ᵗ))·m / (√v/√(1 − β₂ᵗ) + ε)`,
/// with the bias corrections and the step size in f64 (torch computes them as Python floats).
/// Contrary to burn's built-in `Adam`, ε is added after the bias correction (burn adds
/// `ε·√(1 − β₂ᵗ)` before it, which is the same only in exact arithmetic) and defaults to 1e-8;
/// AMSGrad keeps the maximum of the raw `v`, as torch does. The moment update follows torch's
/// `lerp` form, `m + (1 − β₁)·(g − m)`, equal to the paper's in exact arithmetic (torch's CPU
/// kernel fuses it into one FMA, so the two agree to rounding, not bit for bit).
///
/// With `fused` (the default), the step runs the fused step of [`kernel`] on f32 Flex, NdArray
/// and CubeCL tensors: one pass over θ, g, m and v (and v_max), updating them in place. Anything
/// else (another backend or dtype, autodiff tensors) takes [`Adam::reference_step`], the
/// tensor-op form above. Both give the same numbers.
#[derive(Clone, Debug)]
pub struct Adam {
    config: AdamConfig,
    /// β₁ set by a schedule at every step (OneCycleLR), when one cycles it.
    cycled_beta1: Option<CycledMomentum>,
    /// The random streams of `bf16_stochastic_round`, one per parameter.
    streams: Streams,
}

crate::builds!(AdamConfig => Adam { cycled_beta1, streams });

/// The state Adam keeps for one parameter. Names follow torch.optim's `state` dict.
#[derive(RecordState, Clone)]
pub struct AdamState<const D: usize> {
    /// Number of steps taken, t.
    pub step: usize,
    /// First moment m (torch's `exp_avg`).
    pub exp_avg: Tensor<D>,
    /// Second moment v (torch's `exp_avg_sq`).
    pub exp_avg_sq: Tensor<D>,
    /// Running maximum of v, with AMSGrad (torch's `max_exp_avg_sq`).
    pub max_exp_avg_sq: Option<Tensor<D>>,
    /// The random stream of `bf16_stochastic_round` ([`crate::stochastic`]): the parameter's
    /// number among those the optimizer rounded stochastically; `None` for the others.
    pub rounding_stream: Option<u64>,
}

impl Adam {
    /// One Adam step for one parameter tensor, written with tensor operations: the readable
    /// reference that the fused kernels must equal. Every backend and dtype runs it; see
    /// [`Adam`] for the update rule.
    pub fn reference_step<const D: usize>(
        &self,
        lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamState<D>>,
    ) -> (Tensor<D>, Option<AdamState<D>>) {
        let AdamConfig {
            beta1: _,
            beta2,
            eps,
            weight_decay,
            decoupled_weight_decay,
            amsgrad,
            maximize,
            fused: _,
            bf16_stochastic_round: _,
            seed: _,
            state_dtype,
        } = self.config;
        let beta1 = self.beta1();
        let dtype = theta.dtype();

        let mut g = if maximize { grad.neg() } else { grad };
        let mut theta = theta;
        if weight_decay != 0.0 {
            if decoupled_weight_decay {
                theta = theta.mul_scalar(1.0 - lr * weight_decay);
            } else {
                g = g.add(theta.clone().mul_scalar(weight_decay));
            }
        }

        // Stored moments are read in θ's dtype (bfloat16 to f32 is exact).
        let read = |x: Tensor<D>| x.cast(dtype);
        let (t, m, v, v_max) = match state {
            Some(state) => (
                state.step + 1,
                read(state.exp_avg),
                read(state.exp_avg_sq),
                state.max_exp_avg_sq.map(read),
            ),
            None => (1, g.zeros_like(), g.zeros_like(), None),
        };

        // m ← β₁·m + (1 − β₁)·g, as torch's `exp_avg.lerp_(g, 1 − β₁)`.
        let m = m.clone().add(g.clone().sub(m).mul_scalar(1.0 - beta1));
        // v ← β₂·v + (1 − β₂)·g², as torch's `exp_avg_sq.mul_(β₂).addcmul_(g, g, 1 − β₂)`.
        let v = v.mul_scalar(beta2).add(g.clone().mul_scalar(1.0 - beta2).mul(g));
        let v_max = amsgrad.then(|| match v_max {
            Some(v_max) => v_max.max_pair(v.clone()),
            None => v.clone(),
        });

        // In f64 with libm's pow, as Python evaluates torch's `1 - beta1 ** step`.
        let bias_correction1 = 1.0 - beta1.powf(t as f64);
        let bias_correction2 = 1.0 - beta2.powf(t as f64);
        // m̂ = m / (1 − β₁ᵗ), folded into the step size.
        let step_size = lr / bias_correction1;
        // √v̂ + ε = √v / √(1 − β₂ᵗ) + ε.
        let v_used = v_max.as_ref().unwrap_or(&v);
        let denom = v_used
            .clone()
            .sqrt()
            .div_scalar(bias_correction2.sqrt())
            .add_scalar(eps);
        // θ ← θ − lr·m̂ / (√v̂ + ε), as torch's `θ.addcdiv_(m, denom, value=−step_size)`.
        let theta = theta.sub(m.clone().mul_scalar(step_size).div(denom));

        // θ took the moments of this step unrounded; they are stored in `state_dtype`.
        let store = |x: Tensor<D>| match state_dtype {
            StateDtype::F32 => x,
            StateDtype::Bf16 => to_bf16(x),
        };
        let state = AdamState {
            step: t,
            exp_avg: store(m),
            exp_avg_sq: store(v),
            max_exp_avg_sq: v_max.map(store),
            rounding_stream: None,
        };
        (theta, Some(state))
    }

    /// One step of a bfloat16 θ with `bf16_stochastic_round`, as torchao's `single_param_adam`
    /// takes it: θ and g widened to f32 (exact), the f32 step of [`reference_step`](Self::reference_step)
    /// (torch.optim.Adam's arithmetic; the moments in `state_dtype`), and θ rounded back to
    /// bfloat16 by [`round_stochastic`](crate::torch_ops::bf16::round_stochastic), element `i`
    /// drawing [`bits16`](crate::stochastic::bits16) of the key of (`seed`, the parameter's
    /// stream, t). The fused step (Flex, bfloat16 θ and g) computes the same bits in one pass;
    /// anything else takes these tensor ops.
    fn step_rounding_stochastically<const D: usize>(
        &self,
        lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamState<D>>,
    ) -> (Tensor<D>, Option<AdamState<D>>) {
        let stream = match state.as_ref().and_then(|s| s.rounding_stream) {
            Some(stream) => {
                self.streams.taken(stream);
                stream
            }
            None => self.streams.next(),
        };
        let t = state.as_ref().map_or(1, |s| s.step + 1);
        let key = stochastic::key(self.config.seed as u64, stream, t as u64);
        let with_stream = |state: Option<AdamState<D>>| {
            state.map(|s| AdamState { rounding_stream: Some(stream), ..s })
        };
        let (theta, grad, state) = if self.config.fused {
            match kernel::bf16::try_step_rounding(self, lr, theta, grad, state, key) {
                Ok((theta, state)) => return (theta, with_stream(state)),
                Err(inputs) => inputs,
            }
        } else {
            (theta, grad, state)
        };
        let (theta, state) = self.reference_step(lr, theta.cast(DType::F32), grad.cast(DType::F32), state);
        let random = stochastic::bits16_tensor(key, theta.dims(), &theta.device());
        let theta = crate::torch_ops::bf16::round_stochastic(theta, random).cast(DType::BF16);
        (theta, with_stream(state))
    }

    /// `state` with its moments in the dtype the step keeps them in: with `state_dtype=bf16`, f32
    /// moments (loaded from a checkpoint, which burn rebuilds in the device's default dtype, or
    /// moved from a device without bfloat16) become bfloat16 where the device stores it, exactly:
    /// they hold bfloat16 values.
    fn stored<const D: usize>(&self, state: Option<AdamState<D>>) -> Option<AdamState<D>> {
        let state = state?;
        if self.config.state_dtype != StateDtype::Bf16 {
            return Some(state);
        }
        let dtype = state_storage(&state.exp_avg.device());
        let cast = |x: Tensor<D>| x.cast(dtype);
        Some(AdamState {
            step: state.step,
            exp_avg: cast(state.exp_avg),
            exp_avg_sq: cast(state.exp_avg_sq),
            max_exp_avg_sq: state.max_exp_avg_sq.map(cast),
            rounding_stream: state.rounding_stream,
        })
    }
}

/// `x` rounded to the nearest bfloat16, ties to even, stored as [`state_storage`] says: cast to
/// bfloat16 (burn's cast rounds to nearest even, as torch's), or kept in f32 and rounded by
/// [`torch_ops::bf16::round`](crate::torch_ops::bf16::round) on a backend without bfloat16.
fn to_bf16<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    match state_storage(&x.device()) {
        DType::BF16 => x.cast(DType::BF16),
        _ => crate::torch_ops::bf16::round(x),
    }
}

impl Adam {
    /// Moves the state; a bfloat16 moment goes to a device without bfloat16 as f32 (exact).
    fn state_to_device<const D: usize>(state: AdamState<D>, device: &Device) -> AdamState<D> {
        let to = |t: Tensor<D>| {
            let dtype = if t.dtype() == DType::BF16 { state_storage(device) } else { t.dtype() };
            t.cast(dtype).to_device(device)
        };
        AdamState {
            step: state.step,
            exp_avg: to(state.exp_avg),
            exp_avg_sq: to(state.exp_avg_sq),
            max_exp_avg_sq: state.max_exp_avg_sq.map(to),
            rounding_stream: state.rounding_stream,
        }
    }
}

fused::impl_optimizer!(Adam, AdamState, to_device = Adam::state_to_device, step =
    /// One Adam step for one parameter tensor; see [`Adam`] for the update rule: bfloat16
    /// parameters rounded stochastically, bfloat16 moments on Flex and everything else by
    /// [`fused::step`].
    |adam, lr, theta, grad, state| {
        let state = adam.stored(state);
        if adam.config.bf16_stochastic_round && theta.dtype() == DType::BF16 {
            return adam.step_rounding_stochastically(lr, theta, grad, state);
        }
        if adam.config.state_dtype == StateDtype::Bf16 && adam.config.fused {
            // bfloat16 buffers (Flex) have a loop of their own; f32 ones holding bfloat16
            // values (NdArray) take the f32 loop, which rounds them.
            return match kernel::bf16::try_step(adam, lr, theta, grad, state) {
                Ok(stepped) => stepped,
                Err((theta, grad, state)) => fused::step(adam, lr, theta, grad, state),
            };
        }
        fused::step(adam, lr, theta, grad, state)
    }
);

#[cfg(test)]
mod tests {
    use super::*;
    use burn::optim::Optimizer;
    use crate::testing;
    use burn::tensor::TensorData;

    const LR: f64 = 0.1;

    fn device() -> Device {
        Device::flex()
    }

    fn tensor(values: [f32; 2]) -> Tensor<1> {
        Tensor::from_floats(values, &device())
    }

    /// Runs `config` over the gradients `grads` from θ₀ = [1, −2], returning θ after each step.
    fn trajectory(config: AdamConfig, grads: &[[f32; 2]]) -> Vec<TensorData> {
        let adam = config.build().unwrap();
        let mut theta = tensor([1.0, -2.0]);
        let mut state = None;
        grads
            .iter()
            .map(|g| {
                (theta, state) = adam.step(LR, theta.clone(), tensor(*g), state.take());
                theta.to_data()
            })
            .collect()
    }

    /// Hand-computed with the paper's formulas in f64 (lr 0.1, torch's defaults):
    /// step 1, g = [0.5, −1]: m̂ = g, v̂ = g², θ = θ₀ − 0.1·g/(|g| + 1e-8) = [0.9, −1.9];
    /// step 2, g = [0.25, 0.5]: m = [0.07, −0.04], v = [3.1225e-4, 1.249e-3],
    /// m̂ = m/0.19, v̂ = v/0.001999, θ = [0.806782040, −1.873366297].
    #[test]
    fn first_two_steps_match_hand_computed_values() {
        let thetas = trajectory(AdamConfig::new(), &[[0.5, -1.0], [0.25, 0.5]]);
        testing::assert_near(&thetas[0], [0.9, -1.9]);
        testing::assert_near(&thetas[1], [0.806_782_04, -1.873_366_3]);
    }

    /// First step with λ = 0.5: L2 turns g = [0.5, −1] into g + λθ₀ = [1, −2], whose Adam step is
    /// again ±lr: θ = [0.9, −1.9]. Decoupled decay first shrinks θ₀ by (1 − 0.1·0.5) to
    /// [0.95, −1.9], then the step on the raw gradient gives [0.85, −1.8].
    #[test]
    fn first_step_applies_l2_and_decoupled_weight_decay_as_torch() {
        let l2 = trajectory(AdamConfig::new().with_weight_decay(0.5), &[[0.5, -1.0]]);
        testing::assert_near(&l2[0], [0.9, -1.9]);
        let decoupled = trajectory(
            AdamConfig::new()
                .with_weight_decay(0.5)
                .with_decoupled_weight_decay(true),
            &[[0.5, -1.0]],
        );
        testing::assert_near(&decoupled[0], [0.85, -1.8]);
    }

    /// AMSGrad keeps max(v): after a large then a small gradient its denominator stays larger
    /// than plain Adam's, so its second step is smaller.
    #[test]
    fn amsgrad_takes_smaller_steps_after_the_gradient_shrinks() {
        let grads = [[10.0, 10.0], [0.1, 0.1]];
        let plain = trajectory(AdamConfig::new(), &grads);
        let amsgrad = trajectory(AdamConfig::new().with_amsgrad(true), &grads);
        let step2 = |t: &[TensorData]| {
            let [a, b] = [&t[0], &t[1]].map(|d| d.as_slice::<f32>().unwrap()[0]);
            (a - b).abs()
        };
        assert!(
            step2(&amsgrad) < step2(&plain),
            "amsgrad {} vs adam {}",
            step2(&amsgrad),
            step2(&plain)
        );
    }

    /// `adamw(state_dtype=bf16)`: θ's first step takes the f32 moments, so it equals f32 AdamW's to
    /// the bit; m is then stored rounded to bfloat16: 0.1·0.5 = 0.05, whose nearest bfloat16 is
    /// 1.1001101₂·2⁻⁵ = 0.050048828125 (0.05 = 1.10011001100…₂·2⁻⁵ rounds up), and 0.1·(−1) to
    /// −1.1001101₂·2⁻⁴ = −0.10009765625.
    #[test]
    fn bf16_states_round_the_stored_moments_and_not_the_first_step() {
        let spec = crate::OptimizerSpec::parse("adamw(state_dtype=bf16)").unwrap();
        assert_eq!(spec.to_string(), "adamw(state_dtype=bf16)");
        for fused in [true, false] {
            let bf16 = AdamConfig::adamw().with_state_dtype(StateDtype::Bf16).with_fused(fused);
            let f32_moments = AdamConfig::adamw().with_fused(fused).build().unwrap();
            let grad = [0.5, -1.0];
            let (theta, state) = bf16.build().unwrap().step(LR, tensor([1.0, -2.0]), tensor(grad), None);
            let (expected, _) = f32_moments.step(LR, tensor([1.0, -2.0]), tensor(grad), None);
            assert_eq!(theta.to_data(), expected.to_data(), "fused={fused}");
            let m = state.unwrap().exp_avg.to_data().convert::<f32>();
            assert_eq!(m, TensorData::from([0.050_048_828_125f32, -0.100_097_656_25]), "fused={fused}");
        }
    }

    /// `maximize` climbs: its first step moves along +g instead of −g.
    #[test]
    fn maximize_moves_along_the_gradient() {
        let thetas = trajectory(AdamConfig::new().with_maximize(true), &[[0.5, -1.0]]);
        testing::assert_near(&thetas[0], [1.1, -2.1]);
    }

}
