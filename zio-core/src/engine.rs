//! The algorithm: record input, elide copies, resolve faults and outputs,
//! handle frees, writes to originals and fork. Decides *what* to do; the
//! memory operations go through [`Mem`], so the same code runs against the
//! real address space (userfaultfd, in `crate::uffd`) and against the
//! simulated one the model tests use.
//!
//! Locking contract (kept by the caller, `crate::elide`): the engine runs
//! under one lock and never touches program memory itself except to read
//! originals (always present) when rebuilding a page, and to write the
//! partial pages of a redirected input ([`Engine::input_redirected`]), which
//! it has just made present and unprotected, so that the write cannot fault
//! into the handler. Copies the program asked for are returned as a
//! [`CopyPlan`] and executed by the caller after the lock is released, so a
//! fault they raise can always be served by the handler thread.

use std::collections::BTreeMap;

use smallvec::SmallVec;

use crate::ranges::{core, overlaps, page_down, page_up, OrderedRuns, RangeSet, PAGE};
use crate::tracker::{OrigId, Piece, Tracker};

/// Memory operations the engine needs. Addresses are page-aligned where the
/// name says "page" or the doc says so.
pub trait Mem {
    /// Reads present memory (originals) into `out`.
    fn read(&self, addr: usize, out: &mut [u8]);
    /// Makes the page-aligned `[a, a+len)` elidable and drops its contents:
    /// checks it is private anonymous memory, registers it for missing
    /// faults, and discards its pages. Returns false, changing nothing, if
    /// the range cannot be elided into.
    fn unmap(&mut self, a: usize, len: usize) -> bool;
    /// Fills the missing pages from `page` with `data` (whole pages),
    /// atomically: no thread sees a page half filled. Returns false if the
    /// pages could not be filled (they stay missing; waiters are woken to
    /// fault again).
    fn fill(&mut self, page: usize, data: &[u8]) -> bool;
    /// As [`Mem::fill`], with the data read from the present memory at
    /// `src` (an original).
    fn fill_from(&mut self, page: usize, src: usize, len: usize) -> bool {
        let mut buf = vec![0; len];
        self.read(src, &mut buf);
        self.fill(page, &buf)
    }
    /// Maps zero pages from the missing page `a` on, up to `len` bytes,
    /// stopping at the first page that is present (or not registered).
    fn zero_run(&mut self, a: usize, len: usize);
    /// zio needs nothing of the page-aligned `[a, b)` around the missing
    /// page `page` (no piece, original or protection there): stop handling
    /// its faults, as much of it as lies in `page`'s mapping, and wake
    /// whoever waits on `page`. Returns false if that could not be done.
    fn release(&mut self, page: usize, a: usize, b: usize) -> bool;
    /// Maps zero pages over the page-aligned `[a, a+len)`, which zio knows
    /// to be missing: later writes there are ordinary copy-on-write faults,
    /// not userfaultfd round trips. Present pages in the range are left
    /// alone.
    fn zero_range(&mut self, a: usize, len: usize);
    /// Write-protects (`on`) or unprotects the page-aligned `[a, a+len)`,
    /// registering it first if needed. Returns false if refused.
    fn protect(&mut self, a: usize, len: usize, on: bool) -> bool;
    /// The program unmapped `[a, a+len)`: forget what is known about it.
    fn forget(&mut self, _a: usize, _len: usize) {}
    /// True if the page-aligned `[a, a+len)`, which zio left missing when it
    /// was freed, can still be elided into as it is: still the registered
    /// memory zio left there (the allocator may have unmapped and mapped it
    /// again behind zio's back).
    fn still_missing(&mut self, a: usize, len: usize) -> bool;
    /// Copies the `len` bytes at `src` (present memory) into memory zio
    /// owns and returns its address; `None` if none can be had.
    fn backup(&mut self, src: usize, len: usize) -> Option<usize>;
    /// `len` bytes of memory zio owns (present, contents undefined), given
    /// back with [`Mem::backup_release`]; `None` if none can be had.
    fn own(&mut self, len: usize) -> Option<usize>;
    /// Writes `data` to present, unprotected program memory at `addr`.
    fn write(&mut self, addr: usize, data: &[u8]);
    /// Gives back a backup's memory.
    fn backup_release(&mut self, addr: usize, len: usize);
}

/// Tunables, from the options.
#[derive(Clone, Copy, Debug)]
pub struct Cfg {
    /// Smallest destination core elided.
    pub threshold: usize,
    /// Touched/elided ratio above which a site or buffer stops eliding.
    pub fault_ratio: f64,
    /// Bound on pieces and on originals before collection.
    pub max_records: usize,
    /// Bytes of freed originals kept for their dependents.
    pub quarantine: usize,
    /// Land input into reused buffers in zio's memory
    /// ([`Engine::input_target`]).
    pub redirect_input: bool,
}

impl Default for Cfg {
    fn default() -> Cfg {
        Cfg {
            threshold: 16 << 10,
            fault_ratio: 0.06,
            max_records: 16384,
            quarantine: 64 << 20,
            redirect_input: true,
        }
    }
}

/// Why a page was materialized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Cause {
    /// The program touched it.
    Fault = 0,
    /// Its original was about to change (write, input, free, unmap).
    Write = 1,
    /// Garbage collection.
    Gc = 2,
    /// Before `fork`.
    Fork = 3,
    /// The engine itself needed it (partial overwrite, overlapping move,
    /// input into it, `mremap`).
    Other = 4,
}

/// Counters of what the engine did (kept under its lock).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Copies with at least one elided page.
    pub elided_copies: u64,
    /// Bytes elided (destination pages left unmapped).
    pub elided_bytes: u64,
    /// Bytes the engine's copy plans copied for real (fringes and the rest).
    pub copied_bytes: u64,
    /// Missing faults rebuilt from pieces.
    pub faults_missing: u64,
    /// Missing faults with no piece (answered with a zero page).
    pub faults_zero: u64,
    /// Write-protect faults on originals.
    pub faults_wp: u64,
    /// Pages materialized, by [`Cause`].
    pub materialized: [u64; 5],
    /// Output calls that sent bytes from originals.
    pub outputs_substituted: u64,
    /// Bytes the kernel accepted from originals instead of unmapped pages.
    pub bytes_substituted: u64,
    /// Elided bytes freed before anyone touched them: copies gone for good.
    pub bytes_dropped: u64,
    /// Live pieces (intermediate records) and the peak.
    pub live_pieces: u64,
    /// Peak of `live_pieces`.
    pub peak_pieces: u64,
    /// Live originals.
    pub live_originals: u64,
    /// Bytes in quarantine now.
    pub quarantined_bytes: u64,
    /// Allocations quarantined so far.
    pub quarantined_total: u64,
    /// Copies not elided because the policy stopped their site or buffer.
    pub policy_skips: u64,
    /// Elision refused by memory kind (shared, file-backed, registration).
    pub refused: u64,
    /// Ranges registered with userfaultfd (each may add VMAs); kept by the
    /// memory backend, filled in when the counters are read.
    pub registrations: u64,
    /// Bytes of originals backed up before the program changed them (one
    /// copy for all their dependents, instead of one page each).
    pub bytes_backed_up: u64,
    /// Bytes of zio's own memory holding originals now: backups, and the
    /// memory redirected inputs landed in (both drawn from `quarantine`).
    pub backup_bytes: u64,
    /// Registered ranges given back to the kernel after a fault on memory
    /// the allocator had discarded behind zio's back.
    pub ranges_released: u64,
    /// Input calls landed in zio's memory, their buffer left unmapped.
    pub inputs_redirected: u64,
    /// Bytes of those inputs left unmapped in the program's buffer.
    pub bytes_redirected: u64,
    /// Nanoseconds the program's threads spent in the engine, waiting for
    /// its lock included: what zio's decisions cost the program itself.
    /// Kept by the memory backend, filled in when the counters are read;
    /// an estimate from a random sample of the calls (about one in 8).
    pub program_ns: u64,
    /// The same for zio's own threads (fault handler, collector).
    pub background_ns: u64,
}

/// Where a real copy of a plan takes its bytes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum From {
    /// Program memory at this address (the caller's source).
    Mem(usize),
    /// The plan's bounce buffer at this offset.
    Bounce(usize),
}

/// A copy the caller must perform for real, after releasing the lock.
///
/// It holds no pin: source bytes that live in unmapped pages were read from
/// their originals into `bounce` under the lock. (A pin held while this
/// thread writes program memory could deadlock it: its write may land on a
/// protected page of the very original it pinned, and the write-protect
/// fault would wait for an unpin only this thread can do.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyPlan {
    /// `(dst, from, len)` copies.
    pub real: Vec<(usize, From, usize)>,
    /// Bytes of unmapped source pages, read from their originals.
    pub bounce: Vec<u8>,
    /// Use `memmove` for the single entry (source and destination overlap).
    pub overlapping: bool,
    /// Bytes elided by this copy.
    pub elided: usize,
    /// After the copies, record this range as an original (with
    /// [`Engine::input_done`]): it holds IO data that was moved.
    pub record: Option<(usize, usize)>,
}

/// Where the bytes of a source range are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Src {
    /// In an unmapped page: they are at `addr` in original `orig`.
    Piece { addr: usize, orig: OrigId },
    /// In memory, inside an original.
    Orig(OrigId),
    /// In memory, untracked.
    Plain,
}

/// An output's gather list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gather {
    /// `(addr, len)` to hand to the kernel in order. Inline, as the rest:
    /// an output is usually one to three runs, and allocating costs more
    /// than deciding them.
    pub iov: SmallVec<[(usize, usize); 4]>,
    /// For each `iov` entry: true if it points into an original.
    pub from_orig: SmallVec<[bool; 4]>,
    /// Originals to unpin after the call.
    pub pins: SmallVec<[OrigId; 4]>,
    /// Bytes taken from originals.
    pub substituted: usize,
}

