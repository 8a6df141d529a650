//! One test per behaviour of the engine, on hand-written sequences, each
//! checking the bytes and the counters or memory calls that show the
//! behaviour happened.

use super::ops::{policy_cfg, redirect_cfg, run, run_world, small_cfg, Op};
use super::sim::{Sim, BASE, SHARED_FROM};
use super::world::World;
use crate::engine::{Cause, Cfg, FreeAction};
use crate::ranges::PAGE;

/// A test that can fail only if elision happens: the model must elide and
/// substitute in a plain input → copy chain → output sequence.
#[test]
fn chains_are_elided_and_substituted() {
    let ops = vec![
        Op::Input {
            at: 0,
            len: 8 * PAGE,
            seed: 3,
        },
        Op::Copy {
            d: 16 * PAGE + 100,
            s: 100,
            len: 6 * PAGE,
            site: 1,
        },
        Op::Copy {
            d: 32 * PAGE,
            s: 16 * PAGE + 100,
            len: 5 * PAGE,
            site: 1,
        },
        Op::Copy {
            d: 48 * PAGE + 7,
            s: 32 * PAGE,
            len: 5 * PAGE,
            site: 2,
        },
        Op::Output {
            at: 48 * PAGE,
            len: 6 * PAGE,
        },
        Op::Write {
            at: 200,
            len: 10,
            seed: 9,
        },
        Op::Output {
            at: 32 * PAGE,
            len: 5 * PAGE,
        },
    ];
    let (elided, substituted) = run(&ops, small_cfg());
    assert!(elided >= 12 * PAGE as u64, "elided only {elided}");
    // Pages whose source straddles a copied-for-real fringe are not elided:
    // 4 + 3 pages are still unmapped when output.
    assert!(
        substituted >= 7 * PAGE as u64,
        "substituted only {substituted}"
    );
}

#[test]
fn policy_stops_eliding_where_everything_is_touched() {
    let mut w = World::new(Cfg {
        threshold: PAGE,
        fault_ratio: 0.06,
        max_records: 1000,
        quarantine: 1 << 20,
        redirect_input: true,
        pages_per_trip: 2,
    });
    for round in 0..40 {
        w.input(BASE, &vec![round as u8; 8 * PAGE]);
        w.copy(BASE + 16 * PAGE, BASE, 8 * PAGE, 7);
        let bytes: Vec<u8> = (0..8 * PAGE)
            .map(|i| w.load(BASE + 16 * PAGE + i))
            .collect();
        w.check_range(BASE + 16 * PAGE, &bytes, "touch all");
    }
    let c = &w.e.counters;
    assert!(c.policy_skips >= 30, "{c:?}");
    assert!(c.elided_bytes <= 8 * (8 * PAGE) as u64, "{c:?}");
}

/// A fault rebuilds its page alone where the program touches a page here
/// and there, and runs four times longer each time a fault comes right
/// after the pages the last one rebuilt (up to `FAULT_AROUND`).
#[test]
fn fault_around_grows_only_while_reading_on() {
    let mut w = World::new(small_cfg());
    let data: Vec<u8> = (0..40 * PAGE).map(|i| (i * 7 % 251) as u8).collect();
    w.input(BASE, &data);
    let dst = BASE + 48 * PAGE;
    let faults = |w: &World| (w.e.counters.faults_missing, w.e.counters.materialized[0]);
    for round in 0..2 {
        w.copy(dst, BASE, 40 * PAGE, 1);
        assert_eq!(w.e.counters.elided_bytes, (round + 1) * 40 * PAGE as u64);
        // Sparse: one page per fault.
        let before = faults(&w);
        for p in [30, 10, 20, 0] {
            let b = w.load(dst + p * PAGE + 5);
            assert_eq!(b, data[p * PAGE + 5]);
        }
        assert_eq!(faults(&w), (before.0 + 4, before.1 + 4));
        // Reading on from page 1, which continues the run at page 0: 4
        // pages (1-4), then 16 (5-9: page 10 is present); page 11
        // continues the run at 10: 4 (11-14), 16 (15-19); and so on: 36
        // pages in 8 faults.
        let bytes: Vec<u8> = (PAGE..40 * PAGE).map(|i| w.load(dst + i)).collect();
        assert_eq!(bytes, data[PAGE..]);
        assert_eq!(faults(&w), (before.0 + 4 + 8, before.1 + 40));
    }
}

