//! Input redirection: an input call into a reused buffer whose old bytes
//! copies still need lands in memory zio owns, which becomes the original,
//! and the buffer's whole pages are left missing as a copy of it. The old
//! bytes need no backup and no protection changes. Touches the records,
//! the unfilled pages, the policy and zio's own memory budget.

use smallvec::SmallVec;

use super::policy::{Verdict, INPUT_SITE};
use super::unfilled::NOTHING_KNOWN;
use super::{Busy, Engine, Mem};
use crate::ranges::{overlaps, page_down, page_up, whole_pages, PAGE};
use crate::tracker::{OrigId, Piece, Slots};

/// An input call that lands in zio's memory instead of the program's
/// buffer ([`Engine::input_target`]): the caller reads into `to` (at least
/// the requested length) and hands it back with
/// [`Engine::input_redirected`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Redirect {
    /// Where the input call must put its bytes.
    pub to: usize,
    /// Bytes of zio's memory from `to` this input may use: at least the
    /// length asked for.
    len: usize,
    /// The length the input call asked for.
    asked: usize,
    slots: Slots,
    /// Continues the memory of this original (pinned meanwhile) rather
    /// than fresh memory.
    into: Option<OrigId>,
    /// Whole pages of the buffer known left missing and registered for
    /// this message ([`crate::tracker::Original::verified`]).
    verified: (usize, usize),
}

impl<M: Mem> Engine<M> {
    /// Before an input call of up to `n` bytes at `a`: if `[a, a+n)` is a
    /// reused input buffer, returns where the call should land instead: in
    /// memory zio owns, which becomes the original, while the buffer's
    /// whole pages are left unmapped as a copy of it. The old bytes then
    /// need no backup (the copies that point at them keep them where they
    /// are) and no protection changes, because nothing but zio writes its
    /// own memory. `None`: the input lands in the buffer as usual (call
    /// [`Engine::input_prepare`]).
    ///
    /// Only a buffer whose old bytes copies still need, or copies were made
    /// from, or that was redirected and left alone, is redirected (not a
    /// fresh one, nor one the program only reads itself), and only while
    /// the policy sees its unmapped pages left alone: a program that parses
    /// its input buffer in place faults there and soon has its input
    /// landed in the buffer again. A later part of a message read in parts
    /// goes where its start went (see `continuation`).
    ///
    /// Pages a free left unfilled stay so here: a redirect keeps its core
    /// missing as it is ([`Engine::input_redirected`]), and an input landing
    /// in the buffer gets zero pages first ([`Engine::input_prepare`]).
    pub fn input_target(&mut self, a: usize, n: usize) -> Option<Redirect> {
        if !self.cfg.redirect_input || n == 0 || self.mem.pinned(a, n) {
            return None;
        }
        // The rest of a message whose start was redirected (within what its
        // first call asked for) follows it into zio's memory whatever its
        // size and pages: the start's decision is the message's. Judged
        // alone, a last part without a whole page would land in the buffer,
        // every copy would then copy that page for real and the next
        // message unmap it again. Past the asked range it is another
        // message's start, judged as one.
        let cont = self.continuation(a, n);
        if let Some((to, id, slots)) = cont {
            if to + n <= self.t.orig(id).asked_end {
                return Some(self.redirect_into(to, id, n, slots));
            }
        }
        if !self.worth_redirecting(a, n) {
            return None;
        }
        let Verdict::Elide(slots) = self.policy_for(a, n, INPUT_SITE) else {
            return None;
        };
        if let Some((to, id, _)) = cont {
            return Some(self.redirect_into(to, id, n, slots));
        }
        let verified = self.claim_handed_back(a, n)?;
        // Room up to the end of the last page: a call that ends inside it
        // may move the page's other bytes there ([`Engine::tail_into_own`]).
        let span = page_up(a + n) - a;
        let to = self.mem.own(span)?;
        self.counters.backup_bytes += span as u64;
        Some(Redirect {
            to,
            len: span,
            asked: n,
            slots,
            into: None,
            verified,
        })
    }

