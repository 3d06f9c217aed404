//! Choosing a backend at run time among those compiled in (Cargo features `flex`, `wgpu`,
//! `cuda`). Library code stays generic; only this edge names concrete backends.

use std::fmt;
use std::str::FromStr;

pub use burn::tensor::backend::Backend;

#[cfg(feature = "cuda")]
pub use burn::backend::Cuda;
#[cfg(feature = "flex")]
pub use burn::backend::Flex;
#[cfg(feature = "wgpu")]
pub use burn::backend::Wgpu;

use crate::error::{LlmError, Result};

/// The backends this family targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Burn's pure-Rust CPU backend (feature `flex`, default).
    Flex,
    /// WGPU: Vulkan/Metal/DX12, or lavapipe's software Vulkan (feature `wgpu`).
    Wgpu,
    /// CUDA through cubecl (feature `cuda`).
    Cuda,
}

impl BackendKind {
    /// Every kind, compiled in or not.
    pub const ALL: [BackendKind; 3] = [Self::Flex, Self::Wgpu, Self::Cuda];

    /// The name used on command lines.
    pub fn name(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        }
    }

    /// Whether this build includes the backend.
    pub fn is_compiled(self) -> bool {
        match self {
            Self::Flex => cfg!(feature = "flex"),
            Self::Wgpu => cfg!(feature = "wgpu"),
            Self::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// Whether the backend computes on the host CPU (tolerances there are tightest).
    pub fn is_cpu(self) -> bool {
        self == Self::Flex
    }

    /// The kinds this build includes.
    pub fn compiled() -> Vec<BackendKind> {
        Self::ALL.into_iter().filter(|k| k.is_compiled()).collect()
    }

    fn not_compiled(self) -> LlmError {
        LlmError::Backend {
            name: self.name().into(),
            message: format!(
                "this binary was built without it; rebuild with `--features {}` (compiled in: {})",
                self.name(),
                Self::compiled().iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = LlmError;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| LlmError::Backend {
            name: s.into(),
            message: "unknown backend; choose flex, wgpu or cuda".into(),
        })
    }
}

/// A concrete backend this family can run on, with how to open and describe its devices.
pub trait KnownBackend: Backend {
    /// Which kind this is.
    const KIND: BackendKind;

    /// Opens device number `index`, checking that it works: returns the device and a
    /// one-line description (the adapter's name for WGPU), or a typed error when no such
    /// device or driver is found.
    fn open(index: usize) -> Result<(Self::Device, String)>;
}

#[cfg(feature = "flex")]
impl KnownBackend for burn::backend::Flex {
    const KIND: BackendKind = BackendKind::Flex;

    fn open(_index: usize) -> Result<(Self::Device, String)> {
        Ok((Default::default(), format!("flex (CPU, {} threads)", rayon::current_num_threads())))
    }
}

#[cfg(feature = "wgpu")]
impl KnownBackend for burn::backend::Wgpu {
    const KIND: BackendKind = BackendKind::Wgpu;

    fn open(index: usize) -> Result<(Self::Device, String)> {
        use burn::backend::wgpu::{graphics::AutoGraphicsApi, init_setup, WgpuDevice};
        use std::collections::HashMap;
        use std::sync::{Mutex, OnceLock};
        // `init_setup` registers the device's runtime: once per device and process.
        static OPENED: OnceLock<Mutex<HashMap<usize, std::result::Result<String, String>>>> = OnceLock::new();
        let device = if index == 0 { WgpuDevice::DefaultDevice } else { WgpuDevice::DiscreteGpu(index) };
        let mut opened = OPENED.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        let found = opened.entry(index).or_insert_with(|| {
            let setup = catch_panic(|| init_setup::<AutoGraphicsApi>(&device, Default::default()))?;
            let info = setup.adapter.get_info();
            Ok(format!("wgpu adapter \"{}\" ({:?}, {:?}, driver {} {})", info.name, info.backend, info.device_type, info.driver, info.driver_info))
        });
        match found {
            Ok(description) => {
                tracing::info!("{description}");
                Ok((device, description.clone()))
            }
            Err(why) => Err(LlmError::Backend {
                name: "wgpu".into(),
                message: format!(
                    "no usable adapter for device {index} ({why}); install a Vulkan driver \
                     (lavapipe: `apt-get install -y mesa-vulkan-drivers`)"
                ),
            }),
        }
    }
}

#[cfg(feature = "cuda")]
impl KnownBackend for burn::backend::Cuda {
    const KIND: BackendKind = BackendKind::Cuda;

    fn open(index: usize) -> Result<(Self::Device, String)> {
        let device = burn::backend::cuda::CudaDevice::new(index);
        // The first operation loads libcuda/libnvrtc and creates the context; both panic inside
        // cubecl when the driver or the device is missing.
        let probe = device.clone();
        catch_panic(move || burn::tensor::Tensor::<Self, 1>::ones([4], &probe).sum().into_scalar())
            .map_err(|why| LlmError::Backend {
                name: "cuda".into(),
                message: format!("no usable CUDA device {index} ({why}); check the NVIDIA driver and that libnvrtc is on LD_LIBRARY_PATH"),
            })?;
        Ok((device, format!("cuda device {index}")))
    }
}

/// Runs `f`, turning a panic (how cubecl reports a missing driver) into its message.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn catch_panic<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".into())
    })
}

/// Whether `B` computes on the host (Flex, NdArray): where hand-written CPU loops over a
/// tensor's memory pay off instead of a chain of backend ops.
pub fn runs_on_host<B: Backend>(device: &B::Device) -> bool {
    crate::quant::host_backend::<B>(device)
}

/// Work to run on a backend chosen at run time: implement `run` once, generically.
pub trait BackendTask {
    /// What the task returns (independent of the backend).
    type Output;
    /// Runs on backend `B` and its device.
    fn run<B: Backend>(self, device: B::Device) -> Self::Output;
}

/// Runs `task` on `kind`'s device number `device_index`, or says why it cannot (backend not
/// compiled in, no device found). Logs the device's description.
pub fn run_on<T: BackendTask>(kind: BackendKind, device_index: usize, task: T) -> Result<T::Output> {
    let _ = (device_index, &task);
    match kind {
        #[cfg(feature = "flex")]
        BackendKind::Flex => run_known::<burn::backend::Flex, T>(device_index, task),
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => run_known::<burn::backend::Wgpu, T>(device_index, task),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => run_known::<burn::backend::Cuda, T>(device_index, task),
        #[allow(unreachable_patterns)]
        other => Err(other.not_compiled()),
    }
}

/// Opens `kind`'s device number `device_index` and describes it in one line (for WGPU, the
/// adapter's name and driver), or says why it cannot.
pub fn describe(kind: BackendKind, device_index: usize) -> Result<String> {
    let _ = device_index;
    match kind {
        #[cfg(feature = "flex")]
        BackendKind::Flex => Ok(burn::backend::Flex::open(device_index)?.1),
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => Ok(burn::backend::Wgpu::open(device_index)?.1),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => Ok(burn::backend::Cuda::open(device_index)?.1),
        #[allow(unreachable_patterns)]
        other => Err(other.not_compiled()),
    }
}

#[allow(dead_code)]
fn run_known<B: KnownBackend, T: BackendTask>(index: usize, task: T) -> Result<T::Output> {
    let (device, description) = B::open(index)?;
    tracing::info!("backend: {description}");
    Ok(task.run::<B>(device))
}