impl Gather {
    /// Appends an entry, merging it with the previous one when contiguous
    /// and of the same kind.
    pub fn push(&mut self, addr: usize, len: usize, from_orig: bool) {
        if len == 0 {
            return;
        }
        if let (Some(last), Some(&kind)) = (self.iov.last_mut(), self.from_orig.last()) {
            if last.0 + last.1 == addr && kind == from_orig {
                last.1 += len;
                return;
            }
        }
        self.iov.push((addr, len));
        self.from_orig.push(from_orig);
    }

    /// Bytes from originals among the first `sent` bytes of the list.
    pub fn substituted_in(&self, sent: usize) -> usize {
        let mut left = sent;
        let mut subst = 0;
        for (&(_, len), &orig) in self.iov.iter().zip(&self.from_orig) {
            let n = len.min(left);
            if orig {
                subst += n;
            }
            left -= n;
            if left == 0 {
                break;
            }
        }
        subst
    }
}

/// What `free` should do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeAction {
    /// Free it for real now.
    Now,
    /// Kept alive for dependents; zio frees it later.
    Quarantined,
}

/// The caller must release the lock, let other threads run, and retry: an
/// original it needs to change is pinned by an output in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Busy;

/// An input call that lands in zio's memory instead of the program's
/// buffer ([`Engine::input_target`]): the caller reads into `to` (at least
/// the requested length) and hands it back with
/// [`Engine::input_redirected`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Redirect {
    /// Where the input call must put its bytes.
    pub to: usize,
    /// Bytes of zio's memory from `to` this input may use: at least the
    /// length asked for.
    len: usize,
    /// The length the input call asked for.
    asked: usize,
    site: u16,
    buf: u16,
    /// Continues the memory of this original (pinned meanwhile) rather
    /// than fresh memory.
    into: Option<OrigId>,
}

/// The policy's call-site key for redirected input (no return address is
/// involved: all input buffers share it, and each is judged on its own).
const INPUT_SITE: usize = usize::MAX;

const POLICY_SLOTS: usize = 256;

/// Most pages materialized together on a missing fault (256 KiB).
pub const FAULT_AROUND: usize = 64;

/// What the policy is charged for a fault's round trip, beyond the pages
/// it rebuilt, in touched bytes. Here a fault costs 12-14 us with one page
/// and 26 us with 16: the trip is worth a dozen pages of rebuilding. It is
/// charged as 4 (16 KiB), so that with the default ratio (6%) one fault per
/// 512 KiB copy keeps elision going (echo faults sweep: 1.04x) and two stop
/// it (0.94x while eliding; 0.82x for the touch sweep's 1%, two faults).
const FAULT_TRIP_CHARGE: u64 = 4 * PAGE as u64;

/// Most pages given zero pages together on a fault on a page that holds no
/// piece (1 MiB; the run stops earlier at a present page).
const ZERO_AROUND: usize = 256;

/// Freed elided pages left missing at most (runs): beyond, they get zero
/// pages at once, as before there was a choice.
const UNFILLED_RUNS: usize = 64;

/// Fault runs remembered to recognise a program reading on from where the
/// last fault stopped (one per copy being read at once, roughly).
const FAULT_STREAMS: usize = 8;

/// Attempts skipped before the first probe of a site or buffer the policy
/// stopped; every probe that finds the data still touched doubles it.
const FIRST_PROBE: u64 = 64;

#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    key: usize,
    elided: u64,
    touched: u64,
    skipped: u64,
    /// Skipped attempts before the next probe.
    next_probe: u64,
}

/// Per call site and per buffer: how much of what was elided got touched.
#[derive(Debug)]
struct Policy {
    sites: Vec<Usage>,
    bufs: Vec<Usage>,
}

impl Policy {
    fn new() -> Policy {
        Policy {
            sites: vec![Usage::default(); POLICY_SLOTS],
            bufs: vec![Usage::default(); POLICY_SLOTS],
        }
    }

    fn slot(table: &mut [Usage], key: usize) -> u16 {
        let h = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) % POLICY_SLOTS;
        if table[h].key != key {
            table[h] = Usage {
                key,
                ..Usage::default()
            };
        }
        h as u16
    }

    /// May this site elide into this buffer? Once the touched share passes
    /// the ratio (over at least `sample` elided bytes), no: a fault costs far
    /// more than the copy it replaced. Now and then an attempt is let through
    /// to notice when the program's behaviour changes: after 64 skipped
    /// attempts, then 128, 256, ... while the probes keep being touched, so
    /// a program that touches everything pays for fewer and fewer of them.
    fn allows(&mut self, site: usize, buf: usize, ratio: f64, sample: u64) -> (bool, u16, u16) {
        let s = Self::slot(&mut self.sites, site);
        let b = Self::slot(&mut self.bufs, buf);
        let mut ok = true;
        for u in [&mut self.sites[s as usize], &mut self.bufs[b as usize]] {
            if u.next_probe == 0 {
                u.next_probe = FIRST_PROBE;
            }
            // Faults are charged their round trip too, so touched bytes can
            // outgrow elided ones: 1, the largest ratio, means never stop.
            // (Nothing touched is the common case: no float conversions.)
            if ratio < 1.0
                && u.touched > 0
                && u.elided >= sample
                && u.touched as f64 > ratio * u.elided as f64
            {
                u.skipped += 1;
                if u.skipped >= u.next_probe {
                    u.skipped = 0;
                    u.next_probe = (u.next_probe * 2).min(1 << 20);
                } else {
                    ok = false;
                }
            } else {
                u.next_probe = FIRST_PROBE;
            }
        }
        (ok, s, b)
    }

    fn elided(&mut self, s: u16, b: u16, bytes: u64) {
        for u in [&mut self.sites[s as usize], &mut self.bufs[b as usize]] {
            u.elided += bytes;
            if u.elided > 1 << 30 {
                u.elided /= 2;
                u.touched /= 2;
            }
        }
    }

    fn touched(&mut self, s: u16, b: u16, bytes: u64) {
        self.sites[s as usize].touched += bytes;
        self.bufs[b as usize].touched += bytes;
    }
}

/// The engine: records plus the memory they describe.
pub struct Engine<M: Mem> {
    /// The memory backend.
    pub mem: M,
    /// Tunables.
    pub cfg: Cfg,
    /// What it did.
    pub counters: Counters,
    t: Tracker,
    /// Write-protected pages.
    wp: RangeSet,
    /// Write-protect faults waiting for an original to be unpinned.
    deferred_wp: Vec<usize>,
    /// Quarantined allocations: start -> (size, stamp).
    quarantine: BTreeMap<usize, (usize, u64)>,
    /// Allocations the caller must free for real (outside the lock).
    to_free: Vec<usize>,
    policy: Policy,
    clock: u64,
    /// While a copy is decided: ranges whose protection may be removed at
    /// its end (see [`Engine::copy`]).
    deferred_unprotect: Option<Runs>,
    /// Bounce buffer for rebuilding pages from scattered pieces.
    scratch: Vec<u8>,
    /// Recent fault runs: (the page after the run, pages it rebuilt).
    streams: [(usize, usize); FAULT_STREAMS],
    /// The slot the next fault run that continues none of them replaces.
    next_stream: usize,
    /// Pages of freed elided copies left missing (registered, no pieces):
    /// the next elided copy there needs no `MADV_DONTNEED`, and nobody pays
    /// for zero pages that copy would discard again. Whatever else uses
    /// them gets zero pages first (the engine's entry points) or on its
    /// first fault (a whole run of them at once).
    unfilled: RangeSet,
}

impl<M: Mem> Engine<M> {
    /// An engine with nothing tracked.
    pub fn new(mem: M, cfg: Cfg) -> Engine<M> {
        Engine {
            mem,
            cfg,
            counters: Counters::default(),
            t: Tracker::new(),
            wp: RangeSet::new(),
            deferred_wp: Vec::new(),
            quarantine: BTreeMap::new(),
            to_free: Vec::new(),
            policy: Policy::new(),
            clock: 0,
            deferred_unprotect: None,
            scratch: Vec::new(),
            streams: [(0, 0); FAULT_STREAMS],
            next_stream: 0,
            unfilled: RangeSet::new(),
        }
    }

    /// The record index (read-only).
    pub fn tracker(&self) -> &Tracker {
        &self.t
    }

    /// True if nothing is tracked (and no freed page is left missing, which
    /// the engine must fill before the program uses it through a hook).
    pub fn is_idle(&self) -> bool {
        self.t.is_empty() && self.unfilled.is_empty()
    }

    /// Takes the allocations that must now be freed for real.
    pub fn take_to_free(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.to_free)
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn sync_counts(&mut self) {
        let c = &mut self.counters;
        c.live_pieces = self.t.piece_count() as u64;
        c.peak_pieces = c.peak_pieces.max(c.live_pieces);
        c.live_originals = self.t.orig_count() as u64;
    }

    // ----- materialization -------------------------------------------------

    /// Rebuilds the unmapped page at `page` from its pieces and maps it.
    /// Returns false if the page has no pieces.
    fn materialize_page(&mut self, page: usize, cause: Cause) -> bool {
        self.materialize_run(page, 1, cause) > 0
    }

