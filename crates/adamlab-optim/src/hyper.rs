//! Hyper-parameters as the registry declares them: torch's keyword name, the kind of value and
//! its valid range, the default (written as it would be in a spec), and one line of help.
//!
//! Each optimizer file declares its hyper-parameters as `const`s of [`HyperParam`]; its config's
//! `validate` checks its fields against the same constants, so the range printed by `adamlab
//! optimizers` and the range enforced by the library are one and the same.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// An interval of real numbers, each end open or closed. Infinite ends are open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// Lower end.
    pub min: f64,
    /// Whether `min` itself is allowed.
    pub min_inclusive: bool,
    /// Upper end.
    pub max: f64,
    /// Whether `max` itself is allowed.
    pub max_inclusive: bool,
}

impl Interval {
    /// Any finite number.
    pub const ANY: Self = Self::new(f64::NEG_INFINITY, false, f64::INFINITY, false);
    /// `[0, ∞)`: learning rates, weight decays.
    pub const NON_NEGATIVE: Self = Self::new(0.0, true, f64::INFINITY, false);
    /// `(0, ∞)`.
    pub const POSITIVE: Self = Self::new(0.0, false, f64::INFINITY, false);
    /// `[f32::MIN_POSITIVE, f32::MAX]`, the normal f32 numbers: the `eps` that torch requires to
    /// be positive (Adam's and AdamW's, Muon's and its AdamW's). The optimizers compute in f32,
    /// where a smaller ε is subnormal or 0 (`--eps 1e-320` became a division by zero and NaN
    /// weights) and a larger one is infinite. Optimizers whose reference accepts ε = 0 (Adagrad,
    /// Adadelta, RMSprop, Adafactor) keep torch's range.
    pub const EPS: Self = Self::new(f32::MIN_POSITIVE as f64, true, f32::MAX as f64, true);
    /// `[0, 1)`: decay rates such as β₁ and β₂.
    pub const UNIT_OPEN_RIGHT: Self = Self::new(0.0, true, 1.0, false);
    /// `[0, 1]`.
    pub const UNIT: Self = Self::new(0.0, true, 1.0, true);

    /// The interval from `min` to `max`.
    pub const fn new(min: f64, min_inclusive: bool, max: f64, max_inclusive: bool) -> Self {
        Self {
            min,
            min_inclusive,
            max,
            max_inclusive,
        }
    }

    /// Whether `value` is finite and inside the interval.
    pub fn contains(&self, value: f64) -> bool {
        let above = if self.min_inclusive {
            value >= self.min
        } else {
            value > self.min
        };
        let below = if self.max_inclusive {
            value <= self.max
        } else {
            value < self.max
        };
        value.is_finite() && above && below
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = |v: f64| {
            if v == f64::INFINITY {
                "∞".to_string()
            } else if v == f64::NEG_INFINITY {
                "-∞".to_string()
            } else if v != 0.0 && !(1e-4..1e16).contains(&v.abs()) {
                format!("{v:e}")
            } else {
                format!("{v}")
            }
        };
        write!(
            f,
            "{}{}, {}{}",
            if self.min_inclusive { "[" } else { "(" },
            end(self.min),
            end(self.max),
            if self.max_inclusive { "]" } else { ")" }
        )
    }
}

