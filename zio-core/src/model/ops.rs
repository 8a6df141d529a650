//! The operations of a simulated program, the random sequences of them
//! the property tests draw, and the run of a sequence against the engine
//! and the reference.

use proptest::prelude::*;

use super::sim::{Sim, BASE, PAGES, SHARED_FROM};
use super::world::World;
use crate::engine::{Cfg, FreeAction};
use crate::ranges::{page_down, page_up, PAGE};

/// One operation of the simulated program (offsets from `BASE`).
#[derive(Clone, Debug)]
pub(super) enum Op {
    Input {
        at: usize,
        len: usize,
        seed: u8,
    },
    /// The previous input's buffer and length read again, whole (a server's
    /// reused input buffer: its steady state).
    InputAgain {
        seed: u8,
    },
    /// An input right after the previous one (a message read in chunks).
    InputNext {
        len: usize,
        seed: u8,
    },
    /// A short read: `len` bytes arrive of the `len + more` asked for.
    InputShort {
        at: usize,
        len: usize,
        more: usize,
        seed: u8,
    },
    Copy {
        d: usize,
        s: usize,
        len: usize,
        site: usize,
    },
    Touch {
        at: usize,
        len: usize,
    },
    Write {
        at: usize,
        len: usize,
        seed: u8,
    },
    Output {
        at: usize,
        len: usize,
    },
    Free {
        at: usize,
        len: usize,
    },
    Realloc {
        from: usize,
        to: usize,
        len: usize,
    },
    Discard {
        at: usize,
        len: usize,
        keep: bool,
    },
    /// The allocator discards memory behind zio's back (glibc trimming an
    /// arena with an internal `MADV_DONTNEED`): whole pages that hold
    /// nothing zio tracks become missing, their bytes undefined.
    Trim {
        at: usize,
        len: usize,
    },
    Gc,
    Fork,
    /// An IO stack receives `len` bytes at `at` by its own stores and
    /// lends them to zio (the bridge contract).
    Lend {
        at: usize,
        len: usize,
        seed: u8,
    },
    /// The stack takes `[at, at+len)` back.
    Release {
        at: usize,
        len: usize,
    },
    /// From now on inputs are left unrecorded as the hooks leave them while
    /// the policy sees no copy elided (or, false, recorded again).
    Dormant(bool),
}

/// Offsets cluster around page boundaries so fringes and alignments vary,
/// and around the start of the memory where elision is refused
/// (`SHARED_FROM`), so that ranges cross into it.
pub(super) fn addr() -> impl Strategy<Value = usize> {
    let page = |p: std::ops::Range<usize>| {
        (p, 0usize..3).prop_map(|(p, k)| p * PAGE + [0, 1, PAGE - 7][k])
    };
    prop_oneof![
        page(0..PAGES - 24),
        0..(PAGES - 24) * PAGE,
        page(SHARED_FROM - 6..SHARED_FROM + 2),
    ]
}

pub(super) fn len() -> impl Strategy<Value = usize> {
    prop_oneof![
        (1usize..6).prop_map(|p| p * PAGE),
        (1usize..6 * PAGE),
        (1usize..200),
    ]
}

pub(super) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (addr(), len(), any::<u8>()).prop_map(|(at, len, seed)| Op::Input { at, len, seed }),
        2 => (len(), any::<u8>()).prop_map(|(len, seed)| Op::InputNext { len, seed }),
        2 => any::<u8>().prop_map(|seed| Op::InputAgain { seed }),
        2 => (addr(), len(), len(), any::<u8>()).prop_map(|(at, len, more, seed)| Op::InputShort { at, len, more, seed }),
        6 => (addr(), addr(), len(), 0usize..3).prop_map(|(d, s, len, site)| Op::Copy { d, s, len, site }),
        2 => (addr(), len()).prop_map(|(at, len)| Op::Touch { at, len: len.min(300) }),
        2 => (addr(), 1usize..40, any::<u8>()).prop_map(|(at, len, seed)| Op::Write { at, len, seed }),
        3 => (addr(), len()).prop_map(|(at, len)| Op::Output { at, len }),
        1 => (addr(), len()).prop_map(|(at, len)| Op::Free { at, len }),
        1 => (addr(), addr(), len()).prop_map(|(from, to, len)| Op::Realloc { from, to, len }),
        1 => (addr(), len(), any::<bool>()).prop_map(|(at, len, keep)| Op::Discard { at, len, keep }),
        1 => (addr(), len()).prop_map(|(at, len)| Op::Trim { at, len }),
        1 => Just(Op::Gc),
        1 => Just(Op::Fork),
        2 => (addr(), len(), any::<u8>()).prop_map(|(at, len, seed)| Op::Lend { at, len, seed }),
        1 => (addr(), len()).prop_map(|(at, len)| Op::Release { at, len }),
        1 => any::<bool>().prop_map(Op::Dormant),
    ]
}

