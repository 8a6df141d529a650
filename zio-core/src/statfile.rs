//! The live counters file, `/dev/shm/zio.<pid>`: the memory every thread's
//! counter slot lives in, and a copy of the engine's counters, for
//! `zio-stat` to read while the process runs.
//!
//! The counters live in one page-aligned static block of the library. To
//! publish it, the library writes its counts so far into a new file and
//! maps the file over the block, in place: every address stays the same
//! (each thread's slot pointer too), the threads go on counting with plain
//! stores into the file's pages, and publishing adds nothing to a hook. The engine's
//! counters live under its lock; zio's collector thread copies them in
//! every [`PUBLISH_MS`] under a sequence number (one writer, no
//! read-modify-write). The file is created with mode 0600, never opened if
//! it already exists (a stale one of an earlier process with this pid is
//! removed and replaced), and removed at normal exit.
//!
//! A process publishes at its first input of `ZIO_THRESHOLD` bytes, when
//! its engine is made: the programs zio can do something for, and never
//! the short ones that read little (a shell's `ls`, a compiler's every
//! step), which would pay a file's creation and removal for nothing. A
//! fork child maps private zeroed memory over the block at once (its
//! counts are its own) and publishes a file of its own the same way.
//! Without a file (`ZIO_PUBLISH=0`, no `/dev/shm`, the file refused)
//! nothing is published.
//!
//! The layout is self-describing ([`Header`]: the counters' names and
//! offsets are in the file), so a reader needs only the [`FORMAT`] number
//! to agree; [`parse`] is that reader, pure, for `zio-stat` and the tests.

use core::cell::UnsafeCell;
use core::ffi::c_char;
use core::mem::{offset_of, size_of};
use core::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::config::{self, Opt};
use crate::stats::{Slot, ENGINE_COUNTERS, HOOK_NAMES, MAX_SLOTS, NHOOKS};

/// The first bytes of every counters file.
pub const MAGIC: [u8; 8] = *b"zio-stat";
/// The layout's version: a reader refuses any other.
pub const FORMAT: u32 = 1;
/// The directory of the counters files.
pub const DIR: &str = "/dev/shm";
/// A counters file's name is this prefix and the process id.
pub const PREFIX: &str = "zio.";
/// How often the collector thread copies the engine's counters in.
pub const PUBLISH_MS: u64 = 250;

const ENGINE_MAX: usize = 64;
const NAMES_MAX: usize = 3072;
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The start of the file: what it is and where everything else is.
#[repr(C)]
pub struct Header {
    /// [`MAGIC`], written last: a file without it is not ready (or not ours).
    pub magic: [u8; 8],
    /// [`FORMAT`].
    pub format: u32,
    /// The process that counts into it.
    pub pid: u32,
    /// Its effective user when the file was made.
    pub uid: u32,
    /// Hooks counted per slot.
    pub nhooks: u32,
    /// Slots: the shared and the retired, then the private ones.
    pub nslots: u32,
    /// Bytes from one slot to the next.
    pub slot_size: u32,
    /// Offset of the first slot in the file.
    pub slots_offset: u32,
    /// Offset of a slot's call counts in it (`nhooks` u64).
    pub slot_calls: u32,
    /// Offset of a slot's byte counts in it (`nhooks` u64).
    pub slot_bytes: u32,
    /// Engine counters published.
    pub nengine: u32,
    /// Offset of the engine counters (`nengine` u64).
    pub engine_offset: u32,
    /// Offset of the names: the hooks' then the engine counters', each
    /// ended by a NUL.
    pub names_offset: u32,
    /// Bytes of names.
    pub names_len: u32,
    /// The library's mode (`runtime::Mode` as a number).
    pub mode: AtomicU32,
    /// Wall clock at start-up, ns since the epoch.
    pub started_unix_ns: u64,
    /// Even when the engine counters are whole; odd while they are written.
    pub engine_seq: AtomicU64,
    /// Monotonic clock (ns) when they were last written; 0 if the engine
    /// never started.
    pub engine_ns: AtomicU64,
    /// The library's version, NUL-padded.
    pub version: [u8; 16],
}