    /// Rebuilds up to `max` consecutive unmapped pages from `first` (stopping
    /// at the first page without pieces) and maps them with one call.
    /// Returns the number of pages materialized.
    fn materialize_run(&mut self, first: usize, max: usize, cause: Cause) -> usize {
        let mut n = 0;
        while n < max
            && self
                .t
                .has_pieces_in(first + n * PAGE, first + (n + 1) * PAGE)
        {
            n += 1;
        }
        if n == 0 {
            return 0;
        }
        let end = first + n * PAGE;
        let keys = self.t.pieces_in(first, end);
        // Where the run's bytes are, if they are one stretch of memory (one
        // piece, or pieces continuing each other's source): then the kernel
        // copies them from there, with no bounce buffer in between.
        let mut next_src = None;
        let mut contiguous = true;
        let mut covered = 0;
        for (i, &k) in keys.iter().enumerate() {
            let p = *self.t.piece(k).unwrap();
            let (lo, hi) = (k.max(first), (k + p.len).min(end));
            let src = p.src + (lo - k);
            contiguous &= i == 0 || next_src == Some(src);
            next_src = Some(src + (hi - lo));
            covered += hi - lo;
            // The policy is charged what the fault cost: every page it
            // rebuilt, fault-around included, and the round trip itself
            // (once). Counting only the faulting page let sparse reads (one
            // page per copy) keep elision going at 0.4-0.8x of plain copies
            // in the echo-bench touch sweep.
            if cause == Cause::Fault {
                let trip = if i == 0 { FAULT_TRIP_CHARGE } else { 0 };
                self.policy.touched(p.site, p.buf, (hi - lo) as u64 + trip);
            }
        }
        debug_assert_eq!(
            covered,
            n * PAGE,
            "unmapped pages at {first:#x} not fully covered by pieces"
        );
        let filled = match next_src {
            Some(after) if contiguous => self.mem.fill_from(first, after - n * PAGE, n * PAGE),
            _ => {
                // Kept between calls: a fresh buffer of this size is a
                // mapping of its own, paid for on every fault.
                if self.scratch.len() < n * PAGE {
                    self.scratch.resize(n * PAGE, 0);
                }
                for &k in &keys {
                    let p = *self.t.piece(k).unwrap();
                    let (lo, hi) = (k.max(first), (k + p.len).min(end));
                    self.mem
                        .read(p.src + (lo - k), &mut self.scratch[lo - first..hi - first]);
                }
                self.mem.fill(first, &self.scratch[..n * PAGE])
            }
        };
        if !filled {
            // Still missing: the pieces stay, so the next fault there tries
            // again instead of reading zeros.
            return n;
        }
        for k in keys {
            let o = self.t.cut_piece(k, first, end);
            self.orig_changed(o);
        }
        self.counters.materialized[cause as usize] += n as u64;
        n
    }

    /// The program reads the unmapped `[a, b)` for real, not through a fault
    /// (a copy the policy refused, whose source is an elided copy or a
    /// redirected input buffer): to the policy that is a touch like any
    /// other. Unseen, an input buffer copied for real on every message kept
    /// being redirected, and each copy of it read its bytes twice, through
    /// the plan's bounce buffer (echo 512K, 1 copy, 16 pages of it read:
    /// 0.42x of running without zio).
    fn charge_read(&mut self, a: usize, b: usize) {
        for (k, p) in self.t.pieces_over(a, b) {
            let bytes = (k + p.len).min(b) - k.max(a);
            self.policy.touched(p.site, p.buf, bytes as u64);
        }
    }

    /// Materializes every page holding a piece that shares a byte with `[a, b)`.
    fn materialize_range(&mut self, a: usize, b: usize, cause: Cause) {
        for k in self.t.pieces_in(a, b) {
            let Some(p) = self.t.piece(k).copied() else {
                continue; // already cut away by an earlier page
            };
            let (lo, hi) = (k.max(a), (k + p.len).min(b));
            let mut page = page_down(lo);
            while page < hi {
                self.materialize_page(page, cause);
                page += PAGE;
            }
        }
    }

    /// Drops the pieces covering whole pages inside `[a, b)` without
    /// materializing them (their bytes are about to be overwritten or were
    /// freed); pages sticking out are materialized.
    /// Returns the whole pages dropped (still missing, now without pieces).
    fn drop_pieces(&mut self, a: usize, b: usize) -> OrderedRuns {
        let (c0, c1) = core(a, b - a);
        let mut dropped = OrderedRuns::new();
        for k in self.t.pieces_in(a, b) {
            let Some(p) = self.t.piece(k).copied() else {
                continue;
            };
            let (lo, hi) = (k.max(c0), (k + p.len).min(c1));
            if lo < hi {
                // Every byte of an unmapped page has a piece, so the union
                // of these ranges is made of whole pages.
                dropped.push(lo, hi);
                let o = self.t.cut_piece(k, lo, hi);
                self.orig_changed(o);
            }
        }
        // What remains in [a, b) lies in partially covered pages (none if
        // the range is whole pages).
        if (c0, c1) != (a, b) {
            self.materialize_range(a, b, Cause::Other);
        }
        self.counters.bytes_dropped += dropped.total() as u64;
        dropped
    }

    /// Maps zero pages over dropped pages that will not be elided again, so
    /// that their next use (an allocator handing them out, an input call)
    /// does not go through the fault handler page by page.
    /// `keep`: sorted, disjoint ranges to leave unmapped.
    fn fill_dropped(&mut self, dropped: OrderedRuns, keep: &[(usize, usize)]) {
        for (a, b) in dropped.minus(keep) {
            self.mem.zero_range(a, b - a);
        }
    }

    /// Freed pages whose pieces were dropped: left missing for the next
    /// elided copy (see `unfilled`), or zero pages if too many runs are.
    fn leave_unfilled(&mut self, dropped: OrderedRuns) {
        for (a, b) in dropped.iter() {
            if self.unfilled.len() < UNFILLED_RUNS {
                self.unfilled.insert(a, b);
            } else {
                self.mem.zero_range(a, b - a);
            }
        }
    }

    /// Zero pages for the pages of `[a, b)` left unfilled: they are about
    /// to be written or read for real.
    fn fill_unfilled(&mut self, a: usize, b: usize) {
        if self.unfilled.is_empty() || a >= b {
            return;
        }
        let (a, b) = (page_down(a), page_up(b));
        for (s, e) in self.unfilled.clipped(a, b) {
            self.mem.zero_range(s, e - s);
        }
        self.unfilled.remove(a, b);
    }

    /// After an original lost dependents or pins: if nothing needs it any
    /// more, zio's memory goes back for reuse, or the program's pages are
    /// unprotected and its quarantine released. Inlined down to the check:
    /// almost every call (each copy of a chain but the last) finds it still
    /// busy.
    #[inline(always)]
    fn orig_changed(&mut self, id: OrigId) {
        // The record may already be gone (released by an earlier step of the
        // same operation); what follows is idempotent, so just stop.
        if self.t.try_orig(id).is_some_and(|o| !o.busy()) {
            self.orig_idle(id);
        }
    }

    /// Original `id` exists and nothing needs it any more ([`Engine::orig_changed`]).
    #[inline(never)]
    fn orig_idle(&mut self, id: OrigId) {
        let o = self.t.orig(id);
        if o.backup {
            let (start, len) = (o.start, o.len);
            self.t.remove_original(id);
            self.mem.backup_release(start, len);
            self.counters.backup_bytes -= len as u64;
            return;
        }
        let (a, b) = (page_down(o.start), page_up(o.end()));
        let q = o.quarantined;
        self.unprotect_idle(a, b);
        if let Some(alloc) = q {
            self.try_release_quarantine(alloc);
        }
    }

    /// Unprotects the protected pages of `[a, b)` that no piece and no pin
    /// needs any more. Pages at the edges of an original are often shared
    /// with a neighbour whose dependents still need them.
    ///
    /// Cost is in the originals' dependents, not in pages: it runs every time
    /// an original loses its last dependent, which for a reused 512 KiB input
    /// buffer is every message (a per-page scan was 1/3 of zio's time there).
    fn unprotect_idle(&mut self, a: usize, b: usize) {
        if !self.wp.intersects(a, b) {
            return;
        }
        if let Some(later) = &mut self.deferred_unprotect {
            later.push((a, b));
            return;
        }
        let mut keep = RangeSet::new();
        for id in self.t.origs_in(a, b) {
            let o = self.t.orig(id);
            if o.pins > 0 {
                keep.insert(page_down(o.start), page_up(o.end()));
                continue;
            }
            for k in &o.deps {
                let p = self.t.piece(*k).unwrap();
                keep.insert(page_down(p.src), page_up(p.src + p.len));
            }
        }
        // Contiguous idle pages go in one call: a 512 KiB buffer is one
        // ioctl, not 128.
        for (s, e) in self.wp.clipped(a, b) {
            for (ga, gb) in gaps(&keep, s, e) {
                self.mem.protect(ga, gb - ga, false);
                self.wp.remove(ga, gb);
            }
        }
    }

    /// Before `[a, b)` of memory changes: materialize every piece whose bytes
    /// live in the pages of `[a, b)` and unprotect those pages. `Busy` if an
    /// original there is pinned (the dependents are materialized anyway; the
    /// caller retries later).
    pub fn release_src(&mut self, a: usize, b: usize, cause: Cause) -> Result<(), Busy> {
        let (pa, pb) = (page_down(a), page_up(b));
        let mut busy = false;
        for id in self.t.origs_in(pa, pb) {
            // Materializing one original's dependents can release a
            // quarantined allocation and delete the records of this and
            // later originals in the list: skip those that are gone. (A
            // reused id is harmless: only dependents in [pa, pb) are acted
            // on.)
            let Some(o) = self.t.try_orig(id) else {
                continue;
            };
            busy |= o.pins > 0;
            let (lo, hi) = (o.start.max(pa), o.end().min(pb));
            let deps: SmallVec<[usize; 16]> = o
                .deps
                .iter()
                .copied()
                .filter(|k| {
                    let p = self.t.piece(*k).unwrap();
                    overlaps(p.src, p.src + p.len, lo, hi)
                })
                .collect();
            if deps.is_empty() || self.back_up(id, lo, hi, &deps) {
                continue;
            }
            for k in deps {
                let Some(p) = self.t.piece(k).copied() else {
                    continue;
                };
                let (s0, s1) = (p.src.max(pa), (p.src + p.len).min(pb));
                if s0 < s1 {
                    let (d0, d1) = (k + (s0 - p.src), k + (s1 - p.src));
                    self.materialize_range(d0, d1, cause);
                }
            }
        }
        if busy {
            return Err(Busy);
        }
        self.unprotect_range(pa, pb);
        Ok(())
    }