/// A server's loop: four reused buffers 8 pages apart, messages of 2 or 4
/// pages (or just under 4) read into them, copied along, touched, written
/// out.
pub(super) fn chain_op() -> impl Strategy<Value = Op> {
    chain_touching(0)
}

/// [`chain_op`] where the program also reads whole messages back, `reads`
/// times in 20 operations: what the policy must learn to stop eliding.
pub(super) fn chain_touching(reads: u32) -> impl Strategy<Value = Op> {
    let buf = || (0usize..4).prop_map(|b| b * 8 * PAGE);
    let msg = || prop::sample::select(vec![4 * PAGE, 4 * PAGE, 2 * PAGE, 4 * PAGE - 100]);
    prop_oneof![
        4 => (buf(), msg(), any::<u8>()).prop_map(|(at, len, seed)| Op::Input { at, len, seed }),
        3 => any::<u8>().prop_map(|seed| Op::InputAgain { seed }),
        8 => (buf(), buf(), msg(), 0usize..2).prop_map(|(d, s, len, site)| Op::Copy { d, s, len, site }),
        1 => (buf(), 0usize..5 * PAGE).prop_map(|(b, off)| Op::Touch { at: b + off, len: 64 }),
        reads => (buf(), msg()).prop_map(|(at, len)| Op::Touch { at, len }),
        1 => (buf(), 0usize..5 * PAGE, any::<u8>()).prop_map(|(b, off, seed)| Op::Write { at: b + off, len: 8, seed }),
        2 => (buf(), msg()).prop_map(|(at, len)| Op::Output { at, len }),
        1 => Just(Op::Gc),
    ]
}

/// Where the `InputAgain` and `InputNext` operations land: the last input
/// and right after it.
#[derive(Clone, Copy, Debug, Default)]
struct Cursor {
    next: usize,
    last: (usize, usize),
}

/// [`run_world`], then the bytes elided and substituted.
pub(super) fn run(ops: &[Op], cfg: Cfg) -> (u64, u64) {
    let c = run_world(ops, cfg).e.counters;
    (c.elided_bytes, c.bytes_substituted)
}

/// Runs `ops` against the engine and the reference, checking every byte
/// on the way and at the end; returns the world for more checks.
pub(super) fn run_world(ops: &[Op], cfg: Cfg) -> World {
    let mut w = World::new(cfg);
    let mut cursor = Cursor::default();
    for op in ops {
        w.apply(op, &mut cursor);
        w.e.check();
    }
    w.check_all();
    w
}

