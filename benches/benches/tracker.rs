//! The record index at 640 live records, the size at which the zIO paper
//! measured its prototype's skiplist (docs/benches.md).
//!
//! - `lookup`: which piece covers an address (the fault handler's and the
//!   output path's question).
//! - `insert+remove`: adding a piece and cutting it away again (an elided
//!   copy followed by its materialization or free), reported per operation
//!   by timing the pair and halving.
//! - `dependents`: the pieces depending on one original page.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use zio_benches::{tracker_640, PAGE, RECORDS};
use zio_core::tracker::{Piece, Slots};

fn bench(c: &mut Criterion) {
    let (mut t, keys) = tracker_640(|_, _| {});
    let mut g = c.benchmark_group("tracker_640");
    let mut i = 0usize;
    g.bench_function("lookup", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            let addr = keys[i] + 5 * PAGE + 17;
            black_box(t.piece_at(black_box(addr)).map(|(k, _)| k))
        })
    });
    let orig = t.origs_in(0x1000_0000, 0x1000_0001)[0];
    let free_dst = 0x7000_0000;
    g.bench_function("insert+remove", |b| {
        b.iter(|| {
            let piece = Piece {
                len: 16 << 10,
                src: 0x1000_0000,
                orig,
                stamp: 1,
                slots: Slots::default(),
                trips: 0,
            };
            t.insert_piece(black_box(free_dst), piece);
            t.cut_piece(free_dst, free_dst, free_dst + (16 << 10));
        })
    });
    g.bench_function("dependents_of_page", |b| {
        b.iter(|| {
            i = (i + 13) % (RECORDS / 10);
            let page = 0x1000_0000 + i * (64 << 10) + 3 * PAGE;
            let ids = t.origs_in(black_box(page), page + PAGE);
            black_box(t.orig(ids[0]).deps.len())
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
