//! `adamlab eval`.

use crate::args::EvalArgs;
use crate::error::CliError;
use crate::train::resolve_device;
use adamlab_data::{MnistDataset, Split};
use adamlab_models::CnnConfig;
use adamlab_models::pytorch::{Loaded, load_pytorch_safetensors};
use adamlab_train::classification::evaluate;
use burn::data::dataset::Dataset;
use std::sync::Arc;

/// Runs `adamlab eval`: test loss and accuracy of the weights in `--init`.
pub fn run(args: &EvalArgs) -> Result<(), CliError> {
    if args.batch_size == 0 {
        return Err(CliError::Usage("--batch-size must be at least 1".into()));
    }
    let (device, described) = resolve_device(&args.backend)?;
    let test_set = Arc::new(MnistDataset::load(&args.data.data_dir, Split::Test)?);
    if test_set.is_empty() {
        return Err(CliError::Usage(format!(
            "the test set in {} holds no images: nothing to evaluate on",
            args.data.data_dir.display()
        )));
    }
    let template = CnnConfig::new().init(&device);
    let Loaded { model, converted } = load_pytorch_safetensors(template, &args.init)?;
    if !converted.is_empty() {
        tell!("note: {}: {converted}", args.init.display());
    }
    let result = evaluate(&model, &test_set, args.batch_size);
    say!(
        "{}: test loss {:.4}, test accuracy {:.2}% on {} images ({described})",
        args.init.display(),
        result.loss,
        100.0 * result.accuracy.unwrap_or(0.0),
        result.examples
    );
    Ok(())
}
