//! The training controls PyTorch code brings along with its optimizer: parameter groups with
//! their own hyper-parameters, a learning-rate schedule per group, and gradient clipping over all
//! parameters, applied around each optimizer step as torch applies them.
//!
//! ```text
//! loss.backward()
//! clip_grad_norm_(model.parameters(), max_norm)      ← Clip, over every gradient at once
//! optimizer.step()                                   ← each group at its scheduled lr (and β₁)
//! scheduler.step()                                   ← each group's schedule advances
//! ```
//!
//! Groups are built on burn's `ModuleOptimizer::with_group` (each group's optimizer is the base
//! spec with the group's keywords changed) and per-group learning rates on burn's
//! `ModuleLrSchedulerConfig` groups, so the module optimizer's state is burn's own and saves and
//! loads as before.

use adamlab_optim::clip::{self, Clip};
use adamlab_optim::schedule::{Schedule, ScheduleError, ScheduleSpec};
use adamlab_optim::{
    AnyOptimizer, OptimizerSpec, CycledMomentum, SpecError, Value, check_learning_rate, eval_weights,
};
use burn::module::{Module, ParamGroup};
use burn::optim::lr_scheduler::module_lr_scheduler::{ModuleLearningRate, ModuleLrSchedulerConfig};
use burn::optim::lr_scheduler::{LrScheduler, LrSchedulerConfig};
use burn::optim::{GradientsParams, ModuleOptimizer};

/// A parameter group: the parameters it holds, and the keywords of the optimizer spec that
/// differ for them (`weight_decay=0`, `lr=1e-4`, …), as a torch param group dict.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    /// A name for messages: `no-decay-bias`.
    pub name: String,
    /// Which parameters, by their module path (`fc2.bias`): burn's matcher.
    pub select: ParamGroup,
    /// The keywords that differ from the base spec.
    pub overrides: Vec<(String, Value)>,
}

impl GroupSpec {
    /// The usual group of ported code: biases (paths ending in `bias`) without weight decay.
    pub fn no_decay_bias() -> Self {
        Self {
            name: "no-decay-bias".into(),
            select: ParamGroup::from_regex(r"(^|\.)bias$").expect("a valid pattern"),
            overrides: vec![("weight_decay".into(), Value::Number(0.0))],
        }
    }
}

/// Everything that shapes an optimizer step besides the gradients.
#[derive(Debug, Clone)]
pub struct ControlsSpec {
    /// The optimizer of every parameter not in a group (torch's first param group).
    pub optimizer: OptimizerSpec,
    /// Further groups; a parameter in several takes the last one's settings (burn's rule).
    pub groups: Vec<GroupSpec>,
    /// The learning-rate schedule, applied to each group from that group's own lr.
    pub schedule: Option<ScheduleSpec>,
    /// Gradient clipping before each step.
    pub clip: Option<Clip>,
    /// Micro-batches per optimizer step (1: none). Their gradients are averaged, each weighted by
    /// its share of the step's examples, so that N micro-batches of B examples step as one batch
    /// of N·B does under a mean loss (to f32 rounding): torch's `(loss / N).backward()` over N
    /// batches, then `optimizer.step()`.
    pub accumulate: usize,
    /// A moving average of the weights, updated after every step with this decay: torch's
    /// `AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))`. Evaluation and the
    /// saved weights are the average.
    pub ema: Option<f64>,
    /// A step whose loss is not finite is skipped (no update; counted and reported) instead of
    /// stopping the run, as optax's `apply_if_finite` does.
    pub skip_nonfinite: bool,
    /// Lookahead around the optimizer (pytorch-optimizer's `Lookahead`).
    pub lookahead: Option<crate::lookahead::Lookahead>,
    /// Stochastic weight averaging with SWALR after some epochs (torch's `swa_utils`).
    pub swa: Option<crate::swa::Swa>,
}

impl ControlsSpec {
    /// Only an optimizer: no groups, schedule or clipping.
    pub fn optimizer(optimizer: OptimizerSpec) -> Self {
        Self {
            optimizer,
            groups: Vec::new(),
            schedule: None,
            clip: None,
            accumulate: 1,
            ema: None,
            skip_nonfinite: false,
            lookahead: None,
            swa: None,
        }
    }

