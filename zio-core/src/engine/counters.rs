//! What the engine did: the counters the stats summary prints, the causes
//! of materialization, and which of the engine's paths ran.

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
    /// Bytes of freed elided copies given zero pages for another use (an
    /// input, a real copy, a touch): charged to the policy of the copies
    /// that left them.
    pub bytes_refilled: u64,
    /// Live pieces (intermediate records).
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
    /// Inputs left unrecorded while no copy of IO data was elided; kept by
    /// the hooks, filled in when the counters are read.
    pub inputs_unrecorded: u64,
    /// Elision refused by memory kind (shared, file-backed, registration).
    pub refused: u64,
    /// Ranges registered with userfaultfd (each may add VMAs); kept by the
    /// memory backend, filled in when the counters are read.
    pub registrations: u64,
    /// userfaultfd ioctls the engine made (register, protect, copy, zero
    /// pages, wake); kept by the memory backend, as `registrations`.
    pub syscalls_uffd: u64,
    /// `madvise` calls the engine made to leave pages missing; kept by the
    /// memory backend.
    pub syscalls_madvise: u64,
    /// `PROCMAP_QUERY` ioctls made to classify memory before registering
    /// it; filled in when the counters are read.
    pub syscalls_maps: u64,
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
    /// Bytes IO stacks lent zio as originals (the bridge's register).
    pub bytes_lent: u64,
    /// Releases by IO stacks that ended lent records.
    pub lent_released: u64,
    /// Bytes IO stacks were told to gather from originals (the bridge's
    /// resolve), where the program's buffer held elided copies.
    pub bytes_resolved: u64,
    /// Nanoseconds the program's threads spent in the engine, waiting for
    /// its lock included: what zio's decisions cost the program itself.
    /// Kept by the memory backend, filled in when the counters are read;
    /// an estimate from a random sample of the calls (about one in 8).
    pub program_ns: u64,
    /// The same for zio's own threads (fault handler, collector).
    pub background_ns: u64,
    /// Of `program_ns`, the time the program's threads waited for the
    /// engine's lock (the same sample): what one engine for all threads
    /// costs them.
    pub lock_wait_ns: u64,
    /// Times the program's threads entered the engine (took its lock):
    /// hooks the cover let through without it are not among them.
    pub program_calls: u64,
}

/// How often each of the engine's special paths ran: the steady states and
/// the mechanisms that the [`Counters`] do not single out. Tests use them
/// to prove that what they exercise is the path they mean (a sequence of
/// operations that never reaches a path proves nothing about it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Paths {
    /// Copies into a reused destination that only repointed its piece.
    pub repoints: u64,
    /// Inputs into a reused buffer that only repointed its piece.
    pub steady_redirects: u64,
    /// Parts of a message that continued the zio memory of its start.
    pub continued_inputs: u64,
    /// Partial last pages of a redirected input moved into zio's memory.
    pub tails_moved: u64,
    /// Originals backed up before a change, for all their dependents.
    pub backups: u64,
    /// Missing faults that rebuilt more than their own page.
    pub fault_arounds: u64,
    /// Missing faults that filled the whole piece, its round trips spent.
    pub budget_fills: u64,
    /// Plain source bytes proved to be an original's ([`super::Engine`]'s
    /// fringe hints) and elided as its bytes.
    pub fringe_hits: u64,
    /// Copies with overlapping source and destination (`memmove`).
    pub overlapping_copies: u64,
    /// Redirected inputs released with no copy elided from them.
    pub unused_redirects: u64,
    /// Copies too small to elide, of one original's bytes into untracked
    /// pages, left to the caller with a fringe hint and nothing else.
    pub plain_copies: u64,
    /// Reallocs of IO data left to the allocator's move (its originals
    /// released and recorded again where it landed).
    pub moved_reallocs: u64,
}
