//! Claiming one of a fixed set of slots (the per-thread counter slots): a
//! thread takes a free one with a compare-and-swap and gives it back with
//! a release store, so the next owner sees everything the last one wrote
//! (its counts zeroed) before it starts writing.
//!
//! The `zio-loom` crate compiles this file with `cfg(zio_loom)`, on
//! loom's atomics.

use core::sync::atomic::Ordering;

#[cfg(not(zio_loom))]
use core::sync::atomic::AtomicBool;
#[cfg(zio_loom)]
use loom::sync::atomic::AtomicBool;

/// Takes the first free flag of `owned` (marking it owned) and returns its
/// index; `None` if every one is owned.
pub fn first_free<'a>(owned: impl IntoIterator<Item = &'a AtomicBool>) -> Option<usize> {
    owned.into_iter().position(|f| {
        // The plain load first: a slot seen owned costs no exclusive
        // cache line.
        !f.load(Ordering::Relaxed)
            && f.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    })
}

/// Gives a slot back: after this, another thread may claim it and will see
/// every write made before.
pub fn give_back(owned: &AtomicBool) {
    owned.store(false, Ordering::Release);
}
