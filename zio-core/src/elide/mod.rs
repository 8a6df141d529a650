//! Copy elision in the running process: the one engine, its lock, the real
//! memory backend (userfaultfd), the fault-handler and collector threads, and
//! the entry points the hooks call.
//!
//! Every entry point follows the same pattern: take the lock, ask the
//! engine, release the lock, then do what touches program memory (copies,
//! the IO call itself), so that a fault raised there is always served by the
//! handler thread, which needs the lock. Entry points are only reached
//! above the size threshold or when something is tracked; the pass-through
//! path never gets here. A copy, free or output of memory the cover
//! ([`crate::cover`]) leaves clear returns before the lock.

pub mod bridge;
mod calls;
mod clock;
mod plain_access;
mod real_mem;
mod threads;

use core::sync::atomic::{
    AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};

pub use calls::*;
pub use real_mem::RealMem;

use crate::cover::{Cover, Shape};
use crate::engine::{Busy, Cfg, Engine};
use crate::lock::Lock;
use crate::once::{self, Turn};
use crate::ranges::{page_down, page_up, whole_pages};
use crate::uffd::{self, feature};
use crate::{config, log::Level, real, thread, zio_log};
use clock::clock_sample;

static ENGINE: Lock<Option<Engine<RealMem>>> = Lock::new(None);
/// What the engine tracks, for the hooks that can do without its lock.
static COVER: Cover = Cover::new();
/// Something is tracked: copies and inputs must consult the engine.
static TRACKING: AtomicBool = AtomicBool::new(false);
/// Copy elision is possible in this process (enabled, userfaultfd works).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The descriptor the handler thread reads (-1 before the first copy arms
/// the engine).
static HANDLER_FD: AtomicI32 = AtomicI32::new(-1);
/// The engine exists (it records input from the first large one on).
static MADE: AtomicBool = AtomicBool::new(false);
/// Arming ([`armed`]), a [`once`] start.
static ARM: AtomicU8 = AtomicU8::new(once::IDLE);
/// Forks under way (between `fork_prepare` and `fork_finish`): no page
/// may be left missing meanwhile ([`RealMem`] refuses).
static FORKING: AtomicUsize = AtomicUsize::new(0);

/// Inputs the hooks may still leave unrecorded: set by the engine when its
/// policy saw no copy of IO data elided for a while (`engine/policy.rs`,
/// `Dormancy`), spent one per input by [`input_done`].
static UNRECORDED: AtomicU32 = AtomicU32::new(0);
/// Inputs left unrecorded so far (the `inputs_unrecorded` counter).
static INPUTS_UNRECORDED: AtomicU64 = AtomicU64::new(0);

/// True if inputs may go unrecorded now: no copy of IO data was elided
/// lately.
fn unrecorded_due() -> bool {
    UNRECORDED.load(Ordering::Relaxed) > 0
}

/// Spends one of [`UNRECORDED`]; false if none is left.
fn spend_unrecorded() -> bool {
    UNRECORDED
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |k| k.checked_sub(1))
        .is_ok()
}

/// Counts an input left unrecorded.
fn count_unrecorded() {
    INPUTS_UNRECORDED.fetch_add(1, Ordering::Relaxed);
}

/// True while a fork is under way in this process.
fn forking() -> bool {
    FORKING.load(Ordering::Acquire) != 0
}

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
    if TRACKING.load(Ordering::Relaxed) == on {
        return;
    }
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

/// How long the self-test before the engine's start waits for each half
/// of its fault's round trip.
const SELF_TEST_MS: i32 = 1000;

/// The self-test in this process, a [`once`] start.
static SELF_TEST: AtomicU8 = AtomicU8::new(once::IDLE);

/// True once userfaultfd has been seen to deliver and answer a fault in
/// this process ([`crate::selftest::round_trip`], run by the first caller, without
/// zio's lock: its helper thread may reach zio's hooks before it is marked
/// as zio's own). A failure turns elision off for good, with one line
/// saying why; callers meanwhile get false.
fn self_tested() -> bool {
    match once::begin(&SELF_TEST) {
        Turn::Run => {}
        Turn::Running => return false,
        Turn::Done(ok) => return ok,
    }
    // Under valgrind (ZIO_VALGRIND) the test itself would hang: valgrind
    // runs one thread at a time, and the helper's fault holds it.
    let r = if config::get(config::Opt::Valgrind) != 0 {
        Ok(())
    } else {
        uffd::open(feature::PAGEFAULT_FLAG_WP)
            .map_err(|_| "open")
            .and_then(|u| crate::selftest::round_trip(&u, SELF_TEST_MS))
    };
    if let Err(step) = r {
        zio_log!(
            Level::Warn,
            "userfaultfd self-test failed ({step}): faults are not delivered here; copy elision disabled"
        );
        crate::runtime::elision_failed(libc::ETIMEDOUT);
        ACTIVE.store(false, Ordering::Relaxed);
    }
    once::finish(&SELF_TEST, r.is_ok());
    r.is_ok()
}

