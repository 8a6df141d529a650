//! The pattern of real servers: an input buffer allocated once per
//! connection, copies along a chain of fresh allocations, each freed once
//! the next copy is made, the last written out and freed.

use super::ops::redirect_cfg;
use super::sim::{BASE, SHARED_FROM};
use super::world::World;
use crate::engine::{Cfg, FreeAction};
use crate::ranges::PAGE;

/// The program frees `[p, p+n)`.
fn free(w: &mut World, p: usize, n: usize) {
    let at = p - BASE;
    if w.e.free(p, n) == FreeAction::Quarantined {
        w.held.push((p, n));
    }
    w.valid[at..at + n].iter_mut().for_each(|v| *v = false);
    w.release_freed();
}

/// One message of `n` bytes through `copies` copies alternating between
/// the chunks at `chunks`, checked at the output.
fn message(w: &mut World, input: usize, chunks: [usize; 2], n: usize, copies: usize, seed: u8) {
    let data: Vec<u8> = (0..n).map(|i| seed ^ (i % 251) as u8).collect();
    w.input(input, &data);
    chain(w, input, &data, chunks, copies);
}

/// The copies of a message already in `input`, which holds `data`:
/// `copies` copies alternating between `chunks`, checked at the output.
fn chain(w: &mut World, input: usize, data: &[u8], chunks: [usize; 2], copies: usize) {
    let n = data.len();
    let seed = data[0];
    let mut src = input;
    let mut held: Option<usize> = None;
    for c in 0..copies {
        let dst = chunks[c % 2];
        w.copy(dst, src, n, 1 + c);
        if let Some(p) = held.replace(dst) {
            free(w, p, n);
        }
        src = dst;
    }
    assert!(w.output(src, n) == data, "message {seed}");
    if let Some(p) = held {
        free(w, p, n);
    }
    w.e.check();
}

/// A world with room for a chain's records, its message size, and an
/// input buffer 16 bytes into a page.
fn chain_world() -> (World, usize, usize) {
    let cfg = Cfg {
        max_records: 1000,
        ..redirect_cfg()
    };
    (World::new(cfg), 8 * PAGE, BASE + 16)
}

/// The input buffer's copies are all gone by the next input, yet it is
/// one the program copies out of: its next inputs land in zio's memory,
/// as a static buffer's do, and the buffer is neither unprotected before
/// each input nor protected again at its first copy. Unaligned chunks, as
/// malloc hands out.
#[test]
fn a_copied_from_input_buffer_is_redirected_once_its_copies_are_freed() {
    let (mut w, n, input) = chain_world();
    let chunks = [BASE + 20 * PAGE + 0x10, BASE + 40 * PAGE + 0x10];
    message(&mut w, input, chunks, n, 5, 0);
    message(&mut w, input, chunks, n, 5, 1);
    let before = (w.e.mem.protect_calls, w.e.mem.unmap_calls);
    let redirected = w.e.counters.inputs_redirected;
    for seed in 2..8 {
        message(&mut w, input, chunks, n, 5, seed);
    }
    assert_eq!(
        (w.e.mem.protect_calls, w.e.mem.unmap_calls),
        before,
        "protection or unmapping in the steady state: {:?}",
        w.e.counters
    );
    assert_eq!(w.e.counters.inputs_redirected - redirected, 6);
    assert_eq!(w.e.counters.elided_copies, 8 * 5);
}

/// A server that `malloc`s its input buffer for every message and frees
/// it with the copies after the reply: the allocator hands the same chunk
/// back, and from the second message on its input lands in zio's memory.
/// The steady state neither protects the buffer at its first copy and
/// unprotects it at its free, nor unmaps anything, also when the message
/// arrives in two parts split inside a page (the page the free left
/// missing stays so and joins the first part's piece); and a message in
/// parts asks whether the buffer is still registered as often as a
/// message in one.
#[test]
fn an_input_buffer_freed_and_handed_back_is_redirected() {
    let mut checks = Vec::new();
    for split in [None, Some(3 * PAGE + 100)] {
        let (mut w, n, input) = chain_world();
        let chunks = [BASE + 20 * PAGE + 0x10, BASE + 40 * PAGE + 0x10];
        let per_message = |w: &mut World, seed: u8| {
            let data: Vec<u8> = (0..n).map(|i| seed ^ (i % 251) as u8).collect();
            let k = split.unwrap_or(n);
            w.input_asked(input, n, &data[..k]);
            if k < n {
                w.input_asked(input + k, n - k, &data[k..]);
            }
            chain(w, input, &data, chunks, 5);
            free(w, input, n);
        };
        per_message(&mut w, 0);
        per_message(&mut w, 1);
        let before = (w.e.mem.protect_calls, w.e.mem.unmap_calls);
        let redirected = w.e.counters.inputs_redirected;
        let asked = w.e.mem.check_calls;
        for seed in 2..8 {
            per_message(&mut w, seed);
        }
        checks.push(w.e.mem.check_calls - asked);
        assert_eq!(
            (w.e.mem.protect_calls, w.e.mem.unmap_calls),
            before,
            "split {split:?}: protection or unmapping in the steady state: {:?}",
            w.e.counters
        );
        let parts = if split.is_some() { 2 } else { 1 };
        assert_eq!(w.e.counters.inputs_redirected - redirected, 6 * parts);
        assert_eq!(w.e.counters.elided_copies, 8 * 5);
        w.check_all();
    }
    // The input once and each of the five copies' destinations.
    assert_eq!(checks, [6 * 6, 6 * 6], "registration checks in 6 messages");
}

