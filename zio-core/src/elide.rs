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

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

use crate::engine::{Busy, Cfg, CopyPlan, Engine, FreeAction, From, Gather, Mem, Redirect};
use crate::lock::Lock;
use crate::ranges::{page_down, page_up, PAGE};
use crate::runtime::now_ns;
use crate::uffd::{self, feature, Uffd};
use crate::{config, heap, log::Level, real, thread, vma, zio_log};

/// The process memory, through userfaultfd.
pub struct RealMem {
    uffd: Uffd,
    /// Backup mappings no longer in use, by length, kept for reuse: a
    /// server backing up the same buffer size on every request then maps
    /// nothing (and its pages stay populated).
    spare: std::collections::BTreeMap<usize, Vec<usize>>,
    spare_bytes: usize,
    /// Ranges registered with userfaultfd (each may add VMAs).
    registrations: u64,
    /// [`ticks`] spent in the engine by the program's threads in the calls
    /// [`clock_sample`] timed, how many calls that was and how many there
    /// were in all; [`ticks`] spent by zio's own threads (every call: they
    /// are rare); and (ticks, ns) when the engine started, to convert them.
    program_ticks: u64,
    program_timed: u64,
    program_calls: u64,
    background_ticks: u64,
    clock_start: (u64, u64),
}

/// Spare backup memory kept mapped for reuse, at most.
const SPARE_MAX: usize = 64 << 20;

impl RealMem {
    /// True if `[a, a+len)` is registered with this descriptor now. The
    /// program's allocator may have unmapped and remapped a range behind
    /// zio's back (glibc frees large chunks with an internal `munmap`), so
    /// no record of past registrations can say. A write-protect call (a
    /// no-op unprotect: callers have released any protection there)
    /// succeeds only on a range registered with this descriptor, and zio
    /// registers only memory it classified as private anonymous: success
    /// proves both, in one call, with no cache to go stale.
    fn registered(&self, a: usize, len: usize) -> bool {
        self.uffd.writeprotect(a, len, false).is_ok()
    }

    /// Registers `[a, a+len)` after checking it is private anonymous memory.
    fn register_checked(&mut self, a: usize, len: usize) -> bool {
        let ok = vma::classify(a, a + len) == vma::Kind::PrivateAnon
            && self.uffd.register(a, len).is_ok();
        self.registrations += u64::from(ok);
        ok
    }
}

impl Mem for RealMem {
    fn read(&self, addr: usize, out: &mut [u8]) {
        // SAFETY: the engine only reads originals, which are mapped and
        // present while they have dependents (see engine.rs).
        unsafe { core::ptr::copy_nonoverlapping(addr as *const u8, out.as_mut_ptr(), out.len()) };
    }

    fn unmap(&mut self, a: usize, len: usize) -> bool {
        // Registration must be certain: an unregistered page discarded
        // below would silently read back as zeros.
        if !self.registered(a, len) && !self.register_checked(a, len) {
            return false;
        }
        // SAFETY: private anonymous memory registered for missing faults:
        // its next access is a fault that the handler fills from the pieces.
        unsafe { libc::madvise(a as *mut libc::c_void, len, libc::MADV_DONTNEED) == 0 }
    }

    fn still_missing(&mut self, a: usize, len: usize) -> bool {
        // Registered pages zio left missing become present only through zio
        // (a fault it serves, a fill it makes).
        self.registered(a, len)
    }

    fn release(&mut self, page: usize, a: usize, b: usize) -> bool {
        let Some((vs, ve)) = crate::vma::mapping(page) else {
            return false;
        };
        let (a, b) = (a.max(vs), b.min(ve));
        if self.uffd.unregister(a, b - a).is_err() {
            return false;
        }
        // The kernel woke the waiters on unregistering; once more is
        // harmless (and fails quietly now that the range is not ours).
        let _ = self.uffd.wake(page, PAGE);
        true
    }

    fn fill(&mut self, page: usize, data: &[u8]) -> bool {
        self.fill_from(page, data.as_ptr() as usize, data.len())
    }

