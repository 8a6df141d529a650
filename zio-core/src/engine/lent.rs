//! Memory an IO stack lends zio (the bridge contract, `zio.h`): received
//! bytes in the stack's own buffers become originals without write
//! protection, released when the stack takes them back, and a program
//! buffer resolves to where its bytes really are. Touches the records and
//! the counters.

use smallvec::SmallVec;

use super::{Busy, Cause, Engine, Gather, Mem};
use crate::tracker::OrigId;

impl<M: Mem> Engine<M> {
    /// An IO stack lends `[a, a+n)`, which holds bytes it received: an
    /// original copies may be elided from. Nothing protects it; the stack
    /// promises to call [`Engine::release_lent`] before it changes or
    /// frees those bytes. Lent memory right after a lent original extends
    /// it (a ring filled a segment at a time is one original). `Busy` if an
    /// older record there is pinned by an output in flight.
    pub fn lend(&mut self, a: usize, n: usize) -> Result<(), Busy> {
        if n == 0 {
            return Ok(());
        }
        // The stack wrote these bytes itself: what zio knew of them is stale
        // (dependents of an earlier original there get its old bytes first).
        self.fill_unfilled(a, a + n);
        self.prepare_write(a, a + n)?;
        let now = self.tick();
        self.t.trim_originals(a, a + n);
        match self.original_ending_at(a, true) {
            Some(id) => self.t.extend_original(id, n, now),
            None => {
                let id = self.t.add_original(a, n, now);
                self.t.orig_mut(id).lent = true;
            }
        }
        self.counters.bytes_lent += n as u64;
        self.sync_counts();
        Ok(())
    }

    /// The stack takes `[a, a+n)` back: every copy still reading it is
    /// backed up or materialized, and its lent records end there. `Busy`
    /// (the dependents are served anyway; the records stay) while an output
    /// in flight reads it: the stack must hold the memory and ask again.
    pub fn release_lent(&mut self, a: usize, n: usize) -> Result<(), Busy> {
        if n == 0 || !self.t.has_origs_in(a, a + n) {
            return Ok(());
        }
        self.release_originals(a, a + n, Cause::Write)?;
        let lent = self
            .t
            .origs_in(a, a + n)
            .iter()
            .any(|&id| self.t.orig(id).lent);
        if lent {
            self.counters.lent_released += 1;
        }
        self.t.trim_originals(a, a + n);
        self.sync_counts();
        Ok(())
    }

    /// Where the bytes of the program buffer `[a, a+n)` really are, for a
    /// stack about to transmit it: elided copies point at their originals,
    /// which stay pinned until [`Engine::resolve_done`].
    pub fn resolve_for_stack(&mut self, a: usize, n: usize) -> Gather {
        self.output(a, n)
    }

    /// The stack is done with a resolution ([`Engine::resolve_for_stack`]):
    /// its originals are unpinned, and `resolved` bytes (its `substituted`,
    /// or 0 if the stack read the buffer itself after all) are counted. The
    /// pins come back through a C struct the stack holds: one that names no
    /// pinned original (a struct never filled, or ended twice) unpins
    /// nothing rather than taking the program down.
    pub fn resolve_done(&mut self, pins: &[OrigId], resolved: usize) {
        let held: SmallVec<[OrigId; 8]> = pins
            .iter()
            .copied()
            .filter(|&id| self.t.try_orig(id).is_some_and(|o| o.pins > 0))
            .collect();
        if !held.is_empty() {
            self.counters.bytes_resolved += resolved as u64;
            self.unpin(&held);
        }
    }
}
