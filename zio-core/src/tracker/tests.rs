//! Tests of the records: lookups after every change, cuts, trims.

use super::*;
use crate::ranges::PAGE;
use proptest::prelude::*;

proptest! {
    /// The one-descent range queries agree with a scan of every record,
    /// for every query range (empty ones included).
    #[test]
    fn range_queries_match_a_scan(
        gaps in prop::collection::vec((0usize..40, 1usize..40, any::<bool>()), 1..24),
        q in (0usize..1200, 0usize..200),
    ) {
        let mut t = Tracker::new();
        let backing = t.add_original(1 << 20, 1 << 20, 0);
        let (mut pos, mut pieces, mut origs) = (0, Vec::new(), Vec::new());
        for (gap, len, is_piece) in gaps {
            let a = pos + gap;
            if is_piece {
                t.insert_piece(a, piece(len, 1 << 20, backing));
                pieces.push((a, len));
            } else {
                origs.push((t.add_original(a, len, 0), a, len));
            }
            pos = a + len;
        }
        let (a, b) = (q.0, q.0 + q.1);
        let hit = |s: usize, len: usize| {
            if a == b { s < a && s + len > a } else { s < b && s + len > a }
        };
        let want: Vec<usize> = pieces.iter().filter(|&&(s, l)| hit(s, l)).map(|&(s, _)| s).collect();
        prop_assert_eq!(t.pieces_in(a, b).to_vec(), want.clone());
        let over: Vec<usize> = t.pieces_over(a, b).iter().map(|&(k, _)| k).collect();
        prop_assert_eq!(over, want.clone());
        prop_assert_eq!(t.has_pieces_in(a, b), !want.is_empty());
        let want_o: Vec<OrigId> = origs.iter().filter(|&&(_, s, l)| hit(s, l)).map(|&(id, _, _)| id).collect();
        prop_assert_eq!(t.has_origs_in(a, b), !want_o.is_empty());
        prop_assert_eq!(t.origs_in(a, b).to_vec(), want_o);
        let covering = origs.iter().find(|&&(_, s, l)| a < b && s <= a && s + l >= b).map(|&(id, _, _)| id);
        prop_assert_eq!(t.orig_covering(a, b), covering);
    }
}

/// A change to the pieces: insert at a free spot, cut, repoint to the
/// other original, or extend (each picks its piece by index, modulo).
#[derive(Clone, Debug)]
enum Op {
    Insert(usize, usize),
    Cut(usize, usize, usize),
    Repoint(usize, usize),
    Extend(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..60, 1usize..8).prop_map(|(a, l)| Op::Insert(a, l)),
        (any::<usize>(), 0usize..8, 0usize..8).prop_map(|(i, x, y)| Op::Cut(i, x, y)),
        (any::<usize>(), 0usize..16).prop_map(|(i, s)| Op::Repoint(i, s)),
        (any::<usize>(), 1usize..4).prop_map(|(i, e)| Op::Extend(i, e)),
    ]
}

proptest! {
    /// After any sequence of changes, the exact, by-address and range
    /// lookups (which may answer from the piece written last) agree
    /// with a walk of the tree, at every address.
    #[test]
    fn lookups_follow_every_change(ops in prop::collection::vec(op(), 1..40)) {
        let mut t = Tracker::new();
        let backing = [t.add_original(1 << 20, 1 << 10, 0), t.add_original(2 << 20, 1 << 10, 0)];
        for op in ops {
            let keys: Vec<usize> = t.pieces().map(|(k, _)| k).collect();
            match op {
                Op::Insert(a, len) if !t.has_pieces_in(a, a + len) => {
                    t.insert_piece(a, piece(len, 1 << 20, backing[0]));
                }
                Op::Cut(i, x, y) if !keys.is_empty() => {
                    // Callers cut inside the piece.
                    let k = keys[i % keys.len()];
                    let len = t.piece(k).unwrap().len;
                    let (x, y) = (x % (len + 1), y % (len + 1));
                    t.cut_piece(k, k + x.min(y), k + x.max(y));
                }
                Op::Repoint(i, s) if !keys.is_empty() => {
                    let k = keys[i % keys.len()];
                    let len = t.piece(k).unwrap().len;
                    let new = piece(len, (2 << 20) + s, backing[1]);
                    prop_assert_eq!(t.repoint_piece(k, new).is_some(), true);
                }
                Op::Extend(i, e) if !keys.is_empty() => {
                    let k = keys[i % keys.len()];
                    let p = *t.piece(k).unwrap();
                    let room = t.orig(p.orig).end() - (p.src + p.len);
                    if !t.has_pieces_in(k + p.len, k + p.len + e) && room >= e {
                        t.extend_piece(k, e, 0);
                    }
                }
                _ => {}
            }
            t.check();
            let all: Vec<(usize, Piece)> = t.pieces().map(|(k, p)| (k, *p)).collect();
            for addr in 0..80 {
                let want = all.iter().find(|(k, p)| *k <= addr && addr < k + p.len);
                prop_assert_eq!(t.piece_at(addr).map(|(k, p)| (k, *p)), want.copied());
                let exact = all.iter().find(|(k, _)| *k == addr).map(|(_, p)| *p);
                prop_assert_eq!(t.piece(addr).copied(), exact);
                for len in [1, 3, 9] {
                    let (a, b) = (addr, addr + len);
                    let over: Vec<(usize, Piece)> =
                        all.iter().copied().filter(|(k, p)| *k < b && a < k + p.len).collect();
                    prop_assert_eq!(t.pieces_over(a, b).to_vec(), over);
                }
            }
        }
    }
}