/// What a hyper-parameter takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// A real number in an interval.
    Float(Interval),
    /// A whole number in `[min, max]`.
    Int {
        /// Smallest value.
        min: i64,
        /// Largest value.
        max: i64,
    },
    /// `true` or `false`.
    Bool,
    /// One of these names.
    Choice(&'static [&'static str]),
    /// A tuple, element by element: `betas=(0.9, 0.999)`.
    Tuple(&'static [Kind]),
    /// A list of any length, every element of the inner kind: `milestones=[30, 80]`.
    List(&'static Kind),
    /// `None`, or a value of the inner kind.
    Optional(&'static Kind),
}

impl Kind {
    /// Checks `value` against this kind, returning it normalised (ints as whole numbers).
    pub fn check(&self, value: &Value) -> Result<(), String> {
        match (self, value) {
            (Kind::Float(interval), Value::Number(x)) if interval.contains(*x) => Ok(()),
            (Kind::Float(interval), Value::Number(_)) => Err(format!("a number in {interval}")),
            (Kind::Int { min, max }, Value::Number(x))
                if x.fract() == 0.0 && *x >= *min as f64 && *x <= *max as f64 =>
            {
                Ok(())
            }
            (Kind::Int { .. }, Value::Number(_)) => Err(self.to_string()),
            (Kind::Bool, Value::Bool(_)) => Ok(()),
            (Kind::Choice(names), Value::Name(name)) if names.contains(&name.as_str()) => Ok(()),
            (Kind::Tuple(kinds), Value::Tuple(values)) if kinds.len() == values.len() => {
                for (kind, value) in kinds.iter().zip(values) {
                    kind.check(value).map_err(|_| self.to_string())?;
                }
                Ok(())
            }
            (Kind::List(kind), Value::Tuple(values)) => {
                for value in values {
                    kind.check(value).map_err(|_| self.to_string())?;
                }
                Ok(())
            }
            (Kind::Optional(_), Value::None) => Ok(()),
            (Kind::Optional(inner), value) => inner.check(value).map_err(|_| self.to_string()),
            _ => Err(self.to_string()),
        }
    }
}

impl Kind {
    /// `value` as a spec writes it for this kind: whole numbers without `.0` where the kind
    /// takes whole numbers (`t_max=7`, `milestones=[30, 80]`), else as [`Value`] prints it.
    pub fn show(&self, value: &Value) -> String {
        match (self, value) {
            (Kind::Int { .. }, Value::Number(x)) if x.fract() == 0.0 => format!("{}", *x as i64),
            (Kind::Optional(inner), value) => inner.show(value),
            (Kind::List(inner), Value::Tuple(values)) => {
                let parts: Vec<String> = values.iter().map(|v| inner.show(v)).collect();
                format!("[{}]", parts.join(", "))
            }
            (Kind::Tuple(kinds), Value::Tuple(values)) if kinds.len() == values.len() => {
                let parts: Vec<String> = kinds.iter().zip(values).map(|(k, v)| k.show(v)).collect();
                format!("({})", parts.join(", "))
            }
            (_, value) => value.to_string(),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Float(interval) => write!(f, "a number in {interval}"),
            Kind::Int { min, max } if *max == i64::MAX => write!(f, "a whole number ≥ {min}"),
            Kind::Int { min, max } => write!(f, "a whole number in [{min}, {max}]"),
            Kind::Bool => f.write_str("true or false"),
            Kind::Choice(names) => write!(f, "one of {}", names.join(", ")),
            Kind::Tuple(kinds) => {
                let parts: Vec<String> = kinds.iter().map(ToString::to_string).collect();
                write!(f, "a tuple ({})", parts.join(", "))
            }
            Kind::List(inner) => write!(f, "a list, each element {inner}"),
            Kind::Optional(inner) => write!(f, "None or {inner}"),
        }
    }
}

/// A value written in a spec (declared with the spec language, which parses it).
pub use crate::spec::Value;

/// The parameter of `params` named `name`, found at compile time: an entry that reuses another
/// optimizer's keywords names them (`param(AdamConfig::PARAMS, "eps")`) instead of indexing its
/// list, and a name that is not there fails the build.
pub const fn param(params: &[HyperParam], name: &str) -> HyperParam {
    let mut i = 0;
    while i < params.len() {
        let (a, b) = (params[i].name.as_bytes(), name.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return params[i];
            }
        }
        i += 1;
    }
    panic!("no hyper-parameter of that name in the list")
}

/// One hyper-parameter of an optimizer, as the registry lists it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HyperParam {
    /// torch's keyword name: `lr`, `betas`, `weight_decay`, …
    pub name: &'static str,
    /// Its kind and valid range.
    pub kind: Kind,
    /// The default, written as in a spec (`0.9`, `(0.9, 0.999)`, `false`, `None`).
    pub default: &'static str,
    /// One line of help.
    pub help: &'static str,
}