/// Everything the file holds, in the order of the file: page-aligned and
/// a whole number of pages, so that a file can take its place.
#[repr(C, align(4096))]
pub struct Block {
    /// Written when the block is published (the atomics in it later too).
    header: UnsafeCell<Header>,
    names: UnsafeCell<[u8; NAMES_MAX]>,
    engine: [AtomicU64; ENGINE_MAX],
    /// Threads without a private slot count here, with atomic adds.
    pub(crate) shared: Slot,
    /// The counts of threads that exited.
    pub(crate) retired: Slot,
    /// The threads' private slots.
    pub(crate) slots: [Slot; MAX_SLOTS],
}

// SAFETY: the header and names are written only while the block is being
// published, by the one thread doing it, before any other thread reads
// them (the collector starts later); everything else is atomics.
unsafe impl Sync for Block {}

const _: () = assert!(ENGINE_COUNTERS.len() <= ENGINE_MAX);
// Readers sum `nslots` slots from the shared one on: they must be adjacent.
const _: () = assert!(offset_of!(Block, retired) == offset_of!(Block, shared) + size_of::<Slot>());
const _: () = assert!(offset_of!(Block, slots) == offset_of!(Block, retired) + size_of::<Slot>());

impl Block {
    const fn new() -> Block {
        Block {
            header: UnsafeCell::new(Header {
                magic: [0; 8],
                format: 0,
                pid: 0,
                uid: 0,
                nhooks: 0,
                nslots: 0,
                slot_size: 0,
                slots_offset: 0,
                slot_calls: 0,
                slot_bytes: 0,
                nengine: 0,
                engine_offset: 0,
                names_offset: 0,
                names_len: 0,
                mode: AtomicU32::new(0),
                started_unix_ns: 0,
                engine_seq: AtomicU64::new(0),
                engine_ns: AtomicU64::new(0),
                version: [0; 16],
            }),
            names: UnsafeCell::new([0; NAMES_MAX]),
            engine: [const { AtomicU64::new(0) }; ENGINE_MAX],
            shared: Slot::new(),
            retired: Slot::new(),
            slots: [const { Slot::new() }; MAX_SLOTS],
        }
    }

    /// The header (its atomics are what others write).
    fn header(&self) -> &Header {
        // SAFETY: shared reads of the header, whose plain fields change only
        // while it is published (see `Sync` above).
        unsafe { &*self.header.get() }
    }
}

/// The counters' memory.
static BLOCK: Block = Block::new();
/// The block is a mapping of this process's file.
static PUBLISHED: AtomicBool = AtomicBool::new(false);
/// The process publishes its file when its engine is made.
static PENDING: AtomicBool = AtomicBool::new(false);
/// The process whose file the block is (0 for none): removed at its exit.
static OWNER: AtomicU32 = AtomicU32::new(0);

/// Where the counters are.
#[inline(always)]
pub(crate) fn block() -> &'static Block {
    &BLOCK
}

/// True if the counters are in a published file.
pub fn published() -> bool {
    PUBLISHED.load(Ordering::Relaxed)
}

/// `/dev/shm/zio.<pid>` with a NUL, in `buf`.
fn path(pid: u32, buf: &mut [u8; 40]) -> *const c_char {
    let mut n = 0;
    for part in [DIR.as_bytes(), b"/", PREFIX.as_bytes()] {
        buf[n..n + part.len()].copy_from_slice(part);
        n += part.len();
    }
    let mut digits = [0u8; 10];
    let digits = crate::log::decimal(pid, &mut digits);
    buf[n..n + digits.len()].copy_from_slice(digits);
    buf[n + digits.len()] = 0;
    buf.as_ptr().cast()
}

fn getpid() -> u32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() as u32 }
}

