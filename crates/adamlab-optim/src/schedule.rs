//! Learning-rate schedules with `torch.optim.lr_scheduler`'s semantics, stepped once per
//! optimizer step, as burn [`LrScheduler`]s.
//!
//! torch's schedulers are not closed-form functions of the step: most update the optimizer's
//! `group["lr"]` recursively (`lr ← lr·γ`), chain through `SequentialLR`'s "undo" of the steps its
//! children took when they were built, and jump to a closed form at a `SequentialLR` milestone.
//! To give torch's learning rate at every step to the last bit, this module replays that
//! machinery: a [`Group`] stands for the optimizer's param group, and each schedule reads and
//! writes it exactly as its torch class does, in f64 as Python computes it. The schedules torch
//! offers closed forms for are tested against them too.
//!
//! | spec name | torch class | keywords (torch's, lower-cased) |
//! |---|---|---|
//! | `constant` | `ConstantLR` | `factor=1/3, total_iters=5` |
//! | `step` | `StepLR` | `step_size, gamma=0.1` |
//! | `multistep` | `MultiStepLR` | `milestones, gamma=0.1` |
//! | `exponential` | `ExponentialLR` | `gamma` |
//! | `linear` | `LinearLR` | `start_factor=1/3, end_factor=1, total_iters=5` |
//! | `cosine` | `CosineAnnealingLR` | `t_max, eta_min=0` |
//! | `cosine-warm-restarts` | `CosineAnnealingWarmRestarts` | `t_0, t_mult=1, eta_min=0` |
//! | `onecycle` | `OneCycleLR` | `max_lr, total_steps, …, cycle_momentum=true, …` |
//! | `sequential` | `SequentialLR` | positional schedules, `milestones` (default: from `total_iters`) |
//! | `reduce-on-plateau` | `ReduceLROnPlateau` | `mode=min, factor=0.1, patience=10, threshold=1e-4, threshold_mode=rel, cooldown=0, min_lr=0, eps=1e-8` |
//!
//! `reduce-on-plateau` is not stepped by optimizer steps: the training loop feeds it a metric after
//! every epoch ([`Schedule::observe`]), as `scheduler.step(val_loss)` is called in torch.
//!
//! The learning rate a schedule starts from is the optimizer's (`--lr`), as torch's schedulers
//! start from `group["lr"]`; `onecycle` sets its own, `max_lr / div_factor`, as torch does.

use crate::hyper::{Args, HyperParam, Interval, Kind, Value};
use crate::spec::{Call, Expr, SyntaxError, parse_call};
use burn::optim::LearningRate;
use burn::optim::lr_scheduler::{LrScheduler, LrSchedulerRecord};
use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::fmt;

/// What torch keeps in an optimizer's param group and its schedulers read and write.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Group {
    /// `group["lr"]`: the learning rate of the next optimizer step.
    pub lr: f64,
    /// `group["initial_lr"]`, set by the first scheduler built on the group.
    pub initial_lr: Option<f64>,
    /// `group["betas"][0]` or `group["momentum"]`, when a schedule cycles it (OneCycleLR).
    pub momentum: Option<f64>,
}

/// OneCycleLR's annealing.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Anneal {
    Cos,
    Linear,
}

impl Anneal {
    fn apply(self, start: f64, end: f64, pct: f64) -> f64 {
        match self {
            Anneal::Cos => end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0),
            Anneal::Linear => (end - start) * pct + start,
        }
    }
}

/// Which value of the group a OneCycleLR phase starts or ends at.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Level {
    Initial,
    Max,
    Min,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Phase {
    end_step: f64,
    start_lr: Level,
    end_lr: Level,
    /// `true`: from max to base momentum; `false`: from base to max (or max to max at the end of
    /// the three-phase schedule: `flat`).
    momentum: (Level, Level),
}

/// The rule of one torch scheduler.
#[derive(Debug, Clone, PartialEq)]
enum Rule {
    Constant { factor: f64, total_iters: i64 },
    Step { step_size: i64, gamma: f64 },
    MultiStep { milestones: Vec<i64>, gamma: f64 },
    Exponential { gamma: f64 },
    Linear { start: f64, end: f64, total_iters: i64 },
    Cosine { t_max: i64, eta_min: f64 },
    WarmRestarts { t_0: i64, t_mult: i64, eta_min: f64, t_i: i64, t_cur: i64 },
    OneCycle(Box<OneCycle>),
    Sequential { children: Vec<Node>, milestones: Vec<i64> },
    Plateau(Box<Plateau>),
}

