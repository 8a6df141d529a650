//! The record index at 640 live records (as `bench-tracker` sets it up):
//! ns per lookup of the piece covering an address and per insert+remove
//! pair, for crossbeam-skiplist's `SkipMap` and zio's `Tracker`, in
//! alternating rounds. The skiplist holds the same (start, piece) pairs;
//! it allocates each node through the global allocator, which inside a
//! preloaded library would be the program's hooked `malloc`.

use std::hint::black_box;
use std::time::Instant;

use crossbeam_skiplist::SkipMap;
use zio_benches::{tracker_640, PAGE};
use zio_core::tracker::{Piece, Slots};

const OPS: u32 = 1_000_000;

fn piece(src: usize, orig: u32) -> Piece {
    Piece {
        len: 16 << 10,
        src,
        orig,
        stamp: 0,
        slots: Slots::default(),
        trips: 0,
    }
}

/// Mean ns per call of `f`.
fn per_op(mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..OPS {
        f();
    }
    t.elapsed().as_nanos() as f64 / f64::from(OPS)
}

fn main() {
    let map = SkipMap::new();
    let (mut t, keys) = tracker_640(|dst, p| {
        map.insert(dst, piece(p.src, p.orig));
    });
    let orig = t.origs_in(0x1000_0000, 0x1000_0001)[0];
    let free_dst = 0x7000_0000;
    let mut i = 0usize;
    for round in 1..=5 {
        let tracker_lookup = per_op(|| {
            i = (i + 7919) % keys.len();
            black_box(
                t.piece_at(black_box(keys[i] + 5 * PAGE + 17))
                    .map(|(k, _)| k),
            );
        });
        let skip_lookup = per_op(|| {
            i = (i + 7919) % keys.len();
            let addr = black_box(keys[i] + 5 * PAGE + 17);
            let hit = map
                .upper_bound(std::ops::Bound::Included(&addr))
                .filter(|e| addr < e.key() + e.value().len)
                .map(|e| *e.key());
            black_box(hit);
        });
        let tracker_pair = per_op(|| {
            t.insert_piece(black_box(free_dst), piece(0x1000_0000, orig));
            t.cut_piece(free_dst, free_dst, free_dst + (16 << 10));
        });
        let skip_pair = per_op(|| {
            map.insert(black_box(free_dst), piece(0x1000_0000, orig));
            map.remove(&free_dst);
        });
        println!(
            "round {round}: lookup tracker {tracker_lookup:.0} ns, skiplist {skip_lookup:.0} ns; \
             insert+remove tracker {tracker_pair:.0} ns, skiplist {skip_pair:.0} ns"
        );
    }
}