    /// A description for the run's first line: the optimizer, then [`describe_controls`].
    ///
    /// [`describe_controls`]: Self::describe_controls
    pub fn describe(&self) -> String {
        match self.describe_controls() {
            Some(controls) => format!("{}; {controls}", self.optimizer.canonical()),
            None => self.optimizer.canonical(),
        }
    }

    /// The groups, schedule, clipping, accumulation, EMA and the non-finite policy, for a
    /// checkpoint's identity (`None`: none of them).
    pub fn describe_controls(&self) -> Option<String> {
        let mut parts = Vec::new();
        for group in &self.groups {
            let keys: Vec<String> = group.overrides.iter().map(|(k, v)| format!("{k}={v}")).collect();
            parts.push(format!("group {}: {}", group.name, keys.join(", ")));
        }
        if let Some(schedule) = &self.schedule {
            parts.push(format!("schedule {schedule}"));
        }
        match self.clip {
            Some(Clip::Norm { max_norm, norm_type }) => parts.push(format!("clip_grad_norm {max_norm} ({norm_type}-norm)")),
            Some(Clip::Value(v)) => parts.push(format!("clip_grad_value {v}")),
            None => {}
        }
        if self.accumulate > 1 {
            parts.push(format!("accumulate {}", self.accumulate));
        }
        if let Some(decay) = self.ema {
            parts.push(format!("ema {decay}"));
        }
        if self.skip_nonfinite {
            parts.push("skip non-finite steps".into());
        }
        if let Some(lookahead) = self.lookahead {
            parts.push(lookahead.to_string());
        }
        if let Some(swa) = self.swa {
            parts.push(swa.to_string());
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// Refuses a run of `steps` optimizer steps that its schedule cannot take: torch's OneCycleLR
    /// raises when stepped past its `total_steps`, so a longer run is refused before it starts.
    pub fn check_run_length(&self, steps: usize) -> Result<(), ControlsError> {
        let Some(spec) = &self.schedule else {
            return Ok(());
        };
        match spec.build(self.optimizer.lr())?.max_steps() {
            Some(max_steps) if steps > max_steps => Err(ControlsError::RunTooLong {
                schedule: spec.to_string(),
                max_steps,
                steps,
            }),
            _ => Ok(()),
        }
    }
}

/// What stops the controls from being built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ControlsError {
    /// An optimizer spec (a group's included) that cannot be used.
    #[error(transparent)]
    Optimizer(#[from] SpecError),
    /// A schedule that cannot be built.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// A clipping threshold out of range.
    #[error("{0}")]
    Clip(String),
    /// An accumulation count or EMA decay out of range.
    #[error("{0}")]
    Loop(String),
    /// Controls the chosen training loop cannot apply (burn's `Learner` has no param groups or
    /// clipping).
    #[error("{0}")]
    Unsupported(String),
    /// A schedule gave a learning rate no optimizer can take (negative, or not finite in f32, the
    /// precision of every step). The step is not taken: the weights are those after the previous
    /// step.
    #[error(
        "schedule {schedule} gives lr {lr:e} for step {step}{}: a learning rate must be a number \
         in [0, 3.4e38] (finite in f32); the step was not taken",
        match .group {
            Some(name) => format!(" of group {name}"),
            None => String::new(),
        }
    )]
    LearningRate {
        /// The schedule, as a spec.
        schedule: String,
        /// The optimizer step it was made for (1-based).
        step: usize,
        /// The param group, when not the first.
        group: Option<String>,
        /// The value.
        lr: f64,
    },
    /// A run longer than its schedule allows (OneCycleLR's `total_steps`).
    #[error(
        "schedule {schedule} ends after {max_steps} optimizer steps, and this run takes {steps} \
         (torch's OneCycleLR refuses to step past total_steps): give total_steps={steps} or more, \
         or train for fewer steps"
    )]
    RunTooLong {
        /// The schedule, as a spec.
        schedule: String,
        /// The steps it allows.
        max_steps: usize,
        /// The steps the run takes.
        steps: usize,
    },
}

