//! Originals: the write protection of their pages, their backups, the pins
//! of outputs in flight, and their release before the program changes
//! them. Touches the records, the protection state and the quarantine.

use smallvec::SmallVec;

use super::resolve::{Seg, Src};
use super::{Busy, Cause, Engine, Mem, Runs};
use crate::ranges::{overlaps, page_down, page_up, RangeSet, PAGE};
use crate::tracker::{OrigId, Piece};

/// The write protection of originals' pages.
#[derive(Debug, Default)]
pub(super) struct Protection {
    /// Write-protected pages.
    pub(super) wp: RangeSet,
    /// Write-protect faults waiting for an original to be unpinned.
    pub(super) deferred_wp: Vec<usize>,
    /// While a copy is decided: ranges whose protection may be removed at
    /// its end (see [`Engine::copy`]).
    pub(super) deferred_unprotect: Option<Runs>,
    /// Originals left protected when they went idle, and write faults on
    /// protected pages nothing needed (what leaving them so cost).
    pub(super) idle: IdleProtection,
}

/// Whether idle originals stay protected: a stored value copied out again
/// and again (a cache's GET) then costs no protect and unprotect ioctl per
/// copy. It stops while more than one in [`IDLE_FAULT_SHARE`] of them is
/// then written by the program itself (a write fault, a round trip, where
/// the unprotect would have been one ioctl); one in [`IDLE_PROBE`] is kept
/// anyway, to notice when the program changes.
#[derive(Debug, Default)]
pub(super) struct IdleProtection {
    kept: u64,
    faults: u64,
    unkept: u64,
}

/// See [`IdleProtection`].
const IDLE_FAULT_SHARE: u64 = 8;

/// See [`IdleProtection`].
const IDLE_PROBE: u64 = 64;

/// Kept idle originals beyond which both counts halve (recent behaviour
/// weighs more).
const IDLE_HALVE_AT: u64 = 1 << 16;

impl IdleProtection {
    /// An original went idle: true to leave its pages protected.
    fn keep(&mut self) -> bool {
        if self.faults * IDLE_FAULT_SHARE > self.kept {
            self.unkept += 1;
            if !self.unkept.is_multiple_of(IDLE_PROBE) {
                return false;
            }
        }
        self.kept += 1;
        if self.kept > IDLE_HALVE_AT {
            self.kept /= 2;
            self.faults /= 2;
        }
        true
    }
}

impl<M: Mem> Engine<M> {
    /// After an original lost dependents or pins: if nothing needs it any
    /// more, zio's memory goes back for reuse, or the program's pages are
    /// unprotected and its quarantine released. Inlined down to the check:
    /// almost every call (each copy of a chain but the last) finds it still
    /// busy.
    #[inline(always)]
    pub(super) fn orig_changed(&mut self, id: OrigId) {
        // The record may already be gone (released by an earlier step of the
        // same operation); what follows is idempotent, so just stop.
        if self.t.try_orig(id).is_some_and(|o| !o.busy()) {
            self.orig_idle(id);
        }
    }

    /// Original `id` exists and nothing needs it any more ([`Engine::orig_changed`]).
    #[inline(never)]
    fn orig_idle(&mut self, id: OrigId) {
        let o = self.t.orig(id);
        if o.backup {
            if o.asked_end != 0 && !o.copied {
                // A redirected input nothing was elided from: the redirect
                // only cost (the program read it, or freed it, or
                // overwrote it), and the policy is told as for a touch of
                // all of it. Unseen, a buffer the allocator hands back
                // would be redirected on every message.
                self.policy.touched(o.slots, o.len as u64);
                self.paths.unused_redirects += 1;
            }
            let o = self.t.orig(id);
            let (start, len) = (o.start, o.len);
            self.t.remove_original(id);
            self.mem.backup_release(start, len);
            self.counters.backup_bytes -= len as u64;
            return;
        }
        let (a, b) = (page_down(o.start), page_up(o.end()));
        let q = o.quarantined;
        if o.lent && q.is_none() {
            return; // the stack's until it releases it; nothing is protected
        }
        if let Some(alloc) = q {
            self.unprotect_idle(a, b);
            self.try_release_quarantine(alloc);
        } else if !self.prot.wp.intersects(a, b) || !self.prot.idle.keep() {
            self.unprotect_idle(a, b);
        }
    }

