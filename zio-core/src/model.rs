//! Model-based tests of the engine: a simulated address space with
//! userfaultfd semantics, driven by random sequences of input, copy, touch,
//! write-to-original, output, free, realloc, discard and fork, and compared
//! byte for byte with a reference memory where every copy is real.
//!
//! The simulation plays both the program and the kernel: a load or store to
//! a missing page calls the engine's missing-fault handler, a store to a
//! write-protected page calls its write-protect handler, exactly as the
//! handler thread does in the real system. Copy plans are executed with those
//! same loads and stores, after the engine call returns (as the hooks do
//! after releasing the lock).

#![cfg(test)]

use std::collections::HashMap;

use proptest::prelude::*;

use crate::engine::{Cause, Cfg, CopyFrom, Engine, FreeAction, Mem};
use crate::ranges::{page_down, PAGE};

/// Pages of the simulated address space.
const PAGES: usize = 96;
const BASE: usize = 0x10_0000;
/// Pages [SHARED_FROM, PAGES) behave like shared memory: elision refused.
const SHARED_FROM: usize = 88;
/// Pages after the program's, where zio's backups live (out of the
/// program's reach: never touched, checked or freed by it).
const BACKUP_PAGES: usize = 64;

#[derive(Clone)]
struct SimPage {
    data: Vec<u8>,
    present: bool,
    wp: bool,
}

/// The simulated memory with userfaultfd semantics.
struct Sim {
    pages: Vec<SimPage>,
    registered: Vec<bool>,
    /// Backup pages in use.
    backup_used: Vec<bool>,
    /// Protection changes asked for (each is an ioctl in the real backend).
    protect_calls: u64,
    /// Unmap and zero-page calls (a system call each in the real backend).
    unmap_calls: u64,
    zero_calls: u64,
}

impl Sim {
    fn new() -> Sim {
        Sim {
            pages: vec![
                SimPage {
                    data: vec![0; PAGE],
                    present: true,
                    wp: false
                };
                PAGES + BACKUP_PAGES
            ],
            registered: vec![false; PAGES],
            backup_used: vec![false; BACKUP_PAGES],
            protect_calls: 0,
            unmap_calls: 0,
            zero_calls: 0,
        }
    }
    fn idx(addr: usize) -> usize {
        (addr - BASE) / PAGE
    }
}

