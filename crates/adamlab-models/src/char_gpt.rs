use adamlab_data::fortunes::{TextBatch, VOCAB};
use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{
    Embedding, EmbeddingConfig, Gelu, Initializer, LayerNorm, LayerNormConfig, Linear,
    LinearConfig,
};
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Device, Int, Tensor};
use burn::train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep};

/// Configuration of [`CharGpt`]. The defaults make 834,400 parameters: 4 layers, 4 heads,
/// d = 128, a context of 128 characters, the 96 characters of the fortunes vocabulary.
#[derive(Config, Debug)]
pub struct CharGptConfig {
    /// Vocabulary size. Default 96 (`adamlab_data::fortunes::VOCAB`).
    #[config(default = 96)]
    pub vocab: usize,
    /// Longest input, in tokens (the learned position embeddings). Default 128.
    #[config(default = 128)]
    pub context: usize,
    /// Width of the residual stream. Default 128.
    #[config(default = 128)]
    pub d_model: usize,
    /// Attention heads per layer (`d_model` must be a multiple). Default 4.
    #[config(default = 4)]
    pub heads: usize,
    /// Transformer blocks. Default 4.
    #[config(default = 4)]
    pub layers: usize,
}

/// A character-level GPT: token and learned position embeddings, `layers` pre-LayerNorm blocks
/// of causal multi-head self-attention and a GELU MLP of width 4·d, a final LayerNorm and a
/// linear head to the vocabulary's logits.
///
/// ```text
/// x = token(ids) + position(0..T)                [b, T, d]
/// for each block:  x = x + attn(norm1(x))        causal, heads × (d / heads)
///                  x = x + mlp(norm2(x))         d → 4d, GELU (erf), 4d → d
/// logits = head(norm(x))                         [b, T, vocab]
/// ```
///
/// Parameter names and layouts are those of `tools/reference/workloads.py`'s `CharGPT`
/// (`token.weight`, `blocks.0.attn.query.weight`, `blocks.0.norm1.weight`, `head.bias`, …):
/// [`crate::pytorch`] reads and writes them. Initialised as GPT-2 is: every linear and embedding
/// weight from N(0, 0.02²), biases 0, LayerNorms 1 and 0.
#[derive(Module, Debug)]
pub struct CharGpt {
    /// `nn.Embedding(vocab, d)`.
    pub token: Embedding,
    /// `nn.Embedding(context, d)`, learned positions.
    pub position: Embedding,
    /// The transformer blocks.
    pub blocks: Vec<Block>,
    /// `nn.LayerNorm(d)` before the head.
    pub norm: LayerNorm,
    /// `nn.Linear(d, vocab)`.
    pub head: Linear,
}

/// One pre-LayerNorm transformer block.
#[derive(Module, Debug)]
pub struct Block {
    /// `nn.LayerNorm(d)` before the attention.
    pub norm1: LayerNorm,
    /// Causal multi-head self-attention.
    pub attn: CausalSelfAttention,
    /// `nn.LayerNorm(d)` before the MLP.
    pub norm2: LayerNorm,
    /// The MLP.
    pub mlp: FeedForward,
}

/// Causal multi-head self-attention with separate query, key, value and output projections.
#[derive(Module, Debug)]
pub struct CausalSelfAttention {
    /// `nn.Linear(d, d)`.
    pub query: Linear,
    /// `nn.Linear(d, d)`.
    pub key: Linear,
    /// `nn.Linear(d, d)`.
    pub value: Linear,
    /// `nn.Linear(d, d)`.
    pub out: Linear,
    /// Number of heads.
    pub heads: usize,
}

/// The block's MLP: `fc(d → 4d)`, GELU, `proj(4d → d)`.
#[derive(Module, Debug)]
pub struct FeedForward {
    /// `nn.Linear(d, 4d)`.
    pub fc: Linear,
    /// `nn.Linear(4d, d)`.
    pub proj: Linear,
    /// `nn.GELU()` (erf, not the tanh approximation).
    pub gelu: Gelu,
}

const INIT_STD: f64 = 0.02;

impl CharGptConfig {
    /// The defaults with the fortunes vocabulary.
    pub fn fortunes() -> Self {
        Self::new().with_vocab(VOCAB)
    }

    /// Builds the model on `device` with GPT-2's initialisation.
    ///
    /// # Panics
    /// If `d_model` is not a multiple of `heads`.
    pub fn init(&self, device: &Device) -> CharGpt {
        assert!(
            self.heads > 0 && self.d_model.is_multiple_of(self.heads),
            "d_model {} is not a multiple of {} heads",
            self.d_model,
            self.heads
        );
        let d = self.d_model;
        let normal = Initializer::Normal {
            mean: 0.0,
            std: INIT_STD,
        };
        let linear = |i: usize, o: usize| {
            let mut layer = LinearConfig::new(i, o)
                .with_initializer(normal.clone())
                .init(device);
            layer.bias = Some(Param::from_tensor(Tensor::zeros([o], device)));
            layer
        };
        let embedding =
            |n: usize| EmbeddingConfig::new(n, d).with_initializer(normal.clone()).init(device);
        let norm = || LayerNormConfig::new(d).init(device);
        CharGpt {
            token: embedding(self.vocab),
            position: embedding(self.context),
            blocks: (0..self.layers)
                .map(|_| Block {
                    norm1: norm(),
                    attn: CausalSelfAttention {
                        query: linear(d, d),
                        key: linear(d, d),
                        value: linear(d, d),
                        out: linear(d, d),
                        heads: self.heads,
                    },
                    norm2: norm(),
                    mlp: FeedForward {
                        fc: linear(d, 4 * d),
                        proj: linear(4 * d, d),
                        gelu: Gelu::new(),
                    },
                })
                .collect(),
            norm: norm(),
            head: linear(d, self.vocab),
        }
    }
}

