//! Low-bit optimizer states (issue 22). 8-bit (`adam8bit`, `adamw8bit`, `lion8bit`): bitsandbytes' own
//! quantization maps, the replays bit for bit on the CPU backends, checkpoints that carry the codes
//! exactly, and the bytes the state really occupies. bfloat16 moments (`adam(state_dtype=bf16)`,
//! `adamw(state_dtype=bf16)`, at the end of this file): the replays, the bytes, the checkpoints.
//!
//! Fixtures: `fixtures/torch/replay/{adam,adamw,lion}8bit/`, written by `tools/reference/generate.py` from
//! `tools/reference/bnb_blockwise.py` (a NumPy transcription of bitsandbytes 0.50.2's CUDA kernels;
//! its docstring says why not bitsandbytes' own CPU path). The shared replays
//! (`tests/torch_fixtures.rs`) run them at atol 1e-6 + rtol 1e-5 on every backend; here they must
//! match to the bit where the arithmetic is IEEE f32 on both sides (flex, ndarray).

use adamlab::backend::{BackendKind, compiled, device};
use adamlab::optim::adam8bit::quantize::{DYNAMIC_SIGNED, DYNAMIC_UNSIGNED};
use adamlab::optim::adam::{AdamConfig, StateDtype, state_storage};
use adamlab::optim::lion8bit::Lion8bitConfig;
use adamlab::optim::adam8bit::{Adam8bitConfig, Adam8bitState, Codes, Moments, packs};
use adamlab::optim::{OptimizerSpec, Value};
use adamlab::verify::replay::{BF16_STATE_RTOL, REPLAY_FIXTURES, ReplayFixture, ReplayParam, replay_fixtures};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{GradientsParams, ModuleOptimizer, Optimizer, RecordState, StateSink, StateSource};
use burn::tensor::kind::BridgeTensor;
use burn::tensor::{DType, Device, Tensor, TensorData};
use safetensors::SafeTensors;

const OPTIMIZERS: [&str; 3] = ["adam8bit", "adamw8bit", "lion8bit"];

/// The wgpu device when wgpu is compiled in; otherwise `None`, said on stdout, for the tests that
/// are skipped without it.
fn wgpu_device() -> Option<Device> {
    let device = compiled()
        .into_iter()
        .find(|b| matches!(b, BackendKind::Wgpu))
        .map(|b| device(b).unwrap());
    if device.is_none() {
        println!("wgpu not compiled in");
    }
    device
}

/// Each fixture records the maps bitsandbytes' `create_dynamic_map` gave (`qmap.signed`,
/// `qmap.unsigned`); adamlab's constants are those, bit for bit.
#[test]
fn the_quantization_maps_are_bitsandbytes_own() {
    let mut checked = 0;
    for (case, bytes) in REPLAY_FIXTURES.iter().filter(|(case, _)| {
        OPTIMIZERS
            .iter()
            .any(|o| case.starts_with(&format!("{o}/")))
    }) {
        let tensors = SafeTensors::deserialize(bytes).unwrap();
        // Lion keeps one moment, of the signed map.
        let maps: &[(&str, &[u32; 256])] = if case.starts_with("lion8bit/") {
            &[("qmap.signed", &DYNAMIC_SIGNED)]
        } else {
            &[
                ("qmap.signed", &DYNAMIC_SIGNED),
                ("qmap.unsigned", &DYNAMIC_UNSIGNED),
            ]
        };
        for &(name, map) in maps {
            let view = tensors
                .tensor(name)
                .unwrap_or_else(|_| panic!("{case}: no {name}"));
            let bits: Vec<u32> = view
                .data()
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            assert_eq!(bits, map.to_vec(), "{case}: {name}");
            checked += 1;
        }
    }
    assert!(
        checked >= 2 * 9 + 5,
        "two maps in each Adam fixture, one in each Lion one: {checked}"
    );
}

fn bridge(values: &[f32], shape: &[usize], device: &Device) -> BridgeTensor {
    let data = TensorData::new(values.to_vec(), shape.to_vec());
    match shape.len() {
        1 => Tensor::<1>::from_data(data, device).into_bridge(),
        2 => Tensor::<2>::from_data(data, device).into_bridge(),
        4 => Tensor::<4>::from_data(data, device).into_bridge(),
        rank => panic!("rank {rank}"),
    }
}

