//! userfaultfd: the descriptor, its ioctls, and the start-up probe.
//!
//! The system headers here are from Linux 6.1, so the ioctl numbers and
//! feature bits are written out by hand (from `linux/userfaultfd.h`; the
//! numbers were checked against a C program built with those headers).

use core::ffi::c_int;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::ranges::PAGE;

/// `UFFD_API`: the only API version.
pub const UFFD_API: u64 = 0xAA;
/// `_IOWR(0xAA, 0x3F, struct uffdio_api)`.
pub const UFFDIO_API: libc::c_ulong = 0xc018_aa3f;
/// `_IO(0xAA, 0x00)` on `/dev/userfaultfd`.
pub const USERFAULTFD_IOC_NEW: libc::c_ulong = 0xaa00;
const UFFDIO_REGISTER: libc::c_ulong = 0xc020_aa00;
const UFFDIO_UNREGISTER: libc::c_ulong = 0x8010_aa01;
const UFFDIO_WAKE: libc::c_ulong = 0x8010_aa02;
const UFFDIO_COPY: libc::c_ulong = 0xc028_aa03;
const UFFDIO_ZEROPAGE: libc::c_ulong = 0xc020_aa04;
const UFFDIO_WRITEPROTECT: libc::c_ulong = 0xc018_aa06;
const REGISTER_MODE_MISSING: u64 = 1;
const REGISTER_MODE_WP: u64 = 2;
const WRITEPROTECT_MODE_WP: u64 = 1;
/// `UFFD_EVENT_PAGEFAULT`.
pub const EVENT_PAGEFAULT: u8 = 0x12;
/// `UFFD_PAGEFAULT_FLAG_WP`: the fault is a write to a protected page.
pub const PAGEFAULT_FLAG_WP: u64 = 2;

#[repr(C)]
struct Range {
    start: u64,
    len: u64,
}

#[repr(C)]
struct Register {
    range: Range,
    mode: u64,
    ioctls: u64,
}

#[repr(C)]
struct Copy {
    dst: u64,
    src: u64,
    len: u64,
    mode: u64,
    copy: i64,
}

#[repr(C)]
struct Zeropage {
    range: Range,
    mode: u64,
    zeropage: i64,
}

#[repr(C)]
struct Writeprotect {
    range: Range,
    mode: u64,
}

/// A message read from the descriptor (`struct uffd_msg`, 32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Msg {
    /// `UFFD_EVENT_*`.
    pub event: u8,
    reserved: [u8; 7],
    /// For page faults: `UFFD_PAGEFAULT_FLAG_*`.
    pub flags: u64,
    /// For page faults: the faulting address.
    pub address: u64,
    reserved2: u64,
}

/// Feature bits zio cares about (`UFFD_FEATURE_*`).
pub mod feature {
    /// Write-protect faults (`UFFD_FEATURE_PAGEFAULT_FLAG_WP`).
    pub const PAGEFAULT_FLAG_WP: u64 = 1 << 0;
    /// Fork events.
    pub const EVENT_FORK: u64 = 1 << 1;
    /// `mremap` events.
    pub const EVENT_REMAP: u64 = 1 << 2;
    /// `MADV_DONTNEED`/`MADV_REMOVE` events.
    pub const EVENT_REMOVE: u64 = 1 << 3;
    /// `munmap` events.
    pub const EVENT_UNMAP: u64 = 1 << 6;
    /// Faulting thread id in messages.
    pub const THREAD_ID: u64 = 1 << 8;
    /// WP of never-touched pages traps.
    pub const WP_UNPOPULATED: u64 = 1 << 13;
    /// `UFFDIO_MOVE`.
    pub const MOVE: u64 = 1 << 15;
}

#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

/// Bytes of the read-only region of zeros [`Uffd::zero_writable`] copies
/// from, a chunk at a time.
const ZEROS: usize = 1 << 20;

static ZERO_REGION: AtomicUsize = AtomicUsize::new(0);

