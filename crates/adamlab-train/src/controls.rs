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
}

impl ControlsSpec {
    /// Only an optimizer: no groups, schedule or clipping.
    pub fn optimizer(optimizer: OptimizerSpec) -> Self {
        Self {
            optimizer,
            groups: Vec::new(),
            schedule: None,
            clip: None,
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

    /// The groups, schedule and clipping, for a checkpoint's identity (`None`: none of them).
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
}

impl Controls {
    /// Builds the optimizer of every group, and their schedules.
    pub fn new(spec: &ControlsSpec) -> Result<Self, ControlsError> {
        if let Some(clip) = spec.clip {
            let ok = match clip {
                Clip::Norm { max_norm, norm_type } => {
                    max_norm.is_finite() && max_norm >= 0.0 && (norm_type > 0.0 || norm_type == f64::INFINITY)
                }
                Clip::Value(v) => v.is_finite() && v >= 0.0,
            };
            if !ok {
                return Err(ControlsError::Clip(format!(
                    "invalid clipping {clip:?}: the threshold must be a finite number ≥ 0 and the norm type > 0 (or inf)"
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
        })
    }

    /// The learning rate (and cycled momentum) of the next step, for each group in order.
    pub fn next_rates(&self) -> Vec<(f64, Option<f64>)> {
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
        for group in &mut self.groups {
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
    pub fn resume(&mut self, optimizer: ModuleOptimizer, steps: usize) {
        self.optimizer = optimizer;
        for group in &mut self.groups {
            if let Some(schedule) = &mut group.schedule {
                schedule.advance(steps - self.steps);
            }
        }
        self.steps = steps;
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