/// ReduceLROnPlateau's settings and the counters it keeps between epochs.
#[derive(Debug, Clone, PartialEq)]
struct Plateau {
    /// `mode="max"`: a larger metric is better.
    max: bool,
    factor: f64,
    patience: i64,
    threshold: f64,
    /// `threshold_mode="abs"`.
    absolute: bool,
    cooldown: i64,
    min_lr: f64,
    eps: f64,
    best: f64,
    num_bad_epochs: i64,
    cooldown_counter: i64,
}

impl Plateau {
    /// `_is_better(a, best)`.
    fn is_better(&self, a: f64, best: f64) -> bool {
        match (self.max, self.absolute) {
            (false, false) => a < best * (1.0 - self.threshold),
            (false, true) => a < best - self.threshold,
            (true, false) => a > best * (self.threshold + 1.0),
            (true, true) => a > best + self.threshold,
        }
    }

    /// `scheduler.step(metrics)`: one epoch's metric; lowers `group.lr` after `patience` epochs
    /// without improvement.
    fn observe(&mut self, current: f64, group: &mut Group) {
        if self.is_better(current, self.best) {
            self.best = current;
            self.num_bad_epochs = 0;
        } else {
            self.num_bad_epochs += 1;
        }
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.num_bad_epochs = 0;
        }
        if self.num_bad_epochs > self.patience {
            let old_lr = group.lr;
            let new_lr = (old_lr * self.factor).max(self.min_lr);
            if old_lr - new_lr > self.eps {
                group.lr = new_lr;
            }
            self.cooldown_counter = self.cooldown;
            self.num_bad_epochs = 0;
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct OneCycle {
    total_steps: i64,
    phases: Vec<Phase>,
    anneal: Anneal,
    cycle_momentum: bool,
    initial_lr: f64,
    max_lr: f64,
    min_lr: f64,
    max_momentum: f64,
    base_momentum: f64,
}

impl OneCycle {
    fn lr_of(&self, level: Level) -> f64 {
        match level {
            Level::Initial => self.initial_lr,
            Level::Max => self.max_lr,
            Level::Min => self.min_lr,
        }
    }

    fn momentum_of(&self, level: Level) -> f64 {
        match level {
            Level::Max => self.max_momentum,
            _ => self.base_momentum,
        }
    }
}

/// One torch scheduler object: its rule and the `LRScheduler` fields it keeps.
#[derive(Debug, Clone, PartialEq)]
struct Node {
    rule: Rule,
    base_lr: f64,
    last_epoch: i64,
    step_count: i64,
    is_initial: bool,
}

impl Node {
    /// `LRScheduler.__init__(optimizer, last_epoch=-1)` after the subclass's own `__init__`.
    fn construct(rule: Rule, group: &mut Group) -> Self {
        let initial_lr = *group.initial_lr.get_or_insert(group.lr);
        let mut node = Self {
            rule,
            base_lr: initial_lr,
            last_epoch: -1,
            step_count: 0,
            is_initial: false,
        };
        node.initial_step(group);
        node
    }

    fn initial_step(&mut self, group: &mut Group) {
        self.step_count = 0;
        self.is_initial = true;
        self.step(group);
        self.is_initial = false;
    }

    /// `scheduler.step()`.
    fn step(&mut self, group: &mut Group) {
        match &mut self.rule {
            // Stepped by epochs' metrics, not by optimizer steps.
            Rule::Plateau(_) => {}
            Rule::WarmRestarts { t_i, t_cur, t_mult, .. } => {
                // CosineAnnealingWarmRestarts overrides step().
                self.step_count += 1;
                if self.last_epoch < 0 {
                    self.last_epoch = 0;
                    *t_cur = 0;
                } else {
                    self.last_epoch += 1;
                    *t_cur += 1;
                    if *t_cur >= *t_i {
                        *t_cur %= *t_i;
                        *t_i *= *t_mult;
                    }
                }
                group.lr = self.get_lr(group);
            }
            Rule::Sequential { children, milestones } => {
                self.last_epoch += 1;
                let idx = bisect_right(milestones, self.last_epoch);
                if idx > 0 && milestones[idx - 1] == self.last_epoch {
                    children[idx].update_lr(Some(0), group);
                } else {
                    children[idx].step(group);
                }
            }
            _ => {
                self.step_count += 1;
                self.update_lr(None, group);
            }
        }
    }

    /// `scheduler._update_lr(epoch)`.
    fn update_lr(&mut self, epoch: Option<i64>, group: &mut Group) {
        group.lr = match epoch {
            None => {
                self.last_epoch += 1;
                self.get_lr(group)
            }
            Some(epoch) => {
                self.last_epoch = epoch;
                self.closed_form().unwrap_or_else(|| self.get_lr(group))
            }
        };
    }

    /// `scheduler.get_lr()`: the recursive ("chainable") form torch's `step()` uses.
    fn get_lr(&mut self, group: &mut Group) -> f64 {
        let (lr, e, base) = (group.lr, self.last_epoch, self.base_lr);
        match &mut self.rule {
            Rule::Constant { factor, total_iters } => {
                if e == 0 {
                    lr * *factor
                } else if e != *total_iters {
                    lr
                } else {
                    lr * (1.0 / *factor)
                }
            }
            Rule::Step { step_size, gamma } => {
                if e == 0 || e % *step_size != 0 {
                    lr
                } else {
                    lr * *gamma
                }
            }
            Rule::MultiStep { milestones, gamma } => {
                let count = milestones.iter().filter(|m| **m == e).count();
                if count == 0 {
                    lr
                } else {
                    lr * gamma.powi(count as i32)
                }
            }
            Rule::Exponential { gamma } => {
                if self.is_initial {
                    lr
                } else {
                    lr * *gamma
                }
            }
            Rule::Linear { start, end, total_iters } => {
                if e == 0 {
                    lr * *start
                } else if self.is_initial || e > *total_iters {
                    lr
                } else {
                    lr * (1.0
                        + (*end - *start)
                            / (*total_iters as f64 * *start + (e - 1) as f64 * (*end - *start)))
                }
            }
            Rule::Cosine { t_max, eta_min } => {
                let (t_max, eta_min) = (*t_max as f64, *eta_min);
                if self.is_initial {
                    lr
                } else if self.step_count == 1 && e > 0 {
                    eta_min + (base - eta_min) * (1.0 + (e as f64 * PI / t_max).cos()) / 2.0
                } else if (e - 1 - t_max as i64).rem_euclid(2 * t_max as i64) == 0 {
                    lr + (base - eta_min) * (1.0 - (PI / t_max).cos()) / 2.0
                } else {
                    (1.0 + (PI * e as f64 / t_max).cos()) / (1.0 + (PI * (e - 1) as f64 / t_max).cos())
                        * (lr - eta_min)
                        + eta_min
                }
            }
            Rule::WarmRestarts { eta_min, t_i, t_cur, .. } => {
                *eta_min + (base - *eta_min) * (1.0 + (PI * *t_cur as f64 / *t_i as f64).cos()) / 2.0
            }
            Rule::OneCycle(one) => {
                // Past total_steps torch raises; adamlab keeps the last value (the CLI refuses
                // runs longer than the schedule before they start).
                let step_num = e.min(one.total_steps) as f64;
                let mut start_step = 0.0;
                let last = one.phases.len() - 1;
                let mut result = lr;
                for (i, phase) in one.phases.iter().enumerate() {
                    if step_num <= phase.end_step || i == last {
                        let pct = (step_num - start_step) / (phase.end_step - start_step);
                        result = one.anneal.apply(one.lr_of(phase.start_lr), one.lr_of(phase.end_lr), pct);
                        if one.cycle_momentum {
                            group.momentum = Some(one.anneal.apply(
                                one.momentum_of(phase.momentum.0),
                                one.momentum_of(phase.momentum.1),
                                pct,
                            ));
                        }
                        break;
                    }
                    start_step = phase.end_step;
                }
                result
            }
            Rule::Sequential { .. } => unreachable!("SequentialLR has no get_lr; nesting is refused"),
            Rule::Plateau(_) => unreachable!("ReduceLROnPlateau is not stepped by optimizer steps"),
        }
    }

    /// `scheduler._get_closed_form_lr()`, where torch has one.
    fn closed_form(&self) -> Option<f64> {
        let (e, base) = (self.last_epoch, self.base_lr);
        Some(match &self.rule {
            Rule::Constant { factor, total_iters } => {
                base * (factor + if e >= *total_iters { 1.0 - factor } else { 0.0 })
            }
            Rule::Step { step_size, gamma } => base * gamma.powf((e.div_euclid(*step_size)) as f64),
            Rule::MultiStep { milestones, gamma } => {
                let mut sorted = milestones.clone();
                sorted.sort_unstable();
                base * gamma.powf(bisect_right(&sorted, e) as f64)
            }
            Rule::Exponential { gamma } => base * gamma.powf(e as f64),
            Rule::Linear { start, end, total_iters } => {
                base * (start + (end - start) * (*total_iters).min(e) as f64 / *total_iters as f64)
            }
            Rule::Cosine { t_max, eta_min } => {
                eta_min + (base - eta_min) * (1.0 + (PI * e as f64 / *t_max as f64).cos()) / 2.0
            }
            _ => return None,
        })
    }

    /// The most `scheduler.step()` calls torch allows, where it limits them: OneCycleLR raises
    /// once `last_epoch` passes `total_steps`; a `SequentialLR` child is stepped from its
    /// milestone (reset to 0 there) until the next one.
    fn max_steps(&self) -> Option<i64> {
        match &self.rule {
            Rule::OneCycle(one) => Some(one.total_steps),
            Rule::Sequential { children, milestones } => {
                let starts = std::iter::once(0).chain(milestones.iter().copied());
                let ends = milestones.iter().map(|m| Some(m - 1)).chain(std::iter::once(None));
                children
                    .iter()
                    .zip(starts.zip(ends))
                    .filter_map(|(child, (start, end))| {
                        let limit = child.max_steps()?;
                        // The child's last_epoch reaches `end - start` before the next one takes over.
                        end.is_none_or(|end| end - start > limit).then_some(start + limit)
                    })
                    .min()
            }
            _ => None,
        }
    }

    /// `SequentialLR.recursive_undo`.
    fn undo(&mut self) {
        if let Rule::Sequential { children, .. } = &mut self.rule {
            children.iter_mut().for_each(Node::undo);
        } else {
            self.last_epoch -= 1;
        }
    }
}

fn bisect_right(sorted: &[i64], x: i64) -> usize {
    sorted.partition_point(|m| *m <= x)
}

/// A learning-rate schedule built from a spec, as burn's [`LrScheduler`]: each
/// [`step`](LrScheduler::step) returns the learning rate of the next optimizer step, then
/// advances, as `optimizer.step(); scheduler.step()` does in torch.
#[derive(Debug, Clone)]
pub struct Schedule {
    spec: ScheduleSpec,
    base_lr: f64,
    root: Node,
    group: Group,
    steps: usize,
    /// The metrics observed, in order (`reduce-on-plateau` only).
    metrics: Vec<f64>,
}

impl Schedule {
    /// The learning rate (and the cycled momentum, if any) of the next optimizer step, without
    /// advancing.
    pub fn peek(&self) -> (f64, Option<f64>) {
        (self.group.lr, self.group.momentum)
    }

    /// The momentum (β₁ for Adam-like optimizers) the schedule sets for the next step, when it
    /// cycles it (OneCycleLR with `cycle_momentum`).
    pub fn momentum(&self) -> Option<f64> {
        self.group.momentum
    }

    /// Optimizer steps taken so far.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The spec it was built from.
    pub fn spec(&self) -> &ScheduleSpec {
        &self.spec
    }

    /// The most optimizer steps the schedule can take, for the schedules torch limits
    /// (OneCycleLR: `total_steps`, counted from its milestone inside `sequential`); `None`
    /// for the others. torch raises when a run steps past it; adamlab refuses such a run before
    /// it starts.
    pub fn max_steps(&self) -> Option<usize> {
        self.root.max_steps().map(|n| n.max(0) as usize)
    }

    /// Advances `n` steps, discarding the rates: how a resumed run catches up (the schedule is a
    /// pure function of the steps taken, so this is exact).
    pub fn advance(&mut self, n: usize) {
        for _ in 0..n {
            LrScheduler::step(self);
        }
    }

    /// Whether the schedule needs a metric after every epoch ([`Schedule::observe`]):
    /// `reduce-on-plateau`.
    pub fn needs_metric(&self) -> bool {
        matches!(self.root.rule, Rule::Plateau(_))
    }

    /// An epoch's metric (torch's `scheduler.step(val_loss)`); ignored by the schedules stepped
    /// by optimizer steps.
    pub fn observe(&mut self, metric: f64) {
        if let Rule::Plateau(plateau) = &mut self.root.rule {
            plateau.observe(metric, &mut self.group);
            self.metrics.push(metric);
        }
    }

    /// The metrics observed so far, oldest first: with the steps taken, the schedule's whole
    /// state (a resumed run replays both).
    pub fn metrics(&self) -> &[f64] {
        &self.metrics
    }
}

impl LrScheduler for Schedule {
    fn step(&mut self) -> LearningRate {
        let lr = self.group.lr;
        self.root.step(&mut self.group);
        self.steps += 1;
        lr
    }

    fn to_record(&self) -> LrSchedulerRecord {
        LrSchedulerRecord::new().with_scalar("steps", self.steps as u64)
    }

    fn load_record(&mut self, record: LrSchedulerRecord) {
        let steps: u64 = record.scalar("steps").unwrap_or(0);
        *self = self.spec.build(self.base_lr).expect("a built spec builds again");
        self.advance(steps as usize);
    }
}

/// One schedule of the catalogue.
pub struct ScheduleEntry {
    /// The spec name: `cosine`.
    pub name: &'static str,
    /// The torch class it follows.
    pub reference: &'static str,
    /// One line.
    pub summary: &'static str,
    /// Its keywords, torch's names lower-cased.
    pub params: &'static [HyperParam],
}

impl fmt::Debug for ScheduleEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

const fn param(name: &'static str, kind: Kind, default: &'static str, help: &'static str) -> HyperParam {
    HyperParam {
        name,
        kind,
        default,
        help,
    }
}

const STEPS: Kind = Kind::Int { min: 1, max: i64::MAX };
const COUNT: Kind = Kind::Int { min: 0, max: i64::MAX };
const FACTOR: Kind = Kind::Float(Interval::new(0.0, false, 1.0, true));
const GAMMA: Kind = Kind::Float(Interval::POSITIVE);
const ETA_MIN: HyperParam = param("eta_min", Kind::Float(Interval::NON_NEGATIVE), "0", "the lowest learning rate");
const MILESTONES: HyperParam = param(
    "milestones",
    Kind::List(&COUNT),
    "[]",
    "the steps at which the learning rate is multiplied by gamma",
);

/// Every schedule, in the order `adamlab optimizers` lists them.
pub static SCHEDULES: &[ScheduleEntry] = &[
    ScheduleEntry {
        name: "constant",
        reference: "torch.optim.lr_scheduler.ConstantLR",
        summary: "lr·factor for total_iters steps, then lr",
        params: &[
            param("factor", FACTOR, "0.3333333333333333", "the multiplier until total_iters"),
            param("total_iters", COUNT, "5", "steps at the lowered rate"),
        ],
    },
    ScheduleEntry {
        name: "step",
        reference: "torch.optim.lr_scheduler.StepLR",
        summary: "multiply by gamma every step_size steps",
        params: &[
            param("step_size", STEPS, "None", "steps between decays (required)"),
            param("gamma", GAMMA, "0.1", "the multiplier"),
        ],
    },
    ScheduleEntry {
        name: "multistep",
        reference: "torch.optim.lr_scheduler.MultiStepLR",
        summary: "multiply by gamma at each milestone",
        params: &[MILESTONES, param("gamma", GAMMA, "0.1", "the multiplier")],
    },
    ScheduleEntry {
        name: "exponential",
        reference: "torch.optim.lr_scheduler.ExponentialLR",
        summary: "multiply by gamma every step",
        params: &[param("gamma", GAMMA, "None", "the multiplier (required)")],
    },
    ScheduleEntry {
        name: "linear",
        reference: "torch.optim.lr_scheduler.LinearLR",
        summary: "from lr·start_factor to lr·end_factor over total_iters steps (warm-up)",
        params: &[
            param("start_factor", FACTOR, "0.3333333333333333", "the first step's multiplier"),
            param("end_factor", Kind::Float(Interval::UNIT), "1.0", "the multiplier from total_iters on"),
            param("total_iters", STEPS, "5", "steps of the ramp (at least one)"),
        ],
    },
    ScheduleEntry {
        name: "cosine",
        reference: "torch.optim.lr_scheduler.CosineAnnealingLR",
        summary: "half a cosine from lr down to eta_min over t_max steps",
        params: &[param("t_max", STEPS, "None", "steps of the half period (required)"), ETA_MIN],
    },
    ScheduleEntry {
        name: "cosine-warm-restarts",
        reference: "torch.optim.lr_scheduler.CosineAnnealingWarmRestarts",
        summary: "cosine from lr to eta_min, restarting after t_0, t_0·t_mult, … steps (SGDR)",
        params: &[
            param("t_0", STEPS, "None", "steps to the first restart (required)"),
            param("t_mult", STEPS, "1", "growth of the period after each restart"),
            ETA_MIN,
        ],
    },
    ScheduleEntry {
        name: "onecycle",
        reference: "torch.optim.lr_scheduler.OneCycleLR",
        summary: "up from max_lr/div_factor to max_lr, then down to its 1/final_div_factor; cycles β₁/momentum",
        params: &[
            param("max_lr", Kind::Float(Interval::POSITIVE), "None", "the peak learning rate (required)"),
            param("total_steps", Kind::Optional(&STEPS), "None", "steps of the cycle (or epochs × steps_per_epoch)"),
            param("epochs", Kind::Optional(&STEPS), "None", "with steps_per_epoch, instead of total_steps"),
            param("steps_per_epoch", Kind::Optional(&STEPS), "None", "with epochs, instead of total_steps"),
            param("pct_start", Kind::Float(Interval::UNIT), "0.3", "fraction of the cycle spent rising"),
            param("anneal_strategy", Kind::Choice(&["cos", "linear"]), "cos", "the shape of each phase"),
            param("cycle_momentum", Kind::Bool, "true", "cycle the optimizer's β₁ or momentum inversely"),
            param("base_momentum", Kind::Float(Interval::UNIT), "0.85", "the momentum at the peak lr"),
            param("max_momentum", Kind::Float(Interval::UNIT), "0.95", "the momentum at the ends"),
            param("div_factor", Kind::Float(Interval::POSITIVE), "25.0", "max_lr / initial lr"),
            param("final_div_factor", Kind::Float(Interval::POSITIVE), "10000.0", "initial lr / final lr"),
            param("three_phase", Kind::Bool, "false", "rise, fall back to the initial lr, then anneal"),
        ],
    },
    ScheduleEntry {
        name: "sequential",
        reference: "torch.optim.lr_scheduler.SequentialLR",
        summary: "the given schedules one after another, switching at the milestones",
        params: &[param(
            "milestones",
            Kind::List(&COUNT),
            "None",
            "where each next schedule starts (default: each schedule's total_iters, t_max or total_steps, added up)",
        )],
    },
    ScheduleEntry {
        name: "reduce-on-plateau",
        reference: "torch.optim.lr_scheduler.ReduceLROnPlateau",
        summary: "multiply by factor when an epoch's metric (validation loss, else training loss) stops improving",
        params: &[
            param("mode", Kind::Choice(&["min", "max"]), "min", "min: lower is better; max: higher is better"),
            param("factor", Kind::Float(Interval::new(0.0, false, 1.0, false)), "0.1", "the multiplier"),
            param("patience", COUNT, "10", "epochs without improvement tolerated before lowering"),
            param("threshold", Kind::Float(Interval::NON_NEGATIVE), "0.0001", "the least change that counts as improvement"),
            param("threshold_mode", Kind::Choice(&["rel", "abs"]), "rel", "threshold relative to the best, or absolute"),
            param("cooldown", COUNT, "0", "epochs after a lowering before counting again"),
            param("min_lr", Kind::Float(Interval::NON_NEGATIVE), "0", "the lowest learning rate"),
            param("eps", Kind::Float(Interval::NON_NEGATIVE), "1e-08", "a lowering smaller than this is skipped"),
        ],
    },
];

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

/// The entry named `name`.
pub fn schedule_entry(name: &str) -> Option<&'static ScheduleEntry> {
    SCHEDULES.iter().find(|e| e.name == name)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(spec: &str, lr: f64, n: usize) -> Vec<f64> {
        let mut schedule = ScheduleSpec::parse(spec).unwrap().build(lr).unwrap();
        (0..n).map(|_| LrScheduler::step(&mut schedule)).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1e-300)
    }