    /// Before `[lo, hi)` of original `id` changes: copy those bytes once
    /// into a backup and point the dependents `deps` there, instead of
    /// rebuilding every dependent page (one copy for any number of copies of
    /// the data; the dependents stay unmapped). False, changing nothing, if
    /// the backup budget (`ZIO_QUARANTINE`) is spent or no memory is had.
    fn back_up(&mut self, id: OrigId, lo: usize, hi: usize, deps: &[usize]) -> bool {
        let len = hi - lo;
        if self.counters.backup_bytes + len as u64 > self.cfg.quarantine as u64 {
            return false;
        }
        let Some(addr) = self.mem.backup(lo, len) else {
            return false;
        };
        let now = self.tick();
        let bid = self.t.add_original(addr, len, now);
        self.t.orig_mut(bid).backup = true;
        for &k in deps {
            let Some(p) = self.t.piece(k).copied() else {
                continue;
            };
            let (s0, s1) = (p.src.max(lo), (p.src + p.len).min(hi));
            if s0 >= s1 {
                continue;
            }
            let (d0, d1) = (k + (s0 - p.src), k + (s1 - p.src));
            self.t.cut_piece(k, d0, d1);
            let moved = Piece {
                len: d1 - d0,
                src: addr + (s0 - lo),
                orig: bid,
                ..p
            };
            self.t.insert_piece(d0, moved);
        }
        self.counters.bytes_backed_up += len as u64;
        self.counters.backup_bytes += len as u64;
        self.orig_changed(id);
        self.orig_changed(bid); // nothing pointed there after all: release
        true
    }

    fn unprotect_range(&mut self, pa: usize, pb: usize) {
        if !self.wp.intersects(pa, pb) {
            return;
        }
        for (s, e) in self.wp.clipped(pa, pb) {
            self.mem.protect(s, e - s, false);
        }
        self.wp.remove(pa, pb);
    }

    // ----- source resolution -------------------------------------------------

    /// Splits `[a, b)` by where its bytes are.
    fn resolve(&self, a: usize, b: usize) -> Segs {
        let origs = self.t.origs_in(a, b);
        let mut out = Segs::new();
        let mut pos = a;
        for (k, p) in self.t.pieces_over(a, b) {
            let (s, e) = (k.max(a), (k + p.len).min(b));
            self.push_memory(&origs, pos, s, &mut out);
            let src = Src::Piece {
                addr: p.src + (s - k),
                orig: p.orig,
            };
            push_seg(&mut out, s, e, src);
            pos = e;
        }
        self.push_memory(&origs, pos, b, &mut out);
        out
    }

    /// Segments for `[lo, hi)`, which holds no piece: split by originals.
    fn push_memory(&self, origs: &[OrigId], lo: usize, hi: usize, out: &mut Segs) {
        let mut pos = lo;
        for &id in origs {
            let o = self.t.orig(id);
            let (s, e) = (o.start.max(lo), o.end().min(hi));
            if s >= e {
                continue;
            }
            push_seg(out, pos, s, Src::Plain);
            push_seg(out, s, e, Src::Orig(id));
            pos = e;
        }
        push_seg(out, pos, hi, Src::Plain);
    }

    // ----- the operations ---------------------------------------------------

    /// Prepares an input call writing up to `n` bytes at `a`: the bytes there
    /// are about to change.
    pub fn input_prepare(&mut self, a: usize, n: usize) -> Result<(), Busy> {
        self.fill_unfilled(a, a + n);
        if n == 0 || self.t.is_empty() {
            return Ok(());
        }
        self.materialize_range(a, a + n, Cause::Other);
        self.release_src(a, a + n, Cause::Write)
    }

    /// An input call put `got` bytes at `a`: record them as an original if
    /// they reach the threshold.
    pub fn input_done(&mut self, a: usize, got: usize) {
        // Written by the kernel: present now (faulted in if need be).
        if !self.unfilled.is_empty() {
            self.unfilled.remove(page_down(a), page_up(a + got));
        }
        if got < self.cfg.threshold {
            return;
        }
        // Another thread may have copied from here during the call (a race in
        // the program); keep the index consistent regardless.
        self.materialize_range(a, a + got, Cause::Other);
        let _ = self.release_src(a, a + got, Cause::Write);
        let here = self.t.origs_in(a, a + got);
        if here.iter().any(|&id| self.t.orig(id).pins > 0) {
            return; // pinned: leave the old record, skip this one
        }
        let now = self.tick();
        // A message read in chunks into one buffer is one original, not one
        // per chunk: every copy of it is then one piece, not one per chunk.
        let before = self
            .t
            .origs_in(a.saturating_sub(1), a)
            .into_iter()
            .find(|&id| {
                let o = self.t.orig(id);
                o.end() == a && !o.backup && o.quarantined.is_none()
            });
        // The same buffer read again whole (its old bytes were released
        // above): the record stays, restamped.
        if let (&[id], None) = (here.as_slice(), before) {
            let o = self.t.orig(id);
            if o.start == a && o.len == got && !o.backup && o.quarantined.is_none() {
                self.t.orig_mut(id).stamp = now;
                return;
            }
        }
        self.t.trim_originals(a, a + got);
        match before {
            Some(id) => self.t.extend_original(id, got, now),
            None => {
                self.t.add_original(a, got, now);
            }
        }
        self.sync_counts();
    }

    /// Before an input call of up to `n` bytes at `a`: if `[a, a+n)` is a
    /// reused input buffer, returns where the call should land instead: in
    /// memory zio owns, which becomes the original, while the buffer's
    /// whole pages are left unmapped as a copy of it. The old bytes then
    /// need no backup (the copies that point at them keep them where they
    /// are) and no protection changes, because nothing but zio writes its
    /// own memory. `None`: the input lands in the buffer as usual (call
    /// [`Engine::input_prepare`]).
    ///
    /// Only a buffer whose old bytes copies still need, or that was
    /// redirected and left alone, is redirected (not a fresh one, nor one
    /// the program only reads itself), and only while the policy sees its
    /// unmapped pages left alone: a program that parses its input buffer in
    /// place faults there and soon has its input landed in the buffer
    /// again. A later part of a message read in parts goes where its start
    /// went ([`Engine::continuation`]).
    pub fn input_target(&mut self, a: usize, n: usize) -> Option<Redirect> {
        self.fill_unfilled(a, a + n);
        if !self.cfg.redirect_input || n == 0 {
            return None;
        }
        // The rest of a message whose start was redirected (within what its
        // first call asked for) follows it into zio's memory whatever its
        // size and pages: the start's decision is the message's. Judged
        // alone, a last part without a whole page (or one written in place
        // the message before, with no copies) landed in the buffer, every
        // copy then copied that page for real and the next message unmapped
        // it again (echo 1M x 12: 3 KiB copied, 0.9 ioctls and 0.4 unmaps
        // per message). Past the asked range it is another message's start,
        // judged as one.
        let cont = self.continuation(a, n);
        if let Some((to, id, site, buf)) = cont {
            if to + n <= self.t.orig(id).asked_end {
                return Some(self.redirect_into(to, id, n, site, buf));
            }
        }
        if n < self.cfg.threshold {
            return None;
        }
        let (c0, c1) = core(a, n);
        // Room up to the end of the last page: a call that ends inside it
        // may move the page's other bytes there ([`Engine::tail_into_own`]).
        let span = page_up(a + n) - a;
        if c1 - c0 < self.cfg.threshold
            || self.counters.backup_bytes + span as u64 > self.cfg.quarantine as u64
        {
            return None;
        }
        // What the buffer holds now must be worth not overwriting: copies
        // still point at it (an original with dependents), or it is itself
        // a copy left unmapped (the last input was redirected and nobody
        // touched it). An input buffer nobody copies from gains nothing.
        let worth = self.t.has_pieces_in(c0, c1)
            || self
                .t
                .origs_in(c0, c1)
                .iter()
                .any(|&id| !self.t.orig(id).deps.is_empty());
        if !worth {
            return None;
        }
        let Some((true, site, buf)) = self.policy_for(a, n, INPUT_SITE) else {
            return None;
        };
        if let Some((to, id, _, _)) = cont {
            return Some(self.redirect_into(to, id, n, site, buf));
        }
        let to = self.mem.own(span)?;
        self.counters.backup_bytes += span as u64;
        Some(Redirect {
            to,
            len: span,
            asked: n,
            site,
            buf,
            into: None,
        })
    }

    /// A redirect of `n` bytes to `to`, in the memory of original `id`
    /// (pinned until the input call is done).
    fn redirect_into(&mut self, to: usize, id: OrigId, n: usize, site: u16, buf: u16) -> Redirect {
        let o = self.t.orig_mut(id);
        o.pins += 1;
        Redirect {
            to,
            len: o.end() - to,
            asked: n,
            site,
            buf,
            into: Some(id),
        }
    }

