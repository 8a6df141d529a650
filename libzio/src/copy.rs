//! The copy hooks (`memcpy`, `memmove`, `mempcpy` and their `_chk` forms):
//! where a copy is left to libc or handed to the engine to elide.

use core::ffi::c_void;

use zio_core::stats::{self, Hook};
use zio_core::{elide, real};

/// Copy hooks. Each exported symbol is a two-instruction naked trampoline
/// that passes the caller's return address (the call site, for the policy)
/// as an extra argument to the body. The body counts the call and either
/// tail-calls libc (below the threshold or with nothing tracked: no stack
/// frame, nothing else) or, in its cold part, asks the engine.
///
/// A line: `name / body, register for the site (arguments), Hook,
/// |d, s, n| return value, whether the copy may be elided;`.
macro_rules! copy_hooks {
    ($( $name:ident / $body:ident, $ra:literal ( $($a:ident : $t:ty),* ), $hook:ident, |$d:ident, $s:ident, $n:ident| $ret:expr, $check:expr; )*) => {$(
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

        twin!($name ($($a: $t),*) -> *mut c_void);
    )*};
}

copy_hooks! {
    memcpy / memcpy_body, "rcx" (d: *mut c_void, s: *const c_void, n: usize), Memcpy, |d, s, n| d, true;
    memmove / memmove_body, "rcx" (d: *mut c_void, s: *const c_void, n: usize), Memmove, |d, s, n| d, true;
    mempcpy / mempcpy_body, "rcx" (d: *mut c_void, s: *const c_void, n: usize), Mempcpy, |d, s, n| d.cast::<u8>().wrapping_add(n).cast(), true;
    __memcpy_chk / memcpy_chk_body, "r8" (d: *mut c_void, s: *const c_void, n: usize, dl: usize), MemcpyChk, |d, s, n| d, n <= dl;
    __memmove_chk / memmove_chk_body, "r8" (d: *mut c_void, s: *const c_void, n: usize, dl: usize), MemmoveChk, |d, s, n| d, n <= dl;
    __mempcpy_chk / mempcpy_chk_body, "r8" (d: *mut c_void, s: *const c_void, n: usize, dl: usize), MempcpyChk, |d, s, n| d.cast::<u8>().wrapping_add(n).cast(), n <= dl;
}