    /// Unprotects the protected pages of `[a, b)` that no piece and no pin
    /// needs any more. Pages at the edges of an original are often shared
    /// with a neighbour whose dependents still need them.
    ///
    /// Cost is in the originals' dependents, not in pages: it runs every time
    /// an original loses its last dependent, which for a reused input
    /// buffer is every message.
    pub(super) fn unprotect_idle(&mut self, a: usize, b: usize) {
        if !self.prot.wp.intersects(a, b) {
            return;
        }
        if let Some(later) = &mut self.prot.deferred_unprotect {
            later.push((a, b));
            return;
        }
        let keep = self.pages_needing_protection(a, b);
        // Contiguous idle pages go in one call: a buffer is one ioctl, not
        // one per page.
        for (s, e) in self.prot.wp.clipped(a, b) {
            for (ga, gb) in keep.gaps(s, e) {
                self.mem.protect(ga, gb - ga, false);
                self.prot.wp.remove(ga, gb);
            }
        }
    }

    /// The pages of the originals in `[a, b)` that must stay protected: the
    /// whole of a pinned one, the sources of the others' dependents.
    pub(super) fn pages_needing_protection(&self, a: usize, b: usize) -> RangeSet {
        let mut keep = RangeSet::new();
        for id in self.t.origs_in(a, b) {
            let o = self.t.orig(id);
            if o.pins > 0 {
                keep.insert_pages(o.start, o.end());
                continue;
            }
            for k in &o.deps {
                let p = self.t.piece(*k).unwrap();
                keep.insert_pages(p.src, p.src + p.len);
            }
        }
        keep
    }

    /// Before `[a, b)` of memory changes: materialize every piece whose bytes
    /// live in the pages of `[a, b)` (or back those bytes up for them) and
    /// unprotect those pages. `Busy` if an original there is pinned (the
    /// dependents are materialized anyway; the caller retries later).
    pub(super) fn release_originals(
        &mut self,
        a: usize,
        b: usize,
        cause: Cause,
    ) -> Result<(), Busy> {
        let (pa, pb) = (page_down(a), page_up(b));
        let mut busy = false;
        for id in self.t.origs_in(pa, pb) {
            // Materializing one original's dependents can release a
            // quarantined allocation and delete the records of this and
            // later originals in the list: skip those that are gone. (A
            // reused id is harmless: only dependents in [pa, pb) are acted
            // on.)
            let Some(o) = self.t.try_orig(id) else {
                continue;
            };
            busy |= o.pins > 0;
            let (lo, hi) = (o.start.max(pa), o.end().min(pb));
            let deps: SmallVec<[usize; 16]> = o
                .deps
                .iter()
                .copied()
                .filter(|k| {
                    let p = self.t.piece(*k).unwrap();
                    overlaps(p.src, p.src + p.len, lo, hi)
                })
                .collect();
            if deps.is_empty() || self.back_up(id, lo, hi, &deps) {
                continue;
            }
            // Where the dependents read `[pa, pb)`, taken before any is
            // rebuilt: rebuilding one page cuts every piece there, which
            // leaves a dependent further on under another key.
            let ranges: SmallVec<[(usize, usize); 16]> = deps
                .iter()
                .map(|&k| {
                    let p = self.t.piece(k).unwrap();
                    let (s0, s1) = (p.src.max(pa), (p.src + p.len).min(pb));
                    (k + (s0 - p.src), k + (s1 - p.src))
                })
                .collect();
            for (d0, d1) in ranges {
                self.materialize_range(d0, d1, cause);
            }
        }
        if busy {
            return Err(Busy);
        }
        self.unprotect_range(pa, pb);
        Ok(())
    }

    /// Before `[a, b)` is written for real (an input call into it, an
    /// overlapping move): its unmapped pages are rebuilt and the originals
    /// there released.
    pub(super) fn prepare_write(&mut self, a: usize, b: usize) -> Result<(), Busy> {
        self.materialize_range(a, b, Cause::Other);
        self.release_originals(a, b, Cause::Write)
    }

    /// A writer waits at `page` of an original (a write-protect fault):
    /// release it, then unprotect the page, which wakes the writer (even if
    /// the page was already unprotected). If the original is pinned, the
    /// page waits until [`Engine::unpin`] serves it again.
    pub(super) fn serve_write(&mut self, page: usize) -> Result<(), Busy> {
        // Nothing needs the page protected: an idle original left so (see
        // `IdleProtection`), written by the program. The rest of its
        // protected run that nothing needs goes too, in one call, not
        // one fault per page.
        let idle = self.pages_needing_protection(page, page + PAGE).is_empty();
        match self.release_originals(page, page + PAGE, Cause::Write) {
            Ok(()) => {
                self.mem.protect(page, PAGE, false);
                if idle {
                    self.prot.idle.faults += 1;
                    let run = self
                        .prot
                        .wp
                        .overlapping(page.saturating_sub(PAGE), page + 2 * PAGE)
                        .collect::<SmallVec<[(usize, usize); 2]>>();
                    for (s, e) in run {
                        self.unprotect_idle(s, e);
                    }
                }
                Ok(())
            }
            Err(Busy) => {
                self.prot.deferred_wp.push(page);
                Err(Busy)
            }
        }
    }

