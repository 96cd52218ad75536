//! The workloads beyond the article against PyTorch: `tools/reference/workloads.py` (torch
//! 2.15.0, lion-pytorch 0.2.5) trained each model from fixed weights on fixed batches, in the
//! `--no-shuffle` order both sides compute, and recorded the loss of every step
//! (`fixtures/torch/workloads/<model>.safetensors`). Here adamlab's model starts from the same
//! weights (read through the PyTorch adapter, as `--init` reads them), is fed the same batches,
//! and is stepped by the optimizer of the fixture's spec; every loss is compared.
//!
//! - `char-gpt`: 2 layers, 4 heads, d 64, context 32 (the fixture's configuration, stated in its
//!   metadata), batch 8, 20 steps with Adam, AdamW, SGD with momentum, Adafactor, Muon and Lion.
//!   The fixture also holds torch's logits of the first batch in float32 and float64, for
//!   [`char_gpt_logits`].
//! - `softmax-regression`: the first 320 Fashion-MNIST training images, batch 16, 20 steps, Adam.
//! - `rosenbrock`, `quadratic`: 20 steps of Adam at lr 1e-3 from their fixed starts.

use crate::compare::{CheckReport, Deviation, Tolerance};
use adamlab_data::fortunes::TextBatch;
use adamlab_data::MnistBatch;
use adamlab_models::pytorch::load_pytorch_safetensors_bytes;
use adamlab_models::{
    CharGpt, CharGptConfig, NoData, Quadratic, Rosenbrock, SoftmaxRegression,
    SoftmaxRegressionConfig,
};
use adamlab_optim::OptimizerSpec;
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::{Device, Int, Tensor, TensorData};
use burn::train::TrainStep;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

/// `char-gpt`'s fixture.
pub const CHAR_GPT: &[u8] = include_bytes!("../../../fixtures/torch/workloads/char-gpt.safetensors");
/// `softmax-regression`'s fixture.
pub const SOFTMAX_REGRESSION: &[u8] =
    include_bytes!("../../../fixtures/torch/workloads/softmax-regression.safetensors");
/// `rosenbrock`'s fixture.
pub const ROSENBROCK: &[u8] = include_bytes!("../../../fixtures/torch/workloads/rosenbrock.safetensors");
/// `quadratic`'s fixture.
pub const QUADRATIC: &[u8] = include_bytes!("../../../fixtures/torch/workloads/quadratic.safetensors");

/// The tolerance on char-gpt's per-step losses with `optimizer`.
///
/// adamlab's forward and backward passes are not torch's: burn's matrix products, softmax,
/// LayerNorm, erf (in GELU) and reductions round differently, so the two runs differ by f32
/// rounding from the first forward pass on (measured by [`char_gpt_logits`]). The optimizer then
/// carries those differences along. Measured over the 20 steps (losses of about 3.3 to 4.6), on
/// ndarray, flex and wgpu: Adam, AdamW, SGD and Adafactor at most 2.4e-6 apart (5.4e-7
/// relative); Lion 4.3e-5 (1.0e-5 relative: its update is a sign, and a momentum element near 0
/// flips with a last-bit difference, moving that weight by 2·lr); Muon 4.9e-4 (1.5e-4 relative,
/// from step 19: its Newton–Schulz iteration runs in bfloat16, as torch's does, and a last-bit
/// difference of the gradient can round a bfloat16 value, 2⁻⁸ relative, the other way). Each
/// bound is 7 to 10 times the largest deviation measured.
pub fn char_gpt_tolerance(optimizer: &str) -> Tolerance {
    match optimizer {
        "muon" => Tolerance::new(0.0, 1e-3),
        "lion" => Tolerance::new(0.0, 1e-4),
        _ => Tolerance::new(0.0, 5e-6),
    }
}

/// Tolerance on softmax regression's and the test functions' losses: atol 1e-6 + rtol 1e-5.
/// Their forward passes are a matrix product and a log-softmax, or a handful of products, whose
/// f32 rounding differs from torch's by an ulp or two. Measured over 20 Adam steps on ndarray,
/// flex and wgpu: softmax regression 4.8e-7 (2.1e-7 relative), Rosenbrock bit for bit, the
/// quadratic 1.2e-4 on losses of about 900 (1.4e-7 relative).
pub const SMALL_TOLERANCE: Tolerance = Tolerance::new(1e-6, 1e-5);