/// A program that reads its input buffer in place before copying it: the
/// first redirected inputs make it fault there, and the policy soon lands
/// its input in the buffer again (no faults from then on).
#[test]
fn a_buffer_read_in_place_stops_being_redirected() {
    let cfg = Cfg {
        max_records: 1000,
        ..super::ops::policy_cfg()
    };
    let mut w = World::new(cfg);
    let n = 8 * PAGE;
    let (input, chunks) = (
        BASE + 16,
        [BASE + 20 * PAGE + 0x10, BASE + 40 * PAGE + 0x10],
    );
    let mut faults = Vec::new();
    for seed in 0..40u8 {
        let before = w.e.counters.faults_missing;
        let data: Vec<u8> = (0..n).map(|i| seed ^ (i % 251) as u8).collect();
        w.input(input, &data);
        for i in (0..n).step_by(PAGE / 2) {
            assert_eq!(w.load(input + i), data[i]);
        }
        let mut src = input;
        let mut held: Option<usize> = None;
        for c in 0..3 {
            let dst = chunks[c % 2];
            w.copy(dst, src, n, 1 + c);
            if let Some(p) = held.replace(dst) {
                free(&mut w, p, n);
            }
            src = dst;
        }
        assert!(w.output(src, n) == data);
        if let Some(p) = held {
            free(&mut w, p, n);
        }
        w.e.check();
        faults.push(w.e.counters.faults_missing - before);
    }
    let late: u64 = faults[20..].iter().sum();
    assert!(
        w.e.counters.inputs_redirected > 0,
        "never redirected: {faults:?}"
    );
    assert_eq!(late, 0, "still faulting on its own input: {faults:?}");
}

/// Chunks aligned differently (16 bytes apart, as malloc hands them out):
/// a copy's partial end pages are copied for real, and the next copy of
/// them would have to copy the whole pages around them for real too,
/// losing a page at each end per link. Their bytes are proved to be the
/// original's, so every link elides all of its whole pages.
#[test]
fn chain_links_elide_every_whole_page_across_alignments() {
    let (mut w, n, input) = chain_world();
    let chunks = [BASE + 20 * PAGE + 0x10, BASE + 40 * PAGE + 0x20];
    message(&mut w, input, chunks, n, 5, 0);
    let copied = w.e.counters.copied_bytes;
    for seed in 1..6 {
        message(&mut w, input, chunks, n, 5, seed);
    }
    // Per copy: the two partial pages only (at most two pages of bytes).
    let per_copy = (w.e.counters.copied_bytes - copied) / 25;
    assert!(
        per_copy <= 2 * PAGE as u64,
        "{per_copy} bytes copied per copy"
    );
    // Every link but the one whose ends need none (24 of the 25 here).
    assert!(w.e.paths.fringe_hits >= 24, "{:?}", w.e.paths.fringe_hits);
}

/// A remembered input buffer whose memory can no longer be left missing
/// (here it reaches into memory elision is refused in, as memory mapped
/// anew at a freed buffer's address may be): its next input is not
/// redirected but lands in the buffer, as it would without zio, and no
/// byte of it is written there by zio.
#[test]
fn a_handed_back_buffer_that_cannot_be_missing_is_left_alone() {
    let (mut w, n, _) = chain_world();
    let input = BASE + (SHARED_FROM - 4) * PAGE + 16;
    let dst = BASE + 20 * PAGE + 0x10;
    let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
    w.input(input, &data);
    w.copy(dst, input, n, 1);
    assert!(w.e.counters.elided_copies == 1, "{:?}", w.e.counters);
    assert!(w.output(dst, n) == data);
    free(&mut w, dst, n);
    free(&mut w, input, n);
    let (copied, redirected) = (w.e.counters.copied_bytes, w.e.counters.inputs_redirected);
    let next: Vec<u8> = data.iter().map(|b| b ^ 0x5A).collect();
    w.input(input, &next);
    assert_eq!(
        (w.e.counters.copied_bytes, w.e.counters.inputs_redirected),
        (copied, redirected),
        "the input went through zio's memory"
    );
    w.check_all();
}