/// The region of zeros, mapped on first use (read-only, so every page of
/// it is the kernel's one zero page: no memory, and always in cache).
fn zeros() -> Option<usize> {
    let z = ZERO_REGION.load(Ordering::Acquire);
    if z != 0 {
        return Some(z);
    }
    // SAFETY: a fresh anonymous read-only mapping; nothing else is touched.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            ZEROS,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    match ZERO_REGION.compare_exchange(0, p as usize, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Some(p as usize),
        Err(other) => {
            // SAFETY: our own mapping, which another thread beat to it.
            unsafe { libc::munmap(p, ZEROS) };
            Some(other)
        }
    }
}

/// How an attempt to get a userfaultfd failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenError {
    /// `errno` of the failing step.
    pub errno: i32,
    /// Which step failed.
    pub step: &'static str,
}

/// An open userfaultfd with its API handshake done.
#[derive(Debug)]
pub struct Uffd {
    /// The descriptor (close-on-exec, blocking reads).
    pub fd: c_int,
    /// Features enabled on it.
    pub features: u64,
    /// ioctls made on it (a counter, not a lock: callers serialize).
    pub calls: core::sync::atomic::AtomicU64,
}

impl Uffd {
    fn ioctl<T>(&self, req: libc::c_ulong, arg: &mut T) -> Result<(), i32> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        ioctl_on(self.fd, req, arg)
    }

    /// A request that needs kernel memory (page tables, split VMAs): it
    /// may be refused with `ENOMEM` (or by `ZIO_INJECT`, which also answers
    /// `EAGAIN` now and then), and `ENOMEM` means zio's resources ran out
    /// ([`crate::resources`]). Waking and unregistering
    /// need none, and are never refused here: a waiter left asleep would
    /// wait for good.
    fn ioctl_needing_memory<T>(
        &self,
        step: &str,
        req: libc::c_ulong,
        arg: &mut T,
    ) -> Result<(), i32> {
        let r = match crate::resources::refuse() {
            Some(e) => Err(e),
            None => self.ioctl(req, arg),
        };
        if r == Err(libc::ENOMEM) {
            crate::resources::ran_out(step, libc::ENOMEM);
        }
        r
    }

    /// Registers `[a, a+len)` for missing and write-protect faults. Ranges
    /// already registered with this descriptor are accepted again cheaply.
    pub fn register(&self, a: usize, len: usize) -> Result<(), i32> {
        let mut r = Register {
            range: Range {
                start: a as u64,
                len: len as u64,
            },
            mode: REGISTER_MODE_MISSING | REGISTER_MODE_WP,
            ioctls: 0,
        };
        self.ioctl_needing_memory("UFFDIO_REGISTER", UFFDIO_REGISTER, &mut r)
    }

    /// Unregisters `[a, a+len)` (inside one mapping): its faults are the
    /// kernel's own again. Threads waiting on a fault there are woken.
    pub fn unregister(&self, a: usize, len: usize) -> Result<(), i32> {
        let mut r = Range {
            start: a as u64,
            len: len as u64,
        };
        self.ioctl(UFFDIO_UNREGISTER, &mut r)
    }

    /// Atomically maps a copy of `len` bytes at `src` (whole pages) at the
    /// missing pages from `dst`, waking the threads waiting on them. A page
    /// that is already present is left alone and its waiters woken.
    pub fn copy(&self, dst: usize, src: *const u8, len: usize) -> Result<(), i32> {
        per_mapping(dst, len, |a, n| {
            self.fill_in_mapping(a, n, true, |at, left| {
                let mut c = Copy {
                    dst: at as u64,
                    src: src as u64 + (at - dst) as u64,
                    len: left as u64,
                    mode: 0,
                    copy: 0,
                };
                (
                    self.ioctl_needing_memory("UFFDIO_COPY", UFFDIO_COPY, &mut c),
                    c.copy,
                )
            })
        })
    }

    /// Maps zero pages at the missing `[a, a+len)` and wakes waiters (a
    /// page that is already present is only woken).
    pub fn zeropage(&self, a: usize, len: usize) -> Result<(), i32> {
        per_mapping(a, len, |a, n| {
            self.fill_in_mapping(a, n, true, |at, left| self.zeropage_once(at, left))
        })
    }

    /// As [`Uffd::zeropage`], for a caller that serves no fault (the
    /// engine making sure pages are present before it uses them): a page
    /// found present is passed over without a wake. A thread waiting on
    /// it has a fault message the handler still serves, and wakes it then.
    pub fn zeropage_present_ok(&self, a: usize, len: usize) -> Result<(), i32> {
        per_mapping(a, len, |a, n| {
            self.fill_in_mapping(a, n, false, |at, left| self.zeropage_once(at, left))
        })
    }

    /// As [`Uffd::zeropage_present_ok`], but the pages mapped are fresh,
    /// zeroed and writable (`UFFDIO_COPY` from a read-only region of
    /// zeros): what uses them next (an input, the allocator's next user, a
    /// real copy) writes them, and a zero page would then take a
    /// copy-on-write fault per page.
    pub fn zero_writable(&self, a: usize, len: usize) -> Result<(), i32> {
        let Some(zeros) = zeros() else {
            return self.zeropage_present_ok(a, len);
        };
        per_mapping(a, len, |a, n| {
            self.fill_in_mapping(a, n, false, |at, left| {
                let mut c = Copy {
                    dst: at as u64,
                    src: zeros as u64,
                    len: left.min(ZEROS) as u64,
                    mode: 0,
                    copy: 0,
                };
                match self.ioctl_needing_memory("UFFDIO_COPY", UFFDIO_COPY, &mut c) {
                    // A whole chunk short of the rest: go on after it.
                    Ok(()) if left > ZEROS => (Err(libc::EAGAIN), ZEROS as i64),
                    r => (r, c.copy),
                }
            })
        })
    }

    /// One `UFFDIO_ZEROPAGE` over `[a, a+len)`: its result and the bytes it
    /// reports done (or the negative errno).
    fn zeropage_once(&self, a: usize, len: usize) -> (Result<(), i32>, i64) {
        let mut z = Zeropage {
            range: Range {
                start: a as u64,
                len: len as u64,
            },
            mode: 0,
            zeropage: 0,
        };
        (
            self.ioctl_needing_memory("UFFDIO_ZEROPAGE", UFFDIO_ZEROPAGE, &mut z),
            z.zeropage,
        )
    }

    /// One `UFFDIO_ZEROPAGE` of the single page `a`, waking nobody: its
    /// result (`EEXIST` for a present page, `ENOENT` where not registered).
    pub fn zeropage_page(&self, a: usize) -> Result<(), i32> {
        self.zeropage_once(a, crate::ranges::PAGE).0
    }

    /// Maps zero pages from the missing page `a` on, for up to `len` bytes,
    /// stopping at the first present page or at the end of `a`'s mapping,
    /// and wakes the threads waiting on what it mapped.
    pub fn zeropage_run(&self, a: usize, len: usize) -> Result<(), i32> {
        let mut len = len;
        loop {
            match self.zeropage_once(a, len) {
                (Ok(()), _) => return Ok(()),
                // Stopped at a present page after mapping some.
                (Err(libc::EAGAIN), done) if done > 0 => return Ok(()),
                // The first page is present already: only wake its waiters.
                (Err(libc::EEXIST), _) => return self.wake(a, PAGE),
                // The range runs past `a`'s mapping: up to its end.
                (Err(libc::ENOENT), _) if len > PAGE => {
                    len = crate::vma::mapping_end(a)
                        .unwrap_or(0)
                        .clamp(a + PAGE, a + len - PAGE)
                        - a;
                }
                (Err(e), _) => return Err(e),
            }
        }
    }

    /// Runs a fill ioctl, `call(at, len)` returning its result and the
    /// bytes it reports done, over `[a, a+len)` inside one mapping. The
    /// kernel stops at a present page: with `EAGAIN` and the bytes done
    /// before it, or with `EEXIST` if it is the first. Its waiters are
    /// woken (if `wake_present`) and the rest is done after it.
    fn fill_in_mapping(
        &self,
        a: usize,
        len: usize,
        wake_present: bool,
        mut call: impl FnMut(usize, usize) -> (Result<(), i32>, i64),
    ) -> Result<(), i32> {
        let mut done = 0;
        while done < len {
            match call(a + done, len - done) {
                (Ok(()), _) => return Ok(()),
                // Stopped at a present page after `n` bytes: go on from it.
                (Err(libc::EAGAIN), n) if n > 0 => done += n as usize,
                // The page at `done` is present.
                (Err(libc::EEXIST), _) => {
                    if wake_present {
                        self.wake(a + done, PAGE)?;
                    }
                    done += PAGE;
                }
                (Err(e), _) => return Err(e),
            }
        }
        Ok(())
    }

    /// Write-protects or unprotects `[a, a+len)`; unprotecting wakes the
    /// threads waiting to write.
    pub fn writeprotect(&self, a: usize, len: usize, on: bool) -> Result<(), i32> {
        let mut w = Writeprotect {
            range: Range {
                start: a as u64,
                len: len as u64,
            },
            mode: if on { WRITEPROTECT_MODE_WP } else { 0 },
        };
        self.ioctl_needing_memory("UFFDIO_WRITEPROTECT", UFFDIO_WRITEPROTECT, &mut w)
    }

    /// Wakes threads waiting on faults in `[a, a+len)`.
    pub fn wake(&self, a: usize, len: usize) -> Result<(), i32> {
        let mut r = Range {
            start: a as u64,
            len: len as u64,
        };
        self.ioctl(UFFDIO_WAKE, &mut r)
    }
}

