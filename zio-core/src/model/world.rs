//! The program's and the kernel's view of the simulated memory: loads and
//! stores that fault call the engine as the handler thread would, and a
//! reference memory where every copy is real.

use super::sim::{Sim, BASE, PAGES, SHARED_FROM};
use crate::engine::{Cfg, CopyFrom, Engine, Mem};
use crate::ranges::{page_down, page_up, PAGE};

/// The program's and kernel's view: accesses that fault call the engine.
pub(super) struct World {
    pub(super) e: Engine<Sim>,
    pub(super) reference: Vec<u8>,
    /// Bytes whose value is defined (not freed since last written).
    pub(super) valid: Vec<bool>,
    /// Allocations freed by the program and not yet released by zio.
    pub(super) held: Vec<(usize, usize)>,
    /// Pages the copies' plans had filled whole (`CopyPlan::fills`).
    pub(super) fills: u64,
    /// Ranges an IO stack lent zio and has not taken back.
    pub(super) lent: Vec<(usize, usize)>,
    /// Copies, frees and outputs the engine's cover left clear (the hooks
    /// skip the engine for them), each checked to be one the engine does
    /// nothing about.
    pub(super) clear_calls: u64,
    /// Inputs are left unrecorded, as the hooks leave them while the
    /// policy sees no copy elided (`Op::Dormant`).
    pub(super) dormant: bool,
    /// Inputs left unrecorded so far: where the cover was clear (no engine
    /// call), and where the engine ended the records there.
    pub(super) unrecorded: [u64; 2],
}

impl World {
    pub(super) fn new(cfg: Cfg) -> World {
        World {
            e: Engine::new(Sim::new(), cfg),
            reference: vec![0; PAGES * PAGE],
            valid: vec![true; PAGES * PAGE],
            held: Vec::new(),
            fills: 0,
            lent: Vec::new(),
            clear_calls: 0,
            dormant: false,
            unrecorded: [0; 2],
        }
    }

    /// Before `[a, b)` is written or freed: the stack takes back what it
    /// lent there, as the bridge contract requires.
    pub(super) fn release_lent_over(&mut self, a: usize, b: usize) {
        let (over, rest): (Vec<_>, Vec<_>) = self.lent.iter().partition(|&&(s, e)| s < b && a < e);
        self.lent = rest;
        for (s, e) in over {
            self.e
                .release_lent(s, e - s)
                .expect("single-threaded model: nothing pinned");
        }
    }

