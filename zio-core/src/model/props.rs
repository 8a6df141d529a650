//! Property tests: every observable byte equals the plain-copy reference,
//! whatever the sequence of operations, and the sequences drawn reach the
//! engine's paths (elision itself among them), counted over all the cases
//! of a test. A generator that stopped reaching a path, or an engine that
//! stopped taking it, fails the test instead of passing it vacuously.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::TestRunner;

use super::ops::{
    chain_op, chain_touching, op, policy_cfg, redirect_cfg, run_world, small_cfg, Op,
};
use crate::engine::{Cause, Cfg};
use crate::ranges::PAGE;

/// Random sequences per property test.
const CASES: u32 = 3000;

/// Runs `CASES` sequences of 1 to 39 operations drawn from `op` under
/// `cfg`, each checked byte for byte (a mismatch fails and is shrunk to a
/// minimal sequence), and returns how often each engine path ran over all
/// of them.
fn run_sequences(op: impl Strategy<Value = Op>, cfg: Cfg) -> BTreeMap<&'static str, u64> {
    // With this file as the source, the failures proptest saved before
    // (proptest-regressions/model/props.txt) are run first.
    let config = ProptestConfig {
        cases: CASES,
        max_shrink_iters: 20000,
        source_file: Some(file!()),
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let reached = std::cell::RefCell::new(BTreeMap::new());
    let result = runner.run(&prop::collection::vec(op, 1..40), |ops| {
        let w = run_world(&ops, cfg);
        let (c, p) = (&w.e.counters, &w.e.paths);
        let mut r = reached.borrow_mut();
        for (path, n) in [
            ("elided bytes", c.elided_bytes),
            ("substituted bytes", c.bytes_substituted),
            ("repoint", p.repoints),
            ("redirect", c.inputs_redirected),
            ("steady redirect", p.steady_redirects),
            ("continued input", p.continued_inputs),
            ("tail moved", p.tails_moved),
            ("backup", p.backups),
            ("fault", c.faults_missing),
            ("fault-around", p.fault_arounds),
            ("budget fill", p.budget_fills),
            ("fringe hint", p.fringe_hits),
            ("zero fault", c.faults_zero),
            ("range released", c.ranges_released),
            ("write fault", c.faults_wp),
            ("refused", c.refused),
            (
                "materialized by write",
                c.materialized[Cause::Write as usize],
            ),
            ("quarantine", c.quarantined_total),
            ("overlapping copy", p.overlapping_copies),
            ("plain copy", p.plain_copies),
            ("moved realloc", p.moved_reallocs),
            ("policy skip", c.policy_skips),
            ("collected", c.materialized[Cause::Gc as usize]),
            ("fork", c.materialized[Cause::Fork as usize]),
            ("lent", c.bytes_lent),
            ("lent released", c.lent_released),
            ("cover clear", w.clear_calls),
            ("unrecorded input", w.unrecorded[0]),
            ("records ended by input", w.unrecorded[1]),
        ] {
            *r.entry(path).or_insert(0) += n;
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    reached.into_inner()
}

/// Fails unless every path in `paths` ran at least once over the cases.
fn assert_reached(reached: &BTreeMap<&'static str, u64>, paths: &[&str]) {
    let missing: Vec<&str> = paths.iter().copied().filter(|p| reached[p] == 0).collect();
    assert!(
        missing.is_empty(),
        "never reached: {missing:?}; counts: {reached:?}"
    );
}

/// Every observable byte equals the plain-copy reference, whatever the
/// sequence of operations; the sequences elide, substitute, redirect, back
/// up, quarantine, fault (around, and on writes), move overlapping bytes,
/// leave reallocs of IO data to the allocator's move, elide bytes a real
/// copy left in plain memory (fringe hints), fork, lend and release
/// memory as an IO stack does (released before it is written), make
/// copies, frees and outputs the cover leaves clear (each checked to be
/// one the engine does nothing about), and leave inputs unrecorded as the
/// hooks do while no copy is elided.
#[test]
fn engine_matches_plain_copies() {
    let reached = run_sequences(op(), small_cfg());
    assert_reached(
        &reached,
        &[
            "elided bytes",
            "substituted bytes",
            "redirect",
            "tail moved",
            "backup",
            "fault",
            "fault-around",
            "budget fill",
            "fringe hint",
            "write fault",
            "quarantine",
            "overlapping copy",
            "plain copy",
            "refused",
            "fork",
            "moved realloc",
            "lent",
            "lent released",
            "cover clear",
            "unrecorded input",
            "records ended by input",
        ],
    );
}

/// The same for a server's reused buffers, where the steady states of a
/// reused input buffer and of reused copy destinations are reached, and
/// the record bound makes the collector materialize.
#[test]
fn engine_matches_plain_copies_in_a_buffer_chain() {
    let reached = run_sequences(chain_op(), redirect_cfg());
    assert_reached(
        &reached,
        &[
            "elided bytes",
            "substituted bytes",
            "repoint",
            "redirect",
            "steady redirect",
            "backup",
            "fault",
            "fault-around",
            "budget fill",
            "write fault",
            "collected",
        ],
    );
}

/// The same with other bounds and the default fault ratio.
#[test]
fn engine_matches_plain_copies_with_policy() {
    let cfg = Cfg {
        threshold: 2 * PAGE,
        fault_ratio: 0.06,
        max_records: 64,
        quarantine: 64 * PAGE,
        redirect_input: true,
        pages_per_trip: 2,
    };
    let reached = run_sequences(op(), cfg);
    assert_reached(
        &reached,
        &["elided bytes", "substituted bytes", "backup", "quarantine"],
    );
}

/// The same for a server that reads its copies back: the policy stops
/// eliding (and probes again now and then), every byte still right.
#[test]
fn engine_matches_plain_copies_where_the_policy_stops_eliding() {
    let reached = run_sequences(chain_touching(4), policy_cfg());
    assert_reached(
        &reached,
        &[
            "elided bytes",
            "fault",
            "fault-around",
            "budget fill",
            "policy skip",
            "repoint",
        ],
    );
}