fn host_bits(tensor: &BridgeTensor, rank: usize) -> Vec<u32> {
    let data = match rank {
        1 => Tensor::<1>::from_bridge(tensor.clone()).to_data(),
        2 => Tensor::<2>::from_bridge(tensor.clone()).to_data(),
        4 => Tensor::<4>::from_bridge(tensor.clone()).to_data(),
        rank => panic!("rank {rank}"),
    };
    data.convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

/// The fixture's optimizer, with its fused step or through the reference step.
fn fixture_spec(fixture: &ReplayFixture, fused: bool) -> OptimizerSpec {
    OptimizerSpec::parse(&fixture.spec).unwrap().with("fused", Value::Bool(fused)).unwrap()
}

/// Every adam8bit, adamw8bit and lion8bit fixture, fused and through the reference step, on flex and
/// ndarray: after every one of the 200 steps, θ, the u8 codes (`state1`, `state2`) and the absmax
/// per block equal the transcription's to the bit (the same IEEE f32 operations in the same
/// order), and the codes are held as u8 tensors.
#[test]
fn the_8bit_optimizers_replay_the_bitsandbytes_transcription_bit_for_bit_on_the_cpu() {
    let fixtures: Vec<_> = replay_fixtures()
        .into_iter()
        .filter(|f| OPTIMIZERS.contains(&f.optimizer.as_str()))
        .collect();
    assert!(fixtures.len() >= 14, "{} fixtures", fixtures.len());
    let mut runs = 0;
    for backend in compiled()
        .into_iter()
        .filter(|b| matches!(b, BackendKind::Flex | BackendKind::Ndarray))
    {
        let device = device(backend).unwrap();
        for fixture in &fixtures {
            for fused in [true, false] {
                let spec = fixture_spec(fixture, fused);
                runs += replay_each_step(backend, &device, fixture, &spec, &mut |step| {
                    let expected: Vec<u32> = step.param.params[step.index].iter().map(|x| x.to_bits()).collect();
                    assert_eq!(step.theta, expected, "{}", (step.what)("θ"));
                    for (name, data) in &step.sink.tensors {
                        if name.starts_with("state") && step.param.states.contains_key("absmax1") {
                            assert_eq!(data.dtype(), DType::U8, "{}", (step.what)(name));
                        }
                        let expected: Vec<u32> =
                            step.param.states[name][step.index].iter().map(|x| x.to_bits()).collect();
                        assert_eq!(data_bits(data), expected, "{}", (step.what)(name));
                    }
                });
            }
        }
    }
    assert!(runs > 0, "no CPU backend compiled in");
}

/// Every adam8bit, adamw8bit and lion8bit fixture through the fused CubeCL kernels on wgpu (and
/// through the reference there, fused=false): after every one of the 200 steps, θ, the codes and
/// the absmax equal the transcription's to the bit, as on the CPU, and the kernels ran for the
/// parameters with 8-bit states. Measured on llvmpipe, CI's adapter, whose shader compiler does not
/// contract `a·b + c` and rounds division and square root as IEEE does; a hardware GPU may do
/// either (see `adamlab_verify::fused`), and there `tests/torch_fixtures.rs` holds the replays to
/// atol 1e-6 + rtol 1e-5. Skipped without wgpu.
#[test]
fn the_8bit_optimizers_replay_the_bitsandbytes_transcription_bit_for_bit_through_the_wgpu_kernels() {
    let Some(device) = wgpu_device() else {
        return;
    };
    let fixtures: Vec<_> = replay_fixtures()
        .into_iter()
        .filter(|f| OPTIMIZERS.contains(&f.optimizer.as_str()))
        .collect();
    let mut launched = 0;
    for fixture in &fixtures {
        for fused in [true, false] {
            let spec = fixture_spec(fixture, fused);
            let before = adamlab::optim::fused::launches();
            replay_each_step(BackendKind::Wgpu, &device, fixture, &spec, &mut |step| {
                let expected: Vec<u32> = step.param.params[step.index].iter().map(|x| x.to_bits()).collect();
                assert_eq!(step.theta, expected, "{}", (step.what)("θ"));
                for (name, data) in &step.sink.tensors {
                    let expected: Vec<u32> =
                        step.param.states[name][step.index].iter().map(|x| x.to_bits()).collect();
                    assert_eq!(data_bits(data), expected, "{}", (step.what)(name));
                }
            });
            let launches = adamlab::optim::fused::launches() - before;
            if !fused {
                assert_eq!(launches, 0, "{}: the reference launched a fused kernel", fixture.case);
            }
            launched += launches;
        }
    }
    println!("{} fixtures, {launched} fused launches", fixtures.len());
    assert!(launched > 0, "no 8-bit kernel ran");
}

/// A layer whose weight (64 × 80 = 5120 elements) has 8-bit moments at the default
/// `min_8bit_size` of 4096, and whose bias (80) keeps f32 moments.
fn layer(device: &Device) -> (Linear, Tensor<2>) {
    let device = device.clone().autodiff();
    device.seed(3);
    let layer = LinearConfig::new(64, 80).init(&device);
    let input = Tensor::<2>::random(
        [16, 64],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    (layer, input)
}

fn grads(layer: &Linear, input: &Tensor<2>, scale: f32) -> GradientsParams {
    let loss = layer
        .forward(input.clone())
        .powi_scalar(2)
        .mean()
        .mul_scalar(scale);
    GradientsParams::from_grads(loss.backward(), layer)
}

fn weight_bits(layer: &Linear) -> Vec<u32> {
    let mut values = layer.weight.val().to_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    values.extend(
        layer
            .bias
            .as_ref()
            .unwrap()
            .val()
            .to_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap(),
    );
    values.iter().map(|x| x.to_bits()).collect()
}

/// Every state tensor of an optimizer's saved bytes: name, dtype, shape and values.
fn leaves(bytes: &burn::tensor::Bytes) -> Vec<(String, String, Vec<usize>, Vec<u32>)> {
    let reader = burn_pack::Reader::from_bytes(bytes.clone()).unwrap();
    let mut leaves: Vec<_> = reader
        .into_tensors()
        .unwrap()
        .into_iter()
        .map(|tensor| {
            let (name, dtype, shape, _, bytes) = tensor.into_parts().unwrap();
            let values = TensorData::from_bytes(bytes, shape.clone(), dtype).convert::<f32>();
            let bits = values
                .try_to_vec::<f32>()
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect();
            (name, format!("{dtype:?}"), shape.to_vec(), bits)
        })
        .collect();
    leaves.sort();
    leaves
}

/// Saved after three steps, adamw8bit's file holds the weight's codes as u8, one per element, on
/// every backend (wgpu's packed words are unpacked); loaded into a fresh optimizer, every state
/// leaf has the saved values; the resumed optimizer's next steps equal the uninterrupted one's bit
/// for bit, and so does its saved state after them; a fresh optimizer's step differs (the state
/// matters). On every backend compiled in. (burn loads a state onto its default device and moves
/// it to the parameter's at the next step: with wgpu compiled in, the loaded codes are packed
/// until that step moves them to a CPU backend's u8 layout.)
#[test]
fn a_checkpoint_saves_and_resumes_the_8bit_states_exactly() {
    for backend in compiled() {
        let device = device(backend).unwrap();
        let spec = OptimizerSpec::parse("adamw8bit(lr=0.01)").unwrap();
        let (model, input, original) = three_steps(&spec, &device);
        let bytes = original.clone().into_bytes().unwrap();
        let reader = burn_pack::Reader::from_bytes(bytes.clone()).unwrap();
        let mut u8_tensors = 0;
        for tensor in reader.into_tensors().unwrap() {
            let (name, dtype, shape, _, _) = tensor.into_parts().unwrap();
            if name.ends_with(".state1") || name.ends_with(".state2") {
                let elements: usize = shape.iter().product();
                if elements == 64 * 80 {
                    assert_eq!(dtype, DType::U8, "{backend}: {name} is saved as {dtype:?}");
                    u8_tensors += 1;
                }
            }
        }
        assert_eq!(u8_tensors, 2, "{backend}: the weight's two code tensors");
        let restored = spec
            .build()
            .unwrap()
            .module_optimizer()
            .from_bytes(bytes.clone())
            .unwrap();
        let values = |leaves: Vec<(String, String, Vec<usize>, Vec<u32>)>| {
            leaves
                .into_iter()
                .map(|(name, _, shape, bits)| (name, shape, bits))
                .collect::<Vec<_>>()
        };
        let loaded = leaves(&restored.clone().into_bytes().unwrap());
        assert_eq!(
            values(loaded),
            values(leaves(&bytes)),
            "{backend}: the loaded state's values"
        );
        // Stepped on the parameters' device, the resumed state is again the uninterrupted one:
        // every tensor's dtype (codes u8 again where the device stores u8), shape and bits.
        resumes_exactly(&format!("{backend}: {spec}"), &spec, (original, restored), &model, &input);
    }
}

/// A state saved on wgpu (packed codes: the leaves hold one u8 per element) loads on flex (u8
/// codes) and resumes there bit for bit, and a state saved on flex resumes on wgpu alike: three
/// steps on one backend, its state flattened and unflattened onto the other (the functions a
/// checkpoint file goes through), then two steps on both from the same θ and gradients, equal to
/// the bit in θ and in every leaf after them. adamw8bit and lion8bit, on 5 001 elements (a partial
/// last block and a partial last word). Skipped without wgpu.
#[test]
fn an_8bit_state_saved_on_wgpu_resumes_on_flex_and_back_bit_for_bit() {
    let Some(wgpu) = wgpu_device() else {
        return;
    };
    let flex = Device::flex();
    let adamw = Adam8bitConfig::adamw().build().unwrap();
    let lion = Lion8bitConfig::new().build().unwrap();
    for (from, to, what) in [(&wgpu, &flex, "wgpu to flex"), (&flex, &wgpu, "flex to wgpu")] {
        resumes_across(&format!("adamw8bit, {what}"), &adamw, from, to);
        resumes_across(&format!("lion8bit, {what}"), &lion, from, to);
    }
}

/// `data` in bytes of its own, as a checkpoint file's are. (θ read back from wgpu comes in bytes
/// that wrap a mapped staging buffer of cubecl's; handed to flex as they are, flex's resumed step
/// differed from the uninterrupted one, while with a copy it is equal to the bit. Why, and whether
/// `Tensor::to_device` from wgpu to a CPU backend shares that hazard, is not examined here.)
fn copied(data: &TensorData) -> TensorData {
    TensorData::from_bytes_vec(data.as_bytes().to_vec(), data.shape().clone(), data.dtype())
}

/// [`an_8bit_state_saved_on_wgpu_resumes_on_flex_and_back_bit_for_bit`] for one optimizer.
fn resumes_across<O: Optimizer>(what: &str, optimizer: &O, from: &Device, to: &Device)
where
    O::State<1>: RecordState,
{
    const N: usize = 5001;
    let tensor = |step: usize, device: &Device| {
        let values: Vec<f32> = (0..N).map(|i| ((i * (step + 3)) as f32 * 0.37).sin()).collect();
        Tensor::<1>::from_data(TensorData::new(values, [N]), device)
    };
    let flatten = |state: &O::State<1>| {
        let mut sink = StateSink::default();
        state.state_flatten("p", &mut sink);
        sink
    };
    let (mut theta, mut state) = (tensor(0, from), None);
    for step in 1..=3 {
        (theta, state) = optimizer.step(1e-2, theta, tensor(step, from), state);
    }
    let sink = flatten(state.as_ref().unwrap());
    let mut source = StateSource::new(sink.scalars.iter().cloned().collect());
    for (name, data) in sink.tensors {
        if name.ends_with("state1") || name.ends_with("state2") {
            assert_eq!((data.dtype(), data.shape().num_elements()), (DType::U8, N), "{what}: {name}");
        }
        source.insert_tensor(name, copied(&data));
    }
    let loaded = O::State::<1>::state_unflatten("p", &mut source, to).unwrap();
    let theta_to = Tensor::<1>::from_data(copied(&theta.to_data()), to);
    let (mut theta_to, mut state_to) = (theta_to, Some(loaded));
    for step in 4..=5 {
        (theta, state) = optimizer.step(1e-2, theta, tensor(step, from), state);
        (theta_to, state_to) = optimizer.step(1e-2, theta_to, tensor(step, to), state_to);
        let bits = |t: &Tensor<1>| t.to_data().iter::<f32>().map(f32::to_bits).collect::<Vec<_>>();
        assert_eq!(bits(&theta_to), bits(&theta), "{what}: θ after step {step}");
    }
    let leaves = |state: &O::State<1>| {
        let sink = flatten(state);
        let tensors: Vec<_> = sink.tensors.iter().map(|(n, d)| (n.clone(), d.dtype(), data_bits(d))).collect();
        (tensors, format!("{:?}", sink.scalars))
    };
    assert_eq!(leaves(state_to.as_ref().unwrap()), leaves(state.as_ref().unwrap()), "{what}: the state after resuming");
}

/// [`layer`] after three steps of `spec`, with its input and the optimizer that took them.
fn three_steps(spec: &OptimizerSpec, device: &Device) -> (Linear, Tensor<2>, ModuleOptimizer) {
    let (mut model, input) = layer(device);
    let mut optimizer = spec.build().unwrap().module_optimizer();
    for scale in [1.0, 0.5, 2.0] {
        let g = grads(&model, &input, scale);
        model = optimizer.step(spec.lr(), model, g);
    }
    (model, input, optimizer)
}

/// The restored optimizer's next two steps equal the original's bit for bit, and so do their
/// saved states after them (dtype, shape, bits of every leaf); a fresh optimizer's first step
/// differs (the state matters).
fn resumes_exactly(
    what: &str,
    spec: &OptimizerSpec,
    (mut a, mut b): (ModuleOptimizer, ModuleOptimizer),
    model: &Linear,
    input: &Tensor<2>,
) {
    let mut fresh = spec.build().unwrap().module_optimizer();
    let (mut model_a, mut model_b) = (model.clone(), model.clone());
    let mut first_resumed_step = None;
    for scale in [-1.0, 0.3] {
        model_a = a.step(spec.lr(), model_a.clone(), grads(&model_a, input, scale));
        model_b = b.step(spec.lr(), model_b.clone(), grads(&model_b, input, scale));
        assert_eq!(weight_bits(&model_b), weight_bits(&model_a), "{what}: the resumed step differs");
        first_resumed_step.get_or_insert_with(|| weight_bits(&model_a));
    }
    let model_fresh = fresh.step(spec.lr(), model.clone(), grads(model, input, -1.0));
    assert_ne!(Some(weight_bits(&model_fresh)), first_resumed_step, "{what}: the state has no effect");
    let (a, b) = (leaves(&a.into_bytes().unwrap()), leaves(&b.into_bytes().unwrap()));
    assert_eq!(b, a, "{what}: the states after resuming");
}

/// Bytes of state per parameter element, as held in memory after two steps (the second from the
/// stored state) on a parameter of 1 000 000 elements, fused and by the reference: the dtype and
/// length of each state tensor the optimizer holds (not of a copy), on every backend compiled in.
/// 8-bit: two codes per element, u8 on the CPU backends and four to a u32 word on wgpu, and two
/// f32 absmax per block of 256, 2 + 8/256 = 2.03125 bytes per element, a quarter of Adam's 8
/// (plus 8 bytes of step count per tensor).
#[test]
fn the_8bit_state_is_two_bytes_per_element_and_two_floats_per_block() {
    const N: usize = 1_000_000;
    for backend in compiled() {
        let device = device(backend).unwrap();
        for fused in [true, false] {
            let optimizer = Adam8bitConfig::new().with_fused(fused).build().unwrap();
            let (theta, state) =
                optimizer.step(1e-3, Tensor::<1>::zeros([N], &device), Tensor::ones([N], &device), None);
            let (_, state) = optimizer.step(1e-3, theta, Tensor::ones([N], &device), state);
            let Adam8bitState {
                moments:
                    Moments::Blockwise {
                        codes: [state1, state2],
                        absmax: [absmax1, absmax2],
                    },
                ..
            } = state.unwrap()
            else {
                panic!("{backend}: a parameter of {N} elements keeps 8-bit moments");
            };
            let bytes = |t: &Tensor<1>| t.dtype().size() * t.shape().num_elements();
            let total = state1.bytes() + state2.bytes() + bytes(&absmax1) + bytes(&absmax2);
            let per_element = total as f64 / N as f64;
            let layout = |codes: &Codes<1>| match codes {
                Codes::Bytes(t) => format!("{:?} [{}]", t.dtype(), t.shape().num_elements()),
                Codes::Packed { words, .. } => format!("packed {:?} [{}]", words.dtype(), words.shape().num_elements()),
            };
            println!(
                "{backend} fused={fused}: codes {}, absmax {:?}: {total} bytes, {per_element} bytes per element",
                layout(&state1),
                absmax1.dtype()
            );
            assert_eq!(absmax1.shape().num_elements(), N.div_ceil(256));
            assert_eq!(absmax1.dtype(), DType::F32);
            for codes in [&state1, &state2] {
                match codes {
                    Codes::Bytes(t) => assert_eq!(t.dtype(), DType::U8, "{backend}"),
                    Codes::Packed { words, .. } => {
                        assert_eq!(words.dtype(), DType::U32, "{backend}");
                        assert_eq!(words.shape().num_elements(), N.div_ceil(4), "{backend}");
                    }
                }
            }
            assert_eq!(packs(&device), matches!(state1, Codes::Packed { .. }), "{backend}");
            assert_eq!(total, 2 * N + 8 * N.div_ceil(256), "{backend} fused={fused}");
        }
    }
}

/// On wgpu, the fused CubeCL step of each 8-bit optimizer equals its tensor-op reference to the
/// bit: θ, every code and every absmax (NaN matching NaN), after each of 6 steps, on a parameter
/// of 10 blocks and a partial last one (2 637 elements: its last code word is a quarter full),
/// with gradients that hold ±∞ and NaN at steps 2 and 4 and a block of zeros (a 0/0 quotient),
/// AdamW's decay and Lion's; and a parameter below `min_8bit_size` (f32 moments, the 32-bit
/// kernels' update, in an elementwise kernel) alike. The kernels ran, once per step (launches
/// counted). Skipped without wgpu.
#[test]
fn the_fused_8bit_kernels_equal_the_reference_bit_for_bit_on_wgpu() {
    const N: usize = 10 * 256 + 77;
    let Some(device) = wgpu_device() else {
        return;
    };
    let grad = |step: usize| -> Vec<f32> {
        let mut x = 0x9e37_79b9u32.wrapping_mul(step as u32 + 1);
        (0..N)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let g = (x >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0;
                match (step % 2 == 0, i % 97) {
                    _ if (512..768).contains(&i) => 0.0,
                    (true, 3) => f32::INFINITY,
                    (true, 5) => f32::NEG_INFINITY,
                    (true, 7) => f32::NAN,
                    _ => g * 10f32.powi(step as i32 % 3 - 1),
                }
            })
            .collect()
    };
    let run = |spec: &OptimizerSpec| -> (Vec<Vec<u32>>, usize) {
        let optimizer = spec.build().unwrap().dyn_optimizer();
        let theta0: Vec<f32> = (0..N).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut theta = Tensor::<1>::from_data(TensorData::new(theta0, [N]), &device).into_bridge();
        let mut state = None;
        let mut seen = Vec::new();
        let before = adamlab::optim::fused::launches();
        for step in 1..=6 {
            let g = Tensor::<1>::from_data(TensorData::new(grad(step), [N]), &device).into_bridge();
            (theta, state) = optimizer.step_dyn(1, spec.lr(), theta, g, state.take());
            seen.push(host_bits(&theta, 1));
            let mut sink = StateSink::default();
            optimizer.state_flatten("", state.as_ref().unwrap(), &mut sink);
            for (_, data) in &sink.tensors {
                seen.push(data_bits(data));
            }
        }
        (seen, adamlab::optim::fused::launches() - before)
    };
    let canonical_nan = |bits: &Vec<u32>| -> Vec<u32> {
        bits.iter().map(|&b| if f32::from_bits(b).is_nan() { 0x7fc0_0000 } else { b }).collect()
    };
    for spec in [
        "adam8bit(lr=0.01, min_8bit_size=1000)",
        "adamw8bit(lr=0.01, weight_decay=0.5, min_8bit_size=1000)",
        "adam8bit(lr=0.01, betas=(0.5, 0.9), eps=1e-3, min_8bit_size=1000)",
        "lion8bit(lr=0.01, min_8bit_size=1000)",
        "lion8bit(lr=0.01, betas=(0.5, 0.9), weight_decay=0.5, min_8bit_size=1000)",
        "adamw8bit(lr=0.01)",
        "lion8bit(lr=0.01)",
        "lion8bit(lr=0.01, weight_decay=0.5)",
    ] {
        let fused = OptimizerSpec::parse(spec).unwrap();
        let reference = fused.with("fused", Value::Bool(false)).unwrap();
        let ((a, launched), (b, _)) = (run(&fused), run(&reference));
        assert_eq!(launched, 6, "{spec}: kernel launches");
        assert_eq!(a.len(), b.len(), "{spec}");
        for (i, (a, b)) in a.iter().zip(&b).enumerate() {
            let (a, b) = (canonical_nan(a), canonical_nan(b));
            let differing = a.iter().zip(&b).filter(|(x, y)| x != y).count();
            assert_eq!(differing, 0, "{spec}: tensor {i} (θ, then the state's leaves, by step): {differing} differ");
        }
        let nan = a.iter().step_by(a.len() / 6).flatten().filter(|b| f32::from_bits(**b).is_nan()).count();
        println!("{spec}: {} tensors equal to the bit, {nan} NaN in θ", a.len());
    }
}

// --- bfloat16 moments: `adam(state_dtype=bf16)`, `adamw(state_dtype=bf16)` ---------------------

/// One step of a replay, as [`replay_each_step`] hands it to its check.
struct Step<'a> {
    /// What an assertion about `name` says: backend, case, fused or not, parameter, step, name.
    what: &'a dyn Fn(&str) -> String,
    param: &'a ReplayParam,
    /// The step's index into the fixture's recorded values (step `index + 1`).
    index: usize,
    /// θ after the step, as bits.
    theta: Vec<u32>,
    /// The optimizer's state after it, flattened.
    sink: StateSink,
}

