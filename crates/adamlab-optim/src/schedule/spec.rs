//! Schedule specs: `cosine(t_max=90)`, `sequential(linear(…), cosine(…))`, parsed and checked
//! against the catalogue, and built into torch's scheduler objects.

use std::collections::BTreeMap;
use std::fmt;

use super::catalogue::{SCHEDULES, schedule_entry};
use super::rules::{Anneal, Group, Level, Node, OneCycle, Phase, Plateau, Rule, bisect_right};
use super::Schedule;
use crate::hyper::{Args, Kind, Value};
use crate::spec::{Call, Expr, SyntaxError, parse_call};

/// A schedule spec that cannot be used. One line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    /// The text does not parse.
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    /// No schedule has this name.
    #[error("unknown schedule `{name}`: known schedules are {known}")]
    Unknown {
        /// The name given.
        name: String,
        /// Every name.
        known: String,
    },
    /// The schedule has no such keyword.
    #[error("schedule {schedule} has no keyword `{keyword}`: its keywords are {valid}")]
    UnknownKeyword {
        /// The schedule.
        schedule: &'static str,
        /// The keyword given.
        keyword: String,
        /// Its keywords.
        valid: String,
    },
    /// A value out of range, a required keyword missing, or torch's own checks.
    #[error("schedule {schedule}: {message}")]
    Invalid {
        /// The schedule.
        schedule: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// A parsed and checked schedule spec: `cosine(t_max=90)`, `sequential(linear(…), cosine(…))`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSpec {
    entry: &'static str,
    args: Args,
    children: Vec<ScheduleSpec>,
}

impl fmt::Display for ScheduleSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self.children.iter().map(ToString::to_string).collect();
        let entry = schedule_entry(self.entry).expect("checked");
        for p in entry.params {
            let value = p.kind.show(&self.args.values()[p.name]);
            if value != p.default {
                parts.push(format!("{}={value}", p.name));
            }
        }
        write!(f, "{}({})", self.entry, parts.join(", "))
    }
}

