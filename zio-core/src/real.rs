//! The real libc functions behind each hook.
//!
//! Resolved once with `dlsym(RTLD_NEXT)` (the definition that would have been
//! used without libzio.so, so a program's own allocator is respected) in the
//! library constructor, and cached in atomics: a call through here is one
//! relaxed load and one indirect call. A hook may run before the constructor
//! (another library's constructor copying memory): it then resolves
//! everything on the spot. Only a call re-entered from inside `dlsym` on the
//! resolving thread uses a fallback with the same semantics: `rep movsb` for
//! copies, the raw system call for IO, glibc's `__libc_free` and
//! `__libc_realloc` for the allocator (what glibc-internal memory needs).

use core::ffi::{c_int, c_long, c_uint, c_void};
use core::sync::atomic::{AtomicI32, AtomicU8, AtomicUsize, Ordering};

use libc::{iovec, mmsghdr, msghdr, off_t, pid_t, sockaddr, socklen_t, ssize_t, timespec};

/// Resolution state: 0 = not started, 1 = in progress, 2 = done.
static STATE: AtomicU8 = AtomicU8::new(0);

macro_rules! real_fns {
    ($( $name:ident ( $($a:ident : $t:ty),* ) -> $r:ty = $fallback:expr ; )*) => {
        mod slot {
            use super::*;
            $( #[allow(non_upper_case_globals)]
               pub static $name: AtomicUsize = AtomicUsize::new(0); )*
        }

        /// Symbol names with their cache cells, for [`resolve_all`].
        static TABLE: &[(&str, &AtomicUsize)] = &[
            $( (concat!(stringify!($name), "\0"), &slot::$name), )*
        ];

        $(
            #[doc = concat!("Calls the real `", stringify!($name), "`.")]
            ///
            /// # Safety
            /// Same contract as the libc function.
            #[inline(always)]
            pub unsafe fn $name($($a: $t),*) -> $r {
                let p = slot::$name.load(Ordering::Relaxed);
                if p == 0 {
                    // SAFETY: same contract, passed on.
                    return unsafe { unresolved::$name($($a),*) };
                }
                // SAFETY: `p` was returned by dlsym for this name, whose C
                // prototype is the one written here; the caller keeps its
                // contract.
                unsafe {
                    let f: unsafe extern "C" fn($($t),*) -> $r = core::mem::transmute(p);
                    f($($a),*)
                }
            }
        )*

        /// Calls made before resolution: kept out of line so the hot path
        /// above is a load and a tail call.
        mod unresolved {
            use super::*;
            $(
            #[cold]
            #[inline(never)]
            pub(super) unsafe fn $name($($a: $t),*) -> $r {
                let p = resolve_slow(&slot::$name);
                if p == 0 {
                    // SAFETY: the fallback has the same contract as the function.
                    #[allow(unused_unsafe)]
                    unsafe { $fallback }
                } else {
                    // SAFETY: `p` was returned by dlsym for this name, whose
                    // C prototype is the one written here; the caller keeps
                    // its contract.
                    unsafe {
                        let f: unsafe extern "C" fn($($t),*) -> $r = core::mem::transmute(p);
                        f($($a),*)
                    }
                }
            }
            )*
        }
    };
}

