//! `adamlab eval`.

use crate::args::EvalArgs;
use crate::error::CliError;
use crate::train::resolve_device;
use adamlab_data::{MnistDataset, Split};
use adamlab_models::CnnConfig;
use adamlab_models::pytorch::load_pytorch_safetensors;
use adamlab_train::classifier::evaluate;
use std::sync::Arc;

/// Runs `adamlab eval`: test loss and accuracy of the weights in `--init`.
pub fn run(args: &EvalArgs) -> Result<(), CliError> {
    if args.batch_size == 0 {
        return Err(CliError::Usage("--batch-size must be at least 1".into()));
    }
    let (device, described) = resolve_device(&args.backend)?;
    let test_set = Arc::new(MnistDataset::load(&args.data.data_dir, Split::Test)?);
    let model = load_pytorch_safetensors(CnnConfig::new().init(&device), &args.init)?;
    let result = evaluate(&model, &test_set, args.batch_size);
    println!(
        "{}: test loss {:.4}, test accuracy {:.2}% on {} images ({described})",
        args.init.display(),
        result.loss,
        100.0 * result.accuracy,
        result.images
    );
    Ok(())
}