/// One param group at run time.
struct Group {
    /// `None` for the first group (every parameter not in another).
    name: Option<String>,
    select: ParamGroup,
    lab: Box<dyn AnyOptimizer>,
    lr: f64,
    schedule: Option<Schedule>,
    momentum: Option<CycledMomentum>,
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInfo {
    /// The learning rate of the step (the first group's).
    pub lr: f64,
    /// The total gradient norm before clipping, with `clip_grad_norm`.
    pub grad_norm: Option<f64>,
}

/// A step [`Controls::step`] refused to take, with the module it was given, unchanged.
#[derive(Debug)]
pub struct StepRefused<M> {
    /// Why.
    pub error: ControlsError,
    /// The module as it was before the refused step.
    pub module: M,
}

/// An optimizer with its groups, schedules and clipping, stepped as torch steps them.
pub struct Controls {
    spec: ControlsSpec,
    optimizer: ModuleOptimizer,
    groups: Vec<Group>,
    steps: usize,
    swa: Option<SwaPhase>,
}

/// Where SWA's learning rate stands from the end of epoch `after` on: each group's rate (held for
/// a whole epoch), SWALR's `step()` calls so far, and the regular schedule's steps, frozen then.
#[derive(Debug, Clone, PartialEq)]
pub struct SwaPhase {
    /// Every group's learning rate, in group order.
    pub lrs: Vec<f64>,
    /// SWALR's `step()` calls so far.
    pub steps: usize,
    /// Optimizer steps the regular schedule took before SWA took over.
    pub schedule_steps: usize,
}

impl Controls {
    /// Builds the optimizer of every group, and their schedules.
    pub fn new(spec: &ControlsSpec) -> Result<Self, ControlsError> {
        if let Some(lookahead) = spec.lookahead
            && (lookahead.k == 0 || !(0.0..=1.0).contains(&lookahead.alpha))
        {
            return Err(ControlsError::Loop(format!(
                "{lookahead}: k must be at least 1 and alpha in [0, 1] (k=5, alpha=0.5 are usual)"
            )));
        }
        if spec.accumulate == 0 {
            return Err(ControlsError::Loop("accumulating 0 micro-batches per step: give at least 1".into()));
        }
        if let Some(swa) = spec.swa {
            if swa.after == 0 || !(swa.swa_lr.is_finite() && swa.swa_lr >= 0.0) {
                return Err(ControlsError::Loop(format!(
                    "{swa}: give at least 1 epoch before averaging and a finite swa_lr ≥ 0"
                )));
            }
            if spec.ema.is_some() {
                return Err(ControlsError::Loop(
                    "a weight EMA and SWA both define the weights evaluated and saved: choose one".into(),
                ));
            }
            if spec.schedule.as_ref().is_some_and(|s| s.name() == "reduce-on-plateau") {
                return Err(ControlsError::Loop(
                    "SWA's SWALR and reduce-on-plateau both set the learning rate after each epoch: choose one".into(),
                ));
            }
        }
        if let Some(decay) = spec.ema
            && !(0.0..=1.0).contains(&decay)
        {
            return Err(ControlsError::Loop(format!(
                "an EMA decay of {decay}: it must be a number in [0, 1] (0.999 is usual)"
            )));
        }
        if let Some(clip) = spec.clip {
            let ok = match clip {
                Clip::Norm { max_norm, norm_type } => {
                    max_norm.is_finite() && max_norm >= 0.0 && norm_type >= adamlab_optim::clip::MIN_NORM_TYPE
                }
                Clip::Value(v) => v.is_finite() && v >= 0.0,
            };
            if !ok {
                return Err(ControlsError::Clip(format!(
                    "invalid clipping {clip:?}: the threshold must be a finite number ≥ 0 and the norm type ≥ {} (or inf)",
                    adamlab_optim::clip::MIN_NORM_TYPE
                )));
            }
        }
        let cycles = spec.schedule.as_ref().is_some_and(ScheduleSpec::cycles_momentum);
        let mut specs = vec![(None, ParamGroup::all(), spec.optimizer.clone())];
        for group in &spec.groups {
            let mut group_spec = spec.optimizer.clone();
            for (keyword, value) in &group.overrides {
                group_spec = group_spec.with(keyword, value.clone())?;
            }
            specs.push((Some(group.name.clone()), group.select.clone(), group_spec));
        }
        let mut groups = Vec::with_capacity(specs.len());
        for (name, select, optimizer_spec) in specs {
            let momentum = cycles.then(CycledMomentum::default);
            let lab = match &momentum {
                Some(cell) => optimizer_spec.build_cycling_momentum(cell.clone())?,
                None => optimizer_spec.build()?,
            };
            let lr = optimizer_spec.lr();
            let schedule = spec.schedule.as_ref().map(|s| s.build(lr)).transpose()?;
            groups.push(Group {
                name,
                select,
                lab,
                lr,
                schedule,
                momentum,
            });
        }
        let mut optimizer = groups[0].lab.module_optimizer();
        for group in &groups[1..] {
            optimizer = group.lab.with_group(optimizer, group.select.clone());
        }
        Ok(Self {
            spec: spec.clone(),
            optimizer,
            groups,
            steps: 0,
            swa: None,
        })
    }

