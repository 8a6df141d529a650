//! Pages left missing without pieces: a copy's or an input's destination
//! whose old pieces were dropped (their bytes are overwritten), and freed
//! elided copies, kept missing for the next elided copy there. Touches the
//! records and the set of unfilled pages.

use smallvec::SmallVec;

use super::{Busy, Cause, Engine, Mem};
use crate::ranges::{page_down, page_up, whole_pages, OrderedRuns, RangeSet};
use crate::tracker::Slots;

/// Most runs of freed elided pages left missing: beyond, they get zero
/// pages at once.
const UNFILLED_RUNS: usize = 64;

/// No pages known registered ([`Engine::leave_missing`]).
pub(super) const NOTHING_KNOWN: (usize, usize) = (0, 0);

/// Pages of freed elided copies left missing (registered, no pieces): the
/// next elided copy there needs no `MADV_DONTNEED`, and nobody pays for
/// zero pages that copy would discard again. Whatever else uses them gets
/// zero pages first (the engine's entry points) or on its first fault (a
/// whole run of them at once).
#[derive(Debug, Default)]
pub(super) struct Unfilled {
    runs: RangeSet,
    /// The policy slots of the copies that left each run (inside `runs`,
    /// at most [`OWNERS`]): a run given zero pages for another use is
    /// charged to them ([`Engine::refill`]), because that refill, not the
    /// copy it saved, is what eliding there cost.
    owners: SmallVec<[(usize, usize, Slots); 4]>,
}

/// Runs whose owners [`Unfilled`] remembers, at most: beyond, a refill is
/// charged to nobody.
const OWNERS: usize = 2 * UNFILLED_RUNS;

impl Unfilled {
    /// The pages of `[a, b)` are present now, or need nothing: no longer
    /// left unfilled. Returns the owners of those that were, with their
    /// bytes, for the callers that refilled them to charge. (Almost always
    /// empty: one check, no tree walk.)
    pub(super) fn forget(&mut self, a: usize, b: usize) -> SmallVec<[(Slots, u64); 2]> {
        if self.runs.is_empty() {
            return SmallVec::new();
        }
        let (a, b) = (page_down(a), page_up(b));
        self.runs.remove(a, b);
        self.take_owners(a, b)
    }

    /// Forgets the owners inside `[a, b)` (page-aligned); returns each
    /// one's slots and the bytes of its run that were inside.
    fn take_owners(&mut self, a: usize, b: usize) -> SmallVec<[(Slots, u64); 2]> {
        let mut taken = SmallVec::new();
        let mut i = 0;
        while i < self.owners.len() {
            let (s, e, slots) = self.owners[i];
            if e <= a || b <= s {
                i += 1;
                continue;
            }
            taken.push((slots, (e.min(b) - s.max(a)) as u64));
            self.owners.swap_remove(i);
            if s < a {
                self.owners.push((s, a, slots));
            }
            if b < e && self.owners.len() < OWNERS {
                self.owners.push((b, e, slots));
            }
        }
        taken
    }

    /// True if every byte of `[a, b)` is left unfilled.
    pub(super) fn covers(&self, a: usize, b: usize) -> bool {
        self.runs.covers(a, b)
    }

    /// True if some byte of `[a, b)` is left unfilled.
    pub(super) fn intersects(&self, a: usize, b: usize) -> bool {
        !self.runs.is_empty() && self.runs.intersects(a, b)
    }

    /// True if no page is left unfilled.
    pub(super) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Number of runs left unfilled.
    pub(super) fn runs(&self) -> usize {
        self.runs.len()
    }

    /// The runs left unfilled, in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.runs.iter()
    }

    /// The runs left unfilled inside `[a, b)`, clipped to it.
    pub(super) fn clipped(&self, a: usize, b: usize) -> smallvec::SmallVec<[(usize, usize); 4]> {
        self.runs.clipped(a, b)
    }

    /// The parts of `[a, b)` not left unfilled, in order.
    pub(super) fn gaps(&self, a: usize, b: usize) -> smallvec::SmallVec<[(usize, usize); 4]> {
        self.runs.gaps(a, b)
    }
}

impl<M: Mem> Engine<M> {
    /// Drops the pieces covering whole pages inside `[a, b)` without
    /// materializing them (their bytes are about to be overwritten or were
    /// freed); pages sticking out are materialized.
    /// Returns the whole pages dropped (still missing, now without pieces).
    pub(super) fn drop_pieces(&mut self, a: usize, b: usize) -> OrderedRuns {
        let (c0, c1) = whole_pages(a, b - a);
        let mut dropped = OrderedRuns::new();
        for k in self.t.pieces_in(a, b) {
            let Some(p) = self.t.piece(k).copied() else {
                continue;
            };
            let (lo, hi) = (k.max(c0), (k + p.len).min(c1));
            if lo < hi {
                // Every byte of an unmapped page has a piece, so the union
                // of these ranges is made of whole pages.
                dropped.push(lo, hi);
                let o = self.t.cut_piece(k, lo, hi);
                self.orig_changed(o);
            }
        }
        // What remains in [a, b) lies in partially covered pages (none if
        // the range is whole pages).
        if (c0, c1) != (a, b) {
            self.materialize_range(a, b, Cause::Other);
        }
        self.counters.bytes_dropped += dropped.total() as u64;
        dropped
    }

