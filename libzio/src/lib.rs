//! libzio.so: the symbols that `LD_PRELOAD` puts in front of libc.
//!
//! This crate is deliberately thin: each hook counts the call
//! ([`zio_core::stats`]), and either forwards to the real function
//! ([`zio_core::real`]) or, when something tracked may be involved, hands the
//! call to [`zio_core::elide`], where every decision is made. For every hook
//! there is also a `__wrap_` twin: the link step (see `build.rs`) points the
//! library's own calls at the twins so zio never intercepts itself.
//!
//! Where a `memcpy` is decided, in one step: `copy_hooks!` below, then
//! `zio_core::elide::copy`, then `zio_core::engine::Engine::copy`.
//!
//! Rules for code in this file: no allocation, no lock, no copy of a struct
//! (which would emit a `memcpy` call that binds to our own hook) on the
//! pass-through path.

#![allow(clippy::missing_safety_doc)] // each hook has exactly its libc function's contract

use core::ffi::{c_char, c_int, c_uint, c_void, CStr};

use libc::{iovec, mmsghdr, msghdr, off_t, pid_t, sockaddr, socklen_t, ssize_t, timespec};
use smallvec::SmallVec;
use zio_core::elide;
use zio_core::engine::Gather;
use zio_core::heap::ZioHeap;
use zio_core::real;
use zio_core::stats::{self, Hook};

/// zio's own allocations never come from the program's allocator.
#[global_allocator]
static HEAP: ZioHeap = ZioHeap;

const IOV_MAX: usize = 1024;

/// Bytes moved according to a read/write style return value.
#[inline(always)]
fn io(ret: ssize_t) -> u64 {
    if ret > 0 {
        ret as u64
    } else {
        0
    }
}

/// Bytes moved by the first `ret` messages of an `mmsghdr` vector.
///
/// # Safety
/// `v` must hold at least `ret` entries when `ret > 0`.
#[inline]
unsafe fn mmsg_bytes(v: *const mmsghdr, ret: c_int) -> u64 {
    let mut total = 0u64;
    for i in 0..ret.max(0) as usize {
        // SAFETY: the kernel filled `ret` entries of the caller's vector.
        total += u64::from(unsafe { (*v.add(i)).msg_len });
    }
    total
}

/// A caller's iovec array, walked in place as `(base, len)` pairs: reading
/// it builds nothing, so the pass-through path can afford it.
#[derive(Clone)]
struct Iov {
    at: *const iovec,
    left: usize,
}

impl Iov {
    /// The `cnt` entries at `v`.
    ///
    /// # Safety
    /// `v` holds `cnt` valid entries, and they stay valid while the result
    /// is used.
    unsafe fn new(v: *const iovec, cnt: usize) -> Iov {
        Iov { at: v, left: cnt }
    }

    /// The iovec of the message `m`.
    ///
    /// # Safety
    /// `m` is a valid msghdr with a valid iovec, which stays valid while the
    /// result is used.
    unsafe fn of(m: *const msghdr) -> Iov {
        // SAFETY: the caller's message is valid, and so is its iovec.
        unsafe { Iov::new((*m).msg_iov, (*m).msg_iovlen) }
    }

    /// Bytes the buffers hold (saturating: the kernel refuses a total
    /// beyond `ssize_t` anyway).
    fn total(self) -> usize {
        self.fold(0, |t, (_, n)| t.saturating_add(n))
    }

    /// Calls `got(base, n)` for each buffer that `r` bytes received filled,
    /// in order, the last one perhaps in part: how an input call spreads
    /// its bytes over an iovec.
    fn fill(self, mut r: usize, mut got: impl FnMut(usize, usize)) {
        for (a, n) in self {
            if r == 0 {
                break;
            }
            let k = n.min(r);
            got(a, k);
            r -= k;
        }
    }

    /// The pairs collected for the engine (which takes a slice): only when
    /// it is needed, and inline for short arrays.
    fn pieces(self) -> SmallVec<[(usize, usize); 8]> {
        self.collect()
    }
}

impl Iterator for Iov {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        if self.left == 0 {
            return None;
        }
        // SAFETY: `Iov::new`'s contract: `at` is the first of `left` valid
        // entries.
        let e = unsafe { &*self.at };
        self.at = self.at.wrapping_add(1);
        self.left -= 1;
        Some((e.iov_base as usize, e.iov_len))
    }
}

/// The kernel's form of a gather list: inline for the usual one to three
/// runs, as the engine's `Gather` (a heap block per output call cost about
/// 1 us per message at 1 MiB, its allocator state cold after the socket
/// copies).
fn to_iovecs(iov: &[(usize, usize)]) -> SmallVec<[iovec; 4]> {
    iov.iter()
        .map(|&(a, n)| iovec {
            iov_base: a as *mut c_void,
            iov_len: n,
        })
        .collect()
}