/// Replays every parameter of `fixture` on `device` with `spec` for all its steps, handing each
/// step to `check`, after checking that the state holds every recorded state but the step count.
/// Returns the parameters replayed.
fn replay_each_step(
    backend: BackendKind,
    device: &Device,
    fixture: &ReplayFixture,
    spec: &OptimizerSpec,
    check: &mut dyn FnMut(&Step),
) -> usize {
    let optimizer = spec.build().unwrap().dyn_optimizer();
    for (index, param) in fixture.params.iter().enumerate() {
        let rank = param.shape.len();
        let mut theta = bridge(&param.initial, &param.shape, device);
        let mut state = None;
        for (s, grad) in param.grads.iter().enumerate() {
            (theta, state) = optimizer.step_dyn(rank, spec.lr(), theta, bridge(grad, &param.shape, device), state.take());
            let what = |name: &str| format!("{backend}/{} {spec} param{index} step {}: {name}", fixture.case, s + 1);
            let mut sink = StateSink::default();
            optimizer.state_flatten("", state.as_ref().unwrap(), &mut sink);
            assert_eq!(sink.tensors.len(), param.states.len() - 1, "{}: every state but step", what("state"));
            check(&Step {
                what: &what,
                param,
                index: s,
                theta: host_bits(&theta, rank),
                sink,
            });
        }
    }
    fixture.params.len()
}