    /// A message read in chunks: if `a` continues a piece of zio's memory
    /// that has room for `n` more bytes no copy points at, the chunk lands
    /// right after it, so the whole message stays one run of one original
    /// (every copy of it one piece, not one per chunk). Returns where, the
    /// original, and the policy slots of the piece (the message's start).
    fn continuation(&self, a: usize, n: usize) -> Option<(usize, OrigId, u16, u16)> {
        let (k, p) = self.t.piece_at(a.checked_sub(1)?)?;
        let o = self.t.orig(p.orig);
        // Where byte `a` lands: right after the bytes of `a - 1`.
        let end = p.src + (a - k);
        if !o.backup || o.end() < end + n {
            return None;
        }
        // Bytes there that a copy reads must stay. The buffer's own pieces
        // may read them (a tail page moved there, [`Engine::tail_into_own`]):
        // the input replaces those bytes in the buffer as well. Such a piece
        // maps addresses with the same offset as `a -> end`.
        let free = o.deps.iter().all(|&d| {
            let q = self.t.piece(d).unwrap();
            !overlaps(q.src, q.src + q.len, end, end + n)
                || q.src.wrapping_sub(d) == end.wrapping_sub(a)
        });
        free.then_some((end, p.orig, p.site, p.buf))
    }

    /// The input call of [`Engine::input_target`] put `got` bytes at
    /// `r.to` (`got` <= 0: it failed, nothing changed). Makes `[a, a+got)`
    /// read as those bytes: its whole pages become a piece of `r.to`, the
    /// bytes in partial pages are written for real.
    pub fn input_redirected(&mut self, a: usize, r: Redirect, got: isize) -> Result<(), Busy> {
        if got <= 0 {
            self.release_own(r);
            return Ok(());
        }
        let got = (got as usize).min(r.len);
        if self.redirect_steady(a, &r, got) {
            return Ok(());
        }
        let pinned = r.into;
        let (c0, c1) = core(a, got);
        // The whole pages are overwritten: old pieces dropped, originals
        // released (backed up for their dependents).
        let dropped = self.drop_pieces(c0, c1);
        if let Err(Busy) = self.release_src(a, a + got, Cause::Write) {
            self.fill_dropped(dropped, &[]);
            return Err(Busy);
        }
        self.t.trim_originals(a, a + got);
        let unmapped = c1 > c0 && (dropped.covers(c0, c1) || self.mem.unmap(c0, c1 - c0));
        let keep = if unmapped { (c0, c1) } else { (c0, c0) };
        self.fill_dropped(dropped, &[keep]);
        // In address order: the partial pages before the core, the core,
        // the partial pages after it. A part becomes a piece of `r.to` if its
        // page is unmapped (the core once unmapped; a partial page that has
        // pieces, rather than being rebuilt: a message read in chunks ends
        // most chunks mid-page), else it is written for real.
        let mut parts: SmallVec<[(usize, usize); 4]> = SmallVec::new();
        let mut pos = a;
        while pos < a + got {
            let end = if pos == c0 && c1 > c0 {
                c1
            } else {
                (a + got).min(page_down(pos) + PAGE)
            };
            parts.push((pos, end));
            pos = end;
        }
        let now = self.tick();
        let mut id = r.into;
        let mut elided = 0;
        let mut bytes = Vec::new();
        for (lo, hi) in parts {
            // How far the piece reaches: past `hi` for a tail page whose
            // old bytes moved into zio's memory.
            let mut reach = hi;
            let as_piece = if lo == c0 && hi == c1 {
                unmapped
            } else if self.t.has_pieces_in(page_down(lo), page_down(lo) + PAGE) {
                true
            } else if self.tail_into_own(a, &r, lo, hi) {
                reach = lo + PAGE;
                true
            } else {
                false
            };
            if !as_piece {
                // Under the lock: pages without pieces are unprotected
                // (released above) and present (dropped ones were just
                // filled; one the allocator discarded behind zio's back gets
                // a zero page first), so the write cannot fault into the
                // handler.
                self.mem
                    .zero_range(page_down(lo), page_up(hi) - page_down(lo));
                bytes.resize(hi - lo, 0);
                self.mem.read(r.to + (lo - a), &mut bytes);
                self.mem.write(lo, &bytes);
                self.counters.copied_bytes += (hi - lo) as u64;
                continue;
            }
            let orig = *id.get_or_insert_with(|| self.redirect_original(&r, now));
            // The core's pieces were all dropped above.
            if (lo, hi) != (c0, c1) {
                for k in self.t.pieces_in(lo, hi) {
                    let was = self.t.cut_piece(k, lo, hi);
                    self.orig_changed(was);
                }
            }
            let piece = Piece {
                len: reach - lo,
                src: r.to + (lo - a),
                orig,
                stamp: now,
                site: r.site,
                buf: r.buf,
            };
            self.t.insert_piece(lo, piece);
            // The chunk before, read into the same memory: one piece.
            self.merge_piece_left(lo);
            elided += hi - lo;
        }
        if elided > 0 {
            self.policy.elided(r.site, r.buf, elided as u64);
            self.counters.inputs_redirected += 1;
            self.counters.bytes_redirected += elided as u64;
        }
        match pinned {
            Some(id) => self.unpin(&[id]),
            None if elided == 0 => self.release_own(r),
            None => {}
        }
        self.sync_counts();
        Ok(())
    }

    /// The original of a redirect's memory: zio's own, so a backup (nothing
    /// else writes it), knowing how far the message's first call asked.
    fn redirect_original(&mut self, r: &Redirect, now: u64) -> OrigId {
        let id = self.t.add_original(r.to, r.len, now);
        let o = self.t.orig_mut(id);
        o.backup = true;
        o.asked_end = r.to + r.asked;
        id
    }

    /// The steady state of a reused input buffer: the input filled the
    /// whole fresh memory of `r`, and `[a, a+got)` is whole pages that are
    /// one piece already (the last message's redirect) and protect nothing.
    /// Then the piece just takes the new bytes, as a reused copy
    /// destination does ([`Engine::reuse_piece`]): what the general path
    /// would do comes to the same, through a drop, a cut and an insert.
    /// False, changing nothing, for any other input.
    fn redirect_steady(&mut self, a: usize, r: &Redirect, got: usize) -> bool {
        if r.into.is_some()
            || got != r.len
            || !a.is_multiple_of(PAGE)
            || self.t.piece(a).is_none_or(|p| p.len != got)
            || self.wp.intersects(a, a + got)
        {
            return false;
        }
        let now = self.tick();
        let new = Piece {
            len: got,
            src: r.to,
            orig: self.redirect_original(r, now),
            stamp: now,
            site: r.site,
            buf: r.buf,
        };
        let reused = self.reuse_piece(a, new);
        assert!(reused, "a piece of that length at {a:#x}");
        self.counters.inputs_redirected += 1;
        self.counters.bytes_redirected += got as u64;
        self.sync_counts();
        true
    }

    /// A chunk of a redirected input ending inside a page that is present
    /// (the buffer's first message, or any page nothing was elided into):
    /// moves the page's bytes past the chunk, `[hi, page end)`, into zio's
    /// memory right after the chunk's and unmaps the page, so that the
    /// whole page reads from zio's memory. Left present, the page would be
    /// written for real by every later message split there, and every
    /// copy of it copied for real. The next chunk continues the same
    /// memory over those bytes ([`Engine::continuation`]).
    ///
    /// Only for a page whose other bytes are the buffer's: inside the range
    /// the call asked for, or, past it, input the buffer received before
    /// (an original: a program reading a message in parts asks for each
    /// part). A page shared with other data stays present: unmapped, every
    /// use of that data would fault. The original there loses those bytes:
    /// the input released the whole page already, so no copy points at
    /// them. False, changing nothing, where it does not apply.
    fn tail_into_own(&mut self, a: usize, r: &Redirect, lo: usize, hi: usize) -> bool {
        let page_end = lo + PAGE;
        let asked_end = a + r.asked;
        if !lo.is_multiple_of(PAGE) || page_end > a + r.len {
            return false;
        }
        if page_end > asked_end {
            let ids = self.t.origs_in(asked_end, page_end);
            let covered = match ids.as_slice() {
                &[id] => {
                    let o = self.t.orig(id);
                    o.start <= asked_end && o.end() >= page_end
                }
                _ => false,
            };
            if !covered {
                return false;
            }
        }
        self.t.trim_originals(hi, page_end);
        // Read under the lock: a page the allocator discarded behind zio's
        // back (never written since) would fault into the handler.
        self.mem.zero_range(lo, PAGE);
        let mut old = [0u8; PAGE];
        let old = &mut old[..page_end - hi];
        self.mem.read(hi, old);
        self.mem.write(r.to + (hi - a), old);
        self.mem.unmap(lo, PAGE)
    }

    /// Joins the piece at `k` to the one ending there if both read on
    /// from the same bytes of the same original.
    fn merge_piece_left(&mut self, k: usize) {
        let Some(p) = self.t.piece(k).copied() else {
            return;
        };
        let Some((pk, pp)) = self.t.piece_at(k.wrapping_sub(1)) else {
            return;
        };
        if pk + pp.len == k && pp.orig == p.orig && pp.src + pp.len == p.src {
            self.t.cut_piece(k, k, k + p.len);
            self.t.extend_piece(pk, p.len);
        }
    }

    /// Gives back the memory of a redirect that did not become an original.
    fn release_own(&mut self, r: Redirect) {
        match r.into {
            Some(id) => self.unpin(&[id]),
            None => {
                self.mem.backup_release(r.to, r.len);
                self.counters.backup_bytes -= r.len as u64;
            }
        }
    }