impl HyperParam {
    /// Checks an optimizer's number against this parameter's range ([`HyperParam::check_f32`]);
    /// the error names the parameter.
    pub fn check_f64(&self, value: f64) -> Result<f64, ConfigError> {
        self.check_f32(&Value::Number(value)).map(|()| value)
    }

    /// Checks an optimizer's tuple of numbers against this parameter's kind
    /// ([`HyperParam::check_f32`]).
    pub fn check_floats(&self, values: &[f64]) -> Result<(), ConfigError> {
        self.check_f32(&Value::Tuple(values.iter().copied().map(Value::Number).collect()))
    }

    /// Checks `value` against this parameter's kind and, as an optimizer's steps compute in f32,
    /// that every number in it is finite in f32 (a larger one would be infinite there, and burn's
    /// built-ins assert on it); the error names the parameter. Schedules, which compute in f64 as
    /// torch's do in Python floats, use [`HyperParam::check`].
    pub fn check_f32(&self, value: &Value) -> Result<(), ConfigError> {
        self.check(value)?;
        fn finite_in_f32(value: &Value) -> bool {
            match value {
                Value::Number(x) => (*x as f32).is_finite(),
                Value::Tuple(values) => values.iter().all(finite_in_f32),
                _ => true,
            }
        }
        if finite_in_f32(value) {
            return Ok(());
        }
        Err(ConfigError::OutOfRange {
            name: self.name,
            value: value.to_string(),
            expected: format!("{} that f32 holds (|x| ≤ {:e})", self.kind, f32::MAX),
        })
    }

    /// Checks `value` against this parameter's kind; the error names the parameter and what it
    /// accepts.
    pub fn check(&self, value: &Value) -> Result<(), ConfigError> {
        self.kind.check(value).map_err(|expected| ConfigError::OutOfRange {
            name: self.name,
            value: value.to_string(),
            expected,
        })
    }
}

/// A hyper-parameter value the optimizer cannot take. One line, naming the parameter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A value outside its parameter's range.
    #[error("invalid {name} {value}: it must be {expected}")]
    OutOfRange {
        /// The parameter, by torch's keyword name.
        name: &'static str,
        /// The value given.
        value: String,
        /// What the parameter accepts.
        expected: String,
    },
    /// Values that are each valid but not together (torch's own checks, e.g. nesterov without
    /// momentum).
    #[error("{0}")]
    Incompatible(String),
}

/// Checks a learning rate taken from a user: finite and ≥ 0, as torch.optim requires.
///
/// burn passes the learning rate to every step rather than to the optimizer's configuration, so
/// it is checked apart from the configs' `validate`.
pub fn check_learning_rate(lr: f64) -> Result<(), ConfigError> {
    crate::keywords::LR.check(&Value::Number(lr))
}

/// The momentum (β₁, or SGD's momentum) a schedule cycles, shared between the schedule, which
/// sets it before each step, and the optimizer, which reads it at every step: how OneCycleLR's
/// cycled β₁ (or momentum) reaches an optimizer whose hyper-parameters are otherwise fixed when
/// it is built. Empty until set.
#[derive(Debug, Clone)]
pub struct CycledMomentum(Arc<AtomicU64>);

impl Default for CycledMomentum {
    fn default() -> Self {
        Self(Arc::new(AtomicU64::new(f64::NAN.to_bits())))
    }
}

impl CycledMomentum {
    /// The value, if set.
    pub fn get(&self) -> Option<f64> {
        let value = f64::from_bits(self.0.load(Ordering::Relaxed));
        (!value.is_nan()).then_some(value)
    }

    /// Sets the value.
    pub fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }
}

/// The cycled momentum offered to an optimizer's build, and whether the build took it.
#[derive(Debug)]
struct Cycled {
    momentum: CycledMomentum,
    taken: AtomicBool,
}

/// The hyper-parameters of one optimizer, every one resolved (given or defaulted) and checked.
#[derive(Debug, Clone)]
pub struct Args {
    values: BTreeMap<&'static str, Value>,
    cycled: Option<Arc<Cycled>>,
}

impl PartialEq for Args {
    fn eq(&self, other: &Self) -> bool {
        self.values == other.values
    }
}

