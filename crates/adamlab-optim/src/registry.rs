//! The catalogue of optimizers: one line per optimizer in [`REGISTRY`](crate::REGISTRY), which the
//! CLI, `adamlab verify`, `adamlab optimizers`, the benchmarks and the shared test suite read.
//! None of them names an optimizer.
//!
//! An optimizer's entry gives its name, a one-line summary, its reference implementation, its
//! hyper-parameters (torch's keyword names, defaults, ranges, help) and how to build it from
//! resolved values. [`OptimizerSpec::parse`] turns `--optimizer 'sgd(momentum=0.9)'` into a
//! checked spec, and [`OptimizerSpec::build`] into an optimizer.

use crate::hyper::{Args, ConfigError, HyperParam, CycledMomentum, Value};
use crate::spec::{Expr, SyntaxError, parse_call};
use burn::module::{Module, ModuleMapper, Param, ParamGroup};
use crate::fused::{DynItem, DynStepped};
use burn::optim::{
    DynOptimizer, LearningRate, ModuleOptimizer, Optimizer, RecordState, StateSource,
};
use burn::tensor::Tensor;
use burn::tensor::kind::BridgeTensor;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// One optimizer of the catalogue.
pub struct OptimizerEntry {
    /// The name used on the command line: `sgd`, `adamw`, `burn-adam`.
    pub name: &'static str,
    /// One line: what it is.
    pub summary: &'static str,
    /// The implementation it is proven against: `torch.optim.SGD (torch 2.15)`.
    pub reference: &'static str,
    /// Its hyper-parameters, `lr` first, with torch's names and defaults.
    pub params: &'static [HyperParam],
    /// Builds it from values resolved and range-checked against `params`. Checks that involve
    /// several values (torch's own, such as nesterov needing momentum) happen here.
    pub build: fn(&Args) -> Result<Box<dyn AnyOptimizer>, ConfigError>,
}

impl fmt::Debug for OptimizerEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OptimizerEntry").field("name", &self.name).finish()
    }
}

/// Any optimizer, behind `dyn`, as the registry builds it: what training and verification need of
/// an optimizer beyond burn's [`Optimizer`]: a module optimizer for training, the type-erased
/// per-tensor step for replays, parameter groups, and the weights to evaluate with.
///
/// Every `O: Optimizer + EvalWeights` is one, so an optimizer written anywhere (in another crate
/// too) plugs into the training loop and the verification harness.
pub trait AnyOptimizer: Send + Sync {
    /// The optimizer for a whole module.
    fn module_optimizer(&self) -> ModuleOptimizer;
    /// The per-tensor step, type-erased, as [`ModuleOptimizer`] runs it.
    fn dyn_optimizer(&self) -> Arc<dyn DynOptimizer>;
    /// One step for many parameters, type-erased: each as [`DynOptimizer::step_dyn`] steps it,
    /// but on a GPU backend the fused optimizers step the parameters that share coefficients in
    /// one kernel launch (or one per few dozen tensors) instead of one each, as torch's
    /// multi-tensor (`foreach`) path does. θ and the states come back in the order they came.
    fn step_many_dyn(&self, lr: LearningRate, items: Vec<DynItem>) -> Vec<DynStepped>;
    /// Whether [`step_many_dyn`](Self::step_many_dyn) shares kernel launches between tensors on
    /// wgpu; otherwise it steps them one by one (the 8-bit optimizers: one launch per tensor).
    fn has_multi_tensor_step(&self) -> bool;
    /// `optimizer` with this optimizer for the parameters of `group`.
    fn with_group(&self, optimizer: ModuleOptimizer, group: ParamGroup) -> ModuleOptimizer;
    /// Whether the weights to evaluate differ from the weights trained (schedule-free methods).
    fn has_eval_weights(&self) -> bool;
    /// The weight to evaluate for one parameter of rank `rank`, from the trained weight and the
    /// state recorded under `prefix` in `state` (see [`eval_weights`]).
    fn eval_param_dyn(
        &self,
        rank: usize,
        param: BridgeTensor,
        prefix: &str,
        state: &mut StateSource,
    ) -> BridgeTensor;
}