    #[test]
    fn step_decays_every_step_size_steps() {
        let r = rates("step(step_size=2, gamma=0.5)", 1.0, 6);
        assert_eq!(r, [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]);
    }

    #[test]
    fn linear_warm_up_reaches_the_base_rate_at_total_iters() {
        let r = rates("linear(start_factor=0.25, total_iters=4)", 0.1, 6);
        let expected = [0.025, 0.04375, 0.0625, 0.08125, 0.1, 0.1];
        for (a, b) in r.iter().zip(expected) {
            assert!(close(*a, b), "{r:?}");
        }
    }

    #[test]
    fn cosine_follows_its_closed_form_for_two_periods() {
        let r = rates("cosine(t_max=10, eta_min=0.001)", 0.1, 40);
        for (e, lr) in r.iter().enumerate() {
            let closed = 0.001 + (0.1 - 0.001) * (1.0 + (PI * e as f64 / 10.0).cos()) / 2.0;
            assert!((lr - closed).abs() < 1e-12, "step {e}: {lr} vs {closed}");
        }
    }

    #[test]
    fn sequential_derives_its_milestones_from_the_first_schedule() {
        let r = rates("sequential(linear(start_factor=0.1, total_iters=10), cosine(t_max=90))", 1.0, 12);
        assert!(close(r[0], 0.1), "{r:?}");
        assert!(close(r[10], 1.0), "{r:?}");
        assert!(r[11] < 1.0, "{r:?}");
        let explicit = rates("sequential(linear(start_factor=0.1, total_iters=10), cosine(t_max=90), milestones=[10])", 1.0, 12);
        assert_eq!(r, explicit);
    }