impl World {
    /// One operation of the program (skipped where it would touch memory
    /// the program freed and zio still holds).
    fn apply(&mut self, op: &Op, cursor: &mut Cursor) {
        match *op {
            Op::Input { at, len, seed } => self.apply_input(at, len, 0, seed, cursor),
            Op::InputAgain { seed } => {
                let (at, len) = cursor.last;
                self.apply_input(at, len, 0, seed, cursor)
            }
            Op::InputNext { len, seed } => self.apply_input(cursor.next, len, 0, seed, cursor),
            Op::InputShort {
                at,
                len,
                more,
                seed,
            } => self.apply_input(at, len, more, seed, cursor),
            Op::Copy { d, s, len, site } => {
                let (d, s) = (BASE + d, BASE + s);
                if !self.is_held(d, len) && !self.is_held(s, len) {
                    self.release_lent_over(d, d + len);
                    self.copy(d, s, len, site);
                }
            }
            Op::Touch { at, len } => {
                let a = BASE + at;
                if !self.is_held(a, len) {
                    let bytes: Vec<u8> = (0..len).map(|i| self.load(a + i)).collect();
                    self.check_range(a, &bytes, "touch");
                }
            }
            Op::Write { at, len, seed } => {
                if !self.is_held(BASE + at, len) {
                    self.release_lent_over(BASE + at, BASE + at + len);
                    for i in 0..len {
                        self.write(BASE + at + i, seed ^ (i as u8));
                    }
                }
            }
            Op::Output { at, len } => {
                let a = BASE + at;
                if !self.is_held(a, len) {
                    let out = self.output(a, len);
                    self.check_range(a, &out, "output");
                }
            }
            Op::Free { at, len } => {
                if !self.is_held(BASE + at, len) {
                    self.release_lent_over(BASE + at, BASE + at + len);
                    self.free(at, len);
                }
            }
            Op::Realloc { from, to, len } => {
                let (f, t) = (BASE + from, BASE + to);
                if !self.is_held(f, len) && !self.is_held(t, len) && (f >= t + len || t >= f + len)
                {
                    self.release_lent_over(f, f + len);
                    self.release_lent_over(t, t + len);
                    self.realloc(from, to, len);
                }
            }
            Op::Trim { at, len } => self.trim(BASE + at, len),
            Op::Discard { at, len, keep } => {
                if !self.is_held(BASE + at, len) {
                    self.release_lent_over(BASE + at, BASE + at + len);
                    self.discard(BASE + at, len, keep);
                }
            }
            Op::Gc => {
                self.e.collect();
                self.release_freed();
            }
            Op::Fork => self.fork(),
            Op::Lend { at, len, seed } => {
                let a = BASE + at;
                if at + len <= PAGES * PAGE && !self.is_held(a, len) {
                    self.release_lent_over(a, a + len);
                    for i in 0..len {
                        self.write(a + i, seed.wrapping_add((i * 7) as u8));
                    }
                    self.e
                        .lend(a, len)
                        .expect("single-threaded model: nothing pinned");
                    self.lent.push((a, a + len));
                }
            }
            Op::Release { at, len } => self.release_lent_over(BASE + at, BASE + at + len),
            Op::Dormant(on) => self.dormant = on,
        }
    }

    /// An input of `len` bytes at offset `at`, asking for `more` bytes
    /// beyond them.
    fn apply_input(&mut self, at: usize, len: usize, more: usize, seed: u8, cursor: &mut Cursor) {
        let a = BASE + at;
        if len == 0 || at + len + more > PAGES * PAGE || self.is_held(a, len + more) {
            return;
        }
        self.release_lent_over(a, a + len + more);
        let data: Vec<u8> = (0..len)
            .map(|i| seed.wrapping_add((i * 31 + i / 4096) as u8))
            .collect();
        self.input_asked(a, len + more, &data);
        cursor.next = at + len;
        cursor.last = (at, len);
    }

    /// realloc of the block at `from` to `to`, as libzio makes it: a block
    /// of IO data only is released and moved by the allocator (`mremap`:
    /// the pages move, no hook sees it) into memory nothing tracks, and its
    /// IO data recorded again there; otherwise an elided copy into the new
    /// block plus a free of the old one.
    fn realloc(&mut self, from: usize, to: usize, len: usize) {
        let (f, t) = (BASE + from, BASE + to);
        let tr = self.e.tracker();
        let fresh = !tr.has_pieces_in(t, t + len) && !tr.has_origs_in(t, t + len);
        let moved = if fresh {
            self.e.release_for_realloc(f, len).unwrap()
        } else {
            None
        };
        let Some(ranges) = moved else {
            self.copy(t, f, len, 99);
            self.free(from, len);
            return;
        };
        self.raw_copy(t, f, len, false);
        self.ref_copy(t, f, len);
        self.moved_away(f, len);
        for (s, e) in ranges {
            self.e.input_done(t + s, e - s);
        }
    }