/// Evaluation weights that differ from the trained ones (schedule-free methods keep the trained
/// point `y` in the parameters and derive the evaluation point `x` from their state).
pub trait EvalWeights: Optimizer {
    /// Whether [`EvalWeights::eval_param`] differs from the identity.
    const HAS_EVAL_WEIGHTS: bool = false;

    /// The weight to evaluate, given the trained `param` and its state. Default: `param`.
    fn eval_param<const D: usize>(&self, param: Tensor<D>, _state: &Self::State<D>) -> Tensor<D> {
        param
    }
}

impl<O: Optimizer + EvalWeights> AnyOptimizer for O {
    fn module_optimizer(&self) -> ModuleOptimizer {
        ModuleOptimizer::from(self.clone())
    }

    fn dyn_optimizer(&self) -> Arc<dyn DynOptimizer> {
        Arc::new(self.clone())
    }

    fn step_many_dyn(&self, lr: LearningRate, items: Vec<DynItem>) -> Vec<DynStepped> {
        match crate::fused::step_many_dyn(self, lr, items) {
            Ok(stepped) => stepped,
            Err(items) => items
                .into_iter()
                .map(|i| self.step_dyn(i.rank, lr, i.theta, i.grad, i.state))
                .collect(),
        }
    }

    fn has_multi_tensor_step(&self) -> bool {
        crate::fused::has_multi_tensor_step(self)
    }

    fn with_group(&self, optimizer: ModuleOptimizer, group: ParamGroup) -> ModuleOptimizer {
        optimizer.with_group(group, self.clone(), None)
    }

    fn has_eval_weights(&self) -> bool {
        O::HAS_EVAL_WEIGHTS
    }

    fn eval_param_dyn(
        &self,
        rank: usize,
        param: BridgeTensor,
        prefix: &str,
        state: &mut StateSource,
    ) -> BridgeTensor {
        macro_rules! eval {
            ($($d:literal)*) => {
                match rank {
                    $($d => {
                        let param = Tensor::<$d>::from_bridge(param);
                        let device = param.device();
                        match <O::State<$d> as RecordState>::state_unflatten(prefix, state, &device) {
                            Some(s) => self.eval_param(param, &O::to_device(s, &device)).into_bridge(),
                            None => param.into_bridge(),
                        }
                    })*
                    _ => param,
                }
            };
        }
        eval!(1 2 3 4 5 6 7 8)
    }
}

/// The weights to evaluate `module` with, after training it with `optimizer` (built from
/// `lab`): `module` itself for most optimizers, the evaluation point for schedule-free ones.
pub fn eval_weights<M: Module>(lab: &dyn AnyOptimizer, optimizer: &ModuleOptimizer, module: M) -> M {
    if !lab.has_eval_weights() {
        return module;
    }
    // burn keeps the record's fields private; its burnpack bytes are the public way in.
    let reader = optimizer
        .into_bytes()
        .map_err(|e| e.to_string())
        .and_then(|bytes| burn_pack::Reader::from_bytes(bytes).map_err(|e| e.to_string()))
        .unwrap_or_else(|err| panic!("an optimizer's own record reads back: {err}"));
    let mut source = StateSource::new(reader.scalars().clone());
    for tensor in reader.into_tensors().expect("an optimizer's own record reads back") {
        let (name, dtype, shape, _, bytes) = tensor.into_parts().expect("an optimizer's own record reads back");
        source.insert_tensor(name, burn::tensor::TensorData::from_bytes(bytes, shape, dtype));
    }
    struct Mapper<'a> {
        lab: &'a dyn AnyOptimizer,
        source: StateSource,
    }
    impl ModuleMapper for Mapper<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let id = param.id;
            let bridge = param.val().into_bridge();
            let mapped = self
                .lab
                .eval_param_dyn(D, bridge, &id.val().to_string(), &mut self.source);
            Param::initialized(id, Tensor::from_bridge(mapped))
        }
    }
    module.map(&mut Mapper { lab, source })
}

