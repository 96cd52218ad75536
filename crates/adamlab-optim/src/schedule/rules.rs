//! torch's scheduler machinery, replayed: the param group its schedulers read and write, each
//! scheduler class's rule, and `LRScheduler`'s own bookkeeping (`last_epoch`, the initial step,
//! `SequentialLR`'s undo), in f64 as Python computes it.

use std::f64::consts::PI;

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
pub(super) enum Anneal {
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
pub(super) enum Level {
    Initial,
    Max,
    Min,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Phase {
    pub(super) end_step: f64,
    pub(super) start_lr: Level,
    pub(super) end_lr: Level,
    /// `true`: from max to base momentum; `false`: from base to max (or max to max at the end of
    /// the three-phase schedule: `flat`).
    pub(super) momentum: (Level, Level),
}

/// The rule of one torch scheduler.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Rule {
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
pub(super) struct Plateau {
    /// `mode="max"`: a larger metric is better.
    pub(super) max: bool,
    pub(super) factor: f64,
    pub(super) patience: i64,
    pub(super) threshold: f64,
    /// `threshold_mode="abs"`.
    pub(super) absolute: bool,
    pub(super) cooldown: i64,
    pub(super) min_lr: f64,
    pub(super) eps: f64,
    pub(super) best: f64,
    pub(super) num_bad_epochs: i64,
    pub(super) cooldown_counter: i64,
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
    pub(super) fn observe(&mut self, current: f64, group: &mut Group) {
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
pub(super) struct OneCycle {
    pub(super) total_steps: i64,
    pub(super) phases: Vec<Phase>,
    pub(super) anneal: Anneal,
    pub(super) cycle_momentum: bool,
    pub(super) initial_lr: f64,
    pub(super) max_lr: f64,
    pub(super) min_lr: f64,
    pub(super) max_momentum: f64,
    pub(super) base_momentum: f64,
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
pub(super) struct Node {
    pub(super) rule: Rule,
    pub(super) base_lr: f64,
    pub(super) last_epoch: i64,
    pub(super) step_count: i64,
    pub(super) is_initial: bool,
}

impl Node {
    /// `LRScheduler.__init__(optimizer, last_epoch=-1)` after the subclass's own `__init__`.
    pub(super) fn construct(rule: Rule, group: &mut Group) -> Self {
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

    pub(super) fn initial_step(&mut self, group: &mut Group) {
        self.step_count = 0;
        self.is_initial = true;
        self.step(group);
        self.is_initial = false;
    }

    /// `scheduler.step()`.
    pub(super) fn step(&mut self, group: &mut Group) {
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
    pub(super) fn max_steps(&self) -> Option<i64> {
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
    pub(super) fn undo(&mut self) {
        if let Rule::Sequential { children, .. } = &mut self.rule {
            children.iter_mut().for_each(Node::undo);
        } else {
            self.last_epoch -= 1;
        }
    }
}

pub(super) fn bisect_right(sorted: &[i64], x: i64) -> usize {
    sorted.partition_point(|m| *m <= x)
}
