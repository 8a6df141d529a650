//! Copy elision: where a `memcpy` is decided. A copy into a reused
//! destination in its steady state only repoints its piece; any other copy
//! drops what its destination held, elides the destination pages whose
//! source bytes are all tracked (if the policy allows), and returns a plan
//! of the real copies left (fringes, untracked parts). Touches the records,
//! the protection state, the unfilled pages and the policy.

use smallvec::SmallVec;

use super::policy::Verdict;
use super::resolve::{resolve, Seg, Src};
use super::unfilled::NOTHING_KNOWN;
use super::{Busy, Cause, Engine, Mem, Runs};
use crate::ranges::{overlaps, page_down, page_up, whole_pages, OrderedRuns, PAGE};
use crate::tracker::{OrigId, Piece, Slots};

/// Where a real copy of a plan takes its bytes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyFrom {
    /// Program memory at this address (the caller's source).
    Mem(usize),
    /// The plan's bounce buffer at this offset.
    Bounce(usize),
}

impl CopyFrom {
    /// Where the byte `k` bytes further on comes from.
    pub fn at(self, k: usize) -> CopyFrom {
        match self {
            CopyFrom::Mem(a) => CopyFrom::Mem(a + k),
            CopyFrom::Bounce(off) => CopyFrom::Bounce(off + k),
        }
    }
}

/// Most pages one plan fills whole ([`CopyPlan::fills`]).
pub const PLAN_FILLS: usize = 4;

/// Real copies, on the stack when few.
pub type RealCopies = SmallVec<[(usize, CopyFrom, usize); 4]>;

/// A copy the caller must perform for real, after releasing the lock.
///
/// It holds no pin: source bytes that live in unmapped pages were read from
/// their originals into `bounce` under the lock. (A pin held while this
/// thread writes program memory could deadlock it: its write may land on a
/// protected page of the very original it pinned, and the write-protect
/// fault would wait for an unpin only this thread can do.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyPlan {
    /// `(dst, from, len)` copies.
    pub real: Vec<(usize, CopyFrom, usize)>,
    /// Bytes of unmapped source pages, read from their originals.
    pub bounce: Vec<u8>,
    /// Use `memmove` for the single entry (source and destination overlap).
    pub overlapping: bool,
    /// Bytes elided by this copy.
    pub elided: usize,
    /// After the copies, record this range as an original (with
    /// [`Engine::input_done`]): it holds IO data that was moved.
    pub record: Option<(usize, usize)>,
    /// Pages a free left unfilled (missing, registered, nothing of zio's
    /// in them) that the real copies write into: the caller fills each
    /// whole at once with the plan's bytes for it and zeros around them
    /// ([`CopyPlan::compose`], `UFFDIO_COPY`), where a zero page would be
    /// copied again by the first write into it. A page it cannot fill is
    /// written as any other ([`CopyPlan::real_outside`]).
    pub fills: SmallVec<[usize; PLAN_FILLS]>,
}

impl CopyPlan {
    /// Writes into `out` (one page) what the page at `page` holds once the
    /// real copies are made, the bytes they do not write being zeros;
    /// `read(from, part)` fills `part` with the bytes at `from`.
    pub fn compose(&self, page: usize, out: &mut [u8], mut read: impl FnMut(CopyFrom, &mut [u8])) {
        out.fill(0);
        for &(dst, from, len) in &self.real {
            let (lo, hi) = (dst.max(page), (dst + len).min(page + PAGE));
            if lo < hi {
                read(from.at(lo - dst), &mut out[lo - page..hi - page]);
            }
        }
    }

    /// The real copies, less what lands in the pages of `filled` (sorted).
    pub fn real_outside(&self, filled: &[usize]) -> RealCopies {
        let mut out = RealCopies::new();
        for &(dst, from, len) in &self.real {
            let mut pos = dst;
            for &p in filled
                .iter()
                .filter(|&&p| overlaps(p, p + PAGE, dst, dst + len))
            {
                if p > pos {
                    out.push((pos, from.at(pos - dst), p - pos));
                }
                pos = pos.max(p + PAGE);
            }
            if pos < dst + len {
                out.push((pos, from.at(pos - dst), dst + len - pos));
            }
        }
        out
    }
}