impl ScheduleSpec {
    /// Parses and checks `text`.
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        let spec = Self::from_call(parse_call(text)?)?;
        spec.build(1.0)?;
        Ok(spec)
    }

    fn from_call(call: Call) -> Result<Self, ScheduleError> {
        let entry = schedule_entry(&call.name).ok_or_else(|| ScheduleError::Unknown {
            name: call.name.clone(),
            known: SCHEDULES.iter().map(|e| e.name).collect::<Vec<_>>().join(", "),
        })?;
        let invalid = |message: String| ScheduleError::Invalid {
            schedule: entry.name,
            message,
        };
        let mut given: BTreeMap<&'static str, Value> = BTreeMap::new();
        let mut children = Vec::new();
        for arg in call.args {
            match (arg.keyword, arg.value) {
                (None, Expr::Call(child)) if entry.name == "sequential" => {
                    if child.name == "sequential" {
                        return Err(invalid("a sequential schedule cannot hold another (torch's cannot either)".into()));
                    }
                    if child.name == "reduce-on-plateau" {
                        return Err(invalid(
                            "reduce-on-plateau is stepped by an epoch's metric, not by optimizer steps: it cannot be \
                             chained (torch's SequentialLR cannot step it either)"
                                .into(),
                        ));
                    }
                    children.push(Self::from_call(child)?);
                }
                (None, value) => {
                    return Err(invalid(format!(
                        "give keywords by name (`{}(gamma=0.5)`), not `{value}` by position{}",
                        entry.name,
                        if entry.name == "sequential" { "; schedules are calls such as `cosine(t_max=90)`" } else { "" }
                    )));
                }
                (Some(keyword), Expr::Call(_)) => {
                    return Err(invalid(format!("`{keyword}` takes a value, not a call")));
                }
                (Some(keyword), Expr::Value(value)) => {
                    let param = entry.params.iter().find(|p| p.name == keyword).ok_or_else(|| {
                        ScheduleError::UnknownKeyword {
                            schedule: entry.name,
                            keyword: keyword.clone(),
                            valid: entry.params.iter().map(|p| p.name).collect::<Vec<_>>().join(", "),
                        }
                    })?;
                    param.check(&value).map_err(|e| invalid(e.to_string()))?;
                    if given.insert(param.name, value).is_some() {
                        return Err(invalid(format!("`{keyword}` is given twice")));
                    }
                }
            }
        }
        for p in entry.params {
            if p.default == "None" && !given.contains_key(p.name) && !matches!(p.kind, Kind::Optional(_)) {
                if entry.name == "sequential" {
                    continue;
                }
                return Err(invalid(format!("`{}` is required: {}", p.name, p.help)));
            }
        }
        if entry.name == "sequential" && children.is_empty() {
            return Err(invalid("give the schedules to chain: `sequential(linear(total_iters=10), cosine(t_max=90))`".into()));
        }
        let args = Args::resolve(entry.params, &given);
        Ok(Self {
            entry: entry.name,
            args,
            children,
        })
    }

    /// The schedule's name.
    pub fn name(&self) -> &'static str {
        self.entry
    }

    /// How many steps the schedule spans, for `sequential`'s default milestones: `total_iters`,
    /// `t_max`, `total_steps`, `step_size`, or `t_0`.
    fn span(&self) -> Option<i64> {
        ["total_iters", "t_max", "total_steps", "t_0"]
            .iter()
            .find_map(|k| match self.args.values().get(k) {
                Some(Value::Number(x)) => Some(*x as i64),
                _ => None,
            })
    }

    /// Whether the schedule sets the optimizer's momentum (OneCycleLR with `cycle_momentum`).
    pub fn cycles_momentum(&self) -> bool {
        self.entry == "onecycle" && self.args.bool("cycle_momentum")
            || self.children.iter().any(ScheduleSpec::cycles_momentum)
    }

    /// The schedule, starting from the optimizer's learning rate `lr`.
    pub fn build(&self, lr: f64) -> Result<Schedule, ScheduleError> {
        let mut group = Group {
            lr,
            initial_lr: None,
            momentum: None,
        };
        let root = self.node(&mut group)?;
        Ok(Schedule {
            spec: self.clone(),
            base_lr: lr,
            root,
            group,
            steps: 0,
            metrics: Vec::new(),
        })
    }

    fn node(&self, group: &mut Group) -> Result<Node, ScheduleError> {
        let invalid = |message: String| ScheduleError::Invalid {
            schedule: schedule_entry(self.entry).expect("checked").name,
            message,
        };
        let a = &self.args;
        let int = |k: &str| a.f64(k) as i64;
        let rule = match self.entry {
            "constant" => Rule::Constant { factor: a.f64("factor"), total_iters: int("total_iters") },
            "step" => Rule::Step { step_size: int("step_size"), gamma: a.f64("gamma") },
            "multistep" => Rule::MultiStep {
                milestones: a.floats("milestones").into_iter().map(|m| m as i64).collect(),
                gamma: a.f64("gamma"),
            },
            "exponential" => Rule::Exponential { gamma: a.f64("gamma") },
            "linear" => {
                let total_iters = int("total_iters");
                if total_iters == 0 {
                    return Err(invalid("total_iters must be at least 1".into()));
                }
                Rule::Linear { start: a.f64("start_factor"), end: a.f64("end_factor"), total_iters }
            }
            "cosine" => Rule::Cosine { t_max: int("t_max"), eta_min: a.f64("eta_min") },
            "reduce-on-plateau" => {
                let max = a.name("mode") == "max";
                Rule::Plateau(Box::new(Plateau {
                    max,
                    factor: a.f64("factor"),
                    patience: int("patience"),
                    threshold: a.f64("threshold"),
                    absolute: a.name("threshold_mode") == "abs",
                    cooldown: int("cooldown"),
                    min_lr: a.f64("min_lr"),
                    eps: a.f64("eps"),
                    best: if max { f64::NEG_INFINITY } else { f64::INFINITY },
                    num_bad_epochs: 0,
                    cooldown_counter: 0,
                }))
            }
            "cosine-warm-restarts" => {
                let t_0 = int("t_0");
                Rule::WarmRestarts { t_0, t_mult: int("t_mult"), eta_min: a.f64("eta_min"), t_i: t_0, t_cur: -1 }
            }
            "onecycle" => {
                let total_steps = match (a.optional_f64("total_steps"), a.optional_f64("epochs"), a.optional_f64("steps_per_epoch")) {
                    (Some(t), _, _) => t as i64,
                    (None, Some(e), Some(s)) => (e * s) as i64,
                    _ => return Err(invalid("give total_steps, or epochs and steps_per_epoch".into())),
                };
                let pct = a.f64("pct_start");
                let t = total_steps as f64;
                let phases = if a.bool("three_phase") {
                    vec![
                        Phase { end_step: pct * t - 1.0, start_lr: Level::Initial, end_lr: Level::Max, momentum: (Level::Max, Level::Initial) },
                        Phase { end_step: 2.0 * pct * t - 2.0, start_lr: Level::Max, end_lr: Level::Initial, momentum: (Level::Initial, Level::Max) },
                        Phase { end_step: t - 1.0, start_lr: Level::Initial, end_lr: Level::Min, momentum: (Level::Max, Level::Max) },
                    ]
                } else {
                    vec![
                        Phase { end_step: pct * t - 1.0, start_lr: Level::Initial, end_lr: Level::Max, momentum: (Level::Max, Level::Initial) },
                        Phase { end_step: t - 1.0, start_lr: Level::Max, end_lr: Level::Min, momentum: (Level::Initial, Level::Max) },
                    ]
                };
                let max_lr = a.f64("max_lr");
                let initial_lr = max_lr / a.f64("div_factor");
                let cycle_momentum = a.bool("cycle_momentum");
                // OneCycleLR overwrites the group's initial_lr (and its momentum) before
                // LRScheduler.__init__ runs.
                group.initial_lr = Some(initial_lr);
                if cycle_momentum {
                    group.momentum = Some(a.f64("max_momentum"));
                }
                Rule::OneCycle(Box::new(OneCycle {
                    total_steps,
                    phases,
                    anneal: if a.name("anneal_strategy") == "linear" { Anneal::Linear } else { Anneal::Cos },
                    cycle_momentum,
                    initial_lr,
                    max_lr,
                    min_lr: initial_lr / a.f64("final_div_factor"),
                    max_momentum: a.f64("max_momentum"),
                    base_momentum: a.f64("base_momentum"),
                }))
            }
            "sequential" => {
                let mut children = Vec::with_capacity(self.children.len());
                for child in &self.children {
                    children.push(child.node(group)?);
                }
                let milestones: Vec<i64> = match a.values().get("milestones") {
                    Some(Value::Tuple(values)) => values
                        .iter()
                        .map(|v| match v {
                            Value::Number(x) => *x as i64,
                            _ => 0,
                        })
                        .collect(),
                    _ => {
                        let mut at = 0;
                        let mut milestones = Vec::new();
                        for child in &self.children[..self.children.len() - 1] {
                            at += child.span().ok_or_else(|| {
                                invalid(format!(
                                    "{} has no length to derive a milestone from: give milestones=[…]",
                                    child.name()
                                ))
                            })?;
                            milestones.push(at);
                        }
                        milestones
                    }
                };
                if milestones.len() + 1 != children.len() {
                    return Err(invalid(format!(
                        "{} schedules need {} milestones, got {}",
                        children.len(),
                        children.len() - 1,
                        milestones.len()
                    )));
                }
                // SequentialLR.__init__: reset the lr, undo the children's initial steps, and
                // take the initial step of the one that runs at step 0.
                group.lr = group.initial_lr.unwrap_or(group.lr);
                let mut node = Node {
                    rule: Rule::Sequential { children, milestones: milestones.clone() },
                    base_lr: group.lr,
                    last_epoch: 0,
                    step_count: 0,
                    is_initial: false,
                };
                node.undo();
                node.last_epoch = 0;
                if let Rule::Sequential { children, .. } = &mut node.rule {
                    let idx = bisect_right(&milestones, 0);
                    children[idx].initial_step(group);
                }
                return Ok(node);
            }
            other => unreachable!("{other} is checked against SCHEDULES"),
        };
        Ok(Node::construct(rule, group))
    }
}