/// ioctls made without the engine's lock ([`fill_pages`],
/// [`zero_page_unlocked`]), outside any [`Uffd`]'s count.
static UNLOCKED_CALLS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Maps a copy of `bytes` (whole pages) at the missing pages from `dst` of
/// `fd`, waking their waiters, without the engine's lock (the pages a
/// copy's plan names, [`crate::engine::CopyPlan::fills`]). Returns the pages
/// filled: the kernel stops at the first it cannot fill (present, not
/// registered, no memory; refused now and then under `ZIO_INJECT`).
pub fn fill_pages(fd: c_int, dst: usize, bytes: &[u8]) -> usize {
    if crate::resources::refuse().is_some() {
        return 0;
    }
    UNLOCKED_CALLS.fetch_add(1, Ordering::Relaxed);
    let pages = bytes.len() / PAGE;
    let mut c = Copy {
        dst: dst as u64,
        src: bytes.as_ptr() as u64,
        len: (pages * PAGE) as u64,
        mode: 0,
        copy: 0,
    };
    if ioctl_on(fd, UFFDIO_COPY, &mut c).is_ok() {
        return pages;
    }
    // Failed part-way: `copy` holds the bytes done (or the negative errno).
    usize::try_from(c.copy).map_or(0, |done| done / PAGE)
}