impl<M: Mem> Engine<M> {
    /// Decides a copy of `n` bytes from `s` to `d` made at call site `site`.
    /// `None`: nothing tracked is involved, copy for real as usual.
    pub fn copy(
        &mut self,
        d: usize,
        s: usize,
        n: usize,
        site: usize,
    ) -> Result<Option<CopyPlan>, Busy> {
        if n == 0 || self.t.is_empty() {
            return Ok(None);
        }
        if !self.t.has_pieces_in(s, s + n) && !self.t.has_origs_in(s, s + n) {
            // Nothing tracked is copied: the caller copies for real. An
            // idle original left protected there is overwritten: released
            // now, not through a write fault.
            self.fill_unfilled(d, d + n);
            if self.prot.wp.intersects(page_down(d), page_up(d + n)) {
                self.release_originals(d, d + n, Cause::Write)?;
                self.t.trim_originals(d, d + n);
            }
            return Ok(None);
        }
        if self.plain_copy_of_an_original(d, s, n) {
            return Ok(None);
        }
        // The steady state of a reused destination, decided in a few
        // lookups: every copy of a static buffer chain after the first.
        let mut verdict = None;
        if let Some((src, orig)) = self.repointable(d, s, n) {
            let v = self.policy_for(d, n, site);
            if let Verdict::Elide(slots) = v {
                if let Some(plan) = self.repoint(d, n, src, orig, slots) {
                    return Ok(Some(plan));
                }
            }
            verdict = Some(v);
        }
        // A reused destination re-elided from the same input drops the
        // original's last dependent and adds it back a moment later: only
        // what is idle once the copy is decided gets unprotected, instead of
        // an unprotect and a protect ioctl in every such copy.
        self.prot.deferred_unprotect = Some(Runs::new());
        let plan = self.decide_copy(d, s, n, site, verdict);
        for (a, b) in self.prot.deferred_unprotect.take().unwrap_or_default() {
            self.unprotect_idle(a, b);
        }
        plan
    }

    /// A copy too small to elide, of bytes of one original, into pages
    /// that hold nothing tracked (a server's copy of a message into a heap
    /// chunk whose whole pages fall short of the threshold): what the
    /// general path would do comes to a real copy by the caller and a
    /// hint that the destination now holds those bytes. True if it was
    /// that, with the hint noted; false, changing nothing, for any other.
    fn plain_copy_of_an_original(&mut self, d: usize, s: usize, n: usize) -> bool {
        let (c0, c1) = whole_pages(d, n);
        if c1 - c0 >= self.cfg.threshold || overlaps(d, d + n, s, s + n) {
            return false;
        }
        let (pd, pu) = (page_down(d), page_up(d + n));
        // Nothing at the destination to drop, release, unprotect or fill:
        // its pages are present and writable. (An original may share its
        // end pages, as heap chunks share pages: unprotected, it has no
        // dependents to serve first.)
        if self.t.has_pieces_in(pd, pu)
            || self.t.has_origs_in(d, d + n)
            || self.prot.wp.intersects(pd, pu)
            || self.unfilled.intersects(pd, pu)
            || self.t.has_pieces_in(s, s + n)
        {
            return false;
        }
        let Some(id) = self.t.orig_covering(s, s + n) else {
            return false;
        };
        self.fringes.note(d, n, s, id);
        self.counters.copied_bytes += n as u64;
        self.paths.plain_copies += 1;
        self.copied_too_small();
        true
    }

    /// Any copy but the steady state: `verdict` is the policy's, if
    /// [`Engine::copy`] already asked it (it must be asked once per copy).
    fn decide_copy(
        &mut self,
        d: usize,
        s: usize,
        n: usize,
        site: usize,
        verdict: Option<Verdict>,
    ) -> Result<Option<CopyPlan>, Busy> {
        if overlaps(d, d + n, s, s + n) {
            return self.copy_overlapping(d, s, n).map(Some);
        }
        let verdict = verdict.unwrap_or_else(|| self.policy_for(d, n, site));
        // The destination is overwritten: whole pages' old pieces are
        // dropped, partial pages rebuilt, originals there released.
        let dropped = self.overwrite((d, d + n), d, d + n)?;
        let elided = match verdict {
            Verdict::Elide(slots) => self.elide_pages(d, s, whole_pages(d, n), &dropped, slots),
            Verdict::Refused => {
                self.counters.policy_skips += 1;
                Runs::new()
            }
            Verdict::TooSmall => Runs::new(),
        };
        // Dropped pages copied for real below must not fault one by one.
        self.fill_dropped(dropped, &elided);
        let mut plan = self.plan_real(d, s, n, &elided);
        plan.elided = elided.iter().map(|(a, b)| b - a).sum();
        if plan.elided > 0 {
            self.counters.elided_copies += 1;
            self.counters.elided_bytes += plan.elided as u64;
        }
        self.sync_counts();
        Ok(Some(plan))
    }

