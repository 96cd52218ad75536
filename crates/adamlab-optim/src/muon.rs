//! Muon, with torch.optim.Muon's semantics and defaults, for the 2-D parameters; AdamW for every
//! other parameter (biases, norms, convolution kernels), the usual recipe.

use burn::config::Config;
use burn::optim::{LearningRate, ModuleOptimizer, Optimizer};
use burn::tensor::Tensor;

use crate::RecordState;
use crate::torch_ops::{bf16, lerp_two_roundings};
use crate::adam::{Adam, AdamConfig, AdamState};
use crate::hyper::{
    ConfigError, HyperParam, HyperValue, Interval, Keyword, Kind, Value,
};
use crate::keywords::{EPS, LR, WEIGHT_DECAY};
use crate::registry::OptimizerEntry;

/// How Muon scales the learning rate by the shape of the matrix (A = fan-out, B = fan-in), as
/// torch's `adjust_lr_fn`.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum AdjustLrFn {
    /// Keller Jordan's: `√max(1, A/B)`. torch's default (`adjust_lr_fn=None`).
    Original,
    /// Moonshot's: `0.2·√max(A, B)`, to match AdamW's update RMS.
    MatchRmsAdamw,
    /// Jeremy Bernstein's: `√(A/B)`.
    SpectralUnclamped,
}

impl AdjustLrFn {
    /// torch's names, in the order of the variants.
    pub const NAMES: &'static [&'static str] =
        &["original", "match_rms_adamw", "spectral_unclamped"];

    /// The variant torch calls `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "original" => Some(Self::Original),
            "match_rms_adamw" => Some(Self::MatchRmsAdamw),
            "spectral_unclamped" => Some(Self::SpectralUnclamped),
            _ => None,
        }
    }

    /// The factor on lr for a matrix with `fan_out` rows and `fan_in` columns in torch's layout,
    /// in f64 as torch's `_adjust_lr` computes it.
    pub fn ratio(self, fan_out: usize, fan_in: usize) -> f64 {
        let (a, b) = (fan_out as f64, fan_in as f64);
        match self {
            Self::Original => (a / b).max(1.0).sqrt(),
            Self::MatchRmsAdamw => 0.2 * a.max(b).sqrt(),
            Self::SpectralUnclamped => (a / b).sqrt(),
        }
    }
}

crate::hyper_config! {
    /// Configuration of [`Muon`], with `torch.optim.Muon`'s defaults for the 2-D parameters and
    /// `torch.optim.AdamW`'s for the others.
    ///
    /// Both parts share the learning rate.
    pub struct MuonConfig {
        LR => 0.001;
        WEIGHT_DECAY.help("decoupled weight decay λ of the 2-D parameters: θ ← θ·(1 − lr·λ)") => {
            /// Decoupled weight decay λ of the 2-D parameters: `θ ← θ·(1 − lr·λ)`.
            weight_decay: f64 = 0.1,
        }
        Keyword {
            name: "momentum",
            kind: Kind::Float(Interval::NON_NEGATIVE),
            help: "momentum μ of the buffer B ← B + (1 − μ)(g − B)",
        } => {
            /// Momentum μ ≥ 0: the buffer is an exponential average, `B ← B + (1 − μ)·(g − B)`.
            momentum: f64 = 0.95,
        }
        Keyword {
            name: "nesterov",
            kind: Kind::Bool,
            help: "orthogonalise g + μ(B − g) instead of B",
        } => {
            /// Orthogonalise `g + μ·(B − g)` (Nesterov) rather than `B`.
            nesterov: bool = true,
        }
        Keyword {
            name: "ns_coefficients",
            kind: Kind::Tuple(&[
                Kind::Float(Interval::ANY),
                Kind::Float(Interval::ANY),
                Kind::Float(Interval::ANY),
            ]),
            help: "coefficients (a, b, c) of the Newton–Schulz step X ← aX + (bA + cA²)X, A = XXᵀ",
        } => {
            /// Coefficients (a, b, c) of the quintic Newton–Schulz iteration (Keller Jordan's).
            ns_coefficients: (f64, f64, f64) = "(3.4445, -4.775, 2.0315)",
        }
        EPS.help("floor of the Frobenius norm the update is divided by") => {
            /// Floor of the Frobenius norm the update is divided by before the iteration.
            eps: f64 = 1e-7,
        }
        Keyword {
            name: "ns_steps",
            kind: Kind::Int { min: 0, max: 99 },
            help: "number of Newton–Schulz iterations",
        } => {
            /// Number of Newton–Schulz iterations, below 100 as torch requires.
            ns_steps: usize = 5,
        }
        Keyword {
            name: "adjust_lr_fn",
            kind: Kind::Optional(&Kind::Choice(AdjustLrFn::NAMES)),
            help: "lr scaling by the shape (A out, B in): original √max(1, A/B) (None), match_rms_adamw 0.2√max(A, B), spectral_unclamped √(A/B)",
        } => {
            /// Learning-rate scaling by the matrix's shape; `None`, as torch's, is
            /// [`AdjustLrFn::Original`].
            adjust_lr_fn: Option<AdjustLrFn> = "None",
        }
        @other {
            /// The optimizer of every parameter that is not 2-D: torch.optim.AdamW's defaults
            /// (betas (0.9, 0.999), eps 1e-8, weight decay 1e-2).
            adamw: AdamConfig = "AdamConfig::adamw()",
        }
        @nested { ADAMW_BETAS, ADAMW_EPS, ADAMW_WEIGHT_DECAY }
    }
}

