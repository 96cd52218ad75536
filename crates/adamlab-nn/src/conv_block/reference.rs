//! The block in burn's own operations: the trait's default bodies, and what flex's kernels are
//! tested against.

use burn::backend::ops::ConvOptions;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, TensorMetadata, get_or_init_device_settings};
use burn::tensor::Shape;

use super::POOL;

/// `max_pool2d_with_indices(relu(conv2d(x)), 2, 2)`, and x for the backward.
pub(crate) fn conv_relu_pool<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: FloatTensor<B>,
    stride: [usize; 2],
    padding: [usize; 2],
) -> (FloatTensor<B>, IntTensor<B>, FloatTensor<B>) {
    let options = ConvOptions::new(stride, padding, [1, 1], 1);
    let conv = B::conv2d(x.clone(), weight, Some(bias), options); // [b, c_out, h_out, w_out]
    let int_dtype = get_or_init_device_settings::<B>(&conv.device()).int_dtype;
    let pooled =
        B::max_pool2d_with_indices(B::relu(conv), POOL, POOL, [0, 0], [1, 1], false, int_dtype);
    (pooled.output, pooled.indices, x)
}

/// The convolution's output gradient, the weight's and the bias's, by burn's backward operations.
pub(crate) fn conv_relu_pool_backward<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    output: FloatTensor<B>,
    indices: IntTensor<B>,
    output_grad: FloatTensor<B>,
    stride: [usize; 2],
    padding: [usize; 2],
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let options = ConvOptions::new(stride, padding, [1, 1], 1);
    let conv_shape = conv_output_shape(&x.shape(), &weight.shape(), stride, padding);
    let channels = conv_shape[1];
    let [batch, _, h_out, w_out] = conv_shape.dims();
    // ReLU's gradient, read from the pooled output: it passes where the window's maximum is not
    // ≤ 0 (NaN passes, as in burn's and torch's ReLU).
    let output_grad = B::relu_backward(output, output_grad);
    // Pooling's backward reads only the shape of its input.
    let shape_only = B::float_zeros(conv_shape, &x.device(), x.dtype().into());
    let conv_grad = B::max_pool2d_with_indices_backward(
        shape_only,
        POOL,
        POOL,
        [0, 0],
        [1, 1],
        false,
        output_grad,
        indices,
    )
    .x_grad; // [b, c_out, h_out, w_out]
    let weight_grad = B::conv2d_weight_backward(x, weight, conv_grad.clone(), options);
    // As burn's `conv2d_bias_backward` (which needs the bias only for its shape).
    let bias_grad = B::float_swap_dims(conv_grad.clone(), 0, 1); // [c_out, b, h_out, w_out]
    let bias_grad = B::float_reshape(bias_grad, Shape::new([channels, batch * h_out * w_out]));
    let bias_grad = B::float_reshape(B::float_sum_dim(bias_grad, 1), Shape::new([channels]));
    (conv_grad, weight_grad, bias_grad)
}

/// The input's gradient by burn's `conv2d_x_backward`.
pub(crate) fn conv_relu_pool_x_backward<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    conv_grad: FloatTensor<B>,
    stride: [usize; 2],
    padding: [usize; 2],
) -> FloatTensor<B> {
    let options = ConvOptions::new(stride, padding, [1, 1], 1);
    B::conv2d_x_backward(x, weight, conv_grad, options)
}

/// A convolution's output side along one axis, `(side + 2·padding − kernel) / stride + 1`, or
/// `None` where the kernel does not fit in the padded side.
pub(crate) fn output_side(
    side: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Option<usize> {
    (side + 2 * padding)
        .checked_sub(kernel)
        .map(|room| room / stride + 1)
}

/// `[batch, c_out, h_out, w_out]` of a convolution of `x_shape` by `weight_shape`.
///
/// # Panics
/// Where the kernel does not fit in the padded input, which
/// [`conv2d_relu_max_pool`](super::conv2d_relu_max_pool) hands to burn instead.
pub(crate) fn conv_output_shape(
    x_shape: &Shape,
    weight_shape: &Shape,
    stride: [usize; 2],
    padding: [usize; 2],
) -> Shape {
    let out = |axis: usize| {
        output_side(
            x_shape[axis + 2],
            weight_shape[axis + 2],
            stride[axis],
            padding[axis],
        )
        .expect("the kernel fits in the padded input")
    };
    Shape::new([x_shape[0], weight_shape[0], out(0), out(1)])
}
