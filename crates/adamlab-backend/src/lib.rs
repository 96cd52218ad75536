//! The burn devices adamlab runs on, chosen at run time among the backends compiled in.
//!
//! Each backend is a cargo feature: `ndarray` and `flex` (CPU, both with burn's `simd` and
//! `rayon`), `wgpu` (GPU, through Vulkan, Metal or DirectX) and `cuda` (NVIDIA GPUs through
//! burn-cuda; the CUDA driver is loaded at run time, so a `cuda` build compiles and runs on a
//! machine without CUDA and refuses the backend there). [`device`] turns a
//! [`BackendKind`] into a burn [`Device`], or into a [`BackendError`] that says which feature or
//! driver is missing; [`default_backend`] picks the fastest one available.

use burn::tensor::Device;
use std::fmt;

/// A burn backend adamlab can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum BackendKind {
    /// burn-ndarray on the CPU (deprecated by burn in favour of flex; kept for comparison).
    Ndarray,
    /// burn-flex on the CPU.
    Flex,
    /// burn-wgpu on a GPU (Vulkan, Metal or DirectX 12).
    Wgpu,
    /// burn-cuda on an NVIDIA GPU (the driver's `libcuda` loaded at run time).
    Cuda,
}

impl BackendKind {
    /// Every backend adamlab knows, compiled in or not.
    pub const ALL: [BackendKind; 4] = [Self::Ndarray, Self::Flex, Self::Wgpu, Self::Cuda];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ndarray => "ndarray",
            Self::Flex => "flex",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        }
    }

    /// The cargo feature that compiles this backend in.
    pub fn feature(self) -> &'static str {
        self.name()
    }

    /// Whether this build has the backend.
    pub fn is_compiled(self) -> bool {
        match self {
            Self::Ndarray => cfg!(feature = "ndarray"),
            Self::Flex => cfg!(feature = "flex"),
            Self::Wgpu => cfg!(feature = "wgpu"),
            Self::Cuda => cfg!(feature = "cuda"),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a backend cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The backend's cargo feature was off when this binary was built.
    #[error(
        "backend `{}` is not compiled into this build: rebuild with `--features {}`",
        .0.name(),
        .0.feature()
    )]
    NotCompiled(BackendKind),
    /// wgpu is compiled in but finds no graphics adapter.
    #[error(
        "backend `wgpu` found no graphics adapter: install a Vulkan driver (on Debian, \
         `apt-get install mesa-vulkan-drivers` gives a software one) or use `--backend flex`"
    )]
    NoAdapter,
    /// cuda is compiled in but finds no NVIDIA driver or no device.
    #[error(
        "backend `cuda` found no CUDA device ({0}): install NVIDIA's driver, or use another --backend"
    )]
    NoCudaDevice(String),
    /// No backend at all is compiled in.
    #[error("no backend is compiled into this build: enable `flex`, `ndarray` or `wgpu`")]
    NoBackend,
}

/// The backends this build has, in [`BackendKind::ALL`] order.
pub fn compiled() -> Vec<BackendKind> {
    BackendKind::ALL
        .into_iter()
        .filter(|kind| kind.is_compiled())
        .collect()
}

/// The burn device of `kind`, without autodiff (call `.autodiff()` to train on it).
pub fn device(kind: BackendKind) -> Result<Device, BackendError> {
    match kind {
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)] // burn deprecates ndarray for flex; we ship both on purpose.
        BackendKind::Ndarray => Ok(Device::ndarray()),
        #[cfg(feature = "flex")]
        BackendKind::Flex => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => match wgpu_adapter::best() {
            Some(_) => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            None => Err(BackendError::NoAdapter),
        },
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => cuda::device(0),
        #[allow(unreachable_patterns)] // Every arm is compiled in with all features on.
        other => Err(BackendError::NotCompiled(other)),
    }
}

/// The backend to use when the user names none: cuda on an NVIDIA GPU, else wgpu on a hardware
/// GPU, else flex, else ndarray, else wgpu on a software adapter (llvmpipe is slower than either
/// CPU backend).
pub fn default_backend() -> Result<BackendKind, BackendError> {
    if cuda_device_count() > 0 {
        return Ok(BackendKind::Cuda);
    }
    if wgpu_hardware_adapter().is_some() {
        return Ok(BackendKind::Wgpu);
    }
    [BackendKind::Flex, BackendKind::Ndarray]
        .into_iter()
        .find(|kind| kind.is_compiled())
        .or_else(|| wgpu_adapter_name().map(|_| BackendKind::Wgpu))
        .ok_or(if BackendKind::Wgpu.is_compiled() {
            BackendError::NoAdapter
        } else {
            BackendError::NoBackend
        })
}

/// The device of [`default_backend`], without autodiff.
pub fn default_device() -> Result<Device, BackendError> {
    default_backend().and_then(device)
}

