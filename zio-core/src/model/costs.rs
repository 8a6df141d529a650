//! Model tests of what eliding costs beyond the touches of elided bytes,
//! and of the policy weighing it: memory going back and forth between
//! elided copies and other uses (churn), redirected inputs nothing is
//! copied from, protection kept on idle originals, rebuilding in runs.

use super::ops::{policy_cfg, small_cfg};
use super::sim::BASE;
use super::world::World;
use crate::ranges::PAGE;

/// Rounds after which a site's churn is judged, with 16-page copies.
const JUDGED: usize = (64 << 20) / (16 * PAGE) + 1;

/// The program frees the elided copy at `d` (`n` bytes).
fn free(w: &mut World, d: usize, n: usize) {
    w.e.free(d, n);
    let o = d - BASE;
    w.valid[o..o + n].iter_mut().for_each(|v| *v = false);
}

/// A server whose allocator hands each freed reply buffer to the next
/// input: every page an elided copy left missing needs a fresh zeroed
/// page again, which costs more than the copy saved. Once that churn is
/// judged, the site copies for real (with a probe now and then).
#[test]
fn memory_going_back_to_input_stops_the_copy_site() {
    let mut w = World::new(policy_cfg());
    let (a, d, n) = (BASE, BASE + 32 * PAGE, 16 * PAGE);
    for round in 0..JUDGED + 300 {
        w.input(a, &vec![round as u8; n]);
        w.copy(d, a, n, 1);
        free(&mut w, d, n);
        // The reply buffer's memory holds the next request.
        w.input(d, &vec![!(round as u8); n]);
    }
    w.check_all();
    let c = &w.e.counters;
    assert!(c.bytes_refilled >= (JUDGED * n) as u64 / 2, "{c:?}");
    assert!(c.policy_skips >= 250, "kept eliding: {c:?}");
}

/// The same server with its freed reply buffers handed to the next reply:
/// the pages stay missing from one elided copy to the next, nothing is
/// refilled, and the site never stops.
#[test]
fn memory_reused_by_elided_copies_keeps_eliding() {
    let mut w = World::new(policy_cfg());
    let (a, d, n) = (BASE, BASE + 32 * PAGE, 16 * PAGE);
    for round in 0..JUDGED + 300 {
        w.input(a, &vec![round as u8; n]);
        w.copy(d, a, n, 1);
        w.ref_copy(d, a, n);
        let _ = w.output(d, n);
        free(&mut w, d, n);
    }
    w.check_all();
    let c = &w.e.counters;
    assert_eq!((c.bytes_refilled, c.policy_skips), (0, 0), "{c:?}");
    assert_eq!(c.elided_copies, (JUDGED + 300) as u64);
}

/// A buffer the allocator hands back for each input is redirected while
/// copies are elided from it; once the program stops copying it (it only
/// frees it), each redirect is a loss, and input lands in the buffer again.
#[test]
fn redirects_nothing_is_copied_from_stop() {
    let mut w = World::new(policy_cfg());
    let (b, d, n) = (BASE, BASE + 32 * PAGE, 16 * PAGE);
    // Copied from once, then freed: an input buffer the allocator will
    // hand back.
    w.input(b, &vec![1; n]);
    w.copy(d, b, n, 1);
    w.ref_copy(d, b, n);
    free(&mut w, b, n);
    for round in 0..200u8 {
        w.input(b, &vec![round; n]);
        free(&mut w, b, n);
    }
    w.check_all();
    let c = &w.e.counters;
    assert!(w.e.paths.unused_redirects >= 1, "{:?}", w.e.paths);
    assert!(
        c.inputs_redirected <= 10,
        "kept redirecting a buffer nothing is copied from: {c:?}"
    );
}

/// A dependent rebuilt because its original changes is mapped in one call
/// per run of pages, not one per page.
#[test]
fn dependents_are_rebuilt_in_runs() {
    let mut w = World::new(small_cfg());
    let (a, d, n) = (BASE, BASE + 32 * PAGE, 16 * PAGE);
    w.input(a, &vec![3; n]);
    w.copy(d, a, n, 1);
    w.ref_copy(d, a, n);
    let fills = w.e.mem.fill_calls;
    // The input changes, and the backup budget (8 pages) is too small to
    // keep its old bytes: the copy is rebuilt first.
    w.input(a, &vec![4; n]);
    assert_eq!(w.e.mem.fill_calls - fills, 1, "16 pages, one fill");
    w.check_all();
}

/// An input of 8 pages at `BASE` whose one elided copy was overwritten:
/// an idle original, left protected.
fn idle_original() -> World {
    let mut w = World::new(small_cfg());
    w.input(BASE, &vec![7u8; 8 * PAGE]);
    w.copy(BASE + 20 * PAGE, BASE, 8 * PAGE, 1);
    w.copy(BASE + 20 * PAGE, BASE + 40 * PAGE, 8 * PAGE, 1);
    assert!(w.e.mem.pages[0..8].iter().all(|p| p.wp), "kept while idle");
    w
}

/// A write to an idle original is one fault, which unprotects all of it.
#[test]
fn an_idle_original_written_is_unprotected_at_once() {
    let mut w = idle_original();
    // The program writes one page of it: one fault, and every page of it
    // that nothing needs is unprotected with it.
    w.write(BASE + 3 * PAGE, 1);
    assert_eq!(w.e.counters.faults_wp, 1);
    assert!(w.e.mem.pages[0..8].iter().all(|p| !p.wp));
    for i in 0..8 {
        w.write(BASE + i * PAGE + 1, 2);
    }
    assert_eq!(w.e.counters.faults_wp, 1, "one fault for the whole buffer");
    w.check_all();
}

/// A program that writes its input buffer itself after each message:
/// idle originals stop being kept protected.
#[test]
fn idle_originals_written_every_time_stop_being_kept() {
    let mut w = World::new(small_cfg());
    let faults = |w: &World| w.e.counters.faults_wp;
    for round in 0..40 {
        w.input(BASE, &vec![round as u8; 8 * PAGE]);
        w.copy(BASE + 20 * PAGE, BASE, 8 * PAGE, 1);
        // The copy is dropped; the program then writes its input buffer
        // itself, not through an input call.
        w.copy(BASE + 20 * PAGE, BASE + 40 * PAGE, 8 * PAGE, 1);
        w.write(BASE, round as u8);
    }
    // Kept at first, then unprotected as the original goes idle: the
    // faults stop growing but for a probe now and then.
    assert!(faults(&w) < 8, "{} write faults in 40 rounds", faults(&w));
    w.check_all();
}

/// A real copy of plain bytes over an idle original left protected
/// releases it on the way: no write fault.
#[test]
fn a_plain_copy_over_an_idle_original_needs_no_fault() {
    let mut w = idle_original();
    w.copy(BASE, BASE + 40 * PAGE, 8 * PAGE, 1);
    assert_eq!(w.e.counters.faults_wp, 0);
    assert!(w.e.mem.pages[0..8].iter().all(|p| !p.wp));
    w.check_all();
}
