//! flex's kernels for the block, on f32 (other dtypes take the reference).
//!
//! The convolution is im2col and one gemm per pass (flex's own `matmul`, which runs gemm on
//! rayon), with the convolution's output and its gradient kept channel-major, `[c_out, batch ·
//! h_out · w_out]`: that is the layout the gemms produce and read, and the fused passes (bias, ReLU
//! and pooling forward; pooling, ReLU and bias backward) read or write the batch-major tensors
//! around them in the same loop, so no transposed copy is made. Every sum runs in a fixed order:
//! the results do not depend on the number of threads.
//!
//! | pass | gemm `[m × k] · [k × n]` |
//! |---|---|
//! | forward | `weight [c_out × c_in·k_h·k_w] · columns [c_in·k_h·k_w × batch·h_out·w_out]` |
//! | weight gradient | `conv_grad [c_out × batch·h_out·w_out] · columnsᵀ` |
//! | input gradient | `weightᵀ · conv_grad`, then col2im |

use burn::backend::Flex;
use burn::backend::flex::ops::matmul::matmul;
use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::tensor::{Bytes, DType, Shape};
use rayon::prelude::*;
use std::ops::Range;

use super::{ConvBlockOps, POOL, reference};

impl ConvBlockOps for Flex {
    fn conv_relu_pool(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        for_backward: bool,
    ) -> (FloatTensor<Self>, IntTensor<Self>, FloatTensor<Self>) {
        if !all_f32(&[&x, &weight, &bias]) {
            return reference::conv_relu_pool::<Self>(x, weight, bias, stride, padding);
        }
        let geometry = Geometry::new(&x, &weight, stride, padding);
        let (weight, bias, x) = (
            geometry.weight_matrix(weight),
            contiguous(bias),
            contiguous(x),
        );
        if for_backward {
            // The whole batch's im2col matrix, which the weight's gradient reads again.
            let columns = geometry.im2col(values(&x), 0..geometry.batch);
            let (output, indices) =
                geometry.forward(&weight, Columns::Whole(&columns), values(&bias));
            (output, indices, columns)
        } else {
            // Each chunk's own matrix: memory bounded by the chunk, not the batch.
            let (output, indices) =
                geometry.forward(&weight, Columns::PerChunk(values(&x)), values(&bias));
            (output, indices, x)
        }
    }

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
        if !all_f32(&[&x, &weight, &output, &output_grad]) || indices.dtype() != DType::I32 {
            return reference::conv_relu_pool_backward::<Self>(
                x,
                weight,
                output,
                indices,
                output_grad,
                stride,
                padding,
            );
        }
        let geometry = Geometry::new(&x, &weight, stride, padding);
        let (conv_grad, bias_grad) = geometry.unpool(
            values(&contiguous(output)),
            contiguous(indices).as_slice::<i32>().expect("contiguous"),
            values(&contiguous(output_grad)),
        );
        // The forward's im2col matrix, or a new one if the forward took burn's path.
        let columns = if saved.layout().shape().as_slice() == [geometry.rows(), geometry.columns()]
            && saved.dtype() == DType::F32
        {
            saved
        } else {
            geometry.im2col(values(&contiguous(x)), 0..geometry.batch)
        };
        // [c_out, batch·h_out·w_out] · [batch·h_out·w_out, c_in·k_h·k_w]
        let weight_grad = matmul(conv_grad.clone(), columns.transpose(0, 1));
        let weight_grad = weight_grad.reshape(weight.layout().shape().clone());
        (geometry.batch_major(conv_grad), weight_grad, bias_grad)
    }

    fn conv_relu_pool_x_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        conv_grad: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self> {
        if !all_f32(&[&x, &weight, &conv_grad]) {
            return reference::conv_relu_pool_x_backward::<Self>(
                x, weight, conv_grad, stride, padding,
            );
        }
        let geometry = Geometry::new(&x, &weight, stride, padding);
        let conv_grad = geometry.channel_major(conv_grad);
        geometry.x_grad(&geometry.weight_matrix(weight), &conv_grad)
    }
}