/// Two connections' input buffers, each `malloc`'d per message, freed
/// after it and handed back, their messages arriving in five parts with
/// fewer whole pages each than the threshold: each buffer is remembered
/// whole, as its message's first call asked to fill it, not as its last
/// part, so both keep being redirected and every copy elided.
#[test]
fn buffers_read_in_parts_are_remembered_whole() {
    let mut w = World::new(Cfg {
        threshold: 4 * PAGE,
        max_records: 1000,
        ..redirect_cfg()
    });
    let n = 12 * PAGE;
    let inputs = [BASE + 16, BASE + 20 * PAGE + 16];
    let chunks = [BASE + 40 * PAGE + 0x10, BASE + 60 * PAGE + 0x10];
    let per_message = |w: &mut World, input: usize, seed: u8, parts: usize| {
        let data: Vec<u8> = (0..n).map(|i| seed ^ (i % 251) as u8).collect();
        let part = n / parts + 1;
        let mut off = 0;
        while off < n {
            let k = part.min(n - off);
            w.input_asked(input + off, n - off, &data[off..off + k]);
            off += k;
        }
        chain(w, input, &data, chunks, 2);
        free(w, input, n);
    };
    // Whole messages first: each buffer is an original copies are made
    // from when it is freed.
    for seed in 0..2 {
        per_message(&mut w, inputs[usize::from(seed % 2)], seed, 1);
    }
    let (redirected, elided) = (w.e.counters.inputs_redirected, w.e.counters.elided_copies);
    for seed in 2..12 {
        per_message(&mut w, inputs[usize::from(seed % 2)], seed, 5);
    }
    assert_eq!(w.e.counters.inputs_redirected - redirected, 10 * 5);
    assert_eq!(w.e.counters.elided_copies - elided, 10 * 2);
    w.check_all();
}

/// Chunks handed out a page further on every other message, as an
/// allocator's are: pages a free left missing become the partial end
/// pages of the next copy there. The caller fills each whole in one step
/// with the copy's bytes and zeros around them, instead of a zero page
/// the real copy then writes into; the only zero pages left per message
/// are the input's two partial pages, written for real.
#[test]
fn unfilled_pages_a_copy_writes_are_filled_whole() {
    let (mut w, n, input) = chain_world();
    let chunks = |seed: u8| {
        let shift = usize::from(seed % 2) * PAGE;
        [
            BASE + 20 * PAGE + shift + 0x10,
            BASE + 40 * PAGE + shift + 0x10,
        ]
    };
    for seed in 0..2 {
        message(&mut w, input, chunks(seed), n, 5, seed);
    }
    let (zeros, fills) = (w.e.mem.zero_calls, w.fills);
    for seed in 2..8 {
        message(&mut w, input, chunks(seed), n, 5, seed);
    }
    assert!(
        w.e.mem.zero_calls - zeros <= 12,
        "{} zero-page calls in 6 messages",
        w.e.mem.zero_calls - zeros
    );
    assert!(w.fills - fills >= 6, "{} pages filled", w.fills - fills);
    assert_eq!(w.e.counters.elided_copies, 8 * 5);
    w.check_all();
}

/// The input's partial end pages in a handed-back chunk are present (the
/// allocator writes its headers there): landing the input's bytes in them
/// asks for zero pages only where they might be missing, and fresh pages
/// only where a free left them unfilled, none of them present.
#[test]
fn an_inputs_present_end_pages_get_no_fresh_pages() {
    let (mut w, n, input) = chain_world();
    let chunks = [BASE + 20 * PAGE + 0x10, BASE + 40 * PAGE + 0x10];
    for seed in 0..6 {
        message(&mut w, input, chunks, n, 5, seed);
    }
    assert!(w.e.counters.inputs_redirected >= 5, "{:?}", w.e.counters);
    assert_eq!(w.e.mem.fresh_on_present, 0, "{:?}", w.e.counters);
    w.check_all();
}

