//! `adamlab models`: every model `train --model` takes, with its data, size and metric.

use crate::args::ModelArg;
use crate::error::CliError;
use adamlab_backend::{BackendKind, compiled, device};
use adamlab_models::{
    CharGptConfig, CnnConfig, MlpConfig, Quadratic, Rosenbrock, SoftmaxRegressionConfig,
};
use burn::module::Module;
use burn::tensor::Device;
use clap::ValueEnum;

/// What `adamlab models` says of a model.
struct Described {
    data: &'static str,
    metric: &'static str,
    parameters: fn(&Device) -> usize,
}

fn describe(model: ModelArg) -> Described {
    match model {
        ModelArg::Cnn => Described {
            data: "Fashion-MNIST (Debian: dataset-fashion-mnist), 60,000 training / 10,000 test images",
            metric: "test loss and accuracy",
            parameters: |d| CnnConfig::new().init(d).num_params(),
        },
        ModelArg::Mlp => Described {
            data: "the article's two points",
            metric: "MSE loss",
            parameters: |d| MlpConfig::new().init(d).num_params(),
        },
        ModelArg::CharGpt => Described {
            data: "Debian's fortune cookies (fortunes, fortunes-min), 90/10 cookie split",
            metric: "validation loss, nats per character",
            parameters: |d| CharGptConfig::fortunes().init(d).num_params(),
        },
        ModelArg::SoftmaxRegression => Described {
            data: "Fashion-MNIST (Debian: dataset-fashion-mnist)",
            metric: "test loss and accuracy",
            parameters: |d| SoftmaxRegressionConfig::new().init(d).num_params(),
        },
        ModelArg::Rosenbrock => Described {
            data: "none: f(x, y) = (1 − x)² + 100(y − x²)² from (−1.2, 1)",
            metric: "distance to the optimum (1, 1)",
            parameters: |d| Rosenbrock::init(d).num_params(),
        },
        ModelArg::Quadratic => Described {
            data: "none: ½(x − c)ᵀA(x − c), condition number 1000, from 0",
            metric: "distance to the optimum c",
            parameters: |d| Quadratic::init(d).num_params(),
        },
    }
}

/// Prints one line per model.
pub fn run() -> Result<(), CliError> {
    // Sizes are counted on a CPU backend: no GPU needed to list them.
    let cpu = compiled()
        .into_iter()
        .find(|kind| *kind != BackendKind::Wgpu)
        .unwrap_or(BackendKind::Wgpu);
    let device = device(cpu)?;
    let rows: Vec<(String, String, &str, &str)> = ModelArg::value_variants()
        .iter()
        .map(|model| {
            let name = model.to_possible_value().map_or_else(String::new, |v| v.get_name().to_string());
            let Described { data, metric, parameters } = describe(*model);
            (name, thousands(parameters(&device)), data, metric)
        })
        .collect();
    let width = |column: fn(&(String, String, &str, &str)) -> usize| rows.iter().map(column).max().unwrap_or(0);
    let (w0, w1, w2) = (
        width(|r| r.0.len()).max(5),
        width(|r| r.1.len()).max(10),
        width(|r| r.2.chars().count()),
    );
    say!("{:<w0$}  {:>w1$}  {:<w2$}  metric", "model", "parameters", "data");
    for (name, count, data, metric) in &rows {
        let pad = w2 - data.chars().count();
        say!("{name:<w0$}  {count:>w1$}  {data}{}  {metric}", " ".repeat(pad));
    }
    say!("\nTrain one with `adamlab train --model NAME`.");
    Ok(())
}

/// `834400` → `834,400`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
