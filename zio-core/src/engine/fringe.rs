//! Fringe hints: the partial pages at the ends of an elided copy are copied
//! for real, so they hold an original's bytes as plain memory. A later copy
//! of them (the next link of a chain, whose chunk is aligned differently)
//! would have to copy the whole pages around them for real too, and so
//! would every copy after it. Each real copy of tracked bytes leaves a
//! hint; a later copy whose source has plain bytes there compares them
//! with the original and, if they are still the same, points its pieces at
//! the original instead. Touches the hints and reads memory (plain bytes
//! through [`Mem::read_plain`], which no handler needing the lock serves).

use super::resolve::{Segs, Src};
use super::{Engine, Mem};
use crate::ranges::{page_down, page_up};
use crate::tracker::OrigId;

/// Hints remembered (the two fringes of the last few copies).
const HINTS: usize = 8;

/// Recent real copies of tracked bytes: `[dst, dst+len)` was copied from
/// `src` of original `orig`.
#[derive(Debug, Default)]
pub(super) struct Fringes {
    hints: [(usize, usize, usize, OrigId); HINTS],
    next: usize,
}

impl Fringes {
    /// `[dst, dst+len)` now holds a copy of `src` of `orig`.
    pub(super) fn note(&mut self, dst: usize, len: usize, src: usize, orig: OrigId) {
        self.hints[self.next] = (dst, len, src, orig);
        self.next = (self.next + 1) % HINTS;
    }

    /// The plain `[a, b)` was copied for real to `dst`: what hints claim
    /// of it, they now claim of the copy too.
    pub(super) fn pass_on(&mut self, a: usize, b: usize, dst: usize) {
        for h in self.hints {
            let (lo, hi) = (h.0.max(a), (h.0 + h.1).min(b));
            if h.1 > 0 && lo < hi {
                self.note(dst + (lo - a), hi - lo, h.2 + (lo - h.0), h.3);
            }
        }
    }
}

impl<M: Mem> Engine<M> {
    /// `segs` of a source range, with each plain segment that a hint
    /// covers, and whose bytes still equal the hinted original's, turned
    /// into bytes of that original (as a piece would be: they need not be
    /// where the original is).
    pub(super) fn resolve_fringes(&mut self, segs: Segs) -> Segs {
        if !segs.iter().any(|s| s.2 == Src::Plain) {
            return segs;
        }
        let mut out = Segs::new();
        for (a, b, src) in segs {
            if src != Src::Plain {
                out.push((a, b, src));
                continue;
            }
            let mut pos = a;
            for h in self.fringes.hints {
                let (h0, h1) = (h.0, h.0 + h.1);
                let (lo, hi) = (h0.max(pos), h1.min(b));
                if h.1 == 0 || lo != pos || lo >= hi {
                    continue;
                }
                let at = h.2 + (lo - h0);
                if !self.still_holds(lo, hi, at, h.3) {
                    continue;
                }
                self.paths.fringe_hits += 1;
                out.push((
                    lo,
                    hi,
                    Src::Piece {
                        addr: at,
                        orig: h.3,
                    },
                ));
                pos = hi;
            }
            if pos < b {
                out.push((pos, b, Src::Plain));
            }
        }
        out
    }

    /// True if the plain bytes `[lo, hi)` equal those at `at` of original
    /// `id`, which must still cover them and be write-protected there (or a
    /// backup, which only zio writes, and not pinned): unprotected, another
    /// thread could change it between the comparison and the protection.
    fn still_holds(&mut self, lo: usize, hi: usize, at: usize, id: OrigId) -> bool {
        let Some(o) = self.t.try_orig(id) else {
            return false;
        };
        let n = hi - lo;
        if at < o.start || at + n > o.end() {
            return false;
        }
        // Pages zio keeps missing (with pieces, or left unfilled by a free)
        // are not plain memory to compare: a zero page there would break
        // what the engine knows of them.
        let (p0, p1) = (page_down(lo), page_up(hi));
        if self.t.has_pieces_in(p0, p1) || !self.unfilled.clipped(p0, p1).is_empty() {
            return false;
        }
        // A pinned original may be being written right now: a redirected
        // input continuing into its memory.
        if o.pins > 0 || (!o.unguarded() && !self.prot.wp.covers(page_down(at), page_up(at + n))) {
            return false;
        }
        // The plain bytes through `read_plain`: zio holds nothing in their
        // pages, yet one may have been discarded behind its back (the
        // original is present, as it is for every read of one).
        let mut buf = [0u8; 2 * 4096];
        if n > buf.len() / 2 {
            return false;
        }
        let (x, y) = buf.split_at_mut(n);
        self.mem.read_plain(lo, x);
        self.mem.read(at, &mut y[..n]);
        x == &y[..n]
    }
}