    /// `mremap` moved the block `[a, a+len)` away behind zio's back: its
    /// bytes are undefined now, and its whole pages unmapped (garbage if
    /// read through a record zio failed to release; fresh memory later).
    fn moved_away(&mut self, a: usize, len: usize) {
        self.valid[a - BASE..a - BASE + len]
            .iter_mut()
            .for_each(|v| *v = false);
        for p in (page_up(a)..page_down(a + len)).step_by(PAGE) {
            let i = Sim::idx(p);
            let pg = &mut self.e.mem.pages[i];
            pg.present = true;
            pg.wp = false;
            pg.data.iter_mut().for_each(|b| *b = 0xDD);
            self.e.mem.registered[i] = false;
        }
    }

    /// free(3) of `len` bytes at offset `at`: quarantined or not, its bytes
    /// are undefined from now on.
    fn free(&mut self, at: usize, len: usize) {
        let a = BASE + at;
        let clear = self.clear_before((a, a + len), (page_down(a), page_up(a + len)));
        let action = self.e.free(a, len);
        assert!(
            clear.is_none() || action == FreeAction::Now,
            "a clear free kept"
        );
        self.assert_untouched(clear, "a free");
        if action == FreeAction::Quarantined {
            self.held.push((a, len));
        }
        self.valid[at..at + len].iter_mut().for_each(|v| *v = false);
        self.release_freed();
    }

    /// The program discards `[a, a+len)` without unmapping it: with `keep`,
    /// as `mremap` (the bytes survive), else as `MADV_DONTNEED`.
    fn discard(&mut self, a: usize, len: usize, keep: bool) {
        self.e.discard(a, len, keep, false).unwrap();
        if keep {
            return;
        }
        // MADV_DONTNEED on private anonymous memory: zeros. Whole pages
        // only, as the kernel does.
        let (p0, p1) = (page_up(a), page_down(a + len));
        for p in (p0..p1).step_by(PAGE) {
            let i = Sim::idx(p);
            let pg = &mut self.e.mem.pages[i];
            pg.data.iter_mut().for_each(|b| *b = 0);
            if self.e.mem.registered[i] {
                pg.present = false; // registered: next touch is a missing fault
            }
            let off = p - BASE;
            self.reference[off..off + PAGE]
                .iter_mut()
                .for_each(|b| *b = 0);
            self.valid[off..off + PAGE]
                .iter_mut()
                .for_each(|v| *v = true);
        }
        // As the madvise hook does after the real call.
        self.e.fill_discarded(a, len);
    }

    /// fork(2): the child sees memory without any userfaultfd, so nothing
    /// may be protected, no piece may remain, and a page still missing
    /// (freed or discarded) is a fresh zero page there.
    fn fork(&mut self) {
        self.e.prepare_fork();
        self.release_freed();
        assert_eq!(self.e.tracker().piece_count(), 0);
        for i in 0..PAGES {
            let p = &self.e.mem.pages[i];
            assert!(!p.wp, "page {i} still protected at fork");
            for off in i * PAGE..(i + 1) * PAGE {
                let child = if p.present { p.data[off % PAGE] } else { 0 };
                if self.valid[off] && !self.is_held(BASE + off, 1) {
                    assert_eq!(
                        child,
                        self.reference[off],
                        "child sees {:#x} wrong",
                        BASE + off
                    );
                }
            }
        }
    }
}

/// `redirect_cfg` with the default fault ratio: the setting of the tests
/// of what the policy learns.
pub(super) fn policy_cfg() -> Cfg {
    Cfg {
        fault_ratio: 0.06,
        ..redirect_cfg()
    }
}

/// `small_cfg` with room for redirected input (zio's memory for 64 pages).
pub(super) fn redirect_cfg() -> Cfg {
    Cfg {
        quarantine: 64 * PAGE,
        ..small_cfg()
    }
}

/// A small threshold (one page) and small bounds, so that short
/// sequences reach collection, quarantine and the backup budget.
pub(super) fn small_cfg() -> Cfg {
    Cfg {
        threshold: PAGE,
        fault_ratio: 1.0,
        max_records: 6,
        quarantine: 8 * PAGE,
        redirect_input: true,
        pages_per_trip: 2,
    }
}
