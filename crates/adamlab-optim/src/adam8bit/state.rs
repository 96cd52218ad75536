//! The state an 8-bit optimizer keeps for one parameter: its step count and `S` moments (8-bit
//! Adam two, 8-bit Lion one), each f32 or 8-bit blockwise, written once for both: creation,
//! checkpoints, moving between devices and what the fused steps take apart.

use burn::optim::{RecordState, StateSink, StateSource};
use burn::tensor::{Device, Tensor};

use super::layout::Codes;
use super::quantize::BLOCK;

/// The state of one parameter, named as bitsandbytes' `optimizer.state[p]` names it: `step`, then
/// `state1`, `state2`, … and, for 8-bit moments, `absmax1`, `absmax2`, … in checkpoints.
#[derive(Clone)]
pub struct State8bit<const S: usize, const D: usize> {
    /// Steps taken, t.
    pub step: usize,
    /// The moments, in bitsandbytes' order (`state1` first).
    pub moments: Moments<S, D>,
}

/// A parameter's `S` moments: f32, or 8-bit blockwise.
#[derive(Clone)]
pub enum Moments<const S: usize, const D: usize> {
    /// f32 moments, as large as θ, for a parameter below `min_8bit_size` elements.
    Full([Tensor<D>; S]),
    /// 8-bit moments: one code per element ([`Codes`]: u8 on Flex and NdArray, packed four to a
    /// u32 word on wgpu) and one f32 absmax per block of [`BLOCK`] elements, so a parameter of n
    /// elements keeps S·n bytes of codes and 4·S·⌈n/256⌉ bytes of absmax.
    Blockwise {
        /// Each moment's codes: the first moment's of the signed map, the second's (8-bit Adam's
        /// v) of the unsigned one.
        codes: [Codes<D>; S],
        /// Each moment's absmax, one per block.
        absmax: [Tensor<1>; S],
    },
}

impl<const S: usize, const D: usize> State8bit<S, D> {
    /// The state of a parameter like `theta` before its first step, as bitsandbytes starts:
    /// codes 0 and absmax 0 (which dequantize to 0) for a parameter of at least `min_8bit_size`
    /// elements, f32 zeros for a smaller or empty one (an empty parameter has no block).
    pub(crate) fn initial(theta: &Tensor<D>, min_8bit_size: usize) -> Self {
        let n = theta.shape().num_elements();
        let device = theta.device();
        let moments = if n < min_8bit_size || n == 0 {
            Moments::Full(std::array::from_fn(|_| theta.zeros_like()))
        } else {
            Moments::Blockwise {
                codes: std::array::from_fn(|_| Codes::zeros(theta.shape(), &device)),
                absmax: std::array::from_fn(|_| {
                    Tensor::zeros([n.div_ceil(BLOCK)], (&device, theta.dtype()))
                }),
            }
        };
        Self { step: 0, moments }
    }

    /// This state on `device`, its codes in the layout `device` keeps ([`layout`](super::layout)).
    pub(crate) fn moved(self, device: &Device) -> Self {
        let moments = match self.moments {
            Moments::Full(full) => Moments::Full(full.map(|m| m.to_device(device))),
            Moments::Blockwise { codes, absmax } => Moments::Blockwise {
                codes: codes.map(|c| c.to_device(device)),
                absmax: absmax.map(|a| a.to_device(device)),
            },
        };
        Self {
            step: self.step,
            moments,
        }
    }
}

/// Written by hand rather than derived: the codes are saved as one u8 per element in the
/// parameter's shape whatever the device's [`layout`](super::layout) ([`Codes::to_data`]), and
/// loaded into the layout of the device they load onto, so a state saved on one backend resumes on
/// another bit for bit. Leaves are bitsandbytes' names: `step`, `state1`, `state2`, … and, for
/// 8-bit moments, `absmax1`, `absmax2`, ….
impl<const S: usize, const D: usize> RecordState for State8bit<S, D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        out.push_scalar(prefix, "step", burn_pack::Scalar::from(self.step));
        match &self.moments {
            Moments::Full(full) => {
                for (i, m) in full.iter().enumerate() {
                    out.push_tensor(prefix, &format!("state{}", i + 1), m.clone().into_data());
                }
            }
            Moments::Blockwise { codes, absmax } => {
                for (i, c) in codes.iter().enumerate() {
                    out.push_tensor(prefix, &format!("state{}", i + 1), c.to_data());
                }
                for (i, a) in absmax.iter().enumerate() {
                    out.push_tensor(prefix, &format!("absmax{}", i + 1), a.clone().into_data());
                }
            }
        }
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        let step = usize::try_from(src.take_scalar(prefix, "step")?).ok()?;
        let states = (1..=S)
            .map(|i| src.take_tensor(prefix, &format!("state{i}")))
            .collect::<Option<Vec<_>>>()?;
        let absmax: Vec<_> = (1..=S)
            .map(|i| src.take_tensor(prefix, &format!("absmax{i}")))
            .collect();
        let moments = if absmax.iter().all(Option::is_some) {
            let mut states = states.into_iter();
            let mut absmax = absmax.into_iter().flatten();
            Moments::Blockwise {
                codes: std::array::from_fn(|_| Codes::from_data(states.next().expect("S"), device)),
                absmax: std::array::from_fn(|_| {
                    Tensor::from_data(absmax.next().expect("S"), device)
                }),
            }
        } else if absmax.iter().all(Option::is_none) {
            let mut states = states.into_iter();
            Moments::Full(std::array::from_fn(|_| {
                Tensor::from_data(states.next().expect("S"), device)
            }))
        } else {
            return None;
        };
        Some(Self { step, moments })
    }
}