/// A program reading an elided copy backwards (`b[::-1]`) gets the same
/// fault-around as one reading it forwards: runs of 1, 4, 16, 64 pages
/// ending at each fault, not one fault per page.
#[test]
fn fault_around_follows_backward_reads() {
    let mut w = World::new(small_cfg());
    let pages = 40;
    let data: Vec<u8> = (0..pages * PAGE).map(|i| (i * 13 % 251) as u8).collect();
    w.input(BASE, &data);
    let dst = BASE + 48 * PAGE;
    w.copy(dst, BASE, pages * PAGE, 1);
    assert_eq!(w.e.counters.elided_bytes, (pages * PAGE) as u64);
    let bytes: Vec<u8> = (0..pages * PAGE).rev().map(|i| w.load(dst + i)).collect();
    assert!(bytes.iter().rev().eq(data.iter()));
    // 40 pages: 1 + 4 + 16, then the first 19 in one more fault.
    assert_eq!(w.e.counters.faults_missing, 4, "{:?}", w.e.counters);
    assert_eq!(w.e.counters.materialized[0], pages as u64);
}

/// A freed elided copy's pages stay missing: an elided copy into them again
/// makes no system call, a program writing them itself pays one fault for
/// the run it writes into, and an input into them gets zero pages first.
#[test]
fn freed_copies_stay_missing_for_the_next_copy() {
    let mut w = World::new(small_cfg());
    let data: Vec<u8> = (0..16 * PAGE).map(|i| (i % 253) as u8).collect();
    w.input(BASE, &data);
    let dst = BASE + 32 * PAGE;
    let calls = |w: &World| (w.e.mem.unmap_calls, w.e.mem.zero_calls);
    w.copy(dst, BASE, 16 * PAGE, 1);
    assert_eq!(calls(&w).0, 1);
    for round in 0..3 {
        let before = calls(&w);
        assert_eq!(w.e.free(dst, 16 * PAGE), FreeAction::Now);
        w.valid[32 * PAGE..48 * PAGE]
            .iter_mut()
            .for_each(|v| *v = false);
        w.copy(dst, BASE, 16 * PAGE, 1);
        w.ref_copy(dst, BASE, 16 * PAGE);
        assert_eq!(
            calls(&w),
            before,
            "round {round}: free and copy again made calls"
        );
        assert_eq!(w.e.counters.elided_bytes, (round + 2) * 16 * PAGE as u64);
        w.e.check();
    }
    // Freed, then written by the program itself from page 3: one fault
    // fills pages 3-15; page 0 is a second fault.
    w.e.free(dst, 16 * PAGE);
    w.valid[32 * PAGE..48 * PAGE]
        .iter_mut()
        .for_each(|v| *v = false);
    let faults = w.e.counters.faults_zero;
    for i in (3 * PAGE..16 * PAGE).step_by(512) {
        w.store(dst + i, 9);
    }
    assert_eq!(w.e.counters.faults_zero, faults + 1);
    w.store(dst, 9);
    assert_eq!(w.e.counters.faults_zero, faults + 2);
    // Freed again: an input there is given zero pages first, no faults.
    w.copy(dst, BASE, 16 * PAGE, 1);
    w.e.free(dst, 16 * PAGE);
    w.input(dst, &vec![5; 16 * PAGE]);
    assert_eq!(w.e.counters.faults_zero, faults + 2);
    w.e.check();
    w.check_all();
}