/// A spec that cannot be used. One line naming what is wrong and what is valid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// The text does not parse.
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    /// No optimizer has this name.
    #[error("unknown optimizer `{name}`: known optimizers are {known}")]
    UnknownOptimizer {
        /// The name given.
        name: String,
        /// Every registered name.
        known: String,
    },
    /// The optimizer has no such keyword.
    #[error("{optimizer} has no keyword `{keyword}`{elsewhere}: its keywords are {valid}")]
    UnknownKeyword {
        /// The optimizer.
        optimizer: &'static str,
        /// The keyword given.
        keyword: String,
        /// `" (it belongs to sgd, rmsprop)"` when other optimizers have it.
        elsewhere: String,
        /// The optimizer's keywords.
        valid: String,
    },
    /// A keyword given twice, or a positional argument.
    #[error("{0}")]
    Malformed(String),
    /// A value of the wrong kind or out of range.
    #[error("{optimizer}: {source}")]
    Config {
        /// The optimizer.
        optimizer: &'static str,
        /// What is wrong.
        source: ConfigError,
    },
}

/// Every optimizer, in the order `adamlab optimizers` lists them.
pub fn registry() -> &'static [OptimizerEntry] {
    crate::REGISTRY
}

/// The entry named `name`.
pub fn lookup(name: &str) -> Option<&'static OptimizerEntry> {
    registry().iter().find(|entry| entry.name == name)
}

/// A checked optimizer spec: the entry and every hyper-parameter resolved.
#[derive(Clone)]
pub struct OptimizerSpec {
    entry: &'static OptimizerEntry,
    args: Args,
    given: Vec<&'static str>,
}

impl fmt::Debug for OptimizerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.canonical())
    }
}

impl PartialEq for OptimizerSpec {
    fn eq(&self, other: &Self) -> bool {
        self.entry.name == other.entry.name && self.args == other.args
    }
}

