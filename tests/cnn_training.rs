//! The article's CNN learns on a small slice of Fashion-MNIST on every backend compiled in.
//!
//! Needs Debian's `dataset-fashion-mnist` (installed by `.ci/run`).

use adamlab::backend::{compiled, device};
use adamlab::data::{DEFAULT_DATA_DIR, MnistDataset, Split};
use adamlab::train::classifier::{self, EpochReport, Observer, RunConfig, Start, StepReport};
use adamlab::optim::OptimizerSpec;
use std::path::Path;
use std::sync::Arc;

#[derive(Default)]
struct Losses {
    steps: Vec<f32>,
    epochs: Vec<EpochReport>,
}

impl Observer for Losses {
    fn on_step(&mut self, report: &StepReport) {
        self.steps.push(report.loss);
    }
    fn on_epoch(&mut self, report: &EpochReport) {
        self.epochs.push(*report);
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
        optimizer: OptimizerSpec::parse("adam(lr=1e-3)").unwrap(),
    };
    for backend in compiled() {
        let device = device(backend).unwrap();
        let mut losses = Losses::default();
        classifier::train(&device, train.clone(), test.clone(), &config, Start::Seeded, None, &mut losses)
            .unwrap();
        assert_eq!(losses.steps.len(), 8, "{backend}");
        // From chance level (ln 10 ≈ 2.30) the loss must fall: the last two batches' mean below
        // the first batch's, and the test loss below chance.
        let last = (losses.steps[6] + losses.steps[7]) / 2.0;
        println!("{backend}: step losses {:?}, test {:?}", losses.steps, losses.epochs[0].test);
        assert!(last < losses.steps[0] - 0.1, "{backend}: {:?}", losses.steps);
        assert!(losses.epochs[0].test.loss < 2.2, "{backend}: {:?}", losses.epochs[0].test);
    }
}
