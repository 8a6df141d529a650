//! The algorithm: decides *what* zio does with every input, copy, output,
//! free, unmap, fork and fault. It keeps the records and touches memory
//! only through [`Mem`], so the same code runs against the real address
//! space (userfaultfd, in `crate::elide`) and against the simulated one of
//! the model tests.
//!
//! One file per mechanism, each an `impl Engine` block over the state it
//! names:
//!
//! | entry point | file | mechanism |
//! |---|---|---|
//! | [`Engine::copy`] | `copy.rs` | copy elision: the steady-state repoint, the page runs elided, the plan of real copies |
//! | [`Engine::input_prepare`], [`Engine::input_done`] | `input.rs` | input recorded as an original |
//! | [`Engine::input_target`], [`Engine::input_redirected`] | `redirect.rs` | input into a reused buffer landed in zio's memory |
//! | [`Engine::output`], [`Engine::output_done`] | `output.rs` | gather lists that send originals' bytes |
//! | [`Engine::lend`], [`Engine::release_lent`], [`Engine::resolve_for_stack`] | `lent.rs` | memory IO stacks lend zio (the bridge contract) |
//! | [`Engine::unpin`] | `originals.rs` | originals: protection, backups, pins, release before a change |
//! | [`Engine::free`] | `free.rs` | free and the quarantine of originals |
//! | [`Engine::discard`], [`Engine::fill_discarded`], [`Engine::prepare_fork`] | `mapping.rs` | unmap, mremap, madvise, fork |
//! | [`Engine::on_missing_fault`], [`Engine::on_wp_fault`] | `fault.rs` | faults, fault-around |
//! | [`Engine::collect`] | `gc.rs` | garbage collection |
//! | | `materialize.rs` | rebuilding unmapped pages from their pieces |
//! | | `unfilled.rs` | pages left missing without pieces (dropped, freed) |
//! | | `resolve.rs` | where the bytes of a source range are |
//! | | `policy.rs` | whether eliding at a site into a buffer still pays |
//!
//! Locking contract (kept by the caller, `crate::elide`): the engine runs
//! under one lock and never touches program memory itself except to read
//! originals (always present) when rebuilding a page, and to write the
//! partial pages of a redirected input ([`Engine::input_redirected`]), which
//! it has just made present and unprotected, so that the write cannot fault
//! into the handler. Copies the program asked for are returned as a
//! [`CopyPlan`] and executed by the caller after the lock is released, so a
//! fault they raise can always be served by the handler thread.

mod copy;
mod counters;
mod fault;
mod free;
mod fringe;
mod gc;
mod input;
mod lent;
mod mapping;
mod materialize;
mod mem;
mod originals;
mod output;
mod policy;
mod redirect;
mod resolve;
mod unfilled;

use smallvec::SmallVec;

pub use copy::{CopyFrom, CopyPlan, RealCopies, PLAN_FILLS};
pub use counters::{Cause, Counters, Paths};
pub use free::{FreeAction, IoRanges};
pub use mem::Mem;
pub use output::Gather;
pub use redirect::Redirect;

use crate::config::{Opt, OPTIONS};
use crate::cover::{self, Shape};
use crate::ranges::{page_down, page_up, RangeSet};
use crate::tracker::Tracker;

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
    /// Pages of an elided copy per fault round trip it may take before its
    /// next fault fills all of it (the regret bound in docs/design.md).
    pub pages_per_trip: usize,
}

/// Pages of an elided copy per fault round trip it is given
/// ([`Cfg::pages_per_trip`]; the choice and its bound: docs/design.md,
/// "The regret bound").
pub const PAGES_PER_TRIP: usize = 64;

impl Cfg {
    /// The tunables from the options' parsed values, as `get` reads them
    /// ([`crate::config::get`] for the process's settings).
    pub fn from_options(get: impl Fn(Opt) -> u64) -> Cfg {
        Cfg {
            threshold: get(Opt::Threshold) as usize,
            fault_ratio: f64::from_bits(get(Opt::FaultRatio)),
            max_records: get(Opt::MaxRecords) as usize,
            quarantine: get(Opt::Quarantine) as usize,
            redirect_input: get(Opt::RedirectInput) != 0,
            pages_per_trip: PAGES_PER_TRIP,
        }
    }
}

impl Default for Cfg {
    /// The options table's defaults.
    fn default() -> Cfg {
        Cfg::from_options(|o| OPTIONS[o as usize].default)
    }
}

/// The caller must release the lock, let other threads run, and retry: an
/// original it needs to change is pinned by an output in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Busy;

/// Address ranges, on the stack when few.
type Runs = SmallVec<[(usize, usize); 4]>;