/// Sends a gather list in `IOV_MAX` chunks with `call(iov, cnt, done)`
/// (`done` = bytes already written, for offsets). Stops at the first short
/// write or error, returning what was written, as a single large write
/// would; an error before any byte is returned as is.
fn send_chunks(
    iov: &[(usize, usize)],
    mut call: impl FnMut(*const iovec, c_int, usize) -> ssize_t,
) -> ssize_t {
    let v = to_iovecs(iov);
    let mut done = 0usize;
    for chunk in v.chunks(IOV_MAX) {
        let want: usize = chunk.iter().map(|x| x.iov_len).sum();
        let r = call(chunk.as_ptr(), chunk.len() as c_int, done);
        if r < 0 {
            return if done > 0 { done as ssize_t } else { r };
        }
        done += r as usize;
        if (r as usize) < want {
            break;
        }
    }
    done as ssize_t
}

// ----- copies ---------------------------------------------------------------

/// Copy hooks. Each exported symbol is a two-instruction naked trampoline
/// that passes the caller's return address (the call site, for the policy)
/// as an extra argument to the body. The body counts the call and either
/// tail-calls libc (below the threshold or with nothing tracked) or asks the
/// engine.
macro_rules! copy_hooks {
    ($( $name:ident / $wrap:ident / $body:ident, $ra:literal ( $($a:ident : $t:ty),* ), $hook:ident, |$d:ident, $s:ident, $n:ident| $ret:expr, $check:expr; )*) => {$(
        #[doc = concat!("Exported `", stringify!($name), "` (trampoline to its body with the call site).")]
        #[unsafe(naked)]
        #[no_mangle]
        pub unsafe extern "C" fn $name($($a: $t),*) -> *mut c_void {
            core::arch::naked_asm!(
                concat!("mov ", $ra, ", qword ptr [rsp]"),
                "jmp {body}",
                body = sym $body,
            )
        }

        unsafe extern "C" fn $body($($a: $t,)* site: usize) -> *mut c_void {
            #[cold]
            #[inline(never)]
            unsafe fn slow($($a: $t,)* site: usize, counted: bool) -> *mut c_void {
                if !counted {
                    stats::count(Hook::$hook, $n as u64);
                }
                // A fortified call with too small a destination aborts in
                // libc, exactly as without zio.
                // SAFETY: the caller's contract; ranges valid for `n` bytes.
                if $check && unsafe { elide::copy($d as usize, $s as usize, $n, site) } {
                    return $ret;
                }
                // SAFETY: same contract as the libc function.
                unsafe { real::$name($($a),*) }
            }
            let counted = stats::count_fast(Hook::$hook, $n as u64);
            if !counted || elide::copy_needs_engine($n) {
                // SAFETY: same contract, passed on.
                return unsafe { slow($($a,)* site, counted) };
            }
            // SAFETY: the caller gives us exactly the libc function's contract.
            unsafe { real::$name($($a),*) }
        }

        #[doc = concat!("Internal calls to `", stringify!($name), "` land here (`--wrap`): straight to libc.")]
        #[no_mangle]
        pub unsafe extern "C" fn $wrap($($a: $t),*) -> *mut c_void {
            // SAFETY: same contract as the libc function.
            unsafe { real::$name($($a),*) }
        }
    )*};
}

copy_hooks! {
    memcpy / __wrap_memcpy / memcpy_body, "rcx" (d: *mut c_void, s: *const c_void, n: usize), Memcpy, |d, s, n| d, true;
    memmove / __wrap_memmove / memmove_body, "rcx" (d: *mut c_void, s: *const c_void, n: usize), Memmove, |d, s, n| d, true;
    mempcpy / __wrap_mempcpy / mempcpy_body, "rcx" (d: *mut c_void, s: *const c_void, n: usize), Mempcpy, |d, s, n| d.cast::<u8>().wrapping_add(n).cast(), true;
    __memcpy_chk / __wrap___memcpy_chk / memcpy_chk_body, "r8" (d: *mut c_void, s: *const c_void, n: usize, dl: usize), MemcpyChk, |d, s, n| d, n <= dl;
    __memmove_chk / __wrap___memmove_chk / memmove_chk_body, "r8" (d: *mut c_void, s: *const c_void, n: usize, dl: usize), MemmoveChk, |d, s, n| d, n <= dl;
    __mempcpy_chk / __wrap___mempcpy_chk / mempcpy_chk_body, "r8" (d: *mut c_void, s: *const c_void, n: usize, dl: usize), MempcpyChk, |d, s, n| d.cast::<u8>().wrapping_add(n).cast(), n <= dl;
}

// ----- input ----------------------------------------------------------------

