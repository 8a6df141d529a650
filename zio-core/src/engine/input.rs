//! Input recording: bytes an input call put into the program's memory
//! become an original (or extend the one they continue). Touches the
//! records and the unfilled pages.

use super::{Busy, Engine, Mem};
use crate::ranges::{page_down, page_up};
use crate::tracker::OrigId;

impl<M: Mem> Engine<M> {
    /// Prepares an input call writing up to `n` bytes at `a`: the bytes there
    /// are about to change.
    pub fn input_prepare(&mut self, a: usize, n: usize) -> Result<(), Busy> {
        self.fill_unfilled(a, a + n);
        if n == 0 || self.t.is_empty() {
            return Ok(());
        }
        self.prepare_write(a, a + n)
    }

    /// An input call put `got` bytes at `a`: record them as an original if
    /// they reach the threshold.
    pub fn input_done(&mut self, a: usize, got: usize) {
        // Written by the kernel: present now (faulted in if need be).
        self.unfilled.forget(a, a + got);
        if got < self.cfg.threshold {
            return;
        }
        // Another thread may have copied from here during the call (a race in
        // the program); keep the index consistent regardless.
        let _ = self.prepare_write(a, a + got);
        let here = self.t.origs_in(a, a + got);
        if here.iter().any(|&id| self.t.orig(id).pins > 0) {
            return; // pinned: leave the old record, skip this one
        }
        let now = self.tick();
        let before = self.original_ending_at(a, false);
        // The same buffer read again whole (its old bytes were released
        // above): the record stays, restamped.
        if let (&[id], None) = (here.as_slice(), before) {
            let o = self.t.orig(id);
            if o.start == a && o.len == got && !o.unguarded() && o.quarantined.is_none() {
                self.t.orig_mut(id).stamp = now;
                return;
            }
        }
        self.t.trim_originals(a, a + got);
        match before {
            Some(id) => self.t.extend_original(id, got, now),
            None => {
                self.t.add_original(a, got, now);
            }
        }
        self.sync_counts();
    }

    /// An input call put `got` bytes at `a` that the hooks leave unrecorded
    /// (no copy of IO data was elided lately, see `policy.rs`): the records
    /// of the bytes it overwrote end, as at a free, and none is made, so
    /// that the copies, writes and free of the buffer pass the engine by.
    /// False if an original there is pinned: the input is then recorded.
    pub fn input_unrecorded(&mut self, a: usize, got: usize) -> bool {
        let b = a + got;
        if self
            .t
            .origs_in(a, b)
            .iter()
            .any(|&id| self.t.orig(id).pins > 0)
        {
            return false;
        }
        self.unfilled.forget(a, b);
        if self.prepare_write(a, b).is_err() {
            return false;
        }
        self.t.trim_originals(a, b);
        self.unprotect_idle(page_down(a), page_up(b));
        self.sync_counts();
        true
    }

    /// The original that ends right at `a`, if any, of the program's
    /// (`lent` false) or lent by a stack (`lent` true): a message read in
    /// chunks into one buffer (or a ring filled a segment at a time) is one
    /// original, not one per chunk, so that every copy of it is one piece.
    pub(super) fn original_ending_at(&self, a: usize, lent: bool) -> Option<OrigId> {
        self.t
            .origs_in(a.saturating_sub(1), a)
            .into_iter()
            .find(|&id| {
                let o = self.t.orig(id);
                let kind = if lent { o.lent } else { !o.unguarded() };
                o.end() == a && kind && o.quarantined.is_none()
            })
    }
}