impl OptimizerSpec {
    /// Parses and checks `text` against the registry: the name, every keyword and every value.
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        let call = parse_call(text)?;
        let entry = lookup(&call.name).ok_or_else(|| SpecError::UnknownOptimizer {
            name: call.name.clone(),
            known: registry().iter().map(|e| e.name).collect::<Vec<_>>().join(", "),
        })?;
        Self::from_call(entry, call)
    }

    /// Parses `text` for `entry`, which need not be in the registry: an optimizer defined in
    /// another crate gets the same spec language and checks (its name must be the call's).
    pub fn parse_for(entry: &'static OptimizerEntry, text: &str) -> Result<Self, SpecError> {
        let call = parse_call(text)?;
        if call.name != entry.name {
            return Err(SpecError::UnknownOptimizer {
                name: call.name,
                known: entry.name.to_string(),
            });
        }
        Self::from_call(entry, call)
    }

    fn from_call(entry: &'static OptimizerEntry, call: crate::spec::Call) -> Result<Self, SpecError> {
        let mut given: BTreeMap<&'static str, Value> = BTreeMap::new();
        for arg in call.args {
            let Some(keyword) = arg.keyword else {
                return Err(SpecError::Malformed(format!(
                    "{}: give hyper-parameters by keyword (`{}(lr=0.01)`), not by position",
                    entry.name, entry.name
                )));
            };
            let Some(param) = entry.params.iter().find(|p| p.name == keyword) else {
                return Err(unknown_keyword(entry, &keyword));
            };
            let Expr::Value(value) = arg.value else {
                return Err(SpecError::Malformed(format!(
                    "{}: `{keyword}` takes a value, not a call",
                    entry.name
                )));
            };
            param.check_f32(&value).map_err(|source| SpecError::Config {
                optimizer: entry.name,
                source,
            })?;
            if given.insert(param.name, value).is_some() {
                return Err(SpecError::Malformed(format!(
                    "{}: `{keyword}` is given twice",
                    entry.name
                )));
            }
        }
        let spec = Self {
            entry,
            args: Args::resolve(entry.params, &given),
            given: given.keys().copied().collect(),
        };
        // Cross-parameter checks live in the optimizer's build; run them now so that a bad spec
        // is refused before any work starts.
        spec.build()?;
        Ok(spec)
    }

    /// This spec with `keyword` set to `value` (checked), as `--lr` or the legacy Adam flags do.
    pub fn with(&self, keyword: &str, value: Value) -> Result<Self, SpecError> {
        let Some(param) = self.entry.params.iter().find(|p| p.name == keyword) else {
            return Err(unknown_keyword(self.entry, keyword));
        };
        param.check_f32(&value).map_err(|source| SpecError::Config {
            optimizer: self.entry.name,
            source,
        })?;
        let mut given: BTreeMap<&'static str, Value> = self
            .given
            .iter()
            .map(|k| (*k, self.args.values()[k].clone()))
            .collect();
        given.insert(param.name, value);
        let spec = Self {
            entry: self.entry,
            args: Args::resolve(self.entry.params, &given),
            given: given.keys().copied().collect(),
        };
        spec.build()?;
        Ok(spec)
    }

    /// The registry entry.
    pub fn entry(&self) -> &'static OptimizerEntry {
        self.entry
    }

    /// The optimizer's name.
    pub fn name(&self) -> &'static str {
        self.entry.name
    }

    /// Every hyper-parameter's value.
    pub fn args(&self) -> &Args {
        &self.args
    }

    /// Whether `keyword` was given rather than defaulted.
    pub fn is_given(&self, keyword: &str) -> bool {
        self.given.contains(&keyword)
    }

    /// The learning rate: given in the spec, or the optimizer's torch default.
    pub fn lr(&self) -> f64 {
        self.args.f64("lr")
    }

    /// The optimizer.
    pub fn build(&self) -> Result<Box<dyn AnyOptimizer>, SpecError> {
        (self.entry.build)(&self.args).map_err(|source| SpecError::Config {
            optimizer: self.entry.name,
            source,
        })
    }

    /// The optimizer, reading its β₁ (or momentum) from `momentum` at every step once it is set:
    /// how OneCycleLR cycles it. An error if the optimizer does not support it (torch's OneCycleLR
    /// refuses optimizers without `momentum` or `betas` the same way).
    pub fn build_cycling_momentum(&self, momentum: CycledMomentum) -> Result<Box<dyn AnyOptimizer>, SpecError> {
        let args = self.args.with_cycled_momentum(momentum);
        let optimizer = (self.entry.build)(&args).map_err(|source| SpecError::Config {
            optimizer: self.entry.name,
            source,
        })?;
        if !args.took_cycled_momentum() {
            return Err(SpecError::Malformed(format!(
                "{} cannot have its momentum cycled by the schedule: use cycle_momentum=false",
                self.entry.name
            )));
        }
        Ok(optimizer)
    }

    /// Every value written out, in the registry's order: `sgd(lr=0.01, momentum=0.9, …)`. Two
    /// specs that build the same optimizer have the same canonical form.
    pub fn canonical(&self) -> String {
        let values = self.args.values();
        let args: Vec<String> = self
            .entry
            .params
            .iter()
            .map(|p| format!("{}={}", p.name, p.kind.show(&values[p.name])))
            .collect();
        format!("{}({})", self.entry.name, args.join(", "))
    }
}

impl fmt::Display for OptimizerSpec {
    /// The name and the values given: `sgd(momentum=0.9)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.given.is_empty() {
            return f.write_str(self.entry.name);
        }
        let values = self.args.values();
        let args: Vec<String> = self
            .entry
            .params
            .iter()
            .filter(|p| self.given.contains(&p.name))
            .map(|p| format!("{}={}", p.name, p.kind.show(&values[p.name])))
            .collect();
        write!(f, "{}({})", self.entry.name, args.join(", "))
    }
}