    fn fill_from(&mut self, page: usize, src: usize, len: usize) -> bool {
        // The kernel reads `src` like `read` does: an original, present
        // while it has dependents, or zio's own memory.
        match self.uffd.copy(page, src as *const u8, len) {
            Ok(()) => true,
            Err(e) => {
                zio_log!(
                    Level::Error,
                    "UFFDIO_COPY of {} pages at {page:#x} failed: {}",
                    len / PAGE,
                    uffd::errno_name(e)
                );
                // The pieces stay, so a thread waiting here faults again
                // and the next attempt fills the page; asleep it would wait
                // for good.
                let _ = self.uffd.wake(page, len);
                false
            }
        }
    }

    fn zero_run(&mut self, a: usize, len: usize) {
        if let Err(e) = self.uffd.zeropage_run(a, len) {
            zio_log!(
                Level::Error,
                "UFFDIO_ZEROPAGE at {a:#x} failed: {}",
                uffd::errno_name(e)
            );
            // Whoever waits there faults again rather than sleep for good.
            let _ = self.uffd.wake(a, PAGE);
        }
    }

    fn zero_range(&mut self, a: usize, len: usize) {
        // A part that is not registered (ENOENT) needs nothing: no fault
        // can come from it.
        let _ = self.uffd.zeropage(a, len);
    }

    fn backup(&mut self, src: usize, len: usize) -> Option<usize> {
        let addr = self.own(len)?;
        // SAFETY: `src` is an original (present); `addr` is ours, at least
        // `len` bytes, and the two cannot overlap.
        unsafe { core::ptr::copy_nonoverlapping(src as *const u8, addr as *mut u8, len) };
        Some(addr)
    }

    fn own(&mut self, len: usize) -> Option<usize> {
        let size = page_up(len);
        if let Some(a) = self.spare.get_mut(&size).and_then(Vec::pop) {
            self.spare_bytes -= size;
            return Some(a);
        }
        let p = crate::heap::map(size);
        (!p.is_null()).then_some(p as usize)
    }

    fn write(&mut self, addr: usize, data: &[u8]) {
        // SAFETY: the engine passes present, unprotected program memory it
        // has just released for this write (see `input_redirected`).
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), addr as *mut u8, data.len()) };
    }

    fn backup_release(&mut self, addr: usize, len: usize) {
        let size = page_up(len);
        if self.spare_bytes + size <= SPARE_MAX {
            self.spare.entry(size).or_default().push(addr);
            self.spare_bytes += size;
        } else {
            // SAFETY: a whole backup mapping that nothing points into now.
            unsafe { libc::munmap(addr as *mut libc::c_void, size) };
        }
    }

    fn protect(&mut self, a: usize, len: usize, on: bool) -> bool {
        if on {
            // Already registered (the common case for a reused buffer): one
            // call. Otherwise check, register, and protect.
            self.uffd.writeprotect(a, len, true).is_ok()
                || (self.register_checked(a, len) && self.uffd.writeprotect(a, len, true).is_ok())
        } else {
            // Also wakes writers waiting on these pages.
            let _ = self.uffd.writeprotect(a, len, false);
            true
        }
    }
}

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

fn cfg() -> Cfg {
    Cfg {
        threshold: config::threshold(),
        fault_ratio: config::get_ratio(config::Opt::FaultRatio),
        max_records: config::get(config::Opt::MaxRecords) as usize,
        quarantine: config::get(config::Opt::Quarantine) as usize,
        redirect_input: config::get(config::Opt::RedirectInput) != 0,
    }
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
        .spawn(handler_loop)
        .is_ok()
        && std::thread::Builder::new()
            .name("zio-gc".into())
            .stack_size(256 << 10)
            .spawn(collector_loop)
            .is_ok();
    if !spawned {
        zio_log!(
            Level::Warn,
            "cannot start zio's threads; copy elision disabled"
        );
        ACTIVE.store(false, Ordering::Relaxed);
        return false;
    }
    let mem = RealMem {
        uffd: u,
        spare: Default::default(),
        spare_bytes: 0,
        registrations: 0,
        program_ticks: 0,
        program_timed: 0,
        program_calls: 0,
        background_ticks: 0,
        clock_start: (ticks(), now_ns()),
    };
    *slot = Some(Engine::new(mem, cfg()));
    true
}