/// A parity fixture: its tensors and metadata.
pub struct Fixture<'a> {
    file: SafeTensors<'a>,
    metadata: HashMap<String, String>,
    /// The fixture's name, for messages.
    pub name: &'static str,
    /// The embedded bytes (for loading weights).
    bytes: &'static [u8],
}

impl Fixture<'static> {
    /// Reads an embedded fixture.
    ///
    /// # Panics
    /// If the bytes are not a fixture (they are compiled in: a build error, not a user's).
    pub fn read(name: &'static str, bytes: &'static [u8]) -> Self {
        let file = SafeTensors::deserialize(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (_, metadata) = SafeTensors::read_metadata(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        Self {
            file,
            metadata: metadata.metadata().clone().unwrap_or_default(),
            name,
            bytes,
        }
    }
}

impl Fixture<'_> {
    /// A metadata value.
    ///
    /// # Panics
    /// If the fixture lacks it.
    pub fn meta(&self, key: &str) -> &str {
        self.metadata
            .get(key)
            .unwrap_or_else(|| panic!("{}: no `{key}` in its metadata", self.name))
    }

    /// A tensor's shape and raw bytes.
    fn raw(&self, name: &str) -> (Vec<usize>, Dtype, &[u8]) {
        let view = self
            .file
            .tensor(name)
            .unwrap_or_else(|e| panic!("{}: {name}: {e}", self.name));
        (view.shape().to_vec(), view.dtype(), view.data())
    }

    /// A float32 tensor's values and shape.
    pub fn f32s(&self, name: &str) -> (Vec<f32>, Vec<usize>) {
        let (shape, dtype, data) = self.raw(name);
        assert_eq!(dtype, Dtype::F32, "{}: {name} is {dtype:?}", self.name);
        let values = data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        (values, shape)
    }

    /// A float64 tensor's values.
    pub fn f64s(&self, name: &str) -> Vec<f64> {
        let (_, dtype, data) = self.raw(name);
        assert_eq!(dtype, Dtype::F64, "{}: {name} is {dtype:?}", self.name);
        data.chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("chunks of 8")))
            .collect()
    }

    /// An integer tensor (uint8 or int64) as i64s, with its shape.
    pub fn ints(&self, name: &str) -> (Vec<i64>, Vec<usize>) {
        let (shape, dtype, data) = self.raw(name);
        let values = match dtype {
            Dtype::U8 => data.iter().map(|&b| i64::from(b)).collect(),
            Dtype::I64 => data
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("chunks of 8")))
                .collect(),
            other => panic!("{}: {name} is {other:?}", self.name),
        };
        (values, shape)
    }

    /// The optimizers the fixture ran, in order.
    pub fn optimizers(&self) -> Vec<String> {
        self.meta("optimizers").split(',').map(str::to_string).collect()
    }

    /// The number of steps recorded.
    pub fn steps(&self) -> usize {
        self.meta("steps").parse().expect("a step count")
    }

    /// A model with the fixture's initial weights, read through the PyTorch adapter. The fixture
    /// file also holds the batches and the recorded losses, which `--init` would refuse as tensors
    /// the model does not have: only the model's own tensors are handed to the loader.
    pub fn weights<M: Module>(&self, template: M) -> M {
        let names = adamlab_models::pytorch::pytorch_names(&template);
        let file = SafeTensors::deserialize(self.bytes).expect("an embedded fixture parses");
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = file
            .tensors()
            .into_iter()
            .filter(|(name, _)| names.contains(name))
            .collect();
        let bytes = safetensors::serialize(views, None).expect("the fixture's own tensors serialise");
        load_pytorch_safetensors_bytes(template, bytes, Path::new(self.name))
            .unwrap_or_else(|err| panic!("embedded fixture: {err}"))
    }
}

/// The char-gpt configuration of the fixture.
pub fn char_gpt_config(fixture: &Fixture) -> CharGptConfig {
    let config: serde_json::Value = serde_json::from_str(fixture.meta("config")).expect("JSON config");
    let get = |key: &str| config[key].as_u64().expect("a size") as usize;
    CharGptConfig::new()
        .with_vocab(get("vocab"))
        .with_context(get("context"))
        .with_d_model(get("d_model"))
        .with_heads(get("heads"))
        .with_layers(get("layers"))
}

