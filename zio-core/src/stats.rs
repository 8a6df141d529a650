//! Counters for every hook, kept per thread and summed on read.
//!
//! Each thread claims a [`Slot`] from a static array the first time it is
//! counted and then owns it alone, so an increment is a plain load and store
//! to a cache line no other thread writes: no lock prefix, no contention.
//! When the thread exits (a pthread key destructor) its counts are folded into
//! a retired slot and the slot is freed for the next thread. Threads beyond
//! [`MAX_SLOTS`], calls made before start-up and calls made after a thread's
//! exit handling share one slot updated with atomic adds.
//!
//! The slots live in one static block, which the counters file replaces
//! in place when the process publishes ([`crate::statfile`]): that is what
//! `zio-stat` reads.
//!
//! [`count_fast`] is the whole hot path: one TLS load, a null test and two
//! plain increments. Everything else is out of line, so the copy hooks need
//! no stack frame.

use core::fmt::Write as _;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::log::Line;
use crate::statfile::block;
use crate::thread;

macro_rules! hooks {
    ($($variant:ident = $name:literal,)*) => {
        /// Every exported hook, in the order of `libzio/hooked-symbols.txt`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u8)]
        #[allow(missing_docs)]
        pub enum Hook { $($variant,)* }

        /// The exported symbol name of each [`Hook`].
        pub const HOOK_NAMES: &[&str] = &[$($name,)*];

        /// Every hook, in order.
        pub const ALL_HOOKS: &[Hook] = &[$(Hook::$variant,)*];
    };
}

hooks! {
    Memcpy = "memcpy",
    Memmove = "memmove",
    Mempcpy = "mempcpy",
    MemcpyChk = "__memcpy_chk",
    MemmoveChk = "__memmove_chk",
    MempcpyChk = "__mempcpy_chk",
    Read = "read",
    ReadChk = "__read_chk",
    Pread = "pread",
    Pread64 = "pread64",
    PreadChk = "__pread_chk",
    Pread64Chk = "__pread64_chk",
    Readv = "readv",
    Preadv = "preadv",
    Preadv2 = "preadv2",
    Recv = "recv",
    RecvChk = "__recv_chk",
    Recvfrom = "recvfrom",
    RecvfromChk = "__recvfrom_chk",
    Recvmsg = "recvmsg",
    Recvmmsg = "recvmmsg",
    Write = "write",
    Pwrite = "pwrite",
    Pwrite64 = "pwrite64",
    Writev = "writev",
    Pwritev = "pwritev",
    Pwritev2 = "pwritev2",
    Send = "send",
    Sendto = "sendto",
    Sendmsg = "sendmsg",
    Sendmmsg = "sendmmsg",
    Free = "free",
    Realloc = "realloc",
    Munmap = "munmap",
    Mremap = "mremap",
    Madvise = "madvise",
    Mprotect = "mprotect",
    Fork = "fork",
    Clone = "clone",
    Syscall = "syscall",
    Sigaction = "sigaction",
    Signal = "signal",
}

/// Number of hooks.
pub const NHOOKS: usize = HOOK_NAMES.len();

/// Threads that get a private slot; later threads share one.
pub const MAX_SLOTS: usize = 256;

/// One thread's counters (or the shared or retired totals). `repr(C)`:
/// readers of the counters file find the arrays at fixed offsets.
#[repr(C, align(64))]
pub struct Slot {
    owned: AtomicBool,
    calls: [AtomicU64; NHOOKS],
    bytes: [AtomicU64; NHOOKS],
}

impl Slot {
    /// Where the call counts are in a slot.
    pub(crate) const CALLS_OFFSET: usize = core::mem::offset_of!(Slot, calls);
    /// Where the byte counts are in a slot.
    pub(crate) const BYTES_OFFSET: usize = core::mem::offset_of!(Slot, bytes);

    /// A free slot, every counter 0.
    pub(crate) const fn new() -> Slot {
        Slot {
            owned: AtomicBool::new(false),
            calls: [const { AtomicU64::new(0) }; NHOOKS],
            bytes: [const { AtomicU64::new(0) }; NHOOKS],
        }
    }

    /// Single writer: a load and a store, no read-modify-write instruction.
    /// Readers on other threads see a recent value.
    #[inline(always)]
    fn add_private(&self, hook: Hook, bytes: u64) {
        let i = hook as usize;
        bump(&self.calls[i], 1);
        bump(&self.bytes[i], bytes);
    }

