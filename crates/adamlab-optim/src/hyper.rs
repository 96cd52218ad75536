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

/// A value written in a spec: `0.9`, `true`, `(0.9, 0.999)`, `None`, or a bare name.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number (whole numbers too).
    Number(f64),
    /// `true`/`false` (Python's `True`/`False` too).
    Bool(bool),
    /// `(a, b, …)` or `[a, b, …]`.
    Tuple(Vec<Value>),
    /// `None`.
    None,
    /// A bare or quoted name, for choices: `adjust_lr_fn=original`.
    Name(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(x) => write!(f, "{x:?}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Tuple(values) => {
                let parts: Vec<String> = values.iter().map(ToString::to_string).collect();
                write!(f, "({})", parts.join(", "))
            }
            Value::None => f.write_str("None"),
            Value::Name(name) => f.write_str(name),
        }
    }
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
    /// Checks a number against this parameter's range; the error names the parameter.
    pub fn check_f64(&self, value: f64) -> Result<f64, ConfigError> {
        self.check(&Value::Number(value)).map(|()| value)
    }

    /// Checks a tuple of numbers against this parameter's kind.
    pub fn check_floats(&self, values: &[f64]) -> Result<(), ConfigError> {
        self.check(&Value::Tuple(values.iter().copied().map(Value::Number).collect()))
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

/// The learning rate, as every optimizer declares it (with its own torch default).
pub const fn learning_rate(default: &'static str) -> HyperParam {
    HyperParam {
        name: "lr",
        kind: Kind::Float(Interval::NON_NEGATIVE),
        default,
        help: "learning rate (burn passes it to every step, so schedules can change it)",
    }
}

/// Checks a learning rate taken from a user: finite and ≥ 0, as torch.optim requires.
///
/// burn passes the learning rate to every step rather than to the optimizer's configuration, so
/// it is checked apart from the configs' `validate`.
pub fn check_learning_rate(lr: f64) -> Result<(), ConfigError> {
    learning_rate("0").check_f64(lr).map(|_| ())
}

/// An f64 shared between a schedule and the optimizer it drives, read at every step: how
/// OneCycleLR's cycled β₁ (or momentum) reaches an optimizer whose hyper-parameters are otherwise
/// fixed when it is built. Empty until set.
#[derive(Debug, Clone)]
pub struct SharedF64(Arc<AtomicU64>);

impl Default for SharedF64 {
    fn default() -> Self {
        Self(Arc::new(AtomicU64::new(f64::NAN.to_bits())))
    }
}

impl SharedF64 {
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
    momentum: SharedF64,
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
    /// Values for `params`: each one given in `given` (already checked) or its default.
    pub(crate) fn resolve(
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
    pub(crate) fn with_cycled_momentum(&self, momentum: SharedF64) -> Self {
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
    pub fn cycled_momentum(&self) -> Option<SharedF64> {
        let cycled = self.cycled.as_ref()?;
        cycled.taken.store(true, Ordering::Relaxed);
        Some(cycled.momentum.clone())
    }

    /// Every value, by name.
    pub fn values(&self) -> &BTreeMap<&'static str, Value> {
        &self.values
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