    /// Decides a copy of `n` bytes from `s` to `d` made at call site `site`.
    /// `None`: nothing tracked is involved, copy for real as usual.
    pub fn copy(
        &mut self,
        d: usize,
        s: usize,
        n: usize,
        site: usize,
    ) -> Result<Option<CopyPlan>, Busy> {
        if n == 0 || self.t.is_empty() {
            return Ok(None);
        }
        // The steady state of a reused destination, decided in a few
        // lookups: every copy of a static buffer chain after the first.
        let mut policy = None;
        if let Some((src, orig)) = self.repointable(d, s, n) {
            let decided = self.policy_for(d, n, site);
            if let Some((true, site, buf)) = decided {
                if let Some(plan) = self.repoint(d, n, src, orig, site, buf) {
                    return Ok(Some(plan));
                }
            }
            policy = Some(decided);
        }
        // A reused destination re-elided from the same input drops the
        // original's last dependent and adds it back a moment later: only
        // what is idle once the copy is decided gets unprotected, instead of
        // an unprotect and a protect ioctl in every such copy.
        self.deferred_unprotect = Some(Runs::new());
        let plan = self.decide_copy(d, s, n, site, policy);
        for (a, b) in self.deferred_unprotect.take().unwrap_or_default() {
            self.unprotect_idle(a, b);
        }
        plan
    }

    /// What the policy says of eliding into `[d, d+n)` from `site` (a copy's
    /// call site, or [`INPUT_SITE`]): `None` if its core is too small to
    /// consider, else whether it may and the policy slots of the site and
    /// the buffer.
    fn policy_for(&mut self, d: usize, n: usize, site: usize) -> Option<(bool, u16, u16)> {
        let (c0, c1) = core(d, n);
        (c1 - c0 >= self.cfg.threshold).then(|| {
            let sample = 4 * self.cfg.threshold as u64;
            self.policy.allows(site, c0, self.cfg.fault_ratio, sample)
        })
    }

    fn decide_copy(
        &mut self,
        d: usize,
        s: usize,
        n: usize,
        site: usize,
        policy: Option<Option<(bool, u16, u16)>>,
    ) -> Result<Option<CopyPlan>, Busy> {
        let src_tracked = self.t.has_pieces_in(s, s + n) || !self.t.origs_in(s, s + n).is_empty();
        if !src_tracked {
            // Copied for real by the caller.
            self.fill_unfilled(d, d + n);
            return Ok(None);
        }
        if overlaps(d, d + n, s, s + n) {
            // IO data shifted inside its own buffer (Redis drops a protocol
            // header this way) is still IO data: record it again afterwards.
            let was_original = !self.t.origs_in(s, s + n).is_empty();
            self.fill_unfilled(s.min(d), s.max(d) + n);
            self.materialize_range(s, s + n, Cause::Other);
            self.materialize_range(d, d + n, Cause::Other);
            self.release_src(s.min(d), s.max(d) + n, Cause::Write)?;
            self.t.trim_originals(s.min(d), s.max(d) + n);
            self.sync_counts();
            return Ok(Some(CopyPlan {
                real: vec![(d, From::Mem(s), n)],
                overlapping: true,
                record: was_original.then_some((d, n)),
                ..CopyPlan::default()
            }));
        }

        let (c0, c1) = core(d, n);
        let policy = policy.unwrap_or_else(|| self.policy_for(d, n, site));

        // The destination is overwritten: whole pages' old pieces are
        // dropped, partial pages rebuilt, originals there released.
        let dropped = self.drop_pieces(d, d + n);
        if let Err(Busy) = self.release_src(d, d + n, Cause::Write) {
            self.fill_dropped(dropped, &[]);
            return Err(Busy);
        }
        self.t.trim_originals(d, d + n);

        let mut plan = CopyPlan::default();
        let mut elided_runs = Runs::new();
        match policy {
            Some((true, site_slot, buf_slot)) => {
                elided_runs = self.elide_core(d, s, (c0, c1), &dropped, site_slot, buf_slot);
            }
            Some((false, ..)) => self.counters.policy_skips += 1,
            None => {}
        }

        // Dropped pages copied for real below must not fault one by one.
        self.fill_dropped(dropped, &elided_runs);

        // Everything not elided is copied for real, from where its bytes are.
        let mut pos = d;
        let mut real_parts = Runs::new();
        for &(r0, r1) in &elided_runs {
            real_parts.push((pos, r0));
            pos = r1;
        }
        real_parts.push((pos, d + n));
        for (lo, hi) in real_parts {
            if lo >= hi {
                continue;
            }
            self.fill_unfilled(lo, hi);
            for (a, b, src) in self.resolve(s + (lo - d), s + (hi - d)) {
                let dst = d + (a - s);
                let from = match src {
                    Src::Piece { addr, .. } => {
                        let off = plan.bounce.len();
                        plan.bounce.resize(off + (b - a), 0);
                        self.mem.read(addr, &mut plan.bounce[off..]);
                        self.charge_read(a, b);
                        From::Bounce(off)
                    }
                    _ => From::Mem(a),
                };
                plan.real.push((dst, from, b - a));
                self.counters.copied_bytes += (b - a) as u64;
            }
        }
        plan.elided = elided_runs.iter().map(|(a, b)| b - a).sum();
        if plan.elided > 0 {
            self.counters.elided_copies += 1;
            self.counters.elided_bytes += plan.elided as u64;
        }
        self.sync_counts();
        Ok(Some(plan))
    }

    /// The steady state of a reused destination: `[d, d+n)` (whole pages,
    /// at least the threshold) is one piece already and the source is one
    /// tracked, protected run elsewhere, so the piece can just take the new
    /// source ([`Engine::repoint`]): no page is dropped, filled or
    /// protected. Returns where the source bytes are (address, original);
    /// `None` for a copy of any other shape. Whether `[d, d+n)` is one
    /// piece is left to [`Engine::repoint`], which looks it up once to
    /// check and change it. Changes nothing.
    fn repointable(&self, d: usize, s: usize, n: usize) -> Option<(usize, OrigId)> {
        if !d.is_multiple_of(PAGE)
            || !n.is_multiple_of(PAGE)
            || n < self.cfg.threshold
            || overlaps(d, d + n, s, s + n)
        {
            return None;
        }
        let (src, orig) = match self.t.piece_at(s) {
            Some((k, p)) if k + p.len >= s + n => (p.src + (s - k), p.orig),
            Some(_) => return None,
            None => {
                if self.t.has_pieces_in(s, s + n) {
                    return None;
                }
                let ids = self.t.origs_in(s, s + n);
                let &[id] = ids.as_slice() else {
                    return None;
                };
                let o = self.t.orig(id);
                if o.start > s || o.end() < s + n {
                    return None;
                }
                (s, id)
            }
        };
        if !self.t.orig(orig).backup && !self.wp.covers(page_down(src), page_up(src + n)) {
            return None;
        }
        Some((src, orig))
    }

    /// Elides a copy [`Engine::repointable`] accepted if `[d, d+n)` is one
    /// piece: it now reads `n` bytes at `src` of `orig`. `None`, changing
    /// nothing, if it is not.
    fn repoint(
        &mut self,
        d: usize,
        n: usize,
        src: usize,
        orig: OrigId,
        site: u16,
        buf: u16,
    ) -> Option<CopyPlan> {
        let stamp = self.clock + 1;
        let new = Piece {
            len: n,
            src,
            orig,
            stamp,
            site,
            buf,
        };
        if !self.reuse_piece(d, new) {
            return None;
        }
        self.counters.elided_copies += 1;
        self.counters.elided_bytes += n as u64;
        self.sync_counts();
        Some(CopyPlan {
            elided: n,
            ..CopyPlan::default()
        })
    }

    /// The steady state of a reused destination, for a copy
    /// ([`Engine::repoint`]) and an input ([`Engine::redirect_steady`])
    /// alike: the piece at `d` takes `new`'s bytes. Its pages stay unmapped
    /// as they are; the original it read loses a dependent. False, changing
    /// nothing, if `[d, d+new.len)` is not one piece. Inlined: it is the
    /// body of every elided copy in that state.
    #[inline(always)]
    fn reuse_piece(&mut self, d: usize, new: Piece) -> bool {
        let Some(was) = self.t.repoint_piece(d, new) else {
            return false;
        };
        self.clock = self.clock.max(new.stamp);
        debug_assert!(
            self.t.origs_in(d, d + new.len).is_empty(),
            "original under a piece"
        );
        self.orig_changed(was);
        self.policy.elided(new.site, new.buf, new.len as u64);
        self.counters.bytes_dropped += new.len as u64;
        true
    }

