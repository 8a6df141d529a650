//! Output substitution: the gather list of an output call, in which every
//! unmapped piece points at its original (pinned until the call is done).
//! Touches the records (pins) and the counters.

use smallvec::SmallVec;

use super::{Engine, Mem};
use crate::tracker::OrigId;

/// An output's gather list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gather {
    /// `(addr, len)` to hand to the kernel in order. Inline, as the rest:
    /// an output is usually one to three runs, and allocating costs more
    /// than deciding them.
    pub iov: SmallVec<[(usize, usize); 4]>,
    /// For each `iov` entry: true if it points into an original.
    pub from_orig: SmallVec<[bool; 4]>,
    /// Originals to unpin after the call.
    pub pins: SmallVec<[OrigId; 4]>,
    /// Bytes taken from originals.
    pub substituted: usize,
}

impl Gather {
    /// Appends an entry, merging it with the previous one when contiguous
    /// and of the same kind.
    pub fn push(&mut self, addr: usize, len: usize, from_orig: bool) {
        if len == 0 {
            return;
        }
        if let (Some(last), Some(&kind)) = (self.iov.last_mut(), self.from_orig.last()) {
            if last.0 + last.1 == addr && kind == from_orig {
                last.1 += len;
                return;
            }
        }
        self.iov.push((addr, len));
        self.from_orig.push(from_orig);
    }

    /// Bytes from originals among the first `sent` bytes of the list.
    pub fn substituted_in(&self, sent: usize) -> usize {
        let mut left = sent;
        let mut subst = 0;
        for (&(_, len), &orig) in self.iov.iter().zip(&self.from_orig) {
            let n = len.min(left);
            if orig {
                subst += n;
            }
            left -= n;
            if left == 0 {
                break;
            }
        }
        subst
    }
}

impl<M: Mem> Engine<M> {
    /// The gather list for an output of `[a, a+n)`: unmapped pieces are sent
    /// from their originals (pinned until [`Engine::unpin`]).
    pub fn output(&mut self, a: usize, n: usize) -> Gather {
        let mut g = Gather::default();
        self.output_into(&mut g, a, n);
        g
    }

    /// Appends the gather list for `[a, a+n)` to `g` (for vectored outputs).
    pub fn output_into(&mut self, g: &mut Gather, a: usize, n: usize) {
        // Only pieces matter here: bytes in memory, original or not, are
        // sent from where they are.
        let pieces = if n == 0 {
            Default::default()
        } else {
            self.t.pieces_over(a, a + n)
        };
        let mut pos = a;
        for (k, p) in pieces {
            let (lo, hi) = (k.max(a), (k + p.len).min(a + n));
            g.push(pos, lo - pos, false);
            if !g.pins.contains(&p.orig) {
                self.t.orig_mut(p.orig).pins += 1;
                g.pins.push(p.orig);
            }
            g.substituted += hi - lo;
            g.push(p.src + (lo - k), hi - lo, true);
            pos = hi;
        }
        g.push(pos, a + n - pos, false);
    }

    /// After the output call that used `g` handed `sent` bytes to the
    /// kernel: count what came from originals, and unpin them.
    pub fn output_done(&mut self, g: &Gather, sent: usize) {
        let subst = g.substituted_in(sent);
        if subst > 0 {
            self.counters.outputs_substituted += 1;
            self.counters.bytes_substituted += subst as u64;
        }
        self.unpin(&g.pins);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Contiguous entries of one kind merge; the substituted count follows
    /// a partial send entry by entry.
    #[test]
    fn gather_merges_and_counts_partial_sends() {
        let mut g = Gather::default();
        g.push(100, 10, false);
        g.push(110, 5, false);
        g.push(115, 0, true);
        g.push(115, 20, true);
        g.push(900, 30, true);
        g.push(930, 7, false);
        assert_eq!(
            g.iov.as_slice(),
            &[(100, 15), (115, 20), (900, 30), (930, 7)]
        );
        assert_eq!(g.from_orig.as_slice(), &[false, true, true, false]);
        assert_eq!(g.substituted_in(0), 0);
        assert_eq!(g.substituted_in(15), 0);
        assert_eq!(g.substituted_in(20), 5);
        assert_eq!(g.substituted_in(50), 35);
        assert_eq!(g.substituted_in(1000), 50);
    }
}
