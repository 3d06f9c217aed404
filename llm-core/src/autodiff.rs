//! Reaching custom autodiff ops from code generic over `B: Backend`: Rust has no
//! specialisation, so the backend type is matched at run time (a `TypeId` comparison) against
//! `Autodiff` over each backend compiled in, with Burn's default checkpointing.

/// Runs `$body` with `$inner` naming the inner backend when `$b` is `Autodiff<$inner>` for a
/// compiled-in backend; does nothing otherwise (the caller falls through to its plain path).
macro_rules! on_autodiff {
    ($b:ty, $inner:ident, $body:block) => {{
        #[cfg(feature = "flex")]
        {
            #[allow(dead_code)]
            type $inner = burn::backend::Flex;
            if std::any::TypeId::of::<$b>() == std::any::TypeId::of::<burn::backend::Autodiff<$inner>>() $body
        }
        #[cfg(feature = "wgpu")]
        {
            #[allow(dead_code)]
            type $inner = burn::backend::Wgpu;
            if std::any::TypeId::of::<$b>() == std::any::TypeId::of::<burn::backend::Autodiff<$inner>>() $body
        }
        #[cfg(feature = "cuda")]
        {
            #[allow(dead_code)]
            type $inner = burn::backend::Cuda;
            if std::any::TypeId::of::<$b>() == std::any::TypeId::of::<burn::backend::Autodiff<$inner>>() $body
        }
    }};
}
pub(crate) use on_autodiff;

/// `T` as `U` when they are the same type (checked by the caller's `TypeId` comparison).
#[allow(dead_code)]
pub(crate) fn cast<T: 'static, U: 'static>(value: T) -> U {
    *(Box::new(value) as Box<dyn std::any::Any>).downcast::<U>().expect("TypeId compared equal")
}