real_fns! {
    memcpy(d: *mut c_void, s: *const c_void, n: usize) -> *mut c_void = fallback::copy_forward(d, s, n);
    memmove(d: *mut c_void, s: *const c_void, n: usize) -> *mut c_void = fallback::copy_any(d, s, n);
    mempcpy(d: *mut c_void, s: *const c_void, n: usize) -> *mut c_void =
        fallback::copy_forward(d, s, n).cast::<u8>().add(n).cast();
    __memcpy_chk(d: *mut c_void, s: *const c_void, n: usize, dl: usize) -> *mut c_void =
        { fallback::check(n, dl); fallback::copy_forward(d, s, n) };
    __memmove_chk(d: *mut c_void, s: *const c_void, n: usize, dl: usize) -> *mut c_void =
        { fallback::check(n, dl); fallback::copy_any(d, s, n) };
    __mempcpy_chk(d: *mut c_void, s: *const c_void, n: usize, dl: usize) -> *mut c_void =
        { fallback::check(n, dl); fallback::copy_forward(d, s, n).cast::<u8>().add(n).cast() };
    read(fd: c_int, b: *mut c_void, n: usize) -> ssize_t = sys(libc::SYS_read, &[fd as _, b as _, n as _]);
    __read_chk(fd: c_int, b: *mut c_void, n: usize, bl: usize) -> ssize_t =
        { fallback::check(n, bl); sys(libc::SYS_read, &[fd as _, b as _, n as _]) };
    pread(fd: c_int, b: *mut c_void, n: usize, o: off_t) -> ssize_t =
        sys(libc::SYS_pread64, &[fd as _, b as _, n as _, o as _]);
    pread64(fd: c_int, b: *mut c_void, n: usize, o: off_t) -> ssize_t =
        sys(libc::SYS_pread64, &[fd as _, b as _, n as _, o as _]);
    __pread_chk(fd: c_int, b: *mut c_void, n: usize, o: off_t, bl: usize) -> ssize_t =
        { fallback::check(n, bl); sys(libc::SYS_pread64, &[fd as _, b as _, n as _, o as _]) };
    __pread64_chk(fd: c_int, b: *mut c_void, n: usize, o: off_t, bl: usize) -> ssize_t =
        { fallback::check(n, bl); sys(libc::SYS_pread64, &[fd as _, b as _, n as _, o as _]) };
    readv(fd: c_int, v: *const iovec, c: c_int) -> ssize_t = sys(libc::SYS_readv, &[fd as _, v as _, c as _]);
    preadv(fd: c_int, v: *const iovec, c: c_int, o: off_t) -> ssize_t =
        sys(libc::SYS_preadv, &[fd as _, v as _, c as _, o as _, 0]);
    preadv2(fd: c_int, v: *const iovec, c: c_int, o: off_t, f: c_int) -> ssize_t =
        sys(libc::SYS_preadv2, &[fd as _, v as _, c as _, o as _, 0, f as _]);
    recv(fd: c_int, b: *mut c_void, n: usize, f: c_int) -> ssize_t =
        sys(libc::SYS_recvfrom, &[fd as _, b as _, n as _, f as _, 0, 0]);
    __recv_chk(fd: c_int, b: *mut c_void, n: usize, bl: usize, f: c_int) -> ssize_t =
        { fallback::check(n, bl); sys(libc::SYS_recvfrom, &[fd as _, b as _, n as _, f as _, 0, 0]) };
    recvfrom(fd: c_int, b: *mut c_void, n: usize, f: c_int, a: *mut sockaddr, al: *mut socklen_t) -> ssize_t =
        sys(libc::SYS_recvfrom, &[fd as _, b as _, n as _, f as _, a as _, al as _]);
    __recvfrom_chk(fd: c_int, b: *mut c_void, n: usize, bl: usize, f: c_int, a: *mut sockaddr, al: *mut socklen_t) -> ssize_t =
        { fallback::check(n, bl); sys(libc::SYS_recvfrom, &[fd as _, b as _, n as _, f as _, a as _, al as _]) };
    recvmsg(fd: c_int, m: *mut msghdr, f: c_int) -> ssize_t = sys(libc::SYS_recvmsg, &[fd as _, m as _, f as _]);
    recvmmsg(fd: c_int, m: *mut mmsghdr, n: c_uint, f: c_int, t: *mut timespec) -> c_int =
        sys(libc::SYS_recvmmsg, &[fd as _, m as _, n as _, f as _, t as _]) as c_int;
    write(fd: c_int, b: *const c_void, n: usize) -> ssize_t = sys(libc::SYS_write, &[fd as _, b as _, n as _]);
    pwrite(fd: c_int, b: *const c_void, n: usize, o: off_t) -> ssize_t =
        sys(libc::SYS_pwrite64, &[fd as _, b as _, n as _, o as _]);
    pwrite64(fd: c_int, b: *const c_void, n: usize, o: off_t) -> ssize_t =
        sys(libc::SYS_pwrite64, &[fd as _, b as _, n as _, o as _]);
    writev(fd: c_int, v: *const iovec, c: c_int) -> ssize_t = sys(libc::SYS_writev, &[fd as _, v as _, c as _]);
    pwritev(fd: c_int, v: *const iovec, c: c_int, o: off_t) -> ssize_t =
        sys(libc::SYS_pwritev, &[fd as _, v as _, c as _, o as _, 0]);
    pwritev2(fd: c_int, v: *const iovec, c: c_int, o: off_t, f: c_int) -> ssize_t =
        sys(libc::SYS_pwritev2, &[fd as _, v as _, c as _, o as _, 0, f as _]);
    send(fd: c_int, b: *const c_void, n: usize, f: c_int) -> ssize_t =
        sys(libc::SYS_sendto, &[fd as _, b as _, n as _, f as _, 0, 0]);
    sendto(fd: c_int, b: *const c_void, n: usize, f: c_int, a: *const sockaddr, al: socklen_t) -> ssize_t =
        sys(libc::SYS_sendto, &[fd as _, b as _, n as _, f as _, a as _, al as _]);
    sendmsg(fd: c_int, m: *const msghdr, f: c_int) -> ssize_t = sys(libc::SYS_sendmsg, &[fd as _, m as _, f as _]);
    sendmmsg(fd: c_int, m: *mut mmsghdr, n: c_uint, f: c_int) -> c_int =
        sys(libc::SYS_sendmmsg, &[fd as _, m as _, n as _, f as _]) as c_int;
    free(p: *mut c_void) -> () = fallback::__libc_free(p);
    realloc(p: *mut c_void, n: usize) -> *mut c_void = fallback::__libc_realloc(p, n);
    munmap(a: *mut c_void, n: usize) -> c_int = sys(libc::SYS_munmap, &[a as _, n as _]) as c_int;
    mremap(a: *mut c_void, o: usize, n: usize, f: c_int, na: *mut c_void) -> *mut c_void =
        sys(libc::SYS_mremap, &[a as _, o as _, n as _, f as _, na as _]) as *mut c_void;
    madvise(a: *mut c_void, n: usize, adv: c_int) -> c_int = sys(libc::SYS_madvise, &[a as _, n as _, adv as _]) as c_int;
    fork() -> pid_t = fallback::no_fork();
    clone(f: Option<CloneFn>, stack: *mut c_void, flags: c_int, arg: *mut c_void, ptid: *mut pid_t, tls: *mut c_void, ctid: *mut pid_t) -> c_int =
        fallback::no_fork();
    sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int =
        fallback::__sigaction(sig, act, old);
    signal(sig: c_int, h: libc::sighandler_t) -> libc::sighandler_t = fallback::bsd_signal(sig, h);
}

