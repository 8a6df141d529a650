//! Garbage collection: bounds the records (pieces and originals) and the
//! quarantine, oldest first. Touches the records, the quarantine and the
//! unfilled pages.

use super::{Cause, Engine, Mem};
use crate::ranges::{page_down, page_up};

impl<M: Mem> Engine<M> {
    /// Periodic collection: materialize the least recently copied pieces
    /// beyond the record bound, forget the oldest idle originals beyond it,
    /// and enforce the quarantine budget.
    pub fn collect(&mut self) {
        self.collect_pieces();
        self.collect_originals();
        self.enforce_quarantine();
        if self.t.is_empty() && !self.unfilled.is_empty() {
            // Nothing left to elide: zero pages now, so that the hooks can
            // stop consulting the engine (it reports idle only without any).
            self.fill_all_unfilled();
        }
        self.sync_counts();
    }

    /// Materializes the oldest pieces beyond `max_records`.
    fn collect_pieces(&mut self) {
        let max = self.cfg.max_records;
        // Oldest first; a piece split by an earlier materialization keeps its
        // stamp under a new key, hence the outer loop. A pass that removed
        // nothing (the kernel refused every fill) ends it: the next
        // collection tries again, instead of spinning under the lock.
        let mut before = usize::MAX;
        while self.t.piece_count() > max && self.t.piece_count() < before {
            before = self.t.piece_count();
            let mut by_age: Vec<(u64, usize)> =
                self.t.pieces().map(|(k, p)| (p.stamp, k)).collect();
            by_age.sort_unstable();
            let excess = self.t.piece_count() - max;
            for &(_, k) in by_age.iter().take(excess) {
                if let Some(p) = self.t.piece(k).copied() {
                    self.materialize_range(k, k + p.len, Cause::Gc);
                }
            }
        }
    }

    /// Forgets the oldest idle originals beyond `max_records`.
    fn collect_originals(&mut self) {
        let max = self.cfg.max_records;
        if self.t.orig_count() <= max {
            return;
        }
        let mut idle: Vec<(u64, usize, usize)> = self
            .t
            .orig_ids()
            .into_iter()
            .map(|id| self.t.orig(id))
            .filter(|o| !o.busy() && o.quarantined.is_none())
            .map(|o| (o.stamp, o.start, o.end()))
            .collect();
        idle.sort_unstable();
        let excess = self.t.orig_count() - max;
        for &(_, s, e) in idle.iter().take(excess) {
            self.t.trim_originals(s, e);
            self.unprotect_idle(page_down(s), page_up(e));
        }
    }
}
