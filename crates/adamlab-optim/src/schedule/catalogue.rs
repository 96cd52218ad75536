//! The catalogue of schedules: each one's spec name, the torch class it follows and its keywords
//! (torch's names, lower-cased, with defaults, ranges and help).

use std::fmt;

use crate::hyper::{HyperParam, Interval, Kind};

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

/// The entry named `name`.
pub fn schedule_entry(name: &str) -> Option<&'static ScheduleEntry> {
    SCHEDULES.iter().find(|e| e.name == name)
}