    /// IO data shifted inside its own buffer (Redis drops a protocol header
    /// this way) is still IO data: it is moved for real and, if it was an
    /// original, recorded again afterwards.
    fn copy_overlapping(&mut self, d: usize, s: usize, n: usize) -> Result<CopyPlan, Busy> {
        let was_original = self.t.has_origs_in(s, s + n);
        let (lo, hi) = (s.min(d), s.max(d) + n);
        self.fill_unfilled(lo, hi);
        self.prepare_write(lo, hi)?;
        self.t.trim_originals(lo, hi);
        self.paths.overlapping_copies += 1;
        self.sync_counts();
        Ok(CopyPlan {
            real: vec![(d, CopyFrom::Mem(s), n)],
            overlapping: true,
            record: was_original.then_some((d, n)),
            ..CopyPlan::default()
        })
    }

    /// The real copies of `[d, d+n)` outside the `elided` runs, each from
    /// where its bytes are: program memory, or (for bytes in unmapped
    /// pages) the plan's bounce buffer, read from their originals now.
    fn plan_real(&mut self, d: usize, s: usize, n: usize, elided: &[(usize, usize)]) -> CopyPlan {
        let mut plan = CopyPlan::default();
        let mut pos = d;
        let mut parts = Runs::new();
        for &(r0, r1) in elided {
            parts.push((pos, r0));
            pos = r1;
        }
        parts.push((pos, d + n));
        for (lo, hi) in parts {
            if lo >= hi {
                continue;
            }
            self.take_unfilled(&mut plan, lo, hi);
            self.fill_unfilled(lo, hi);
            for (a, b, src) in resolve(&self.t, s + (lo - d), s + (hi - d)) {
                // What the real copy puts at the destination: an original's
                // bytes, or plain bytes a hint says are (passed on
                // unchecked; a hint is checked where it is used).
                match src {
                    Src::Orig(id) => self.fringes.note(d + (a - s), b - a, a, id),
                    Src::Piece { addr, orig } => self.fringes.note(d + (a - s), b - a, addr, orig),
                    Src::Plain => self.fringes.pass_on(a, b, d + (a - s)),
                }
                let from = match src {
                    Src::Piece { addr, .. } => {
                        let off = plan.bounce.len();
                        plan.bounce.resize(off + (b - a), 0);
                        self.mem.read(addr, &mut plan.bounce[off..]);
                        self.charge_read(a, b);
                        CopyFrom::Bounce(off)
                    }
                    _ => CopyFrom::Mem(a),
                };
                plan.real.push((d + (a - s), from, b - a));
                self.counters.copied_bytes += (b - a) as u64;
            }
        }
        plan
    }

    /// Pages of the real part `[lo, hi)` that a free left unfilled become
    /// the plan's to fill ([`CopyPlan::fills`]), up to [`PLAN_FILLS`] of
    /// them (a copy's fringes and the pages next to them; the rest get
    /// zero pages).
    fn take_unfilled(&mut self, plan: &mut CopyPlan, lo: usize, hi: usize) {
        if self.unfilled.is_empty() || plan.fills.len() >= PLAN_FILLS {
            return;
        }
        for (a, b) in self.unfilled.clipped(page_down(lo), page_up(hi)) {
            let mut p = a;
            while p < b && plan.fills.len() < PLAN_FILLS {
                plan.fills.push(p);
                p += PAGE;
            }
            self.unfilled.forget(a, p);
        }
    }

    /// The steady state of a reused destination: `[d, d+n)` (whole pages,
    /// at least the threshold) is one piece already and the source is one
    /// tracked, protected run elsewhere, so the piece can just take the new
    /// source ([`Engine::repoint`]): no page is dropped, filled or
    /// protected. Returns where the source bytes are (address, original);
    /// `None` for a copy of any other shape. Whether `[d, d+n)` is one
    /// piece is left to [`Engine::repoint`], which looks it up once to
    /// check and change it. Changes nothing.
    fn repointable(&self, d: usize, s: usize, n: usize) -> Option<(usize, OrigId)> {
        if !d.is_multiple_of(PAGE)
            || !n.is_multiple_of(PAGE)
            || n < self.cfg.threshold
            || overlaps(d, d + n, s, s + n)
        {
            return None;
        }
        let (src, orig) = match self.t.piece_at(s) {
            Some((k, p)) if k + p.len >= s + n => (p.src + (s - k), p.orig),
            Some(_) => return None,
            None => {
                if self.t.has_pieces_in(s, s + n) {
                    return None;
                }
                (s, self.t.orig_covering(s, s + n)?)
            }
        };
        if !self.t.orig(orig).unguarded() && !self.prot.wp.covers(page_down(src), page_up(src + n))
        {
            return None;
        }
        Some((src, orig))
    }

