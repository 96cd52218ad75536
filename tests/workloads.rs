//! The workloads beyond the article: char-gpt, softmax regression, Rosenbrock's function and the
//! ill-conditioned quadratic.
//!
//! - Against PyTorch, on every compiled backend: each model from torch's weights on torch's
//!   batches (the `--no-shuffle` order), every step's loss against torch's
//!   (`fixtures/torch/workloads/`, written by `tools/reference/workloads.py`, torch 2.15.0 and
//!   lion-pytorch 0.2.5; tolerances and their reasons in `adamlab_verify::workloads`).
//! - The data both sides compute: the fortunes corpus and Fashion-MNIST's first images are the
//!   fixture's (needs Debian's `fortunes`, `fortunes-min` and `dataset-fashion-mnist`, which
//!   `.ci/run` installs).
//! - Weights interoperate: torch's file loads, and saves back to the same tensors.
//! - Every optimizer of the registry trains softmax regression, Rosenbrock and the quadratic at
//!   the CLI's default learning rate to a finite end (a small budget, on one CPU backend).
//! - char-gpt learns from the corpus through the training loop.

use adamlab::backend::{BackendKind, compiled, device};
use adamlab::data::fortunes::{Corpus, DEFAULT_DIR, TextWindows, fingerprint};
use adamlab::data::{DEFAULT_DATA_DIR, MnistDataset, Split};
use adamlab::models::pytorch::pytorch_safetensors_bytes;
use adamlab::models::{CharGpt, CharGptConfig};
use adamlab::optim::{OptimizerSpec, registry};
use adamlab::train::controls::ControlsSpec;
use adamlab::train::fit::{
    self, EpochReport, Evaluation, Fit, Model, Observer, ObserverError, RunConfig, Start,
    StepReport,
};
use adamlab::train::{classification, language_model, test_functions};
use adamlab::verify::CheckReport;
use adamlab::verify::workloads::{
    self, CHAR_GPT, Fixture, SOFTMAX_REGRESSION, char_gpt_config, char_gpt_logits,
};
use burn::data::dataset::Dataset;
use burn::tensor::Device;
use safetensors::SafeTensors;
use std::path::Path;
use std::sync::Arc;

/// Runs `check` on every compiled backend and fails listing every failing case.
fn on_every_backend(check: impl Fn(&Device) -> Vec<CheckReport>) {
    let mut failures = Vec::new();
    for backend in compiled() {
        let device = device(backend).unwrap_or_else(|err| panic!("{err}"));
        for report in check(&device) {
            println!("{backend}/{report}");
            if !report.passed() {
                failures.push(format!("{backend}/{report}"));
            }
        }
    }
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}

#[test]
fn char_gpt_follows_torchs_losses_for_20_steps_with_six_optimizers_on_every_backend() {
    let fixture = Fixture::read("char-gpt.safetensors", CHAR_GPT);
    assert_eq!(fixture.optimizers(), ["adam", "adamw", "sgd", "adafactor", "muon", "lion"]);
    assert_eq!(fixture.steps(), 20);
    on_every_backend(|device| workloads::check_char_gpt(device, None));
}

/// The check is not blind: Adam at 1.1 times the fixture's learning rate, or with β₂ 0.99
/// instead of 0.999, leaves torch's losses (on one backend; the arithmetic is the same on all).
#[test]
fn char_gpts_check_fails_with_another_learning_rate_or_beta() {
    let device = device(BackendKind::Flex).or_else(|_| device(compiled()[0])).unwrap();
    for wrong in ["adam(lr=0.0011)", "adam(lr=0.001, betas=(0.9, 0.99))"] {
        let spec = OptimizerSpec::parse(wrong).unwrap();
        let report = workloads::check_char_gpt_with(&device, "adam", &spec);
        println!("{wrong}: {report}");
        assert!(!report.passed(), "{wrong}: {report}");
    }
}

#[test]
fn char_gpts_first_logits_are_within_f32_rounding_of_torchs_on_every_backend() {
    on_every_backend(|device| {
        let (report, torch_f32_vs_f64) = char_gpt_logits(device);
        println!("torch's own f32 logits against its f64 ones: max abs {torch_f32_vs_f64:.3e}");
        vec![report]
    });
}

