//! `adamlab bench optimizers`: the optimizer shoot-out. Each optimizer trains the article's CNN
//! on Fashion-MNIST (adamlab_train's real training loop: shuffled batches, evaluation on the test
//! set after every epoch) for every seed and backend; a record per epoch holds the test accuracy
//! and loss, the mean training loss and the wall time since the run began. This is real training:
//! minutes per optimizer, not a test.

use crate::schema::{Bench, Record};
use crate::{BenchError, Observer, Target};
use adamlab_data::{MnistDataset, Split};
use adamlab_optim::{OptimizerSpec, Value, registry};
use adamlab_models::Cnn;
use adamlab_train::classification;
use adamlab_train::controls::ControlsSpec;
use adamlab_train::fit::{self, EpochReport, Fit, ObserverError, RunConfig, Start, StepReport, Stopped, TrainError};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// The batch size of the shoot-out when not given: the article's.
pub const DEFAULT_BATCH_SIZE: usize = 64;

/// What to train.
#[derive(Debug, Clone)]
pub struct ShootoutConfig {
    /// The backends.
    pub targets: Vec<Target>,
    /// The optimizers, each with the learning rate it trains with.
    pub optimizers: Vec<OptimizerSpec>,
    /// Epochs per run.
    pub epochs: usize,
    /// Seeds of the weights and the data order; one run per seed.
    pub seeds: Vec<u64>,
    /// Images per step.
    pub batch_size: usize,
}

impl ShootoutConfig {
    /// Checks what a user can get wrong.
    pub fn validate(&self) -> Result<(), BenchError> {
        if self.epochs == 0 || self.batch_size == 0 {
            return Err(BenchError::Invalid("--epochs and --batch-size must be at least 1".into()));
        }
        if self.targets.is_empty() || self.optimizers.is_empty() || self.seeds.is_empty() {
            return Err(BenchError::Invalid("nothing to train: a list is empty".into()));
        }
        Ok(())
    }
}

/// The training and test images, loaded once for every run.
#[derive(Debug, Clone)]
pub struct Datasets {
    /// Training images.
    pub train: Arc<MnistDataset>,
    /// Test images.
    pub test: Arc<MnistDataset>,
}

impl Datasets {
    /// Loads the MNIST-format files of `dir`, keeping the first `limit_train` training and
    /// `limit_test` test images when given (a quick look, not the shoot-out).
    pub fn load(dir: &Path, limit_train: Option<usize>, limit_test: Option<usize>) -> Result<Self, BenchError> {
        let mut train = MnistDataset::load(dir, Split::Train)?;
        let mut test = MnistDataset::load(dir, Split::Test)?;
        if let Some(n) = limit_train {
            train = train.truncated(n);
        }
        if let Some(n) = limit_test {
            test = test.truncated(n);
        }
        Ok(Self {
            train: Arc::new(train),
            test: Arc::new(test),
        })
    }
}

/// Every registered optimizer at its torch defaults.
pub fn every_registered() -> Vec<OptimizerSpec> {
    registry()
        .iter()
        .map(|entry| OptimizerSpec::parse(entry.name).expect("every registry default builds"))
        .collect()
}

/// `specs` with the learning rates of `overrides` (`NAME=VALUE`, NAME an optimizer's registry
/// name), each checked against its optimizer's range. A NAME that matches none of `specs` is an
/// error.
pub fn with_learning_rates(
    specs: Vec<OptimizerSpec>,
    overrides: &[(String, f64)],
) -> Result<Vec<OptimizerSpec>, BenchError> {
    if let Some((name, _)) = overrides.iter().find(|(name, _)| !specs.iter().any(|s| s.name() == name)) {
        let names: Vec<&str> = specs.iter().map(OptimizerSpec::name).collect();
        return Err(BenchError::Invalid(format!(
            "--lr {name}=…: `{name}` is not among the optimizers run ({})",
            names.join(", ")
        )));
    }
    // One source per learning rate: not two `--lr` for one name, not `--lr` beside `lr=` in the
    // spec.
    for (at, (name, _)) in overrides.iter().enumerate() {
        if overrides[..at].iter().any(|(earlier, _)| earlier == name) {
            return Err(BenchError::Invalid(format!(
                "--lr {name}=… is given twice: give one learning rate per optimizer"
            )));
        }
        if let Some(spec) = specs.iter().find(|s| s.name() == name && s.is_given("lr")) {
            return Err(BenchError::Invalid(format!(
                "the learning rate of `{name}` is given twice, in its spec `{spec}` and --lr {name}=…: \
                 give it once"
            )));
        }
    }
    specs
        .into_iter()
        .map(|spec| match overrides.iter().find(|(name, _)| name == spec.name()) {
            Some((_, lr)) => Ok(spec.with("lr", Value::Number(*lr))?),
            None => Ok(spec),
        })
        .collect()
}

/// Parses one `--lr NAME=VALUE`.
pub fn parse_lr_override(text: &str) -> Result<(String, f64), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE (e.g. sgd=0.05)"))?;
    let value: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("`{text}`: `{value}` is not a number"))?;
    Ok((name.trim().to_string(), value))
}

