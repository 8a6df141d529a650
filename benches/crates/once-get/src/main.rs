//! ns per read of a cell that is set: `once_cell`'s `OnceCell`, std's
//! `OnceLock`, and a plain atomic load (how zio reads the state its
//! constructor set), in alternating rounds. Prints one line per round.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

static ONCE_CELL: once_cell::sync::OnceCell<usize> = once_cell::sync::OnceCell::new();
static ONCE_LOCK: OnceLock<usize> = OnceLock::new();
static ATOMIC: AtomicUsize = AtomicUsize::new(0);

/// Mean ns per call of `f`.
fn per_read(f: impl Fn() -> usize) -> f64 {
    const READS: u32 = 100_000_000;
    let t = Instant::now();
    let mut sum = 0usize;
    for _ in 0..READS {
        sum = sum.wrapping_add(black_box(f()));
    }
    black_box(sum);
    t.elapsed().as_nanos() as f64 / f64::from(READS)
}

fn main() {
    ONCE_CELL.set(7).expect("first set");
    ONCE_LOCK.set(7).expect("first set");
    ATOMIC.store(7, Ordering::Release);
    for round in 1..=5 {
        let a = per_read(|| *black_box(&ONCE_CELL).get().expect("set"));
        let b = per_read(|| *black_box(&ONCE_LOCK).get().expect("set"));
        let c = per_read(|| black_box(&ATOMIC).load(Ordering::Acquire));
        println!("round {round}: once_cell {a:.3} ns, OnceLock {b:.3} ns, atomic load {c:.3} ns");
    }
}