fn publish(e: &Engine<RealMem>) {
    set_tracking(!e.is_idle());
}

/// The fault handler: one blocking read per fault, resolved under the lock.
fn handler_loop() {
    thread::mark_zio_thread();
    let fd = HANDLER_FD.load(Ordering::Relaxed);
    loop {
        let m = match uffd::read_msg(fd) {
            Ok(m) => m,
            Err(e) => {
                zio_log!(
                    Level::Error,
                    "reading userfaultfd failed: {}; handler stops",
                    uffd::errno_name(e)
                );
                return;
            }
        };
        if m.event != uffd::EVENT_PAGEFAULT {
            continue;
        }
        let t0 = ticks();
        let mut g = ENGINE.lock();
        if let Some(e) = g.as_mut() {
            if m.flags & uffd::PAGEFAULT_FLAG_WP != 0 {
                // Busy: the writer stays blocked until the pin is dropped.
                let _ = e.on_wp_fault(m.address as usize);
            } else {
                e.on_missing_fault(m.address as usize);
            }
            publish(e);
            e.mem.background_ticks += ticks() - t0;
        }
    }
}

/// A cheap clock for the engine-time counters: the time-stamp counter on
/// x86-64 (a few cycles, against tens of ns for `clock_gettime` in a VM,
/// paid twice per engine call), converted to nanoseconds when the counters
/// are read ([`ticks_to_ns`]); nanoseconds elsewhere.
#[inline(always)]
fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: rdtsc has no preconditions.
    return unsafe { core::arch::x86_64::_rdtsc() };
    #[cfg(not(target_arch = "x86_64"))]
    return now_ns();
}