/// Functions of libraries the program may load (liburing, libibverbs):
/// each is looked up at its first call, never by [`resolve_all`], for a
/// lookup that finds nothing allocates its error message, and a hook
/// reached while the program's allocator initializes under its own lock
/// would wait for that lock. (Their first call comes from a program that
/// loaded the library, so the lookup finds it.)
macro_rules! library_fns {
    ($( $name:ident ( $($a:ident : $t:ty),* ) -> $r:ty = $fallback:expr ; )*) => {
        mod lib_slot {
            use super::*;
            $( #[allow(non_upper_case_globals)]
               pub static $name: AtomicUsize = AtomicUsize::new(0); )*
        }
        $(
            #[doc = concat!("Calls the real `", stringify!($name), "` (found at its first call; the fallback without its library).")]
            ///
            /// # Safety
            /// Same contract as the library function.
            pub unsafe fn $name($($a: $t),*) -> $r {
                let mut p = lib_slot::$name.load(Ordering::Relaxed);
                if p == 0 {
                    // SAFETY: a NUL-terminated name; RTLD_NEXT finds the
                    // definition after libzio.so's.
                    p = unsafe {
                        libc::dlsym(libc::RTLD_NEXT, concat!(stringify!($name), "\0").as_ptr().cast())
                    } as usize;
                    lib_slot::$name.store(p, Ordering::Relaxed);
                }
                if p == 0 {
                    #[allow(unused_unsafe)]
                    // SAFETY: the fallback has the same contract.
                    return unsafe { $fallback };
                }
                // SAFETY: `p` was returned by dlsym for this name, whose C
                // prototype is the one written here; the caller keeps its
                // contract.
                unsafe {
                    let f: unsafe extern "C" fn($($t),*) -> $r = core::mem::transmute(p);
                    f($($a),*)
                }
            }
        )*
    };
}

