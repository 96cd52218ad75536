//! burn layers with adamlab's own CPU kernels, for any burn model.
//!
//! [`conv2d_relu_max_pool`] is the block of most small CNNs (the article's among them):
//! `conv2d → ReLU → max_pool2d(2, 2)`, run from burn's own [`Conv2d`](burn::nn::conv::Conv2d)
//! module, so a model keeps burn's configuration and record and its weights load either way. On
//! flex it is one operation with its own forward and backward kernels (im2col + one gemm per pass,
//! ReLU and pooling fused, the 3/4 of the convolution's output gradient that pooling zeroes never
//! read); on the other backends, and for the options the kernels do not cover, it is burn's three
//! operations. Both are tested equal to burn's.

// burn deprecates ndarray in favour of flex; adamlab ships both on purpose.
#![cfg_attr(feature = "ndarray", allow(deprecated))]

pub mod conv_block;

pub use conv_block::{ConvBlockOps, conv2d_relu_max_pool};
