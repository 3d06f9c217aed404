//! Running one generic test body on every backend compiled into the calling crate.

use llm_core::backend::{BackendKind, KnownBackend};

/// The backend plain (not backend-parametrised) tests run on.
pub type TestBackend = burn::backend::Flex;

/// f32 logits tolerance on a backend: 1e-4 on Flex and WGPU (IEEE f32, other summation
/// orders); 2e-2 on CUDA, whose f32 matmuls run on TF32 tensor cores (10-bit mantissa; largest
/// logit gap seen on an H200: 9.9e-3, see `benches/README.md`).
pub fn logits_tol(kind: BackendKind) -> f32 {
    if kind == BackendKind::Cuda {
        2e-2
    } else {
        1e-4
    }
}

/// Runs `body` on backend `B`'s device (`LLM_TEST_DEVICE`, default 0), after saying which
/// device it is, so that a test log names the adapter it ran on. Used by [`backend_test!`].
///
/// # Panics
/// When the device cannot be opened (no Vulkan driver, no CUDA device), with the reason.
pub fn run_test<B: KnownBackend>(body: fn(&B::Device, BackendKind)) {
    let index = std::env::var("LLM_TEST_DEVICE").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let (device, description) = B::open(index).unwrap_or_else(|e| panic!("{e}"));
    announce(B::KIND, &description);
    eprintln!("[{}] {description}", B::KIND);
    body(&device, B::KIND);
}

/// Writes the device a test binary runs on to stderr once per backend and process. Written
/// past the test harness's capture (which only takes `print!`/`eprint!`), so that a CI log
/// names the adapter even when every test passes.
fn announce(kind: BackendKind, description: &str) {
    use std::io::Write;
    use std::sync::Mutex;
    static DONE: Mutex<Vec<BackendKind>> = Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if !done.contains(&kind) {
        done.push(kind);
        let _ = writeln!(std::io::stderr().lock(), "[{kind}] parity tests run on {description}");
    }
}

/// Declares a test whose body is generic over the backend, and runs it once per backend
/// compiled into the calling crate (its features `flex`, `wgpu`, `cuda`), as candle's
/// `test_device!` does. Each backend gets its own `#[test]`, named after it, so
/// `cargo test wgpu` or `cargo test ::cuda` picks one backend:
///
/// ```ignore
/// llm_testkit::backend_test! {
///     /// Logits equal transformers'.
///     fn logits<B>(device, kind) {
///         // f32 on Flex: 1e-4; GPU kernels sum in other orders: 1e-3.
///         let tol = if kind.is_cpu() { 1e-4 } else { 1e-3 };
///         let model = load::<B>(device);
///         // ...
///     }
/// }
/// ```
///
/// expands to a module `logits` with tests `logits::flex`, `logits::wgpu`, `logits::cuda`.
#[macro_export]
macro_rules! backend_test {
    ($( $(#[$meta:meta])* fn $name:ident<$b:ident>($device:ident, $kind:ident) $body:block )*) => {$(
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[allow(unused_variables)]
            fn body<$b: $crate::__llm_core::backend::Backend>($device: &$b::Device, $kind: $crate::__llm_core::backend::BackendKind) $body

            #[cfg(feature = "flex")]
            #[test]
            fn flex() {
                $crate::run_test::<$crate::__llm_core::backend::Flex>(body::<$crate::__llm_core::backend::Flex>);
            }

            #[cfg(feature = "wgpu")]
            #[test]
            fn wgpu() {
                $crate::run_test::<$crate::__llm_core::backend::Wgpu>(body::<$crate::__llm_core::backend::Wgpu>);
            }

            #[cfg(feature = "cuda")]
            #[test]
            fn cuda() {
                $crate::run_test::<$crate::__llm_core::backend::Cuda>(body::<$crate::__llm_core::backend::Cuda>);
            }
        }
    )*};
}