    /// Elides a copy [`Engine::repointable`] accepted if `[d, d+n)` is one
    /// piece: it now reads `n` bytes at `src` of `orig`. `None`, changing
    /// nothing, if it is not.
    fn repoint(
        &mut self,
        d: usize,
        n: usize,
        src: usize,
        orig: OrigId,
        slots: Slots,
    ) -> Option<CopyPlan> {
        let new = Piece {
            len: n,
            src,
            orig,
            stamp: self.clock + 1,
            slots,
            trips: self.trips_for(n),
        };
        if !self.reuse_piece(d, new) {
            return None;
        }
        self.t.orig_mut(orig).copied = true;
        self.counters.elided_copies += 1;
        self.counters.elided_bytes += n as u64;
        self.paths.repoints += 1;
        self.sync_counts();
        Some(CopyPlan {
            elided: n,
            ..CopyPlan::default()
        })
    }

    /// The steady state of a reused destination, for a copy
    /// ([`Engine::repoint`]) and an input alike: the piece at `d` takes
    /// `new`'s bytes. Its pages stay unmapped as they are; the original it
    /// read loses a dependent. False, changing nothing, if `[d, d+new.len)`
    /// is not one piece. Inlined: it is the body of every elided copy in
    /// that state.
    #[inline(always)]
    pub(super) fn reuse_piece(&mut self, d: usize, new: Piece) -> bool {
        let Some(was) = self.t.repoint_piece(d, new) else {
            return false;
        };
        self.clock = self.clock.max(new.stamp);
        debug_assert!(
            !self.t.has_origs_in(d, d + new.len),
            "original under a piece"
        );
        self.orig_changed(was);
        self.policy.elided(new.slots, new.len as u64);
        self.counters.bytes_dropped += new.len as u64;
        true
    }

    /// Elides what it can of the destination core `[c0, c1)`; returns the
    /// elided runs.
    /// `dropped`: pages whose old pieces this copy just dropped. They are
    /// still unmapped and registered (a piece's pages always are), so
    /// eliding into them again needs no system call.
    fn elide_pages(
        &mut self,
        d: usize,
        s: usize,
        (c0, c1): (usize, usize),
        dropped: &OrderedRuns,
        slots: Slots,
    ) -> Runs {
        let segs = resolve(&self.t, s + (c0 - d), s + (c1 - d));
        let segs = self.resolve_fringes(segs);
        let now = self.tick();
        let mut done = Runs::new();
        for (r0, r1) in elidable_runs(&segs, d.wrapping_sub(s), (c0, c1)) {
            if self.elide_run(d, s, (r0, r1), &segs, dropped, now, slots) {
                done.push((r0, r1));
            }
        }
        done
    }

    /// Elides the destination run `[r0, r1)`, whose source bytes `segs`
    /// all tracked: protects its sources, leaves it missing, and records
    /// its pieces. False, eliding nothing, if the memory refused.
    #[allow(clippy::too_many_arguments)]
    fn elide_run(
        &mut self,
        d: usize,
        s: usize,
        (r0, r1): (usize, usize),
        segs: &[Seg],
        dropped: &OrderedRuns,
        now: u64,
        slots: Slots,
    ) -> bool {
        let (sa, sb) = (s + (r0 - d), s + (r1 - d));
        // Protect the sources first: once they are protected, a write to
        // them is caught before it can change bytes a piece points at.
        let protected = self.protect_sources(segs, sa, sb);
        // Pages this copy just dropped, or that a free left missing (if
        // still registered), need no unmapping.
        let missing = dropped.covers(r0, r1) || self.leave_missing(r0, r1, NOTHING_KNOWN);
        if !protected || !missing {
            self.counters.refused += 1;
            return false;
        }
        for &(a, b, src) in segs.iter().filter(|x| overlaps(x.0, x.1, sa, sb)) {
            let (lo, hi) = (a.max(sa), b.min(sb));
            let (addr, orig) = match src {
                Src::Orig(id) => (lo, id),
                Src::Piece { addr, orig } => (addr + (lo - a), orig),
                Src::Plain => unreachable!("elided runs hold tracked bytes only"),
            };
            let piece = Piece {
                len: hi - lo,
                src: addr,
                orig,
                stamp: now,
                slots,
                trips: self.trips_for(hi - lo),
            };
            self.t.insert_piece(d + (lo - s), piece);
            self.t.orig_mut(orig).copied = true;
        }
        self.policy.elided(slots, (r1 - r0) as u64);
        true
    }
}