    /// True if an input of up to `n` bytes at `a` is large enough, fits
    /// zio's memory budget, and lands where the buffer holds something
    /// worth not overwriting: copies still point at it (an original with
    /// dependents), or it is itself a copy left unmapped (the last input
    /// was redirected and nobody touched it), or it is an input buffer
    /// copies were made from, freed and handed back by the allocator
    /// ([`InputBuffers`]). An input buffer nobody copies from gains
    /// nothing.
    fn worth_redirecting(&self, a: usize, n: usize) -> bool {
        if n < self.cfg.threshold {
            return false;
        }
        let (c0, c1) = whole_pages(a, n);
        let span = page_up(a + n) - a;
        if c1 - c0 < self.cfg.threshold
            || self.counters.backup_bytes + span as u64 > self.cfg.quarantine as u64
        {
            return false;
        }
        self.t.has_pieces_in(c0, c1)
            || self
                .t
                .origs_in(c0, c1)
                .iter()
                .any(|&id| self.t.orig(id).copied)
            || self.inputs.knows(c0, c1, self.cfg.threshold)
    }

    /// A redirect of `n` bytes to `to`, in the memory of original `id`
    /// (pinned until the input call is done).
    fn redirect_into(&mut self, to: usize, id: OrigId, n: usize, slots: Slots) -> Redirect {
        let o = self.t.orig_mut(id);
        o.pins += 1;
        self.paths.continued_inputs += 1;
        Redirect {
            to,
            len: o.end() - to,
            asked: n,
            slots,
            into: Some(id),
            verified: o.verified,
        }
    }

    /// A message read in chunks: if `a` continues a piece of zio's memory
    /// that has room for `n` more bytes no copy points at, the chunk lands
    /// right after it, so the whole message stays one run of one original
    /// (every copy of it one piece, not one per chunk). Returns where, the
    /// original, and the policy slots of the piece (the message's start).
    fn continuation(&self, a: usize, n: usize) -> Option<(usize, OrigId, Slots)> {
        let (k, p) = self.t.piece_at(a.checked_sub(1)?)?;
        let o = self.t.orig(p.orig);
        // Where byte `a` lands: right after the bytes of `a - 1`.
        let end = p.src + (a - k);
        if !o.backup || o.end() < end + n {
            return None;
        }
        // Bytes there that a copy reads must stay. The buffer's own pieces
        // may read them (a tail page moved there, [`Engine::tail_into_own`]):
        // the input replaces those bytes in the buffer as well. Such a piece
        // maps addresses with the same offset as `a -> end`.
        let free = o.deps.iter().all(|&d| {
            let q = self.t.piece(d).unwrap();
            !overlaps(q.src, q.src + q.len, end, end + n)
                || q.src.wrapping_sub(d) == end.wrapping_sub(a)
        });
        free.then_some((end, p.orig, p.slots))
    }

    /// The input call of [`Engine::input_target`] put `got` bytes at
    /// `r.to` (`got` <= 0: it failed, nothing changed). Makes `[a, a+got)`
    /// read as those bytes: its whole pages become a piece of `r.to`, the
    /// bytes in partial pages are written for real (or, in a page that is
    /// missing anyway, become pieces too).
    pub fn input_redirected(&mut self, a: usize, r: Redirect, got: isize) -> Result<(), Busy> {
        if got <= 0 {
            self.release_own(r);
            return Ok(());
        }
        let got = (got as usize).min(r.len);
        if self.redirect_steady(a, &r, got) {
            return Ok(());
        }
        if r.into.is_none() {
            // The buffer is what the message's first call asked to fill.
            let (b0, b1) = whole_pages(a, r.asked);
            self.inputs.note(b0, b1);
        }
        let (c0, c1) = whole_pages(a, got);
        // The whole pages are overwritten: old pieces dropped, originals
        // released (backed up for their dependents).
        let dropped = self.overwrite((c0, c1), a, a + got)?;
        let core_missing =
            c1 > c0 && (dropped.covers(c0, c1) || self.leave_missing(c0, c1, r.verified));
        let keep = if core_missing { (c0, c1) } else { (c0, c0) };
        self.fill_dropped(dropped, &[keep]);
        let elided = self.land_parts(a, &r, got, (c0, c1), core_missing);
        if elided > 0 {
            self.policy.elided(r.slots, elided as u64);
            self.counters.inputs_redirected += 1;
            self.counters.bytes_redirected += elided as u64;
        }
        // A continued original is unpinned; fresh memory nothing landed in
        // goes back.
        if r.into.is_some() || elided == 0 {
            self.release_own(r);
        }
        self.sync_counts();
        Ok(())
    }

