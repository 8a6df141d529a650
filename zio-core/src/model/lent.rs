//! Memory an IO stack lends zio (the bridge contract): copies from it are
//! elided without protecting it, release serves its dependents before the
//! stack reuses it, and resolve points a stack's transmit at the originals.

use super::ops::{redirect_cfg, small_cfg};
use super::sim::BASE;
use super::world::World;
use crate::engine::{Busy, Cfg};
use crate::ranges::PAGE;

/// A ring of 8 pages at the start of the space, and a world whose backup
/// budget is `quarantine` bytes.
fn ring_world(quarantine: usize) -> (World, usize) {
    let cfg = Cfg {
        quarantine,
        max_records: 100,
        ..small_cfg()
    };
    (World::new(cfg), BASE)
}

/// The stack receives `data` into its ring at `at` (its own stores, no
/// input call) and lends it.
fn receive(w: &mut World, at: usize, data: &[u8]) {
    for (i, &b) in data.iter().enumerate() {
        w.write(at + i, b);
    }
    w.e.lend(at, data.len()).unwrap();
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| seed ^ (i % 253) as u8).collect()
}

/// The receive copy out of lent memory is elided with no protection
/// change; the program's output of that copy is sent from the ring; the
/// release before the ring is reused rebuilds the copy, whose bytes stay
/// the old ones after the stack overwrites the ring.
#[test]
fn copies_of_lent_memory_are_elided_unprotected_and_served_at_release() {
    let (mut w, ring) = ring_world(0);
    let n = 6 * PAGE;
    let data = bytes(n, 1);
    receive(&mut w, ring, &data);
    let buf = BASE + 32 * PAGE;
    w.copy(buf, ring, n, 1);
    assert_eq!(
        w.e.counters.elided_bytes, n as u64,
        "the receive copy is elided"
    );
    assert_eq!(w.e.mem.protect_calls, 0, "lent memory is never protected");
    assert_eq!(w.output(buf, n), data);
    assert_eq!(
        w.e.counters.bytes_substituted, n as u64,
        "sent from the ring"
    );
    w.e.release_lent(ring, n).unwrap();
    assert_eq!(w.e.counters.lent_released, 1);
    assert!(!w.e.tracker().has_origs_in(ring, ring + n), "records end");
    // The stack reuses the ring: the program's copy keeps the old bytes.
    receive(&mut w, ring, &bytes(n, 2));
    w.check_range(buf, &data, "copy after the ring's reuse");
    assert_eq!(w.output(buf, n), data);
    w.check_all();
    w.e.check();
}

/// With a backup budget, release copies the lent bytes once and the
/// program's copies stay unmapped (one copy for any number of them).
#[test]
fn release_backs_up_once_for_every_copy() {
    let (mut w, ring) = ring_world(16 * PAGE);
    let n = 4 * PAGE;
    let data = bytes(n, 3);
    receive(&mut w, ring, &data);
    let (b1, b2) = (BASE + 24 * PAGE, BASE + 40 * PAGE);
    w.copy(b1, ring, n, 1);
    w.copy(b2, b1, n, 2);
    let materialized: u64 = w.e.counters.materialized.iter().sum();
    w.e.release_lent(ring, n).unwrap();
    assert_eq!(w.e.counters.bytes_backed_up, n as u64);
    assert_eq!(
        w.e.counters.materialized.iter().sum::<u64>(),
        materialized,
        "backed up, not rebuilt"
    );
    receive(&mut w, ring, &bytes(n, 4));
    assert_eq!(w.output(b2, n), data);
    assert_eq!(w.output(b1, n), data);
    w.check_all();
    w.e.check();
}

/// An output in flight pins the lent bytes it sends: release serves the
/// dependents but answers Busy (the stack holds the memory) until the
/// output is done, and then ends the records.
#[test]
fn release_waits_for_outputs_in_flight() {
    let (mut w, ring) = ring_world(0);
    let n = 4 * PAGE;
    let data = bytes(n, 5);
    receive(&mut w, ring, &data);
    let buf = BASE + 24 * PAGE;
    w.copy(buf, ring, n, 1);
    let g = w.e.output(buf, n);
    assert!(g.substituted > 0);
    assert_eq!(w.e.release_lent(ring, n), Err(Busy));
    assert!(w.e.tracker().has_origs_in(ring, ring + n), "held");
    w.e.output_done(&g, n);
    assert_eq!(w.e.release_lent(ring, n), Ok(()));
    assert!(!w.e.tracker().has_origs_in(ring, ring + n));
    receive(&mut w, ring, &bytes(n, 6));
    w.check_range(buf, &data, "copy");
    w.check_all();
    w.e.check();
}