fn unknown_keyword(entry: &'static OptimizerEntry, keyword: &str) -> SpecError {
    let owners: Vec<&str> = registry()
        .iter()
        .filter(|e| e.params.iter().any(|p| p.name == keyword))
        .map(|e| e.name)
        .collect();
    SpecError::UnknownKeyword {
        optimizer: entry.name,
        keyword: keyword.to_string(),
        elsewhere: if owners.is_empty() {
            String::new()
        } else {
            format!(" (it belongs to {})", owners.join(", "))
        },
        valid: entry.params.iter().map(|p| p.name).collect::<Vec<_>>().join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_value;
    use crate::hyper::HyperValue;

    #[test]
    fn every_default_parses_and_lies_in_its_range() {
        for entry in registry() {
            assert_eq!(entry.params.first().map(|p| p.name), Some("lr"), "{}: lr first", entry.name);
            for param in entry.params {
                let value = parse_value(param.default)
                    .unwrap_or_else(|err| panic!("{}.{}: {err}", entry.name, param.name));
                param
                    .check(&value)
                    .unwrap_or_else(|err| panic!("{}.{}: {err}", entry.name, param.name));
                assert!(!param.help.is_empty(), "{}.{}", entry.name, param.name);
            }
            OptimizerSpec::parse(entry.name)
                .unwrap_or_else(|err| panic!("{}: defaults must build: {err}", entry.name));
        }
    }

    /// The few defaults stated apart from their configuration's declaration agree with it:
    /// AdamW's weight decay (`AdamConfig::adamw`), Lion's `init_lr` (its `lr`), Muon's AdamW,
    /// AdamW8bit's weight decay (`Adam8bitConfig::adamw`).
    #[test]
    fn defaults_stated_apart_agree_with_their_configurations() {
        let defaults = |entry: &OptimizerEntry| Args::resolve(entry.params, &BTreeMap::new());
        let adamw = crate::AdamConfig::adamw();
        let from_registry = adamw.clone().with_args(&defaults(&crate::adam::ADAMW));
        assert_eq!(format!("{from_registry:?}"), format!("{adamw:?}"));
        let lion = defaults(&crate::lion::LION);
        assert_eq!(lion.f64("lr"), crate::lion::LionConfig::new().init_lr);
        let muon = defaults(&crate::muon::MUON);
        assert_eq!(muon.pair("adamw_betas"), (adamw.beta1, adamw.beta2));
        assert_eq!(muon.f64("adamw_eps"), adamw.eps);
        assert_eq!(muon.f64("adamw_weight_decay"), adamw.weight_decay);
        assert_eq!(format!("{:?}", crate::muon::MuonConfig::new().adamw), format!("{adamw:?}"));
        // `state_dtype` is set by the builds, not by `with_args`.
        for entry in [&crate::adam::ADAM, &crate::adam::ADAMW] {
            let value = defaults(entry).value(crate::adam::STATE_DTYPE.name).cloned();
            let dtype = crate::adam::StateDtype::from_value(&value.expect("declared"));
            assert_eq!(dtype, adamw.state_dtype, "{}", entry.name);
        }
        let adamw8bit = crate::adam8bit::Adam8bitConfig::adamw();
        let from_registry = adamw8bit.clone().with_args(&defaults(&crate::adam8bit::ADAMW8BIT));
        assert_eq!(format!("{from_registry:?}"), format!("{adamw8bit:?}"));
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = registry().iter().map(|e| e.name).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }

    #[test]
    fn bad_specs_are_one_line_naming_what_is_wrong() {
        let cases = [
            ("nosuch", "unknown optimizer `nosuch`"),
            ("adam(momentum=0.9)", "adam has no keyword `momentum`"),
            ("adam(lr=-1)", "invalid lr -1"),
            ("adam(betas=(0.9, 1.0))", "invalid betas"),
            ("adam(betas=0.9)", "invalid betas"),
            ("adam(amsgrad=1)", "invalid amsgrad"),
            ("adamw(state_dtype=f16)", "invalid state_dtype"),
            ("adam(0.1)", "by keyword"),
            ("adam(lr=0.1, lr=0.2)", "given twice"),
            ("adam(lr=", "cannot parse"),
        ];
        for (spec, expected) in cases {
            let message = OptimizerSpec::parse(spec).err().unwrap().to_string();
            assert!(message.contains(expected), "{spec}: {message}");
            assert_eq!(message.lines().count(), 1, "{spec}: {message}");
        }
    }

    #[test]
    fn a_spec_prints_what_was_given_and_its_canonical_form_prints_everything() {
        let spec = OptimizerSpec::parse("adamw(amsgrad=True, betas=(0.8, 0.9))").unwrap();
        assert_eq!(spec.to_string(), "adamw(betas=(0.8, 0.9), amsgrad=true)");
        assert!(spec.canonical().starts_with("adamw(lr=0.001, betas=(0.8, 0.9), eps=1e-8, weight_decay=0.01"));
        assert_eq!(OptimizerSpec::parse(&spec.canonical()).unwrap(), spec);
        assert_eq!(spec.with("lr", Value::Number(0.5)).unwrap().lr(), 0.5);
    }
}