    /// Makes each part of `[a, a+got)` read as the input's bytes at `r.to`:
    /// the core `[c0, c1)` becomes a piece if `core_missing`; a partial
    /// page becomes one if its page holds pieces (a message read in chunks
    /// ends most chunks mid-page) or its other bytes can move into zio's
    /// memory ([`Engine::tail_into_own`]); any other part is written for
    /// real. Returns the bytes left as pieces.
    fn land_parts(
        &mut self,
        a: usize,
        r: &Redirect,
        got: usize,
        core: (usize, usize),
        core_missing: bool,
    ) -> usize {
        let now = self.tick();
        let mut orig = r.into;
        let mut elided = 0;
        let mut written: SmallVec<[(usize, usize); 2]> = SmallVec::new();
        for (lo, hi) in redirect_parts(a, got, core) {
            // How far the piece reaches: past `hi` for a tail page whose
            // old bytes moved into zio's memory.
            let reach = if (lo, hi) == core {
                core_missing.then_some(hi)
            } else if self.t.has_pieces_in(page_down(lo), page_down(lo) + PAGE) {
                Some(hi)
            } else if self.tail_into_own(a, r, lo, hi) {
                Some(lo + PAGE)
            } else {
                None
            };
            let Some(reach) = reach else {
                self.write_part(a, r, lo, hi);
                written.push((lo, hi));
                continue;
            };
            let id = *orig.get_or_insert_with(|| self.redirect_original(r, now));
            // The core's pieces were all dropped already.
            if (lo, hi) != core {
                for k in self.t.pieces_in(lo, hi) {
                    let was = self.t.cut_piece(k, lo, hi);
                    self.orig_changed(was);
                }
            }
            let piece = Piece {
                len: reach - lo,
                src: r.to + (lo - a),
                orig: id,
                stamp: now,
                slots: r.slots,
                trips: self.trips_for(reach - lo),
            };
            self.t.insert_piece(lo, piece);
            // The chunk before, read into the same memory: one piece.
            self.merge_piece_left(lo);
            elided += hi - lo;
        }
        // The parts written for real hold the original's bytes: a copy of
        // them may point at it ([`Engine::resolve_fringes`]).
        if let Some(id) = orig {
            for (lo, hi) in written {
                self.fringes.note(lo, hi - lo, r.to + (lo - a), id);
            }
        }
        elided
    }

    /// Writes the part `[lo, hi)` of a redirected input into the program's
    /// buffer for real: a partial page, or the core if it could not be
    /// left missing. A page at a time, through a buffer on the stack.
    fn write_part(&mut self, a: usize, r: &Redirect, lo: usize, hi: usize) {
        // Under the lock: pages without pieces are unprotected (released
        // before) and present (dropped ones were just filled, those a free
        // left unfilled get fresh pages), so the write cannot fault into
        // the handler, but for a page the allocator discarded behind
        // zio's back: written plain where zio holds nothing there (the
        // handler then maps zeros without the lock), given a zero page
        // first otherwise.
        let (p0, p1) = (page_down(lo), page_up(hi));
        let plain = !self.t.has_pieces_in(p0, p1);
        if !plain {
            for (s, e) in self.unfilled.gaps(p0, p1) {
                self.mem.zero_if_missing(s, e - s);
            }
        }
        self.refill(p0, p1);
        let mut bytes = [0u8; PAGE];
        let mut pos = lo;
        while pos < hi {
            let end = hi.min(page_down(pos) + PAGE);
            let chunk = &mut bytes[..end - pos];
            self.mem.read(r.to + (pos - a), chunk);
            if plain {
                self.mem.write_plain(pos, chunk);
            } else {
                self.mem.write(pos, chunk);
            }
            pos = end;
        }
        self.counters.copied_bytes += (hi - lo) as u64;
    }