/// The start of an engine call, if this one is timed: one call in 8.5 on
/// average, chosen by a gap of 0–15 untimed calls drawn from a hash of the
/// clock. Reading the clock costs about 19 ns here (measured in this VM),
/// twice per call, which was 2% of a 64 KiB echo with 12 copies; an untimed
/// call costs a thread-local decrement. The random gap keeps a program's
/// repeating pattern of calls (a message's read, copies and write) from
/// being sampled always at the same call.
#[inline(always)]
fn clock_sample() -> Option<u64> {
    thread::with(|s| {
        let skip = s.clock_skip.get();
        if skip > 0 {
            s.clock_skip.set(skip - 1);
            return None;
        }
        let t = ticks();
        s.clock_skip
            .set((t.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as u8);
        Some(t)
    })
}

/// Converts a sum of [`ticks`] to nanoseconds, by the rate measured since
/// `start` (ticks, ns).
fn ticks_to_ns(t: u64, start: (u64, u64)) -> u64 {
    if cfg!(not(target_arch = "x86_64")) {
        return t;
    }
    let (dt, dn) = (
        ticks().saturating_sub(start.0),
        now_ns().saturating_sub(start.1),
    );
    if dt == 0 {
        return 0;
    }
    (t as u128 * dn as u128 / dt as u128) as u64
}

/// Periodic collection, plus freeing what the quarantine released.
fn collector_loop() {
    thread::mark_zio_thread();
    loop {
        let ms = config::get(config::Opt::GcMs);
        let ts = libc::timespec {
            tv_sec: (ms / 1000) as libc::time_t,
            tv_nsec: ((ms % 1000) * 1_000_000) as libc::c_long,
        };
        // SAFETY: valid timespec; a null remainder is allowed.
        unsafe { libc::nanosleep(&ts, core::ptr::null_mut()) };
        let to_free = {
            let t0 = ticks();
            let mut g = ENGINE.lock();
            let Some(e) = g.as_mut() else { continue };
            e.collect();
            publish(e);
            e.mem.background_ticks += ticks() - t0;
            e.take_to_free()
        };
        free_all(&to_free);
    }
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
/// `free` is now due are freed after the lock is released.
fn with_engine<R>(op: impl FnMut(&mut Engine<RealMem>) -> Result<R, Busy>) -> Option<R> {
    run_engine(true, op)
}

/// As [`with_engine`]; with `free_now` false, due frees stay queued in the
/// engine. That is for callers about to hold pins (an output in flight): a
/// `free` writes allocator metadata, possibly onto a protected page of an
/// original this thread pinned, and that fault would wait for this thread.
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
            e.mem.program_calls += 1;
            if let Some(t0) = t0 {
                e.mem.program_ticks += ticks() - t0;
                e.mem.program_timed += 1;
            }
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

/// A copy the hook could not leave to libc alone. Returns false if the
/// caller should just copy for real (nothing tracked is involved).
///
/// # Safety
/// `memcpy`/`memmove` contract: `s` readable and `d` writable for `n` bytes.
pub unsafe fn copy(d: usize, s: usize, n: usize, site: usize) -> bool {
    let Some(_inside) = thread::enter() else {
        return false;
    };
    let plan: Option<CopyPlan> = with_engine(|e| e.copy(d, s, n, site)).flatten();
    let Some(plan) = plan else {
        return false;
    };
    for &(dst, from, len) in &plan.real {
        let src = match from {
            From::Mem(a) => a as *const libc::c_void,
            From::Bounce(off) => plan.bounce[off..].as_ptr().cast(),
        };
        // SAFETY: destinations lie inside the caller's range; sources inside
        // the caller's range or the plan's own bounce buffer.
        unsafe {
            if plan.overlapping {
                real::memmove(dst as *mut _, src, len);
            } else {
                real::memcpy(dst as *mut _, src, len);
            }
        }
    }
    if let Some((a, len)) = plan.record {
        with_engine(|e| {
            e.input_done(a, len);
            Ok(())
        });
    }
    true
}

/// Before an input call of up to `n` bytes at `a`: where it should land.
/// `Some`: in zio's memory (the call must read into `Redirect::to` and
/// then call [`input_end`]); `None`: in the buffer, prepared for it.
pub fn input_begin(a: usize, n: usize) -> Option<Redirect> {
    if n == 0 || !tracking() {
        return None;
    }
    let _inside = thread::enter()?;
    with_engine(|e| match e.input_target(a, n) {
        Some(r) => Ok(Some(r)),
        None => e.input_prepare(a, n).map(|()| None),
    })
    .flatten()
}

/// After the input call of [`input_begin`] returned `r` (bytes, or a
/// negative error), having asked for `n` bytes at `a`.
pub fn input_end(a: usize, n: usize, redirect: Option<Redirect>, r: isize) {
    match redirect {
        None if r > 0 => input_done(a, (r as usize).min(n)),
        None => {}
        Some(to) => {
            let Some(_inside) = thread::enter() else {
                return;
            };
            with_engine(|e| e.input_redirected(a, to, r));
        }
    }
}

/// Before an input call writes up to `n` bytes at `a`.
pub fn input_prepare(a: usize, n: usize) {
    if n == 0 || !tracking() {
        return;
    }
    let Some(_inside) = thread::enter() else {
        return;
    };
    with_engine(|e| e.input_prepare(a, n));
}

/// After an input call put `got` bytes at `a`.
pub fn input_done(a: usize, got: usize) {
    if got < config::threshold() || !ACTIVE.load(Ordering::Relaxed) {
        return;
    }
    let Some(_inside) = thread::enter() else {
        return;
    };
    // Started once, the engine stays: one lock per input, not two.
    let started = HANDLER_FD.load(Ordering::Relaxed) >= 0 || {
        let mut g = ENGINE.lock();
        ensure_started(&mut g)
    };
    if started {
        with_engine(|e| {
            e.input_done(a, got);
            Ok(())
        });
    }
}

/// The gather list for an output of `[a, a+n)`, or `None` if it can go out
/// unchanged. The caller must pass the result to [`output_done`].
pub fn output(a: usize, n: usize) -> Option<Gather> {
    if n == 0 || !tracking() {
        return None;
    }
    let _inside = thread::enter()?;
    let g = run_engine(false, |e| Ok(e.output(a, n)))?;
    if g.substituted == 0 {
        return None;
    }
    Some(g)
}

/// The gather list for an output of several buffers (an iovec), or `None`
/// if it can go out unchanged.
pub fn output_vec(parts: &[(usize, usize)]) -> Option<Gather> {
    if !tracking() {
        return None;
    }
    let _inside = thread::enter()?;
    let g = run_engine(false, |e| {
        let mut all = Gather::default();
        for &(a, n) in parts {
            e.output_into(&mut all, a, n);
        }
        Ok(all)
    })?;
    if g.substituted == 0 {
        return None; // no piece, so nothing was pinned
    }
    Some(g)
}

/// After the output call that used `g` handed `sent` bytes to the kernel
/// (0 on error): counts what came from originals and unpins them.
pub fn output_done(g: &Gather, sent: isize) {
    let Some(_inside) = thread::enter() else {
        return;
    };
    with_engine(|e| {
        e.output_done(g, sent.max(0) as usize);
        Ok(())
    });
}

/// `free(p)`: returns true if zio keeps the allocation (quarantine) and the
/// caller must not free it now.
///
/// # Safety
/// `p` is a live allocation of the program's allocator.
pub unsafe fn free(p: usize) -> bool {
    if p == 0 || !tracking() {
        return false;
    }
    let Some(_inside) = thread::enter() else {
        return false;
    };
    // SAFETY: `p` is live (the caller is about to free it).
    let size = unsafe { libc::malloc_usable_size(p as *mut libc::c_void) };
    if small_block(size) {
        return false;
    }
    with_engine(|e| Ok(e.free(p, size))) == Some(FreeAction::Quarantined)
}

/// True if a block of `size` bytes can be freed or reallocated without the
/// engine. Elided copies and recorded inputs are at least the threshold,
/// so a smaller block holds none of them whole; what it may still share
/// with them is guarded by the pages themselves: an original's pages are
/// write-protected and an elided copy's are missing, so the allocator's
/// or the next owner's first access is a fault that keeps every byte
/// right. Skipping the engine here spares every small `free` of a program
/// the engine's lock while anything is tracked (measured: 60 ns per
/// malloc and free pair without zio, 270-370 ns through the engine).
fn small_block(size: usize) -> bool {
    size < config::threshold()
}

/// True if `[p, p+malloc_usable_size(p))` holds tracked data (a `realloc`
/// of it must go through [`copy`] and [`free`]).
///
/// # Safety
/// `p` is a live allocation of the program's allocator.
pub unsafe fn realloc_tracked(p: usize) -> Option<usize> {
    if p == 0 || !tracking() {
        return None;
    }
    let _inside = thread::enter()?;
    // SAFETY: `p` is live.
    let size = unsafe { libc::malloc_usable_size(p as *mut libc::c_void) };
    if small_block(size) {
        return None;
    }
    let g = ENGINE.lock();
    let e = g.as_ref()?;
    let t = e.tracker();
    (t.has_pieces_in(p, p + size) || !t.origs_in(p, p + size).is_empty()).then_some(size)
}

/// After the program's own `MADV_DONTNEED` of `[a, a+len)`: zero pages for
/// what zio registered there (see `Engine::fill_discarded`).
pub fn after_discard(a: usize, len: usize) {
    if len == 0 || HANDLER_FD.load(Ordering::Relaxed) < 0 {
        return;
    }
    let Some(_inside) = thread::enter() else {
        return;
    };
    with_engine(|e| {
        e.fill_discarded(page_down(a), page_up(a + len) - page_down(a));
        Ok(())
    });
}

/// Before `munmap`, `mremap` (`keep_data`) or a discarding `madvise` of
/// `[a, a+len)`.
pub fn discard(a: usize, len: usize, keep_data: bool, unmapping: bool) {
    if len == 0 || !tracking() {
        return;
    }
    let Some(_inside) = thread::enter() else {
        return;
    };
    let (a, b) = (page_down(a), page_up(a + len));
    with_engine(|e| e.discard(a, b - a, keep_data, unmapping));
}

/// What `fork` needs around the real call.
pub struct ForkGuard {
    guard: Option<crate::lock::Guard<'static, Option<Engine<RealMem>>>>,
    to_free: Vec<usize>,
    /// glibc runs `pthread_atfork` handlers inside `fork`, on this thread,
    /// while the engine lock is held: hooks they reach must pass through.
    _inside: Option<thread::Inside>,
}

/// Before `fork`: materialize everything, drop protections, and hold the
/// engine and heap locks across the fork so the child inherits consistent
/// state.
pub fn fork_prepare() -> ForkGuard {
    let inside = thread::enter();
    let mut guard = ENGINE.lock();
    let mut to_free = Vec::new();
    if let Some(e) = guard.as_mut() {
        e.prepare_fork();
        publish(e);
        to_free = e.take_to_free();
    }
    heap::lock_for_fork();
    ForkGuard {
        guard: Some(guard),
        to_free,
        _inside: inside,
    }
}

/// After `fork`, in the parent (`child == false`) or the child.
pub fn fork_finish(mut g: ForkGuard, child: bool) {
    heap::unlock_after_fork();
    if child {
        // The child has no handler thread and no registrations: start over.
        // SAFETY: only this thread exists in the child, and the guard is
        // forgotten, never used again.
        unsafe {
            core::mem::forget(g.guard.take());
            ENGINE.reset();
        }
        let old = ENGINE.lock().take();
        drop(old); // closes the parent's userfaultfd descriptor
        HANDLER_FD.store(-1, Ordering::Relaxed);
        set_tracking(false);
        vma::reset_after_fork();
    } else {
        drop(g.guard.take());
    }
    free_all(&g.to_free);
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
    // The timed calls stand for all of them.
    let m = &e.mem;
    let program = (m.program_ticks as u128 * m.program_calls as u128)
        .checked_div(m.program_timed as u128)
        .unwrap_or(0);
    c.program_ns = ticks_to_ns(program.min(u64::MAX as u128) as u64, m.clock_start);
    c.background_ns = ticks_to_ns(e.mem.background_ticks, e.mem.clock_start);
    c.registrations = e.mem.registrations;
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Engine calls are timed about one in 8.5, and a repeating pattern of
    /// 16 calls (a message's) has each of its calls timed about as often.
    #[test]
    fn clock_samples_every_call_of_a_pattern() {
        let mut timed = [0u32; 16];
        let calls = 16 * 20_000;
        for i in 0..calls {
            if clock_sample().is_some() {
                timed[i % 16] += 1;
            }
        }
        let all: u32 = timed.iter().sum();
        assert!(
            all > calls as u32 / 11 && all < calls as u32 / 7,
            "{all} of {calls} calls timed"
        );
        let mean = all / 16;
        for (k, &n) in timed.iter().enumerate() {
            assert!(
                n > mean * 2 / 3 && n < mean * 3 / 2,
                "call {k} of the pattern timed {n} times, mean {mean}: {timed:?}"
            );
        }
    }

    /// The engine-time counters: ticks spent over a known wall time convert
    /// back to that time (within what a shared VM's scheduling allows).
    #[test]
    fn ticks_convert_to_nanoseconds() {
        let start = (ticks(), now_ns());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (t0, n0) = (ticks(), now_ns());
        std::thread::sleep(std::time::Duration::from_millis(30));
        let (spent, wall) = (ticks() - t0, now_ns() - n0);
        let ns = ticks_to_ns(spent, start);
        assert!(
            ns > wall * 4 / 5 && ns < wall * 5 / 4,
            "{spent} ticks over {wall} ns read as {ns} ns"
        );
    }
}