/// A fault is charged the page it rebuilt plus its round trip (4 pages):
/// with a 40-page copy and a ratio of 20% (8 pages), one fault per copy
/// keeps elision going and two stop it.
#[test]
fn policy_charges_each_fault_its_round_trip() {
    for (touches, stops) in [(1, false), (2, true)] {
        let mut w = World::new(Cfg {
            fault_ratio: 0.2,
            ..small_cfg()
        });
        for round in 0..20u8 {
            w.input(BASE, &vec![round; 40 * PAGE]);
            w.copy(BASE + 48 * PAGE, BASE, 40 * PAGE, 1);
            for t in 0..touches {
                assert_eq!(w.load(BASE + 48 * PAGE + t * 20 * PAGE), round);
            }
        }
        let c = &w.e.counters;
        assert_eq!(
            c.policy_skips >= 10,
            stops,
            "{touches} faults per copy: {c:?}"
        );
    }
}

/// A freed allocation holding two originals, only one with dependents, over
/// the quarantine budget: releasing the first one's dependents releases the
/// whole allocation, deleting the second original's record mid-operation.
#[test]
fn quarantine_release_with_two_originals_in_one_allocation() {
    let ops = vec![
        Op::Input {
            at: 0,
            len: 4 * PAGE,
            seed: 1,
        },
        Op::Input {
            at: 8 * PAGE,
            len: 4 * PAGE,
            seed: 2,
        },
        Op::Copy {
            d: 20 * PAGE,
            s: 0,
            len: 4 * PAGE,
            site: 0,
        },
        Op::Free {
            at: 0,
            len: 16 * PAGE,
        },
        Op::Touch {
            at: 20 * PAGE,
            len: 4 * PAGE,
        },
    ];
    run(
        &ops,
        Cfg {
            threshold: PAGE,
            fault_ratio: 1.0,
            max_records: 100,
            quarantine: 0,
            redirect_input: true,
            pages_per_trip: 2,
        },
    );
}

/// A reused input buffer: the next input into the original backs its bytes
/// up once for all its copies instead of rebuilding every copy's pages, and
/// the copies, still unmapped, go out with the old bytes.
#[test]
fn reused_input_buffer_is_backed_up_not_materialized() {
    let mut w = World::new(small_cfg());
    let cfg = Cfg {
        quarantine: 64 * PAGE,
        redirect_input: false,
        ..small_cfg()
    };
    w.e.cfg = cfg;
    w.input(BASE, &vec![1u8; 8 * PAGE]);
    for i in 1..4 {
        w.copy(BASE + i * 10 * PAGE, BASE, 8 * PAGE, 1);
    }
    w.input(BASE, &vec![2u8; 8 * PAGE]);
    assert_eq!(w.e.counters.materialized, [0; 5], "{:?}", w.e.counters);
    assert_eq!(w.e.counters.bytes_backed_up, 8 * PAGE as u64);
    for i in 1..4 {
        let out = w.output(BASE + i * 10 * PAGE, 8 * PAGE);
        assert!(out.iter().all(|&b| b == 1), "copy {i} lost its bytes");
    }
    assert!(w.e.counters.bytes_substituted >= 24 * PAGE as u64);
    // Overwriting the copies releases the backup.
    for i in 1..4 {
        w.copy(BASE + i * 10 * PAGE, BASE, 8 * PAGE, 1);
    }
    assert_eq!(w.e.counters.backup_bytes, 0);
    w.check_all();
}