/// Trains every backend × optimizer × seed, reporting each epoch's record to `observer`. A run
/// whose loss becomes NaN or infinite is recorded with a note and the shoot-out goes on.
pub fn run(config: &ShootoutConfig, data: &Datasets, observer: &mut dyn Observer) -> Result<Vec<Record>, BenchError> {
    config.validate()?;
    let (train_set, test_set) = (&data.train, &data.test);
    observer.planned(config.targets.len() * config.optimizers.len() * config.seeds.len() * config.epochs);
    let mut records = Vec::new();
    for target in &config.targets {
        for spec in &config.optimizers {
            for &seed in &config.seeds {
                let run = RunConfig {
                    epochs: config.epochs,
                    batch_size: config.batch_size,
                    seed,
                    shuffle: true,
                    checkpoint_every: None,
                };
                let controls = ControlsSpec::optimizer(spec.clone());
                let template = {
                    let mut r = Record::new(Bench::Optimizers, target.backend.name(), &target.description);
                    r.model = Some("cnn".into());
                    r.optimizer = Some(spec.to_string());
                    r.reference = Some(spec.entry().reference.to_string());
                    r.implementation = Some(crate::step::implementation(spec).to_string());
                    r.batch_size = Some(config.batch_size as u64);
                    r.seed = Some(seed);
                    r.lr = Some(spec.lr());
                    r
                };
                let mut epochs = EpochRecorder {
                    template: &template,
                    started: Instant::now(),
                    records: Vec::new(),
                    observer: &mut *observer,
                    label: format!("{} {spec} seed {seed}", target.backend),
                };
                epochs.observer.started(&epochs.label.clone());
                let eval_batch = config.batch_size.max(256);
                let mut evaluate = |model: &Cnn| classification::evaluate(model, test_set, eval_batch);
                let outcome = fit::fit(
                    &target.device,
                    classification::model(),
                    &classification::train_data(train_set.clone()),
                    Fit {
                        config: run,
                        controls: &controls,
                        start: Start::Seeded,
                        checkpointer: None,
                        evaluate: Some(&mut evaluate),
                        observer: &mut epochs,
                    },
                );
                let mut done = std::mem::take(&mut epochs.records);
                match outcome {
                    Ok(_) => {}
                    Err(Stopped { error: err @ TrainError::NonFiniteLoss { .. }, .. }) => {
                        let mut failed = template.clone();
                        failed.wall_s = Some(epochs.started.elapsed().as_secs_f64());
                        failed.note = Some(format!("diverged: {err}"));
                        observer.measured(&failed);
                        done.push(failed);
                    }
                    Err(stopped) => return Err(stopped.error.into()),
                }
                records.extend(done);
            }
        }
    }
    Ok(records)
}

/// Turns the training loop's epoch reports into records.
struct EpochRecorder<'a> {
    template: &'a Record,
    started: Instant,
    records: Vec<Record>,
    observer: &'a mut dyn Observer,
    label: String,
}

impl fit::Observer for EpochRecorder<'_> {
    fn on_step(&mut self, report: &StepReport) -> Result<(), ObserverError> {
        if report.batch.0 % 100 == 0 {
            let (batch, batches) = report.batch;
            self.observer.started(&format!(
                "{} epoch {} batch {batch}/{batches} loss {:.4}",
                self.label, report.epoch, report.loss
            ));
        }
        Ok(())
    }

    fn on_epoch(&mut self, report: &EpochReport) -> Result<(), ObserverError> {
        let mut record = self.template.clone();
        record.epoch = Some(report.epoch as u64);
        record.train_loss = Some(report.train_loss);
        record.test_loss = report.test.map(|t| t.loss);
        record.test_accuracy = report.test.and_then(|t| t.accuracy);
        record.images_per_second = Some(report.images_per_second);
        record.wall_s = Some(self.started.elapsed().as_secs_f64());
        self.observer.measured(&record);
        self.records.push(record);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_rates_are_overridden_by_registry_name_and_checked() {
        let specs = vec![OptimizerSpec::parse("adam").unwrap(), OptimizerSpec::parse("burn-adam").unwrap()];
        let out = with_learning_rates(specs.clone(), &[("burn-adam".into(), 0.01)]).unwrap();
        assert_eq!((out[0].lr(), out[1].lr()), (1e-3, 0.01));
        let err = with_learning_rates(specs.clone(), &[("nosuch".into(), 0.1)]).unwrap_err();
        assert!(err.to_string().contains("`nosuch` is not among"), "{err}");
        assert!(with_learning_rates(specs.clone(), &[("adam".into(), -1.0)]).is_err());
        let twice = [("adam".to_string(), 0.1), ("adam".to_string(), 0.2)];
        let err = with_learning_rates(specs, &twice).unwrap_err();
        assert!(err.to_string().contains("given twice"), "{err}");
    }

    #[test]
    fn an_lr_given_in_the_spec_and_by_lr_is_refused_naming_both() {
        let specs = vec![OptimizerSpec::parse("adam(lr=0.1)").unwrap(), OptimizerSpec::parse("sgd").unwrap()];
        let err = with_learning_rates(specs.clone(), &[("adam".into(), 0.2)]).unwrap_err().to_string();
        assert!(err.contains("adam(lr=0.1)") && err.contains("--lr adam=") && err.contains("twice"), "{err}");
        assert_eq!(err.lines().count(), 1);
        // The other optimizer's lr is still free to set.
        let out = with_learning_rates(specs, &[("sgd".into(), 0.05)]).unwrap();
        assert_eq!((out[0].lr(), out[1].lr()), (0.1, 0.05));
    }

    #[test]
    fn lr_overrides_parse_as_name_equals_value() {
        assert_eq!(parse_lr_override("sgd=0.05").unwrap(), ("sgd".to_string(), 0.05));
        assert!(parse_lr_override("sgd").is_err());
        assert!(parse_lr_override("sgd=fast").is_err());
    }

    #[test]
    fn every_registered_optimizer_takes_part_by_default() {
        assert_eq!(every_registered().len(), registry().len());
    }
}