    /// Elides what it can of the destination core `[c0, c1)`; returns the
    /// elided runs.
    /// `dropped`: pages whose old pieces this copy just dropped. They are
    /// still unmapped and registered (a piece's pages always are), so
    /// eliding into them again needs no system call: a static buffer reused
    /// for every message costs nothing per copy.
    fn elide_core(
        &mut self,
        d: usize,
        s: usize,
        (c0, c1): (usize, usize),
        dropped: &OrderedRuns,
        site: u16,
        buf: u16,
    ) -> Runs {
        let segs = self.resolve(s + (c0 - d), s + (c1 - d));
        // A destination page is elidable if all its source bytes are tracked:
        // the whole pages inside each maximal run of tracked segments.
        let mut runs = Runs::new();
        let mut i = 0;
        while i < segs.len() {
            if segs[i].2 == Src::Plain {
                i += 1;
                continue;
            }
            let start = segs[i].0;
            while i + 1 < segs.len() && segs[i + 1].2 != Src::Plain && segs[i + 1].0 == segs[i].1 {
                i += 1;
            }
            let end = segs[i].1;
            i += 1;
            let lo = page_up(d + (start - s)).max(c0);
            let hi = page_down(d + (end - s)).min(c1);
            if lo < hi {
                runs.push((lo, hi));
            }
        }

        let now = self.tick();
        let mut done = Runs::new();
        for (r0, r1) in runs {
            let (sa, sb) = (s + (r0 - d), s + (r1 - d));
            // Protect the sources first: once they are protected, a write to
            // them is caught before it can change bytes a piece points at.
            let mut protected = true;
            for &(a, b, src) in segs.iter().filter(|x| overlaps(x.0, x.1, sa, sb)) {
                let (lo, hi) = match src {
                    Src::Orig(_) => (a.max(sa), b.min(sb)),
                    // Backups are zio's own memory: nothing else writes them.
                    Src::Piece { orig, .. } if self.t.orig(orig).backup => continue,
                    Src::Piece { addr, .. } => {
                        let lo = a.max(sa);
                        (addr + (lo - a), addr + (b.min(sb) - a))
                    }
                    Src::Plain => unreachable!(),
                };
                let (pa, pb) = (page_down(lo), page_up(hi));
                for (ga, gb) in gaps(&self.wp, pa, pb) {
                    if self.mem.protect(ga, gb - ga, true) {
                        self.wp.insert(ga, gb);
                    } else {
                        protected = false;
                    }
                }
            }
            // Pages this copy just dropped, or that a free left missing (if
            // still registered), need no unmapping.
            let unmapped = dropped.covers(r0, r1)
                || (self.unfilled.covers(r0, r1) && self.mem.still_missing(r0, r1 - r0))
                || self.mem.unmap(r0, r1 - r0);
            if !protected || !unmapped {
                self.counters.refused += 1;
                continue;
            }
            if !self.unfilled.is_empty() {
                self.unfilled.remove(r0, r1);
            }
            for &(a, b, src) in segs.iter().filter(|x| overlaps(x.0, x.1, sa, sb)) {
                let (lo, hi) = (a.max(sa), b.min(sb));
                let (addr, orig) = match src {
                    Src::Orig(id) => (lo, id),
                    Src::Piece { addr, orig } => (addr + (lo - a), orig),
                    Src::Plain => unreachable!(),
                };
                let piece = Piece {
                    len: hi - lo,
                    src: addr,
                    orig,
                    stamp: now,
                    site,
                    buf,
                };
                self.t.insert_piece(d + (lo - s), piece);
            }
            self.policy.elided(site, buf, (r1 - r0) as u64);
            done.push((r0, r1));
        }
        done
    }

    /// Releases the pins a gather list took.
    pub fn unpin(&mut self, pins: &[OrigId]) {
        for &id in pins {
            let o = self.t.orig_mut(id);
            o.pins -= 1;
            if o.pins == 0 {
                let (a, b) = (page_down(o.start), page_up(o.end()));
                // Write-protect faults that waited for this original.
                let waiting: Vec<usize> = self
                    .deferred_wp
                    .iter()
                    .copied()
                    .filter(|&p| p >= a && p < b)
                    .collect();
                self.deferred_wp.retain(|&p| !(p >= a && p < b));
                for p in waiting {
                    if self.release_src(p, p + PAGE, Cause::Write).is_err() {
                        self.deferred_wp.push(p);
                    } else {
                        // Unprotecting wakes the waiting thread; if the page
                        // was already unprotected, it must still be woken.
                        self.mem.protect(p, PAGE, false);
                    }
                }
                self.orig_changed(id);
            }
        }
    }

    /// The gather list for an output of `[a, a+n)`: unmapped pieces are sent
    /// from their originals (pinned until [`Engine::unpin`]).
    pub fn output(&mut self, a: usize, n: usize) -> Gather {
        let mut g = Gather::default();
        self.output_into(&mut g, a, n);
        g
    }

    /// Appends the gather list for `[a, a+n)` to `g` (for vectored outputs).
    pub fn output_into(&mut self, g: &mut Gather, a: usize, n: usize) {
        // Only pieces matter here: bytes in memory, original or not, are
        // sent from where they are.
        let pieces = if n == 0 {
            Default::default()
        } else {
            self.t.pieces_over(a, a + n)
        };
        let mut pos = a;
        for (k, p) in pieces {
            let (lo, hi) = (k.max(a), (k + p.len).min(a + n));
            g.push(pos, lo - pos, false);
            if !g.pins.contains(&p.orig) {
                self.t.orig_mut(p.orig).pins += 1;
                g.pins.push(p.orig);
            }
            g.substituted += hi - lo;
            g.push(p.src + (lo - k), hi - lo, true);
            pos = hi;
        }
        g.push(pos, a + n - pos, false);
    }

    /// After the output call that used `g` handed `sent` bytes to the
    /// kernel: count what came from originals, and unpin them.
    pub fn output_done(&mut self, g: &Gather, sent: usize) {
        let subst = g.substituted_in(sent);
        if subst > 0 {
            self.counters.outputs_substituted += 1;
            self.counters.bytes_substituted += subst as u64;
        }
        self.unpin(&g.pins);
    }

    /// The program frees the allocation `[p, p+size)`.
    pub fn free(&mut self, p: usize, size: usize) -> FreeAction {
        if self.t.is_empty() || size == 0 {
            return FreeAction::Now;
        }
        let b = p + size;
        // Elided bytes in it are gone for good: the copy never happened.
        // Whole pages: dropped, and left missing for their next user (zero
        // pages come when it is not an elided copy); pieces in the partial
        // pages at the edges, which hold neighbours' bytes too, are
        // rebuilt.
        let dropped = self.drop_pieces(p, b);
        self.leave_unfilled(dropped);
        let origs = self.t.origs_in(p, b);
        let action = if self.bytes_needed(p, b) {
            for &id in &origs {
                self.t.orig_mut(id).quarantined = Some(p);
            }
            let now = self.tick();
            self.quarantine.insert(p, (size, now));
            self.counters.quarantined_bytes += size as u64;
            self.counters.quarantined_total += 1;
            self.enforce_quarantine();
            FreeAction::Quarantined
        } else {
            self.t.trim_originals(p, b);
            self.unprotect_idle(page_down(p), page_up(b));
            FreeAction::Now
        };
        self.sync_counts();
        action
    }

    fn try_release_quarantine(&mut self, alloc: usize) {
        let Some(&(size, _)) = self.quarantine.get(&alloc) else {
            return;
        };
        if self.bytes_needed(alloc, alloc + size) {
            return;
        }
        self.quarantine.remove(&alloc);
        self.counters.quarantined_bytes -= size as u64;
        self.t.trim_originals(alloc, alloc + size);
        self.unprotect_idle(page_down(alloc), page_up(alloc + size));
        self.to_free.push(alloc);
    }

    /// True if a piece's bytes live in `[a, b)` or an output in flight reads
    /// an original there: that memory must not be reused yet. (An original
    /// can reach beyond an allocation; dependents on its other parts do not
    /// hold this one.)
    fn bytes_needed(&self, a: usize, b: usize) -> bool {
        self.t.origs_in(a, b).into_iter().any(|id| {
            let o = self.t.orig(id);
            o.pins > 0
                || o.deps.iter().any(|k| {
                    let p = self.t.piece(*k).unwrap();
                    overlaps(p.src, p.src + p.len, a, b)
                })
        })
    }

    /// Over budget: the oldest quarantined allocations give up their
    /// dependents (backed up, or materialized) and are freed.
    fn enforce_quarantine(&mut self) {
        while self.counters.quarantined_bytes > self.cfg.quarantine as u64 {
            let Some((&alloc, &(size, _))) = self.quarantine.iter().min_by_key(|(_, v)| v.1) else {
                break;
            };
            if self.release_src(alloc, alloc + size, Cause::Gc).is_err() {
                break; // pinned: try again at the next collection
            }
            self.try_release_quarantine(alloc);
            if self.quarantine.contains_key(&alloc) {
                break; // no progress: try again at the next collection
            }
        }
    }

    /// The program is about to unmap (`munmap`), move (`mremap`) or discard
    /// (`madvise`) `[a, a+len)`. `keep_data`: the bytes must survive (mremap),
    /// so pieces there are materialized rather than dropped.
    pub fn discard(
        &mut self,
        a: usize,
        len: usize,
        keep_data: bool,
        unmapping: bool,
    ) -> Result<(), Busy> {
        // Missing pages need nothing more: unmapped, discarded, or moved to
        // memory zio never registered (where they read as zeros, as freed
        // memory may).
        if !self.unfilled.is_empty() {
            self.unfilled.remove(page_down(a), page_up(a + len));
        }
        if self.t.is_empty() && self.wp.is_empty() {
            if unmapping {
                self.mem.forget(a, len);
            }
            return Ok(());
        }
        let b = a + len;
        self.release_src(a, b, Cause::Write)?;
        if keep_data {
            self.materialize_range(a, b, Cause::Other);
        } else {
            // The kernel discards whole pages only; partial ones keep data.
            // (No zero pages: the kernel is about to unmap or discard them.)
            self.drop_pieces(a, b);
        }
        self.t.trim_originals(a, b);
        if unmapping {
            self.wp.remove(page_down(a), page_up(b));
            self.mem.forget(a, len);
        }
        self.sync_counts();
        Ok(())
    }

    /// After the program discarded `[a, a+len)` (`MADV_DONTNEED`): pages of
    /// it that zio registered are missing now; map zero pages there (what
    /// the kernel would give) so their next use is an ordinary fault, not a
    /// userfaultfd round trip. Pages holding pieces (elided since, by
    /// another thread) are left alone.
    pub fn fill_discarded(&mut self, a: usize, len: usize) {
        let (c0, c1) = core(a, len);
        let mut holes = RangeSet::new();
        holes.insert(c0, c1);
        for k in self.t.pieces_in(c0, c1) {
            let p = *self.t.piece(k).unwrap();
            holes.remove(page_down(k), page_up(k + p.len));
        }
        for (s, e) in holes.iter().collect::<Vec<_>>() {
            self.mem.zero_range(s, e - s);
        }
    }