/// In a child: a self-test or an arming another thread of the parent was
/// running is this process's to run again, and the parent's threads are
/// not the child's (its first copy arms the engine again).
fn self_test_after_fork() {
    once::reset_after_fork(&SELF_TEST, true);
    once::reset_after_fork(&ARM, false);
}

/// Makes the engine on the first large input: records only, no
/// userfaultfd and no threads yet ([`armed`] adds them at the first copy
/// that may be elided), so a program that reads large inputs and never
/// copies them pays for a probe and its records. Returns false, and turns
/// elision off for good, if the kernel refuses userfaultfd.
fn ensure_started(slot: &mut Option<Engine<RealMem>>) -> bool {
    if slot.is_some() {
        return true;
    }
    crate::statfile::publish_pending();
    if !crate::runtime::probe_kernel() {
        ACTIVE.store(false, Ordering::Relaxed);
        return false;
    }
    *slot = Some(Engine::new(
        RealMem::new(uffd::Uffd::none()),
        Cfg::from_options(config::get),
    ));
    MADE.store(true, Ordering::Release);
    true
}

/// True once the engine works through userfaultfd: the first caller (a
/// copy of `n` bytes into `d` that may be elided) runs the self-test,
/// opens the descriptor and starts the handler and collector threads,
/// without zio's lock (their start may reach zio's hooks); meanwhile other
/// callers get false and copy for real. A failure turns elision off for
/// good, with one line saying why.
fn armed(d: usize, n: usize) -> bool {
    // A load first: every copy that reaches the engine asks.
    if once::passed(&ARM) {
        return true;
    }
    // Nothing recorded yet, or a destination with fewer whole pages than
    // the threshold: this copy cannot be elided, nothing to arm for. A
    // program whose copies are all that small then never gets the threads,
    // and glibc's allocator keeps its single-threaded fast paths.
    let (c0, c1) = whole_pages(d, n);
    if !MADE.load(Ordering::Acquire) || c1 - c0 < config::threshold() {
        return false;
    }
    match once::begin(&ARM) {
        Turn::Run => {}
        Turn::Running => return false,
        Turn::Done(ok) => return ok,
    }
    let ok = self_tested() && start_threads();
    if !ok {
        ACTIVE.store(false, Ordering::Relaxed);
    }
    once::finish(&ARM, ok);
    ok
}

/// Opens the engine's userfaultfd, starts the threads that serve it and
/// hands it to the engine.
fn start_threads() -> bool {
    let wanted = feature::PAGEFAULT_FLAG_WP | feature::WP_UNPOPULATED;
    let u = match uffd::open(wanted) {
        Ok(u) if u.features & feature::PAGEFAULT_FLAG_WP != 0 => u,
        Ok(_) => {
            zio_log!(
                Level::Warn,
                "userfaultfd lacks write-protect support; copy elision disabled"
            );
            crate::runtime::elision_failed(libc::EOPNOTSUPP);
            return false;
        }
        Err(e) => {
            zio_log!(
                Level::Warn,
                "userfaultfd unavailable ({} failed with {}); copy elision disabled",
                e.step,
                uffd::errno_name(e.errno)
            );
            crate::runtime::elision_failed(e.errno);
            return false;
        }
    };
    HANDLER_FD.store(u.fd, Ordering::Relaxed);
    // zio's threads block every signal (they inherit this thread's mask).
    let mask = crate::signals::block_all();
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
    crate::signals::restore_mask(&mask);
    if !spawned {
        zio_log!(
            Level::Warn,
            "cannot start zio's threads; copy elision disabled"
        );
        crate::runtime::elision_failed(libc::EAGAIN);
        // A handler that did start reads this descriptor: it stays open
        // (nothing is registered on it), never to be reused for another file.
        core::mem::forget(u);
        HANDLER_FD.store(-1, Ordering::Relaxed);
        return false;
    }
    let mut g = ENGINE.lock();
    match g.as_mut() {
        Some(e) => e.mem.arm(u),
        None => return false,
    }
    true
}

fn publish(e: &Engine<RealMem>) {
    publish_cover(e, false);
}

/// After a call that may have changed what the engine tracks: the
/// tracking flag, and the cover, in full if `settled` (the call answered
/// "nothing to do" and changed no count), else covering everything. Both
/// are right after any call; the full one costs a walk of what is tracked,
/// worth it only where calls like this one are likely to follow (messages
/// too small to elide), not after every elision.
fn publish_cover(e: &Engine<RealMem>, settled: bool) {
    set_tracking(!e.is_idle());
    COVER.publish(&if settled {
        e.shape()
    } else {
        Shape::everything()
    });
}

