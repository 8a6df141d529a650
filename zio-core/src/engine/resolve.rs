//! Source resolution: where the bytes of a range are (in an unmapped page,
//! so in an original elsewhere; in an original in place; or untracked).
//! Pure: reads the records only.

use smallvec::SmallVec;

use crate::tracker::{OrigId, Tracker};

/// Where the bytes of a source range are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Src {
    /// In an unmapped page: they are at `addr` in original `orig`.
    Piece {
        /// Where the first byte is.
        addr: usize,
        /// The original holding them.
        orig: OrigId,
    },
    /// In memory, inside an original.
    Orig(OrigId),
    /// In memory, untracked.
    Plain,
}

/// A source segment: `[start, end)` and where its bytes are.
pub(super) type Seg = (usize, usize, Src);

/// Segments of a range, on the stack when few.
pub(super) type Segs = SmallVec<[Seg; 8]>;

/// Splits `[a, b)` by where its bytes are, in address order; contiguous
/// segments of the same kind are merged (pieces only when they continue
/// each other in the same original).
pub(super) fn resolve(t: &Tracker, a: usize, b: usize) -> Segs {
    let origs = t.origs_in(a, b);
    let mut out = Segs::new();
    let mut pos = a;
    for (k, p) in t.pieces_over(a, b) {
        let (s, e) = (k.max(a), (k + p.len).min(b));
        push_memory(t, &origs, pos, s, &mut out);
        let src = Src::Piece {
            addr: p.src + (s - k),
            orig: p.orig,
        };
        push_seg(&mut out, s, e, src);
        pos = e;
    }
    push_memory(t, &origs, pos, b, &mut out);
    out
}

/// Segments for `[lo, hi)`, which holds no piece: split by originals.
fn push_memory(t: &Tracker, origs: &[OrigId], lo: usize, hi: usize, out: &mut Segs) {
    let mut pos = lo;
    for &id in origs {
        let o = t.orig(id);
        let (s, e) = (o.start.max(lo), o.end().min(hi));
        if s >= e {
            continue;
        }
        push_seg(out, pos, s, Src::Plain);
        push_seg(out, s, e, Src::Orig(id));
        pos = e;
    }
    push_seg(out, pos, hi, Src::Plain);
}

/// Appends a segment, merging it with the previous one when both are the
/// same kind of memory and contiguous (for pieces: in the same original).
fn push_seg(out: &mut Segs, lo: usize, hi: usize, s: Src) {
    if lo >= hi {
        return;
    }
    if let Some(last) = out.last_mut() {
        let contiguous = match (last.2, s) {
            (Src::Piece { addr: x, orig: o1 }, Src::Piece { addr: y, orig: o2 }) => {
                o1 == o2 && x + (last.1 - last.0) == y
            }
            (l, r) => l == r,
        };
        if contiguous && last.1 == lo {
            last.1 = hi;
            return;
        }
    }
    out.push((lo, hi, s));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::Piece;

    /// A range over plain memory, an original, and pieces: split where the
    /// kind changes, pieces merged only where they continue each other.
    #[test]
    fn splits_by_where_the_bytes_are() {
        let mut t = Tracker::new();
        let o = t.add_original(1000, 100, 0);
        let q = t.add_original(5000, 100, 0);
        // Two pieces continuing each other in `o`, then one of `q`.
        t.insert_piece(2000, Piece::of(10, 1000, o));
        t.insert_piece(2010, Piece::of(10, 1010, o));
        t.insert_piece(2020, Piece::of(10, 5000, q));
        // A piece of `o` that does not continue the one before.
        t.insert_piece(2040, Piece::of(10, 1050, o));
        assert_eq!(
            resolve(&t, 990, 1020).as_slice(),
            &[(990, 1000, Src::Plain), (1000, 1020, Src::Orig(o))]
        );
        assert_eq!(
            resolve(&t, 1995, 2050).as_slice(),
            &[
                (1995, 2000, Src::Plain),
                (
                    2000,
                    2020,
                    Src::Piece {
                        addr: 1000,
                        orig: o
                    }
                ),
                (
                    2020,
                    2030,
                    Src::Piece {
                        addr: 5000,
                        orig: q
                    }
                ),
                (2030, 2040, Src::Plain),
                (
                    2040,
                    2050,
                    Src::Piece {
                        addr: 1050,
                        orig: o
                    }
                ),
            ]
        );
        // Clipped inside a piece: the address moves with the start.
        assert_eq!(
            resolve(&t, 2005, 2008).as_slice(),
            &[(
                2005,
                2008,
                Src::Piece {
                    addr: 1005,
                    orig: o
                }
            )]
        );
        assert!(resolve(&t, 7000, 7000).is_empty());
    }
}