impl Mem for Sim {
    fn read(&self, addr: usize, out: &mut [u8]) {
        for (i, b) in out.iter_mut().enumerate() {
            let a = addr + i;
            let p = &self.pages[Self::idx(a)];
            assert!(
                p.present,
                "engine read a missing page at {a:#x} under the lock"
            );
            *b = p.data[a % PAGE];
        }
    }
    fn make_missing(&mut self, a: usize, len: usize) -> bool {
        if Self::idx(a + len - 1) >= SHARED_FROM {
            return false;
        }
        self.unmap_calls += 1;
        for i in Self::idx(a)..Self::idx(a + len - 1) + 1 {
            self.registered[i] = true;
            let p = &mut self.pages[i];
            p.present = false;
            p.data.iter_mut().for_each(|b| *b = 0xEE); // garbage: must never be seen
        }
        true
    }
    fn release(&mut self, page: usize, a: usize, b: usize) -> bool {
        assert!(a <= page && page < b);
        // The program's pages are its one mapping.
        let (a, b) = (a.max(BASE), b.min(BASE + PAGES * PAGE));
        for i in Self::idx(a)..Self::idx(b) {
            assert!(!self.pages[i].wp, "released a protected page");
            self.registered[i] = false;
        }
        true
    }
    fn still_missing(&mut self, a: usize, len: usize) -> bool {
        (Self::idx(a)..Self::idx(a + len - 1) + 1)
            .all(|i| self.registered[i] && !self.pages[i].present)
    }
    fn fill(&mut self, page: usize, data: &[u8]) -> bool {
        for (i, chunk) in data.chunks(PAGE).enumerate() {
            let a = page + i * PAGE;
            let p = &mut self.pages[Self::idx(a)];
            assert!(!p.present, "fill of a present page {a:#x}");
            p.data.copy_from_slice(chunk);
            p.present = true;
        }
        true
    }
    fn zero_run(&mut self, a: usize, len: usize) {
        self.zero_calls += 1;
        assert!(!self.pages[Self::idx(a)].present);
        for i in Self::idx(a)..(Self::idx(a + len - 1) + 1).min(PAGES) {
            let p = &mut self.pages[i];
            if p.present {
                break;
            }
            p.data.iter_mut().for_each(|b| *b = 0);
            p.present = true;
        }
    }
    fn zero_range(&mut self, a: usize, len: usize) {
        self.zero_calls += 1;
        for i in Self::idx(a)..Self::idx(a + len - 1) + 1 {
            let p = &mut self.pages[i];
            if !p.present {
                p.data.iter_mut().for_each(|b| *b = 0);
                p.present = true;
            }
        }
    }
    fn backup(&mut self, src: usize, len: usize) -> Option<usize> {
        let addr = self.own(len)?;
        let mut bytes = vec![0; len];
        self.read(src, &mut bytes);
        for (i, b) in bytes.into_iter().enumerate() {
            let a = addr + i;
            self.pages[Self::idx(a)].data[a % PAGE] = b;
        }
        Some(addr)
    }
    fn backup_release(&mut self, addr: usize, len: usize) {
        let first = Self::idx(addr) - PAGES;
        let n = len.div_ceil(PAGE);
        assert!(
            self.backup_used[first..first + n].iter().all(|&u| u),
            "release of a free backup"
        );
        self.backup_used[first..first + n]
            .iter_mut()
            .for_each(|u| *u = false);
        for i in first..first + n {
            // Poison: a piece still pointing here would show up as wrong bytes.
            self.pages[PAGES + i]
                .data
                .iter_mut()
                .for_each(|b| *b = 0xBB);
        }
    }
    fn own(&mut self, len: usize) -> Option<usize> {
        let n = len.div_ceil(PAGE);
        let first = (0..=BACKUP_PAGES.checked_sub(n)?)
            .find(|&i| self.backup_used[i..i + n].iter().all(|u| !u))?;
        self.backup_used[first..first + n]
            .iter_mut()
            .for_each(|u| *u = true);
        Some(BASE + (PAGES + first) * PAGE)
    }
    fn write(&mut self, addr: usize, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            let p = &mut self.pages[Self::idx(addr + i)];
            assert!(
                p.present && !p.wp,
                "engine wrote an unavailable page at {:#x}",
                addr + i
            );
            p.data[(addr + i) % PAGE] = b;
        }
    }
    fn protect(&mut self, a: usize, len: usize, on: bool) -> bool {
        self.protect_calls += 1;
        for i in Self::idx(a)..Self::idx(a + len - 1) + 1 {
            self.registered[i] = true;
            self.pages[i].wp = on;
        }
        true
    }
}

/// The program's and kernel's view: accesses that fault call the engine.
struct World {
    e: Engine<Sim>,
    reference: Vec<u8>,
    /// Bytes whose value is defined (not freed since last written).
    valid: Vec<bool>,
    /// Allocations freed by the program and not yet released by zio.
    held: Vec<(usize, usize)>,
}

impl World {
    fn new(cfg: Cfg) -> World {
        World {
            e: Engine::new(Sim::new(), cfg),
            reference: vec![0; PAGES * PAGE],
            valid: vec![true; PAGES * PAGE],
            held: Vec::new(),
        }
    }