/// Input hooks into one buffer: prepare the target, call, record the bytes
/// received as an original.
macro_rules! input_hooks {
    ($( $name:ident / $wrap:ident ( $($a:ident : $t:ty),* ), $hook:ident, $buf:ident, $len:ident; )*) => {$(
        #[doc = concat!("Exported `", stringify!($name), "`: an input call into one buffer.")]
        #[no_mangle]
        pub unsafe extern "C" fn $name($($a: $t),*) -> ssize_t {
            if !elide::input_needs_engine($len) {
                // SAFETY: the caller's contract.
                let r = unsafe { real::$name($($a),*) };
                stats::count(Hook::$hook, io(r));
                return r;
            }
            let at = $buf as usize;
            // A reused input buffer's bytes land in zio's memory instead.
            let redirect = elide::input_begin(at, $len);
            let $buf = match redirect {
                Some(to) => to.to as *mut c_void,
                None => $buf,
            };
            // SAFETY: the caller's contract; a redirected call reads into
            // zio's memory of at least `$len` bytes.
            let r = unsafe { real::$name($($a),*) };
            elide::input_end(at, $len, redirect, r);
            stats::count(Hook::$hook, io(r));
            r
        }

        #[doc = concat!("Internal calls to `", stringify!($name), "` land here (`--wrap`).")]
        #[no_mangle]
        pub unsafe extern "C" fn $wrap($($a: $t),*) -> ssize_t {
            // SAFETY: same contract as the libc function.
            unsafe { real::$name($($a),*) }
        }
    )*};
}

input_hooks! {
    read / __wrap_read (fd: c_int, b: *mut c_void, n: usize), Read, b, n;
    __read_chk / __wrap___read_chk (fd: c_int, b: *mut c_void, n: usize, bl: usize), ReadChk, b, n;
    pread / __wrap_pread (fd: c_int, b: *mut c_void, n: usize, o: off_t), Pread, b, n;
    pread64 / __wrap_pread64 (fd: c_int, b: *mut c_void, n: usize, o: off_t), Pread64, b, n;
    __pread_chk / __wrap___pread_chk (fd: c_int, b: *mut c_void, n: usize, o: off_t, bl: usize), PreadChk, b, n;
    __pread64_chk / __wrap___pread64_chk (fd: c_int, b: *mut c_void, n: usize, o: off_t, bl: usize), Pread64Chk, b, n;
    recv / __wrap_recv (fd: c_int, b: *mut c_void, n: usize, f: c_int), Recv, b, n;
    __recv_chk / __wrap___recv_chk (fd: c_int, b: *mut c_void, n: usize, bl: usize, f: c_int), RecvChk, b, n;
    recvfrom / __wrap_recvfrom (fd: c_int, b: *mut c_void, n: usize, f: c_int, a: *mut sockaddr, al: *mut socklen_t), Recvfrom, b, n;
    __recvfrom_chk / __wrap___recvfrom_chk (fd: c_int, b: *mut c_void, n: usize, bl: usize, f: c_int, a: *mut sockaddr, al: *mut socklen_t), RecvfromChk, b, n;
}

/// Input into the iovecs of one message or several (`msgs`): when the engine
/// may be needed, every buffer is prepared before the call, and after it
/// the bytes each message received (`received(r, i)` for message `i` of a
/// call that returned `r`; `None` past the last one filled) are recorded
/// buffer by buffer, in order. Otherwise the call alone, with nothing built.
fn vec_input<R: Copy>(
    msgs: impl Iterator<Item = Iov> + Clone,
    call: impl FnOnce() -> R,
    received: impl Fn(R, usize) -> Option<usize>,
) -> R {
    // Inactive (ZIO_ENABLE=0, no userfaultfd): not even the walk.
    if !elide::active()
        || !elide::input_needs_engine(msgs.clone().fold(0, |t, v| t.saturating_add(v.total())))
    {
        return call();
    }
    for (a, n) in msgs.clone().flatten() {
        elide::input_prepare(a, n);
    }
    let r = call();
    for (i, v) in msgs.enumerate() {
        match received(r, i) {
            Some(got) => v.fill(got, elide::input_done),
            None => break,
        }
    }
    r
}

/// [`vec_input`] of one iovec, whose call returns the bytes received.
///
/// # Safety
/// `v` holds `cnt` valid entries.
unsafe fn iov_input(v: *const iovec, cnt: c_int, call: impl FnOnce() -> ssize_t) -> ssize_t {
    // SAFETY: the caller's array.
    let iov = unsafe { Iov::new(v, cnt.max(0) as usize) };
    vec_input(core::iter::once(iov), call, |r, _| {
        (r > 0).then_some(r as usize)
    })
}

/// Exported `readv`.
#[no_mangle]
pub unsafe extern "C" fn readv(fd: c_int, v: *const iovec, c: c_int) -> ssize_t {
    // SAFETY: the caller's contract.
    let r = unsafe { iov_input(v, c, || real::readv(fd, v, c)) };
    stats::count(Hook::Readv, io(r));
    r
}