    #[test]
    fn onecycle_starts_at_max_lr_over_div_factor_and_cycles_momentum() {
        let mut s = ScheduleSpec::parse("onecycle(max_lr=0.01, total_steps=100)").unwrap().build(1.0).unwrap();
        let (lr, momentum) = s.peek();
        // The cosine anneal at pct 0, as torch evaluates it, lands one ulp-ish below 0.01/25.
        assert!(close(lr, 0.01 / 25.0) || (lr - 0.0004).abs() < 1e-18, "{lr}");
        assert_eq!(momentum, Some(0.95));
        s.advance(29);
        let (lr, momentum) = s.peek();
        assert!(close(lr, 0.01), "{lr}");
        assert!(close(momentum.unwrap(), 0.85), "{momentum:?}");
    }

    #[test]
    fn a_resumed_schedule_continues_exactly() {
        let spec = ScheduleSpec::parse("cosine-warm-restarts(t_0=7, t_mult=2)").unwrap();
        let mut a = spec.build(0.1).unwrap();
        a.advance(13);
        let record = LrScheduler::to_record(&a);
        let mut b = spec.build(0.1).unwrap();
        LrScheduler::load_record(&mut b, record);
        for _ in 0..30 {
            assert_eq!(LrScheduler::step(&mut a), LrScheduler::step(&mut b));
        }
    }