/// Where the f32 differences come from: each operation of block 0 applied to torch's own input,
/// against torch's output, printed beside torch's own float32-vs-float64 difference.
#[test]
fn char_gpts_operations_are_within_f32_rounding_of_torchs_on_every_backend() {
    on_every_backend(|device| {
        workloads::char_gpt_operations(device)
            .into_iter()
            .map(|(report, torch_f32_vs_f64)| {
                println!("{}: torch's own f32 against f64: {torch_f32_vs_f64:.3e}", report.case);
                report
            })
            .collect()
    });
}

#[test]
fn softmax_regression_rosenbrock_and_the_quadratic_follow_torch_with_adam_on_every_backend() {
    on_every_backend(|device| {
        let mut reports = vec![workloads::check_softmax_regression(device)];
        reports.extend(workloads::check_test_functions(device));
        reports
    });
}

/// The batches of the fixtures are the ones adamlab computes from the installed data, in the
/// `--no-shuffle` order: the fortunes corpus has the fixture's checksum and its first windows
/// are the fixture's batches; the softmax-regression images are Fashion-MNIST's first ones.
#[test]
fn the_fixtures_batches_are_the_installed_datas_first_windows_and_images() {
    let fixture = Fixture::read("char-gpt.safetensors", CHAR_GPT);
    let corpus = Corpus::load(Path::new(DEFAULT_DIR)).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(fingerprint(&corpus.train), fixture.meta("corpus_train_crc32"));
    assert_eq!(corpus.train.len().to_string(), fixture.meta("corpus_train_tokens"));
    let (batches, shape) = fixture.ints("batches");
    let context = char_gpt_config(&fixture).context;
    let windows = TextWindows::new(corpus.train, context);
    let ours: Vec<i64> = (0..shape[0] * shape[1])
        .flat_map(|i| windows.get(i).unwrap().0.into_iter().map(i64::from))
        .collect();
    assert_eq!(ours, batches);

    let fixture = Fixture::read("softmax-regression.safetensors", SOFTMAX_REGRESSION);
    let (pixels, _) = fixture.ints("pixels");
    let (labels, _) = fixture.ints("labels");
    let images = MnistDataset::load(Path::new(DEFAULT_DATA_DIR), Split::Train).unwrap();
    for (i, label) in labels.iter().enumerate() {
        let item = images.get(i).unwrap();
        assert_eq!(i64::from(item.label), *label, "label {i}");
        let expected: Vec<u8> = pixels[i * 784..(i + 1) * 784].iter().map(|&p| p as u8).collect();
        assert_eq!(item.pixels, expected, "image {i}");
    }
}

/// `--init` and `--save` interoperate with torch: torch's char-gpt file loads into the burn
/// model, and saving it gives back every tensor of the file with its name, shape and bytes.
#[test]
fn torchs_char_gpt_weights_load_and_save_back_unchanged() {
    let fixture = Fixture::read("char-gpt.safetensors", CHAR_GPT);
    let model: CharGpt = fixture.weights(char_gpt_config(&fixture).init(&Device::flex()));
    let saved = pytorch_safetensors_bytes(&model);
    let saved = SafeTensors::deserialize(&saved).unwrap();
    let original = SafeTensors::deserialize(CHAR_GPT).unwrap();
    let mut names = saved.names();
    names.sort();
    // The two embeddings, 16 tensors per block, the final LayerNorm's two and the head's two.
    assert_eq!(names.len(), 2 + 2 * 16 + 4, "{names:?}");
    for name in names {
        let (ours, theirs) = (saved.tensor(name).unwrap(), original.tensor(name).unwrap());
        assert_eq!(ours.shape(), theirs.shape(), "{name}");
        assert_eq!(ours.data(), theirs.data(), "{name}");
    }
}

#[derive(Default)]
struct Seen {
    losses: Vec<f32>,
    evaluations: Vec<Evaluation>,
}

impl Observer for Seen {
    fn on_step(&mut self, report: &StepReport) -> Result<(), ObserverError> {
        self.losses.push(report.loss);
        Ok(())
    }
    fn on_epoch(&mut self, report: &EpochReport) -> Result<(), ObserverError> {
        self.evaluations.extend(report.test);
        Ok(())
    }
}

