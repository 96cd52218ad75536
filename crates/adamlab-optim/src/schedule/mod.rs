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
//!
//! The module is in three parts: `rules` (torch's scheduler machinery, replayed),
//! `catalogue` (the schedules and their keywords) and `spec` (parsing a spec and building
//! the schedule); [`Schedule`], the result, is here.

mod catalogue;
mod rules;
mod spec;

use burn::optim::LearningRate;
use burn::optim::lr_scheduler::{LrScheduler, LrSchedulerRecord};

pub use catalogue::{SCHEDULES, ScheduleEntry, schedule_entry};
pub use rules::Group;
use rules::{Node, Rule};
pub use spec::{ScheduleError, ScheduleSpec};

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

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
