//! The bridge contract's entry points (libzio's `zio_register`,
//! `zio_release`, `zio_resolve`): memory an IO stack lends zio, taken back
//! within a bound, and program buffers resolved for the stack's transmit.

use core::sync::atomic::Ordering;

use super::{ensure_started, run_engine, with_engine, yield_now, ACTIVE, ENGINE, MADE};
use crate::engine::{Busy, Gather};
use crate::tracker::OrigId;
use crate::{runtime, thread, usermem};

/// An IO stack lends `[a, a+n)`, holding bytes it received. False if zio
/// does not elide in this process (disabled, no userfaultfd), for an empty
/// or wrapping range, and for one whose first or last byte cannot be read
/// (a null or stale pointer, a length past the buffer): zio would read it
/// later, under its lock, for the program's copies. Then nothing needs
/// releasing.
pub fn lend(a: usize, n: usize) -> bool {
    if n == 0 || a.checked_add(n).is_none() || !ACTIVE.load(Ordering::Relaxed) {
        return false;
    }
    if !usermem::readable(a, 1) || !usermem::readable(a + n - 1, 1) {
        return false;
    }
    let Some(_inside) = thread::enter() else {
        return false;
    };
    let started = MADE.load(Ordering::Acquire) || ensure_started(&mut ENGINE.lock());
    started && with_engine(|e| e.lend(a, n)).is_some()
}

/// The stack takes `[a, a+n)` back. True once no copy depends on it any
/// more (the stack may change it); false if an output in flight still
/// reads it after about `wait_ns` nanoseconds (the stack must hold it and
/// ask again). Copies that read it are served either way.
pub fn release(a: usize, n: usize, wait_ns: u64) -> bool {
    if n == 0 || a.checked_add(n).is_none() || !MADE.load(Ordering::Acquire) {
        return true;
    }
    let Some(_inside) = thread::enter() else {
        return true;
    };
    let start = runtime::now_ns();
    loop {
        let done = with_engine(|e| Ok(e.release_lent(a, n) != Err(Busy)));
        if done != Some(false) {
            return true;
        }
        if runtime::now_ns().saturating_sub(start) >= wait_ns {
            return false;
        }
        yield_now();
    }
}

/// Where the bytes of the program buffer `[a, a+n)` are, for a stack about
/// to transmit it; `None` if they are all in the buffer itself. The caller
/// must pass the result to [`resolve_done`] once it has gathered.
pub fn resolve(a: usize, n: usize) -> Option<Gather> {
    if n == 0 || a.checked_add(n).is_none() || !super::tracking() {
        return None;
    }
    let _inside = thread::enter()?;
    // Frees stay queued: the caller is about to hold pins (as for output).
    let g = run_engine(false, |e| Ok(e.resolve_for_stack(a, n)), |_| false)?;
    if g.substituted == 0 {
        return None; // no piece, so nothing was pinned
    }
    Some(g)
}

/// The stack is done with a resolution: `pins` (a [`Gather`]'s) are
/// unpinned and `resolved` bytes counted as gathered from originals (0 if
/// the stack read the buffer itself after all).
pub fn resolve_done(pins: &[OrigId], resolved: usize) {
    let Some(_inside) = thread::enter() else {
        return;
    };
    with_engine(|e| {
        e.resolve_done(pins, resolved);
        Ok(())
    });
}
