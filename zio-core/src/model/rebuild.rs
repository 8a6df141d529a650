//! Rebuilding pages that several pieces share, and rebuilding that fails.
//! Each page rebuilt cuts every piece in it, so a piece reaching past the
//! page is left under another key, and a walk over the keys taken before
//! would miss the rest of it; a fill the kernel refuses leaves the pieces
//! as they were, and nothing may wait for it to succeed.

use super::ops::{run_world, small_cfg, Op};
use super::sim::{Sim, BASE};
use super::world::World;
use crate::engine::Cfg;
use crate::ranges::PAGE;

/// Pieces meeting inside a page, the last reaching two pages past it: an
/// input call over all of them finds every page rebuilt and mapped before
/// it writes (the engine writes such pages itself under its lock, where a
/// fault would wait for the handler that waits for the lock).
#[test]
fn every_page_of_a_range_is_rebuilt_before_a_write() {
    let mut w = World::new(small_cfg());
    let (a, dst) = (BASE, BASE + 20 * PAGE);
    w.input(a, &[1; 4 * PAGE]);
    w.copy(dst, a, 3 * PAGE, 0);
    // One byte read into the copy's first page (asking for more): it
    // becomes a piece of its own, which splits the copy's around it.
    w.input_asked(dst + 100, 2 * PAGE, &[2]);
    let pieces = |w: &World| {
        w.e.tracker()
            .pieces()
            .map(|(k, p)| (k - dst, k + p.len - dst))
            .collect::<Vec<_>>()
    };
    assert_eq!(pieces(&w), [(0, 100), (100, 101), (101, 3 * PAGE)]);
    w.e.input_prepare(dst, 3 * PAGE).unwrap();
    for page in 0..3 {
        let i = Sim::idx(dst + page * PAGE);
        assert!(w.e.mem.pages[i].present, "page {page} left missing");
    }
    assert_eq!(pieces(&w), []);
    w.check_all();
}

/// An input over an original whose copy's pieces meet inside a page,
/// with no room to back the bytes up: every dependent of the overwritten
/// pages is rebuilt, also the part of one that the rebuilding of its
/// neighbour's page left under another key, before the original loses
/// those bytes. (Shrunk from a random sequence of the property tests.)
#[test]
fn overwritten_original_rebuilds_every_dependent() {
    let ops = [
        Op::Input {
            at: 84 * PAGE,
            len: PAGE,
            seed: 0,
        },
        Op::InputNext {
            len: 4 * PAGE + 8,
            seed: 0,
        },
        Op::Copy {
            d: 38 * PAGE - 7,
            s: 86 * PAGE,
            len: 3 * PAGE,
            site: 0,
        },
        // One byte into the copy's first page: its piece splits around it.
        Op::InputShort {
            at: 38 * PAGE + 1,
            len: 1,
            more: 2 * PAGE,
            seed: 0,
        },
        Op::InputShort {
            at: 85 * PAGE,
            len: 2 * PAGE + 1,
            more: 1,
            seed: 0,
        },
    ];
    let w = run_world(&ops, small_cfg());
    assert!(w.e.counters.elided_bytes > 0, "{:?}", w.e.counters);
}

/// Runs `f` on `w` in a thread and gives `w` back, failing the test if
/// `what` has not ended within 20 s (a loop waiting for a fill that never
/// comes would spin for good).
fn ends_in_time(mut w: World, what: &str, f: impl FnOnce(&mut World) + Send + 'static) -> World {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        f(&mut w);
        tx.send(w).ok();
    });
    rx.recv_timeout(std::time::Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{what} did not end"))
}

/// Collection beyond the record bound while the kernel refuses every fill:
/// the pieces stay (their pages are still missing) and the collection
/// ends, to try again next time, instead of spinning under the lock.
#[test]
fn collection_ends_when_no_page_can_be_filled() {
    let mut w = World::new(Cfg {
        max_records: 1,
        ..small_cfg()
    });
    w.input(BASE, &[7; 4 * PAGE]);
    for i in 0..3 {
        w.copy(BASE + (10 + 4 * i) * PAGE, BASE, 3 * PAGE, 0);
    }
    assert_eq!(w.e.tracker().piece_count(), 3);
    w.e.mem.refuse_fills = true;
    let mut w = ends_in_time(w, "collection", |w| w.e.collect());
    assert_eq!(w.e.tracker().piece_count(), 3);
    w.e.mem.refuse_fills = false;
    w.e.collect();
    assert_eq!(w.e.tracker().piece_count(), 1);
    w.check_all();
}

/// A fork while the kernel refuses every fill: the fork goes on (nothing
/// waits for a fill), the elided copy stays a piece in the parent with its
/// source still protected, and once fills work again it reads right.
#[test]
fn fork_goes_on_when_no_page_can_be_filled() {
    let mut w = World::new(small_cfg());
    let data = vec![9u8; 3 * PAGE];
    w.input(BASE, &data);
    w.copy(BASE + 10 * PAGE, BASE, 3 * PAGE, 0);
    w.e.mem.refuse_fills = true;
    let mut w = ends_in_time(w, "fork preparation", |w| w.e.prepare_fork());
    assert_eq!(w.e.tracker().piece_count(), 1);
    assert!(
        (0..3).all(|p| w.e.mem.pages[Sim::idx(BASE + p * PAGE)].wp),
        "the source lost its protection"
    );
    w.e.mem.refuse_fills = false;
    assert!(w.output(BASE + 10 * PAGE, 3 * PAGE) == data);
    w.check_all();
}