/// The replay fixtures of the bfloat16-state cases with f32 parameters
/// (`tools/reference/cases/adam_bf16_states.py`).
fn bf16_fixtures() -> Vec<adamlab::verify::replay::ReplayFixture> {
    let fixtures: Vec<_> = replay_fixtures()
        .into_iter()
        .filter(|f| f.spec.contains("state_dtype=bf16") && f.param_dtype == DType::F32)
        .collect();
    assert!(fixtures.len() >= 8, "{} bfloat16 fixtures", fixtures.len());
    fixtures
}

/// The bits of every element of a state leaf, widened to f32 (exact from bfloat16).
fn data_bits(data: &TensorData) -> Vec<u32> {
    data.clone()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

/// How far a bfloat16-state replay strayed from torch: elements (θ and moments, over all steps)
/// that differ in any bit, and the largest difference of each relative to its tolerance.
#[derive(Default, Debug)]
struct Stray {
    elements: usize,
    theta_differing: usize,
    theta_worst: f32,
    moments_differing: usize,
    moments_worst: f32,
}

/// Every bfloat16-state fixture, fused and through the reference step, on every backend compiled
/// in, for all 200 steps: every moment is a bfloat16 value (the low 16 bits of its f32 are 0),
/// stored as bfloat16 where the backend stores it ([`state_storage`]); θ stays within the
/// replays' tolerance (atol 1e-6 + rtol 1e-5) and every moment within the replays' tolerance of
/// bfloat16 moments ([`BF16_STATE_RTOL`]: one bfloat16 ulp, beyond atol 1e-6 times the
/// largest gradient). The counts of elements that differ at all are printed.
///
/// Why not to the bit: torch's CPU `θ.addcdiv_(m, denom, value=−s)`, `g.add(θ, alpha=λ)` and
/// `m.lerp_(g, 1 − β₁)` round differently from adamlab's `θ − (m·s)/denom`, `g + λ·θ` and
/// `m + (g − m)·(1 − β₁)` (a fused multiply-add, another order), as for f32 moments (`adam`'s own
/// replays are not bit for bit either): θ ends an ulp or so apart, and so may a moment before it
/// is rounded, which can then round to the neighbouring bfloat16 (measured: one moment value in
/// each of two cases, of 16 400 or 24 600 per case: one ulp where L2 decay makes g read θ, three
/// ulps of a moment cancelled to 3e-8).
#[test]
fn the_bf16_state_cases_replay_torch() {
    let fixtures = bf16_fixtures();
    let theta_tolerance = |x: f32| 1e-6 + 1e-5 * x.abs();
    let mut runs = 0;
    for backend in compiled() {
        let device = device(backend).unwrap();
        let storage = state_storage(&device);
        println!("{backend}: bfloat16 moments stored as {storage:?}");
        for fixture in &fixtures {
            for fused in [true, false] {
                let spec = fixture_spec(fixture, fused);
                let mut stray = Stray::default();
                let scale = fixture
                    .params
                    .iter()
                    .flat_map(|p| p.grads.iter().flatten())
                    .fold(1f32, |m, g| m.max(g.abs()));
                let moment_tolerance = |x: f32| 1e-6 * scale + BF16_STATE_RTOL as f32 * x.abs();
                runs += replay_each_step(backend, &device, fixture, &spec, &mut |step| {
                    for (actual, expected) in step.theta.iter().zip(&step.param.params[step.index]) {
                        let actual = f32::from_bits(*actual);
                        stray.elements += 1;
                        if actual.to_bits() != expected.to_bits() {
                            stray.theta_differing += 1;
                            let off = (actual - expected).abs() / theta_tolerance(*expected);
                            stray.theta_worst = stray.theta_worst.max(off);
                        }
                    }
                    for (name, data) in &step.sink.tensors {
                        assert_eq!(data.dtype(), storage, "{}", (step.what)(name));
                        let actual = data_bits(data);
                        assert!(actual.iter().all(|b| b & 0xFFFF == 0), "{}: not bfloat16 values", (step.what)(name));
                        for (a, e) in actual.iter().zip(&step.param.states[name][step.index]) {
                            stray.elements += 1;
                            if *a != e.to_bits() {
                                stray.moments_differing += 1;
                                let off = (f32::from_bits(*a) - e).abs() / moment_tolerance(*e);
                                stray.moments_worst = stray.moments_worst.max(off);
                            }
                        }
                    }
                });
                let case = format!("{backend}/{} fused={fused}", fixture.case);
                println!("{case}: {stray:?}");
                assert!(stray.theta_worst <= 1.0, "{case}: θ beyond the tolerance: {stray:?}");
                assert!(stray.moments_worst <= 1.0, "{case}: a moment beyond the tolerance: {stray:?}");
            }
        }
    }
    assert!(runs > 0, "no backend compiled in");
}

/// Bytes of state per parameter element after two steps on 1 000 000 elements (the second from
/// the stored state), from the dtype and length of the moments the optimizer holds, fused and by
/// the reference: 4 with `state_dtype=bf16` (two bfloat16 moments), half of f32's 8, where the
/// backend stores bfloat16; 8 where it does not (f32 tensors holding bfloat16 values). AMSGrad's
/// maximum adds 2 (bfloat16) or 4 (f32).
#[test]
fn bf16_states_are_four_bytes_per_element_where_the_backend_stores_bf16() {
    const N: usize = 1_000_000;
    for backend in compiled() {
        let device = device(backend).unwrap();
        for amsgrad in [false, true] {
            let moments = if amsgrad { 3 } else { 2 };
            for (state_dtype, fused) in [
                (StateDtype::F32, true),
                (StateDtype::Bf16, true),
                (StateDtype::Bf16, false),
            ] {
                let optimizer = AdamConfig::adamw()
                    .with_amsgrad(amsgrad)
                    .with_state_dtype(state_dtype)
                    .with_fused(fused)
                    .build()
                    .unwrap();
                let (theta, state) = optimizer.step(
                    1e-3,
                    Tensor::<1>::zeros([N], &device),
                    Tensor::ones([N], &device),
                    None,
                );
                let (_, state) = optimizer.step(1e-3, theta, Tensor::ones([N], &device), state);
                let state = state.unwrap();
                let tensors: Vec<&Tensor<1>> = [Some(&state.exp_avg), Some(&state.exp_avg_sq)]
                    .into_iter()
                    .chain([state.max_exp_avg_sq.as_ref()])
                    .flatten()
                    .collect();
                let total: usize = tensors
                    .iter()
                    .map(|t| t.dtype().size() * t.shape().num_elements())
                    .sum();
                let dtypes: Vec<DType> = tensors.iter().map(|t| t.dtype()).collect();
                let per_element = total as f64 / N as f64;
                println!(
                    "{backend} {state_dtype:?} amsgrad={amsgrad} fused={fused}: {dtypes:?}, {per_element} bytes per element"
                );
                let bytes_per_moment = match (state_dtype, state_storage(&device)) {
                    (StateDtype::Bf16, DType::BF16) => 2,
                    _ => 4,
                };
                assert_eq!(tensors.len(), moments, "{backend}");
                assert_eq!(
                    total,
                    bytes_per_moment * moments * N,
                    "{backend} {state_dtype:?} fused={fused}: {dtypes:?}"
                );
            }
        }
    }
}

/// Saved after three steps, `adamw(state_dtype=bf16)`'s file holds the moments as bfloat16 where the
/// device stores it; loaded into a fresh optimizer (burn rebuilds them as f32, exactly), the
/// resumed steps equal the uninterrupted ones bit for bit, the moments are bfloat16 again after
/// them, and the saved states agree leaf for leaf (dtype, shape, bits); a fresh optimizer's step
/// differs. On every backend compiled in.
#[test]
fn a_checkpoint_saves_and_resumes_the_bf16_states_exactly() {
    for backend in compiled() {
        let device = device(backend).unwrap();
        for spec in ["adamw(lr=0.01, state_dtype=bf16)", "adam(lr=0.01, amsgrad=true, state_dtype=bf16)"] {
            let spec = OptimizerSpec::parse(spec).unwrap();
            let (model, input, original) = three_steps(&spec, &device);
            let bytes = original.clone().into_bytes().unwrap();
            let saved = leaves(&bytes);
            let moments: Vec<_> = saved
                .iter()
                .filter(|(name, ..)| name.contains("exp_avg"))
                .collect();
            // m and v of the weight and of the bias, and with AMSGrad their maxima.
            let expected = if spec.to_string().contains("amsgrad") { 6 } else { 4 };
            assert_eq!(moments.len(), expected, "{backend}: {spec}");
            let storage = format!("{:?}", state_storage(&device));
            for (name, dtype, _, bits) in &moments {
                assert_eq!(dtype, &storage, "{backend}: {spec}: {name}");
                assert!(bits.iter().all(|b| b & 0xFFFF == 0), "{backend}: {spec}: {name}");
            }
            let restored = spec
                .build()
                .unwrap()
                .module_optimizer()
                .from_bytes(bytes.clone())
                .unwrap();
            resumes_exactly(&format!("{backend}: {spec}"), &spec, (original, restored), &model, &input);
        }
    }
}

// --- bfloat16 parameters: `adam(bf16_stochastic_round=true)`, `adamw(…)` ------------------------
//
// The replays against torch (fixtures/torch/replay/adam{,w}/bf16-params*, from
// tools/reference/bf16_params.py) run in tests/torch_fixtures.rs with the other fixtures, on flex,
// the backend that stores bfloat16, to the bfloat16 (`BF16_PARAM_TOLERANCE`). Here: the rounding's
// statistics, the fused step against the tensor ops, the seed, and checkpoints.

/// A bfloat16 Flex tensor of `values` (rounded to nearest from f32 on the way).
fn bf16_tensor<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::<D>::from_data(TensorData::new(values, shape), device).cast(DType::BF16)
}