/// `adamw_betas`: AdamW's (β₁, β₂) for the parameters that are not 2-D.
pub const ADAMW_BETAS: HyperParam = HyperParam {
    name: "adamw_betas",
    help: "AdamW's betas, for the parameters that are not 2-D",
    ..crate::adam::ADAMW.params[1]
};
/// `adamw_eps`.
pub const ADAMW_EPS: HyperParam = HyperParam {
    name: "adamw_eps",
    help: "AdamW's eps, for the parameters that are not 2-D",
    ..crate::adam::ADAMW.params[2]
};
/// `adamw_weight_decay`, torch.optim.AdamW's default 1e-2.
pub const ADAMW_WEIGHT_DECAY: HyperParam = HyperParam {
    name: "adamw_weight_decay",
    help: "AdamW's decoupled weight decay, for the parameters that are not 2-D",
    ..crate::adam::ADAMW.params[3]
};

impl HyperValue for Option<AdjustLrFn> {
    fn to_value(&self) -> Value {
        self.map_or(Value::None, |f| Value::Name(AdjustLrFn::NAMES[f as usize].to_string()))
    }
    fn from_value(value: &Value) -> Self {
        match value {
            Value::Name(name) => AdjustLrFn::from_name(name),
            _ => None,
        }
    }
}

/// The registry's `muon`: `torch.optim.Muon` on the 2-D parameters, `torch.optim.AdamW` on the
/// others.
pub const MUON: OptimizerEntry = OptimizerEntry {
    name: "muon",
    summary: "Muon (Jordan et al., 2024) on 2-D weights, Newton–Schulz in bfloat16 as torch; AdamW on every other parameter",
    reference: "torch.optim.Muon + torch.optim.AdamW (torch 2.15)",
    params: MuonConfig::PARAMS,
    build: |args| {
        let (beta1, beta2) = args.pair(ADAMW_BETAS.name);
        let adamw = AdamConfig::adamw()
            .with_beta1(beta1)
            .with_beta2(beta2)
            .with_eps(args.f64(ADAMW_EPS.name))
            .with_weight_decay(args.f64(ADAMW_WEIGHT_DECAY.name));
        Ok(Box::new(MuonConfig::new().with_args(args).with_adamw(adamw).build()?))
    },
};

