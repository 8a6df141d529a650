//! libzio.so: the symbols that `LD_PRELOAD` puts in front of libc.
//!
//! This crate is deliberately thin. Each exported hook forwards to the real
//! function ([`zio_core::real`]) and counts the call ([`zio_core::stats`]);
//! later mechanisms decide in `zio_core` and are called from here. For every
//! hook there is also a `__wrap_` twin: the link step (see `build.rs`) points
//! the library's own calls at the twins so zio never intercepts itself.
//!
//! Rules for code in this file: no allocation, no lock, no copy of a struct
//! (which would emit a `memcpy` call that binds to our own hook), nothing but
//! forwarding on the pass-through path.

#![allow(clippy::missing_safety_doc)] // each hook has exactly its libc function's contract

use core::ffi::{c_int, c_uint, c_void};

use libc::{iovec, mmsghdr, msghdr, off_t, pid_t, sockaddr, socklen_t, ssize_t, timespec};
use zio_core::real;
use zio_core::stats::{self, Hook};

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

/// Copy hooks: the byte count is known before the call, so count first and
/// end in a tail call to libc (no frame of our own around the copy). The
/// first call on a thread claims its counter slot out of line, in `slow`.
macro_rules! copy_hooks {
    ($( $name:ident / $wrap:ident ( $($a:ident : $t:ty),* ), $hook:ident, $len:ident; )*) => {$(
        #[doc = concat!("Exported `", stringify!($name), "`: counts the call and forwards to libc.")]
        #[no_mangle]
        pub unsafe extern "C" fn $name($($a: $t),*) -> *mut c_void {
            #[cold]
            #[inline(never)]
            unsafe fn slow($($a: $t),*) -> *mut c_void {
                stats::count(Hook::$hook, $len as u64);
                // SAFETY: same contract as the libc function.
                unsafe { real::$name($($a),*) }
            }
            if !stats::count_fast(Hook::$hook, $len as u64) {
                // SAFETY: same contract, passed on.
                return unsafe { slow($($a),*) };
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
    memcpy / __wrap_memcpy (d: *mut c_void, s: *const c_void, n: usize), Memcpy, n;
    memmove / __wrap_memmove (d: *mut c_void, s: *const c_void, n: usize), Memmove, n;
    mempcpy / __wrap_mempcpy (d: *mut c_void, s: *const c_void, n: usize), Mempcpy, n;
    __memcpy_chk / __wrap___memcpy_chk (d: *mut c_void, s: *const c_void, n: usize, dl: usize), MemcpyChk, n;
    __memmove_chk / __wrap___memmove_chk (d: *mut c_void, s: *const c_void, n: usize, dl: usize), MemmoveChk, n;
    __mempcpy_chk / __wrap___mempcpy_chk (d: *mut c_void, s: *const c_void, n: usize, dl: usize), MempcpyChk, n;
}

/// IO and memory hooks: forward, then count what the call reports it moved.
macro_rules! hooks {
    ($( $name:ident / $wrap:ident ( $($a:ident : $t:ty),* ) -> $r:ty, $hook:ident, |$ret:ident| $bytes:expr ; )*) => {$(
        #[doc = concat!("Exported `", stringify!($name), "`: forwards to libc and counts the call.")]
        #[no_mangle]
        pub unsafe extern "C" fn $name($($a: $t),*) -> $r {
            // SAFETY: the caller gives us exactly the libc function's contract.
            let $ret = unsafe { real::$name($($a),*) };
            #[allow(unused_unsafe)]
            // SAFETY: `$bytes` only reads what the call just produced.
            stats::count(Hook::$hook, unsafe { $bytes });
            $ret
        }

        #[doc = concat!("Internal calls to `", stringify!($name), "` land here (`--wrap`): straight to libc.")]
        #[no_mangle]
        pub unsafe extern "C" fn $wrap($($a: $t),*) -> $r {
            // SAFETY: same contract as the libc function.
            unsafe { real::$name($($a),*) }
        }
    )*};
}

hooks! {
    read / __wrap_read (fd: c_int, b: *mut c_void, n: usize) -> ssize_t, Read, |r| io(r);
    __read_chk / __wrap___read_chk (fd: c_int, b: *mut c_void, n: usize, bl: usize) -> ssize_t, ReadChk, |r| io(r);
    pread / __wrap_pread (fd: c_int, b: *mut c_void, n: usize, o: off_t) -> ssize_t, Pread, |r| io(r);
    pread64 / __wrap_pread64 (fd: c_int, b: *mut c_void, n: usize, o: off_t) -> ssize_t, Pread64, |r| io(r);
    __pread_chk / __wrap___pread_chk (fd: c_int, b: *mut c_void, n: usize, o: off_t, bl: usize) -> ssize_t, PreadChk, |r| io(r);
    __pread64_chk / __wrap___pread64_chk (fd: c_int, b: *mut c_void, n: usize, o: off_t, bl: usize) -> ssize_t, Pread64Chk, |r| io(r);
    readv / __wrap_readv (fd: c_int, v: *const iovec, c: c_int) -> ssize_t, Readv, |r| io(r);
    preadv / __wrap_preadv (fd: c_int, v: *const iovec, c: c_int, o: off_t) -> ssize_t, Preadv, |r| io(r);
    preadv2 / __wrap_preadv2 (fd: c_int, v: *const iovec, c: c_int, o: off_t, f: c_int) -> ssize_t, Preadv2, |r| io(r);
    recv / __wrap_recv (fd: c_int, b: *mut c_void, n: usize, f: c_int) -> ssize_t, Recv, |r| io(r);
    __recv_chk / __wrap___recv_chk (fd: c_int, b: *mut c_void, n: usize, bl: usize, f: c_int) -> ssize_t, RecvChk, |r| io(r);
    recvfrom / __wrap_recvfrom (fd: c_int, b: *mut c_void, n: usize, f: c_int, a: *mut sockaddr, al: *mut socklen_t) -> ssize_t, Recvfrom, |r| io(r);
    __recvfrom_chk / __wrap___recvfrom_chk (fd: c_int, b: *mut c_void, n: usize, bl: usize, f: c_int, a: *mut sockaddr, al: *mut socklen_t) -> ssize_t, RecvfromChk, |r| io(r);
    recvmsg / __wrap_recvmsg (fd: c_int, m: *mut msghdr, f: c_int) -> ssize_t, Recvmsg, |r| io(r);
    recvmmsg / __wrap_recvmmsg (fd: c_int, m: *mut mmsghdr, n: c_uint, f: c_int, t: *mut timespec) -> c_int, Recvmmsg, |r| mmsg_bytes(m, r);
    write / __wrap_write (fd: c_int, b: *const c_void, n: usize) -> ssize_t, Write, |r| io(r);
    pwrite / __wrap_pwrite (fd: c_int, b: *const c_void, n: usize, o: off_t) -> ssize_t, Pwrite, |r| io(r);
    pwrite64 / __wrap_pwrite64 (fd: c_int, b: *const c_void, n: usize, o: off_t) -> ssize_t, Pwrite64, |r| io(r);
    writev / __wrap_writev (fd: c_int, v: *const iovec, c: c_int) -> ssize_t, Writev, |r| io(r);
    pwritev / __wrap_pwritev (fd: c_int, v: *const iovec, c: c_int, o: off_t) -> ssize_t, Pwritev, |r| io(r);
    pwritev2 / __wrap_pwritev2 (fd: c_int, v: *const iovec, c: c_int, o: off_t, f: c_int) -> ssize_t, Pwritev2, |r| io(r);
    send / __wrap_send (fd: c_int, b: *const c_void, n: usize, f: c_int) -> ssize_t, Send, |r| io(r);
    sendto / __wrap_sendto (fd: c_int, b: *const c_void, n: usize, f: c_int, a: *const sockaddr, al: socklen_t) -> ssize_t, Sendto, |r| io(r);
    sendmsg / __wrap_sendmsg (fd: c_int, m: *const msghdr, f: c_int) -> ssize_t, Sendmsg, |r| io(r);
    sendmmsg / __wrap_sendmmsg (fd: c_int, m: *mut mmsghdr, n: c_uint, f: c_int) -> c_int, Sendmmsg, |r| mmsg_bytes(m, r);
    free / __wrap_free (p: *mut c_void) -> (), Free, |_r| 0;
    realloc / __wrap_realloc (p: *mut c_void, n: usize) -> *mut c_void, Realloc, |_r| n as u64;
    munmap / __wrap_munmap (a: *mut c_void, n: usize) -> c_int, Munmap, |_r| n as u64;
    // mremap is variadic in C (the fifth argument only with MREMAP_FIXED or
    // MREMAP_DONTUNMAP). On x86-64 variadic integer arguments travel in the
    // same registers as fixed ones, so taking five and passing five on is
    // exact: the real mremap reads the fifth only when the flags say so.
    mremap / __wrap_mremap (a: *mut c_void, o: usize, n: usize, f: c_int, na: *mut c_void) -> *mut c_void, Mremap, |_r| n as u64;
    madvise / __wrap_madvise (a: *mut c_void, n: usize, adv: c_int) -> c_int, Madvise, |_r| n as u64;
}

/// Exported `fork`: forwards to libc; the child starts its own counters.
#[no_mangle]
pub unsafe extern "C" fn fork() -> pid_t {
    // SAFETY: fork has no preconditions.
    let pid = unsafe { real::fork() };
    if pid == 0 {
        zio_core::runtime::after_fork_in_child();
    }
    stats::count(Hook::Fork, 0);
    pid
}

/// Internal calls to `fork` land here (`--wrap`): straight to libc.
#[no_mangle]
pub unsafe extern "C" fn __wrap_fork() -> pid_t {
    // SAFETY: fork has no preconditions.
    unsafe { real::fork() }
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