/// Runs `steps` steps of `optimizer` (built from `spec`) from `model`, each on `batch(step)`,
/// and compares each loss with the fixture's `loss.<name>`.
fn replay_losses<M>(
    fixture: &Fixture,
    name: &str,
    model: M,
    batch: impl Fn(usize) -> M::Input,
    tolerance: Tolerance,
) -> CheckReport
where
    M: Module + TrainStep,
    M::Output: LossOf,
{
    let spec = OptimizerSpec::parse(fixture.meta(&format!("spec.{name}")))
        .unwrap_or_else(|err| panic!("{}: spec.{name}: {err}", fixture.name));
    replay_losses_with(fixture, name, &spec, model, batch, tolerance)
}

/// [`replay_losses`] with `spec` for the optimizer.
fn replay_losses_with<M>(
    fixture: &Fixture,
    name: &str,
    spec: &OptimizerSpec,
    mut model: M,
    batch: impl Fn(usize) -> M::Input,
    tolerance: Tolerance,
) -> CheckReport
where
    M: Module + TrainStep,
    M::Output: LossOf,
{
    let mut optimizer: ModuleOptimizer = spec.build().expect("parse checks that it builds").module_optimizer();
    let (expected, _) = fixture.f32s(&format!("loss.{name}"));
    let mut deviation = Deviation::default();
    for (step, expected) in expected.iter().enumerate() {
        let output = TrainStep::step(&model, batch(step));
        let loss = output.item.loss_value();
        deviation.record(tolerance, step + 1, "loss", &[loss], &[*expected]);
        model = optimizer.step(spec.lr(), model, output.grads);
    }
    CheckReport {
        case: format!("torch-e2e/{}/{name}", fixture.meta("model")),
        steps: expected.len(),
        tolerance,
        deviation,
    }
}

/// The loss of a step's output, as a number.
trait LossOf {
    fn loss_value(&self) -> f32;
}

impl LossOf for burn::train::ClassificationOutput {
    fn loss_value(&self) -> f32 {
        self.loss.clone().into_scalar::<f32>()
    }
}

impl LossOf for burn::train::RegressionOutput {
    fn loss_value(&self) -> f32 {
        self.loss.clone().into_scalar::<f32>()
    }
}

/// char-gpt from the fixture's weights with `spec` instead of the fixture's spec for
/// `optimizer`, against that optimizer's losses: for showing that the check notices a change.
pub fn check_char_gpt_with(device: &Device, optimizer: &str, spec: &OptimizerSpec) -> CheckReport {
    let fixture = Fixture::read("char-gpt.safetensors", CHAR_GPT);
    let device = device.clone().autodiff();
    let model: CharGpt = fixture.weights(char_gpt_config(&fixture).init(&device));
    let batch = |step| char_gpt_batch(&fixture, step, &device);
    replay_losses_with(&fixture, optimizer, spec, model, batch, char_gpt_tolerance(optimizer))
}

/// The fixture's batch `step` of char-gpt: `[batch, context + 1]` tokens.
fn char_gpt_batch(fixture: &Fixture, step: usize, device: &Device) -> TextBatch {
    let (tokens, shape) = fixture.ints("batches");
    let [_, b, w] = shape[..] else { panic!("batches are [steps, batch, context + 1]") };
    let rows = &tokens[step * b * w..(step + 1) * b * w];
    let all = Tensor::<2, Int>::from_data(TensorData::new(rows.to_vec(), [b, w]), device);
    TextBatch {
        inputs: all.clone().slice([0..b, 0..w - 1]),
        targets: all.slice([0..b, 1..w]),
    }
}

/// char-gpt from the fixture's weights with each of its optimizers (or only `optimizer`).
pub fn check_char_gpt(device: &Device, optimizer: Option<&str>) -> Vec<CheckReport> {
    let fixture = Fixture::read("char-gpt.safetensors", CHAR_GPT);
    let device = device.clone().autodiff();
    let config = char_gpt_config(&fixture);
    fixture
        .optimizers()
        .iter()
        .filter(|name| optimizer.is_none_or(|o| o == name.as_str()))
        .map(|name| {
            let model: CharGpt = fixture.weights(config.init(&device));
            let batch = |step| char_gpt_batch(&fixture, step, &device);
            replay_losses(&fixture, name, model, batch, char_gpt_tolerance(name))
        })
        .collect()
}