impl Args {
    /// Values for `params`: each one given in `given` or its default. The values given are not
    /// checked here ([`OptimizerSpec`](crate::OptimizerSpec) checks them); an entry's build checks
    /// them again through its configuration's `validate`.
    pub fn resolve(
        params: &'static [HyperParam],
        given: &BTreeMap<&'static str, Value>,
    ) -> Self {
        let values = params
            .iter()
            .map(|p| {
                let value = given.get(p.name).cloned().unwrap_or_else(|| {
                    crate::spec::parse_value(p.default)
                        .unwrap_or_else(|err| panic!("default of {}: {err}", p.name))
                });
                (p.name, value)
            })
            .collect();
        Self { values, cycled: None }
    }

    /// These values, offering `momentum` to the build as the cycled β₁ or momentum.
    pub(crate) fn with_cycled_momentum(&self, momentum: CycledMomentum) -> Self {
        Self {
            values: self.values.clone(),
            cycled: Some(Arc::new(Cycled {
                momentum,
                taken: AtomicBool::new(false),
            })),
        }
    }

    /// Whether the build took the cycled momentum offered (see [`Args::cycled_momentum`]).
    pub(crate) fn took_cycled_momentum(&self) -> bool {
        self.cycled.as_ref().is_some_and(|c| c.taken.load(Ordering::Relaxed))
    }

    /// The β₁ (or momentum) a schedule cycles, when one does (OneCycleLR): an optimizer that has
    /// `betas` or `momentum` calls this in its build and, at each step, uses the cell's value
    /// instead of its configured β₁ when the cell is set.
    pub fn cycled_momentum(&self) -> Option<CycledMomentum> {
        let cycled = self.cycled.as_ref()?;
        cycled.taken.store(true, Ordering::Relaxed);
        Some(cycled.momentum.clone())
    }

    /// Every value, by name.
    pub fn values(&self) -> &BTreeMap<&'static str, Value> {
        &self.values
    }

    /// The value of `name`, if this optimizer declares it.
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    fn get(&self, name: &str) -> &Value {
        self.values
            .get(name)
            .unwrap_or_else(|| panic!("`{name}` is not a declared hyper-parameter"))
    }

    /// A number. Panics if `name` is not declared as a number (a bug in the optimizer's entry).
    pub fn f64(&self, name: &str) -> f64 {
        match self.get(name) {
            Value::Number(x) => *x,
            other => panic!("`{name}` is {other}, not a number"),
        }
    }

    /// A whole number.
    pub fn usize(&self, name: &str) -> usize {
        self.f64(name) as usize
    }

    /// A boolean.
    pub fn bool(&self, name: &str) -> bool {
        match self.get(name) {
            Value::Bool(b) => *b,
            other => panic!("`{name}` is {other}, not a boolean"),
        }
    }

    /// A name from a choice.
    pub fn name(&self, name: &str) -> &str {
        match self.get(name) {
            Value::Name(s) => s,
            other => panic!("`{name}` is {other}, not a name"),
        }
    }

    /// A tuple of numbers (`None` elements read as NaN; use [`Args::optional_floats`] for those).
    pub fn floats(&self, name: &str) -> Vec<f64> {
        self.optional_floats(name)
            .into_iter()
            .map(|x| x.unwrap_or(f64::NAN))
            .collect()
    }

    /// A pair of numbers, such as `betas`.
    pub fn pair(&self, name: &str) -> (f64, f64) {
        match self.floats(name)[..] {
            [a, b] => (a, b),
            _ => panic!("`{name}` is not a pair"),
        }
    }

    /// A tuple whose elements may be `None`.
    pub fn optional_floats(&self, name: &str) -> Vec<Option<f64>> {
        match self.get(name) {
            Value::Tuple(values) => values
                .iter()
                .map(|v| match v {
                    Value::Number(x) => Some(*x),
                    Value::None => None,
                    other => panic!("`{name}` holds {other}, not a number"),
                })
                .collect(),
            other => panic!("`{name}` is {other}, not a tuple"),
        }
    }

    /// A number or `None`.
    pub fn optional_f64(&self, name: &str) -> Option<f64> {
        match self.get(name) {
            Value::None => None,
            Value::Number(x) => Some(*x),
            other => panic!("`{name}` is {other}, not a number or None"),
        }
    }
}