    /// Before `fork`: the child inherits no userfaultfd state, so every
    /// unmapped page is materialized and every protection dropped. The engine
    /// is empty afterwards (quarantined allocations are handed back to free).
    pub fn prepare_fork(&mut self) {
        // Materializing a page can split a neighbouring piece under a new
        // key, so take the first remaining piece each time.
        loop {
            let first = self.t.pieces().next().map(|(k, p)| (k, p.len));
            let Some((k, len)) = first else { break };
            self.materialize_range(k, k + len, Cause::Fork);
        }
        let ranges: Vec<(usize, usize)> = self.wp.iter().collect();
        for (s, e) in ranges {
            self.mem.protect(s, e - s, false);
        }
        self.wp.clear();
        let allocs: Vec<usize> = self.quarantine.keys().copied().collect();
        for alloc in allocs {
            self.try_release_quarantine(alloc);
        }
        for id in self.t.orig_ids() {
            let o = self.t.orig(id);
            let (s, e) = (o.start, o.end());
            if o.pins == 0 {
                self.t.trim_originals(s, e);
            }
        }
        self.sync_counts();
    }

    /// A missing fault at `addr` (the program or the kernel touched an
    /// unmapped page): rebuild it, or give it zeros if no piece covers it.
    pub fn on_missing_fault(&mut self, addr: usize) {
        let page = page_down(addr);
        if !self.t.has_pieces_in(page, page + PAGE) {
            self.zero_fault(page);
            return;
        }
        // Fault-around, grown like readahead: a fault right after the pages
        // the last one rebuilt is a program reading on, so the next run is
        // four times longer (1, 4, 16, 64 pages: a fault costs 12 us here
        // with one page and 26 us with 16). A fault anywhere else rebuilds its
        // page alone: a program touching a header here and there pays no
        // more than that, and the policy is charged no more either.
        // (A run whose last page was elided again since is over.)
        let stream = self
            .streams
            .iter()
            .position(|&(next, _)| next == page)
            .filter(|_| !self.t.has_pieces_in(page - PAGE, page));
        let window = stream.map_or(1, |i| (self.streams[i].1 * 4).min(FAULT_AROUND));
        let n = self.materialize_run(page, window, Cause::Fault);
        let i = stream.unwrap_or_else(|| {
            self.next_stream = (self.next_stream + 1) % FAULT_STREAMS;
            self.next_stream
        });
        self.streams[i] = (page + n * PAGE, window);
        self.counters.faults_missing += 1;
        self.sync_counts();
    }

    /// A missing fault on a page without pieces: memory whose content is
    /// zeros, as the kernel would give.
    ///
    /// Not a page a free left missing (`unfilled`): the allocator discarded
    /// memory zio had registered, behind zio's back (glibc trims its arenas
    /// with an internal `MADV_DONTNEED`), and every first touch of it would
    /// be a round trip to zio from now on. zio needs nothing there, so the
    /// stretch around the page that holds none of its records is handed
    /// back to the kernel (unregistered); eliding there again registers it
    /// again. Echo 200K x 3 with malloc'd buffers on two threads took 15
    /// such faults per message, one page each, and ran at half the speed
    /// of running without zio.
    ///
    /// Otherwise, or if that fails, the page gets a zero page, and so do
    /// the pages after it up to the first one that is present or holds a
    /// piece (at most `ZERO_AROUND`): a program reusing memory writes on.
    fn zero_fault(&mut self, page: usize) {
        self.counters.faults_zero += 1;
        if !self.unfilled.covers(page, page + PAGE) {
            let (a, b) = self.unneeded_around(page);
            if self.mem.release(page, a, b) {
                self.counters.ranges_released += 1;
                self.sync_counts();
                return;
            }
        }
        let mut end = page + ZERO_AROUND * PAGE;
        if let Some(&k) = self.t.pieces_in(page, end).first() {
            end = end.min(page_down(k));
        }
        self.mem.zero_run(page, end - page);
        if !self.unfilled.is_empty() {
            self.unfilled.remove(page, end);
        }
        self.sync_counts();
    }

    /// The stretch around `page` (at most `ZERO_AROUND` pages either side)
    /// whose pages hold no piece, no original's bytes, no protection and
    /// no page left unfilled.
    fn unneeded_around(&self, page: usize) -> (usize, usize) {
        let (lo, hi) = (
            page.saturating_sub(ZERO_AROUND * PAGE),
            page + (ZERO_AROUND + 1) * PAGE,
        );
        let mut free = RangeSet::new();
        free.insert(lo, hi);
        for k in self.t.pieces_in(lo, hi) {
            let p = self.t.piece(k).unwrap();
            free.remove(page_down(k), page_up(k + p.len));
        }
        for id in self.t.origs_in(lo, hi) {
            let o = self.t.orig(id);
            free.remove(page_down(o.start), page_up(o.end()));
        }
        for (s, e) in self
            .wp
            .clipped(lo, hi)
            .into_iter()
            .chain(self.unfilled.clipped(lo, hi))
        {
            free.remove(s, e);
        }
        let around = free.iter().find(|&(s, e)| s <= page && page < e);
        around.unwrap_or((page, page + PAGE))
    }

    /// A write-protect fault at `addr` (a write to an original): materialize
    /// its dependents, then unprotect (which wakes the writer). Returns
    /// `Busy` if the original is pinned: the writer stays blocked until
    /// [`Engine::unpin`] lets it go.
    pub fn on_wp_fault(&mut self, addr: usize) -> Result<(), Busy> {
        let page = page_down(addr);
        self.counters.faults_wp += 1;
        let r = self.release_src(page, page + PAGE, Cause::Write);
        match r {
            Ok(()) => {
                // Wake the writer even if the page was already unprotected.
                self.mem.protect(page, PAGE, false);
            }
            Err(Busy) => self.deferred_wp.push(page),
        }
        self.sync_counts();
        r
    }

    /// Periodic collection: materialize the least recently copied pieces
    /// beyond the record bound, forget the oldest idle originals beyond it,
    /// and enforce the quarantine budget.
    pub fn collect(&mut self) {
        let max = self.cfg.max_records;
        // Oldest first; a piece split by an earlier materialization keeps its
        // stamp under a new key, hence the outer loop (each pass removes at
        // least one piece, so it ends).
        while self.t.piece_count() > max {
            let mut by_age: Vec<(u64, usize)> =
                self.t.pieces().map(|(k, p)| (p.stamp, k)).collect();
            by_age.sort_unstable();
            let excess = self.t.piece_count() - max;
            for &(_, k) in by_age.iter().take(excess) {
                if let Some(p) = self.t.piece(k).copied() {
                    self.materialize_range(k, k + p.len, Cause::Gc);
                }
            }
        }
        if self.t.orig_count() > max {
            let mut idle: Vec<(u64, usize, usize)> = self
                .t
                .orig_ids()
                .into_iter()
                .map(|id| self.t.orig(id))
                .filter(|o| !o.busy() && o.quarantined.is_none())
                .map(|o| (o.stamp, o.start, o.end()))
                .collect();
            idle.sort_unstable();
            let excess = self.t.orig_count() - max;
            for &(_, s, e) in idle.iter().take(excess) {
                self.t.trim_originals(s, e);
                self.unprotect_idle(page_down(s), page_up(e));
            }
        }
        self.enforce_quarantine();
        if self.t.is_empty() && !self.unfilled.is_empty() {
            // Nothing left to elide: zero pages now, so that the hooks can
            // stop consulting the engine (it reports idle only without any).
            let runs: Vec<(usize, usize)> = self.unfilled.iter().collect();
            for (s, e) in runs {
                self.mem.zero_range(s, e - s);
            }
            self.unfilled.clear();
        }
        self.sync_counts();
    }

    /// Checks internal invariants (tests).
    pub fn check(&self) {
        self.t.check();
        // Pages left unfilled hold no piece and no original's bytes.
        for (s, e) in self.unfilled.iter() {
            assert!(
                !self.t.has_pieces_in(s, e),
                "unfilled {s:#x}..{e:#x} has pieces"
            );
            assert!(
                self.t.origs_in(s, e).is_empty(),
                "unfilled {s:#x}..{e:#x} has originals"
            );
        }
        // Every piece's source bytes are write-protected (or a backup).
        for (k, p) in self.t.pieces() {
            if self.t.orig(p.orig).backup {
                continue;
            }
            assert!(
                self.wp.covers(page_down(p.src), page_up(p.src + p.len)),
                "source of piece {k:#x} is not protected"
            );
        }
    }
}

/// A source segment: `[start, end)` and where its bytes are.
type Seg = (usize, usize, Src);

/// Segments of a range, on the stack when few.
type Segs = SmallVec<[Seg; 8]>;

/// Address ranges, on the stack when few.
type Runs = SmallVec<[(usize, usize); 4]>;

/// Appends a segment, merging it with the previous one when both are the
/// same kind of memory and contiguous (for pieces: in the same original).
fn push_seg(out: &mut Segs, lo: usize, hi: usize, s: Src) {
    if lo >= hi {
        return;
    }
    if let Some(last) = out.last_mut() {
        let contiguous = match (last.2, s) {
            (Src::Piece { addr: x, orig: o1 }, Src::Piece { addr: y, orig: o2 }) => {
                o1 == o2 && x + (last.1 - last.0) == y
            }
            (l, r) => l == r,
        };
        if contiguous && last.1 == lo {
            last.1 = hi;
            return;
        }
    }
    out.push((lo, hi, s));
}

/// The parts of `[a, b)` not in `set`.
fn gaps(set: &RangeSet, a: usize, b: usize) -> Runs {
    let mut v = Runs::new();
    let mut pos = a;
    for (s, e) in set.clipped(a, b) {
        if s > pos {
            v.push((pos, s));
        }
        pos = e;
    }
    if pos < b {
        v.push((pos, b));
    }
    v
}
