//! The article's CNN learns on a small slice of Fashion-MNIST on every backend compiled in.
//!
//! Needs Debian's `dataset-fashion-mnist` (installed by `.ci/run`).

use adamlab::backend::{compiled, device};
use adamlab::data::{DEFAULT_DATA_DIR, MnistDataset, Split};
use adamlab::optim::OptimizerSpec;
use adamlab::train::classification;
use adamlab::train::controls::ControlsSpec;
use adamlab::train::fit::{self, EpochReport, Fit, Observer, ObserverError, RunConfig, Start, StepReport};
use std::path::Path;
use std::sync::Arc;

#[derive(Default)]
struct Losses {
    steps: Vec<f32>,
    epochs: Vec<EpochReport>,
}

impl Observer for Losses {
    fn on_step(&mut self, report: &StepReport) -> Result<(), ObserverError> {
        self.steps.push(report.loss);
        Ok(())
    }
    fn on_epoch(&mut self, report: &EpochReport) -> Result<(), ObserverError> {
        self.epochs.push(*report);
        Ok(())
    }
}

#[test]
fn the_cnn_loss_falls_over_one_epoch_of_512_images_on_every_backend() {
    let dir = Path::new(DEFAULT_DATA_DIR);
    let train = Arc::new(MnistDataset::load(dir, Split::Train).unwrap().truncated(512));
    let test = Arc::new(MnistDataset::load(dir, Split::Test).unwrap().truncated(200));
    let config = RunConfig {
        epochs: 1,
        batch_size: 64,
        seed: 0,
        shuffle: true,
        checkpoint_every: None,
    };
    let controls = ControlsSpec::optimizer(OptimizerSpec::parse("adam(lr=1e-3)").unwrap());
    let data = classification::train_data(train);
    for backend in compiled() {
        let device = device(backend).unwrap();
        let mut losses = Losses::default();
        let mut evaluate = |model: &adamlab::models::Cnn| classification::evaluate(model, &test, 256);
        let run = Fit {
            config: config.clone(),
            controls: &controls,
            start: Start::Seeded,
            checkpointer: None,
            evaluate: Some(&mut evaluate),
            observer: &mut losses,
        };
        fit::fit(&device, classification::model(), &data, run).unwrap();
        assert_eq!(losses.steps.len(), 8, "{backend}");
        // From chance level (ln 10 ≈ 2.30) the loss must fall: the last two batches' mean below
        // the first batch's, and the test loss below chance.
        let last = (losses.steps[6] + losses.steps[7]) / 2.0;
        println!("{backend}: step losses {:?}, test {:?}", losses.steps, losses.epochs[0].test);
        assert!(last < losses.steps[0] - 0.1, "{backend}: {:?}", losses.steps);
        let test_loss = losses.epochs[0].test.unwrap().loss;
        assert!(test_loss < 2.2, "{backend}: {:?}", losses.epochs[0].test);
    }
}