impl MuonConfig {
    /// The bare optimizer, for [`ModuleOptimizer::with_group`] or a hand-written loop; an error
    /// for a value outside the ranges torch.optim.Muon and AdamW accept (AdamW's named with
    /// their `adamw_` keywords).
    pub fn build(&self) -> Result<Muon, ConfigError> {
        self.validate()?;
        let adamw = &self.adamw;
        ADAMW_BETAS.check_floats(&[adamw.beta1, adamw.beta2])?;
        ADAMW_EPS.check_f64(adamw.eps)?;
        ADAMW_WEIGHT_DECAY.check_f64(adamw.weight_decay)?;
        Ok(Muon {
            config: self.clone(),
            adamw: self.adamw.build()?,
        })
    }

    /// The optimizer for a whole module.
    pub fn init(&self) -> Result<ModuleOptimizer, ConfigError> {
        Ok(ModuleOptimizer::from(self.build()?))
    }
}

/// Muon (Keller Jordan et al., 2024, <https://kellerjordan.github.io/posts/muon/>) on every 2-D
/// parameter, computed as `torch.optim.Muon` computes it; [`Adam`] configured as AdamW on every
/// other parameter, as torch's documentation recommends (torch's Muon refuses them).
///
/// For each 2-D parameter θ with gradient g (no `maximize`: torch's Muon has none):
///
/// ```text
/// B ← B + (1 − μ)·(g − B)                        momentum buffer (torch's lerp)
/// U = g + μ·(B − g)   if nesterov,  else U = B
/// X = U / max(‖U‖_F, ε)                          in bfloat16, as the wider orientation
/// repeat ns_steps times:                         quintic Newton–Schulz, in bfloat16
///     A = X·Xᵀ
///     X ← a·X + (b·A + c·A·A)·X
/// θ ← θ·(1 − lr·λ)                               decoupled weight decay
/// θ ← θ − lr·adjust(A_out, B_in) · X
/// ```
///
/// **Layout.** burn stores a `Linear` weight as `[fan_in, fan_out]`, the transpose of torch's
/// `[fan_out, fan_in]`. adamlab's Muon reads every 2-D parameter that way, so that on the same
/// model it computes what torch computes: `adjust_lr_fn` sees A = `dims[1]`, B = `dims[0]`, and
/// the iteration runs on the orientation torch's weight θᵀ gives it (θᵀ unless θ is strictly
/// wider than tall). burn's own `Muon` reads `dims[0]`, `dims[1]` as torch does, which on a
/// burn `Linear` swaps fan-in and fan-out.
///
/// **bfloat16.** torch runs the normalisation and the iteration in bfloat16. burn 0.22.1 has no
/// bfloat16 on every backend (ndarray has none, WebGPU neither), so every bfloat16 value is
/// emulated in f32 by rounding it to bfloat16's 8-bit significand (round-half-to-even, as
/// torch's conversion), after each operation torch performs in bfloat16. The products of the
/// matrix multiplications are then exact in f32; torch's CPU `addmm` sums them in f32 and adds
/// `beta·C` with one fused multiply-add, which [`bf16::fma`] reproduces without an FMA. What
/// remains is the order of the f32 sums inside each matrix product, which torch's BLAS and
/// burn's backends choose for themselves: it only shows in the last bit when more than a few
/// terms meet, and then only through a different bfloat16 rounding (one bfloat16 step is
/// 2⁻⁸ relative).
///
/// The other deliberate differences from torch: `eps` must be positive (torch does not check it;
/// 0 would turn a zero update into NaN). torch's CPU kernels fuse the momentum `lerp` into FMAs;
/// here it is two roundings, which only matters when a value sits on a bfloat16 rounding
/// boundary.
#[derive(Clone, Debug)]
pub struct Muon {
    config: MuonConfig,
    adamw: Adam,
}

/// The state Muon keeps for one parameter: torch's Muon keys for a 2-D parameter, torch's AdamW
/// keys for the others.
#[derive(RecordState, Clone)]
pub struct MuonState<const D: usize> {
    /// Number of steps taken (AdamW's `step`; torch's Muon keeps no count).
    pub step: usize,
    /// Momentum buffer B of a 2-D parameter (torch's `momentum_buffer`).
    pub momentum_buffer: Option<Tensor<D>>,
    /// AdamW's first moment, for the other parameters (torch's `exp_avg`).
    pub exp_avg: Option<Tensor<D>>,
    /// AdamW's second moment, for the other parameters (torch's `exp_avg_sq`).
    pub exp_avg_sq: Option<Tensor<D>>,
    /// AdamW's running maximum of the second moment, with AMSGrad (torch's `max_exp_avg_sq`).
    pub max_exp_avg_sq: Option<Tensor<D>>,
}