/// The runs of the destination core `[c0, c1)` that can be elided: whole
/// pages whose source bytes are all tracked, i.e. the whole pages inside
/// each maximal run of contiguous tracked segments of the source `segs`
/// (destination = source + `shift`, wrapping).
fn elidable_runs(segs: &[Seg], shift: usize, (c0, c1): (usize, usize)) -> Runs {
    let mut runs = Runs::new();
    let mut i = 0;
    while i < segs.len() {
        if segs[i].2 == Src::Plain {
            i += 1;
            continue;
        }
        let start = segs[i].0;
        while i + 1 < segs.len() && segs[i + 1].2 != Src::Plain && segs[i + 1].0 == segs[i].1 {
            i += 1;
        }
        let end = segs[i].1;
        i += 1;
        let lo = page_up(start.wrapping_add(shift)).max(c0);
        let hi = page_down(end.wrapping_add(shift)).min(c1);
        if lo < hi {
            runs.push((lo, hi));
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: usize = PAGE;

    /// A filled page holds the plan's bytes for it and zeros around them,
    /// and the real copies left skip it exactly.
    #[test]
    fn filled_pages_are_composed_and_skipped() {
        let plan = CopyPlan {
            real: vec![
                (10 * P + 100, CopyFrom::Mem(1000), P - 100),
                (11 * P, CopyFrom::Bounce(0), 2 * P + 50),
            ],
            fills: [10 * P, 12 * P].into_iter().collect(),
            ..CopyPlan::default()
        };
        let mut page = vec![0xAA; P];
        let mut reads = Vec::new();
        plan.compose(10 * P, &mut page, |from, part| {
            reads.push((from, part.len()));
            part.fill(7);
        });
        assert_eq!(reads, [(CopyFrom::Mem(1000), P - 100)]);
        assert!(page[..100].iter().all(|&b| b == 0) && page[100..].iter().all(|&b| b == 7));
        reads.clear();
        plan.compose(12 * P, &mut page, |from, part| {
            reads.push((from, part.len()))
        });
        assert_eq!(reads, [(CopyFrom::Bounce(P), P)]);
        // Both pages filled: the page between them and the bytes after
        // the second are copied.
        assert_eq!(
            plan.real_outside(&[10 * P, 12 * P]).as_slice(),
            &[
                (11 * P, CopyFrom::Bounce(0), P),
                (13 * P, CopyFrom::Bounce(2 * P), 50)
            ]
        );
        // The second one not filled: it is copied as planned.
        assert_eq!(
            plan.real_outside(&[10 * P]).as_slice(),
            &[(11 * P, CopyFrom::Bounce(0), 2 * P + 50)]
        );
        assert_eq!(plan.real_outside(&[]).as_slice(), plan.real.as_slice());
    }

    /// Whole destination pages inside tracked stretches of the source, at
    /// any alignment between source and destination; untracked bytes split
    /// runs, and the runs stay inside the core.
    #[test]
    fn elidable_runs_are_whole_pages_of_tracked_bytes() {
        let (o, q) = (Src::Orig(1), Src::Piece { addr: 0, orig: 2 });
        // Source 10P..20P all tracked (two kinds), copied to 100P: all of it.
        let segs = [(10 * P, 15 * P, o), (15 * P, 20 * P, q)];
        let shift = 90 * P;
        assert_eq!(
            elidable_runs(&segs, shift, (100 * P, 110 * P)).as_slice(),
            &[(100 * P, 110 * P)]
        );
        // An untracked page in the middle splits it; a misaligned
        // destination loses the partial pages at each stretch's ends.
        let segs = [
            (10 * P, 14 * P, o),
            (14 * P, 15 * P, Src::Plain),
            (15 * P, 20 * P, q),
        ];
        assert_eq!(
            elidable_runs(&segs, shift, (100 * P, 110 * P)).as_slice(),
            &[(100 * P, 104 * P), (105 * P, 110 * P)]
        );
        let shifted = shift + 100;
        assert_eq!(
            elidable_runs(&segs, shifted, (101 * P, 110 * P)).as_slice(),
            &[(101 * P, 104 * P), (106 * P, 110 * P)]
        );
        // A destination below its source (the shift wraps).
        let down = 0usize.wrapping_sub(5 * P);
        assert_eq!(
            elidable_runs(&segs[..1], down, (5 * P, 9 * P)).as_slice(),
            &[(5 * P, 9 * P)]
        );
        // Nothing tracked, or less than a page: nothing.
        assert!(elidable_runs(&[(0, 3 * P, Src::Plain)], shift, (90 * P, 93 * P)).is_empty());
        assert!(elidable_runs(&[(10, P + 5, o)], shift, (90 * P, 91 * P)).is_empty());
    }
}