    /// Several writers: atomic adds.
    fn add_shared(&self, hook: Hook, bytes: u64) {
        let i = hook as usize;
        self.calls[i].fetch_add(1, Ordering::Relaxed);
        self.bytes[i].fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts a call (tests of the counters file).
    #[cfg(test)]
    pub(crate) fn test_add(&self, hook: Hook, bytes: u64) {
        self.add_shared(hook, bytes);
    }

    fn zero(&self) {
        for c in self.calls.iter().chain(self.bytes.iter()) {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// As [`Slot::zero`], writing only counters that are not zero: in a
    /// forked child every page written is a copy-on-write fault.
    fn zero_if_set(&self) {
        for c in self.calls.iter().chain(self.bytes.iter()) {
            if c.load(Ordering::Relaxed) != 0 {
                c.store(0, Ordering::Relaxed);
            }
        }
    }
}

#[inline(always)]
fn bump(c: &AtomicU64, by: u64) {
    c.store(
        c.load(Ordering::Relaxed).wrapping_add(by),
        Ordering::Relaxed,
    );
}

/// One past the highest slot ever claimed: the slots after it were never
/// touched (their pages not even mapped).
static CLAIMED_END: AtomicUsize = AtomicUsize::new(0);

/// The pthread key whose destructor retires a thread's slot; `u32::MAX` until
/// [`init`] has created it.
static EXIT_KEY: AtomicU32 = AtomicU32::new(u32::MAX);

/// Creates the thread-exit key. Called once at start-up.
pub fn init() {
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a valid out-pointer; `retire` matches the destructor
    // signature pthread expects.
    if unsafe { libc::pthread_key_create(&mut key, Some(retire)) } == 0 {
        EXIT_KEY.store(key, Ordering::Release);
    }
}

/// Counts one call if this thread already has its private slot; returns
/// false (counting nothing) otherwise, and the caller must use [`count`].
/// Calls made while zio's own code runs on this thread are zio's, not the
/// program's, and are not counted.
#[inline(always)]
pub fn count_fast(hook: Hook, bytes: u64) -> bool {
    thread::with(|t| {
        let slot = t.slot.get();
        if slot.is_null() {
            return false;
        }
        if t.inside.get() {
            return true;
        }
        // SAFETY: non-null slot pointers point into the block's slots (one
        // static, at one address with or without a file mapped over it),
        // and this thread owns the slot until `retire` clears the pointer.
        unsafe { &*slot }.add_private(hook, bytes);
        true
    })
}

/// Counts one call of `hook` that moved `bytes` bytes.
#[inline]
pub fn count(hook: Hook, bytes: u64) {
    if !count_fast(hook, bytes) {
        count_slow(hook, bytes);
    }
}

#[cold]
#[inline(never)]
fn count_slow(hook: Hook, bytes: u64) {
    if thread::inside() {
        return;
    }
    match thread::with(claim) {
        Some(slot) => slot.add_private(hook, bytes),
        None => block().shared.add_shared(hook, bytes),
    }
}

/// Gives the thread a private slot, or `None` if it must use the shared one.
fn claim(t: &thread::ThreadState) -> Option<&'static Slot> {
    if t.overflow.get() {
        return None;
    }
    let key = EXIT_KEY.load(Ordering::Acquire);
    if key == u32::MAX {
        // Before start-up: count in the shared slot and try again next call.
        return None;
    }
    let slots = &block().slots;
    if let Some(i) = crate::claim::first_free(slots.iter().map(|s| &s.owned)) {
        let s = &slots[i];
        CLAIMED_END.fetch_max(i + 1, Ordering::Relaxed);
        // SAFETY: key was created by `init`; the value is only read back
        // by `retire`. For keys below PTHREAD_KEY_2NDLEVEL_SIZE glibc
        // stores it in the thread descriptor without allocating.
        unsafe { libc::pthread_setspecific(key, (s as *const Slot).cast()) };
        t.slot.set(s);
        return Some(s);
    }
    t.overflow.set(true);
    None
}

/// pthread key destructor: folds the exiting thread's counts into the
/// retired slot.
extern "C" fn retire(p: *mut libc::c_void) {
    // SAFETY: the only values stored under the key are pointers to the
    // block's slots.
    let s = unsafe { &*(p as *const Slot) };
    // Calls made later in this thread's exit (other destructors freeing
    // memory) go to the shared slot, never back into a freed slot.
    thread::with(|t| {
        t.slot.set(ptr::null());
        t.overflow.set(true);
    });
    for i in 0..NHOOKS {
        let r = &block().retired;
        r.calls[i].fetch_add(s.calls[i].load(Ordering::Relaxed), Ordering::Relaxed);
        r.bytes[i].fetch_add(s.bytes[i].load(Ordering::Relaxed), Ordering::Relaxed);
    }
    s.zero();
    crate::claim::give_back(&s.owned);
}

/// In a child after `fork`: only the calling thread survives. Its counts and
/// everybody else's belong to the parent, so start from zero and free the
/// slots of threads that no longer exist.
///
/// With a counters file the block is the parent's shared memory: zero
/// pages take its place ([`crate::statfile::after_fork`]) and the thread's
/// slot is marked its own again. Without one the child zeroes its copy of
/// the block: a slot not owned is zero already (`retire` zeroes it before
/// letting it go), and only counters that are not zero are written, so a
/// child that exits at once pays for the pages its counters really are
/// on, not for all of them.
pub fn reset_after_fork() {
    let mine = thread::with(|t| t.slot.get());
    match crate::statfile::after_fork() {
        Some(true) => {
            if !mine.is_null() {
                // SAFETY: `mine` points into the block (see count_fast),
                // whose pages are now the child's, all zero.
                unsafe { &*mine }.owned.store(true, Ordering::Relaxed);
            }
            return;
        }
        // The parent's file is still mapped: writing zeros would erase
        // the parent's counts.
        Some(false) => return,
        None => {}
    }
    let old = block();
    for s in &old.slots[..CLAIMED_END.load(Ordering::Relaxed)] {
        if !s.owned.load(Ordering::Relaxed) {
            continue;
        }
        s.zero_if_set();
        if !ptr::eq(s, mine) {
            s.owned.store(false, Ordering::Relaxed);
        }
    }
    old.shared.zero_if_set();
    old.retired.zero_if_set();
}

/// One past the highest private slot ever claimed in this process.
pub(crate) fn claimed_end() -> usize {
    CLAIMED_END.load(Ordering::Relaxed)
}

/// Totals of every counter at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Calls per hook, indexed by `Hook as usize`.
    pub calls: [u64; NHOOKS],
    /// Bytes per hook.
    pub bytes: [u64; NHOOKS],
}

impl Snapshot {
    /// Calls of one hook.
    pub fn calls(&self, h: Hook) -> u64 {
        self.calls[h as usize]
    }
    /// Bytes of one hook.
    pub fn bytes(&self, h: Hook) -> u64 {
        self.bytes[h as usize]
    }
}

/// Sums every slot. Values from threads running concurrently are recent, not
/// exact; a thread that is exiting at that moment may be counted twice or not
/// at all for that one read.
pub fn snapshot() -> Snapshot {
    let mut snap = Snapshot {
        calls: [0; NHOOKS],
        bytes: [0; NHOOKS],
    };
    let b = block();
    let claimed = &b.slots[..CLAIMED_END.load(Ordering::Relaxed)];
    for s in claimed.iter().chain([&b.shared, &b.retired]) {
        for i in 0..NHOOKS {
            snap.calls[i] += s.calls[i].load(Ordering::Relaxed);
            snap.bytes[i] += s.bytes[i].load(Ordering::Relaxed);
        }
    }
    snap
}

/// Writes the human-readable summary, one `write(2)` per line, to the log
/// destination. `header` is the first line's text after the pid.
pub fn write_summary(snap: &Snapshot, header: &str) {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    summary_lines(pid, snap, header, &mut |l| {
        crate::log::write_raw(l.as_bytes())
    });
}

/// The lines [`write_summary`] writes for process `pid`, each handed to
/// `out` with its newline: the header, the hook table's title and a row
/// per hook that was called. Formatting only, so that the parser
/// ([`crate::summary`]) is tested against exactly what is printed.
pub fn summary_lines(pid: i32, snap: &Snapshot, header: &str, out: &mut dyn FnMut(&str)) {
    let mut line = Line::new();
    let _ = writeln!(line, "zio[{pid}] stats: {header}");
    out(line.as_str());
    let mut line = Line::new();
    let _ = writeln!(
        line,
        "zio[{pid}]   {:<16} {:>14} {:>18}",
        "hook", "calls", "bytes"
    );
    out(line.as_str());
    for (i, name) in HOOK_NAMES.iter().enumerate() {
        if snap.calls[i] == 0 {
            continue;
        }
        let mut line = Line::new();
        let _ = write!(
            line,
            "zio[{pid}]   {name:<16} {:>14} {:>18}",
            snap.calls[i], snap.bytes[i]
        );
        if snap.bytes[i] >= 1 << 20 {
            let _ = write!(
                line,
                "  ({:.1} MiB)",
                snap.bytes[i] as f64 / (1 << 20) as f64
            );
        }
        let _ = line.write_char('\n');
        out(line.as_str());
    }
}

/// Reads one engine counter out of a [`Counters`](crate::engine::Counters).
pub type CounterFn = fn(&crate::engine::Counters) -> u64;

/// The engine's counters by name, in summary order. The one list that both
/// the stats summary ([`write_engine_summary`]) and the live lookup
/// ([`engine_counter`], libzio's exported `zio_counter`) use.
pub const ENGINE_COUNTERS: &[(&str, CounterFn)] = &[
    ("elided_copies", |c| c.elided_copies),
    ("elided_bytes", |c| c.elided_bytes),
    ("copied_bytes", |c| c.copied_bytes),
    ("faults_missing", |c| c.faults_missing),
    ("faults_zero", |c| c.faults_zero),
    ("faults_wp", |c| c.faults_wp),
    ("pages_by_fault", |c| c.materialized[0]),
    ("pages_by_write", |c| c.materialized[1]),
    ("pages_by_gc", |c| c.materialized[2]),
    ("pages_by_fork", |c| c.materialized[3]),
    ("pages_by_other", |c| c.materialized[4]),
    ("outputs_substituted", |c| c.outputs_substituted),
    ("bytes_substituted", |c| c.bytes_substituted),
    ("bytes_dropped", |c| c.bytes_dropped),
    ("bytes_refilled", |c| c.bytes_refilled),
    ("live_records", |c| c.live_pieces),
    ("peak_records", |c| c.peak_pieces),
    ("live_originals", |c| c.live_originals),
    ("quarantined_bytes", |c| c.quarantined_bytes),
    ("quarantined_total", |c| c.quarantined_total),
    ("policy_skips", |c| c.policy_skips),
    ("inputs_unrecorded", |c| c.inputs_unrecorded),
    ("refused", |c| c.refused),
    ("vmas_registered", |c| c.registrations),
    ("syscalls_uffd", |c| c.syscalls_uffd),
    ("syscalls_madvise", |c| c.syscalls_madvise),
    ("syscalls_maps", |c| c.syscalls_maps),
    ("bytes_backed_up", |c| c.bytes_backed_up),
    ("backup_bytes", |c| c.backup_bytes),
    ("ranges_released", |c| c.ranges_released),
    ("inputs_redirected", |c| c.inputs_redirected),
    ("bytes_redirected", |c| c.bytes_redirected),
    ("bytes_lent", |c| c.bytes_lent),
    ("lent_released", |c| c.lent_released),
    ("bytes_resolved", |c| c.bytes_resolved),
    ("engine_us_program", |c| c.program_ns / 1000),
    ("engine_us_zio", |c| c.background_ns / 1000),
    ("lock_wait_us_program", |c| c.lock_wait_ns / 1000),
    ("engine_calls_program", |c| c.program_calls),
];

/// The reader of the engine counter called `name` (as the summary prints
/// it), or `None` for an unknown name.
pub fn engine_counter(name: &[u8]) -> Option<CounterFn> {
    ENGINE_COUNTERS
        .iter()
        .find(|(n, _)| n.as_bytes() == name)
        .map(|&(_, get)| get)
}

/// Reads one counter of the process as a whole.
pub type ProcessCounterFn = fn() -> u64;

/// Counters that need no engine: readable from start-up on, whether or not
/// elision ever starts in the process (with `ZIO_ENABLE=0` too). Not in the
/// summary; libzio's `zio_counter` finds them by name.
pub const PROCESS_COUNTERS: &[(&str, ProcessCounterFn)] =
    &[("heap_allocations", crate::heap::allocations)];

/// The reader of the process counter called `name` (see
/// [`PROCESS_COUNTERS`]), or `None` for another name.
pub fn process_counter(name: &[u8]) -> Option<ProcessCounterFn> {
    PROCESS_COUNTERS
        .iter()
        .find(|(n, _)| n.as_bytes() == name)
        .map(|&(_, get)| get)
}

/// Writes the engine's counters, one `name value` line each (after the
/// hook table, in the same `zio[pid]` format).
pub fn write_engine_summary(c: &crate::engine::Counters) {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    engine_lines(pid, c, &mut |l| crate::log::write_raw(l.as_bytes()));
}

/// The lines [`write_engine_summary`] writes for process `pid`, each
/// handed to `out` with its newline (formatting only, as
/// [`summary_lines`]).
pub fn engine_lines(pid: i32, c: &crate::engine::Counters, out: &mut dyn FnMut(&str)) {
    for (name, get) in ENGINE_COUNTERS {
        let v = get(c);
        let mut line = Line::new();
        let _ = writeln!(line, "zio[{pid}]   {name:<20} {v:>18}");
        out(line.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_table_matches_the_exported_symbol_list() {
        let listed: Vec<&str> = include_str!("../../libzio/hooked-symbols.txt")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(listed, HOOK_NAMES);
        assert_eq!(ALL_HOOKS.len(), NHOOKS);
        for (i, h) in ALL_HOOKS.iter().enumerate() {
            assert_eq!(*h as usize, i);
        }
    }

    #[test]
    fn engine_counters_are_found_by_their_summary_names() {
        let c = crate::engine::Counters {
            elided_copies: 3,
            materialized: [0, 0, 0, 0, 7],
            registrations: 11,
            backup_bytes: 13,
            ..Default::default()
        };
        let get = |n: &str| engine_counter(n.as_bytes()).map(|f| f(&c));
        assert_eq!(get("elided_copies"), Some(3));
        assert_eq!(get("pages_by_other"), Some(7));
        assert_eq!(get("vmas_registered"), Some(11));
        assert_eq!(get("backup_bytes"), Some(13));
        assert_eq!(get("elided_bytes"), Some(0));
        assert_eq!(get("no_such_counter"), None);
        assert_eq!(get("elided_copie"), None);
        assert_eq!(get(""), None);
        let mut names: Vec<&str> = ENGINE_COUNTERS
            .iter()
            .map(|e| e.0)
            .chain(PROCESS_COUNTERS.iter().map(|e| e.0))
            .collect();
        let all = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all, "names are unique, engine's and process's");
        assert!(process_counter(b"heap_allocations").is_some());
        assert!(process_counter(b"elided_copies").is_none());
    }

    #[test]
    fn calls_made_inside_zio_are_not_counted() {
        init();
        std::thread::spawn(|| {
            count(Hook::Pwritev2, 5); // claims the slot
            let before = snapshot().calls(Hook::Pwritev2);
            {
                let _g = thread::enter().unwrap();
                count(Hook::Pwritev2, 5);
                assert!(count_fast(Hook::Pwritev2, 5), "handled (by not counting)");
            }
            count(Hook::Pwritev2, 5);
            assert_eq!(snapshot().calls(Hook::Pwritev2) - before, 1);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn threads_count_privately_and_retire_into_the_total() {
        init();
        let before = snapshot();
        let handles: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..1000 {
                        count(Hook::Sendmmsg, 3);
                    }
                    let mine = thread::with(|t| t.slot.get());
                    assert!(!mine.is_null(), "a private slot was claimed");
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let after = snapshot();
        // Other tests in this process use other hooks, so this is exact.
        assert_eq!(
            after.calls(Hook::Sendmmsg) - before.calls(Hook::Sendmmsg),
            8000
        );
        assert_eq!(
            after.bytes(Hook::Sendmmsg) - before.bytes(Hook::Sendmmsg),
            24000
        );
        // The exited threads' slots were freed for reuse.
        let owned = block()
            .slots
            .iter()
            .filter(|s| s.owned.load(Ordering::Relaxed))
            .count();
        assert!(owned < MAX_SLOTS / 2, "{owned} slots still owned");
    }
}