    #[test]
    fn only_onecycle_limits_the_steps_counted_from_its_milestone() {
        let max = |spec: &str| ScheduleSpec::parse(spec).unwrap().build(0.1).unwrap().max_steps();
        assert_eq!(max("cosine(t_max=10)"), None);
        assert_eq!(max("onecycle(max_lr=0.1, total_steps=50)"), Some(50));
        assert_eq!(max("onecycle(max_lr=0.1, epochs=4, steps_per_epoch=8)"), Some(32));
        assert_eq!(max("sequential(linear(total_iters=10), onecycle(max_lr=0.1, total_steps=50))"), Some(60));
        // A onecycle that hands over before its end limits nothing; one that ends first does.
        let first = "sequential(onecycle(max_lr=0.1, total_steps=50), cosine(t_max=9), milestones=[MS])";
        assert_eq!(max(&first.replace("MS", "51")), None);
        assert_eq!(max(&first.replace("MS", "52")), Some(50));
    }

    #[test]
    fn bad_schedule_specs_are_one_line_errors() {
        for (spec, needle) in [
            ("nosuch", "unknown schedule"),
            ("cosine", "`t_max` is required"),
            ("cosine(t_max=0)", "invalid t_max"),
            ("step(step_size=3, momentum=1)", "has no keyword `momentum`"),
            ("linear(start_factor=0)", "invalid start_factor"),
            ("sequential(exponential(gamma=0.9), cosine(t_max=3))", "give milestones"),
            ("sequential(linear(), cosine(t_max=3), milestones=[1, 2])", "need 1 milestones"),
            ("onecycle(max_lr=0.1)", "total_steps"),
            ("step(3)", "by name"),
        ] {
            let err = ScheduleSpec::parse(spec).unwrap_err().to_string();
            assert!(err.contains(needle), "{spec}: {err}");
            assert_eq!(err.lines().count(), 1);
        }
    }
}