/// Tolerance on char-gpt's logits of one forward pass from the fixture's weights against torch's
/// float32 logits: atol 2e-6. Measured: at most 3.6e-7 on ndarray, flex and wgpu, where torch's own
/// float32 logits are up to 2.5e-7 from its float64 ones: the two forward passes differ by f32
/// rounding, not by what they compute.
pub const LOGITS_TOLERANCE: Tolerance = Tolerance::new(2e-6, 0.0);

/// char-gpt's logits of the fixture's first batch, from its weights, against torch's in float32
/// (the report) and, for scale, torch's float32 logits against its float64 ones (the second
/// value: how far f32 rounding alone moves them in torch).
pub fn char_gpt_logits(device: &Device) -> (CheckReport, f64) {
    let fixture = Fixture::read("char-gpt.safetensors", CHAR_GPT);
    let model: CharGpt = fixture.weights(char_gpt_config(&fixture).init(device));
    let batch = char_gpt_batch(&fixture, 0, device);
    let logits: Vec<f32> = model.forward(batch.inputs).into_data().try_to_vec().expect("f32 logits");
    let (torch32, _) = fixture.f32s("logits");
    let torch64 = fixture.f64s("logits_f64");
    let mut deviation = Deviation::default();
    deviation.record(LOGITS_TOLERANCE, 0, "logits", &logits, &torch32);
    let torch_rounding = torch32
        .iter()
        .zip(&torch64)
        .map(|(a, b)| (f64::from(*a) - b).abs())
        .fold(0.0, f64::max);
    let report = CheckReport {
        case: "torch-e2e/char-gpt/logits".into(),
        steps: 0,
        tolerance: LOGITS_TOLERANCE,
        deviation,
    };
    (report, torch_rounding)
}

/// Tolerance on each of char-gpt's operations applied to torch's float32 input: atol 4e-6, about
/// 5 times the largest deviation measured (LayerNorm on wgpu over llvmpipe: 7.2e-7; on ndarray and
/// flex 4.8e-7, where torch's own float32 LayerNorm is 5.1e-7 from its float64 one). The values
/// are of order 1; a different formula is far off (GELU's tanh approximation differs from the erf
/// GELU by up to 4.7e-4).
pub const OPERATION_TOLERANCE: Tolerance = Tolerance::new(4e-6, 0.0);

/// Block 0's operations of char-gpt, each applied by adamlab to torch's float32 input of that
/// operation (the fixture's `probe.*`, the first two windows of the first batch, from the
/// fixture's weights) and compared with torch's float32 output. With each report, how far
/// torch's own float32 output is from its float64 one: the scale of f32 rounding in that
/// operation.
///
/// - `embed`: token + position embeddings (a lookup and one addition);
/// - `norm1`: LayerNorm of the embeddings (mean, variance, rsqrt over d = 64);
/// - `softmax`: the causal attention softmax of torch's scaled scores;
/// - `attn`: the whole attention from torch's `norm1` (four projections, q·kᵀ, the softmax,
///   the weighted sum of v);
/// - `fc`: LayerNorm and the MLP's first projection from torch's residual stream;
/// - `gelu`: the erf GELU of torch's `mlp.fc` output.
pub fn char_gpt_operations(device: &Device) -> Vec<(CheckReport, f64)> {
    let fixture = Fixture::read("char-gpt.safetensors", CHAR_GPT);
    let model: CharGpt = fixture.weights(char_gpt_config(&fixture).init(device));
    let block = &model.blocks[0];
    let tensor = |name: &str| {
        let (values, shape) = fixture.f32s(&format!("probe.{name}"));
        (values, shape)
    };
    let t3 = |name: &str| {
        let (values, shape) = tensor(name);
        Tensor::<3>::from_data(TensorData::new(values, [shape[0], shape[1], shape[2]]), device)
    };
    let values = |t: Tensor<3>| -> Vec<f32> { t.into_data().try_to_vec().expect("f32") };
    let (batch, _) = fixture.ints("batches");
    let w = char_gpt_config(&fixture).context + 1;
    let inputs: Vec<i64> = (0..2).flat_map(|row| batch[row * w..row * w + w - 1].to_vec()).collect();
    let inputs = Tensor::<2, Int>::from_data(TensorData::new(inputs, [2, w - 1]), device);
    let positions = Tensor::<1, Int>::arange(0..(w - 1) as i64, device).reshape([1, w - 1]).expand([2, w - 1]);
    let embed = model.token.forward(inputs) + model.position.forward(positions);
    let (scores, shape) = tensor("scores");
    let [b, h, t, _] = shape[..] else { panic!("scores are [b, h, T, T]") };
    let scores = Tensor::<4>::from_data(TensorData::new(scores, [b, h, t, t]), device);
    let future = Tensor::<2, burn::tensor::Bool>::tril_mask([t, t], 0, device).reshape([1, 1, t, t]).expand([b, h, t, t]);
    let softmax: Vec<f32> = burn::tensor::activation::softmax(scores.mask_fill(future, f32::NEG_INFINITY), 3)
        .into_data()
        .try_to_vec()
        .expect("f32");
    let residual = t3("embed") + t3("attn");
    let ours = [
        ("embed", values(embed)),
        ("norm1", values(block.norm1.forward(t3("embed")))),
        ("softmax", softmax),
        ("attn", values(block.attn.forward(t3("norm1")))),
        ("fc", values(block.mlp.fc.forward(block.norm2.forward(residual)))),
        ("gelu", values(block.mlp.gelu.forward(t3("fc")))),
    ];
    ours.into_iter()
        .map(|(name, actual)| {
            let (expected, _) = tensor(name);
            let exact = fixture.f64s(&format!("probe.{name}_f64"));
            let mut deviation = Deviation::default();
            deviation.record(OPERATION_TOLERANCE, 0, name, &actual, &expected);
            let rounding = expected
                .iter()
                .zip(&exact)
                .map(|(a, b)| (f64::from(*a) - b).abs())
                .fold(0.0, f64::max);
            let report = CheckReport {
                case: format!("torch-e2e/char-gpt/block-0/{name}"),
                steps: 0,
                tolerance: OPERATION_TOLERANCE,
                deviation,
            };
            (report, rounding)
        })
        .collect()
}