library_fns! {
    io_uring_register_buffers(ring: *mut c_void, v: *const iovec, n: c_uint) -> c_int = -libc::ENOSYS;
    io_uring_register_buffers_tags(ring: *mut c_void, v: *const iovec, tags: *const u64, n: c_uint) -> c_int =
        -libc::ENOSYS;
    io_uring_register_buffers_update_tag(ring: *mut c_void, off: c_uint, v: *const iovec, tags: *const u64, n: c_uint) -> c_int =
        -libc::ENOSYS;
    io_uring_unregister_buffers(ring: *mut c_void) -> c_int = -libc::ENOSYS;
    ibv_reg_mr(pd: *mut c_void, a: *mut c_void, n: usize, access: c_int) -> *mut c_void = fallback::no_device();
    ibv_reg_mr_iova(pd: *mut c_void, a: *mut c_void, n: usize, iova: u64, access: c_int) -> *mut c_void =
        fallback::no_device();
    ibv_reg_mr_iova2(pd: *mut c_void, a: *mut c_void, n: usize, iova: u64, access: c_uint) -> *mut c_void =
        fallback::no_device();
    ibv_dereg_mr(mr: *mut c_void) -> c_int = libc::ENOSYS;
}

/// Calls the real `syscall`: the instruction itself, which is all libc's
/// function adds to it. Never looked up: allocators call `syscall` and
/// `mprotect` while initializing under their own lock, where a lookup
/// (`dlsym` allocates) would wait for that lock.
///
/// # Safety
/// The system call's own contract.
#[inline(always)]
pub unsafe fn syscall(
    n: c_long,
    a: c_long,
    b: c_long,
    c: c_long,
    d: c_long,
    e: c_long,
    f: c_long,
) -> c_long {
    // SAFETY: passed on.
    unsafe { raw_syscall(n, [a, b, c, d, e, f]) }
}

/// Calls the real `mprotect` (the system call itself; see [`syscall`]).
///
/// # Safety
/// `mprotect`'s contract.
#[inline(always)]
pub unsafe fn mprotect(a: *mut c_void, n: usize, p: c_int) -> c_int {
    // SAFETY: passed on.
    unsafe { raw_syscall(libc::SYS_mprotect, [a as _, n as _, p as _, 0, 0, 0]) as c_int }
}

/// The function a `clone` child runs (the program may pass none: glibc
/// then refuses the call, hence `Option` wherever it is the caller's).
pub type CloneFn = extern "C" fn(*mut c_void) -> c_int;

/// A system call made with the `syscall` instruction itself (no function
/// that could be hooked), with libc's convention for the result: -1 and
/// `errno` on failure.
///
/// # Safety
/// The system call's own contract.
pub unsafe fn raw_syscall(nr: c_long, a: [c_long; 6]) -> c_long {
    // SAFETY: passed on.
    let r = unsafe { raw_syscall_quiet(nr, a) };
    if (-4095..0).contains(&r) {
        // SAFETY: writing this thread's errno.
        unsafe { *libc::__errno_location() = -r as c_int };
        -1
    } else {
        r
    }
}

