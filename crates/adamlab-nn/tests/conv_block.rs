//! The block against burn's three operations (`conv.forward`, `relu`, `max_pool2d`): the output
//! and the gradients of input, weight and bias, on shapes covering the options its kernels take
//! (kernel sizes, strides, paddings, odd outputs that pooling floors) and one it hands back to
//! burn (groups). Integer-valued data makes every sum exact in f32 whatever its order, so there
//! the block must equal burn bit for bit, ties in the pooling window included; random data checks
//! the same at f32 tolerance.
#![cfg(all(feature = "flex", feature = "ndarray"))]
// burn deprecates ndarray in favour of flex; adamlab ships both on purpose.
#![allow(deprecated)]

use adamlab_nn::conv2d_relu_max_pool;
use burn::module::{Module, Param};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::activation::relu;
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor, TensorData, Tolerance};

/// One convolution of the table.
#[derive(Clone, Copy, Debug)]
struct Case {
    batch: usize,
    channels: [usize; 2],
    side: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    groups: usize,
}

const fn case(
    batch: usize,
    channels: [usize; 2],
    side: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> Case {
    Case {
        batch,
        channels,
        side,
        kernel,
        stride,
        padding,
        groups: 1,
    }
}

const CASES: [Case; 8] = [
    case(3, [1, 32], [28, 28], [3, 3], [1, 1], [1, 1]), // the article's conv1
    case(9, [32, 64], [14, 14], [3, 3], [1, 1], [1, 1]), // conv2; 3 chunks of 4, 4, 1 images
    case(2, [2, 5], [9, 7], [3, 3], [1, 1], [0, 0]),    // 7×5 output, pooled 3×2
    case(2, [3, 4], [11, 10], [3, 3], [2, 2], [1, 1]),  // stride 2
    case(2, [2, 3], [8, 8], [5, 5], [1, 1], [2, 2]),    // 5×5, padding 2
    case(2, [4, 3], [6, 6], [1, 1], [1, 1], [0, 0]),    // 1×1
    case(2, [2, 3], [7, 9], [2, 3], [1, 2], [1, 0]),    // rectangular kernel, stride, padding
    Case {
        groups: 2,
        ..case(2, [4, 4], [8, 8], [3, 3], [1, 1], [1, 1])
    }, // burn's path
];

/// A reproducible stream of numbers (xorshift64*).
struct Numbers(u64);

impl Numbers {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [-1, 1).
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// One of -2, -1, 0, 1, 2.
    fn integer(&mut self) -> f32 {
        (self.next() % 5) as f32 - 2.0
    }

    fn data(&mut self, shape: &[usize], integers: bool) -> TensorData {
        let values = (0..shape.iter().product())
            .map(|_| {
                if integers {
                    self.integer()
                } else {
                    self.uniform()
                }
            })
            .collect::<Vec<_>>();
        TensorData::new(values, shape.to_vec())
    }
}

/// The block's output and the gradients of `sum(output · weights)` with respect to x, the
/// convolution's weight and its bias.
struct Run {
    output: TensorData,
    x_grad: TensorData,
    weight_grad: TensorData,
    bias_grad: TensorData,
}

/// Runs `case` on `device` (with autodiff) through the block or through burn's operations.
fn run(case: Case, device: &Device, integers: bool, block: bool) -> Run {
    let mut numbers =
        Numbers(0x9e37_79b9_7f4a_7c15 ^ (case.side[0] * 31 + case.channels[1]) as u64);
    let [c_in, c_out] = case.channels;
    let [pad_h, pad_w] = case.padding;
    let mut conv: Conv2d = Conv2dConfig::new(case.channels, case.kernel)
        .with_stride(case.stride)
        .with_groups(case.groups)
        .with_padding(PaddingConfig2d::Explicit(pad_h, pad_w, pad_h, pad_w))
        .init(device);
    let weight_shape = [c_out, c_in / case.groups, case.kernel[0], case.kernel[1]];
    conv.weight = Param::from_tensor(Tensor::from_data(
        numbers.data(&weight_shape, integers),
        device,
    ));
    conv.bias = Some(Param::from_tensor(Tensor::from_data(
        numbers.data(&[c_out], integers),
        device,
    )));
    let x_shape = [case.batch, c_in, case.side[0], case.side[1]];
    let x = Tensor::<4>::from_data(numbers.data(&x_shape, integers), device).require_grad();

    let output = if block {
        conv2d_relu_max_pool(&conv, x.clone())
    } else {
        max_pool2d(relu(conv.forward(x.clone())), MaxPoolOptions::new([2, 2]))
    };
    let output_weights = Tensor::<4>::from_data(numbers.data(&output.dims(), integers), device);
    let grads = (output.clone() * output_weights).sum().backward();
    let grad = |tensor: Option<Tensor<4>>| tensor.expect("a gradient").into_data();
    Run {
        output: output.into_data(),
        x_grad: grad(x.grad(&grads)),
        weight_grad: grad(conv.weight.val().grad(&grads)),
        bias_grad: conv
            .bias
            .expect("a bias")
            .val()
            .grad(&grads)
            .expect("a gradient")
            .into_data(),
    }
}

/// Asserts the block's run equals burn's within `tolerance` (`None`: bit for bit).
fn assert_same(case: Case, block: &Run, burn: &Run, tolerance: Option<Tolerance<f32>>) {
    let pairs = [
        ("output", &block.output, &burn.output),
        ("x gradient", &block.x_grad, &burn.x_grad),
        ("weight gradient", &block.weight_grad, &burn.weight_grad),
        ("bias gradient", &block.bias_grad, &burn.bias_grad),
    ];
    for (what, ours, theirs) in pairs {
        assert_eq!(ours.shape(), theirs.shape(), "{what} of {case:?}");
        match tolerance {
            None => assert_eq!(
                ours.as_slice::<f32>().unwrap(),
                theirs.as_slice::<f32>().unwrap(),
                "{what} of {case:?}"
            ),
            Some(tolerance) => ours.assert_approx_eq::<f32>(theirs, tolerance),
        }
    }
}

/// Runs every case through the block and through burn's operations on `device`.
fn assert_block_is_burn(device: Device, integers: bool, tolerance: Option<Tolerance<f32>>) {
    let device = device.autodiff();
    for case in CASES {
        let (block, burn) = (
            run(case, &device, integers, true),
            run(case, &device, integers, false),
        );
        assert_same(case, &block, &burn, tolerance);
    }
}

#[test]
fn flex_block_equals_burns_operations_bit_for_bit_on_integer_data() {
    assert_block_is_burn(Device::flex(), true, None);
}

#[test]
fn flex_block_equals_burns_operations_on_random_data_to_f32_rounding() {
    // Sums of 9 to 1,764 products (conv2's weight gradient: 9 images of 196 positions) in
    // another order than burn's: a few f32 roundings of the largest partial sums.
    assert_block_is_burn(
        Device::flex(),
        false,
        Some(Tolerance::absolute(1e-5).set_relative(1e-5)),
    );
}

#[test]
fn ndarray_block_is_burns_operations_bit_for_bit() {
    // ndarray composes burn's own operations under one backward node: same arithmetic.
    assert_block_is_burn(Device::ndarray(), false, None);
}

#[test]
fn flex_block_without_autodiff_gives_the_same_output() {
    let (plain, tracked) = (Device::flex(), Device::flex().autodiff());
    let case = CASES[1];
    let mut numbers = Numbers(7);
    let mut conv: Conv2d = Conv2dConfig::new(case.channels, case.kernel)
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&plain);
    let x = numbers.data(
        &[case.batch, case.channels[0], case.side[0], case.side[1]],
        false,
    );
    let ours = conv2d_relu_max_pool(&conv, Tensor::from_data(x.clone(), &plain)).into_data();
    conv = conv.to_device(&tracked);
    let theirs = conv2d_relu_max_pool(&conv, Tensor::from_data(x, &tracked)).into_data();
    assert_eq!(
        ours.as_slice::<f32>().unwrap(),
        theirs.as_slice::<f32>().unwrap()
    );
}

#[test]
fn flex_block_does_not_depend_on_the_number_of_threads() {
    let device = Device::flex().autodiff();
    let case = CASES[1];
    let many = run(case, &device, false, true);
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| run(case, &device, false, true));
    assert_same(case, &many, &one, None);
}

#[test]
fn an_empty_batch_gives_an_empty_output() {
    // Not the kernels' case (their im2col matrix would have no columns): burn's path takes it.
    let device = Device::flex().autodiff();
    let conv: Conv2d = Conv2dConfig::new([2, 3], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&device);
    let output = conv2d_relu_max_pool(&conv, Tensor::zeros([0, 2, 8, 8], &device));
    assert_eq!(output.dims(), [0, 3, 4, 4]);
}