fn f32_values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// One Adam step from θ₀ = 1 with g = 1 (lr 1e-3) moves θ to x = 0.999 in f32, between the
/// bfloat16 neighbours 1 − 2⁻⁸ and 1. Rounded stochastically, every element of θ₁ is one of the
/// two, and their mean is x: over 64 seeds × 4 096 elements the mean is within 5σ of x (σ = the
/// gap·√(p(1 − p)/n) ≈ 8.5e-7, p = 0.744 the chance of 1), and so is each seed's own mean (σ ≈
/// 6.8e-6). Fused and through the tensor ops alike. Rounded to nearest (the keyword off, θ's
/// own bfloat16 arithmetic), the update is lost: every θ₁ is 1.
#[test]
fn stochastic_rounding_lands_on_a_neighbour_and_is_unbiased() {
    let device = Device::flex();
    const N: usize = 4096;
    const SEEDS: usize = 64;
    let gap = 2f64.powi(-8);
    let (below, above) = (1.0 - gap, 1.0);
    // The f32 update, from the f32 step itself.
    let adam = AdamConfig::new().build().unwrap();
    let (x, _) = adam.step(1e-3, Tensor::<1>::ones([1], &device), Tensor::<1>::ones([1], &device), None);
    let x = f64::from(f32_values(x)[0]);
    assert!(below < x && x < above, "{x}");
    let p = (x - below) / gap;
    for fused in [true, false] {
        let mut total = 0.0;
        for seed in 0..SEEDS {
            let adam = AdamConfig::new()
                .with_bf16_stochastic_round(true)
                .with_seed(seed)
                .with_fused(fused)
                .build()
                .unwrap();
            let (theta, _) = adam.step(1e-3, bf16_tensor(vec![1.0; N], [N], &device), bf16_tensor(vec![1.0; N], [N], &device), None);
            assert_eq!(theta.dtype(), DType::BF16);
            let theta = f32_values(theta);
            assert!(theta.iter().all(|&t| f64::from(t) == below || f64::from(t) == above), "fused={fused} seed {seed}");
            let mean = theta.iter().map(|&t| f64::from(t)).sum::<f64>() / N as f64;
            let sigma = gap * (p * (1.0 - p) / N as f64).sqrt();
            assert!((mean - x).abs() < 5.0 * sigma, "fused={fused} seed {seed}: mean {mean}, x {x}, σ {sigma}");
            total += mean;
        }
        let sigma = gap * (p * (1.0 - p) / (N * SEEDS) as f64).sqrt();
        let mean = total / SEEDS as f64;
        assert!((mean - x).abs() < 5.0 * sigma, "fused={fused}: mean {mean}, x {x}, σ {sigma}");
    }
    let nearest = AdamConfig::new().build().unwrap();
    let (theta, _) = nearest.step(1e-3, bf16_tensor(vec![1.0; N], [N], &device), bf16_tensor(vec![1.0; N], [N], &device), None);
    assert!(f32_values(theta).iter().all(|&t| t == 1.0));
}