    /// The learning rate (and cycled momentum) of the next step, for each group in order.
    pub fn next_rates(&self) -> Vec<(f64, Option<f64>)> {
        if let Some(phase) = &self.swa {
            return phase.lrs.iter().map(|&lr| (lr, None)).collect();
        }
        self.groups
            .iter()
            .map(|g| g.schedule.as_ref().map_or((g.lr, None), Schedule::peek))
            .collect()
    }

    /// Clips `grads`, steps `module` with every group at its scheduled learning rate, and advances
    /// the schedules.
    ///
    /// A scheduled learning rate that is not finite or is negative (an `exponential(gamma=1e300)`
    /// overflows after a few steps) is refused before anything changes: the error comes back with
    /// `module` as it was, so that a loop can keep the weights it trained.
    pub fn step<M: Module>(
        &mut self,
        module: M,
        mut grads: GradientsParams,
    ) -> Result<(M, StepInfo), StepRefused<M>> {
        if let Err(error) = self.check_next_rates() {
            return Err(StepRefused { error, module });
        }
        let grad_norm = self.spec.clip.and_then(|c| clip::apply(c, &module, &mut grads));
        let mut rates = Vec::with_capacity(self.groups.len());
        if let Some(phase) = &self.swa {
            rates.extend(&phase.lrs);
        }
        let scheduled = self.swa.is_none();
        for group in self.groups.iter_mut().filter(|_| scheduled) {
            let lr = match &mut group.schedule {
                Some(schedule) => {
                    if let (Some(cell), Some(momentum)) = (&group.momentum, schedule.momentum()) {
                        cell.set(momentum);
                    }
                    LrScheduler::step(schedule)
                }
                None => group.lr,
            };
            rates.push(lr);
        }
        let module = self.optimizer.step(self.learning_rates(&rates), module, grads);
        self.steps += 1;
        Ok((
            module,
            StepInfo {
                lr: rates[0],
                grad_norm,
            },
        ))
    }

    /// Every group's learning rate for the next step is one an optimizer can take.
    fn check_next_rates(&self) -> Result<(), ControlsError> {
        if self.swa.is_some() {
            return Ok(()); // SWALR's rates lie between finite, non-negative ones
        }
        for group in &self.groups {
            let Some(schedule) = &group.schedule else {
                continue; // the spec's own lr, checked when the optimizer was built
            };
            let (lr, _) = schedule.peek();
            if check_learning_rate(lr).is_err() || lr > f64::from(f32::MAX) {
                return Err(ControlsError::LearningRate {
                    schedule: schedule.spec().to_string(),
                    step: self.steps + 1,
                    group: group.name.clone(),
                    lr,
                });
            }
        }
        Ok(())
    }

    /// burn's per-group learning rates for one step.
    fn learning_rates(&self, rates: &[f64]) -> ModuleLearningRate {
        if rates.len() == 1 {
            return rates[0].into();
        }
        let mut config = ModuleLrSchedulerConfig::new(LrSchedulerConfig::Constant(rates[0]));
        for (group, lr) in self.groups[1..].iter().zip(&rates[1..]) {
            config = config.with_group(group.select.clone(), LrSchedulerConfig::Constant(*lr));
        }
        config.init().expect("constant rates build").step()
    }