fn piece(len: usize, src: usize, orig: OrigId) -> Piece {
    Piece::of(len, src, orig)
}

#[test]
fn cut_splits_and_relinks() {
    let mut t = Tracker::new();
    let o = t.add_original(0x10000, 0x10000, 0);
    t.insert_piece(0x40000, piece(0x3000, 0x10100, o));
    assert_eq!(t.pieces_in(0x40fff, 0x41000).to_vec(), vec![0x40000]);
    t.cut_piece(0x40000, 0x41000, 0x42000);
    assert_eq!(
        t.pieces_in(0x40000, 0x43000).to_vec(),
        vec![0x40000, 0x42000]
    );
    assert_eq!(t.piece(0x42000).unwrap().src, 0x12100);
    assert_eq!(t.orig(o).deps.len(), 2);
    assert_eq!(t.piece_bytes(), 0x2000);
    t.check();
}

/// The parts a cut leaves share the piece's fault round trips in
/// proportion, never more than it had; a part left alone keeps them all.
#[test]
fn cut_parts_share_the_trips() {
    for trips in [0u32, 1, 2, 7, 100] {
        for (a, b) in [(0, 1), (9, 10), (3, 5), (1, 9), (0, 10), (5, 6)] {
            let mut t = Tracker::new();
            let o = t.add_original(0x10000, 0x10000, 0);
            let k = 0x40000;
            t.insert_piece(
                k,
                Piece {
                    trips,
                    ..piece(10 * PAGE, 0x10000, o)
                },
            );
            t.cut_piece(k, k + a * PAGE, k + b * PAGE);
            let left: Vec<u32> = t.pieces().map(|(_, p)| p.trips).collect();
            assert!(
                left.iter().sum::<u32>() <= trips,
                "{trips} {a}-{b}: {left:?}"
            );
            if left.len() == 1 {
                assert_eq!(left[0], trips, "{a}-{b}");
            }
            t.check();
        }
    }
    let mut t = Tracker::new();
    let o = t.add_original(0x10000, 0x10000, 0);
    t.insert_piece(
        0x40000,
        Piece {
            trips: 9,
            ..piece(4 * PAGE, 0x10000, o)
        },
    );
    t.cut_piece(0x40000, 0x41000, 0x42000);
    let parts: Vec<u32> = t.pieces().map(|(_, p)| p.trips).collect();
    assert_eq!(parts, [3, 6], "1 page and 2 pages left");
    t.spend_trip(0x42000);
    assert_eq!(t.piece(0x42000).unwrap().trips, 5);
}

#[test]
fn trim_splits_originals_and_moves_dependents() {
    let mut t = Tracker::new();
    let o = t.add_original(0x10000, 0x10000, 0);
    t.insert_piece(0x40000, piece(0x1000, 0x10000, o));
    t.insert_piece(0x50000, piece(0x1000, 0x1e000, o));
    t.trim_originals(0x14000, 0x15000);
    t.check();
    let ids = t.origs_in(0, usize::MAX);
    assert_eq!(ids.len(), 2);
    assert_eq!(t.piece(0x50000).unwrap().orig, ids[1]);
    assert_eq!(t.orig(ids[1]).start, 0x15000);
    t.cut_piece(0x40000, 0x40000, 0x41000);
    t.trim_originals(0x10000, 0x14000);
    assert_eq!(t.orig_count(), 1);
    t.check();
}