impl<const D: usize> MuonState<D> {
    fn into_adamw(self) -> Option<AdamState<D>> {
        Some(AdamState {
            step: self.step,
            exp_avg: self.exp_avg?,
            exp_avg_sq: self.exp_avg_sq?,
            max_exp_avg_sq: self.max_exp_avg_sq,
            rounding_stream: None,
        })
    }

    fn from_adamw(state: AdamState<D>) -> Self {
        Self {
            step: state.step,
            momentum_buffer: None,
            exp_avg: Some(state.exp_avg),
            exp_avg_sq: Some(state.exp_avg_sq),
            max_exp_avg_sq: state.max_exp_avg_sq,
        }
    }
}

impl Muon {
    /// The configuration this optimizer was built from.
    pub fn config(&self) -> &MuonConfig {
        &self.config
    }
}

impl Muon {
    /// One step for one parameter tensor: Muon if it is 2-D, AdamW otherwise; see [`Muon`].
    pub fn reference_step<const D: usize>(
        &self,
        lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<MuonState<D>>,
    ) -> (Tensor<D>, Option<MuonState<D>>) {
        if D != 2 {
            let (theta, state) =
                self.adamw
                    .step(lr, theta, grad, state.and_then(MuonState::into_adamw));
            return (theta, state.map(MuonState::from_adamw));
        }
        let MuonConfig {
            weight_decay,
            momentum,
            nesterov,
            ns_coefficients,
            eps,
            ns_steps,
            adjust_lr_fn,
            ..
        } = self.config;
        let dims = theta.dims();
        let (fan_in, fan_out) = (dims[0], dims[1]);
        let (step, buffer) = match state {
            Some(state) => (state.step, state.momentum_buffer),
            None => (0, None),
        };

        // B ← lerp(B, g, 1 − μ); U = lerp(g, B, μ) with Nesterov.
        let buffer = lerp_two_roundings(
            buffer.unwrap_or_else(|| grad.zeros_like()),
            grad.clone(),
            1.0 - momentum,
        );
        let update = if nesterov {
            lerp_two_roundings(grad, buffer.clone(), momentum)
        } else {
            buffer.clone()
        };
        let ortho = newton_schulz(
            update.reshape([fan_in, fan_out]),
            ns_coefficients,
            ns_steps,
            eps,
        );

        let adjusted_lr = lr * adjust_lr_fn.unwrap_or(AdjustLrFn::Original).ratio(fan_out, fan_in);
        let theta = theta.mul_scalar(1.0 - lr * weight_decay);
        let theta = theta.add(ortho.reshape(dims).mul_scalar(-adjusted_lr));

        let state = MuonState {
            step: step + 1,
            momentum_buffer: Some(buffer),
            exp_avg: None,
            exp_avg_sq: None,
            max_exp_avg_sq: None,
        };
        (theta, Some(state))
    }
}

crate::fused::impl_optimizer!(
    Muon,
    MuonState { momentum_buffer, exp_avg, exp_avg_sq, max_exp_avg_sq },
    unfused
);