impl CausalSelfAttention {
    /// `[b, T, d]` → `[b, T, d]`: softmax(q·kᵀ/√(d/heads) + causal mask)·v per head, then `out`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, t, d] = x.dims();
        let h = self.heads;
        let split = |y: Tensor<3>| y.reshape([b, t, h, d / h]).swap_dims(1, 2); // [b, h, T, d/h]
        let q = split(self.query.forward(x.clone()));
        let k = split(self.key.forward(x.clone()));
        let v = split(self.value.forward(x));
        let scale = 1.0 / ((d / h) as f64).sqrt();
        let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale); // [b, h, T, T]
        // True above the diagonal: a position sees itself and the positions before it.
        let future = Tensor::<2, Bool>::tril_mask([t, t], 0, &scores.device())
            .reshape([1, 1, t, t])
            .expand([b, h, t, t]);
        let weights = softmax(scores.mask_fill(future, f32::NEG_INFINITY), 3);
        let y = weights.matmul(v); // [b, h, T, d/h]
        self.out.forward(y.swap_dims(1, 2).reshape([b, t, d]))
    }
}

impl FeedForward {
    /// `[b, T, d]` → `[b, T, d]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.proj.forward(self.gelu.forward(self.fc.forward(x))) // [b, T, 4d] inside
    }
}

impl CharGpt {
    /// The longest input the position embeddings cover.
    pub fn context(&self) -> usize {
        self.position.weight.dims()[0]
    }

    /// `[b, T]` tokens (T at most the context) → `[b, T, vocab]` logits of each next token.
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        let [b, t] = tokens.dims();
        let positions = Tensor::<1, Int>::arange(0..t as i64, &tokens.device())
            .reshape([1, t])
            .expand([b, t]);
        let mut x = self.token.forward(tokens) + self.position.forward(positions); // [b, T, d]
        for block in &self.blocks {
            x = x.clone() + block.attn.forward(block.norm1.forward(x));
            x = x.clone() + block.mlp.forward(block.norm2.forward(x));
        }
        self.head.forward(self.norm.forward(x)) // [b, T, vocab]
    }

    /// The logits of a batch and their mean cross-entropy against its next characters, in nats
    /// per character, as `F.cross_entropy(logits.view(-1, vocab), targets.view(-1))` computes it.
    /// The output's logits and targets are flattened to `[b·T, vocab]` and `[b·T]`.
    pub fn forward_language_model(&self, batch: TextBatch) -> ClassificationOutput {
        let logits = self.forward(batch.inputs); // [b, T, vocab]
        let [b, t, vocab] = logits.dims();
        let logits = logits.reshape([b * t, vocab]);
        let targets = batch.targets.reshape([b * t]);
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), targets.clone()); // [1]
        ClassificationOutput::new(loss, logits, targets)
    }
}

/// One training step for adamlab's loop and burn's `Learner`: forward, cross-entropy of every
/// next character, backward.
impl TrainStep for CharGpt {
    type Input = TextBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: TextBatch) -> TrainOutput<ClassificationOutput> {
        let item = self.forward_language_model(batch);
        TrainOutput::new(self, item.loss.backward(), item)
    }
}

impl InferenceStep for CharGpt {
    type Input = TextBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: TextBatch) -> ClassificationOutput {
        self.forward_language_model(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn the_default_char_gpt_has_834_400_parameters() {
        // token 96·128, position 128·128; per block two LayerNorms 2·256, four projections
        // 4·(128·128 + 128), the MLP 128·512 + 512 + 512·128 + 128; final LayerNorm 256; head
        // 128·96 + 96.
        let block = 2 * 256 + 4 * (128 * 128 + 128) + (128 * 512 + 512) + (512 * 128 + 128);
        let expected = 96 * 128 + 128 * 128 + 4 * block + 256 + (128 * 96 + 96);
        assert_eq!(expected, 834_400);
        assert_eq!(CharGptConfig::fortunes().init(&Device::flex()).num_params(), expected);
    }

    #[test]
    fn a_position_does_not_see_the_tokens_after_it() {
        let device = Device::flex();
        let model = CharGptConfig::new()
            .with_layers(2)
            .with_d_model(32)
            .with_context(8)
            .init(&device);
        let tokens = |last: i64| {
            Tensor::<2, Int>::from_data(TensorData::new(vec![5, 9, 2, last], [1, 4]), &device)
        };
        let a: Vec<f32> = model.forward(tokens(7)).into_data().try_to_vec().unwrap();
        let b: Vec<f32> = model.forward(tokens(60)).into_data().try_to_vec().unwrap();
        let per_position = 96;
        assert_eq!(a[..3 * per_position], b[..3 * per_position]);
        assert_ne!(a[3 * per_position..], b[3 * per_position..]);
    }
}
