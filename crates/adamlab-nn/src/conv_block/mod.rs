//! `conv2d → ReLU → max_pool2d(2, 2)` as one operation of burn's backends.
//!
//! The operation is a burn backend extension ([`ConvBlockOps`]): the trait's default bodies are
//! burn's own operations (the reference every backend starts from), flex overrides them with the
//! kernels of [`flex`], and [`Autodiff`](burn::backend::Autodiff) wraps either with one backward
//! node instead of three. The pooling indices follow torch and burn (the plane offset `h·W + w` of
//! the window's first maximum), and the ReLU's gradient is taken from the pooled output (a
//! window's gradient passes where its maximum after ReLU is positive), so every backend routes
//! each gradient to the same element as burn's separate operations do.

mod autodiff;
#[cfg(feature = "flex")]
mod flex;
mod reference;

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;

/// The pooling window and stride of the block: 2×2, stride 2, no padding, floor mode.
const POOL: [usize; 2] = [2, 2];

/// The operations behind [`conv2d_relu_max_pool`], one implementation per backend.
///
/// Shapes: `x` `[batch, c_in, h, w]`, `weight` `[c_out, c_in, k_h, k_w]`, `bias` `[c_out]`; the
/// convolution's output `[batch, c_out, h_out, w_out]` is pooled to `[batch, c_out, h_out / 2,
/// w_out / 2]`. Dilation 1, one group, symmetric padding.
#[backend_extension(
    Flex: cfg(feature = "flex"),
    NdArray: cfg(feature = "ndarray"),
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    Autodiff,
)]
pub trait ConvBlockOps: Backend {
    /// The pooled output; for each pooled element, the plane offset (`h·w_out + w`) in the
    /// convolution's output of the element it came from; and what the backend keeps for
    /// [`conv_relu_pool_backward`](Self::conv_relu_pool_backward) when `for_backward` (flex: the
    /// im2col matrix, which the weight's gradient reads again; otherwise, and on burn's
    /// operations, `x`). Autodiff sets `for_backward` itself, from whether the block is tracked.
    fn conv_relu_pool(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        for_backward: bool,
    ) -> (FloatTensor<Self>, IntTensor<Self>, FloatTensor<Self>) {
        let _ = for_backward; // burn's operations keep x either way
        reference::conv_relu_pool::<Self>(x, weight, bias, stride, padding)
    }

    /// The gradients of the convolution's output, its weight and its bias, given the gradient of
    /// the pooled output. The first is `[batch, c_out, h_out, w_out]` in any memory layout (flex
    /// keeps it channel-major, the layout its kernels read): pass it to
    /// [`conv_relu_pool_x_backward`](Self::conv_relu_pool_x_backward) for the input's gradient.
    #[allow(clippy::too_many_arguments)]
    fn conv_relu_pool_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        saved: FloatTensor<Self>,
        output: FloatTensor<Self>,
        indices: IntTensor<Self>,
        output_grad: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let _ = saved; // x, which burn's operations take as it is
        reference::conv_relu_pool_backward::<Self>(
            x,
            weight,
            output,
            indices,
            output_grad,
            stride,
            padding,
        )
    }

    /// The gradient of the block's input, from the convolution's output gradient that
    /// [`conv_relu_pool_backward`](Self::conv_relu_pool_backward) returned.
    fn conv_relu_pool_x_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        conv_grad: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self> {
        reference::conv_relu_pool_x_backward::<Self>(x, weight, conv_grad, stride, padding)
    }
}

#[cfg(feature = "ndarray")]
impl ConvBlockOps for burn::backend::NdArray {}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl ConvBlockOps for burn::backend::Cube {}

/// `max_pool2d(relu(conv(x)), 2, 2)`: the block of the article's CNN, as one operation where the
/// backend has one (flex) and as burn's three elsewhere.
///
/// `conv` is burn's own module, so a model keeps `Conv2d` fields and records. The block's kernels
/// cover what small CNNs use: any kernel size and stride, `Valid` or symmetric explicit padding,
/// dilation 1, one group, a bias. Other convolutions (and inputs whose convolution is smaller than
/// the pooling window) run as `conv.forward`, burn's ReLU and burn's max-pool, with the same
/// result.
pub fn conv2d_relu_max_pool(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let padding = match conv.padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            Some([top, left])
        }
        _ => None,
    };
    let bias = conv.bias.as_ref().map(|bias| bias.val());
    let [batch, channels, height, width] = x.dims();
    let [c_out, c_in, _, _] = conv.weight.dims();
    let covered = padding.filter(|&[pad_h, pad_w]| {
        // The output side along one axis, when it is at least the pooling window.
        let side = |axis: usize, side: usize, pad: usize| {
            reference::output_side(side, conv.kernel_size[axis], conv.stride[axis], pad)
                .filter(|&out| out >= POOL[axis])
        };
        let (h_out, w_out) = (side(0, height, pad_h), side(1, width, pad_w));
        conv.dilation == [1, 1]
            && conv.groups == 1
            // Empty tensors and a mismatched input (burn's error message) go to burn.
            && batch > 0
            && c_out > 0
            && channels == c_in
            // Pooling indices are i32 offsets within a plane.
            && h_out.zip(w_out).is_some_and(|(h, w)| h * w <= i32::MAX as usize)
    });
    match (covered, bias) {
        (Some(padding), Some(bias)) if routed(&x) => {
            let (output, _indices, _saved) = <Dispatch as ConvBlockOps>::conv_relu_pool(
                x.into_dispatch(),
                conv.weight.val().into_dispatch(),
                bias.into_dispatch(),
                conv.stride,
                padding,
                false,
            );
            Tensor::from_dispatch(output)
        }
        _ => max_pool2d(relu(conv.forward(x)), MaxPoolOptions::new(POOL)),
    }
}

/// Whether this build of the block has an arm for `x`'s backend: burn may have been compiled with a
/// backend (through another crate's features) that this crate's features did not name.
fn routed(x: &Tensor<4>) -> bool {
    use burn::backend::DispatchTensorKind;
    fn has_arm(kind: &DispatchTensorKind) -> bool {
        #[allow(unreachable_patterns)]
        match kind {
            DispatchTensorKind::Autodiff(inner) => has_arm(inner),
            #[cfg(feature = "flex")]
            DispatchTensorKind::Flex(_) => true,
            #[cfg(feature = "ndarray")]
            DispatchTensorKind::NdArray(_) => true,
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            DispatchTensorKind::Cube(_) => true,
            _ => false,
        }
    }
    has_arm(&x.clone().into_dispatch().kind)
}