/// A keyword before its optimizer gives it a default: torch's name, the kind of value it takes,
/// and one line of help. The keywords several optimizers share live in [`crate::keywords`]; an
/// optimizer's own are written in its [`hyper_config!`](crate::hyper_config) declaration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Keyword {
    /// torch's keyword name.
    pub name: &'static str,
    /// Its kind and valid range.
    pub kind: Kind,
    /// One line of help.
    pub help: &'static str,
}

impl Keyword {
    /// The hyper-parameter this keyword is with `default` (written as in a spec).
    pub const fn with_default(self, default: &'static str) -> HyperParam {
        HyperParam {
            name: self.name,
            kind: self.kind,
            default,
            help: self.help,
        }
    }

    /// This keyword with another line of help.
    pub const fn help(self, help: &'static str) -> Self {
        Self { help, ..self }
    }

    /// Checks `value` against this keyword's kind, and that it is finite in f32
    /// ([`HyperParam::check_f32`]); the error names the keyword.
    pub fn check(&self, value: &Value) -> Result<(), ConfigError> {
        self.with_default("").check_f32(value)
    }
}

/// A configuration field's type as a spec [`Value`]: how [`hyper_config!`](crate::hyper_config)
/// checks a field and sets it from the registry's [`Args`].
pub trait HyperValue: Sized {
    /// The field as a spec value.
    fn to_value(&self) -> Value;
    /// The field from a spec value its keyword's kind has checked.
    fn from_value(value: &Value) -> Self;
}

impl HyperValue for f64 {
    fn to_value(&self) -> Value {
        Value::Number(*self)
    }
    fn from_value(value: &Value) -> Self {
        match value {
            Value::Number(x) => *x,
            other => unreachable!("{other} is checked to be a number"),
        }
    }
}

impl HyperValue for usize {
    fn to_value(&self) -> Value {
        Value::Number(*self as f64)
    }
    fn from_value(value: &Value) -> Self {
        f64::from_value(value) as usize
    }
}

impl HyperValue for bool {
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
    fn from_value(value: &Value) -> Self {
        match value {
            Value::Bool(b) => *b,
            other => unreachable!("{other} is checked to be a boolean"),
        }
    }
}

impl HyperValue for (f64, f64, f64) {
    fn to_value(&self) -> Value {
        Value::Tuple(vec![Value::Number(self.0), Value::Number(self.1), Value::Number(self.2)])
    }
    fn from_value(value: &Value) -> Self {
        match value {
            Value::Tuple(values) if values.len() == 3 => (
                f64::from_value(&values[0]),
                f64::from_value(&values[1]),
                f64::from_value(&values[2]),
            ),
            other => unreachable!("{other} is checked to be a triple"),
        }
    }
}

impl HyperValue for Option<f64> {
    fn to_value(&self) -> Value {
        self.map_or(Value::None, Value::Number)
    }
    fn from_value(value: &Value) -> Self {
        match value {
            Value::None => None,
            other => Some(f64::from_value(other)),
        }
    }
}

