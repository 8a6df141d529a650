//! The entry points the hooks call, one per kind of call: copies, input,
//! output, free and realloc, unmaps and discards, fork. Each takes the
//! engine's lock, asks the engine, releases the lock, then does what
//! touches program memory; a copy, free or output of memory the cover
//! leaves clear takes no lock.

use core::sync::atomic::Ordering;

use super::{
    armed, block_is_clear, bytes_are_clear, copy_is_clear, ensure_started, publish, run_engine,
    tracking, with_engine, with_engine_quiet, ACTIVE, COVER, ENGINE, HANDLER_FD, MADE,
};
use super::{count_unrecorded, free_all, set_tracking, spend_unrecorded, unrecorded_due};
use crate::engine::{CopyFrom, CopyPlan, FreeAction, Gather, IoRanges, Redirect, PLAN_FILLS};
use crate::ranges::{page_down, page_up, PAGE};
use crate::{config, heap, real, thread, vma};

/// A copy the hook could not leave to libc alone. Returns false if the
/// caller should just copy for real (nothing tracked is involved).
///
/// # Safety
/// `memcpy`/`memmove` contract: `s` readable and `d` writable for `n` bytes.
pub unsafe fn copy(d: usize, s: usize, n: usize, site: usize) -> bool {
    let Some(_inside) = thread::enter() else {
        return false;
    };
    if copy_is_clear(d, s, n) {
        return false;
    }
    if !armed(d, n) {
        // Too small to elide: the engine only counts it, against recording
        // inputs no copy elides from (the policy's dormancy).
        with_engine(|e| {
            e.copied_unarmed(s, n);
            Ok(())
        });
        return false;
    }
    let plan: Option<CopyPlan> =
        with_engine_quiet(|e| e.copy(d, s, n, site), Option::is_none).flatten();
    let Some(plan) = plan else {
        return false;
    };
    let filled = fill_pages(&plan);
    for (dst, from, len) in plan.real_outside(&filled) {
        let src = match from {
            CopyFrom::Mem(a) => a as *const libc::c_void,
            CopyFrom::Bounce(off) => plan.bounce[off..].as_ptr().cast(),
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

/// Fills the pages `plan` names whole ([`CopyPlan::fills`]), a run of
/// adjacent ones in one request; returns those filled, whose bytes the
/// real copies then skip.
fn fill_pages(plan: &CopyPlan) -> smallvec::SmallVec<[usize; PLAN_FILLS]> {
    let mut filled = smallvec::SmallVec::new();
    let fd = HANDLER_FD.load(Ordering::Relaxed);
    if fd < 0 {
        return filled;
    }
    let mut bytes = [0u8; PLAN_FILLS * PAGE];
    let mut i = 0;
    while i < plan.fills.len() {
        let start = plan.fills[i];
        let mut n = 1;
        while i + n < plan.fills.len() && plan.fills[i + n] == start + n * PAGE {
            n += 1;
        }
        for (k, page) in bytes.chunks_exact_mut(PAGE).take(n).enumerate() {
            plan.compose(start + k * PAGE, page, |from, part| match from {
                // SAFETY: a source inside the caller's range, readable for
                // `part.len()` bytes (a fault there is served: no lock is
                // held).
                CopyFrom::Mem(a) => unsafe {
                    real::memcpy(part.as_mut_ptr().cast(), a as *const _, part.len());
                },
                CopyFrom::Bounce(off) => part.copy_from_slice(&plan.bounce[off..off + part.len()]),
            });
        }
        let done = crate::uffd::fill_pages(fd, start, &bytes[..n * PAGE]);
        filled.extend((0..done).map(|k| start + k * PAGE));
        i += n;
    }
    filled
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
    if n == 0 || !tracking() || block_is_clear(a, n) {
        return;
    }
    let Some(_inside) = thread::enter() else {
        return;
    };
    with_engine_quiet(|e| e.input_prepare(a, n), |_| true);
}

/// After an input call put `got` bytes at `a`.
pub fn input_done(a: usize, got: usize) {
    if got < config::threshold() || !ACTIVE.load(Ordering::Relaxed) {
        return;
    }
    // Left unrecorded where zio holds nothing: no lock at all.
    let dormant = unrecorded_due();
    if dormant && (!tracking() || block_is_clear(a, got)) && spend_unrecorded() {
        count_unrecorded();
        return;
    }
    let Some(_inside) = thread::enter() else {
        return;
    };
    // Made once, the engine stays: one lock per input, not two.
    let started = MADE.load(Ordering::Acquire) || ensure_started(&mut ENGINE.lock());
    if started {
        with_engine(|e| {
            if dormant && spend_unrecorded() && e.input_unrecorded(a, got) {
                count_unrecorded();
            } else {
                e.input_done(a, got);
            }
            Ok(())
        });
    }
}

/// The gather list for an output of `[a, a+n)`, or `None` if it can go out
/// unchanged. The caller must pass the result to [`output_done`].
pub fn output(a: usize, n: usize) -> Option<Gather> {
    if n == 0 || !tracking() || bytes_are_clear(a, n) {
        return None;
    }
    let _inside = thread::enter()?;
    let g = run_engine(false, |e| Ok(e.output(a, n)), |g| g.substituted == 0)?;
    if g.substituted == 0 {
        return None;
    }
    Some(g)
}

/// The gather list for an output of several buffers (an iovec), or `None`
/// if it can go out unchanged.
pub fn output_vec(parts: &[(usize, usize)]) -> Option<Gather> {
    if !tracking() || parts.iter().all(|&(a, n)| bytes_are_clear(a, n)) {
        return None;
    }
    let _inside = thread::enter()?;
    let g = run_engine(
        false,
        |e| {
            let mut all = Gather::default();
            for &(a, n) in parts {
                e.output_into(&mut all, a, n);
            }
            Ok(all)
        },
        |g| g.substituted == 0,
    )?;
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
    if small_block(size) || block_is_clear(p, size) {
        return false;
    }
    with_engine_quiet(|e| Ok(e.free(p, size)), |&a| a == FreeAction::Now)
        == Some(FreeAction::Quarantined)
}

/// True if a block of `size` bytes can be freed or reallocated without the
/// engine. Elided copies and recorded inputs are at least the threshold,
/// so a smaller block holds none of them whole; what it may still share
/// with them is guarded by the pages themselves: an original's pages are
/// write-protected and an elided copy's are missing, so the allocator's
/// or the next owner's first access is a fault that keeps every byte
/// right. Skipping the engine here spares every small `free` of a program
/// the engine's lock while anything is tracked, which would cost several
/// times the `malloc` and `free` themselves.
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
    if small_block(size) || bytes_are_clear(p, size) {
        return None;
    }
    let g = ENGINE.lock();
    let e = g.as_ref()?;
    let t = e.tracker();
    (t.has_pieces_in(p, p + size) || t.has_origs_in(p, p + size)).then_some(size)
}

/// Before a `realloc` of the tracked block `[p, p+size)` made by the
/// program's own allocator (see [`Engine::release_for_realloc`]): the
/// ranges of IO data to record again, as offsets, where the block lands;
/// `None` if the realloc must be an elided copy and a free instead.
pub fn release_for_realloc(p: usize, size: usize) -> Option<IoRanges> {
    let _inside = thread::enter()?;
    with_engine(|e| e.release_for_realloc(p, size)).flatten()
}

/// After the program's own `MADV_DONTNEED` of `[a, a+len)`: zero pages for
/// what zio registered there (see [`Engine::fill_discarded`]).
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

/// The kernel or a device is about to pin `[a, a+len)` for `owner` (a
/// registration zio saw): what zio tracks there is materialized, and
/// nothing is elided there until [`unpin`] of the owner. False for a
/// range no one can pin (empty, or reaching the last page).
pub fn pin(owner: usize, a: usize, len: usize) -> bool {
    let pinned = crate::pins::pin(owner, a, len);
    if pinned {
        discard(a, len, true, false);
    }
    pinned
}

/// `owner` let go of its pins (its unregistration, or a registration that
/// failed).
pub fn unpin(owner: usize) {
    crate::pins::unpin_owner(owner);
}

/// What `fork` needs around the real call.
pub struct ForkGuard {
    to_free: Vec<usize>,
    /// glibc runs `pthread_atfork` handlers inside `fork`, on this thread:
    /// hooks they reach must pass through.
    _inside: Option<thread::Inside>,
}

/// Before `fork`: materialize everything and drop protections; until
/// [`fork_finish`], no page is left missing again (the child gets no
/// userfaultfd state, so it must inherit every byte in place).
///
/// No lock of zio's is held across the fork itself: glibc's `fork` waits
/// for the program's allocator locks, and a thread holding one may be
/// faulting on an elided page (a `realloc` copying inside libc), which the
/// handler thread serves only with zio's lock. The child instead starts
/// zio's state afresh, trusting nothing another thread may have been
/// changing at the moment of the copy.
pub fn fork_prepare() -> ForkGuard {
    let inside = thread::enter();
    super::FORKING.fetch_add(1, Ordering::AcqRel);
    let mut to_free = Vec::new();
    {
        let mut guard = ENGINE.lock();
        if let Some(e) = guard.as_mut() {
            e.prepare_fork();
            publish(e);
            to_free = e.take_to_free();
        }
    }
    ForkGuard {
        to_free,
        _inside: inside,
    }
}

/// After `fork`, in the parent (`child == false`) or the child.
pub fn fork_finish(g: ForkGuard, child: bool) {
    if child {
        // The child has no handler thread and no registrations: start over
        // from nothing of the parent's, whose state another thread may
        // have been changing (it is left as it is, never used again).
        // Each reset writes only what is not reset already: every page the
        // child writes is a copy-on-write fault, and a child that execs or
        // exits at once should pay for none of zio's.
        // SAFETY: only this thread exists in the child; no guard of these
        // locks taken before the fork is used after it.
        unsafe {
            heap::reset_in_child();
            ENGINE.reset();
            crate::pins::reset_in_child();
            COVER.reset();
        }
        if MADE.load(Ordering::Relaxed) {
            core::mem::forget(ENGINE.lock().take());
            MADE.store(false, Ordering::Relaxed);
        }
        let fd = HANDLER_FD.load(Ordering::Relaxed);
        if fd >= 0 {
            HANDLER_FD.store(-1, Ordering::Relaxed);
            // SAFETY: the parent's userfaultfd, inherited; closed, it keeps
            // the child from ever acting on the parent's memory.
            unsafe { libc::close(fd) };
        }
        super::FORKING.store(0, Ordering::Release);
        super::self_test_after_fork();
        set_tracking(false);
        vma::reset_after_fork();
    } else {
        super::FORKING.fetch_sub(1, Ordering::AcqRel);
    }
    free_all(&g.to_free);
}
