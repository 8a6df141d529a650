//! Copy elision in the running process: the one engine, its lock, the real
//! memory backend (userfaultfd), the fault-handler and collector threads, and
//! the entry points the hooks call.
//!
//! Every entry point follows the same pattern: take the lock, ask the
//! engine, release the lock, then do what touches program memory (copies,
//! the IO call itself), so that a fault raised there is always served by the
//! handler thread, which needs the lock. Entry points are only reached
//! above the size threshold or when something is tracked; the pass-through
//! path never gets here.

mod calls;
mod clock;
mod real_mem;
mod threads;

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

pub use calls::*;
pub use real_mem::RealMem;

use crate::engine::{Busy, Cfg, Engine};
use crate::lock::Lock;
use crate::uffd::{self, feature};
use crate::{config, log::Level, real, thread, zio_log};
use clock::clock_sample;

static ENGINE: Lock<Option<Engine<RealMem>>> = Lock::new(None);
/// Something is tracked: copies and inputs must consult the engine.
static TRACKING: AtomicBool = AtomicBool::new(false);
/// Copy elision is possible in this process (enabled, userfaultfd works).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The descriptor the handler thread reads (-1 before the engine starts).
static HANDLER_FD: AtomicI32 = AtomicI32::new(-1);

/// The smallest copy that may need the engine: the threshold while
/// something is tracked, `usize::MAX` otherwise. One load and one compare
/// on the copy hooks' fast path.
static ELIDE_MIN: AtomicUsize = AtomicUsize::new(usize::MAX);

/// True if copies of `n` bytes may need the engine.
#[inline(always)]
pub fn copy_needs_engine(n: usize) -> bool {
    n >= ELIDE_MIN.load(Ordering::Relaxed)
}

fn set_tracking(on: bool) {
    TRACKING.store(on, Ordering::Relaxed);
    ELIDE_MIN.store(
        if on { config::threshold() } else { usize::MAX },
        Ordering::Relaxed,
    );
}

/// True if an input call of up to `n` bytes may need the engine.
#[inline(always)]
pub fn input_needs_engine(n: usize) -> bool {
    ACTIVE.load(Ordering::Relaxed) && (n >= config::threshold() || TRACKING.load(Ordering::Relaxed))
}

/// True if copy elision is possible in this process (enabled, and
/// userfaultfd works): input calls of any size may then need the engine.
#[inline(always)]
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// True if outputs, frees and unmaps may need the engine.
#[inline(always)]
pub fn tracking() -> bool {
    TRACKING.load(Ordering::Relaxed)
}

/// Called once at start-up when zio may elide in this process.
pub fn activate() {
    ACTIVE.store(true, Ordering::Relaxed);
}

/// Starts the engine (userfaultfd, handler and collector threads) on first
/// use. Returns false, and turns elision off for good, if it cannot.
fn ensure_started(slot: &mut Option<Engine<RealMem>>) -> bool {
    if slot.is_some() {
        return true;
    }
    let wanted = feature::PAGEFAULT_FLAG_WP | feature::WP_UNPOPULATED;
    let u = match uffd::open(wanted) {
        Ok(u) if u.features & feature::PAGEFAULT_FLAG_WP != 0 => u,
        Ok(_) => {
            zio_log!(
                Level::Warn,
                "userfaultfd lacks write-protect support; copy elision disabled"
            );
            ACTIVE.store(false, Ordering::Relaxed);
            return false;
        }
        Err(e) => {
            zio_log!(
                Level::Warn,
                "userfaultfd unavailable ({} failed with {}); copy elision disabled",
                e.step,
                uffd::errno_name(e.errno)
            );
            ACTIVE.store(false, Ordering::Relaxed);
            return false;
        }
    };
    HANDLER_FD.store(u.fd, Ordering::Relaxed);
    let spawned = std::thread::Builder::new()
        .name("zio-uffd".into())
        .stack_size(256 << 10)
        .spawn(threads::handler_loop)
        .is_ok()
        && std::thread::Builder::new()
            .name("zio-gc".into())
            .stack_size(256 << 10)
            .spawn(threads::collector_loop)
            .is_ok();
    if !spawned {
        zio_log!(
            Level::Warn,
            "cannot start zio's threads; copy elision disabled"
        );
        ACTIVE.store(false, Ordering::Relaxed);
        return false;
    }
    *slot = Some(Engine::new(RealMem::new(u), Cfg::from_options(config::get)));
    true
}

fn publish(e: &Engine<RealMem>) {
    set_tracking(!e.is_idle());
}

fn free_all(ptrs: &[usize]) {
    for &p in ptrs {
        // SAFETY: quarantined allocations whose free the program already
        // asked for; zio deferred it and now performs it, once.
        unsafe { real::free(p as *mut libc::c_void) };
    }
}

fn yield_now() {
    // SAFETY: sched_yield has no preconditions.
    unsafe { libc::sched_yield() };
}

/// Runs `op` on the engine, retrying while an original it needs is pinned.
/// Returns `None` if the engine is not running. Allocations whose deferred
/// `free` is now due are freed after the lock is released. Inlined, as
/// [`run_engine`]: it is the frame of every engine call of the hooks.
#[inline(always)]
fn with_engine<R>(op: impl FnMut(&mut Engine<RealMem>) -> Result<R, Busy>) -> Option<R> {
    run_engine(true, op)
}

/// As [`with_engine`]; with `free_now` false, due frees stay queued in the
/// engine. That is for callers about to hold pins (an output in flight): a
/// `free` writes allocator metadata, possibly onto a protected page of an
/// original this thread pinned, and that fault would wait for this thread.
#[inline(always)]
fn run_engine<R>(
    free_now: bool,
    mut op: impl FnMut(&mut Engine<RealMem>) -> Result<R, Busy>,
) -> Option<R> {
    loop {
        let t0 = clock_sample();
        let (r, to_free) = {
            let mut g = ENGINE.lock();
            let e = g.as_mut()?;
            let r = op(e);
            publish(e);
            e.mem.time.program_call(t0);
            (
                r,
                if free_now {
                    e.take_to_free()
                } else {
                    Vec::new()
                },
            )
        };
        free_all(&to_free);
        match r {
            Ok(v) => return Some(v),
            Err(Busy) => yield_now(),
        }
    }
}

/// The engine's counters (for the summary), if the engine ever started.
pub fn counters() -> Option<crate::engine::Counters> {
    // At exit another thread may hold the lock forever (it was stopped
    // mid-call); do not wait for it.
    for _ in 0..1000 {
        if let Some(g) = ENGINE.try_lock() {
            return g.as_ref().map(counters_of);
        }
        yield_now();
    }
    None
}

/// The engine's counters now, for a live reader (libzio's `zio_counter`):
/// waits for the lock. `None` if the engine has not started in this process
/// (or this thread is already inside zio).
pub fn counters_now() -> Option<crate::engine::Counters> {
    let _inside = thread::enter()?;
    let g = ENGINE.lock();
    g.as_ref().map(counters_of)
}

fn counters_of(e: &Engine<RealMem>) -> crate::engine::Counters {
    let mut c = e.counters.clone();
    c.program_ns = e.mem.time.program_ns();
    c.background_ns = e.mem.time.background_ns();
    c.registrations = e.mem.registrations;
    c
}