/// Declares an optimizer's configuration once: the learning rate's keyword and default (burn
/// passes the rate to every step, so it has no field), then for each keyword the [`Keyword`]
/// (torch's name, kind and range, help) and the field or fields it sets, each with its doc
/// comment, type and default. A keyword with several fields is a tuple (`betas` sets `beta1` and
/// `beta2`). A default is one literal (`0.9`, `1e-8`, `false`), or a string holding what is both
/// the Rust value and the spec's text where that is not one literal (`"-0.8"`, `"None"`,
/// `"(3.4445, -4.775, 2.0315)"`).
///
/// It emits the `#[derive(Config)]` struct with those fields and defaults, and on it `PARAMS`
/// (the registry's list, `lr` first, each default written from the same literal as the field's),
/// `validate` (every field against its keyword's range, the error naming the keyword) and
/// `with_args` (the fields set from the registry's resolved values). Fields listed under `@other`
/// are configuration that is no keyword (set by the entry's build); `@nested` lists the keywords of
/// a nested configuration (Muon's AdamW), which the entry's build sets and checks.
///
/// The keywords every optimizer states alike are written as the keyword alone, and the macro
/// writes their fields: `BETAS;` (`beta1` 0.9 and `beta2` 0.999, torch's Adam's), `WEIGHT_DECAY;`
/// (L2, 0), `WEIGHT_DECAY_L2_OR_DECOUPLED;` (`weight_decay` 0), `DECOUPLED_WEIGHT_DECAY;`
/// (`decoupled_weight_decay: bool = false`), `MAXIMIZE;` (`maximize: bool = false`), `FUSED;`
/// (torch's `fused`, default true) and `FUSED_ADAMLAB;` (the same keyword where the reference has
/// none). The configuration's doc gets a paragraph on the learning rate and its default.
#[macro_export]
macro_rules! hyper_config {
    (
        $(#[$meta:meta])*
        pub struct $config:ident {
            $lr_keyword:expr => $lr:literal;
            $($body:tt)*
        }
    ) => {
        $crate::hyper_config!(
            @munch [$(#[$meta])* pub struct $config] [$lr_keyword => $lr;] $($body)*
        );
    };
    // The shared keywords' fields, written once here.
    (@munch $head:tt [$($done:tt)*] MAXIMIZE; $($rest:tt)*) => {
        $crate::hyper_config!(@munch $head [$($done)*
            $crate::keywords::MAXIMIZE => {
                /// Maximise the objective instead of minimising it (the gradient is negated).
                maximize: bool = false,
            }
        ] $($rest)*);
    };
    (@munch $head:tt [$($done:tt)*] BETAS; $($rest:tt)*) => {
        $crate::hyper_config!(@munch $head [$($done)*
            $crate::keywords::BETAS => {
                /// Decay rate of the first-moment (mean) estimate, β₁.
                beta1: f64 = 0.9,
                /// Decay rate of the second-moment (uncentred variance) estimate, β₂.
                beta2: f64 = 0.999,
            }
        ] $($rest)*);
    };
    (@munch $head:tt [$($done:tt)*] WEIGHT_DECAY; $($rest:tt)*) => {
        $crate::hyper_config!(@munch $head [$($done)*
            $crate::keywords::WEIGHT_DECAY => {
                /// L2 weight decay λ, added to the gradient: `g ← g + λθ`.
                weight_decay: f64 = 0.0,
            }
        ] $($rest)*);
    };
    (@munch $head:tt [$($done:tt)*] WEIGHT_DECAY_L2_OR_DECOUPLED; $($rest:tt)*) => {
        $crate::hyper_config!(@munch $head [$($done)*
            $crate::keywords::WEIGHT_DECAY_L2_OR_DECOUPLED => {
                /// Weight decay λ: coupled L2 (`g ← g + λθ`) unless `decoupled_weight_decay`.
                weight_decay: f64 = 0.0,
            }
        ] $($rest)*);
    };
    (@munch $head:tt [$($done:tt)*] FUSED; $($rest:tt)*) => {
        $crate::hyper_config!(@munch $head [$($done)*
            $crate::keywords::FUSED => {
                /// Step with the fused kernel (one pass over memory, in place) where the tensors'
                /// backend has one, else with the tensor-op reference step; the numbers are the
                /// same. torch's keyword; its default is False or None, adamlab's true.
                fused: bool = true,
            }
        ] $($rest)*);
    };
    (@munch $head:tt [$($done:tt)*] FUSED_ADAMLAB; $($rest:tt)*) => {
        $crate::hyper_config!(@munch $head [$($done)*
            $crate::keywords::FUSED_ADAMLAB => {
                /// Step with the fused kernel (one pass over memory, in place) where the tensors'
                /// backend has one, else with the tensor-op reference step; the numbers are the
                /// same. adamlab's keyword: the reference has none.
                fused: bool = true,
            }
        ] $($rest)*);
    };
    (@munch $head:tt [$($done:tt)*] DECOUPLED_WEIGHT_DECAY; $($rest:tt)*) => {
        $crate::hyper_config!(@munch $head [$($done)*
            $crate::keywords::DECOUPLED_WEIGHT_DECAY => {
                /// Decay the weights directly (`θ ← θ·(1 − lr·λ)`, the "W" of AdamW, Loshchilov &
                /// Hutter) instead of adding `λθ` to the gradient.
                decoupled_weight_decay: bool = false,
            }
        ] $($rest)*);
    };
    (@munch [$($head:tt)*] [$($done:tt)*] $(@ $($tail:tt)*)?) => {
        $crate::hyper_config!(@build $($head)* { $($done)* $(@ $($tail)*)? });
    };
    (@munch $head:tt [$($done:tt)*] $keyword:expr => { $($fields:tt)* } $($rest:tt)*) => {
        $crate::hyper_config!(@munch $head [$($done)* $keyword => { $($fields)* }] $($rest)*);
    };
    (
        @build
        $(#[$meta:meta])*
        pub struct $config:ident {
            $lr_keyword:expr => $lr:literal;
            $(
                $keyword:expr => {
                    $( $(#[$field_meta:meta])* $field:ident : $ty:ty = $default:tt ),+ $(,)?
                }
            )*
            $( @other {
                $( $(#[$other_meta:meta])* $other:ident : $other_ty:ty = $other_default:tt ),* $(,)?
            } )?
            $( @nested { $( $nested:expr ),* $(,)? } )?
        }
    ) => {
        $(#[$meta])*
        ///
        #[doc = concat!(
            "The learning rate (default `", stringify!($lr), "`) is not part of the \
             configuration: burn passes it to every [`step`](burn::optim::Optimizer::step), so that \
             a schedule can change it. [`check_learning_rate`](crate::check_learning_rate) checks \
             it for callers that take it from a user."
        )]
        #[derive(burn::config::Config, Debug)]
        pub struct $config {
            $($(
                $(#[$field_meta])*
                #[config(default = $default)]
                pub $field: $ty,
            )+)*
            $($(
                $(#[$other_meta])*
                #[config(default = $other_default)]
                pub $other: $other_ty,
            )*)?
        }

        impl $config {
            /// The registry's hyper-parameters of this configuration, `lr` first, with the
            /// defaults of the fields.
            pub const PARAMS: &'static [$crate::hyper::HyperParam] = &[
                (const { $lr_keyword }).with_default(stringify!($lr)),
                $( (const { $keyword }).with_default($crate::hyper_config!(@text $($default),+)), )*
                $($( $nested, )*)?
            ];

            /// Checks every field against its keyword's range; the error names the keyword.
            pub fn validate(&self) -> Result<(), $crate::hyper::ConfigError> {
                $( (const { $keyword }).check(&$crate::hyper_config!(@value self; $($field),+))?; )*
                Ok(())
            }

            /// These fields, each keyword of `args` (resolved and checked by the registry) set
            /// from its value; keywords `args` lacks keep this configuration's values.
            pub fn with_args(mut self, args: &$crate::hyper::Args) -> Self {
                $(
                    if let Some(value) = args.value((const { $keyword }).name) {
                        $crate::hyper_config!(@set self, value; $($field : $ty),+);
                    }
                )*
                self
            }
        }
    };
    (@text $default:tt) => { concat!($default) };
    (@text $first:tt $(, $rest:tt)+) => {
        concat!("(", $first $(, ", ", $rest)+, ")")
    };
    (@value $self:ident; $field:ident) => { $crate::hyper::HyperValue::to_value(&$self.$field) };
    (@value $self:ident; $($field:ident),+) => {
        $crate::hyper::Value::Tuple(vec![$($crate::hyper::HyperValue::to_value(&$self.$field)),+])
    };
    (@set $self:ident, $value:ident; $field:ident : $ty:ty) => {
        $self.$field = <$ty as $crate::hyper::HyperValue>::from_value($value)
    };
    (@set $self:ident, $value:ident; $($field:ident : $ty:ty),+) => {
        match $value {
            $crate::hyper::Value::Tuple(values) => {
                let mut values = values.iter();
                $(
                    $self.$field = <$ty as $crate::hyper::HyperValue>::from_value(
                        values.next().expect("checked to have one value per field"),
                    );
                )+
            }
            other => unreachable!("{other} is checked to be a tuple"),
        }
    };
}

/// Writes what every configuration and its optimizer have alike, given the optimizer's fields
/// besides `config` (each starts at its `Default`):
///
/// - on the configuration, `build` (validate, then the optimizer), `init` (the optimizer for a
///   whole module) and `build_entry` (the registry entry's build: the defaults, the spec's
///   keywords, then `build`, boxed);
/// - on the optimizer, `config()`;
/// - where the optimizer has a `cycled_beta1` field (β₁ set by a schedule at every step,
///   OneCycleLR's momentum cycling), `with_cycled_beta1` and `beta1()`, and `build_entry` hands
///   the spec's cycled momentum over.
///
/// A check of fields that are wrong only together follows `check =`, a function (or closure) of
/// the configuration run after `validate`:
/// `builds!(SgdConfig => Sgd { cycled_momentum }, check = nesterov_needs_momentum)`.
#[macro_export]
macro_rules! builds {
    ($config:ident => $optimizer:ident { cycled_beta1 $(, $field:ident)* } $(, check = $check:expr)?) => {
        $crate::builds!(@common $config => $optimizer { cycled_beta1 $(, $field)* } $(, check = $check)?);

        impl $config {
            /// The registry entry's build: these defaults, the spec's keywords, and β₁ from the
            /// schedule where one cycles it. (An entry that starts from other defaults, as AdamW
            /// does, writes its own.)
            #[allow(dead_code)]
            pub(crate) fn build_entry(
                args: &$crate::hyper::Args,
            ) -> Result<Box<dyn $crate::registry::AnyOptimizer>, $crate::hyper::ConfigError> {
                let optimizer = Self::new().with_args(args).build()?;
                Ok(Box::new(optimizer.with_cycled_beta1(args.cycled_momentum())))
            }
        }

        impl $optimizer {
            /// This optimizer, taking β₁ from `beta1` at every step once it is set (OneCycleLR's
            /// momentum cycling; torch writes `group["betas"]` before each step).
            pub fn with_cycled_beta1(mut self, beta1: Option<$crate::hyper::CycledMomentum>) -> Self {
                self.cycled_beta1 = beta1;
                self
            }

            /// β₁ for the coming step: the schedule's when one cycles it, else the configuration's.
            fn beta1(&self) -> f64 {
                self.cycled_beta1
                    .as_ref()
                    .and_then($crate::hyper::CycledMomentum::get)
                    .unwrap_or(self.config.beta1)
            }
        }
    };
    ($config:ident => $optimizer:ident $({ $($field:ident),* $(,)? })? $(, check = $check:expr)?) => {
        $crate::builds!(@common $config => $optimizer { $($($field),*)? } $(, check = $check)?);

        impl $config {
            /// The registry entry's build: these defaults, then the spec's keywords. (An entry
            /// that starts from other defaults, as AdamW does, writes its own.)
            #[allow(dead_code)]
            pub(crate) fn build_entry(
                args: &$crate::hyper::Args,
            ) -> Result<Box<dyn $crate::registry::AnyOptimizer>, $crate::hyper::ConfigError> {
                Ok(Box::new(Self::new().with_args(args).build()?))
            }
        }
    };
    (@common $config:ident => $optimizer:ident { $($field:ident),* } $(, check = $check:expr)?) => {
        impl $config {
            /// The bare optimizer, for
            /// [`ModuleOptimizer::with_group`](burn::optim::ModuleOptimizer::with_group) or a
            /// hand-written loop.
            pub fn build(&self) -> Result<$optimizer, $crate::hyper::ConfigError> {
                self.validate()?;
                $( ($check)(self)?; )?
                Ok($optimizer {
                    config: self.clone(),
                    $( $field: Default::default(), )*
                })
            }

            /// The optimizer for a whole module.
            pub fn init(&self) -> Result<burn::optim::ModuleOptimizer, $crate::hyper::ConfigError> {
                Ok(burn::optim::ModuleOptimizer::from(self.build()?))
            }
        }

        impl $optimizer {
            /// The configuration this optimizer was built from.
            pub fn config(&self) -> &$config {
                &self.config
            }
        }
    };
}