    /// A missing page touched: the engine's fault while registered, the
    /// kernel's zero page otherwise (also when the engine, answering the
    /// fault, unregistered the page: the access is retried).
    fn fault_in(&mut self, addr: usize) {
        let i = Sim::idx(addr);
        if !self.e.mem.pages[i].present && self.e.mem.registered[i] {
            self.e.on_missing_fault(addr);
        }
        let p = &mut self.e.mem.pages[i];
        if !p.present {
            assert!(
                !self.e.mem.registered[i],
                "fault at {addr:#x} left unanswered"
            );
            p.data.iter_mut().for_each(|b| *b = 0);
            p.present = true;
        }
    }

    /// Op::Trim: the whole pages of `[a, a+len)` that hold no piece, no
    /// original and no protection become missing, behind the engine's back.
    fn trim(&mut self, a: usize, len: usize) {
        let (p0, p1) = (
            crate::ranges::page_up(a),
            page_down(a + len).min(BASE + PAGES * PAGE),
        );
        let mut p = p0;
        while p < p1 {
            let i = Sim::idx(p);
            let t = self.e.tracker();
            let tracked = t.has_pieces_in(p, p + PAGE) || !t.origs_in(p, p + PAGE).is_empty();
            let held = self.is_held(p, PAGE);
            let pg = &mut self.e.mem.pages[i];
            if !tracked && !pg.wp && !held && i < SHARED_FROM {
                pg.present = false;
                pg.data.iter_mut().for_each(|b| *b = 0xDD);
                self.valid[i * PAGE..(i + 1) * PAGE]
                    .iter_mut()
                    .for_each(|v| *v = false);
            }
            p += PAGE;
        }
    }

    fn load(&mut self, addr: usize) -> u8 {
        let i = Sim::idx(addr);
        self.fault_in(addr);
        self.e.mem.pages[i].data[addr % PAGE]
    }

    fn store(&mut self, addr: usize, v: u8) {
        let i = Sim::idx(addr);
        self.fault_in(addr);
        if self.e.mem.pages[i].wp {
            self.e
                .on_wp_fault(addr)
                .expect("single-threaded model: nothing pinned");
            assert!(!self.e.mem.pages[i].wp);
        }
        self.e.mem.pages[i].data[addr % PAGE] = v;
    }

    fn ref_copy(&mut self, d: usize, s: usize, n: usize) {
        let (d, s) = (d - BASE, s - BASE);
        self.reference.copy_within(s..s + n, d);
        let v: Vec<bool> = self.valid[s..s + n].to_vec();
        self.valid[d..d + n].copy_from_slice(&v);
    }

    fn is_held(&self, a: usize, n: usize) -> bool {
        self.held.iter().any(|&(p, len)| a < p + len && p < a + n)
    }

    fn release_freed(&mut self) {
        for p in self.e.take_to_free() {
            self.held.retain(|&(q, _)| q != p);
        }
    }

    /// read(2) of `data` into `a`.
    fn input(&mut self, a: usize, data: &[u8]) {
        self.input_asked(a, data.len(), data);
    }