/// Three steps on 70 000 elements (five chunks of the parallel loop, whose draws must follow the
/// elements' indices), fused and through the tensor ops: θ (bfloat16) and every state leaf equal
/// to the bit, with f32 and bfloat16 moments, AMSGrad and AdamW's decay. The same seed twice gives
/// the same θ; another seed another θ; the parameters' streams go 0, 1 in the order of their
/// first steps and are saved with the state.
#[test]
fn bf16_params_fused_equals_the_tensor_ops_and_the_seed_picks_the_draws() {
    let device = Device::flex();
    const N: usize = 70_000;
    let normal = |seed: u64| -> Vec<f32> {
        (0..N as u64).map(|i| (adamlab::optim::stochastic::bits16(seed, i) as f32 - 32768.0) / 16384.0).collect()
    };
    let run = |spec: &str| -> (Vec<u32>, Vec<(String, Vec<u32>)>) {
        let spec = OptimizerSpec::parse(spec).unwrap();
        let optimizer = spec.build().unwrap().dyn_optimizer();
        let mut bits = Vec::new();
        let mut leaves = Vec::new();
        for param in 0..2u64 {
            let mut theta = bf16_tensor(normal(param), [N], &device).into_bridge();
            let mut state = None;
            for step in 1..=3u64 {
                let grad = bf16_tensor(normal(10 * param + step), [N], &device).into_bridge();
                (theta, state) = optimizer.step_dyn(1, spec.lr(), theta, grad, state.take());
            }
            let theta = Tensor::<1>::from_bridge(theta);
            assert_eq!(theta.dtype(), DType::BF16, "{spec}");
            bits.extend(f32_values(theta).iter().map(|t| t.to_bits()));
            let mut sink = StateSink::default();
            optimizer.state_flatten("", state.as_ref().unwrap(), &mut sink);
            for (name, data) in &sink.tensors {
                leaves.push((format!("param{param}.{name}"), data_bits(data)));
            }
            let scalars: Vec<_> = sink.scalars.iter().map(|(k, v)| (k.clone(), f64::try_from(*v).unwrap())).collect();
            assert!(scalars.contains(&("rounding_stream".to_string(), param as f64)), "{spec}: {scalars:?}");
        }
        (bits, leaves)
    };
    for spec in [
        "adam(lr=0.01, bf16_stochastic_round=true)",
        "adamw(lr=0.01, amsgrad=true, bf16_stochastic_round=true)",
        "adam(lr=0.001, weight_decay=0.1, state_dtype=bf16, bf16_stochastic_round=true)",
        "adamw(lr=0.001, amsgrad=true, state_dtype=bf16, bf16_stochastic_round=true, seed=3)",
    ] {
        let fused = run(spec);
        let reference = run(&spec.replace("true)", "true, fused=false)").replace("seed=3)", "seed=3, fused=false)"));
        assert_eq!(fused.0, reference.0, "{spec}: θ");
        assert_eq!(fused.1, reference.1, "{spec}: state");
    }
    let seeded = |seed: u64| run(&format!("adam(lr=0.01, bf16_stochastic_round=true, seed={seed})")).0;
    assert_eq!(seeded(5), seeded(5));
    let (five, six) = (seeded(5), seeded(6));
    let differing = five.iter().zip(&six).filter(|(a, b)| a != b).count();
    assert!(differing > N / 100, "seeds 5 and 6: {differing} of {} elements differ", 2 * N);
}