/// Exported `preadv`.
#[no_mangle]
pub unsafe extern "C" fn preadv(fd: c_int, v: *const iovec, c: c_int, o: off_t) -> ssize_t {
    // SAFETY: the caller's contract.
    let r = unsafe { iov_input(v, c, || real::preadv(fd, v, c, o)) };
    stats::count(Hook::Preadv, io(r));
    r
}

/// Exported `preadv2`.
#[no_mangle]
pub unsafe extern "C" fn preadv2(
    fd: c_int,
    v: *const iovec,
    c: c_int,
    o: off_t,
    f: c_int,
) -> ssize_t {
    // SAFETY: the caller's contract.
    let r = unsafe { iov_input(v, c, || real::preadv2(fd, v, c, o, f)) };
    stats::count(Hook::Preadv2, io(r));
    r
}

/// Exported `recvmsg`.
#[no_mangle]
pub unsafe extern "C" fn recvmsg(fd: c_int, m: *mut msghdr, f: c_int) -> ssize_t {
    // SAFETY: the caller's msghdr and its iovec are valid.
    let iov = unsafe { Iov::of(m) };
    let r = vec_input(
        core::iter::once(iov),
        // SAFETY: the caller's contract.
        || unsafe { real::recvmsg(fd, m, f) },
        |r, _| (r > 0).then_some(r as usize),
    );
    stats::count(Hook::Recvmsg, io(r));
    r
}

/// Exported `recvmmsg`: each message's buffers are prepared and recorded.
#[no_mangle]
pub unsafe extern "C" fn recvmmsg(
    fd: c_int,
    m: *mut mmsghdr,
    n: c_uint,
    f: c_int,
    t: *mut timespec,
) -> c_int {
    let r = vec_input(
        // SAFETY: the caller's vector holds `n` messages, each with a valid
        // iovec.
        (0..n as usize).map(|i| unsafe { Iov::of(&(*m.add(i)).msg_hdr) }),
        // SAFETY: the caller's contract.
        || unsafe { real::recvmmsg(fd, m, n, f, t) },
        // SAFETY: the kernel filled the first `r` entries' lengths.
        |r, i| (i < r.max(0) as usize).then(|| unsafe { (*m.add(i)).msg_len } as usize),
    );
    // SAFETY: `r` entries were filled.
    stats::count(Hook::Recvmmsg, unsafe { mmsg_bytes(m, r) });
    r
}

// ----- output ---------------------------------------------------------------

/// Exported `write`: unmapped pieces are written from their originals.
#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, b: *const c_void, n: usize) -> ssize_t {
    let r = match elide::output(b as usize, n) {
        // SAFETY: the caller's contract.
        None => unsafe { real::write(fd, b, n) },
        Some(g) => {
            // The gather list points at mapped memory (originals, pinned,
            // and the caller's own buffer).
            let r = match single(&g) {
                // SAFETY: one mapped run of the gather list.
                Some((a, len)) => unsafe { real::write(fd, a, len) },
                // SAFETY: chunks of the mapped gather list.
                None => send_chunks(&g.iov, |v, c, _| unsafe { real::writev(fd, v, c) }),
            };
            elide::output_done(&g, r);
            r
        }
    };
    stats::count(Hook::Write, io(r));
    r
}

macro_rules! pwrite_hooks {
    ($($name:ident, $hook:ident;)*) => {$(
        #[doc = concat!("Exported `", stringify!($name), "`: unmapped pieces are written from their originals.")]
        #[no_mangle]
        pub unsafe extern "C" fn $name(fd: c_int, b: *const c_void, n: usize, o: off_t) -> ssize_t {
            let r = match elide::output(b as usize, n) {
                // SAFETY: the caller's contract.
                None => unsafe { real::$name(fd, b, n, o) },
                Some(g) => {
                    // As in `write`; offsets advance per chunk.
                    let r = match single(&g) {
                        // SAFETY: one mapped run of the gather list.
                        Some((a, len)) => unsafe { real::$name(fd, a, len, o) },
                        // SAFETY: chunks of the mapped gather list.
                        None => send_chunks(&g.iov, |v, c, done| unsafe { real::pwritev(fd, v, c, o + done as off_t) }),
                    };
                    elide::output_done(&g, r);
                    r
                }
            };
            stats::count(Hook::$hook, io(r));
            r
        }
    )*};
}

pwrite_hooks! {
    pwrite, Pwrite;
    pwrite64, Pwrite64;
}