#[test]
fn reused_destination_costs_no_protection_change() {
    let mut w = World::new(small_cfg());
    w.input(BASE, &vec![7u8; 8 * PAGE]);
    w.copy(BASE + 20 * PAGE, BASE, 8 * PAGE, 1);
    let calls = w.e.mem.protect_calls;
    for _ in 0..5 {
        w.copy(BASE + 20 * PAGE, BASE, 8 * PAGE, 1);
    }
    assert_eq!(w.e.counters.elided_copies, 6);
    assert_eq!(
        w.e.mem.protect_calls, calls,
        "re-eliding the only dependent toggled the protection"
    );
    let out = w.output(BASE + 20 * PAGE, 8 * PAGE);
    assert!(out.iter().all(|&b| b == 7));
    // Once nothing depends on it, the input stays protected (idle), and
    // eliding from it again changes no protection either.
    w.copy(BASE + 20 * PAGE, BASE + 40 * PAGE, 8 * PAGE, 1);
    assert!(w.e.mem.pages[0..8].iter().all(|p| p.wp));
    w.copy(BASE + 60 * PAGE, BASE, 8 * PAGE, 1);
    assert_eq!(w.e.mem.protect_calls, calls, "idle input protected again");
    w.check_all();
}

#[test]
fn chunked_input_is_one_original_and_one_piece_per_copy() {
    let mut w = World::new(small_cfg());
    for chunk in 0..4 {
        w.input(BASE + chunk * 2 * PAGE, &vec![chunk as u8 + 1; 2 * PAGE]);
    }
    assert_eq!(w.e.tracker().orig_count(), 1);
    w.copy(BASE + 20 * PAGE, BASE, 8 * PAGE, 1);
    w.copy(BASE + 40 * PAGE, BASE + 20 * PAGE, 8 * PAGE, 1);
    assert_eq!(w.e.tracker().piece_count(), 2);
    let out = w.output(BASE + 40 * PAGE, 8 * PAGE);
    for chunk in 0..4 {
        let part = &out[chunk * 2 * PAGE..(chunk + 1) * 2 * PAGE];
        assert!(part.iter().all(|&b| b == chunk as u8 + 1));
    }
    // Reading the next message's first chunk backs up all of the old one.
    w.input(BASE, &vec![9u8; 2 * PAGE]);
    let out = w.output(BASE + 40 * PAGE, 8 * PAGE);
    assert!(out[..2 * PAGE].iter().all(|&b| b == 1));
    w.check_all();
}

/// A reused input buffer's next input lands in zio's memory: the buffer's
/// pages become a copy of it, the old message stays where its copies point,
/// and the steady state makes no backup and changes no protection.
#[test]
fn reused_input_buffer_is_redirected_without_backup_or_protection() {
    let mut w = World::new(redirect_cfg());
    let (input, c1, c2) = (BASE, BASE + 20 * PAGE, BASE + 40 * PAGE);
    for round in 0..5u8 {
        let protects = w.e.mem.protect_calls;
        let backed = w.e.counters.bytes_backed_up;
        w.input(input, &vec![round; 8 * PAGE]);
        if round > 0 {
            let out = w.output(c2, 8 * PAGE);
            assert!(out.iter().all(|&b| b == round - 1), "round {round}");
        }
        w.copy(c1, input, 8 * PAGE, 1);
        w.copy(c2, c1, 8 * PAGE, 1);
        let out = w.output(c2, 8 * PAGE);
        assert!(out.iter().all(|&b| b == round));
        if round > 1 {
            assert_eq!(w.e.counters.bytes_backed_up, backed, "round {round}");
            assert_eq!(w.e.mem.protect_calls, protects, "round {round}");
        }
    }
    // (Checked once at the end: reading every byte faults the copies in.)
    w.check_all();
    // Round 0 is recorded in place; every later round is redirected.
    assert_eq!(w.e.counters.inputs_redirected, 4);
    assert_eq!(w.e.counters.bytes_redirected, 4 * 8 * PAGE as u64);
    assert_eq!(w.e.counters.elided_copies, 10);
}