    /// read(2) asking for `asked` bytes and getting `data` (a short read
    /// when shorter), landed where the engine says.
    fn input_asked(&mut self, a: usize, asked: usize, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            self.reference[a - BASE + i] = b;
            self.valid[a - BASE + i] = true;
        }
        if let Some(r) = self.e.input_target(a, asked) {
            // The kernel writes zio's memory (never protected or missing).
            for (i, &b) in data.iter().enumerate() {
                let at = r.to + i;
                self.e.mem.pages[Sim::idx(at)].data[at % PAGE] = b;
            }
            self.e
                .input_redirected(a, r, data.len() as isize)
                .expect("single-threaded model: nothing pinned");
            return;
        }
        self.e.input_prepare(a, asked).unwrap();
        for (i, &b) in data.iter().enumerate() {
            self.store(a + i, b);
        }
        self.e.input_done(a, data.len());
    }

    /// memcpy/memmove through the engine, executing its plan afterwards.
    fn copy(&mut self, d: usize, s: usize, n: usize, site: usize) {
        let plan = self.e.copy(d, s, n, site).unwrap();
        match plan {
            None => self.raw_copy(d, s, n, false),
            Some(p) => {
                for &(dst, from, len) in &p.real {
                    match from {
                        CopyFrom::Mem(src) => self.raw_copy(dst, src, len, p.overlapping),
                        CopyFrom::Bounce(off) => {
                            for (i, &b) in p.bounce[off..off + len].iter().enumerate() {
                                self.store(dst + i, b);
                            }
                        }
                    }
                }
                if let Some((a, len)) = p.record {
                    self.e.input_done(a, len);
                }
            }
        }
        self.ref_copy(d, s, n);
    }

    fn raw_copy(&mut self, d: usize, s: usize, n: usize, overlapping: bool) {
        let bytes: Vec<u8> = (0..n).map(|i| self.load(s + i)).collect();
        let _ = overlapping; // the byte buffer above gives memmove semantics
        for (i, b) in bytes.into_iter().enumerate() {
            self.store(d + i, b);
        }
    }

    /// write(2) of `[a, a+n)`: the kernel reads the gather list.
    fn output(&mut self, a: usize, n: usize) -> Vec<u8> {
        let g = self.e.output(a, n);
        let mut out = Vec::with_capacity(n);
        for &(addr, len) in &g.iov {
            for i in 0..len {
                out.push(self.load(addr + i));
            }
        }
        self.e.output_done(&g, n);
        assert_eq!(out.len(), n);
        out
    }

    fn check_range(&mut self, a: usize, bytes: &[u8], what: &str) {
        for (i, &b) in bytes.iter().enumerate() {
            let off = a - BASE + i;
            if self.valid[off] {
                assert_eq!(
                    b,
                    self.reference[off],
                    "{what}: byte at {:#x} differs",
                    a + i
                );
            }
        }
    }

    /// Every observable byte, through the same fault paths.
    fn check_all(&mut self) {
        for off in 0..PAGES * PAGE {
            let a = BASE + off;
            if self.valid[off] && !self.is_held(a, 1) {
                let b = self.load(a);
                assert_eq!(b, self.reference[off], "memory at {a:#x} differs");
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
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
}

/// Offsets cluster around page boundaries so fringes and alignments vary.
fn addr() -> impl Strategy<Value = usize> {
    prop_oneof![
        (0..PAGES - 24, 0usize..3).prop_map(|(p, k)| p * PAGE + [0, 1, PAGE - 7][k]),
        0..(PAGES - 24) * PAGE,
    ]
}

fn len() -> impl Strategy<Value = usize> {
    prop_oneof![
        (1usize..6).prop_map(|p| p * PAGE),
        (1usize..6 * PAGE),
        (1usize..200),
    ]
}

fn op() -> impl Strategy<Value = Op> {
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
    ]
}

/// A server's loop: four reused buffers 8 pages apart, messages of 2 or 4
/// pages (or just under 4) read into them, copied along, touched, written
/// out.
fn chain_op() -> impl Strategy<Value = Op> {
    let buf = || (0usize..4).prop_map(|b| b * 8 * PAGE);
    let msg = || prop::sample::select(vec![4 * PAGE, 4 * PAGE, 2 * PAGE, 4 * PAGE - 100]);
    prop_oneof![
        4 => (buf(), msg(), any::<u8>()).prop_map(|(at, len, seed)| Op::Input { at, len, seed }),
        3 => any::<u8>().prop_map(|seed| Op::InputAgain { seed }),
        8 => (buf(), buf(), msg(), 0usize..2).prop_map(|(d, s, len, site)| Op::Copy { d, s, len, site }),
        1 => (buf(), 0usize..5 * PAGE).prop_map(|(b, off)| Op::Touch { at: b + off, len: 64 }),
        1 => (buf(), 0usize..5 * PAGE, any::<u8>()).prop_map(|(b, off, seed)| Op::Write { at: b + off, len: 8, seed }),
        2 => (buf(), msg()).prop_map(|(at, len)| Op::Output { at, len }),
        1 => Just(Op::Gc),
    ]
}

fn run(ops: &[Op], cfg: Cfg) -> (u64, u64) {
    let c = run_world(ops, cfg).e.counters;
    (c.elided_bytes, c.bytes_substituted)
}

/// Runs `ops` against the engine and the reference, checking every byte
/// on the way and at the end; returns the world for more checks.
fn run_world(ops: &[Op], cfg: Cfg) -> World {
    let mut w = World::new(cfg);
    let mut next_input = 0;
    let mut last_input = (0, 0);
    for op in ops {
        match *op {
            Op::Input { .. }
            | Op::InputAgain { .. }
            | Op::InputNext { .. }
            | Op::InputShort { .. } => {
                let (at, len, more, seed) = match *op {
                    Op::Input { at, len, seed } => (at, len, 0, seed),
                    Op::InputAgain { seed } => (last_input.0, last_input.1, 0, seed),
                    Op::InputNext { len, seed } => (next_input, len, 0, seed),
                    Op::InputShort {
                        at,
                        len,
                        more,
                        seed,
                    } => (at, len, more, seed),
                    _ => unreachable!(),
                };
                let a = BASE + at;
                if len == 0 || at + len + more > PAGES * PAGE || w.is_held(a, len + more) {
                    continue;
                }
                let data: Vec<u8> = (0..len)
                    .map(|i| seed.wrapping_add((i * 31 + i / 4096) as u8))
                    .collect();
                w.input_asked(a, len + more, &data);
                next_input = at + len;
                last_input = (at, len);
            }
            Op::Copy { d, s, len, site } => {
                let (d, s) = (BASE + d, BASE + s);
                if w.is_held(d, len) || w.is_held(s, len) {
                    continue;
                }
                w.copy(d, s, len, site);
            }
            Op::Touch { at, len } => {
                let a = BASE + at;
                if w.is_held(a, len) {
                    continue;
                }
                let bytes: Vec<u8> = (0..len).map(|i| w.load(a + i)).collect();
                w.check_range(a, &bytes, "touch");
            }
            Op::Write { at, len, seed } => {
                let a = BASE + at;
                if w.is_held(a, len) {
                    continue;
                }
                for i in 0..len {
                    let v = seed ^ (i as u8);
                    w.store(a + i, v);
                    w.reference[at + i] = v;
                    w.valid[at + i] = true;
                }
            }
            Op::Output { at, len } => {
                let a = BASE + at;
                if w.is_held(a, len) {
                    continue;
                }
                let out = w.output(a, len);
                w.check_range(a, &out, "output");
            }
            Op::Free { at, len } => {
                let a = BASE + at;
                if w.is_held(a, len) {
                    continue;
                }
                match w.e.free(a, len) {
                    FreeAction::Now => {}
                    FreeAction::Quarantined => w.held.push((a, len)),
                }
                w.valid[at..at + len].iter_mut().for_each(|v| *v = false);
                w.release_freed();
            }
            Op::Realloc { from, to, len } => {
                // realloc = copy into the new block + free of the old one.
                let (f, t) = (BASE + from, BASE + to);
                if w.is_held(f, len) || w.is_held(t, len) || (f < t + len && t < f + len) {
                    continue;
                }
                w.copy(t, f, len, 99);
                if w.e.free(f, len) == FreeAction::Quarantined {
                    w.held.push((f, len));
                }
                w.valid[from..from + len]
                    .iter_mut()
                    .for_each(|v| *v = false);
                w.release_freed();
            }
            Op::Trim { at, len } => w.trim(BASE + at, len),
            Op::Discard { at, len, keep } => {
                let a = BASE + at;
                if w.is_held(a, len) {
                    continue;
                }
                w.e.discard(a, len, keep, false).unwrap();
                if !keep {
                    // MADV_DONTNEED on private anonymous memory: zeros. Whole
                    // pages only, as the kernel does.
                    let (p0, p1) = (crate::ranges::page_up(a), page_down(a + len));
                    let mut p = p0;
                    while p < p1 {
                        let i = Sim::idx(p);
                        let pg = &mut w.e.mem.pages[i];
                        pg.data.iter_mut().for_each(|b| *b = 0);
                        if w.e.mem.registered[i] {
                            pg.present = false; // registered: next touch is a missing fault
                        }
                        w.reference[p - BASE..p - BASE + PAGE]
                            .iter_mut()
                            .for_each(|b| *b = 0);
                        w.valid[p - BASE..p - BASE + PAGE]
                            .iter_mut()
                            .for_each(|v| *v = true);
                        p += PAGE;
                    }
                    // As the madvise hook does after the real call.
                    w.e.fill_discarded(a, len);
                }
            }
            Op::Gc => {
                w.e.collect();
                w.release_freed();
            }
            Op::Fork => {
                w.e.prepare_fork();
                w.release_freed();
                // The child sees memory without any userfaultfd: nothing may
                // be protected, no piece may remain, and a page still missing
                // (freed or discarded) is a fresh zero page there.
                assert_eq!(w.e.tracker().piece_count(), 0);
                for i in 0..PAGES {
                    let p = &w.e.mem.pages[i];
                    assert!(!p.wp, "page {i} still protected at fork");
                    for off in i * PAGE..(i + 1) * PAGE {
                        let child = if p.present { p.data[off % PAGE] } else { 0 };
                        if w.valid[off] && !w.is_held(BASE + off, 1) {
                            assert_eq!(
                                child,
                                w.reference[off],
                                "child sees {:#x} wrong",
                                BASE + off
                            );
                        }
                    }
                }
            }
        }
        w.e.check();
    }
    w.check_all();
    w
}

/// `redirect_cfg` with the default fault ratio: the setting of the tests
/// of what the policy learns.
fn policy_cfg() -> Cfg {
    Cfg {
        fault_ratio: 0.06,
        ..redirect_cfg()
    }
}

/// `small_cfg` with room for redirected input (zio's memory for 64 pages).
fn redirect_cfg() -> Cfg {
    Cfg {
        quarantine: 64 * PAGE,
        ..small_cfg()
    }
}

fn small_cfg() -> Cfg {
    Cfg {
        threshold: PAGE,
        fault_ratio: 1.0,
        max_records: 6,
        quarantine: 8 * PAGE,
        redirect_input: true,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, max_shrink_iters: 20000, ..ProptestConfig::default() })]

    /// Every observable byte equals the plain-copy reference, whatever the
    /// sequence of operations.
    #[test]
    fn engine_matches_plain_copies(ops in prop::collection::vec(op(), 1..40)) {
        run(&ops, small_cfg());
    }

    /// The same for a server's reused buffers, where the steady states of
    /// a reused input buffer and of reused copy destinations are reached.
    #[test]
    fn engine_matches_plain_copies_in_a_buffer_chain(ops in prop::collection::vec(chain_op(), 1..40)) {
        run(&ops, redirect_cfg());
    }

    /// The same with the default-like policy (ratio and bounds in play).
    #[test]
    fn engine_matches_plain_copies_with_policy(ops in prop::collection::vec(op(), 1..40)) {
        run(&ops, Cfg { threshold: 2 * PAGE, fault_ratio: 0.06, max_records: 64, quarantine: 64 * PAGE, redirect_input: true });
    }
}

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
    });
    let _ = HashMap::<u8, u8>::new();
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
    // Once nothing depends on it, the input is unprotected again.
    w.copy(BASE + 20 * PAGE, BASE + 40 * PAGE, 8 * PAGE, 1);
    assert!(w.e.mem.pages[0..8].iter().all(|p| !p.wp));
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
/// elided copy there afterwards registers it again. (Found by the
/// differential test: a release that left the faulting page missing.)
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
/// (Judged alone, such a last part landed in the buffer, and each copy
/// then copied its page for real and the next message unmapped it again.)
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
