//! How the 8-bit codes of a parameter are held on its device, and in a checkpoint.
//!
//! On Flex and NdArray the codes are a u8 tensor of the parameter's shape. On a CubeCL device
//! (wgpu), and on any other device that does not store u8, they are packed four to a u32 word:
//! WGSL has no 8-bit type, and a default-int tensor would hold each code in 4 bytes (8 bytes of
//! state per parameter, no saving over f32 Adam). Element `4w + j` (row-major) is byte `j` of word
//! `w`, bits `8j..8j + 8`; the bytes past the last element of a parameter whose length is not a
//! multiple of 4 are 0. A parameter of n elements then keeps ⌈n/4⌉ words, n bytes, per moment.
//!
//! A checkpoint holds one u8 per element in the parameter's shape on every backend (the layout
//! bitsandbytes' `state1`/`state2` have), so a state saved on wgpu loads on Flex and back, bit
//! for bit: [`Codes::to_data`] unpacks, [`Codes::from_data`] packs, on the host.

use burn::tensor::{DType, Device, Int, Shape, Tensor, TensorData};

/// The codes of one moment of one parameter, in the layout of its device.
#[derive(Clone)]
pub enum Codes<const D: usize> {
    /// One u8 code per element, of the parameter's shape.
    Bytes(Tensor<D, Int>),
    /// Four codes per u32 word (see the module's documentation), of a parameter of `shape`.
    Packed {
        /// The ⌈n/4⌉ words, u32.
        words: Tensor<1, Int>,
        /// The parameter's shape.
        shape: Shape,
    },
}

/// Whether codes on `device` are packed four to a u32 word: on a CubeCL device (whose fused
/// kernel reads that layout) and wherever u8 is not stored.
pub fn packs(device: &Device) -> bool {
    #[cfg(cube_kernels)]
    if matches!(device.as_dispatch(), burn::backend::DispatchDevice::Cube(_)) {
        return true;
    }
    !device.supports_dtype(DType::U8)
}

/// The dtype of packed words.
const WORD: DType = DType::U32;

impl<const D: usize> Codes<D> {
    /// Code 0 for every element of a parameter of `shape` on `device`.
    pub fn zeros(shape: Shape, device: &Device) -> Self {
        if packs(device) {
            let words = shape.num_elements().div_ceil(4);
            Self::Packed {
                words: Tensor::zeros([words], (device, WORD)),
                shape,
            }
        } else {
            Self::Bytes(Tensor::zeros(shape, (device, DType::U8)))
        }
    }

    /// The parameter's shape.
    pub fn shape(&self) -> Shape {
        match self {
            Self::Bytes(codes) => codes.shape(),
            Self::Packed { shape, .. } => shape.clone(),
        }
    }

    /// The device the codes are on.
    pub fn device(&self) -> Device {
        match self {
            Self::Bytes(codes) => codes.device(),
            Self::Packed { words, .. } => words.device(),
        }
    }

    /// The bytes of device memory the codes occupy: n for u8 codes, 4·⌈n/4⌉ packed.
    pub fn bytes(&self) -> usize {
        let tensor_bytes = |dtype: DType, shape: Shape| dtype.size() * shape.num_elements();
        match self {
            Self::Bytes(codes) => tensor_bytes(codes.dtype(), codes.shape()),
            Self::Packed { words, .. } => tensor_bytes(words.dtype(), words.shape()),
        }
    }

    /// The codes as one u8 per element, in the parameter's shape (the checkpoint's layout).
    pub fn to_data(&self) -> TensorData {
        match self {
            Self::Bytes(codes) => codes.to_data().convert::<u8>(),
            Self::Packed { words, shape } => {
                let words = words.to_data();
                let bytes: Vec<u8> = words
                    .iter::<u32>()
                    .flat_map(u32::to_le_bytes)
                    .take(shape.num_elements())
                    .collect();
                TensorData::new(bytes, shape.clone())
            }
        }
    }

    /// Codes of one per element in `data`'s shape (u8, or the int dtype of an older checkpoint),
    /// in `device`'s layout.
    pub fn from_data(data: TensorData, device: &Device) -> Self {
        if packs(device) {
            let shape = data.shape().clone();
            let bytes: Vec<u8> = data.iter::<u8>().collect();
            let words: Vec<u32> = bytes
                .chunks(4)
                .map(|chunk| {
                    let mut word = [0u8; 4];
                    word[..chunk.len()].copy_from_slice(chunk);
                    u32::from_le_bytes(word)
                })
                .collect();
            let len = words.len();
            Self::Packed {
                words: Tensor::from_data(TensorData::new(words, [len]), (device, WORD)),
                shape: Shape::from(shape),
            }
        } else {
            Self::Bytes(Tensor::from_data(data.convert::<u8>(), (device, DType::U8)))
        }
    }

    /// The codes on `device`, in its layout (converted exactly, through the host, where the two
    /// devices' layouts differ).
    pub fn to_device(self, device: &Device) -> Self {
        match (self, packs(device)) {
            (Self::Bytes(codes), false) => Self::Bytes(codes.to_device(device).cast(DType::U8)),
            (Self::Packed { words, shape }, true) => Self::Packed {
                words: words.to_device(device),
                shape,
            },
            (codes, _) => Self::from_data(codes.to_data(), device),
        }
    }

    /// The codes of the n elements, flat, in `int` (the device's default int), for the tensor-op
    /// reference steps: a cast of u8 codes, or packed words unpacked with shifts and masks.
    pub(crate) fn into_flat(self, int: DType) -> Tensor<1, Int> {
        match self {
            Self::Bytes(codes) => {
                let n = codes.shape().num_elements();
                codes.cast(int).reshape([n])
            }
            Self::Packed { words, shape } => {
                let n = shape.num_elements();
                let w = words.shape().num_elements();
                let bytes: Vec<Tensor<1, Int>> = (0..4)
                    .map(|j| {
                        words
                            .clone()
                            .bitwise_right_shift_scalar(8 * j as u32)
                            .bitwise_and_scalar(0xff)
                    })
                    .collect();
                // [w, 4]: word by word, byte 0 first.
                Tensor::<1, Int>::stack::<2>(bytes, 1)
                    .reshape([4 * w])
                    .slice(0..n)
                    .cast(int)
            }
        }
    }

    /// Codes from `flat`, the n codes (0 to 255) of a parameter of `shape` in any int dtype,
    /// in the layout of the device they are on: cast to u8, or packed with shifts and ors.
    pub(crate) fn from_flat(flat: Tensor<1, Int>, shape: Shape) -> Self {
        let device = flat.device();
        if !packs(&device) {
            return Self::Bytes(flat.reshape(shape).cast(DType::U8));
        }
        let n = shape.num_elements();
        let w = n.div_ceil(4);
        let flat = flat.cast(WORD);
        let padded = match 4 * w - n {
            0 => flat,
            pad => Tensor::cat(vec![flat, Tensor::zeros([pad], (&device, WORD))], 0),
        };
        let rows = padded.reshape([w, 4]);
        let byte = |j: usize| {
            rows.clone()
                .slice([0..w, j..j + 1])
                .reshape([w])
                .bitwise_left_shift_scalar(8 * j as u32)
        };
        let words = byte(0)
            .bitwise_or(byte(1))
            .bitwise_or(byte(2))
            .bitwise_or(byte(3));
        Self::Packed { words, shape }
    }
}