    /// A fresh redirect of an input of up to `n` bytes at `a`: the whole
    /// pages the buffer is known by ([`Redirect::verified`]). A buffer
    /// with no record there is known only as one the allocator handed back
    /// ([`InputBuffers`]), which may be stale, so it is checked before the
    /// input call: pages a free left missing are asked once whether they
    /// still are (then known for every part of the message); any other is
    /// asked whether it is still the program's private writable memory.
    /// `None` if not (unmapped since, or mapped anew as other memory): the
    /// input lands in the buffer as it would without zio, error included.
    /// Nothing is discarded here: the input may fill less than it asked,
    /// and the bytes past it stay. A buffer with records needs nothing yet
    /// ([`Engine::input_redirected`] releases them first).
    fn claim_handed_back(&mut self, a: usize, n: usize) -> Option<(usize, usize)> {
        let (v0, v1) = whole_pages(a, n);
        if self.t.has_pieces_in(v0, v1) || self.t.has_origs_in(v0, v1) {
            return Some(NOTHING_KNOWN);
        }
        if self.unfilled.covers(v0, v1) && self.mem.still_missing(v0, v1 - v0) {
            return Some((v0, v1));
        }
        self.mem
            .private_writable(v0, v1 - v0)
            .then_some(NOTHING_KNOWN)
    }

    /// The original of a redirect's memory: zio's own, so a backup (nothing
    /// else writes it), knowing how far the message's first call asked.
    fn redirect_original(&mut self, r: &Redirect, now: u64) -> OrigId {
        let id = self.t.add_original(r.to, r.len, now);
        let o = self.t.orig_mut(id);
        o.backup = true;
        o.asked_end = r.to + r.asked;
        o.verified = r.verified;
        o.slots = r.slots;
        id
    }

    /// The steady state of a reused input buffer: the input filled the
    /// whole fresh memory of `r`, and `[a, a+got)` is whole pages that are
    /// one piece already (the last message's redirect) and protect nothing.
    /// Then the piece just takes the new bytes, as a reused copy
    /// destination does ([`Engine::reuse_piece`]): what the general path
    /// would do comes to the same, through a drop, a cut and an insert.
    /// False, changing nothing, for any other input.
    fn redirect_steady(&mut self, a: usize, r: &Redirect, got: usize) -> bool {
        if r.into.is_some()
            || got != r.len
            || !a.is_multiple_of(PAGE)
            || self.t.piece(a).is_none_or(|p| p.len != got)
            || self.prot.wp.intersects(a, a + got)
        {
            return false;
        }
        let now = self.tick();
        let new = Piece {
            len: got,
            src: r.to,
            orig: self.redirect_original(r, now),
            stamp: now,
            slots: r.slots,
            trips: self.trips_for(got),
        };
        let reused = self.reuse_piece(a, new);
        assert!(reused, "a piece of that length at {a:#x}");
        self.counters.inputs_redirected += 1;
        self.counters.bytes_redirected += got as u64;
        self.paths.steady_redirects += 1;
        self.sync_counts();
        true
    }

    /// A chunk of a redirected input ending inside a page that is present
    /// (the buffer's first message, or any page nothing was elided into):
    /// moves the page's bytes past the chunk, `[hi, page end)`, into zio's
    /// memory right after the chunk's and unmaps the page, so that the
    /// whole page reads from zio's memory. Left present, the page would be
    /// written for real by every later message split there, and every
    /// copy of it copied for real. The next chunk continues the same
    /// memory over those bytes ([`Engine::continuation`]).
    ///
    /// Only for a page whose other bytes are the buffer's: inside the range
    /// the call asked for, or, past it, input the buffer received before
    /// (an original: a program reading a message in parts asks for each
    /// part). A page shared with other data stays present: unmapped, every
    /// use of that data would fault. The original there loses those bytes:
    /// the input released the whole page already, so no copy points at
    /// them. False, changing nothing, where it does not apply.
    fn tail_into_own(&mut self, a: usize, r: &Redirect, lo: usize, hi: usize) -> bool {
        let page_end = lo + PAGE;
        let asked_end = a + r.asked;
        if !lo.is_multiple_of(PAGE) || page_end > a + r.len {
            return false;
        }
        if page_end > asked_end && self.t.orig_covering(asked_end, page_end).is_none() {
            return false;
        }
        self.t.trim_originals(hi, page_end);
        let mut old = [0u8; PAGE];
        let old = &mut old[..page_end - hi];
        // A page a free left unfilled reads as zeros and is missing
        // already; any other is read under the lock, so a page the
        // allocator discarded behind zio's back (never written since)
        // reads as zeros rather than fault into a handler needing it:
        // plainly where zio holds nothing there, after a zero page
        // otherwise.
        let unfilled = self.unfilled.covers(lo, page_end);
        if !unfilled {
            if self.t.has_pieces_in(lo, page_end) {
                self.mem.zero_if_missing(lo, PAGE);
                self.mem.read(hi, old);
            } else {
                self.mem.read_plain(hi, old);
            }
        }
        self.mem.write(r.to + (hi - a), old);
        let moved = if unfilled {
            self.leave_missing(lo, page_end, r.verified)
        } else {
            self.mem.make_missing(lo, PAGE)
        };
        self.paths.tails_moved += u64::from(moved);
        moved
    }