/// Maps a zero page at `page` of `fd` if it is missing and wakes the
/// threads waiting on it, without the engine's lock (a page the lock's
/// holder is reading, [`crate::elide`]'s plain reads). Errors are left to
/// the faulting thread, which faults again.
pub fn zero_page_unlocked(fd: c_int, page: usize) {
    UNLOCKED_CALLS.fetch_add(1, Ordering::Relaxed);
    let mut z = Zeropage {
        range: Range {
            start: page as u64,
            len: PAGE as u64,
        },
        mode: 0,
        zeropage: 0,
    };
    if ioctl_on(fd, UFFDIO_ZEROPAGE, &mut z) == Err(libc::EEXIST) {
        UNLOCKED_CALLS.fetch_add(1, Ordering::Relaxed);
        let mut r = Range {
            start: page as u64,
            len: PAGE as u64,
        };
        let _ = ioctl_on(fd, UFFDIO_WAKE, &mut r);
    }
}

/// One ioctl `req` on `fd` with `arg`, the struct it expects.
fn ioctl_on<T>(fd: c_int, req: libc::c_ulong, arg: &mut T) -> Result<(), i32> {
    // SAFETY: `arg` is the struct this request expects, valid for the call;
    // the kernel reads and writes only it and the memory it names.
    if unsafe { libc::ioctl(fd, req, arg as *mut T) } < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// The ioctls [`fill_pages`] and [`zero_page_unlocked`] made in this
/// process.
pub fn unlocked_calls() -> u64 {
    UNLOCKED_CALLS.load(Ordering::Relaxed)
}

/// Runs a fill call `op(a, len)` over the page-aligned `[a, a+len)`. The
/// kernel refuses a range that is not inside one registered mapping with
/// `ENOENT`, doing nothing and waking no one; adjacent registered ranges
/// often stay separate mappings (the kernel merges them only when flags and
/// anon_vma agree), and a thread waiting on a page of such a run would then
/// wait forever. So on `ENOENT` the range is done again one mapping at a
/// time. A part that is not registered at all has no thread waiting on it;
/// it is skipped and `ENOENT` returned after the rest is done.
fn per_mapping(
    a: usize,
    len: usize,
    mut op: impl FnMut(usize, usize) -> Result<(), i32>,
) -> Result<(), i32> {
    match op(a, len) {
        Err(libc::ENOENT) if len > PAGE => {}
        r => return r,
    }
    let end = a + len;
    let mut pos = a;
    let mut first_err = Ok(());
    while pos < end {
        // Not mapped, or no answer: one page at a time.
        let next = crate::vma::mapping_end(pos)
            .unwrap_or(0)
            .clamp(pos + PAGE, end);
        if let Err(e) = op(pos, next - pos) {
            first_err = first_err.and(Err(e));
        }
        pos = next;
    }
    first_err
}

/// Waits for the next message on descriptor `fd` (opened non-blocking,
/// as [`open`] opens it: reads first, and sleeps in `poll` only when
/// none is there).
pub fn read_msg(fd: c_int) -> Result<Msg, i32> {
    loop {
        if let Some(m) = wait_msg(fd, -1)? {
            return Ok(m);
        }
    }
}

/// The next message on the non-blocking descriptor `fd`, waiting for it
/// up to `timeout_ms` (-1: without end); `None` if none came.
pub fn wait_msg(fd: c_int, timeout_ms: c_int) -> Result<Option<Msg>, i32> {
    if let Some(m) = try_read_msg(fd)? {
        return Ok(Some(m));
    }
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    if unsafe { libc::poll(&mut p, 1, timeout_ms) } < 0 && errno() != libc::EINTR {
        return Err(errno());
    }
    try_read_msg(fd)
}

/// The next message on the non-blocking descriptor `fd` if one is there
/// now, `None` if not.
pub fn try_read_msg(fd: c_int) -> Result<Option<Msg>, i32> {
    let mut m = Msg::default();
    loop {
        // SAFETY: `m` is 32 writable bytes, the size of one uffd_msg.
        let n = unsafe { libc::read(fd, (&mut m as *mut Msg).cast(), core::mem::size_of::<Msg>()) };
        if n == core::mem::size_of::<Msg>() as isize {
            return Ok(Some(m));
        }
        let e = errno();
        if n < 0 && e == libc::EINTR {
            continue;
        }
        if n < 0 && e == libc::EAGAIN {
            return Ok(None);
        }
        return Err(if n < 0 { e } else { libc::EIO });
    }
}

impl Uffd {
    /// No descriptor: every call on it fails (`EBADF`). The backend of an
    /// engine that records input before any copy needs userfaultfd.
    pub fn none() -> Uffd {
        Uffd {
            fd: -1,
            features: 0,
            calls: Default::default(),
        }
    }
}

impl Drop for Uffd {
    fn drop(&mut self) {
        if self.fd >= 0 {
            // SAFETY: we own this descriptor.
            unsafe { libc::close(self.fd) };
        }
    }
}

fn errno() -> i32 {
    crate::log::errno()
}

fn raw_open() -> Result<c_int, OpenError> {
    // Non-blocking: poll(2) on a blocking userfaultfd answers POLLERR at
    // once, and the handler must be able to ask whether a fault is there
    // without waiting (while it waits for the engine's lock).
    let flags = libc::O_CLOEXEC | libc::O_NONBLOCK;
    // SAFETY: the userfaultfd system call takes only flags.
    let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, flags) } as c_int;
    if fd >= 0 {
        return Ok(fd);
    }
    let sys_err = errno();
    // A process the system call refuses (unprivileged, or a seccomp filter)
    // may still be allowed /dev/userfaultfd (Linux 6.1+). Any other answer
    // is final: ENOSYS from a kernel that has the device means something
    // between the program and the kernel (valgrind, an emulator) does not
    // know the call, and would not deliver its faults either (unless told
    // to go on under valgrind: ZIO_VALGRIND).
    let translated =
        sys_err == libc::ENOSYS && crate::config::get(crate::config::Opt::Valgrind) != 0;
    if sys_err != libc::EPERM && sys_err != libc::EACCES && !translated {
        return Err(OpenError {
            errno: sys_err,
            step: "userfaultfd()",
        });
    }
    // SAFETY: the path is a NUL-terminated literal.
    let dev = unsafe { libc::open(c"/dev/userfaultfd".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if dev < 0 {
        return Err(OpenError {
            errno: sys_err,
            step: "userfaultfd()",
        });
    }
    // SAFETY: USERFAULTFD_IOC_NEW takes the flags as its argument.
    let fd = unsafe { libc::ioctl(dev, USERFAULTFD_IOC_NEW, flags) };
    let e = errno();
    // SAFETY: closing the device fd we opened.
    unsafe { libc::close(dev) };
    if fd < 0 {
        return Err(OpenError {
            errno: e,
            step: "/dev/userfaultfd",
        });
    }
    Ok(fd)
}

fn handshake(fd: c_int, features: u64) -> Result<u64, OpenError> {
    let mut api = UffdioApi {
        api: UFFD_API,
        features,
        ioctls: 0,
    };
    // SAFETY: `api` is a valid uffdio_api for the duration of the call.
    if unsafe { libc::ioctl(fd, UFFDIO_API, &mut api) } < 0 {
        return Err(OpenError {
            errno: errno(),
            step: "UFFDIO_API",
        });
    }
    Ok(api.features)
}

/// The features this kernel offers to this process, or why it offers none.
pub fn probe() -> Result<u64, OpenError> {
    // Asking for no features makes the kernel report all it supports.
    let fd = raw_open()?;
    let r = handshake(fd, 0);
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
    r
}

/// Opens a userfaultfd with `wanted` features (those the kernel lacks are
/// left out; check [`Uffd::features`]).
pub fn open(wanted: u64) -> Result<Uffd, OpenError> {
    let available = probe()?;
    let fd = raw_open()?;
    match handshake(fd, wanted & available) {
        Ok(_) => Ok(Uffd {
            fd,
            features: wanted & available,
            calls: Default::default(),
        }),
        Err(e) => {
            // SAFETY: closing the descriptor opened above.
            unsafe { libc::close(fd) };
            Err(e)
        }
    }
}

/// A short name for common errno values, for messages that must not call
/// `strerror` (it may allocate for unknown values in some locales).
pub fn errno_name(e: i32) -> &'static str {
    match e {
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::ENOSYS => "ENOSYS",
        libc::EINVAL => "EINVAL",
        libc::ENOMEM => "ENOMEM",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::ENOENT => "ENOENT",
        libc::EFAULT => "EFAULT",
        libc::EAGAIN => "EAGAIN",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ETIMEDOUT => "ETIMEDOUT",
        _ => "error",
    }
}

#[cfg(test)]
#[path = "uffd_tests.rs"]
mod tests;