/// Makes `pid`'s file, holding what `at` holds now (its first `claimed`
/// private slots in use), and maps it over `at`, in place. False, with
/// `at` as it was, if any step is refused.
///
/// # Safety
/// `at` is a whole Block that is page-aligned memory of this process's own
/// (the static block, or a test's), and only the calling thread may be
/// publishing it.
unsafe fn map_file(at: &Block, pid: u32, mode: u32, claimed: usize) -> bool {
    let mut buf = [0u8; 40];
    let p = path(pid, &mut buf);
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `p` is a NUL-terminated path in `buf`.
    let mut fd = unsafe { libc::open(p, flags, 0o600) };
    if fd < 0 && crate::log::errno() == libc::EEXIST {
        // Left by an earlier process with this pid (killed, or this
        // process's image before `exec`): replaced, never reused.
        // SAFETY: as above.
        unsafe {
            libc::unlink(p);
            fd = libc::open(p, flags, 0o600);
        }
    }
    if fd < 0 {
        return false;
    }
    let base = core::ptr::from_ref(at).cast::<u8>().cast_mut();
    let size = size_of::<Block>();
    // The counts so far go into the file first (the kernel copies them out
    // of the block), then the file takes the block's place. What the
    // program's other threads count between the two is lost: a window of
    // one system call, on a path that runs once.
    let from = offset_of!(Block, engine);
    let to = offset_of!(Block, slots) + claimed.min(MAX_SLOTS) * size_of::<Slot>();
    // SAFETY: `fd` is the file just made; `base + from .. base + to` lies
    // in the block; the mapping replaces exactly the block's pages.
    let ok = unsafe {
        libc::ftruncate(fd, size as libc::off_t) == 0
            && libc::pwrite(fd, base.add(from).cast(), to - from, from as libc::off_t)
                == (to - from) as isize
            && libc::mmap(
                base.cast(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                fd,
                0,
            ) == base.cast()
    };
    // SAFETY: our descriptor; the mapping keeps the file.
    unsafe { libc::close(fd) };
    if !ok {
        // SAFETY: as above.
        unsafe { libc::unlink(p) };
        return false;
    }
    // SAFETY: the caller's contract: this thread alone publishes `at`.
    unsafe { fill_header(at, pid, mode) };
    true
}

/// Writes the header and the names of a new file, the magic last.
///
/// # Safety
/// Only the calling thread writes or reads `b`'s header and names now.
unsafe fn fill_header(b: &Block, pid: u32, mode: u32) {
    // SAFETY: the caller's contract.
    let (h, names) = unsafe { (&mut *b.header.get(), &mut *b.names.get()) };
    let mut n = 0;
    for name in HOOK_NAMES
        .iter()
        .copied()
        .chain(ENGINE_COUNTERS.iter().map(|e| e.0))
    {
        names[n..n + name.len()].copy_from_slice(name.as_bytes());
        n += name.len() + 1;
    }
    h.format = FORMAT;
    h.pid = pid;
    // SAFETY: geteuid has no preconditions.
    h.uid = unsafe { libc::geteuid() };
    h.nhooks = NHOOKS as u32;
    h.nslots = MAX_SLOTS as u32 + 2;
    h.slot_size = size_of::<Slot>() as u32;
    h.slots_offset = offset_of!(Block, shared) as u32;
    h.slot_calls = Slot::CALLS_OFFSET as u32;
    h.slot_bytes = Slot::BYTES_OFFSET as u32;
    h.nengine = ENGINE_COUNTERS.len() as u32;
    h.engine_offset = offset_of!(Block, engine) as u32;
    h.names_offset = offset_of!(Block, names) as u32;
    h.names_len = n as u32;
    h.mode.store(mode, Ordering::Relaxed);
    h.started_unix_ns = crate::runtime::realtime_ns();
    let v = VERSION.as_bytes();
    h.version[..v.len().min(16)].copy_from_slice(&v[..v.len().min(16)]);
    fence(Ordering::Release);
    h.magic = MAGIC;
}

const _: () = assert!(VERSION.len() <= 16);
const _: () = {
    let mut n = 0;
    let mut i = 0;
    while i < HOOK_NAMES.len() {
        n += HOOK_NAMES[i].len() + 1;
        i += 1;
    }
    let mut i = 0;
    while i < ENGINE_COUNTERS.len() {
        n += ENGINE_COUNTERS[i].0.len() + 1;
        i += 1;
    }
    assert!(n <= NAMES_MAX);
};

/// At start-up, after the options: this process will publish its
/// counters ([`publish_pending`]) unless `ZIO_PUBLISH=0`.
pub fn init() {
    PENDING.store(config::get(Opt::Publish) != 0, Ordering::Relaxed);
}

fn publish(mode: u32, claimed: usize) {
    let pid = getpid();
    // SAFETY: the static block, page-aligned and ours; the engine's start,
    // under the engine's lock: one publisher.
    if unsafe { map_file(&BLOCK, pid, mode, claimed) } {
        OWNER.store(pid, Ordering::Relaxed);
        PUBLISHED.store(true, Ordering::Release);
    }
}

/// The library's mode changed.
pub fn set_mode(mode: u32) {
    block().header().mode.store(mode, Ordering::Relaxed);
}

/// In a fork child (one thread), before it counts again: the block is
/// still its parent's file. Private zero pages take its place (the
/// parent's counts are the parent's), and the child publishes a file of
/// its own when its engine is made ([`publish_pending`]): most children
/// `exec` or exit long before, and pay one system call here. `None` if
/// nothing was published (the child's copy of the block holds the
/// parent's counts); `Some(true)` if the block was replaced (every counter
/// is 0 now); `Some(false)` if the kernel refused, and the child's counts
/// go on into its parent's file.
pub(crate) fn after_fork() -> Option<bool> {
    if !published() {
        return None;
    }
    let size = size_of::<Block>();
    let base = core::ptr::from_ref(&BLOCK)
        .cast_mut()
        .cast::<libc::c_void>();
    // SAFETY: replaces exactly the static block's pages with zero pages;
    // the only thread left counts nothing until this returns.
    let m = unsafe {
        libc::mmap(
            base,
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    PUBLISHED.store(false, Ordering::Relaxed);
    OWNER.store(0, Ordering::Relaxed);
    PENDING.store(config::get(Opt::Publish) != 0, Ordering::Relaxed);
    Some(m == base)
}

/// The engine is being made (the first large input): the process
/// publishes its counters now, whatever the kernel then says of
/// userfaultfd (a pass-through process is worth seeing too).
pub fn publish_pending() {
    if PENDING.swap(false, Ordering::Relaxed) {
        let mode = block().header().mode.load(Ordering::Relaxed);
        publish(mode, crate::stats::claimed_end());
    }
}

/// Copies the engine's counters in (zio's collector thread, the only
/// writer). Nothing to do without a file.
pub fn publish_engine(c: &crate::engine::Counters) {
    if published() {
        write_engine(block(), c);
    }
}

fn write_engine(b: &Block, c: &crate::engine::Counters) {
    let h = b.header();
    let seq = h.engine_seq.load(Ordering::Relaxed);
    h.engine_seq.store(seq | 1, Ordering::Relaxed);
    fence(Ordering::Release);
    for (slot, (_, get)) in b.engine.iter().zip(ENGINE_COUNTERS) {
        slot.store(get(c), Ordering::Relaxed);
    }
    h.engine_ns
        .store(crate::runtime::now_ns().max(1), Ordering::Relaxed);
    h.engine_seq.store((seq | 1) + 1, Ordering::Release);
}

/// At normal exit: the file goes (its mapping stays until the process
/// ends, so late counts still have their memory).
pub fn remove() {
    let pid = getpid();
    if OWNER.load(Ordering::Relaxed) != pid {
        return;
    }
    let mut buf = [0u8; 40];
    // SAFETY: a NUL-terminated path in `buf`.
    unsafe { libc::unlink(path(pid, &mut buf)) };
    OWNER.store(0, Ordering::Relaxed);
}

/// What a counters file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reading {
    /// The process.
    pub pid: u32,
    /// Its effective user when the file was made.
    pub uid: u32,
    /// The library's mode (`runtime::Mode` as a number).
    pub mode: u32,
    /// The library's version.
    pub version: String,
    /// Wall clock at its start-up, ns since the epoch.
    pub started_unix_ns: u64,
    /// Every hook: name, calls, bytes (summed over the slots).
    pub hooks: Vec<(String, u64, u64)>,
    /// The engine counters by name, and the monotonic clock (ns) when
    /// they were written; `None` if the engine never started.
    pub engine: Option<(u64, Vec<(String, u64)>)>,
}

/// Why a counters file cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// Too short, or not a counters file (or not yet filled in).
    NotStats,
    /// A counters file of another layout.
    Format(u32),
    /// The engine counters were being written (read again).
    Torn,
    /// Its offsets or names point outside it.
    Damaged(&'static str),
}

impl core::fmt::Display for FormatError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FormatError::NotStats => write!(f, "not a zio counters file"),
            FormatError::Format(n) => write!(
                f,
                "counters file format {n}, this reader knows format {FORMAT}"
            ),
            FormatError::Torn => write!(f, "counters were being written"),
            FormatError::Damaged(what) => write!(f, "damaged counters file ({what})"),
        }
    }
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// Reads a copy of a counters file's bytes.
pub fn parse(b: &[u8]) -> Result<Reading, FormatError> {
    if b.len() < size_of::<Header>() || b[..8] != MAGIC {
        return Err(FormatError::NotStats);
    }
    let field = |off: usize| u32_at(b, off).ok_or(FormatError::Damaged("header"));
    let format = field(offset_of!(Header, format))?;
    if format != FORMAT {
        return Err(FormatError::Format(format));
    }
    let seq = u64_at(b, offset_of!(Header, engine_seq)).unwrap_or(1);
    if seq & 1 == 1 {
        return Err(FormatError::Torn);
    }
    let get = |off: usize| field(off).map(|v| v as usize);
    let nhooks = get(offset_of!(Header, nhooks))?;
    let nengine = get(offset_of!(Header, nengine))?;
    let names_off = get(offset_of!(Header, names_offset))?;
    let names_len = get(offset_of!(Header, names_len))?;
    let names = b
        .get(names_off..names_off.saturating_add(names_len))
        .ok_or(FormatError::Damaged("names"))?;
    let mut names = names
        .split(|&c| c == 0)
        .map(|n| String::from_utf8_lossy(n).into_owned());
    let hook_names: Vec<String> = names.by_ref().take(nhooks).collect();
    let engine_names: Vec<String> = names.take(nengine).collect();
    if hook_names.len() != nhooks || engine_names.len() != nengine {
        return Err(FormatError::Damaged("names"));
    }
    let nslots = get(offset_of!(Header, nslots))?;
    let slot_size = get(offset_of!(Header, slot_size))?;
    let slots_off = get(offset_of!(Header, slots_offset))?;
    let calls_off = get(offset_of!(Header, slot_calls))?;
    let bytes_off = get(offset_of!(Header, slot_bytes))?;
    let engine_off = get(offset_of!(Header, engine_offset))?;
    let end = nslots
        .checked_mul(slot_size)
        .and_then(|n| n.checked_add(slots_off));
    if slot_size < calls_off.max(bytes_off) + 8 * nhooks || end.is_none_or(|e| e > b.len()) {
        return Err(FormatError::Damaged("slots"));
    }
    let mut hooks: Vec<(String, u64, u64)> = hook_names.into_iter().map(|n| (n, 0, 0)).collect();
    for s in 0..nslots {
        let base = slots_off + s * slot_size;
        for (i, h) in hooks.iter_mut().enumerate() {
            let c = u64_at(b, base + calls_off + 8 * i).ok_or(FormatError::Damaged("slots"))?;
            let n = u64_at(b, base + bytes_off + 8 * i).ok_or(FormatError::Damaged("slots"))?;
            h.1 = h.1.wrapping_add(c);
            h.2 = h.2.wrapping_add(n);
        }
    }
    let engine_ns = u64_at(b, offset_of!(Header, engine_ns)).unwrap_or(0);
    let engine = if engine_ns == 0 {
        None
    } else {
        let off = engine_off;
        let values = engine_names
            .into_iter()
            .enumerate()
            .map(|(i, n)| {
                u64_at(b, off + 8 * i)
                    .map(|v| (n, v))
                    .ok_or(FormatError::Damaged("engine counters"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Some((engine_ns, values))
    };
    let v = &b[offset_of!(Header, version)..offset_of!(Header, version) + 16];
    let v = &v[..v.iter().position(|&c| c == 0).unwrap_or(16)];
    Ok(Reading {
        pid: field(offset_of!(Header, pid))?,
        uid: field(offset_of!(Header, uid))?,
        mode: field(offset_of!(Header, mode))?,
        version: String::from_utf8_lossy(v).into_owned(),
        started_unix_ns: u64_at(b, offset_of!(Header, started_unix_ns)).unwrap_or(0),
        hooks,
        engine,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_pid() {
        let mut buf = [0u8; 40];
        for (pid, want) in [(0, "/dev/shm/zio.0"), (4194304, "/dev/shm/zio.4194304")] {
            let p = path(pid, &mut buf);
            // SAFETY: `path` wrote a NUL-terminated string.
            let s = unsafe { core::ffi::CStr::from_ptr(p) };
            assert_eq!(s.to_str().unwrap(), want);
        }
        let mut buf = [0u8; 40];
        path(u32::MAX, &mut buf);
        assert_eq!(&buf[..23], b"/dev/shm/zio.4294967295");
    }

    /// Page-aligned zero memory for a test's own block.
    fn scratch() -> &'static Block {
        // SAFETY: a fresh private mapping of a whole Block; zero bytes are
        // a valid Block.
        unsafe {
            let m = libc::mmap(
                core::ptr::null_mut(),
                size_of::<Block>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(m, libc::MAP_FAILED);
            &*m.cast::<Block>()
        }
    }

    #[test]
    fn a_file_takes_the_blocks_place_and_reads_back_what_was_counted() {
        let pid = 1_000_000 + (std::process::id() % 1000);
        let b = scratch();
        b.slots[3].test_add(crate::stats::Hook::Read, 4096);
        b.shared.test_add(crate::stats::Hook::Memcpy, 1 << 20);
        // SAFETY: this test's own block.
        let mapped = unsafe { map_file(b, pid, 3, 4) };
        assert!(mapped, "/dev/shm is writable here");
        let mut buf = [0u8; 40];
        // SAFETY: a NUL-terminated path.
        let name = unsafe { core::ffi::CStr::from_ptr(path(pid, &mut buf)) }
            .to_str()
            .unwrap()
            .to_string();
        let meta = std::fs::metadata(&name).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), size_of::<Block>() as u64);

        // Counted before and after: the file holds both, at the same
        // addresses.
        b.slots[3].test_add(crate::stats::Hook::Read, 10);
        let file = std::fs::read(&name).unwrap();
        let r = parse(&file).unwrap();
        assert_eq!((r.pid, r.mode, r.engine.is_none()), (pid, 3, true));
        assert_eq!(r.version, VERSION);
        assert_eq!(r.hooks.len(), NHOOKS);
        assert_eq!(r.hooks[0], ("memcpy".to_string(), 1, 1 << 20));
        let read = r.hooks.iter().find(|h| h.0 == "read").unwrap();
        assert_eq!((read.1, read.2), (2, 4106));

        let c = crate::engine::Counters {
            elided_copies: 7,
            bytes_substituted: 9,
            ..Default::default()
        };
        write_engine(b, &c);
        let file = std::fs::read(&name).unwrap();
        let (ns, engine) = parse(&file).unwrap().engine.unwrap();
        assert!(ns > 0);
        assert_eq!(engine.len(), ENGINE_COUNTERS.len());
        assert_eq!(engine[0], ("elided_copies".to_string(), 7));
        assert!(engine.contains(&("bytes_substituted".to_string(), 9)));

        let mut torn = file.clone();
        torn[offset_of!(Header, engine_seq)] |= 1;
        assert_eq!(parse(&torn), Err(FormatError::Torn));
        let mut other = file.clone();
        other[offset_of!(Header, format)] = 9;
        assert_eq!(parse(&other), Err(FormatError::Format(9)));
        assert_eq!(parse(&file[..100]), Err(FormatError::NotStats));
        let mut bad = file.clone();
        bad[offset_of!(Header, names_len) + 3] = 0x7f;
        assert_eq!(parse(&bad), Err(FormatError::Damaged("names")));

        // A second process with this pid replaces the file.
        let again = scratch();
        // SAFETY: this test's own block.
        assert!(unsafe { map_file(again, pid, 1, 0) }, "replaced");
        let file = std::fs::read(&name).unwrap();
        assert_eq!(parse(&file).unwrap().hooks[0].1, 0);
        std::fs::remove_file(&name).unwrap();
        for blk in [b, again] {
            // SAFETY: test blocks, unused from here on.
            unsafe {
                libc::munmap(
                    core::ptr::from_ref(blk).cast_mut().cast(),
                    size_of::<Block>(),
                )
            };
        }
    }
}