/// A program that reads its redirected input buffer in place faults there;
/// the policy then lands its input in the buffer again.
#[test]
fn touched_input_buffer_stops_being_redirected() {
    let mut w = World::new(policy_cfg());
    for round in 0..40u8 {
        w.input(BASE, &vec![round; 8 * PAGE]);
        // Parse every page of it.
        for page in 0..8 {
            assert_eq!(w.load(BASE + page * PAGE + 5), round);
        }
        w.copy(BASE + 20 * PAGE, BASE, 8 * PAGE, 1);
    }
    w.check_all();
    let redirected = w.e.counters.inputs_redirected;
    assert!(redirected >= 1, "never redirected");
    assert!(
        redirected <= 6,
        "kept redirecting a touched buffer: {redirected}"
    );
}

/// A small read right after a whole message (the next message's header,
/// read by a parser) is not part of it: it lands in the buffer, and
/// reading it back costs no fault, though zio's memory has room for it.
#[test]
fn small_read_past_the_asked_message_lands_in_place() {
    let mut w = World::new(redirect_cfg());
    let n = 8 * PAGE - 100;
    for round in 0..6u8 {
        // A longer message first: the bytes past `n` in the last page are
        // input too, so the next message's tail page moves whole into zio's
        // memory, which then has room right after the message.
        w.input_asked(BASE, 8 * PAGE, &vec![round; 8 * PAGE]);
        w.copy(BASE + 20 * PAGE, BASE, 8 * PAGE, 1);
        w.input_asked(BASE, n, &vec![round; n]);
        w.copy(BASE + 20 * PAGE, BASE, n, 1);
        let (redirected, faults) = (w.e.counters.inputs_redirected, w.e.counters.faults_missing);
        w.input_asked(BASE + n, 50, &[round + 100; 50]);
        assert_eq!(w.load(BASE + n + 7), round + 100);
        let c = &w.e.counters;
        assert_eq!(c.inputs_redirected, redirected, "round {round}");
        assert_eq!(c.faults_missing, faults, "round {round}");
        assert_eq!(w.output(BASE + 20 * PAGE, n), vec![round; n]);
    }
    assert!(w.e.counters.inputs_redirected >= 4);
    w.check_all();
}

/// The same, with each message read in parts that end mid-page: the parts
/// after the first follow it into zio's memory, and the faults on them are
/// charged to the message's start, so the whole buffer soon lands in place.
#[test]
fn touched_input_buffer_read_in_parts_stops_being_redirected() {
    let mut w = World::new(policy_cfg());
    let n = 8 * PAGE;
    let mut messages = 0;
    for round in 0..40u8 {
        let redirected = w.e.counters.inputs_redirected;
        let cut = PAGE + 300 * (round as usize % 7);
        w.input_asked(BASE, n, &vec![round; cut]);
        w.input_asked(BASE + cut, n - cut, &vec![round; n - cut]);
        messages += u32::from(w.e.counters.inputs_redirected > redirected);
        for page in 0..8 {
            assert_eq!(w.load(BASE + page * PAGE + 5), round);
        }
        w.copy(BASE + 20 * PAGE, BASE, n, 1);
    }
    w.check_all();
    assert!(messages >= 1, "never redirected");
    assert!(
        messages <= 6,
        "kept redirecting a touched buffer: {messages} messages"
    );
}

/// A copy the policy refuses still reads the redirected input buffer, for
/// real: that is a touch too, and the input lands in the buffer again
/// rather than being redirected and read back through the copy's bounce
/// buffer on every message.
#[test]
fn buffer_copied_for_real_stops_being_redirected() {
    let mut w = World::new(policy_cfg());
    for round in 0..40u8 {
        w.input(BASE, &vec![round; 16 * PAGE]);
        w.copy(BASE + 32 * PAGE, BASE, 16 * PAGE, 1);
        // A quarter of the copy read: its call site soon copies for real.
        for page in [0, 4, 8, 12] {
            assert_eq!(w.load(BASE + 32 * PAGE + page * PAGE + 5), round);
        }
    }
    w.check_all();
    let c = &w.e.counters;
    assert!(c.policy_skips >= 30, "{c:?}");
    assert!(c.inputs_redirected >= 1, "never redirected: {c:?}");
    assert!(
        c.inputs_redirected <= 6,
        "kept redirecting a buffer copied for real: {c:?}"
    );
}

