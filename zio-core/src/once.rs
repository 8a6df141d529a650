//! A start made once by whichever caller comes first (the engine's
//! userfaultfd self-test and its arming): the first caller runs it, callers
//! meanwhile carry on without it, and callers after it see its outcome with
//! everything the starter wrote before it finished. A fork child forgets a
//! start another thread of its parent was making, since that thread is not
//! the child's.
//!
//! Unlike `std::sync::Once`, nobody waits: a caller that finds the start
//! under way copies for real instead, which a hook inside `memcpy` needs
//! (the starter's threads may reach zio's hooks before they are marked as
//! zio's own). The `zio-loom` crate compiles this file with `cfg(zio_loom)`,
//! on loom's atomics.

use core::sync::atomic::Ordering;

#[cfg(not(zio_loom))]
use core::sync::atomic::AtomicU8;
#[cfg(zio_loom)]
use loom::sync::atomic::AtomicU8;

/// Not tried yet (the state a static starts in).
pub const IDLE: u8 = 0;
const RUNNING: u8 = 1;
const PASSED: u8 = 2;
const FAILED: u8 = 3;

/// What [`begin`] tells its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// Make the start now, then [`finish`] it.
    Run,
    /// Another caller is making it: go on without.
    Running,
    /// It was made: passed (true) or failed (false).
    Done(bool),
}

/// True if the start was made and passed; one load, for every caller.
pub fn passed(state: &AtomicU8) -> bool {
    state.load(Ordering::Acquire) == PASSED
}

/// Claims the start for this caller if nobody has tried it yet.
pub fn begin(state: &AtomicU8) -> Turn {
    match state.compare_exchange(IDLE, RUNNING, Ordering::Acquire, Ordering::Acquire) {
        Ok(_) => Turn::Run,
        Err(RUNNING) => Turn::Running,
        Err(s) => Turn::Done(s == PASSED),
    }
}

/// Ends the start this caller claimed: callers from now on see `ok` and
/// every write made before this call.
pub fn finish(state: &AtomicU8, ok: bool) {
    state.store(if ok { PASSED } else { FAILED }, Ordering::Release);
}

/// In a fork child: a start under way is this process's to make again, and
/// so is one that passed unless `keep_passed` (what it made lives on in the
/// child). A failure stays.
pub fn reset_after_fork(state: &AtomicU8, keep_passed: bool) {
    // A load first: the child's page is shared copy-on-write with the
    // parent until written.
    let s = state.load(Ordering::Relaxed);
    if s == RUNNING || (s == PASSED && !keep_passed) {
        state.store(IDLE, Ordering::Relaxed);
    }
}

#[cfg(all(test, not(zio_loom)))]
mod tests {
    use super::*;

    #[test]
    fn one_start_then_its_outcome() {
        for ok in [true, false] {
            let s = AtomicU8::new(IDLE);
            assert!(!passed(&s));
            assert_eq!(begin(&s), Turn::Run);
            assert_eq!(begin(&s), Turn::Running);
            finish(&s, ok);
            assert_eq!(begin(&s), Turn::Done(ok));
            assert_eq!(passed(&s), ok);
        }
    }

    #[test]
    fn a_fork_child_makes_again_what_was_under_way() {
        let s = AtomicU8::new(IDLE);
        assert_eq!(begin(&s), Turn::Run);
        reset_after_fork(&s, true);
        assert_eq!(begin(&s), Turn::Run);
        finish(&s, true);
        reset_after_fork(&s, true);
        assert!(passed(&s));
        reset_after_fork(&s, false);
        assert_eq!(begin(&s), Turn::Run);
        finish(&s, false);
        reset_after_fork(&s, false);
        assert_eq!(begin(&s), Turn::Done(false), "a failure stays");
    }
}