/// As [`raw_syscall`], but leaving `errno` alone: the kernel's answer
/// itself, from -4095 to -1 a negated errno.
///
/// # Safety
/// The system call's own contract.
pub unsafe fn raw_syscall_quiet(nr: c_long, a: [c_long; 6]) -> c_long {
    let r: c_long;
    // SAFETY: the x86-64 system call convention (number in rax, arguments
    // in rdi, rsi, rdx, r10, r8, r9; rcx and r11 clobbered); the caller
    // keeps the call's contract.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") nr => r,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack)
        );
    }
    r
}

/// The thread (kernel tid) running [`resolve_all`] while `STATE` is 1.
static RESOLVER: AtomicI32 = AtomicI32::new(0);

fn gettid() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail. Made directly:
    // `syscall` is one of the functions being resolved.
    unsafe { raw_syscall(libc::SYS_gettid, [0; 6]) as i32 }
}

/// Resolves every real function. Called by the library constructor; safe to
/// call again (later calls do nothing).
pub fn resolve_all() {
    if STATE
        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    RESOLVER.store(gettid(), Ordering::Relaxed);
    for (name, cell) in TABLE {
        // SAFETY: `name` is NUL-terminated (built with concat!). RTLD_NEXT
        // finds the next definition after the object containing this code.
        let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr().cast()) };
        cell.store(p as usize, Ordering::Relaxed);
    }
    STATE.store(2, Ordering::Release);
}

/// True once every real function has been looked up.
pub fn resolved() -> bool {
    STATE.load(Ordering::Acquire) == 2
}

#[cold]
fn resolve_slow(cell: &AtomicUsize) -> usize {
    // A hook reached before the constructor: resolve now.
    resolve_all();
    if STATE.load(Ordering::Acquire) == 1 {
        if RESOLVER.load(Ordering::Relaxed) == gettid() {
            // Re-entered from inside dlsym on the resolving thread: the
            // caller uses its fallback (glibc-internal memory, so
            // `__libc_free` is the right allocator for it).
            return 0;
        }
        // Another thread is resolving. Wait for it rather than fall back:
        // the fallback allocator would be wrong for memory from a program's
        // own malloc (jemalloc in Redis). Resolution is a few dozen dlsym
        // calls, so this wait is short and bounded.
        while STATE.load(Ordering::Acquire) != 2 {
            core::hint::spin_loop();
        }
    }
    cell.load(Ordering::Relaxed)
}

/// A system call with up to six arguments, returning what libc would: the
/// result, or -1 with `errno` set.
///
/// # Safety
/// The arguments must be valid for system call `nr`.
unsafe fn sys(nr: libc::c_long, args: &[libc::c_long]) -> ssize_t {
    let a = |i: usize| args.get(i).copied().unwrap_or(0);
    // SAFETY: forwarded to the caller's contract.
    unsafe { raw_syscall(nr, [a(0), a(1), a(2), a(3), a(4), a(5)]) as ssize_t }
}

mod fallback {
    use core::ffi::c_void;

    extern "C" {
        // glibc exports these stable aliases of its own allocator; they are
        // what `free`/`realloc` resolve to when no other allocator is loaded.
        pub fn __libc_free(p: *mut c_void);
        pub fn __libc_realloc(p: *mut c_void, n: usize) -> *mut c_void;
        // glibc's other names for `sigaction` and `signal`.
        pub fn __sigaction(
            sig: libc::c_int,
            act: *const libc::sigaction,
            old: *mut libc::sigaction,
        ) -> libc::c_int;
        pub fn bsd_signal(sig: libc::c_int, h: libc::sighandler_t) -> libc::sighandler_t;
    }