/// Output from an iovec: the whole vector is rewritten, then sent in
/// `IOV_MAX` chunks with `call`.
///
/// # Safety
/// `v` holds `cnt` valid entries.
unsafe fn vec_output(
    v: *const iovec,
    cnt: c_int,
    direct: impl FnOnce() -> ssize_t,
    call: impl FnMut(*const iovec, c_int, usize) -> ssize_t,
) -> ssize_t {
    if !elide::tracking() {
        return direct();
    }
    // SAFETY: the caller's array.
    match elide::output_vec(&unsafe { Iov::new(v, cnt.max(0) as usize) }.pieces()) {
        None => direct(),
        Some(g) => {
            let r = send_chunks(&g.iov, call);
            elide::output_done(&g, r);
            r
        }
    }
}

/// Exported `writev`.
#[no_mangle]
pub unsafe extern "C" fn writev(fd: c_int, v: *const iovec, c: c_int) -> ssize_t {
    // SAFETY: the caller's contract; chunks point at mapped memory.
    let r = unsafe {
        vec_output(
            v,
            c,
            || real::writev(fd, v, c),
            |v2, c2, _| real::writev(fd, v2, c2),
        )
    };
    stats::count(Hook::Writev, io(r));
    r
}

/// Exported `pwritev`.
#[no_mangle]
pub unsafe extern "C" fn pwritev(fd: c_int, v: *const iovec, c: c_int, o: off_t) -> ssize_t {
    // SAFETY: as in `writev`.
    let r = unsafe {
        vec_output(
            v,
            c,
            || real::pwritev(fd, v, c, o),
            |v2, c2, done| real::pwritev(fd, v2, c2, o + done as off_t),
        )
    };
    stats::count(Hook::Pwritev, io(r));
    r
}

/// Exported `pwritev2`. With offset -1 (the current position) every chunk
/// also writes at the current position, which advances, as one call would.
#[no_mangle]
pub unsafe extern "C" fn pwritev2(
    fd: c_int,
    v: *const iovec,
    c: c_int,
    o: off_t,
    f: c_int,
) -> ssize_t {
    // SAFETY: as in `writev`.
    let r = unsafe {
        vec_output(
            v,
            c,
            || real::pwritev2(fd, v, c, o, f),
            |v2, c2, done| {
                let off = if o < 0 { o } else { o + done as off_t };
                real::pwritev2(fd, v2, c2, off, f)
            },
        )
    };
    stats::count(Hook::Pwritev2, io(r));
    r
}

/// Sends a gather list as one message (`sendmsg`) with the caller's name,
/// control data and flags. A message needing more than `IOV_MAX` pieces is
/// not substituted (splitting it could split a datagram): it goes out from
/// the caller's buffer, whose unmapped pages the kernel faults in.
///
/// # Safety
/// `tmpl` is a valid msghdr whose iovec is replaced.
unsafe fn send_gather(fd: c_int, g: &Gather, tmpl: &msghdr, f: c_int) -> ssize_t {
    let v = to_iovecs(&g.iov);
    // SAFETY: `tmpl` is a valid msghdr (a plain C struct, copied bitwise).
    let mut m: msghdr = unsafe { core::ptr::read(tmpl) };
    m.msg_iov = v.as_ptr() as *mut iovec;
    m.msg_iovlen = v.len() as _;
    // SAFETY: `m` is the caller's message with a valid, mapped iovec.
    unsafe { real::sendmsg(fd, &m, f) }
}

/// The gather list's only run, if it has just one (the usual case: a whole
/// copy elided from one message): the output then goes out by the caller's
/// own call from the substituted address. As a `writev` it cost 0.25 us
/// more per 64 KiB write into loopback TCP (the kernel imports the vector),
/// a tenth of zio's own time per 64 KiB echo.
fn single(g: &Gather) -> Option<(*const c_void, usize)> {
    match *g.iov.as_slice() {
        [(a, n)] => Some((a as *const c_void, n)),
        _ => None,
    }
}

fn empty_msg() -> msghdr {
    // SAFETY: an all-zero msghdr is a valid empty message.
    unsafe { core::mem::zeroed() }
}

/// Exported `send`.
#[no_mangle]
pub unsafe extern "C" fn send(fd: c_int, b: *const c_void, n: usize, f: c_int) -> ssize_t {
    let r = match elide::output(b as usize, n) {
        Some(g) if g.iov.len() <= IOV_MAX => {
            let r = match single(&g) {
                // SAFETY: the run is mapped memory (as in `write`).
                Some((a, len)) => unsafe { real::send(fd, a, len, f) },
                // SAFETY: an empty template: no name, no control data.
                None => unsafe { send_gather(fd, &g, &empty_msg(), f) },
            };
            elide::output_done(&g, r);
            r
        }
        other => {
            if let Some(g) = other {
                elide::output_done(&g, 0);
            }
            // SAFETY: the caller's contract.
            unsafe { real::send(fd, b, n, f) }
        }
    };
    stats::count(Hook::Send, io(r));
    r
}