/// A bfloat16 Linear layer (flex) trained three steps with `adamw(bf16_stochastic_round=true)`,
/// saved and loaded into a fresh optimizer: the resumed steps equal the uninterrupted ones bit for
/// bit, the saved states agree leaf for leaf, and a fresh optimizer's step differs. With f32
/// moments the original optimizer first stepped another layer, so the layer's streams are 2 and
/// 3: a restored optimizer that handed out streams afresh (0 and 1) would draw other bits.
#[test]
fn a_checkpoint_resumes_the_stochastic_rounding_exactly() {
    let device = Device::flex();
    let bf16_layer = || {
        let (layer, input) = layer(&device);
        let layer = Linear {
            // Leaves again after the cast, each with its gradient.
            weight: layer.weight.map(|w| w.cast(DType::BF16).detach().require_grad()),
            bias: layer.bias.map(|b| b.map(|b| b.cast(DType::BF16).detach().require_grad())),
            ..layer
        };
        (layer, input.cast(DType::BF16).detach())
    };
    let (layer, input) = bf16_layer();
    let (other, _) = bf16_layer();
    for spec in ["adamw(lr=0.01, bf16_stochastic_round=true)", "adam(lr=0.01, amsgrad=true, state_dtype=bf16, bf16_stochastic_round=true)"] {
        let spec = OptimizerSpec::parse(spec).unwrap();
        let mut model = layer.clone();
        let mut original = spec.build().unwrap().module_optimizer();
        // bfloat16 moments come back from a checkpoint as f32 (exactly) and are bfloat16 again
        // after their parameter's next step: the other layer, not stepped after resuming, would
        // keep f32 ones, so that spec resumes without it.
        if !spec.to_string().contains("state_dtype=bf16") {
            let _ = original.step(spec.lr(), other.clone(), grads(&other, &input, 1.0));
        }
        for scale in [1.0, 0.5, 2.0] {
            let g = grads(&model, &input, scale);
            model = original.step(spec.lr(), model, g);
        }
        assert_eq!(model.weight.val().dtype(), DType::BF16, "{spec}");
        let bytes = original.clone().into_bytes().unwrap();
        let restored = spec.build().unwrap().module_optimizer().from_bytes(bytes).unwrap();
        resumes_exactly(&spec.to_string(), &spec, (original, restored), &model, &input);
    }
}
