//! The bound on what an elided copy can cost the program that reads it:
//! every access order (forward, backward, strided either way, random, a
//! random part) against the fault budget of docs/design.md.

use super::ops::small_cfg;
use super::sim::BASE;
use super::world::World;
use crate::engine::Cfg;
use crate::ranges::PAGE;

/// The orders in which a program may read the pages `0..n` of a copy: each
/// a list of page indices (some lists leave pages out).
fn orders(n: usize) -> Vec<(String, Vec<usize>)> {
    let mut v = vec![
        ("forward".to_string(), (0..n).collect::<Vec<_>>()),
        ("backward".to_string(), (0..n).rev().collect()),
    ];
    for stride in [2, 3, 5, 8] {
        let fwd: Vec<usize> = (0..stride).flat_map(|o| (o..n).step_by(stride)).collect();
        let back: Vec<usize> = fwd.iter().rev().copied().collect();
        v.push((format!("stride {stride}"), fwd));
        v.push((format!("stride -{stride}"), back));
    }
    // Outside in: the first page, the last, the second, ... (no stream).
    let outside_in = (0..n)
        .map(|i| if i % 2 == 0 { i / 2 } else { n - 1 - i / 2 })
        .collect();
    v.push(("outside in".to_string(), outside_in));
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed as usize
    };
    for round in 0..6 {
        let mut perm: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            perm.swap(i, next() % (i + 1));
        }
        v.push((format!("random {round}"), perm.clone()));
        perm.truncate(n / 3 + 1);
        v.push((format!("random third {round}"), perm));
    }
    v
}

/// The bound: a copy of `pages` pages given one round trip per
/// `per_trip` pages takes at most twice that many faults plus one
/// (docs/design.md, "The regret bound").
fn fault_bound(pages: usize, per_trip: usize) -> u64 {
    (2 * (pages / per_trip) + 1) as u64
}

/// Every order, copy size and budget: the bytes read are the copy's, each
/// page is filled at most once, and the faults stay within the bound.
#[test]
fn every_access_order_stays_within_the_fault_bound() {
    let mut worst = 0.0f64;
    for per_trip in [1, 2, 4, 8, 64] {
        for pages in [1, 4, 13, 40] {
            for (name, order) in orders(pages) {
                let cfg = Cfg {
                    pages_per_trip: per_trip,
                    ..small_cfg()
                };
                let mut w = World::new(cfg);
                let data: Vec<u8> = (0..pages * PAGE).map(|i| (i * 7 % 251) as u8).collect();
                w.input(BASE, &data);
                let dst = BASE + 44 * PAGE;
                w.copy(dst, BASE, pages * PAGE, 1);
                assert_eq!(w.e.counters.elided_bytes, (pages * PAGE) as u64);
                for &i in &order {
                    for off in [0, PAGE / 2, PAGE - 1] {
                        let at = i * PAGE + off;
                        assert_eq!(w.load(dst + at), data[at], "{name}: byte {at}");
                    }
                }
                let c = &w.e.counters;
                let bound = fault_bound(pages, per_trip);
                let what = format!("{name}, {pages} pages, a trip per {per_trip}");
                assert!(
                    c.faults_missing <= bound,
                    "{what}: {} faults, bound {bound}",
                    c.faults_missing
                );
                assert!(
                    c.materialized[0] <= pages as u64,
                    "{what}: a page filled twice"
                );
                assert!(c.faults_missing >= 1, "{what}: nothing faulted");
                worst = worst.max(c.faults_missing as f64 / bound as f64);
                w.e.check();
            }
        }
    }
    // Random orders come near the bound: without the fill that ends a
    // spent budget, they fault once per page and the bound fails.
    assert!(worst > 0.5, "worst faults/bound {worst}");
}
