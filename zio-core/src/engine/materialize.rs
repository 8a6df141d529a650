//! Materialization: unmapped pages rebuilt from their pieces and mapped,
//! for a fault, a change to their original, collection or fork. Touches
//! the records, the policy (faults are charged) and the scratch buffer.

use super::policy::FAULT_TRIP_CHARGE;
use super::{Cause, Engine, Mem};
use crate::ranges::{page_down, page_up, PAGE};
use crate::tracker::Piece;

/// Most pages one call maps when a run of pages is rebuilt at once (4 MiB:
/// the gather buffer stays that small).
pub(super) const FILL_RUN: usize = 1024;

impl<M: Mem> Engine<M> {
    /// Rebuilds up to `max` consecutive unmapped pages from `first` (stopping
    /// at the first page without pieces) and maps them with one call.
    /// Returns the number of pages materialized.
    pub(super) fn materialize_run(&mut self, first: usize, max: usize, cause: Cause) -> usize {
        let mut n = 0;
        while n < max
            && self
                .t
                .has_pieces_in(first + n * PAGE, first + (n + 1) * PAGE)
        {
            n += 1;
        }
        if n == 0 {
            return 0;
        }
        let end = first + n * PAGE;
        let pieces = self.t.pieces_over(first, end);
        if cause == Cause::Fault {
            self.charge_fault(&pieces, first, end);
        }
        if !self.fill_run(&pieces, first, end) {
            // Still missing: the pieces stay, so the next fault there tries
            // again instead of reading zeros.
            return n;
        }
        for &(k, _) in &pieces {
            let o = self.t.cut_piece(k, first, end);
            self.orig_changed(o);
        }
        self.counters.materialized[cause as usize] += n as u64;
        n
    }

    /// The policy is charged what a fault cost: every page it rebuilt,
    /// fault-around included, and the round trip itself (once). Charged
    /// only the faulting page, sparse reads (one page per copy) would keep
    /// elision going where it loses.
    fn charge_fault(&mut self, pieces: &[(usize, Piece)], first: usize, end: usize) {
        for (i, &(k, p)) in pieces.iter().enumerate() {
            let bytes = (k + p.len).min(end) - k.max(first);
            let trip = if i == 0 { FAULT_TRIP_CHARGE } else { 0 };
            self.policy.touched(p.slots, bytes as u64 + trip);
        }
    }

    /// Maps the pages `[first, end)` with the bytes of `pieces`, which cover
    /// every byte of them. If those bytes are one stretch of memory (one
    /// piece, or pieces continuing each other's source), the kernel copies
    /// them from there; otherwise they are gathered in the scratch buffer.
    fn fill_run(&mut self, pieces: &[(usize, Piece)], first: usize, end: usize) -> bool {
        let mut next_src = None;
        let mut contiguous = true;
        let mut covered = 0;
        for (i, &(k, p)) in pieces.iter().enumerate() {
            let (lo, hi) = (k.max(first), (k + p.len).min(end));
            let src = p.src + (lo - k);
            contiguous &= i == 0 || next_src == Some(src);
            next_src = Some(src + (hi - lo));
            covered += hi - lo;
        }
        let len = end - first;
        debug_assert_eq!(
            covered, len,
            "unmapped pages at {first:#x} not fully covered by pieces"
        );
        match next_src {
            Some(after) if contiguous => self.mem.fill_from(first, after - len, len),
            _ => {
                if self.scratch.len() < len {
                    self.scratch.resize(len, 0);
                }
                for &(k, p) in pieces {
                    let (lo, hi) = (k.max(first), (k + p.len).min(end));
                    self.mem
                        .read(p.src + (lo - k), &mut self.scratch[lo - first..hi - first]);
                }
                self.mem.fill(first, &self.scratch[..len])
            }
        }
    }

    /// The program reads the unmapped `[a, b)` for real, not through a fault
    /// (a copy the policy refused, whose source is an elided copy or a
    /// redirected input buffer): to the policy that is a touch like any
    /// other. Unseen, an input buffer copied for real on every message would
    /// keep being redirected, and each copy of it would read its bytes
    /// twice, through the plan's bounce buffer.
    pub(super) fn charge_read(&mut self, a: usize, b: usize) {
        for (k, p) in self.t.pieces_over(a, b) {
            let bytes = (k + p.len).min(b) - k.max(a);
            self.policy.touched(p.slots, bytes as u64);
        }
    }

    /// Materializes every page holding a piece that shares a byte with `[a, b)`.
    pub(super) fn materialize_range(&mut self, a: usize, b: usize, cause: Cause) {
        // The next piece is looked up after each: rebuilding a page cuts
        // every piece there, and one reaching past it is left under
        // another key. `pos` only grows, so a page that could not be
        // filled is not tried again. A piece's pages are rebuilt in runs,
        // each mapped with one call.
        let mut pos = a;
        while let Some((k, p)) = self.t.first_piece_over(pos, b) {
            let (lo, hi) = (k.max(pos), (k + p.len).min(b));
            let (mut page, end) = (page_down(lo), page_up(hi));
            while page < end {
                let run = ((end - page) / PAGE).min(FILL_RUN);
                page += self.materialize_run(page, run, cause).max(1) * PAGE;
            }
            pos = hi;
        }
    }
}
