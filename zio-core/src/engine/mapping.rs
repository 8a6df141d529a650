//! Changes to the program's mappings: `munmap`, `mremap` and discarding
//! `madvise` of tracked memory, and `fork`, whose child inherits no
//! userfaultfd state. Touches every part of the state.

use super::{Busy, Cause, Engine, Mem};
use crate::ranges::{page_down, page_up, whole_pages, RangeSet};

/// Passes over the pieces that rebuild nothing before [`Engine::prepare_fork`]
/// gives up on the rest.
const FORK_STALLED: usize = 3;

impl<M: Mem> Engine<M> {
    /// The program is about to unmap (`munmap`), move (`mremap`) or discard
    /// (`madvise`) `[a, a+len)`. `keep_data`: the bytes must survive (mremap),
    /// so pieces there are materialized rather than dropped.
    pub fn discard(
        &mut self,
        a: usize,
        len: usize,
        keep_data: bool,
        unmapping: bool,
    ) -> Result<(), Busy> {
        // Missing pages need nothing more: unmapped, discarded, or moved to
        // memory zio never registered (where they read as zeros, as freed
        // memory may).
        self.unfilled.forget(a, a + len);
        if self.t.is_empty() && self.prot.wp.is_empty() {
            if unmapping {
                self.mem.forget(a, len);
            }
            return Ok(());
        }
        let b = a + len;
        self.release_originals(a, b, Cause::Write)?;
        if keep_data {
            self.materialize_range(a, b, Cause::Other);
        } else {
            // The kernel discards whole pages only; partial ones keep data.
            // (No zero pages: the kernel is about to unmap or discard them.)
            self.drop_pieces(a, b);
        }
        self.t.trim_originals(a, b);
        if unmapping {
            self.prot.wp.remove(page_down(a), page_up(b));
            self.mem.forget(a, len);
        }
        self.sync_counts();
        Ok(())
    }

    /// After the program discarded `[a, a+len)` (`MADV_DONTNEED`): pages of
    /// it that zio registered are missing now; map zero pages there (what
    /// the kernel would give) so their next use is an ordinary fault, not a
    /// userfaultfd round trip. Pages holding pieces (elided since, by
    /// another thread) are left alone.
    pub fn fill_discarded(&mut self, a: usize, len: usize) {
        let (c0, c1) = whole_pages(a, len);
        let mut held = RangeSet::new();
        self.add_piece_pages(&mut held, c0, c1);
        for (s, e) in held.gaps(c0, c1) {
            self.mem.zero_range(s, e - s);
        }
    }

    /// Before `fork`: the child inherits no userfaultfd state, so every
    /// unmapped page is materialized and every protection dropped. The engine
    /// is empty afterwards (quarantined allocations are handed back to free),
    /// but for pieces the kernel refused to fill, whose sources stay
    /// protected.
    pub fn prepare_fork(&mut self) {
        // Materializing a page can split a neighbouring piece under a new
        // key, so each pass walks with a cursor. A fill the kernel refuses
        // is tried again in the next pass (ENOMEM and EAGAIN pass); after
        // FORK_STALLED passes that rebuilt nothing the rest is left, not
        // tried forever (the failed fills are logged): the parent keeps
        // those pieces and their originals, the child reads zeros there.
        let mut stalled = 0;
        while self.t.piece_count() > 0 && stalled < FORK_STALLED {
            let before = self.t.piece_count();
            let mut from = 0;
            while let Some((k, p)) = self.t.first_piece_over(from, usize::MAX) {
                self.materialize_range(k, k + p.len, Cause::Fork);
                from = k + p.len;
            }
            stalled = if self.t.piece_count() < before {
                0
            } else {
                stalled + 1
            };
        }
        let keep = if self.t.piece_count() > 0 {
            self.pages_needing_protection(0, usize::MAX)
        } else {
            RangeSet::new()
        };
        let ranges: Vec<(usize, usize)> = self.prot.wp.iter().collect();
        for (s, e) in ranges {
            for (g0, g1) in keep.gaps(s, e) {
                self.mem.protect(g0, g1 - g0, false);
                self.prot.wp.remove(g0, g1);
            }
        }
        self.release_all_quarantined();
        for id in self.t.orig_ids() {
            let o = self.t.orig(id);
            let (s, e) = (o.start, o.end());
            if o.pins == 0 && o.deps.is_empty() {
                self.t.trim_originals(s, e);
            }
        }
        self.sync_counts();
    }
}