    /// `[a, b)` is about to be overwritten (by a copy, or by a redirected
    /// input's bytes): the pieces of `[drop.0, drop.1)` are dropped (see
    /// [`Engine::drop_pieces`]), the originals in `[a, b)` released and
    /// their records trimmed away. Returns the pages dropped, still
    /// missing. `Busy`: an original there is pinned; the dropped pages get
    /// zero pages, and the caller retries.
    pub(super) fn overwrite(
        &mut self,
        drop: (usize, usize),
        a: usize,
        b: usize,
    ) -> Result<OrderedRuns, Busy> {
        let dropped = self.drop_pieces(drop.0, drop.1);
        if let Err(Busy) = self.release_originals(a, b, Cause::Write) {
            self.fill_dropped(dropped, &[]);
            return Err(Busy);
        }
        self.t.trim_originals(a, b);
        Ok(dropped)
    }

    /// Maps zero pages over dropped pages that will not be elided again, so
    /// that their next use (an allocator handing them out, an input call)
    /// does not go through the fault handler page by page.
    /// `keep`: sorted, disjoint ranges to leave unmapped.
    pub(super) fn fill_dropped(&mut self, dropped: OrderedRuns, keep: &[(usize, usize)]) {
        for (a, b) in dropped.minus(keep) {
            self.mem.zero_range(a, b - a);
        }
    }

    /// Freed pages whose pieces were dropped: left missing for the next
    /// elided copy, or zero pages if too many runs are. `owner`: the slots
    /// of the copy that elided there, charged if the pages are given zero
    /// pages for another use.
    pub(super) fn leave_unfilled(&mut self, dropped: OrderedRuns, owner: Option<Slots>) {
        for (a, b) in dropped.iter() {
            if self.unfilled.runs.len() < UNFILLED_RUNS {
                self.unfilled.runs.insert(a, b);
                if let Some(slots) = owner.filter(|_| self.unfilled.owners.len() < OWNERS) {
                    self.unfilled.owners.push((a, b, slots));
                }
            } else {
                self.mem.zero_range(a, b - a);
                if let Some(slots) = owner {
                    self.charge_refill(slots, (b - a) as u64);
                }
            }
        }
    }

    /// The pages of `[a, b)` (page-aligned) left unfilled are given zero
    /// pages for a use other than an elided copy: no longer unfilled, and
    /// charged to the copies that left them.
    pub(super) fn refill(&mut self, a: usize, b: usize) {
        for (s, e) in self.unfilled.runs.clipped(a, b) {
            self.mem.zero_range(s, e - s);
        }
        for (slots, bytes) in self.unfilled.forget(a, b) {
            self.charge_refill(slots, bytes);
        }
    }

    /// `bytes` that `slots`' copy left unfilled were given zero pages for
    /// another use: the allocator handed a freed elided copy's memory to
    /// something zio cannot elide, which gets fresh pages where it would
    /// have found present ones. The policy counts it as churn.
    pub(super) fn charge_refill(&mut self, slots: Slots, bytes: u64) {
        self.counters.bytes_refilled += bytes;
        self.policy.churned(slots, bytes);
    }

    /// Leaves the whole pages `[r0, r1)` missing for an elided copy or a
    /// redirected input: pages a free left unfilled need nothing inside
    /// `known` (found registered since: a redirect's `verified` pages) and
    /// one check elsewhere; others are registered and discarded. They are
    /// no longer unfilled. False, changing nothing, if refused.
    pub(super) fn leave_missing(&mut self, r0: usize, r1: usize, known: (usize, usize)) -> bool {
        let len = r1 - r0;
        let missing = if self.unfilled.covers(r0, r1) {
            (known.0 <= r0 && r1 <= known.1)
                || self.mem.still_missing(r0, len)
                || self.mem.make_missing_again(r0, len)
        } else {
            self.mem.make_missing(r0, len)
        };
        if missing {
            self.unfilled.forget(r0, r1);
        }
        missing
    }

    /// Zero pages for the pages of `[a, b)` left unfilled: they are about
    /// to be written or read for real.
    pub(super) fn fill_unfilled(&mut self, a: usize, b: usize) {
        if self.unfilled.is_empty() || a >= b {
            return;
        }
        self.refill(page_down(a), page_up(b));
    }

    /// Zero pages for every page left unfilled (nothing is left to elide
    /// into them). Charged to nobody: the program went idle, and no other
    /// use of the memory asked for them.
    pub(super) fn fill_all_unfilled(&mut self) {
        let runs: Vec<(usize, usize)> = self.unfilled.iter().collect();
        for (s, e) in runs {
            self.mem.zero_range(s, e - s);
        }
        self.unfilled = Unfilled::default();
    }
}
