//! Choosing a backend at run time among those compiled in (Cargo features `flex`, `wgpu`,
//! `cuda`). Library code stays generic; only this edge names concrete backends.

use std::fmt;
use std::str::FromStr;

use burn::tensor::backend::Backend;

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

/// Work to run on a backend chosen at run time: implement `run` once, generically.
pub trait BackendTask {
    /// What the task returns (independent of the backend).
    type Output;
    /// Runs on backend `B` and its device.
    fn run<B: Backend>(self, device: B::Device) -> Self::Output;
}

/// Runs `task` on `kind`'s device number `device_index`, or says why it cannot.
pub fn run_on<T: BackendTask>(kind: BackendKind, device_index: usize, task: T) -> Result<T::Output> {
    let _ = (device_index, &task);
    match kind {
        #[cfg(feature = "flex")]
        BackendKind::Flex => Ok(task.run::<burn::backend::Flex>(Default::default())),
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => {
            use burn::backend::wgpu::WgpuDevice;
            let device = if device_index == 0 { WgpuDevice::DefaultDevice } else { WgpuDevice::DiscreteGpu(device_index) };
            Ok(task.run::<burn::backend::Wgpu>(device))
        }
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => Ok(task.run::<burn::backend::Cuda>(burn::backend::cuda::CudaDevice::new(device_index))),
        #[allow(unreachable_patterns)]
        other => Err(other.not_compiled()),
    }
}
