//! Free and quarantine: a freed elided copy is a copy that never happened;
//! a freed original that copies still read is kept (its real `free`
//! deferred) within a byte budget. Touches the records, the quarantine,
//! the unfilled pages and the protection state.

use std::collections::BTreeMap;

use smallvec::SmallVec;

use super::{Busy, Cause, Engine, Mem};
use crate::ranges::{overlaps, page_down, page_up, whole_pages};

/// Ranges of IO data in a block, as offsets from its start.
pub type IoRanges = SmallVec<[(usize, usize); 4]>;

/// What `free` should do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeAction {
    /// Free it for real now.
    Now,
    /// Kept alive for dependents; zio frees it later.
    Quarantined,
}

/// Freed allocations kept for their dependents.
#[derive(Debug, Default)]
pub(super) struct Quarantine {
    /// Start -> (size, stamp).
    allocs: BTreeMap<usize, (usize, u64)>,
    /// Allocations the caller must free for real (outside the lock).
    pub(super) to_free: Vec<usize>,
}

impl<M: Mem> Engine<M> {
    /// The program reallocates the block `[p, p+size)`, which its
    /// allocator may move without a copy (glibc moves a large block's pages
    /// with `mremap`). If the block holds no piece, its originals are
    /// released (backed up for their dependents, if any) and forgotten, and
    /// their ranges returned as offsets into the block, for recording again
    /// where the block lands: the allocator's move then costs what it costs
    /// without zio. `None` if pieces live there: the realloc is then better
    /// made as an elided copy into a fresh block (the pieces stay unmapped).
    pub fn release_for_realloc(&mut self, p: usize, size: usize) -> Result<Option<IoRanges>, Busy> {
        let end = p + size;
        if self.t.has_pieces_in(p, end) {
            return Ok(None);
        }
        let ranges: IoRanges = self
            .t
            .origs_in(p, end)
            .iter()
            .map(|&id| {
                let o = self.t.orig(id);
                (o.start.max(p) - p, o.end().min(end) - p)
            })
            .collect();
        self.discard(p, size, true, false)?;
        self.paths.moved_reallocs += 1;
        Ok(Some(ranges))
    }

    /// The program frees the allocation `[p, p+size)`.
    pub fn free(&mut self, p: usize, size: usize) -> FreeAction {
        if self.t.is_empty() || size == 0 {
            return FreeAction::Now;
        }
        let b = p + size;
        // Most blocks a program frees hold nothing zio tracks (and no page
        // of theirs is protected): nothing to drop, keep or unprotect.
        if !self.t.has_pieces_in(p, b)
            && !self.t.has_origs_in(p, b)
            && !self.prot.wp.intersects(page_down(p), page_up(b))
        {
            return FreeAction::Now;
        }
        // Elided bytes in it are gone for good: the copy never happened.
        // Whole pages: dropped, and left missing for their next user (zero
        // pages come when it is not an elided copy); pieces in the partial
        // pages at the edges, which hold neighbours' bytes too, are
        // rebuilt.
        let owner = self.t.first_piece_over(p, b).map(|(_, x)| x.slots);
        let dropped = self.drop_pieces(p, b);
        self.leave_unfilled(dropped, owner);
        self.note_input_buffers(p, b);
        let action = if self.bytes_needed(p, b) {
            for id in self.t.origs_in(p, b) {
                self.t.orig_mut(id).quarantined = Some(p);
            }
            let now = self.tick();
            self.quarantine.allocs.insert(p, (size, now));
            self.counters.quarantined_bytes += size as u64;
            self.counters.quarantined_total += 1;
            self.enforce_quarantine();
            FreeAction::Quarantined
        } else {
            self.t.trim_originals(p, b);
            self.unprotect_idle(page_down(p), page_up(b));
            FreeAction::Now
        };
        self.sync_counts();
        action
    }

    /// The freed `[p, p+size)` held input copies were made from: its
    /// allocator may hand it back for the next input
    /// ([`Engine::input_target`]).
    fn note_input_buffers(&mut self, p: usize, b: usize) {
        for id in self.t.origs_in(p, b) {
            let o = self.t.orig(id);
            if o.copied && !o.backup {
                let (c0, c1) = whole_pages(o.start.max(p), o.end().min(b) - o.start.max(p));
                self.inputs.note(c0, c1);
            }
        }
    }

    /// Frees the quarantined allocation at `alloc` if nothing needs its
    /// bytes any more.
    pub(super) fn try_release_quarantine(&mut self, alloc: usize) {
        let Some(&(size, _)) = self.quarantine.allocs.get(&alloc) else {
            return;
        };
        if self.bytes_needed(alloc, alloc + size) {
            return;
        }
        self.quarantine.allocs.remove(&alloc);
        self.counters.quarantined_bytes -= size as u64;
        self.t.trim_originals(alloc, alloc + size);
        self.unprotect_idle(page_down(alloc), page_up(alloc + size));
        self.quarantine.to_free.push(alloc);
    }

    /// Tries to release every quarantined allocation (before `fork`).
    pub(super) fn release_all_quarantined(&mut self) {
        let allocs: Vec<usize> = self.quarantine.allocs.keys().copied().collect();
        for alloc in allocs {
            self.try_release_quarantine(alloc);
        }
    }

    /// True if a piece's bytes live in `[a, b)` or an output in flight reads
    /// an original there: that memory must not be reused yet. (An original
    /// can reach beyond an allocation; dependents on its other parts do not
    /// hold this one.)
    fn bytes_needed(&self, a: usize, b: usize) -> bool {
        self.t.origs_in(a, b).into_iter().any(|id| {
            let o = self.t.orig(id);
            o.pins > 0
                || o.deps.iter().any(|k| {
                    let p = self.t.piece(*k).unwrap();
                    overlaps(p.src, p.src + p.len, a, b)
                })
        })
    }

    /// Over budget: the oldest quarantined allocations give up their
    /// dependents (backed up, or materialized) and are freed.
    pub(super) fn enforce_quarantine(&mut self) {
        while self.counters.quarantined_bytes > self.cfg.quarantine as u64 {
            let oldest = self.quarantine.allocs.iter().min_by_key(|(_, v)| v.1);
            let Some((&alloc, &(size, _))) = oldest else {
                break;
            };
            if self
                .release_originals(alloc, alloc + size, Cause::Gc)
                .is_err()
            {
                break; // pinned: try again at the next collection
            }
            self.try_release_quarantine(alloc);
            if self.quarantine.allocs.contains_key(&alloc) {
                break; // no progress: try again at the next collection
            }
        }
    }
}