    /// Forward byte copy that calls no function (so it cannot recurse into a
    /// hook).
    ///
    /// # Safety
    /// `s` readable and `d` writable for `n` bytes; if they overlap, `d <= s`.
    pub unsafe fn copy_forward(d: *mut c_void, s: *const c_void, n: usize) -> *mut c_void {
        // SAFETY: `rep movsb` copies rcx bytes from [rsi] to [rdi] going up
        // (the ABI guarantees the direction flag is clear); the caller
        // guarantees both ranges are valid.
        unsafe {
            core::arch::asm!(
                "rep movsb",
                inout("rcx") n => _,
                inout("rdi") d => _,
                inout("rsi") s => _,
                options(nostack, preserves_flags)
            );
        }
        d
    }

    /// `memmove` semantics without calling any function.
    ///
    /// # Safety
    /// `s` readable and `d` writable for `n` bytes.
    pub unsafe fn copy_any(d: *mut c_void, s: *const c_void, n: usize) -> *mut c_void {
        if (d as usize) <= (s as usize) || (d as usize) >= (s as usize) + n {
            // SAFETY: no overlap, or the destination is below the source.
            return unsafe { copy_forward(d, s, n) };
        }
        // SAFETY: overlapping with d above s: copy from the last byte down
        // with the direction flag set, and clear it again as the ABI needs.
        unsafe {
            core::arch::asm!(
                "std",
                "rep movsb",
                "cld",
                inout("rcx") n => _,
                inout("rdi") d.cast::<u8>().add(n - 1) => _,
                inout("rsi") s.cast::<u8>().add(n - 1) => _,
                options(nostack)
            );
        }
        d
    }

    /// The check the `_chk` forms make: a destination smaller than the length
    /// is a buffer overflow, and glibc would abort the program.
    pub fn check(n: usize, room: usize) {
        if n > room {
            crate::log::emit(
                crate::log::Level::Error,
                "buffer overflow detected by a fortified call",
            );
            // SAFETY: abort has no preconditions; it is what glibc does here.
            unsafe { libc::abort() };
        }
    }

    /// An RDMA registration with no libibverbs behind it: refused as a
    /// missing device would be.
    pub fn no_device() -> *mut c_void {
        // SAFETY: writing this thread's errno.
        unsafe { *libc::__errno_location() = libc::ENOSYS };
        core::ptr::null_mut()
    }

    /// `fork` before its real definition could be found: fail cleanly rather
    /// than fork behind glibc's back (its atfork handlers would not run).
    pub fn no_fork() -> libc::pid_t {
        // SAFETY: writing this thread's errno.
        unsafe { *libc::__errno_location() = libc::ENOSYS };
        -1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_to_libc() {
        resolve_all();
        assert!(resolved());
        for (name, cell) in TABLE {
            assert_ne!(cell.load(Ordering::Relaxed), 0, "{name} not found");
        }
        let mut dst = [0u8; 100];
        let src: Vec<u8> = (0..100).collect();
        // SAFETY: both buffers hold 100 bytes.
        let r = unsafe { mempcpy(dst.as_mut_ptr().cast(), src.as_ptr().cast(), 100) };
        assert_eq!(r as usize, dst.as_ptr() as usize + 100);
        assert_eq!(&dst[..], &src[..]);
    }

    #[test]
    fn fallback_copies_handle_overlap() {
        for (d_off, s_off) in [(0usize, 10usize), (10, 0), (5, 5), (0, 64)] {
            let mut buf: Vec<u8> = (0..200).map(|i| i as u8).collect();
            let mut want = buf.clone();
            want.copy_within(s_off..s_off + 100, d_off);
            // SAFETY: both ranges lie inside `buf` (200 bytes).
            unsafe {
                let p = buf.as_mut_ptr();
                fallback::copy_any(p.add(d_off).cast(), p.add(s_off).cast(), 100);
            }
            assert_eq!(buf, want, "d={d_off} s={s_off}");
        }
    }

    #[test]
    fn raw_syscall_fallback_reports_errno() {
        // SAFETY: reading from an invalid fd touches no memory.
        let r = unsafe { sys(libc::SYS_read, &[-1, 0, 0]) };
        assert_eq!(r, -1);
        assert_eq!(crate::log::errno(), libc::EBADF);
    }
}