/// Exported `sendto`.
#[no_mangle]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    b: *const c_void,
    n: usize,
    f: c_int,
    a: *const sockaddr,
    al: socklen_t,
) -> ssize_t {
    let r = match elide::output(b as usize, n) {
        Some(g) if g.iov.len() <= IOV_MAX => {
            let r = match single(&g) {
                // SAFETY: the run is mapped memory (as in `write`); the
                // caller's address as is.
                Some((run, len)) => unsafe { real::sendto(fd, run, len, f, a, al) },
                None => {
                    let mut m = empty_msg();
                    m.msg_name = a as *mut c_void;
                    m.msg_namelen = al;
                    // SAFETY: the caller's address, as sendto would pass it.
                    unsafe { send_gather(fd, &g, &m, f) }
                }
            };
            elide::output_done(&g, r);
            r
        }
        other => {
            if let Some(g) = other {
                elide::output_done(&g, 0);
            }
            // SAFETY: the caller's contract.
            unsafe { real::sendto(fd, b, n, f, a, al) }
        }
    };
    stats::count(Hook::Sendto, io(r));
    r
}

/// Exported `sendmsg`.
#[no_mangle]
pub unsafe extern "C" fn sendmsg(fd: c_int, m: *const msghdr, f: c_int) -> ssize_t {
    let g = if elide::tracking() {
        // SAFETY: the caller's msghdr and its iovec are valid.
        elide::output_vec(&unsafe { Iov::of(m) }.pieces())
    } else {
        None
    };
    let r = match g {
        Some(g) if g.iov.len() <= IOV_MAX => {
            // SAFETY: the caller's message with its iovec replaced.
            let r = unsafe { send_gather(fd, &g, &*m, f) };
            elide::output_done(&g, r);
            r
        }
        other => {
            if let Some(g) = other {
                elide::output_done(&g, 0);
            }
            // SAFETY: the caller's contract.
            unsafe { real::sendmsg(fd, m, f) }
        }
    };
    stats::count(Hook::Sendmsg, io(r));
    r
}

/// Exported `sendmmsg`: every message is rewritten like `sendmsg`.
#[no_mangle]
pub unsafe extern "C" fn sendmmsg(fd: c_int, m: *mut mmsghdr, n: c_uint, f: c_int) -> c_int {
    if !elide::tracking() {
        // SAFETY: the caller's contract.
        let r = unsafe { real::sendmmsg(fd, m, n, f) };
        // SAFETY: `r` entries were filled.
        stats::count(Hook::Sendmmsg, unsafe { mmsg_bytes(m, r) });
        return r;
    }
    let mut copies: Vec<mmsghdr> = Vec::with_capacity(n as usize);
    let mut vecs: Vec<Vec<iovec>> = Vec::with_capacity(n as usize);
    let mut gathers = Vec::with_capacity(n as usize);
    for i in 0..n as usize {
        // SAFETY: the caller's vector holds `n` entries.
        let mut h: mmsghdr = unsafe { core::ptr::read(m.add(i)) };
        // SAFETY: each header's iovec is valid.
        let g = elide::output_vec(&unsafe { Iov::of(&h.msg_hdr) }.pieces());
        if let Some(g) = &g {
            if g.iov.len() <= IOV_MAX {
                // On the heap: `vecs` moves its elements as it grows, and
                // an inline array would move with them.
                let v = to_iovecs(&g.iov).into_vec();
                h.msg_hdr.msg_iov = v.as_ptr() as *mut iovec;
                h.msg_hdr.msg_iovlen = v.len() as _;
                vecs.push(v);
            }
        }
        gathers.push(g);
        copies.push(h);
    }
    // SAFETY: the copies are the caller's messages with mapped iovecs.
    let r = unsafe { real::sendmmsg(fd, copies.as_mut_ptr(), n, f) };
    // Pins first: writing into the caller's memory while holding them could
    // land on a protected page of a pinned original and wait for ourselves.
    for (i, g) in gathers.iter().enumerate() {
        if let Some(g) = g {
            let sent_from_gather = g.iov.len() <= IOV_MAX && (i as c_int) < r;
            let sent = if sent_from_gather {
                copies[i].msg_len as isize
            } else {
                0
            };
            elide::output_done(g, sent);
        }
    }
    for (i, c) in copies.iter().enumerate().take(r.max(0) as usize) {
        // SAFETY: report each message's length back in the caller's vector.
        unsafe { (*m.add(i)).msg_len = c.msg_len };
    }
    drop(vecs);
    // SAFETY: `r` entries were filled.
    stats::count(Hook::Sendmmsg, unsafe { mmsg_bytes(m, r) });
    r
}

// ----- memory ---------------------------------------------------------------