/// A one-line description of the device `kind` runs on, for logs and benchmark reports.
pub fn describe(kind: BackendKind) -> String {
    match kind {
        BackendKind::Wgpu => match wgpu_adapter_name() {
            Some(name) => format!("wgpu ({name})"),
            None => "wgpu (no adapter)".to_string(),
        },
        BackendKind::Cuda => match cuda_device_count() {
            0 => "cuda (no device)".to_string(),
            n => format!("cuda (device 0 of {n})"),
        },
        cpu => format!("{} (CPU)", cpu.name()),
    }
}

/// The name of the hardware (not software-emulated) GPU wgpu would use, if any.
pub fn wgpu_hardware_adapter() -> Option<String> {
    #[cfg(feature = "wgpu")]
    if let Some(adapter) = wgpu_adapter::best()
        && adapter.is_hardware
    {
        return Some(adapter.name.clone());
    }
    None
}

/// The name of the adapter wgpu would use, hardware or software.
pub fn wgpu_adapter_name() -> Option<String> {
    #[cfg(feature = "wgpu")]
    if let Some(adapter) = wgpu_adapter::best() {
        return Some(adapter.name.clone());
    }
    None
}

/// How many CUDA devices the driver reports: 0 in a build without `cuda`, or without a driver.
pub fn cuda_device_count() -> usize {
    #[cfg(feature = "cuda")]
    if let Ok(count) = cuda::count() {
        return count;
    }
    0
}

/// The CUDA device `index` (for several devices, e.g. burn-train's DDP strategy), without
/// autodiff.
pub fn cuda_device(index: usize) -> Result<Device, BackendError> {
    #[cfg(feature = "cuda")]
    return cuda::device(index);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = index;
        Err(BackendError::NotCompiled(BackendKind::Cuda))
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use super::BackendError;
    use burn::tensor::Device;
    use std::sync::OnceLock;

    /// The driver's device count, probed once. cudarc panics when `libcuda` cannot be loaded (its
    /// only safe probe is `CudaContext::device_count`): the panic is caught, with the panic
    /// message silenced, and read as "no driver".
    pub(crate) fn count() -> Result<usize, BackendError> {
        static COUNT: OnceLock<Result<usize, String>> = OnceLock::new();
        COUNT
            .get_or_init(|| {
                let hook = std::panic::take_hook();
                std::panic::set_hook(Box::new(|_| {}));
                let probed = std::panic::catch_unwind(cudarc::driver::CudaContext::device_count);
                std::panic::set_hook(hook);
                match probed {
                    Ok(Ok(n)) => Ok(usize::try_from(n).unwrap_or(0)),
                    Ok(Err(err)) => Err(format!("the driver says {err:?}")),
                    Err(_) => Err("libcuda cannot be loaded".to_string()),
                }
            })
            .clone()
            .map_err(BackendError::NoCudaDevice)
    }

    pub(crate) fn device(index: usize) -> Result<Device, BackendError> {
        match count()? {
            0 => Err(BackendError::NoCudaDevice(
                "the driver reports no device".into(),
            )),
            n if index >= n => Err(BackendError::NoCudaDevice(format!(
                "device {index} asked for, the driver reports {n}"
            ))),
            _ => Ok(Device::cuda(index)),
        }
    }
}

#[cfg(feature = "wgpu")]
mod wgpu_adapter {
    use std::sync::OnceLock;

    /// What the adapter probe found.
    pub(crate) struct Adapter {
        pub(crate) name: String,
        pub(crate) is_hardware: bool,
    }

    /// The adapter wgpu's default device would come up on: a hardware one if there is any.
    ///
    /// Probed once per process, before any burn wgpu device exists: the Vulkan loader is not safe
    /// when instances are created on several threads at once.
    pub(crate) fn best() -> Option<&'static Adapter> {
        static BEST: OnceLock<Option<Adapter>> = OnceLock::new();
        BEST.get_or_init(probe).as_ref()
    }

    fn probe() -> Option<Adapter> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
        let mut infos: Vec<_> = adapters.iter().map(wgpu::Adapter::get_info).collect();
        // Hardware first: discrete, then integrated, then virtual, then CPU emulations.
        infos.sort_by_key(|info| match info.device_type {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Other => 3,
            wgpu::DeviceType::Cpu => 4,
        });
        infos.into_iter().next().map(|info| Adapter {
            is_hardware: info.device_type != wgpu::DeviceType::Cpu,
            name: format!("{} on {:?}", info.name, info.backend),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_left_out_of_the_build_names_its_cargo_feature() {
        let message = BackendError::NotCompiled(BackendKind::Wgpu).to_string();
        assert!(message.contains("--features wgpu"), "{message}");
    }

    #[test]
    fn every_compiled_backend_gives_a_device() {
        for kind in compiled() {
            let result = device(kind);
            assert!(result.is_ok(), "{kind}: {:?}", result.err());
        }
    }

    #[test]
    fn backends_not_compiled_are_refused_with_their_feature() {
        for kind in BackendKind::ALL
            .into_iter()
            .filter(|kind| !kind.is_compiled())
        {
            assert_eq!(device(kind).err(), Some(BackendError::NotCompiled(kind)));
        }
    }
}
