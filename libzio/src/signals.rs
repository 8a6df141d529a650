//! The signal hooks (`sigaction`, `signal`): the program's handlers are
//! installed behind zio's trampoline, which holds a signal arriving while
//! zio's own code runs on the thread (`zio_core::signals`); the program
//! sees its own handlers reported back.

use core::ffi::c_int;

use libc::{sigaction as Action, sighandler_t};
use zio_core::real;
use zio_core::signals;
use zio_core::stats::{self, Hook};
use zio_core::usermem;

/// `sigaction` as the program asked, with its handler behind the
/// trampoline; `old` reports the program's own previous action.
///
/// # Safety
/// `sigaction`'s contract (`act` read only if readable).
unsafe fn install(sig: c_int, act: *const Action, old: *mut Action) -> c_int {
    let prev = signals::current(sig);
    let mut k = None;
    if !act.is_null() && usermem::readable(act as usize, size_of::<Action>()) {
        // SAFETY: readable (perhaps misaligned: read unaligned).
        k = signals::install(sig, &unsafe { core::ptr::read_unaligned(act) });
    }
    let to_kernel = k.as_ref().map_or(act, |k| k as *const Action);
    // SAFETY: the caller's contract, with our action in place of its own.
    let r = unsafe { real::sigaction(sig, to_kernel, old) };
    if r != 0 {
        signals::restore(sig, prev);
    } else if !old.is_null() {
        // SAFETY: the kernel just wrote a whole action there.
        let mut o = unsafe { core::ptr::read_unaligned(old) };
        signals::reported(&mut o, prev);
        // SAFETY: as above.
        unsafe { core::ptr::write_unaligned(old, o) };
    }
    r
}

hooks! {
    /// Exported `sigaction`.
    fn sigaction(sig: c_int, act: *const Action, old: *mut Action) -> c_int {
        stats::count(Hook::Sigaction, 0);
        // SAFETY: the caller's contract.
        unsafe { install(sig, act, old) }
    }

    /// Exported `signal`: glibc's BSD semantics (restarting, the signal
    /// masked while its handler runs), through the `sigaction` above.
    fn signal(sig: c_int, h: sighandler_t) -> sighandler_t {
        stats::count(Hook::Signal, 0);
        // SAFETY: an all-zero sigaction is valid; sigaddset writes its mask.
        let mut act: Action = unsafe { core::mem::zeroed() };
        act.sa_sigaction = h;
        act.sa_flags = libc::SA_RESTART;
        // SAFETY: `act.sa_mask` is a valid set.
        if !(1..65).contains(&sig) || unsafe { libc::sigaddset(&mut act.sa_mask, sig) } != 0 {
            // SAFETY: the caller's contract: the kernel's answer (EINVAL).
            return unsafe { real::signal(sig, h) };
        }
        // SAFETY: as above.
        let mut old: Action = unsafe { core::mem::zeroed() };
        // SAFETY: valid action and out-pointer.
        if unsafe { install(sig, &act, &mut old) } != 0 {
            return libc::SIG_ERR;
        }
        old.sa_sigaction
    }
}