/// A redirected message read in chunks lands in one run of zio's memory:
/// the buffer and each copy of it stay one piece, also when a chunk ends
/// inside a page that is present (its bytes past the chunk move into
/// zio's memory once), and nothing is copied for real after the first
/// message. The bytes are exact either way.
#[test]
fn chunked_redirected_input_stays_one_piece() {
    for chunks in [
        &[2 * PAGE, 2 * PAGE, 4 * PAGE][..],
        &[2 * PAGE, 2 * PAGE, 1000, 4 * PAGE - 1000][..],
        &[1000, 3 * PAGE, 5 * PAGE - 1000][..],
    ] {
        let mut w = World::new(redirect_cfg());
        let (input, c1, c2) = (BASE, BASE + 20 * PAGE, BASE + 40 * PAGE);
        let (mut copied, mut redirected) = (0, 0);
        for round in 0..4u8 {
            let msg: Vec<u8> = (0..8 * PAGE).map(|i| round ^ (i / 97) as u8).collect();
            let mut off = 0;
            for &len in chunks {
                w.input_asked(input + off, 8 * PAGE - off, &msg[off..off + len]);
                off += len;
            }
            w.copy(c1, input, 8 * PAGE, 1);
            w.copy(c2, c1, 8 * PAGE, 1);
            // Round 1 is the change-over; from round 2 on every chunk
            // continues the same run.
            if round > 1 {
                assert_eq!(w.e.tracker().piece_count(), 3, "{chunks:?} round {round}");
                assert_eq!(
                    w.e.counters.copied_bytes, copied,
                    "{chunks:?} round {round}"
                );
                let every = redirected + chunks.len() as u64;
                assert_eq!(
                    w.e.counters.inputs_redirected, every,
                    "{chunks:?} round {round}"
                );
            }
            copied = w.e.counters.copied_bytes;
            redirected = w.e.counters.inputs_redirected;
            assert_eq!(w.output(c2, 8 * PAGE), msg, "{chunks:?} round {round}");
        }
        w.check_all();
    }
}

/// The last page of a redirected input buffer that also holds other data
/// (here a counter the program bumps after every message) stays present:
/// its bytes after the buffer are not input, and unmapping the page would
/// make every use of them a fault.
#[test]
fn page_shared_with_other_data_stays_mapped() {
    let mut w = World::new(redirect_cfg());
    let len = 8 * PAGE - 100;
    let (input, c1) = (BASE, BASE + 20 * PAGE);
    let counter = input + len;
    for round in 0..6u8 {
        let msg: Vec<u8> = (0..len).map(|i| round ^ (i / 89) as u8).collect();
        w.input_asked(input, len, &msg);
        assert!(
            w.e.mem.pages[Sim::idx(counter)].present,
            "round {round}: the shared page was unmapped"
        );
        w.copy(c1, input, len, 1);
        w.store(counter, round);
        w.reference[counter - BASE] = round;
        assert_eq!(w.output(c1, len), msg, "round {round}");
    }
    assert!(w.e.counters.inputs_redirected >= 4);
    assert_eq!(w.e.counters.materialized[Cause::Fault as usize], 0);
    w.check_all();
}

