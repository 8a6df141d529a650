//! libzio.so's crate root: the macros every hook is made with, the global
//! allocator, `zio_counter`, and the constructor and destructor.
//!
//! libzio.so holds the symbols that `LD_PRELOAD` puts in front of libc. The
//! crate is deliberately thin: each hook counts the call
//! ([`zio_core::stats`]), and either forwards to the real function
//! ([`zio_core::real`]) or, when something tracked may be involved, hands
//! the call to [`zio_core::elide`], where every decision is made.
//!
//! The hooks by family, each family's hooks made by one macro from a
//! table, one line per hooked symbol (adding a hook to a family is adding
//! its line):
//!
//! - `copy.rs`: `memcpy`, `memmove`, `mempcpy` and their `_chk` forms;
//! - `input.rs`: the `read`, `pread`, `recv` families, one buffer or iovec,
//!   and `recvmmsg`;
//! - `output.rs`: the `write`, `pwrite`, `send` families, likewise, and
//!   `sendmmsg`;
//! - `memory.rs`: `free`, `realloc`, `munmap`, `mremap`, `madvise`,
//!   `mprotect`, each its own, written out in `hooks!`;
//! - `process.rs`: `fork`, `clone`, `syscall`: every way a process is
//!   copied;
//! - `signals.rs`: `sigaction`, `signal`: the program's handlers behind
//!   zio's trampoline, which holds signals while zio's code runs;
//! - `pinned.rs`: liburing's and libibverbs' registration calls, and
//!   `io_uring_register` through `syscall`: memory the kernel pins, where
//!   zio never elides (library functions, not libc's: not counted, not in
//!   `hooked-symbols.txt`);
//! - `iov.rs`: the caller's iovecs walked in place, and the bytes moved.
//!
//! Not hooks: `zio_counter`, `zio_pin` and `zio_unpin` here, and the
//! IO-stack bridge contract in `bridge.rs`; `include/zio.h` declares them
//! all for C.
//!
//! For every hook there is also a `__wrap_` twin, made by `twin!` from the
//! same line: the link step (see `build.rs`) points the library's own calls
//! at the twins so zio never intercepts itself.
//!
//! Where a `memcpy` is decided: the exported `memcpy` (in `copy.rs`) is a
//! two-instruction trampoline that jumps to `memcpy_body` with the call
//! site; on the pass-through path the body tail-calls libc, otherwise its
//! cold part `slow` calls `zio_core::elide::copy`, which asks
//! `zio_core::engine::Engine::copy` for the plan.
//!
//! Rules for code in this crate: on the pass-through path no allocation
//! (`integration/tests/passthrough_alloc.rs` checks every hook), no lock,
//! and no copy of a struct that the compiler would turn into a `memcpy`
//! call; nothing allocates or locks before the threshold check. (A fork is
//! the exception: it always materializes what zio elided first.)

#![deny(missing_docs)]
#![allow(clippy::missing_safety_doc)] // each hook has exactly its libc function's contract

use core::ffi::{c_char, c_int, CStr};

use zio_core::heap::ZioHeap;
use zio_core::{elide, stats};

/// The `__wrap_<name>` twin of a hooked function (see `build.rs`): zio's
/// own calls to `name` land there and go straight to libc. Every family's
/// macro makes its hooks' twins with it, so a hook cannot lack one.
macro_rules! twin {
    ($name:ident ( $($a:ident : $t:ty),* ) $(-> $r:ty)?) => {
        const _: () = {
            #[doc = concat!("Internal calls to `", stringify!($name), "` land here (`--wrap`): straight to libc.")]
            #[export_name = concat!("__wrap_", stringify!($name))]
            unsafe extern "C" fn twin($($a: $t),*) $(-> $r)? {
                // SAFETY: zio's own call, with the libc function's contract.
                unsafe { zio_core::real::$name($($a),*) }
            }
        };
    };
}

/// Hooks written out one by one (those of no family): each is exported
/// under its libc name, with its twin.
macro_rules! hooks {
    ($(
        $(#[$attr:meta])*
        fn $name:ident ( $($a:ident : $t:ty),* $(,)? ) $(-> $r:ty)? $body:block
    )*) => {$(
        $(#[$attr])*
        #[no_mangle]
        pub unsafe extern "C" fn $name($($a: $t),*) $(-> $r)? $body

        twin!($name ($($a: $t),*) $(-> $r)?);
    )*};
}

/// An IO hook: the libc call itself unless `needs` holds (an inline test:
/// all the pass-through path adds to libc), then `slow`, out of line so
/// that the pass-through path keeps its registers to itself. Either way
/// the call is counted with the bytes `moved` by its result `r`. With its
/// twin.
macro_rules! io_hook {
    (
        $(#[$attr:meta])*
        fn $name:ident ( $($a:ident : $t:ty),* ) -> $r:ty,
        $hook:ident, moved |$ret:ident| $moved:expr,
        if $needs:expr => $slow:expr
    ) => {
        $(#[$attr])*
        #[no_mangle]
        pub unsafe extern "C" fn $name($($a: $t),*) -> $r {
            #[inline(never)]
            unsafe fn slow($($a: $t),*) -> $r {
                $slow
            }
            let $ret = if $needs {
                // SAFETY: the caller's contract, passed on.
                unsafe { slow($($a),*) }
            } else {
                // SAFETY: the caller's contract.
                unsafe { zio_core::real::$name($($a),*) }
            };
            zio_core::stats::count(zio_core::stats::Hook::$hook, $moved);
            $ret
        }

        twin!($name ($($a: $t),*) -> $r);
    };
}

mod bridge;
mod copy;
mod input;
mod iov;
mod memory;
mod output;
mod pinned;
mod process;
mod signals;

/// zio's own allocations never come from the program's allocator.
#[global_allocator]
static HEAP: ZioHeap = ZioHeap;

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
/// not in `hooked-symbols.txt`. An engine counter takes the engine's lock
/// for a moment (`heap_allocations` takes none), so
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

/// Exported `zio_pin`: tells zio that `[addr, addr+len)` is, or is about to
/// be, used by the kernel or a device through pages it pinned (memory zio
/// cannot see registered: a statically linked liburing, a driver's own
/// ioctl, DMA buffers of a user-space driver). zio materializes what it
/// elided there and never elides into it, nor protects it, until
/// [`zio_unpin`] with the same `addr`. Returns 0, or -1 if `len` is 0 or
/// the range wraps or reaches the last page. Safe to call whether or not
/// the engine has started;
/// find it with `dlsym(RTLD_DEFAULT, "zio_pin")` (null without zio).
#[no_mangle]
pub extern "C" fn zio_pin(addr: *const core::ffi::c_void, len: usize) -> c_int {
    let a = addr as usize;
    if elide::pin(a, a, len) {
        0
    } else {
        -1
    }
}

/// Exported `zio_unpin`: the range pinned by [`zio_pin`] at `addr` is
/// ordinary memory again. Returns 0.
#[no_mangle]
pub extern "C" fn zio_unpin(addr: *const core::ffi::c_void) -> c_int {
    elide::unpin(addr as usize);
    0
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