/// torch's `_zeropower_via_newtonschulz` on `update` (`[fan_in, fan_out]`, burn's layout), every
/// step rounded to bfloat16 as torch's bfloat16 tensors are.
///
/// torch works on its weight θᵀ, transposed when it is taller than wide: here that is θᵀ unless
/// θ is strictly wider than tall (so a square matrix, too, runs as θᵀ, the orientation in which
/// torch's sums are taken).
fn newton_schulz(
    update: Tensor<2>,
    (a, b, c): (f64, f64, f64),
    steps: usize,
    eps: f64,
) -> Tensor<2> {
    let [rows, cols] = update.dims();
    let transposed = rows >= cols;
    let mut x = bf16::round(update);
    if transposed {
        x = x.transpose();
    }
    // X ← X / max(‖X‖_F, ε): the norm summed in f32 and rounded, the clamp and the quotient too.
    let norm = bf16::round(x.clone().square().sum().sqrt());
    let norm = bf16::round(norm.clamp_min(eps));
    x = bf16::round(x.div(norm.reshape([1, 1])));
    for _ in 0..steps {
        let gram = bf16::round(x.clone().matmul(x.clone().transpose()));
        // torch.addmm(A, A, A, beta=b, alpha=c) = b·A + c·(A·A)
        let gram_sq = gram.clone().matmul(gram.clone()).mul_scalar(c as f32);
        let gram_update = bf16::round(bf16::fma(b, gram, gram_sq));
        // torch.addmm(X, B, X, beta=a) = a·X + B·X
        let product = gram_update.matmul(x.clone());
        x = bf16::round(bf16::fma(a, x, product));
    }
    if transposed { x.transpose() } else { x }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use crate::testing::device;
    use burn::tensor::{FloatDType, TensorData, Tolerance};

    fn values(tensor: Tensor<2>) -> Vec<f32> {
        tensor.to_data().try_to_vec::<f32>().unwrap()
    }

    /// Every kind of value against `half`'s conversion (round-half-to-even): ordinary ones, ties
    /// both ways, values next to powers of two, tiny and huge ones, zero.
    #[test]
    fn bf16_round_matches_a_real_bfloat16_conversion() {
        let mut xs = vec![
            0.0f32,
            -0.0,
            1.0,
            1.0 + 2f32.powi(-8),
            1.0 + 3.0 * 2f32.powi(-8),
            -(1.0 + 2f32.powi(-8)),
        ];
        xs.extend([
            0.6,
            0.8,
            3.4445,
            -4.775,
            2.0315,
            1e-7,
            1e-30,
            3e38,
            f32::MAX,
            f32::MIN_POSITIVE,
        ]);
        for k in -118..=120 {
            let p = 2f32.powi(k);
            xs.extend([
                p,
                p * (1.0 - f32::EPSILON),
                p * (1.0 + f32::EPSILON),
                -p * 1.996,
                p * 1.0039,
            ]);
        }
        let mut state = 0x2545_f491_u32;
        for _ in 0..4000 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let x = f32::from_bits(state & 0x7fff_ffff);
            if x.is_finite() && x.abs() > 2f32.powi(-119) {
                xs.push(if state & 1 == 0 { x } else { -x });
            }
        }
        let n = xs.len();
        let rounded: Vec<f32> = bf16::round(Tensor::<1>::from_floats(xs.as_slice(), &device()))
            .to_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (x, r) in xs.iter().zip(&rounded) {
            let expected = burn::tensor::bf16::from_f32(*x).to_f32();
            assert_eq!(
                r.to_bits(),
                expected.to_bits(),
                "{x:e}: {r:e} instead of {expected:e}"
            );
        }
        assert_eq!(rounded.len(), n);
        // flex also holds real bfloat16 tensors (ndarray and wgpu do not): the cast agrees.
        let x = Tensor::<1>::from_floats(&xs[..200], &Device::flex());
        let cast = x.clone().cast(FloatDType::BF16).cast(FloatDType::F32);
        assert_eq!(bf16::round(x).to_data(), cast.to_data());
    }

    /// `fma(β, c, t)` against `f32::mul_add`, for bfloat16 c and torch's coefficients.
    #[test]
    fn bf16_fma_matches_a_fused_multiply_add() {
        let mut state = 0x9e37_79b9_u32;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state as f32 / u32::MAX as f32 - 0.5) * 4.0
        };
        let c: Vec<f32> = (0..3000)
            .map(|_| burn::tensor::bf16::from_f32(next()).to_f32())
            .collect();
        let t: Vec<f32> = c.iter().map(|c| -3.4445 * c + next() * 1e-3).collect();
        for beta in [3.4445f64, -4.775, 2.0315] {
            let fused = bf16::fma(
                beta,
                Tensor::<1>::from_floats(c.as_slice(), &device()),
                Tensor::<1>::from_floats(t.as_slice(), &device()),
            );
            let fused: Vec<f32> = fused.to_data().try_to_vec::<f32>().unwrap();
            for ((c, t), r) in c.iter().zip(&t).zip(&fused) {
                assert_eq!(
                    r.to_bits(),
                    (beta as f32).mul_add(*c, *t).to_bits(),
                    "{beta}·{c} + {t}"
                );
            }
        }
    }

    /// torch's own iteration, as golden values (torch 2.15, bfloat16 results):
    /// `torch.optim._muon._zeropower_via_newtonschulz(torch.tensor([[3., 4., -1.], [1., -2., .5]]),
    /// (3.4445, -4.7750, 2.0315), 5, 1e-7)`. Bit for bit, in both orientations.
    #[test]
    fn newton_schulz_reproduces_torch_bit_for_bit() {
        let expected = [
            [0.59375f32, 0.486_328_13, -0.121_582_03],
            [0.796_875, -0.667_968_75, 0.166_992_19],
        ];
        let wide = Tensor::<2>::from_floats([[3.0, 4.0, -1.0], [1.0, -2.0, 0.5]], &device());
        let coefficients = (3.4445, -4.775, 2.0315);
        let ortho = newton_schulz(wide.clone().transpose(), coefficients, 5, 1e-7);
        assert_eq!(values(ortho.transpose()), expected.concat());
        let ortho = newton_schulz(wide, coefficients, 5, 1e-7);
        assert_eq!(values(ortho), expected.concat());
    }

    /// A full step on a burn-layout weight θ ([fan_in 3, fan_out 2]) against torch.optim.Muon(lr
    /// 0.1) on torch's weight θᵀ: θ·(1 − 0.01) − 0.1·NS(0.0975·g). Golden values from torch.
    #[test]
    fn two_steps_match_torch_on_the_transposed_weight() {
        let muon = MuonConfig::new().build().unwrap();
        let theta = Tensor::<2>::from_floats([[1.0, -2.0], [0.5, 0.25], [-1.0, 3.0]], &device());
        let grad = Tensor::<2>::from_floats([[3.0, 1.0], [4.0, -2.0], [-1.0, 0.5]], &device());
        let (theta, state) = muon.step(0.1, theta, grad.clone(), None);
        let tolerance = Tolerance::absolute(1e-6);
        theta.to_data().assert_approx_eq::<f32>(
            &TensorData::from([
                [0.930_625f32, -2.059_687_6],
                [0.446_367_2, 0.314_296_87],
                [-0.977_841_8, 2.953_300_7],
            ]),
            tolerance,
        );
        let buffer = state.as_ref().unwrap().momentum_buffer.clone().unwrap();
        buffer
            .to_data()
            .assert_approx_eq::<f32>(&grad.clone().mul_scalar(0.05).to_data(), tolerance);
        let (theta, _) = muon.step(0.1, theta, grad.mul_scalar(-0.5).add_scalar(0.25), state);
        theta.to_data().assert_approx_eq::<f32>(
            &TensorData::from([
                [0.904_619_6f32, -2.069_169],
                [0.456_259, 0.248_263_3],
                [-1.035_641_6, 2.911_512],
            ]),
            tolerance,
        );
    }

    /// A zero gradient orthogonalises to zero (its norm is floored at ε), leaving the decay:
    /// θ·(1 − lr·λ) exactly.
    #[test]
    fn a_zero_gradient_leaves_only_the_weight_decay() {
        let muon = MuonConfig::new().with_weight_decay(0.5).build().unwrap();
        let theta = Tensor::<2>::from_floats([[1.0, -2.0], [4.0, 8.0]], &device());
        let (theta, _) = muon.step(0.1, theta.clone(), theta.zeros_like(), None);
        assert_eq!(values(theta), vec![0.95, -1.9, 3.8, 7.6]);
    }

    /// Without momentum the second step is g₂'s alone; with it, g₁ is mixed in, less so with
    /// Nesterov's lookahead (torch's `g + μ(B − g)`) than with the plain buffer.
    #[test]
    fn momentum_and_nesterov_change_the_second_step() {
        let g1 = || Tensor::<2>::from_floats([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], &device());
        let g2 = || Tensor::<2>::from_floats([[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]], &device());
        let second_step = |config: MuonConfig| {
            let muon = config.with_weight_decay(0.0).build().unwrap();
            let theta = Tensor::<2>::zeros([3, 2], &device());
            let (theta, state) = muon.step(1.0, theta, g1(), None);
            let (after, _) = muon.step(1.0, theta.clone(), g2(), state);
            values(after.sub(theta))
        };
        let alone = {
            let muon = MuonConfig::new().with_weight_decay(0.0).build().unwrap();
            let (theta, _) = muon.step(1.0, Tensor::<2>::zeros([3, 2], &device()), g2(), None);
            values(theta)
        };
        assert_eq!(second_step(MuonConfig::new().with_momentum(0.0)), alone);
        let heavy_ball = second_step(MuonConfig::new().with_nesterov(false));
        let nesterov = second_step(MuonConfig::new());
        let distance = |a: &[f32]| {
            a.iter()
                .zip(&alone)
                .map(|(x, y)| (x - y).abs())
                .sum::<f32>()
        };
        assert!(distance(&nesterov) > 0.0, "{nesterov:?}");
        assert!(
            distance(&heavy_ball) > distance(&nesterov),
            "{heavy_ball:?} {nesterov:?}"
        );
    }

    /// The shape factors for A = fan-out, B = fan-in, and the layout: burn's [fan_in 2, fan_out
    /// 8] weight is torch's [8, 2], scaled by √4 = 2 under `original`.
    #[test]
    fn adjust_lr_fn_scales_by_torch_shape() {
        assert_eq!(AdjustLrFn::Original.ratio(8, 2), 2.0);
        assert_eq!(AdjustLrFn::Original.ratio(2, 8), 1.0);
        assert_eq!(AdjustLrFn::MatchRmsAdamw.ratio(2, 16), 0.8);
        assert_eq!(AdjustLrFn::SpectralUnclamped.ratio(2, 8), 0.5);
        let step = |adjust: AdjustLrFn, dims: [usize; 2]| {
            let muon = MuonConfig::new()
                .with_weight_decay(0.0)
                .with_adjust_lr_fn(Some(adjust))
                .build()
                .unwrap();
            let theta = Tensor::<2>::zeros(dims, &device());
            let grad = Tensor::<2>::ones(dims, &device());
            let (theta, _) = muon.step(1.0, theta, grad, None);
            values(theta.abs()).iter().copied().fold(0.0f32, f32::max)
        };
        let tall = step(AdjustLrFn::Original, [2, 8]);
        let wide = step(AdjustLrFn::Original, [8, 2]);
        let unclamped = step(AdjustLrFn::SpectralUnclamped, [8, 2]);
        assert!((tall / wide - 2.0).abs() < 1e-6, "{tall} {wide}");
        assert!((unclamped / wide - 0.5).abs() < 1e-6, "{unclamped} {wide}");
    }

    /// Parameters that are not 2-D take AdamW's step, with AdamW's state.
    #[test]
    fn other_ranks_take_adamw_steps() {
        let muon = MuonConfig::new().build().unwrap();
        let adamw = AdamConfig::adamw().build().unwrap();
        let theta = Tensor::<1>::from_floats([1.0, -2.0, 0.5], &device());
        let grad = Tensor::<1>::from_floats([0.5, -1.0, 0.25], &device());
        let (expected, adam_state) = adamw.step(0.01, theta.clone(), grad.clone(), None);
        let (actual, state) = muon.step(0.01, theta, grad, None);
        expected.to_data().assert_eq(&actual.to_data(), true);
        let state = state.unwrap();
        assert!(state.momentum_buffer.is_none());
        assert_eq!(state.step, 1);
        state
            .exp_avg_sq
            .unwrap()
            .to_data()
            .assert_eq(&adam_state.unwrap().exp_avg_sq.to_data(), true);
    }

}