/// The engine: records plus the memory they describe. Its state comes in
/// named parts; each mechanism's file says which it touches.
pub struct Engine<M: Mem> {
    /// The memory backend.
    pub mem: M,
    /// Tunables.
    pub cfg: Cfg,
    /// What it did.
    pub counters: Counters,
    /// Which of its paths ran.
    pub paths: Paths,
    /// The records: pieces and originals.
    t: Tracker,
    /// Write protection of originals' pages (`originals.rs`).
    prot: originals::Protection,
    /// Freed allocations kept for their dependents (`free.rs`).
    quarantine: free::Quarantine,
    /// Pages left missing without pieces (`unfilled.rs`).
    unfilled: unfilled::Unfilled,
    /// Recent input buffers, remembered past their free (`redirect.rs`).
    inputs: redirect::InputBuffers,
    /// Recent fault runs, for fault-around (`fault.rs`).
    streams: fault::Streams,
    /// Recent real copies of tracked bytes (`fringe.rs`).
    fringes: fringe::Fringes,
    /// Per call site and buffer: what elision there costs (`policy.rs`).
    policy: policy::Policy,
    /// The engine's clock: one tick per record made (for LRU collection).
    clock: u64,
    /// Bounce buffer for rebuilding pages from scattered pieces, kept
    /// between calls (a fresh one of that size is a mapping of its own).
    scratch: Vec<u8>,
}

impl<M: Mem> Engine<M> {
    /// An engine with nothing tracked.
    pub fn new(mem: M, cfg: Cfg) -> Engine<M> {
        Engine {
            mem,
            cfg,
            counters: Counters::default(),
            paths: Paths::default(),
            t: Tracker::new(),
            prot: originals::Protection::default(),
            quarantine: free::Quarantine::default(),
            unfilled: unfilled::Unfilled::default(),
            inputs: redirect::InputBuffers::default(),
            streams: fault::Streams::default(),
            fringes: fringe::Fringes::default(),
            policy: policy::Policy::new(),
            clock: 0,
            scratch: Vec::new(),
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

    /// What is tracked, as [`crate::cover`] publishes it for the hooks:
    /// every original's and piece's bytes, every protected and unfilled
    /// page; more than the cover holds makes it cover everything, found
    /// from the counts alone.
    pub fn shape(&self) -> Shape {
        if self.t.piece_count() + self.t.orig_count() > cover::CAP
            || self.prot.wp.len() + self.unfilled.runs() > cover::CAP
        {
            return Shape::everything();
        }
        let mut s = Shape::default();
        for (k, p) in self.t.pieces() {
            s.bytes.add(k, k + p.len);
        }
        for (a, b) in self.t.orig_ranges() {
            s.bytes.add(a, b);
        }
        for (a, b) in self.prot.wp.iter().chain(self.unfilled.iter()) {
            s.pages.add(a, b);
        }
        s
    }

    /// How many pieces, originals, protected runs and unfilled runs the
    /// engine tracks, and the pieces' bytes: a call that changes none of
    /// them most likely left [`Engine::shape`] as it was.
    pub fn shape_counts(&self) -> [usize; 5] {
        [
            self.t.piece_count(),
            self.t.orig_count(),
            self.prot.wp.len(),
            self.unfilled.runs(),
            self.t.piece_bytes(),
        ]
    }

    /// Everything the engine tracks and has counted, as text: two calls
    /// with equal digests between them changed nothing (the model checks
    /// the calls the cover leaves clear with it).
    #[cfg(test)]
    pub(crate) fn digest(&self) -> String {
        format!(
            "{:?} {:?} {:?} {:?} {:?} {:?} {:?}",
            self.t.pieces().collect::<Vec<_>>(),
            self.t.orig_ranges().collect::<Vec<_>>(),
            self.prot.wp.iter().collect::<Vec<_>>(),
            self.unfilled.iter().collect::<Vec<_>>(),
            self.quarantine,
            self.counters,
            self.paths,
        )
    }

    /// zio's own resources ran out ([`crate::resources`]): nothing new is
    /// recorded, elided or redirected from now on; what is elided stays
    /// served until it is filled, released or collected.
    pub fn stop_eliding(&mut self) {
        self.cfg.threshold = usize::MAX;
        self.cfg.redirect_input = false;
    }

    /// Takes the allocations that must now be freed for real.
    pub fn take_to_free(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.quarantine.to_free)
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

    /// Adds to `set` the pages holding pieces that share a byte with
    /// `[a, b)`.
    fn add_piece_pages(&self, set: &mut RangeSet, a: usize, b: usize) {
        for (k, p) in self.t.pieces_over(a, b) {
            set.insert_pages(k, k + p.len);
        }
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
                !self.t.has_origs_in(s, e),
                "unfilled {s:#x}..{e:#x} has originals"
            );
        }
        // Every piece's source bytes are write-protected (or a backup, or
        // lent by an IO stack).
        for (k, p) in self.t.pieces() {
            if self.t.orig(p.orig).unguarded() {
                continue;
            }
            assert!(
                self.prot
                    .wp
                    .covers(page_down(p.src), page_up(p.src + p.len)),
                "source of piece {k:#x} is not protected"
            );
        }
    }
}