/// Exported `free`: tracked allocations go through the engine first
/// (quarantined if they hold data that unmapped copies still need).
#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: `p` is the caller's live allocation.
    if elide::tracking() && unsafe { elide::free(p as usize) } {
        stats::count(Hook::Free, 0);
        return;
    }
    // SAFETY: the caller's contract.
    unsafe { real::free(p) };
    stats::count(Hook::Free, 0);
}

/// Exported `realloc`: of tracked memory, an elided copy into a fresh
/// allocation plus a free; otherwise libc's.
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, n: usize) -> *mut c_void {
    stats::count(Hook::Realloc, n as u64);
    if n > 0 && elide::tracking() {
        // SAFETY: `p` is the caller's live allocation (or null).
        if let Some(old) = unsafe { elide::realloc_tracked(p as usize) } {
            // SAFETY: a fresh block from the program's own allocator.
            let q = unsafe { libc::malloc(n) };
            if q.is_null() {
                return q; // realloc failure: the old block stays valid
            }
            let len = old.min(n);
            // SAFETY: both blocks hold at least `len` bytes and are disjoint.
            unsafe {
                if !elide::copy(q as usize, p as usize, len, realloc as *const () as usize) {
                    real::memcpy(q, p, len);
                }
                if !elide::free(p as usize) {
                    real::free(p);
                }
            }
            return q;
        }
    }
    // SAFETY: the caller's contract.
    unsafe { real::realloc(p, n) }
}

/// Exported `munmap`.
#[no_mangle]
pub unsafe extern "C" fn munmap(a: *mut c_void, n: usize) -> c_int {
    elide::discard(a as usize, n, false, true);
    // SAFETY: the caller's contract.
    let r = unsafe { real::munmap(a, n) };
    stats::count(Hook::Munmap, n as u64);
    r
}

/// Exported `mremap`. It is variadic in C (the fifth argument only with
/// MREMAP_FIXED or MREMAP_DONTUNMAP); on x86-64 variadic integer arguments
/// travel in the same registers as fixed ones, so taking five and passing
/// five on is exact: the real mremap reads the fifth only when the flags say
/// so. Data moving to a new place must be in memory first: the moved range
/// would lose its registration.
#[no_mangle]
pub unsafe extern "C" fn mremap(
    a: *mut c_void,
    o: usize,
    n: usize,
    f: c_int,
    na: *mut c_void,
) -> *mut c_void {
    elide::discard(a as usize, o, true, true);
    // SAFETY: the caller's contract.
    let r = unsafe { real::mremap(a, o, n, f, na) };
    stats::count(Hook::Mremap, n as u64);
    r
}

/// Exported `madvise`: advice that discards contents drops what zio tracks
/// there first.
#[no_mangle]
pub unsafe extern "C" fn madvise(a: *mut c_void, n: usize, adv: c_int) -> c_int {
    const MADV_DONTNEED_LOCKED: c_int = 24;
    if matches!(
        adv,
        libc::MADV_DONTNEED | libc::MADV_FREE | libc::MADV_REMOVE | MADV_DONTNEED_LOCKED
    ) {
        elide::discard(a as usize, n, false, false);
    }
    // SAFETY: the caller's contract.
    let r = unsafe { real::madvise(a, n, adv) };
    if r == 0 && matches!(adv, libc::MADV_DONTNEED | MADV_DONTNEED_LOCKED) {
        elide::after_discard(a as usize, n);
    }
    stats::count(Hook::Madvise, n as u64);
    r
}

/// Exported `fork`: everything elided is materialized first (the child gets
/// no userfaultfd state); the child starts its own counters and engine.
#[no_mangle]
pub unsafe extern "C" fn fork() -> pid_t {
    let g = elide::fork_prepare();
    // SAFETY: fork has no preconditions.
    let pid = unsafe { real::fork() };
    elide::fork_finish(g, pid == 0);
    if pid == 0 {
        zio_core::runtime::after_fork_in_child();
    }
    stats::count(Hook::Fork, 0);
    pid
}

/// Forwarding twins for the hooks written out by hand above.
macro_rules! wraps {
    ($( $wrap:ident / $name:ident ( $($a:ident : $t:ty),* ) -> $r:ty; )*) => {$(
        #[doc = concat!("Internal calls to `", stringify!($name), "` land here (`--wrap`): straight to libc.")]
        #[no_mangle]
        pub unsafe extern "C" fn $wrap($($a: $t),*) -> $r {
            // SAFETY: same contract as the libc function.
            unsafe { real::$name($($a),*) }
        }
    )*};
}