/// A hint is taken only while its bytes are the original's: the end page
/// a redirected input wrote for real is elided from the original when
/// the program left it alone, and copied as it is when the program wrote
/// there since.
#[test]
fn a_changed_fringe_is_copied_as_it_is() {
    for change in [false, true] {
        let mut w = World::new(redirect_cfg());
        let n = 8 * PAGE;
        let (input, a, b) = (BASE + 16, BASE + 20 * PAGE + 0x10, BASE + 40 * PAGE + 0x30);
        // A first message makes the buffer one copies are made from, so
        // the second lands in zio's memory and its end pages are written
        // back for real.
        message(&mut w, input, [a, a], n, 1, 0);
        let data: Vec<u8> = (0..n).map(|i| (i % 249) as u8).collect();
        w.input(input, &data);
        assert!(w.e.counters.inputs_redirected >= 1);
        let mut expect = data.clone();
        if change {
            // The program writes the end of the first partial page.
            let edge = crate::ranges::page_up(input) - 8;
            for i in 0..8 {
                w.store(edge + i, 0xAB);
                w.reference[edge - BASE + i] = 0xAB;
            }
            expect[edge - input..edge - input + 8].fill(0xAB);
        }
        let hits = w.e.paths.fringe_hits;
        w.copy(b, input, n, 2);
        let out = w.output(b, n);
        assert!(out == expect, "change {change}: the bytes went out wrong");
        let took = w.e.paths.fringe_hits > hits;
        assert_eq!(took, !change, "change {change}: hint taken {took}");
        w.check_all();
    }
}

/// A copy too small to elide (its destination chunk has too few whole
/// pages) of one original into untracked memory is left to the program:
/// no memory call, nothing recorded but a fringe hint, the bytes right;
/// and it changes nothing for a later elided copy of the same original.
#[test]
fn copy_too_small_to_elide_is_left_to_the_program() {
    let mut w = World::new(Cfg {
        threshold: 16 * PAGE,
        ..redirect_cfg()
    });
    let (input, chunk, dst, n) = (BASE, BASE + 20 * PAGE + 16, BASE + 40 * PAGE, 16 * PAGE);
    let data: Vec<u8> = (0..n).map(|i| (i % 253) as u8).collect();
    w.input(input, &data);
    let calls = |w: &World| {
        (
            w.e.mem.unmap_calls,
            w.e.mem.protect_calls,
            w.e.mem.zero_calls,
        )
    };
    let before = calls(&w);
    // 15 whole pages: under the threshold of 16.
    w.copy(chunk, input, n, 1);
    assert_eq!(w.e.paths.plain_copies, 1);
    assert_eq!(calls(&w), before, "no memory call");
    assert_eq!(w.e.counters.elided_bytes, 0);
    assert_eq!(w.e.tracker().piece_count(), 0);
    assert!(w.output(chunk, n) == data);
    w.copy(dst, input, n, 2);
    assert_eq!(w.e.counters.elided_bytes, n as u64);
    assert!(w.output(dst, n) == data);
    w.check_all();
}

/// Two connections' chains through a thread heap's chunks, laid out as
/// glibc lays them out: one input 16 bytes into a page, the other 0xb70
/// into one, and two links whose second starts in the page the first
/// ends in. The fringes a link copies for real lie on pages registered
/// by earlier copies; their hints are proved there all the same, so
/// every link elides all of its whole pages (no real copy grows along
/// the chain, no page is filled), with one registration check per copy.
/// The inputs' partial end pages, written for real from zio's memory,
/// are written plain: no zero-page call makes sure of them first.
#[test]
fn fringes_on_registered_pages_are_proved() {
    let (mut w, n, _) = chain_world();
    let inputs = [BASE + 60 * PAGE + 0x10, BASE + 10 * PAGE + 0xb70];
    let x = inputs[1] + n + 0x1020;
    let chunks = [x, x + n + 0x10];
    let copies = 12;
    let messages = |w: &mut World, seeds: core::ops::Range<u8>| {
        for seed in seeds {
            let input = inputs[usize::from(seed % 2)];
            message(w, input, chunks, n, copies, seed);
        }
    };
    messages(&mut w, 0..4);
    let before = (
        w.e.counters.copied_bytes,
        w.fills,
        w.e.mem.check_calls,
        w.e.paths.fringe_hits,
        w.e.mem.plain_reads,
        w.e.mem.zero_calls,
        w.e.mem.plain_writes,
    );
    messages(&mut w, 4..12);
    let links = 8 * copies as u64;
    // A message copies for real its input's two partial pages (written
    // back from zio's memory) and each link's two: a page's worth each.
    let per_message = (w.e.counters.copied_bytes - before.0) / 8;
    assert!(
        per_message <= ((copies + 1) * PAGE) as u64,
        "{per_message} bytes copied per message"
    );
    assert_eq!(w.fills - before.1, 0, "pages filled");
    assert_eq!(w.e.mem.check_calls - before.2, links, "registration checks");
    assert_eq!(w.e.paths.fringe_hits - before.3, links, "fringe hits");
    assert!(w.e.mem.plain_reads - before.4 >= links, "plain reads");
    assert_eq!(w.e.mem.zero_calls - before.5, 0, "zero-page calls");
    assert!(w.e.mem.plain_writes - before.6 >= 8, "plain writes");
    assert_eq!(w.e.counters.elided_copies, 12 * copies as u64);
    w.check_all();
}