/// Trains `model` on `data` with `spec` for one epoch on `device`; returns what was seen, or the
/// error.
fn train_once<M, I, B>(
    device: &Device,
    model: Model<M>,
    data: &adamlab::train::fit::TrainData<I, B>,
    spec: &OptimizerSpec,
    batch_size: usize,
    evaluate: &mut dyn FnMut(&M) -> Evaluation,
) -> Result<Seen, String>
where
    M: burn::module::Module + burn::train::TrainStep + 'static,
    M::Output: adamlab::train::fit::StepLoss,
    M::Input: Clone + std::fmt::Debug,
    I: Send + Sync + Clone + std::fmt::Debug + 'static,
    B: burn::data::dataloader::batcher::Batcher<I, M::Input> + Clone + 'static,
{
    let controls = ControlsSpec::optimizer(spec.clone());
    let mut seen = Seen::default();
    let run = Fit {
        config: RunConfig {
            epochs: 1,
            batch_size,
            seed: 0,
            shuffle: true,
            checkpoint_every: None,
        },
        controls: &controls,
        start: Start::Seeded,
        checkpointer: None,
        evaluate: Some(evaluate),
        observer: &mut seen,
    };
    fit::fit(device, model, data, run).map_err(|stopped| stopped.error.to_string())?;
    Ok(seen)
}

