//! Per-thread state: the re-entrancy guard and the thread's counter slot.
//!
//! Both live in one small block of thread-local storage that this module
//! defines itself (in `.tbss`) and reaches with the initial-exec TLS model: an
//! offset from the GOT added to the thread pointer (`%fs:0`). Rust's
//! `thread_local!` in a shared library uses the general-dynamic model, a call
//! to `__tls_get_addr` on every access, which cost more than the whole
//! pass-through budget of the memcpy hook. Initial-exec puts the block in the
//! static TLS area that exists from the moment a thread is created: no lazy
//! initialization, no allocation, no destructor, safe in a signal handler.
//! (A library using initial-exec TLS can still be `dlopen`ed: glibc keeps a
//! static TLS reserve for exactly this, and the block is 192 bytes.)

use crate::stats::Slot;
use core::cell::Cell;

/// What zio keeps per thread.
pub struct ThreadState {
    /// Set while zio's own code runs on this thread (and permanently on zio's
    /// own threads): hooks reached then forward straight to libc.
    pub(crate) inside: Cell<bool>,
    /// This thread's private counter slot; null until the first counted
    /// call, and again after the thread's exit handling.
    pub(crate) slot: Cell<*const Slot>,
    /// The thread counts in the shared slot (no private slot was free, or it
    /// has already retired its own).
    pub(crate) overflow: Cell<bool>,
    /// Engine calls this thread makes untimed before it times one again
    /// (the engine-time counters sample calls instead of reading the clock
    /// twice in every one: see `elide::clock_sample`).
    pub(crate) clock_skip: Cell<u8>,
    /// The page of caller memory this thread last proved readable
    /// ([`crate::usermem`]), 0 for none ...
    pub(crate) readable_page: Cell<usize>,
    /// ... as of this generation of unmaps.
    pub(crate) readable_gen: Cell<u32>,
    /// Signals that arrived while zio's code ran on this thread, held until
    /// it leaves ([`crate::signals`]): bit `n` for signal `n`.
    pub(crate) held_signals: Cell<u64>,
    /// The first held signal, whose `siginfo_t` is kept ...
    pub(crate) held_first: Cell<u8>,
    /// ... here (128 bytes, the kernel's `siginfo_t`).
    pub(crate) held_info: Cell<[u64; 16]>,
    /// This thread's `errno` (from `__errno_location`, a call through the
    /// PLT, asked once), null until first needed.
    pub(crate) errno_at: Cell<*mut i32>,
}

// The block: 192 zero bytes per thread, which is a valid `ThreadState` (guard
// off, no slot yet, the next engine call timed, no page proved readable, no
// signal held). Global so that accesses
// inlined into other crates' objects resolve at link time; hidden so that it
// is not exported.
core::arch::global_asm!(
    ".pushsection .tbss,\"awT\",@nobits",
    ".globl zio_thread_state",
    ".hidden zio_thread_state",
    ".type zio_thread_state, @object",
    ".size zio_thread_state, 192",
    ".p2align 3",
    "zio_thread_state:",
    ".zero 192",
    ".popsection",
);

const _: () = assert!(core::mem::size_of::<ThreadState>() <= 192);
const _: () = assert!(core::mem::align_of::<ThreadState>() <= 8);

/// This thread's state.
#[inline(always)]
fn state() -> &'static ThreadState {
    let p: *const ThreadState;
    // SAFETY: `zio_thread_state@GOTTPOFF` is the (link- or load-time
    // constant) offset of our TLS block from the thread pointer, and `%fs:0`
    // holds the thread pointer itself on x86-64 glibc. The sum addresses this
    // thread's copy of the 192-byte block, which lives as long as the thread
    // and is only ever accessed from it (the `'static` lifetime is limited
    // in practice by `with`, which never lets the reference escape).
    unsafe {
        core::arch::asm!(
            "mov {p}, qword ptr [rip + zio_thread_state@GOTTPOFF]",
            "add {p}, qword ptr fs:[0]",
            p = out(reg) p,
            options(pure, readonly, nostack, preserves_flags)
        );
        &*p
    }
}

/// This thread's `errno`, as `__errno_location` gives it (asked once per
/// thread: zio saves and restores `errno` around every engine call).
#[inline(always)]
pub fn errno_slot() -> *mut i32 {
    with(|s| {
        let p = s.errno_at.get();
        if !p.is_null() {
            return p;
        }
        // SAFETY: __errno_location has no preconditions; its result is
        // this thread's errno for the thread's whole life.
        let p = unsafe { libc::__errno_location() };
        s.errno_at.set(p);
        p
    })
}

/// Runs `f` with this thread's state.
#[inline(always)]
pub fn with<R>(f: impl FnOnce(&ThreadState) -> R) -> R {
    f(state())
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
        if with(|s| s.held_signals.get()) != 0 {
            crate::signals::deliver_held();
        }
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