/// Memory the allocator discarded behind zio's back, next to a freed
/// elided copy, is given back to the kernel at its first fault, and an
/// elided copy there afterwards registers it again. The released page must
/// not be left missing.
#[test]
fn discarded_memory_is_released_and_taken_again() {
    let ops = vec![
        Op::Input {
            at: 157564,
            len: 23990,
            seed: 0,
        },
        Op::Copy {
            d: 135168,
            s: 153377,
            len: 16384,
            site: 0,
        },
        Op::Realloc {
            from: 133154,
            to: 0,
            len: 20480,
        },
        Op::Discard {
            at: 147456,
            len: 1,
            keep: false,
        },
        Op::Input {
            at: 147456,
            len: 1,
            seed: 1,
        },
        Op::Input {
            at: 0,
            len: 4096,
            seed: 0,
        },
        Op::Trim {
            at: 40 * PAGE,
            len: 8 * PAGE,
        },
        Op::Write {
            at: 41 * PAGE + 9,
            len: 100,
            seed: 4,
        },
        Op::Copy {
            d: 40 * PAGE,
            s: 157564,
            len: 4 * PAGE,
            site: 1,
        },
        Op::Touch {
            at: 40 * PAGE,
            len: 4 * PAGE,
        },
    ];
    let w = run_world(&ops, small_cfg());
    let c = &w.e.counters;
    // The first zero fault gives back the whole stretch without records
    // around it (the trimmed pages included); the copy into it afterwards
    // is elided again (registered again) and read back through a fault.
    assert_eq!(c.ranges_released, 1, "{c:?}");
    assert_eq!(c.elided_copies, 2, "{c:?}");
    assert!(c.faults_missing >= 1, "{c:?}");
}

/// A message read in parts that end anywhere, as a socket returns them:
/// every part after the first follows it into zio's memory, even one
/// without a whole page of its own. From the third message on there is no
/// system call, no real copy and no backup; every byte goes out right.
/// (Judged alone, such a last part would land in the buffer, each copy
/// would then copy its page for real and the next message unmap it again.)
#[test]
fn chunked_input_split_mid_page_stays_redirected() {
    let mut w = World::new(Cfg {
        max_records: 100,
        ..redirect_cfg()
    });
    let n = 8 * PAGE;
    let (input, c1, c2, c3) = (BASE, BASE + 20 * PAGE, BASE + 40 * PAGE, BASE + 60 * PAGE);
    let mut seed = 12345u64;
    let mut next = |m: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % m
    };
    let calls = |w: &World| {
        let c = &w.e.counters;
        (
            w.e.mem.unmap_calls,
            w.e.mem.zero_calls,
            w.e.mem.protect_calls,
            c.copied_bytes,
            c.bytes_backed_up,
        )
    };
    for round in 0..40u8 {
        let before = calls(&w);
        let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8 ^ round).collect();
        let mut parts = vec![];
        let mut off = 0;
        while off < n {
            // Last parts of a few hundred bytes included (a part of 1 to n).
            let k = (1 + next(n)).min(n - off);
            w.input_asked(input + off, n - off, &data[off..off + k]);
            parts.push(k);
            off += k;
        }
        w.copy(c1, input, n, 1);
        w.copy(c2, c1, n, 1);
        w.copy(c3, c2, n, 1);
        assert_eq!(w.output(c3, n), data, "round {round}");
        if round >= 2 {
            assert_eq!(calls(&w), before, "round {round}, parts {parts:?}");
        }
    }
    assert_eq!(w.e.counters.elided_copies, 3 * 40);
    w.check_all();
}

/// A reused input buffer whose whole pages cannot be left missing (here
/// they reach into memory elision is refused in) is still redirected into
/// zio's memory, and then written into the buffer for real, all of it; the
/// copy of its previous message keeps that message.
#[test]
fn redirected_input_whose_pages_stay_mapped_is_written_for_real() {
    let mut w = World::new(redirect_cfg());
    let (buf, dst, n) = (BASE + (SHARED_FROM - 4) * PAGE, BASE, 8 * PAGE);
    w.input(buf, &vec![1; n]);
    w.copy(dst, buf, n, 1);
    assert_eq!(w.e.counters.elided_bytes, n as u64);
    let copied = w.e.counters.copied_bytes;
    w.input(buf, &vec![2; n]);
    assert_eq!(
        w.e.counters.copied_bytes - copied,
        n as u64,
        "written for real"
    );
    assert_eq!(w.e.counters.inputs_redirected, 0);
    let out = w.output(dst, n);
    w.check_range(dst, &out, "the copy of the first message");
    w.check_all();
}
