//! Per-thread state: the re-entrancy guard and the thread's counter slot.
//!
//! Both live in one const-initialized thread-local without a destructor, so an
//! access is a plain TLS load: no lazy initialization, no registration, no
//! allocation, safe in a signal handler.

use core::cell::Cell;
use core::ptr;

use crate::stats::Slot;

/// What zio keeps per thread.
pub struct ThreadState {
    /// Set while zio's own code runs on this thread (and permanently on zio's
    /// own threads): hooks reached then forward straight to libc.
    inside: Cell<bool>,
    /// This thread's counter slot; null until the first counted call.
    pub(crate) slot: Cell<*const Slot>,
}

thread_local! {
    static STATE: ThreadState = const {
        ThreadState { inside: Cell::new(false), slot: Cell::new(ptr::null()) }
    };
}

/// Runs `f` with this thread's state.
#[inline(always)]
pub fn with<R>(f: impl FnOnce(&ThreadState) -> R) -> R {
    STATE.with(f)
}

/// True while zio's own code is running on this thread.
#[inline(always)]
pub fn inside() -> bool {
    with(|s| s.inside.get())
}

/// Marks this thread as inside zio until the returned guard is dropped.
/// Returns `None` if it already was (the caller must then forward to libc).
#[inline]
pub fn enter() -> Option<Inside> {
    with(|s| {
        if s.inside.replace(true) {
            None
        } else {
            Some(Inside(()))
        }
    })
}

/// Marks the calling thread as zio's own for its whole life (handler and GC
/// threads): every hook it reaches forwards to libc.
pub fn mark_zio_thread() {
    with(|s| s.inside.set(true));
}

/// Proof that this thread entered zio; leaving happens on drop.
pub struct Inside(());

impl Drop for Inside {
    fn drop(&mut self) {
        with(|s| s.inside.set(false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_nests_and_releases() {
        assert!(!inside());
        {
            let g = enter();
            assert!(g.is_some());
            assert!(inside());
            assert!(enter().is_none(), "re-entry must be refused");
            assert!(inside(), "a refused re-entry must not clear the guard");
        }
        assert!(!inside());
        std::thread::spawn(|| {
            mark_zio_thread();
            assert!(enter().is_none());
        })
        .join()
        .unwrap();
        assert!(!inside(), "other threads' marks are their own");
    }
}
