//! The block under autodiff: one backward node for convolution, ReLU and pooling.

use burn::backend::AutodiffBackend;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::tensor::{FloatTensor, IntTensor};

use super::ConvBlockOps;

impl<B: ConvBlockOps, C: CheckpointStrategy> ConvBlockOps for Autodiff<B, C> {
    fn conv_relu_pool(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        _for_backward: bool,
    ) -> (FloatTensor<Self>, IntTensor<Self>, FloatTensor<Self>) {
        #[derive(Debug)]
        struct ConvReluPool;

        impl<B: ConvBlockOps> Backward<B, 3> for ConvReluPool {
            /// (x and weight as checkpoints, what the backend saved, the pooled output), the
            /// pooling indices, stride, padding.
            type State = (
                (NodeId, NodeId, FloatTensor<B>, FloatTensor<B>),
                IntTensor<B>,
                [usize; 2],
                [usize; 2],
            );

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_weight, node_bias] = ops.parents;
                let output_grad = grads.consume::<B>(&ops.node);
                let ((x_state, weight_state, saved, output), indices, stride, padding) = ops.state;
                let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
                let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight_state);

                let (conv_grad, weight_grad, bias_grad) = B::conv_relu_pool_backward(
                    x.clone(),
                    weight.clone(),
                    saved,
                    output,
                    indices,
                    output_grad,
                    stride,
                    padding,
                );
                if let Some(node) = node_x {
                    let x_grad =
                        B::conv_relu_pool_x_backward(x, weight, conv_grad, stride, padding);
                    grads.register::<B>(node.id, x_grad);
                }
                if let Some(node) = node_weight {
                    grads.register::<B>(node.id, weight_grad);
                }
                if let Some(node) = node_bias {
                    grads.register::<B>(node.id, bias_grad);
                }
            }
        }

        let forward =
            |x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, tracked| {
                let inner = |tensor: FloatTensor<Self>| tensor.into_primitive();
                B::conv_relu_pool(
                    inner(x),
                    inner(weight),
                    inner(bias),
                    stride,
                    padding,
                    tracked,
                )
            };
        match ConvReluPool
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let (x_state, weight_state) = (prep.checkpoint(&x), prep.checkpoint(&weight));
                let (output, indices, saved) = forward(x, weight, bias, true);
                let state = (x_state, weight_state, saved.clone(), output.clone());
                let state = (state, indices.clone(), stride, padding);
                (prep.finish(state, output), indices, Self::from_inner(saved))
            }
            OpsKind::UnTracked(prep) => {
                let (output, indices, saved) = forward(x, weight, bias, false);
                (prep.finish(output), indices, Self::from_inner(saved))
            }
        }
    }
    // The two backward operations keep the trait's default bodies: burn's operations, which
    // Autodiff differentiates if anyone asks.
}