/// True if a copy from `[s, s+n)` into `[d, d+n)` involves nothing the
/// engine tracks, as last published: no original or piece among the
/// source bytes, no protected or unfilled page under the destination. The
/// engine would copy it for real and change nothing.
fn copy_is_clear(d: usize, s: usize, n: usize) -> bool {
    COVER.clear((s, s + n), (page_down(d), page_up(d + n)))
}

/// True if `[a, a+n)` holds no original or piece and its pages none that
/// is protected or unfilled, as last published: a free of it, or a write
/// into it, leaves the engine nothing to do.
fn block_is_clear(a: usize, n: usize) -> bool {
    COVER.clear((a, a + n), (page_down(a), page_up(a + n)))
}

/// True if `[a, a+n)` holds no piece, as last published: an output of it
/// goes out unchanged.
fn bytes_are_clear(a: usize, n: usize) -> bool {
    COVER.clear((a, a + n), (0, 0))
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
    run_engine(true, op, |_| false)
}

/// As [`with_engine`], for a call the cover may let through next time:
/// if `quiet` says its answer left the engine nothing to do, and it
/// changed no count of what the engine tracks, the cover is published in
/// full (see [`publish`]).
#[inline(always)]
fn with_engine_quiet<R>(
    op: impl FnMut(&mut Engine<RealMem>) -> Result<R, Busy>,
    quiet: impl Fn(&R) -> bool,
) -> Option<R> {
    run_engine(true, op, quiet)
}

/// As [`with_engine`]; with `free_now` false, due frees stay queued in the
/// engine. That is for callers about to hold pins (an output in flight): a
/// `free` writes allocator metadata, possibly onto a protected page of an
/// original this thread pinned, and that fault would wait for this thread.
#[inline(always)]
fn run_engine<R>(
    free_now: bool,
    mut op: impl FnMut(&mut Engine<RealMem>) -> Result<R, Busy>,
    quiet: impl Fn(&R) -> bool,
) -> Option<R> {
    // zio's own system calls must not change what the program's call left
    // in errno (a failed write's EPIPE must survive the engine after it).
    let errno = Errno::save();
    let r = run_engine_loop(free_now, &mut op, &quiet);
    errno.restore();
    r
}

/// The calling thread's `errno`, kept across zio's own work.
struct Errno(*mut i32, i32);

impl Errno {
    #[inline(always)]
    fn save() -> Errno {
        let at = thread::errno_slot();
        // SAFETY: this thread's errno, valid for its whole life.
        Errno(at, unsafe { *at })
    }

    #[inline(always)]
    fn restore(self) {
        // SAFETY: as in `save`, on the same thread.
        unsafe { *self.0 = self.1 };
    }
}

#[inline(always)]
fn run_engine_loop<R>(
    free_now: bool,
    op: &mut impl FnMut(&mut Engine<RealMem>) -> Result<R, Busy>,
    quiet: &impl Fn(&R) -> bool,
) -> Option<R> {
    loop {
        let t0 = clock_sample();
        let (r, to_free) = {
            let mut g = ENGINE.lock();
            let locked = t0.map(|_| clock::ticks());
            let e = g.as_mut()?;
            if crate::resources::exhausted() {
                e.stop_eliding();
            }
            let counts = e.shape_counts();
            let r = op(e);
            let settled = matches!(&r, Ok(v) if quiet(v)) && e.shape_counts() == counts;
            publish_cover(e, settled);
            let unrecorded = e.inputs_to_leave_unrecorded();
            if unrecorded > 0 {
                UNRECORDED.store(unrecorded, Ordering::Relaxed);
            }
            e.mem.time.program_call(t0, locked);
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
    // mid-call): wait a bounded time only. The handler thread often still
    // holds it for the last fault's fill-around, which outlasts a thousand
    // yields: then sleeps of a millisecond, 100 ms at most.
    for i in 0..1100 {
        if let Some(g) = ENGINE.try_lock() {
            return g.as_ref().map(counters_of);
        }
        if i < 1000 {
            yield_now();
        } else {
            crate::runtime::sleep_ms(1);
        }
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
    c.lock_wait_ns = e.mem.time.lock_wait_ns();
    c.program_calls = e.mem.time.program_calls();
    c.registrations = e.mem.registrations;
    c.syscalls_uffd = e.mem.uffd_calls() + crate::uffd::unlocked_calls();
    c.syscalls_madvise = e.mem.madvise_calls;
    c.syscalls_maps = crate::vma::queries();
    c.inputs_unrecorded = INPUTS_UNRECORDED.load(Ordering::Relaxed);
    c
}