/// Softmax regression from the fixture's weights on its 20 batches of Fashion-MNIST images.
pub fn check_softmax_regression(device: &Device) -> CheckReport {
    let fixture = Fixture::read("softmax-regression.safetensors", SOFTMAX_REGRESSION);
    let device = device.clone().autodiff();
    let model: SoftmaxRegression = fixture.weights(SoftmaxRegressionConfig::new().init(&device));
    let (pixels, _) = fixture.ints("pixels");
    let (labels, _) = fixture.ints("labels");
    let b: usize = fixture.meta("batch_size").parse().expect("a batch size");
    let batch = |step: usize| {
        let images: Vec<f32> = pixels[step * b * 784..(step + 1) * b * 784]
            .iter()
            .map(|&p| p as f32 / 255.0)
            .collect();
        MnistBatch {
            images: Tensor::from_data(TensorData::new(images, [b, 1, 28, 28]), &device),
            targets: Tensor::from_data(TensorData::new(labels[step * b..(step + 1) * b].to_vec(), [b]), &device),
        }
    };
    replay_losses(&fixture, "adam", model, batch, SMALL_TOLERANCE)
}

/// Rosenbrock's function and the quadratic from their starts (checked against the fixture's).
pub fn check_test_functions(device: &Device) -> Vec<CheckReport> {
    let device = device.clone().autodiff();
    let rosenbrock = Fixture::read("rosenbrock.safetensors", ROSENBROCK);
    let quadratic = Fixture::read("quadratic.safetensors", QUADRATIC);
    vec![
        replay_losses(&rosenbrock, "adam", rosenbrock.weights(Rosenbrock::init(&device)), |_| NoData, SMALL_TOLERANCE),
        replay_losses(&quadratic, "adam", quadratic.weights(Quadratic::init(&device)), |_| NoData, SMALL_TOLERANCE),
    ]
}

/// Every workload check on `device` (char-gpt's only with `optimizer`, if given; the others are
/// Adam's).
pub fn check_all(device: &Device, optimizer: Option<&str>) -> Vec<CheckReport> {
    let mut reports = check_char_gpt(device, optimizer);
    if optimizer.is_none_or(|o| o == "adam") {
        reports.push(char_gpt_logits(device).0);
        reports.extend(char_gpt_operations(device).into_iter().map(|(report, _)| report));
        reports.push(check_softmax_regression(device));
        reports.extend(check_test_functions(device));
    }
    reports
}