    /// Joins the piece at `k` to the one ending there if both read on
    /// from the same bytes of the same original.
    fn merge_piece_left(&mut self, k: usize) {
        let Some(p) = self.t.piece(k).copied() else {
            return;
        };
        let Some((pk, pp)) = self.t.piece_at(k.wrapping_sub(1)) else {
            return;
        };
        if pk + pp.len == k && pp.orig == p.orig && pp.src + pp.len == p.src {
            self.t.cut_piece(k, k, k + p.len);
            self.t.extend_piece(pk, p.len, p.trips);
        }
    }

    /// Gives back the memory of a redirect that did not become an original.
    fn release_own(&mut self, r: Redirect) {
        match r.into {
            Some(id) => self.unpin(&[id]),
            None => {
                self.mem.backup_release(r.to, r.len);
                self.counters.backup_bytes -= r.len as u64;
            }
        }
    }
}

/// Input buffers remembered past their free.
const INPUT_BUFFERS: usize = 16;

/// The whole pages of recent input buffers copies were made from (or
/// redirected into), kept after the program frees them: a server that
/// `malloc`s its input buffer per message gets the same chunk back from
/// its allocator for the next one, and its input is then redirected as a
/// reused buffer's is, instead of each message protecting the buffer at
/// its first copy and unprotecting it at its free. A stale entry costs
/// at most one redirect, which the policy judges as any other.
#[derive(Debug, Default)]
pub(super) struct InputBuffers {
    cores: [(usize, usize); INPUT_BUFFERS],
    next: usize,
}

impl InputBuffers {
    /// `[c0, c1)` is an input buffer's core: it takes the place of an
    /// entry it overlaps, or of the oldest.
    pub(super) fn note(&mut self, c0: usize, c1: usize) {
        if c0 >= c1 {
            return;
        }
        let slot = match self.cores.iter().position(|&(s, e)| overlaps(s, e, c0, c1)) {
            Some(i) => i,
            None => {
                self.next = (self.next + 1) % INPUT_BUFFERS;
                self.next
            }
        };
        self.cores[slot] = (c0, c1);
    }

    /// True if `[c0, c1)` shares at least `min` bytes with a remembered
    /// input buffer's core.
    pub(super) fn knows(&self, c0: usize, c1: usize, min: usize) -> bool {
        self.cores
            .iter()
            .any(|&(s, e)| e.min(c1).saturating_sub(s.max(c0)) >= min.max(1))
    }
}

/// The parts of `[a, a+got)` in address order: each partial page before
/// the core `[c0, c1)`, the core itself, each partial page after it.
fn redirect_parts(a: usize, got: usize, (c0, c1): (usize, usize)) -> SmallVec<[(usize, usize); 4]> {
    let mut parts = SmallVec::new();
    let mut pos = a;
    while pos < a + got {
        let end = if pos == c0 && c1 > c0 {
            c1
        } else {
            (a + got).min(page_down(pos) + PAGE)
        };
        parts.push((pos, end));
        pos = end;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: usize = PAGE;

    #[test]
    fn parts_are_partial_pages_around_the_core() {
        let parts = |a, got| redirect_parts(a, got, whole_pages(a, got)).to_vec();
        assert_eq!(parts(4 * P, 3 * P), [(4 * P, 7 * P)]);
        assert_eq!(
            parts(4 * P + 10, 3 * P),
            [(4 * P + 10, 5 * P), (5 * P, 7 * P), (7 * P, 7 * P + 10)]
        );
        // No whole page: one part per page touched.
        assert_eq!(parts(P + 10, P), [(P + 10, 2 * P), (2 * P, 2 * P + 10)]);
        assert_eq!(parts(P + 10, 20), [(P + 10, P + 30)]);
        assert!(parts(P, 0).is_empty());
    }
}
