//! The process hooks (`fork`, `clone`, `syscall`): every way a program can
//! copy its address space, so that a child sees every byte its parent sees.
//!
//! A child gets no userfaultfd state: before the copy is made, everything
//! elided is materialized, and nothing is left missing again until the
//! call returns (see `elide::fork_prepare`); the child starts zio's state
//! afresh. glibc's `fork` and `clone` without `CLONE_VM`
//! go through here, and so do `syscall(SYS_fork)`, `syscall(SYS_clone)`
//! and `syscall(SYS_clone3)` without `CLONE_VM`. Children sharing the
//! address space (`CLONE_VM`: threads, `vfork`, `posix_spawn`) need
//! nothing: their faults reach zio's handler as the parent's do.

use core::ffi::{c_int, c_long, c_void};
use core::mem::ManuallyDrop;

use libc::pid_t;
use zio_core::elide::{self, ForkGuard};
use zio_core::process::{raw_clone, Copy};
use zio_core::real::{self, CloneFn};
use zio_core::runtime;
use zio_core::stats::{self, Hook};

/// Makes a copy of the process with `call` (which returns 0 in the child,
/// as `fork` does), around zio's preparation and its undoing on each side.
fn forked(call: impl FnOnce() -> c_long) -> c_long {
    let g = elide::fork_prepare();
    let r = call();
    elide::fork_finish(g, r == 0);
    if r == 0 {
        runtime::after_fork_in_child();
    }
    r
}

/// The start of a `clone` child made without `CLONE_VM`: it runs on the
/// child's copy of the parent's frame, then the program's function.
struct ChildStart {
    f: CloneFn,
    arg: *mut c_void,
    guard: ManuallyDrop<ForkGuard>,
}

extern "C" fn child_start(p: *mut c_void) -> c_int {
    // SAFETY: `p` is the `ChildStart` in the parent's frame of `clone`,
    // which the child has its own copy of; only the child uses this copy.
    let s = unsafe { &mut *(p as *mut ChildStart) };
    // SAFETY: taken once, here; the parent takes its own copy's.
    let g = unsafe { ManuallyDrop::take(&mut s.guard) };
    elide::fork_finish(g, true);
    runtime::after_fork_in_child();
    (s.f)(s.arg)
}

hooks! {
    /// Exported `fork`: everything elided is materialized first (the child gets
    /// no userfaultfd state); the child starts its own counters and engine.
    fn fork() -> pid_t {
        // SAFETY: fork has no preconditions.
        let pid = forked(|| unsafe { real::fork() } as c_long) as pid_t;
        stats::count(Hook::Fork, 0);
        pid
    }

    /// Exported `clone`. Variadic in C (the last three arguments only with
    /// the flags that use them); on x86-64 taking seven and passing seven on
    /// is exact, as for `mremap`. Without `CLONE_VM` the child is a copy,
    /// prepared as for `fork`; it finishes zio's side on its own stack
    /// before the program's function runs.
    fn clone(
        f: Option<CloneFn>,
        stack: *mut c_void,
        flags: c_int,
        arg: *mut c_void,
        ptid: *mut pid_t,
        tls: *mut c_void,
        ctid: *mut pid_t,
    ) -> c_int {
        stats::count(Hook::Clone, 0);
        // Sharing the address space, or refused by glibc (no function, no
        // stack): the call as the program made it.
        let Some(f) = f.filter(|_| flags & libc::CLONE_VM == 0 && !stack.is_null()) else {
            // SAFETY: the caller's contract.
            return unsafe { real::clone(f, stack, flags, arg, ptid, tls, ctid) };
        };
        let mut s = ChildStart {
            f,
            arg,
            guard: ManuallyDrop::new(elide::fork_prepare()),
        };
        let start = &mut s as *mut ChildStart as *mut c_void;
        // SAFETY: the caller's contract, with our start function, which
        // calls the caller's with its argument.
        let r = unsafe { real::clone(Some(child_start), stack, flags, start, ptid, tls, ctid) };
        // SAFETY: the parent's copy, taken once.
        elide::fork_finish(unsafe { ManuallyDrop::take(&mut s.guard) }, false);
        r
    }

    /// Exported `syscall`. Variadic in C; on x86-64 its six arguments travel
    /// in registers, so taking them all and passing them on is exact. A
    /// `fork`, or a `clone` or `clone3` that copies the address space, is
    /// prepared as glibc's `fork` is; an `io_uring_register` of buffers pins
    /// them (`pinned.rs`); everything else goes straight to libc.
    fn syscall(n: c_long, a: c_long, b: c_long, c: c_long, d: c_long, e: c_long, f: c_long) -> c_long {
        stats::count(Hook::Syscall, 0);
        let call = || {
            // SAFETY: the caller's contract.
            unsafe { real::syscall(n, a, b, c, d, e, f) }
        };
        if n == libc::SYS_io_uring_register {
            // SAFETY: the caller's contract; its arguments are read only if
            // readable.
            return unsafe { crate::pinned::io_uring_register(a, b, c, d, call) };
        }
        match raw_clone(n, a, b) {
            None | Some(Copy::Shared) => call(),
            Some(Copy::Fork) => forked(call),
            Some(Copy::Detached) => {
                // The child starts in code zio never sees, so zio cannot
                // finish it there; the parent keeps the fork under way (no
                // page left missing again) until the copy is made, and a
                // child that does come back here passes everything through.
                let g = elide::fork_prepare();
                let r = call();
                if r == 0 {
                    core::mem::forget(g);
                } else {
                    elide::fork_finish(g, false);
                }
                r
            }
        }
    }
}