    /// Before `[lo, hi)` of original `id` changes: copy those bytes once
    /// into a backup and point the dependents `deps` there, instead of
    /// rebuilding every dependent page (one copy for any number of copies of
    /// the data; the dependents stay unmapped). False, changing nothing, if
    /// the backup budget (`ZIO_QUARANTINE`) is spent or no memory is had.
    fn back_up(&mut self, id: OrigId, lo: usize, hi: usize, deps: &[usize]) -> bool {
        let len = hi - lo;
        if self.counters.backup_bytes + len as u64 > self.cfg.quarantine as u64 {
            return false;
        }
        let Some(addr) = self.mem.backup(lo, len) else {
            return false;
        };
        let now = self.tick();
        let bid = self.t.add_original(addr, len, now);
        self.t.orig_mut(bid).backup = true;
        for &k in deps {
            let Some(p) = self.t.piece(k).copied() else {
                continue;
            };
            let (s0, s1) = (p.src.max(lo), (p.src + p.len).min(hi));
            if s0 >= s1 {
                continue;
            }
            let (d0, d1) = (k + (s0 - p.src), k + (s1 - p.src));
            self.t.cut_piece(k, d0, d1);
            let moved = Piece {
                len: d1 - d0,
                src: addr + (s0 - lo),
                orig: bid,
                // Its trips stayed with the parts the cut left: a backed-up
                // copy is filled whole at its next fault, which frees the
                // backup soonest.
                trips: 0,
                ..p
            };
            self.t.insert_piece(d0, moved);
        }
        self.counters.bytes_backed_up += len as u64;
        self.counters.backup_bytes += len as u64;
        self.paths.backups += 1;
        self.orig_changed(id);
        self.orig_changed(bid); // nothing pointed there after all: release
        true
    }

    /// Unprotects every protected page of `[pa, pb)`.
    pub(super) fn unprotect_range(&mut self, pa: usize, pb: usize) {
        if !self.prot.wp.intersects(pa, pb) {
            return;
        }
        for (s, e) in self.prot.wp.clipped(pa, pb) {
            self.mem.protect(s, e - s, false);
        }
        self.prot.wp.remove(pa, pb);
    }

    /// Protects the source bytes of `segs` that lie in `[sa, sb)` (before
    /// pieces point at them: once protected, a write to them is caught
    /// before it can change bytes a piece reads). Backups need none: only
    /// zio writes them, lent memory none either: its stack releases it
    /// before changing it. False if some page could not be protected.
    pub(super) fn protect_sources(&mut self, segs: &[Seg], sa: usize, sb: usize) -> bool {
        let mut protected = true;
        for &(a, b, src) in segs.iter().filter(|x| overlaps(x.0, x.1, sa, sb)) {
            let (lo, hi) = match src {
                Src::Orig(orig) if self.t.orig(orig).unguarded() => continue,
                Src::Orig(_) => (a.max(sa), b.min(sb)),
                Src::Piece { orig, .. } if self.t.orig(orig).unguarded() => continue,
                Src::Piece { addr, .. } => {
                    let lo = a.max(sa);
                    (addr + (lo - a), addr + (b.min(sb) - a))
                }
                Src::Plain => unreachable!("elided runs hold tracked bytes only"),
            };
            for (ga, gb) in self.prot.wp.gaps(page_down(lo), page_up(hi)) {
                if self.mem.protect(ga, gb - ga, true) {
                    self.prot.wp.insert(ga, gb);
                } else {
                    protected = false;
                }
            }
        }
        protected
    }

    /// Releases the pins a gather list (or a redirect into an original's
    /// memory) took; writers that waited for them are served.
    pub fn unpin(&mut self, pins: &[OrigId]) {
        for &id in pins {
            let o = self.t.orig_mut(id);
            o.pins -= 1;
            if o.pins > 0 {
                continue;
            }
            let (a, b) = (page_down(o.start), page_up(o.end()));
            let here = |p: &usize| *p >= a && *p < b;
            let waiting: Vec<usize> = self.prot.deferred_wp.iter().copied().filter(here).collect();
            self.prot.deferred_wp.retain(|p| !here(p));
            for p in waiting {
                // Busy again: it goes back on the list.
                let _ = self.serve_write(p);
            }
            self.orig_changed(id);
        }
    }
}