    /// Optimizer steps taken.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The module optimizer, to save its state.
    pub fn module_optimizer(&self) -> &ModuleOptimizer {
        &self.optimizer
    }

    /// Continues from a saved optimizer state after `steps` steps: the schedules are pure
    /// functions of the steps taken, so catching up is exact.
    pub fn resume(&mut self, optimizer: ModuleOptimizer, steps: usize, metrics: &[f64]) {
        self.optimizer = optimizer;
        for group in &mut self.groups {
            if let Some(schedule) = &mut group.schedule {
                schedule.advance(steps - self.steps);
                // Only reduce-on-plateau reads metrics, and it ignores steps: the order is free.
                for &metric in &metrics[schedule.metrics().len()..] {
                    schedule.observe(metric);
                }
            }
        }
        self.steps = steps;
    }

    /// The end of `epoch` (1-based) for SWA. At the end of epoch `after` the regular schedule
    /// stops and its next rates are held (torch steps its schedule once per epoch, so the first
    /// SWA epoch runs at the rate the schedule reached); at the end of every later epoch SWALR
    /// steps (torch's `swa_scheduler.step()`), setting the next epoch's rates.
    pub fn swa_epoch_end(&mut self, epoch: usize) {
        let Some(swa) = self.spec.swa else {
            return;
        };
        if epoch == swa.after {
            let lrs = self
                .groups
                .iter()
                .map(|g| g.schedule.as_ref().map_or(g.lr, |s| s.peek().0))
                .collect();
            self.swa = Some(SwaPhase { lrs, steps: 0, schedule_steps: self.steps });
        } else if epoch > swa.after
            && let Some(phase) = &mut self.swa
        {
            phase.steps += 1;
            let step = phase.steps;
            for lr in &mut phase.lrs {
                *lr = swa.swalr(*lr, step);
            }
        }
    }

    /// SWA's learning-rate state, once averaging has begun: part of a checkpoint.
    pub fn swa_phase(&self) -> Option<&SwaPhase> {
        self.swa.as_ref()
    }

    /// Restores SWA's learning-rate state from a checkpoint (after [`Controls::resume`]).
    pub fn restore_swa_phase(&mut self, phase: SwaPhase) {
        self.swa = Some(phase);
    }

    /// Whether the schedule needs a metric after every epoch (`reduce-on-plateau`).
    pub fn needs_metric(&self) -> bool {
        self.groups.iter().any(|g| g.schedule.as_ref().is_some_and(Schedule::needs_metric))
    }

    /// An epoch's metric, for a schedule that reads one (`reduce-on-plateau`: torch's
    /// `scheduler.step(val_loss)`); the other schedules ignore it.
    pub fn observe(&mut self, metric: f64) {
        for group in &mut self.groups {
            if let Some(schedule) = &mut group.schedule {
                schedule.observe(metric);
            }
        }
    }

    /// The metrics observed so far, oldest first (empty unless the schedule reads them): part of
    /// a checkpoint, so that a resumed run replays them.
    pub fn metrics(&self) -> Vec<f64> {
        self.groups
            .iter()
            .find_map(|g| g.schedule.as_ref().filter(|s| s.needs_metric()))
            .map_or_else(Vec::new, |s| s.metrics().to_vec())
    }

    /// A fresh module optimizer of the same groups, to load a saved state into.
    pub fn fresh_module_optimizer(&self) -> ModuleOptimizer {
        let mut optimizer = self.groups[0].lab.module_optimizer();
        for group in &self.groups[1..] {
            optimizer = group.lab.with_group(optimizer, group.select.clone());
        }
        optimizer
    }

    /// The weights to evaluate `module` with: its own, or a schedule-free optimizer's
    /// evaluation point (taken with the first group's optimizer).
    pub fn eval_weights<M: Module>(&self, module: M) -> M {
        eval_weights(&*self.groups[0].lab, &self.optimizer, module)
    }

    /// The spec.
    pub fn spec(&self) -> &ControlsSpec {
        &self.spec
    }
}