    /// A missing page touched: the engine's fault while registered, the
    /// kernel's zero page otherwise (also when the engine, answering the
    /// fault, unregistered the page: the access is retried).
    pub(super) fn fault_in(&mut self, addr: usize) {
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
    pub(super) fn trim(&mut self, a: usize, len: usize) {
        let (p0, p1) = (page_up(a), page_down(a + len).min(BASE + PAGES * PAGE));
        let mut p = p0;
        while p < p1 {
            let i = Sim::idx(p);
            let t = self.e.tracker();
            let tracked = t.has_pieces_in(p, p + PAGE) || t.has_origs_in(p, p + PAGE);
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

    pub(super) fn load(&mut self, addr: usize) -> u8 {
        let i = Sim::idx(addr);
        self.fault_in(addr);
        self.e.mem.pages[i].data[addr % PAGE]
    }

    pub(super) fn store(&mut self, addr: usize, v: u8) {
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

    /// The program writes `v` at `addr` (a store the reference sees too).
    pub(super) fn write(&mut self, addr: usize, v: u8) {
        self.store(addr, v);
        self.reference[addr - BASE] = v;
        self.valid[addr - BASE] = true;
    }

    pub(super) fn ref_copy(&mut self, d: usize, s: usize, n: usize) {
        let (d, s) = (d - BASE, s - BASE);
        self.reference.copy_within(s..s + n, d);
        let v: Vec<bool> = self.valid[s..s + n].to_vec();
        self.valid[d..d + n].copy_from_slice(&v);
    }

    pub(super) fn is_held(&self, a: usize, n: usize) -> bool {
        self.held.iter().any(|&(p, len)| a < p + len && p < a + n)
    }

    pub(super) fn release_freed(&mut self) {
        for p in self.e.take_to_free() {
            self.held.retain(|&(q, _)| q != p);
        }
    }

    /// read(2) of `data` into `a`.
    pub(super) fn input(&mut self, a: usize, data: &[u8]) {
        self.input_asked(a, data.len(), data);
    }

    /// read(2) asking for `asked` bytes and getting `data` (a short read
    /// when shorter), landed where the engine says.
    pub(super) fn input_asked(&mut self, a: usize, asked: usize, data: &[u8]) {
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
        let (s, e) = (a, a + data.len());
        // As the hooks leave an input unrecorded: without the engine where
        // the cover is clear, else ending the records there.
        if self.dormant && self.e.shape().clear((s, e), (page_down(s), page_up(e))) {
            self.unrecorded[0] += 1;
        } else if self.dormant && self.e.input_unrecorded(s, e - s) {
            self.unrecorded[1] += 1;
        } else {
            self.e.input_done(s, e - s);
        }
    }

    /// The hooks' question before a copy, free or output (`bytes` and
    /// `pages` as [`crate::cover::Cover::clear`] takes them): if the
    /// engine's cover leaves them clear, what the engine and its memory
    /// hold and have counted, which the call must leave as it is.
    pub(super) fn clear_before(
        &mut self,
        bytes: (usize, usize),
        pages: (usize, usize),
    ) -> Option<String> {
        self.e.shape().clear(bytes, pages).then(|| {
            self.clear_calls += 1;
            self.digest()
        })
    }

    fn digest(&self) -> String {
        let m = &self.e.mem;
        let wp: Vec<usize> = (0..PAGES).filter(|&i| m.pages[i].wp).collect();
        let missing: Vec<usize> = (0..PAGES).filter(|&i| !m.pages[i].present).collect();
        format!(
            "{} {wp:?} {missing:?} {:?}",
            self.e.digest(),
            (
                m.protect_calls,
                m.unmap_calls,
                m.zero_calls,
                m.check_calls,
                m.fill_calls,
                m.plain_reads,
                m.plain_writes,
            )
        )
    }

    /// After a call [`World::clear_before`] found clear: the engine changed
    /// nothing (the hooks, which skip it, would have been right).
    pub(super) fn assert_untouched(&self, before: Option<String>, what: &str) {
        if let Some(d) = before {
            assert_eq!(
                self.digest(),
                d,
                "{what} the cover left clear changed the engine"
            );
        }
    }

    /// memcpy/memmove through the engine, executing its plan afterwards.
    pub(super) fn copy(&mut self, d: usize, s: usize, n: usize, site: usize) {
        let clear = self.clear_before((s, s + n), (page_down(d), page_up(d + n)));
        let plan = self.e.copy(d, s, n, site).unwrap();
        assert!(clear.is_none() || plan.is_none(), "a clear copy got a plan");
        self.assert_untouched(clear, "a copy");
        match plan {
            None => self.raw_copy(d, s, n, false),
            Some(p) => {
                // The caller's fills: a page still missing and registered
                // gets its composed bytes at once.
                let mut filled = Vec::new();
                for &page in &p.fills {
                    let i = Sim::idx(page);
                    if self.e.mem.pages[i].present || !self.e.mem.registered[i] {
                        continue;
                    }
                    let mut bytes = vec![0; PAGE];
                    p.compose(page, &mut bytes, |from, part| match from {
                        CopyFrom::Mem(src) => {
                            for (k, b) in part.iter_mut().enumerate() {
                                *b = self.load(src + k);
                            }
                        }
                        CopyFrom::Bounce(off) => {
                            part.copy_from_slice(&p.bounce[off..off + part.len()])
                        }
                    });
                    if self.e.mem.fill(page, &bytes) {
                        filled.push(page);
                        self.fills += 1;
                    }
                }
                for (dst, from, len) in p.real_outside(&filled) {
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

    pub(super) fn raw_copy(&mut self, d: usize, s: usize, n: usize, overlapping: bool) {
        let bytes: Vec<u8> = (0..n).map(|i| self.load(s + i)).collect();
        let _ = overlapping; // the byte buffer above gives memmove semantics
        for (i, b) in bytes.into_iter().enumerate() {
            self.store(d + i, b);
        }
    }

    /// write(2) of `[a, a+n)`: the kernel reads the gather list.
    pub(super) fn output(&mut self, a: usize, n: usize) -> Vec<u8> {
        let clear = self.clear_before((a, a + n), (0, 0));
        let g = self.e.output(a, n);
        assert!(
            clear.is_none() || g.substituted == 0,
            "a clear output substituted"
        );
        self.assert_untouched(clear, "an output");
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

    pub(super) fn check_range(&mut self, a: usize, bytes: &[u8], what: &str) {
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
    pub(super) fn check_all(&mut self) {
        for off in 0..PAGES * PAGE {
            let a = BASE + off;
            if self.valid[off] && !self.is_held(a, 1) {
                let b = self.load(a);
                assert_eq!(b, self.reference[off], "memory at {a:#x} differs");
            }
        }
    }
}
