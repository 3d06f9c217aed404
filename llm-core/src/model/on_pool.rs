//! A forward pass run on a thread of rayon's pool, with the pool's other threads polling for
//! its parallel work while it lasts. A decode step is a few hundred short parallel regions (a
//! matmul is tens of microseconds); between them an idle rayon worker yields, then parks on a
//! futex, and the next region wakes it again: in a VM each wake-up is an interrupt to another
//! core, and the profile of a SmolLM2 decode showed 12% of the time in the scheduler. Polling
//! (llama.cpp's threads spin on a barrier the same way) keeps them awake for exactly the length
//! of the pass.

use std::sync::atomic::{AtomicBool, Ordering};

/// `op()` on a thread of the global pool (called from outside it, this thread waits), the
/// pool's other threads taking its parallel work as soon as it appears until `op` returns (or
/// unwinds). Called from inside the pool, `op` runs here as it is. CPU forward passes run this
/// way ([`crate::CausalLm::forward_with`]); a trainer's step (forward and backward through
/// Burn's Flex ops, each its own parallel region) gains the same.
pub fn run<R: Send>(op: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return op();
    }
    let pollers = rayon::current_num_threads().saturating_sub(1);
    let done = AtomicBool::new(false);
    let mut out = None;
    rayon::scope(|s| {
        let owner = rayon::current_thread_index();
        let done = &done;
        for _ in 0..pollers {
            s.spawn(move |_| poll(done, owner));
        }
        // Set however `op` ends: a panic left the pollers spinning, and the scope waiting on them.
        let _stop = Stop(done);
        out = Some(op());
    });
    out.expect("op returned")
}

/// [`run`] where `B` computes on the host (Flex, autodiff over it, ndarray), whose ops split
/// their work over the pool; elsewhere (a GPU backend) `op` runs here as it is, with no thread
/// spinning beside it.
pub fn run_for<B: burn::tensor::backend::Backend, R: Send>(device: &B::Device, op: impl FnOnce() -> R + Send) -> R {
    if crate::quant::host_backend::<B>(device) {
        run(op)
    } else {
        op()
    }
}

/// Sets its flag when dropped.
struct Stop<'a>(&'a AtomicBool);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Runs the pool's pending jobs until `done`. On `owner`'s thread (which runs the pass: it may
/// pick up a poller while waiting for its own jobs) it returns at once, or it would wait for
/// the pass it interrupted.
fn poll(done: &AtomicBool, owner: Option<usize>) {
    if rayon::current_thread_index() == owner {
        return;
    }
    while !done.load(Ordering::Acquire) {
        if rayon::yield_now() != Some(rayon::Yield::Executed) {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use rayon::prelude::*;

    #[test]
    fn a_pass_with_pollers_gives_its_result_and_returns() {
        for _ in 0..50 {
            let sum = super::run(|| (0..10_000u64).into_par_iter().map(|v| v * v).sum::<u64>());
            assert_eq!(sum, (0..10_000u64).map(|v| v * v).sum::<u64>());
        }
        // A panic in the pass reaches the caller (the pollers stop).
        let caught = std::panic::catch_unwind(|| super::run(|| -> u32 { panic!("in the pass") }));
        assert!(caught.is_err());
        // Nested: called from a pool thread it runs in place.
        let inner = super::run(|| super::run(|| rayon::current_thread_index().is_some()));
        assert!(inner);
    }
}