/// Segments lent one after another are one original (a copy of all of
/// them is one piece); a release of the first part leaves the rest lent,
/// and copies of it are still elided.
#[test]
fn lent_segments_extend_and_release_in_parts() {
    let (mut w, ring) = ring_world(0);
    let data = bytes(8 * PAGE, 7);
    for k in 0..4 {
        receive(
            &mut w,
            ring + 2 * k * PAGE,
            &data[2 * k * PAGE..2 * (k + 1) * PAGE],
        );
    }
    assert_eq!(w.e.tracker().orig_count(), 1, "one original");
    let buf = BASE + 32 * PAGE;
    w.copy(buf, ring, 8 * PAGE, 1);
    assert_eq!(w.e.tracker().piece_count(), 1, "one piece");
    w.e.release_lent(ring, 4 * PAGE).unwrap();
    receive(&mut w, ring, &bytes(4 * PAGE, 8));
    let buf2 = BASE + 48 * PAGE;
    let before = w.e.counters.elided_bytes;
    w.copy(buf2, ring + 4 * PAGE, 4 * PAGE, 2);
    assert_eq!(w.e.counters.elided_bytes - before, 4 * PAGE as u64);
    assert_eq!(w.output(buf, 8 * PAGE), data);
    w.check_all();
    w.e.check();
}

/// Resolve gives a stack the originals' addresses for a program buffer of
/// elided copies, pinned until done; without dependents, lent memory stays
/// recorded until released (copied from again and again, a sample held).
#[test]
fn resolve_points_at_originals_and_idle_lent_memory_stays() {
    let (mut w, ring) = ring_world(0);
    let n = 4 * PAGE;
    let data = bytes(n, 9);
    receive(&mut w, ring, &data);
    let buf = BASE + 24 * PAGE;
    w.copy(buf, ring, n, 1);
    let g = w.e.resolve_for_stack(buf + 10, n - 10);
    assert_eq!(g.iov.as_slice(), &[(ring + 10, n - 10)]);
    assert_eq!(
        w.e.release_lent(ring, n),
        Err(Busy),
        "pinned while gathering"
    );
    w.e.resolve_done(&g.pins, g.substituted);
    assert_eq!(w.e.counters.bytes_resolved, (n - 10) as u64);
    // The program frees its copy: the ring stays lent, copied from again.
    assert_eq!(w.e.free(buf, n), crate::engine::FreeAction::Now);
    w.valid[buf - BASE..buf - BASE + n].fill(false);
    assert_eq!(w.e.tracker().orig_count(), 1);
    let before = w.e.counters.elided_bytes;
    w.copy(BASE + 40 * PAGE, ring, n, 1);
    assert_eq!(w.e.counters.elided_bytes - before, n as u64);
    w.e.release_lent(ring, n).unwrap();
    w.check_all();
    w.e.check();
}

/// Lending a range holding an input original: the input's dependents keep
/// its bytes (the stack's data replaced them), and the range is one lent
/// original from then on.
#[test]
fn lending_over_an_input_serves_the_inputs_copies() {
    let mut w = World::new(redirect_cfg());
    let n = 4 * PAGE;
    let old = bytes(n, 10);
    w.input(BASE, &old);
    let buf = BASE + 24 * PAGE;
    w.copy(buf, BASE, n, 1);
    // The stack's stores fault on the input's protected pages, which
    // serves the copy first, as for any write.
    receive(&mut w, BASE, &bytes(n, 11));
    let ids = w.e.tracker().origs_in(BASE, BASE + n);
    assert_eq!(ids.len(), 1);
    assert!(w.e.tracker().orig(ids[0]).lent);
    assert_eq!(w.output(buf, n), old);
    w.check_all();
    w.e.check();
}