/// What `adamlab train --model NAME --optimizer X` does for every X of the registry, with a small
/// budget: softmax regression on 64 images (4 steps), Rosenbrock's function and the quadratic
/// for 50 steps, each at its default learning rate (the CLI's). Every run must end without a
/// non-finite loss, with finite evaluations.
#[test]
fn every_registered_optimizer_trains_softmax_regression_rosenbrock_and_the_quadratic_to_a_finite_end() {
    let device = device(BackendKind::Flex).or_else(|_| device(compiled()[0])).unwrap();
    let images = MnistDataset::load(Path::new(DEFAULT_DATA_DIR), Split::Train).unwrap();
    let images = classification::train_data(Arc::new(images.truncated(64)));
    let test = Arc::new(MnistDataset::load(Path::new(DEFAULT_DATA_DIR), Split::Test).unwrap().truncated(64));
    let steps = test_functions::steps(50);
    let mut failures = Vec::new();
    for entry in registry().iter() {
        let spec = |lr: f64| {
            OptimizerSpec::parse_for(entry, entry.name)
                .and_then(|s| s.with("lr", adamlab::optim::Value::Number(lr)))
                .unwrap()
        };
        let runs = [
            (
                "softmax-regression",
                train_once(
                    &device,
                    classification::softmax_regression(),
                    &images,
                    &spec(classification::SOFTMAX_REGRESSION_LR),
                    16,
                    &mut |m| classification::evaluate(m, &test, 64),
                ),
            ),
            (
                "rosenbrock",
                train_once(
                    &device,
                    test_functions::rosenbrock(),
                    &steps,
                    &spec(test_functions::DEFAULT_LR),
                    1,
                    &mut |m| test_functions::evaluate(m),
                ),
            ),
            (
                "quadratic",
                train_once(
                    &device,
                    test_functions::quadratic(),
                    &steps,
                    &spec(test_functions::DEFAULT_LR),
                    1,
                    &mut |m| test_functions::evaluate(m),
                ),
            ),
        ];
        for (model, result) in runs {
            match result {
                Ok(seen) => {
                    let last = seen.evaluations.last().copied();
                    let finite = seen.losses.iter().all(|l| l.is_finite())
                        && last.is_some_and(|e| e.loss.is_finite() && e.distance.is_none_or(f64::is_finite));
                    println!("{}/{model}: last loss {:?}, {last:?}", entry.name, seen.losses.last());
                    if !finite {
                        failures.push(format!("{}/{model}: {last:?}", entry.name));
                    }
                }
                Err(err) => failures.push(format!("{}/{model}: {err}", entry.name)),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// char-gpt learns on the fortunes through the loop: a small configuration, 40 steps of AdamW on
/// the first 320 windows, the validation loss well below its start (ln 96 ≈ 4.56 nats).
#[test]
fn char_gpt_learns_the_fortunes_through_the_training_loop() {
    let device = device(BackendKind::Flex).or_else(|_| device(compiled()[0])).unwrap();
    let corpus = Corpus::load(Path::new(DEFAULT_DIR)).unwrap_or_else(|err| panic!("{err}"));
    let config = CharGptConfig::fortunes().with_layers(1).with_d_model(32).with_context(32);
    let train = TextWindows::new(corpus.train, config.context).truncated(320);
    let validation = Arc::new(TextWindows::new(corpus.validation, config.context).truncated(64));
    let init = |device: &Device| config.init(device);
    let model = Model {
        name: language_model::model_name(&config),
        init: &init,
    };
    let data = language_model::train_data(train);
    let spec = OptimizerSpec::parse("adamw(lr=3e-3)").unwrap();
    let seen = train_once(&device, model, &data, &spec, 8, &mut |m: &CharGpt| {
        language_model::evaluate(m, &validation, 64)
    })
    .unwrap();
    assert_eq!(seen.losses.len(), 40);
    let validation_loss = seen.evaluations[0].loss;
    println!("losses {:?}, validation {validation_loss}", seen.losses);
    assert!(seen.losses[0] > 4.4, "{:?}", seen.losses);
    assert!(validation_loss < 3.4, "validation loss {validation_loss}");
}

/// Stops a run with an error once it has taken `at` steps.
struct StopAt(usize);

impl Observer for StopAt {
    fn on_step(&mut self, report: &StepReport) -> Result<(), ObserverError> {
        if report.step == self.0 {
            return Err("stopped on purpose".into());
        }
        Ok(())
    }
    fn on_epoch(&mut self, _: &EpochReport) -> Result<(), ObserverError> {
        Ok(())
    }
}

/// A char-gpt run stopped after step 5, whose checkpoint was taken at step 4, resumes from the
/// middle of its epoch to the same weights, byte for byte, as the run that was not stopped: the
/// windows' order is a function of (seed, epoch) and the resumed epoch skips the batches taken.
#[test]
fn an_interrupted_char_gpt_run_resumes_to_the_uninterrupted_runs_weights() {
    use adamlab::train::checkpoint::{Checkpointer, Mode};
    let device = device(BackendKind::Flex).or_else(|_| device(compiled()[0])).unwrap();
    let corpus = Corpus::load(Path::new(DEFAULT_DIR)).unwrap_or_else(|err| panic!("{err}"));
    let config = CharGptConfig::fortunes().with_layers(1).with_d_model(16).with_context(16);
    let data = language_model::train_data(TextWindows::new(corpus.train, config.context).truncated(64));
    let init = |device: &Device| config.init(device);
    let model = || Model {
        name: language_model::model_name(&config),
        init: &init,
    };
    let controls = ControlsSpec::optimizer(OptimizerSpec::parse("adamw(lr=3e-3)").unwrap());
    let run = |start, checkpointer: Option<&Checkpointer>, observer: &mut dyn Observer| {
        let fit = Fit {
            config: RunConfig {
                epochs: 2,
                batch_size: 8,
                seed: 3,
                shuffle: true,
                checkpoint_every: Some(4),
            },
            controls: &controls,
            start,
            checkpointer,
            evaluate: None,
            observer,
        };
        fit::fit(&device, model(), &data, fit)
    };
    let whole = run(Start::Seeded, None, &mut Seen::default()).unwrap();
    let dir = std::env::temp_dir().join(format!("adamlab-char-gpt-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let first = Checkpointer::open(&dir, Mode::Fresh, 2).unwrap();
    let stopped = run(Start::Seeded, Some(&first), &mut StopAt(5)).unwrap_err();
    assert!(stopped.error.to_string().contains("stopped on purpose"), "{}", stopped.error);
    drop(first);
    let again = Checkpointer::open(&dir, Mode::Resume, 2).unwrap();
    let resumed = run(Start::Resume, Some(&again), &mut Seen::default()).unwrap();
    assert_eq!(pytorch_safetensors_bytes(&resumed), pytorch_safetensors_bytes(&whole));
    let _ = std::fs::remove_dir_all(&dir);
}