/// Where the forward gemm takes its im2col columns from.
#[derive(Clone, Copy)]
enum Columns<'a> {
    /// The whole batch's matrix, of which each chunk is a slice.
    Whole(&'a FlexTensor),
    /// The input `x`, from which each chunk builds its own.
    PerChunk(&'a [f32]),
}

/// The sizes of one block.
struct Geometry {
    batch: usize,
    c_in: usize,
    height: usize,
    width: usize,
    c_out: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    h_out: usize,
    w_out: usize,
}

impl Geometry {
    fn new(x: &FlexTensor, weight: &FlexTensor, stride: [usize; 2], padding: [usize; 2]) -> Self {
        let x_shape = x.layout().shape();
        let weight_shape = weight.layout().shape();
        let conv = reference::conv_output_shape(x_shape, weight_shape, stride, padding);
        Self {
            batch: x_shape[0],
            c_in: x_shape[1],
            height: x_shape[2],
            width: x_shape[3],
            c_out: weight_shape[0],
            kernel: [weight_shape[2], weight_shape[3]],
            stride,
            padding,
            h_out: conv[2],
            w_out: conv[3],
        }
    }

    /// Elements of one output plane, `h_out · w_out`.
    fn plane(&self) -> usize {
        self.h_out * self.w_out
    }

    /// Columns of the gemms: one per output position of every image.
    fn columns(&self) -> usize {
        self.batch * self.plane()
    }

    /// Rows of the im2col matrix: one per input channel and kernel position.
    fn rows(&self) -> usize {
        self.c_in * self.kernel[0] * self.kernel[1]
    }

    /// The pooled plane's sides.
    fn pooled(&self) -> [usize; 2] {
        [self.h_out / POOL[0], self.w_out / POOL[1]]
    }

    /// The weight as the `[c_out, c_in·k_h·k_w]` matrix of the forward gemm.
    fn weight_matrix(&self, weight: FlexTensor) -> FlexTensor {
        contiguous(weight).reshape(Shape::new([self.c_out, self.rows()]))
    }

    /// The output positions `[first, last)` along one axis whose input coordinate
    /// `o·stride + k − padding`, for kernel position `k`, falls inside `[0, side)`.
    fn inside(&self, axis: usize, k: usize, outputs: usize, side: usize) -> (usize, usize) {
        let [stride, pad] = [self.stride[axis], self.padding[axis]];
        let first = pad.saturating_sub(k).div_ceil(stride);
        let last = (side + pad).saturating_sub(k).div_ceil(stride).min(outputs);
        (first, last.max(first))
    }

    /// `[c_in·k_h·k_w, images·h_out·w_out]`: row `(c, k_y, k_x)` holds, for each of `images` and
    /// each output position, the input element that kernel position multiplies (0 in the
    /// padding).
    fn im2col(&self, x: &[f32], images: Range<usize>) -> FlexTensor {
        let columns = images.len() * self.plane();
        let [k_h, k_w] = self.kernel;
        let mut matrix = vec![0f32; self.rows() * columns];
        matrix
            .par_chunks_mut(columns)
            .enumerate()
            .for_each(|(row, out)| {
                let (c, k_y, k_x) = (row / (k_h * k_w), (row / k_w) % k_h, row % k_w);
                let (y_first, y_last) = self.inside(0, k_y, self.h_out, self.height);
                let (x_first, x_last) = self.inside(1, k_x, self.w_out, self.width);
                for (column, n) in images.clone().enumerate() {
                    let image = &x[(n * self.c_in + c) * self.height * self.width..];
                    let out = &mut out[column * self.plane()..];
                    for o_y in y_first..y_last {
                        let i_y = o_y * self.stride[0] + k_y - self.padding[0];
                        let source = &image[i_y * self.width..][..self.width];
                        let target = &mut out[o_y * self.w_out..][..self.w_out];
                        if self.stride[1] == 1 {
                            let shift = x_first + k_x - self.padding[1];
                            target[x_first..x_last]
                                .copy_from_slice(&source[shift..shift + x_last - x_first]);
                        } else {
                            for o_x in x_first..x_last {
                                target[o_x] = source[o_x * self.stride[1] + k_x - self.padding[1]];
                            }
                        }
                    }
                }
            });
        f32_tensor(matrix, [self.rows(), columns])
    }

    /// Images per chunk of the forward and input-gradient passes: enough that a chunk's gemm
    /// output (`[c_out or c_in·k_h·k_w, images · h_out · w_out]`) is about 1 MiB, so that it is
    /// consumed from the cache by the pass that follows it instead of being a whole-batch matrix
    /// (allocated, zeroed and paged in) that pass reads back from memory.
    fn images_per_chunk(&self) -> usize {
        let floats_per_image = self.c_out.max(self.rows()) * self.plane();
        ((1 << 18) / floats_per_image.max(1)).clamp(1, self.batch.max(1))
    }

    /// The block's output and pooling indices: per chunk of images, the forward gemm
    /// `weight · columns` then bias, ReLU and the 2×2 maximum in one pass over its result.
    fn forward(
        &self,
        weight: &FlexTensor,
        columns: Columns,
        bias: &[f32],
    ) -> (FlexTensor, FlexTensor) {
        let [p_h, p_w] = self.pooled();
        let per_image = self.c_out * p_h * p_w;
        let chunk = self.images_per_chunk();
        let mut output = vec![0f32; self.batch * per_image];
        let mut indices = vec![0i32; self.batch * per_image];
        output
            .par_chunks_mut(chunk * per_image)
            .zip(indices.par_chunks_mut(chunk * per_image))
            .enumerate()
            .for_each(|(index, (output, indices))| {
                let images = output.len() / per_image;
                let first = index * chunk;
                let span = match columns {
                    Columns::Whole(columns) => {
                        columns.narrow(1, first * self.plane(), images * self.plane())
                    }
                    Columns::PerChunk(x) => self.im2col(x, first..first + images),
                };
                let conv = matmul(weight.clone(), span); // [c_out, images · h_out · w_out]
                self.bias_relu_pool(values(&conv), images, bias, output, indices);
            });
        let shape = [self.batch, self.c_out, p_h, p_w];
        let indices = FlexTensor::new(
            Bytes::from_elems(indices),
            Layout::contiguous(Shape::new(shape)),
            DType::I32,
        );
        (f32_tensor(output, shape), indices)
    }

    /// Bias, ReLU and the 2×2 maximum over the convolution of `images` images (channel-major,
    /// without bias), with torch's choice among equal values (the first in the window's
    /// row-major order; a NaN wins).
    fn bias_relu_pool(
        &self,
        conv: &[f32],
        images: usize,
        bias: &[f32],
        output: &mut [f32],
        indices: &mut [i32],
    ) {
        let [p_h, p_w] = self.pooled();
        let (plane, w_out) = (self.plane(), self.w_out);
        // Offsets of a window's four elements from its corner, in torch's order.
        let offsets = [0, 1, w_out as i32, w_out as i32 + 1];
        for n in 0..images {
            for (channel, &bias) in bias.iter().enumerate() {
                let conv = &conv[(channel * images + n) * plane..][..plane];
                let pooled = (n * self.c_out + channel) * p_h * p_w;
                let output = output[pooled..][..p_h * p_w].chunks_exact_mut(p_w);
                let indices = indices[pooled..][..p_h * p_w].chunks_exact_mut(p_w);
                // Rows in pairs (an odd last row is floored away), and in each pair the windows.
                let rows = conv.chunks_exact(POOL[0] * w_out).zip(output.zip(indices));
                for (p_y, (rows, (output, indices))) in rows.enumerate() {
                    let (top, bottom) = rows.split_at(w_out);
                    let windows = top.chunks_exact(POOL[1]).zip(bottom.chunks_exact(POOL[1]));
                    let targets = output.iter_mut().zip(indices.iter_mut());
                    for (p_x, ((top, bottom), (output, index))) in windows.zip(targets).enumerate()
                    {
                        let relu = |x: f32| {
                            let sum = x + bias;
                            if sum <= 0.0 { 0.0 } else { sum }
                        };
                        let values = [relu(top[0]), relu(top[1]), relu(bottom[0]), relu(bottom[1])];
                        // The first maximum: a strict `>` keeps the earlier of equal values. A
                        // NaN (rare: the branch is predicted) wins over everything, the last one.
                        let (mut best, mut at) = (values[0], offsets[0]);
                        for (&value, &offset) in values[1..].iter().zip(&offsets[1..]) {
                            if value > best {
                                (best, at) = (value, offset);
                            }
                        }
                        if values.iter().any(|value| value.is_nan()) {
                            let last = values.iter().rposition(|value| value.is_nan()).unwrap_or(0);
                            (best, at) = (values[last], offsets[last]);
                        }
                        *output = best;
                        *index = (POOL[0] * p_y * w_out + POOL[1] * p_x) as i32 + at;
                    }
                }
            }
        }
    }

    /// The convolution's output gradient (channel-major) and the bias's, from the pooled output's
    /// gradient: each passes to the element its window's maximum came from, where that maximum
    /// is not ≤ 0 (ReLU's gradient); the bias's is their sum per channel, in f64.
    fn unpool(&self, output: &[f32], indices: &[i32], grad: &[f32]) -> (FlexTensor, FlexTensor) {
        let [p_h, p_w] = self.pooled();
        let (plane, columns, pooled) = (self.plane(), self.columns(), p_h * p_w);
        let mut conv_grad = vec![0f32; self.c_out * columns];
        let mut bias_grad = vec![0f32; self.c_out];
        conv_grad
            .par_chunks_mut(columns)
            .zip(bias_grad.par_iter_mut())
            .enumerate()
            .for_each(|(channel, (row, bias_grad))| {
                let mut sum = 0f64;
                for n in 0..self.batch {
                    // This image's and channel's pooled plane, in the three batch-major tensors.
                    let start = (n * self.c_out + channel) * pooled;
                    let span = start..start + pooled;
                    let row = &mut row[n * plane..][..plane];
                    let pooled_plane = output[span.clone()].iter().zip(&indices[span.clone()]);
                    for ((&value, &index), &grad) in pooled_plane.zip(&grad[span]) {
                        if value > 0.0 || value.is_nan() {
                            row[index as usize] = grad;
                            sum += f64::from(grad);
                        }
                    }
                }
                *bias_grad = sum as f32;
            });
        (
            f32_tensor(conv_grad, [self.c_out, columns]),
            f32_tensor(bias_grad, [self.c_out]),
        )
    }

    /// `[c_out, batch·h_out·w_out]` seen as the `[batch, c_out, h_out, w_out]` tensor it holds.
    fn batch_major(&self, conv_grad: FlexTensor) -> FlexTensor {
        conv_grad
            .reshape(Shape::new([self.c_out, self.batch, self.h_out, self.w_out]))
            .permute(&[1, 0, 2, 3])
    }

    /// The inverse of [`batch_major`](Self::batch_major): free for the tensors it made, a copy
    /// for any other.
    fn channel_major(&self, conv_grad: FlexTensor) -> FlexTensor {
        contiguous(conv_grad.permute(&[1, 0, 2, 3]))
            .reshape(Shape::new([self.c_out, self.columns()]))
    }

    /// `[batch, c_in, height, width]`, the input's gradient: per chunk of images, the gemm
    /// `weightᵀ · conv_grad` gives the im2col matrix's gradient, which col2im folds back.
    fn x_grad(&self, weight: &FlexTensor, conv_grad: &FlexTensor) -> FlexTensor {
        let per_image = self.c_in * self.height * self.width;
        let chunk = self.images_per_chunk();
        let mut x_grad = vec![0f32; self.batch * per_image];
        x_grad
            .par_chunks_mut(chunk * per_image)
            .enumerate()
            .for_each(|(index, x_grad)| {
                let images = x_grad.len() / per_image;
                let span = conv_grad.narrow(1, index * chunk * self.plane(), images * self.plane());
                // [c_in·k_h·k_w, c_out] · [c_out, images · h_out · w_out]
                let columns_grad = matmul(weight.clone().transpose(0, 1), span);
                self.col2im(values(&columns_grad), images, x_grad);
            });
        f32_tensor(x_grad, [self.batch, self.c_in, self.height, self.width])
    }

    /// Adds to `x_grad` (`images` images) the im2col matrix's gradient of those images
    /// (`[c_in·k_h·k_w, images · h_out · w_out]`): each element sums the entries of every kernel
    /// position that read it, kernel positions in order.
    fn col2im(&self, columns_grad: &[f32], images: usize, x_grad: &mut [f32]) {
        let (columns, plane) = (images * self.plane(), self.plane());
        let [k_h, k_w] = self.kernel;
        for (image_channel, target) in x_grad.chunks_mut(self.height * self.width).enumerate() {
            let (n, c) = (image_channel / self.c_in, image_channel % self.c_in);
            for k_y in 0..k_h {
                let (y_first, y_last) = self.inside(0, k_y, self.h_out, self.height);
                for k_x in 0..k_w {
                    let (x_first, x_last) = self.inside(1, k_x, self.w_out, self.width);
                    let row = (c * k_h + k_y) * k_w + k_x;
                    let source = &columns_grad[row * columns + n * plane..][..plane];
                    for o_y in y_first..y_last {
                        let i_y = o_y * self.stride[0] + k_y - self.padding[0];
                        let target = &mut target[i_y * self.width..][..self.width];
                        let source = &source[o_y * self.w_out..][x_first..x_last];
                        if self.stride[1] == 1 {
                            let shift = x_first + k_x - self.padding[1];
                            let target = &mut target[shift..shift + source.len()];
                            for (target, source) in target.iter_mut().zip(source) {
                                *target += source;
                            }
                        } else {
                            for (o_x, source) in (x_first..).zip(source) {
                                target[o_x * self.stride[1] + k_x - self.padding[1]] += source;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Whether every tensor is f32 (the kernels' dtype).
fn all_f32(tensors: &[&FlexTensor]) -> bool {
    tensors.iter().all(|tensor| tensor.dtype() == DType::F32)
}

/// `tensor`, or a row-major copy of it when its elements are not one contiguous run.
fn contiguous(tensor: FlexTensor) -> FlexTensor {
    if tensor.layout().contiguous_offsets().is_some() && tensor.is_contiguous() {
        tensor
    } else {
        tensor.to_contiguous()
    }
}

/// The f32 elements of a contiguous tensor.
fn values(tensor: &FlexTensor) -> &[f32] {
    tensor.as_slice::<f32>().expect("a contiguous f32 tensor")
}

/// A contiguous f32 tensor of `shape` owning `values`.
fn f32_tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(Shape::new(shape)),
        DType::F32,
    )
}