wraps! {
    __wrap_readv / readv (fd: c_int, v: *const iovec, c: c_int) -> ssize_t;
    __wrap_preadv / preadv (fd: c_int, v: *const iovec, c: c_int, o: off_t) -> ssize_t;
    __wrap_preadv2 / preadv2 (fd: c_int, v: *const iovec, c: c_int, o: off_t, f: c_int) -> ssize_t;
    __wrap_recvmsg / recvmsg (fd: c_int, m: *mut msghdr, f: c_int) -> ssize_t;
    __wrap_recvmmsg / recvmmsg (fd: c_int, m: *mut mmsghdr, n: c_uint, f: c_int, t: *mut timespec) -> c_int;
    __wrap_write / write (fd: c_int, b: *const c_void, n: usize) -> ssize_t;
    __wrap_pwrite / pwrite (fd: c_int, b: *const c_void, n: usize, o: off_t) -> ssize_t;
    __wrap_pwrite64 / pwrite64 (fd: c_int, b: *const c_void, n: usize, o: off_t) -> ssize_t;
    __wrap_writev / writev (fd: c_int, v: *const iovec, c: c_int) -> ssize_t;
    __wrap_pwritev / pwritev (fd: c_int, v: *const iovec, c: c_int, o: off_t) -> ssize_t;
    __wrap_pwritev2 / pwritev2 (fd: c_int, v: *const iovec, c: c_int, o: off_t, f: c_int) -> ssize_t;
    __wrap_send / send (fd: c_int, b: *const c_void, n: usize, f: c_int) -> ssize_t;
    __wrap_sendto / sendto (fd: c_int, b: *const c_void, n: usize, f: c_int, a: *const sockaddr, al: socklen_t) -> ssize_t;
    __wrap_sendmsg / sendmsg (fd: c_int, m: *const msghdr, f: c_int) -> ssize_t;
    __wrap_sendmmsg / sendmmsg (fd: c_int, m: *mut mmsghdr, n: c_uint, f: c_int) -> c_int;
    __wrap_free / free (p: *mut c_void) -> ();
    __wrap_realloc / realloc (p: *mut c_void, n: usize) -> *mut c_void;
    __wrap_munmap / munmap (a: *mut c_void, n: usize) -> c_int;
    __wrap_mremap / mremap (a: *mut c_void, o: usize, n: usize, f: c_int, na: *mut c_void) -> *mut c_void;
    __wrap_madvise / madvise (a: *mut c_void, n: usize, adv: c_int) -> c_int;
    __wrap_fork / fork () -> pid_t;
}

// ----- introspection --------------------------------------------------------

/// Exported `zio_counter`: the current value of the engine counter `name`
/// (the names the `ZIO_STATS=1` summary prints, such as `elided_copies`,
/// `elided_bytes`, `faults_missing` or `bytes_substituted`), or -1 if the
/// name is unknown, `name` is null, or the engine has not started in this
/// process (it starts at the first input call that reaches `ZIO_THRESHOLD`;
/// never with `ZIO_ENABLE=0` or without userfaultfd). A value too large for
/// `i64` reads as `i64::MAX`.
///
/// One name is not the engine's and reads whenever zio is loaded:
/// `heap_allocations`, the blocks zio's own heap has handed out in this
/// process so far (`zio_core::stats::PROCESS_COUNTERS`). Unchanged across a
/// stretch of calls, it proves they allocated nothing inside zio.
///
/// For tests and benches that must prove elision happened, and for
/// programs that want to look at themselves: find it with
/// `dlsym(RTLD_DEFAULT, "zio_counter")`, which is null when zio is not
/// loaded. It is not a hooked symbol (it wraps nothing in libc), so it is
/// not in `hooked-symbols.txt`. It takes the engine's lock for a moment, so
/// it is meant to be called now and then, not in a hot loop. It allocates
/// nothing.
///
/// # Safety
/// `name` is null or points to a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn zio_counter(name: *const c_char) -> i64 {
    if name.is_null() {
        return -1;
    }
    // The name is read before the engine's lock is taken: a name in an
    // unmapped copy faults, and the handler needs that lock.
    // SAFETY: the caller passes a NUL-terminated string.
    let name = unsafe { CStr::from_ptr(name) }.to_bytes();
    if let Some(get) = stats::process_counter(name) {
        return i64::try_from(get()).unwrap_or(i64::MAX);
    }
    let Some(get) = stats::engine_counter(name) else {
        return -1;
    };
    match elide::counters_now() {
        Some(c) => i64::try_from(get(&c)).unwrap_or(i64::MAX),
        None => -1,
    }
}

extern "C" fn zio_init(_argc: c_int, _argv: *const *const u8, _envp: *const *const u8) {
    zio_core::runtime::init();
}

extern "C" fn zio_fini() {
    zio_core::runtime::at_exit();
}

// Constructor and destructor: glibc runs `.init_array` entries before `main`
// (with argc, argv, envp) and `.fini_array` entries at `exit`, after the
// program's atexit handlers, so the summary counts everything.
#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn(c_int, *const *const u8, *const *const u8) = zio_init;

#[used]
#[link_section = ".fini_array"]
static FINI: extern "C" fn() = zio_fini;
