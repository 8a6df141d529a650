//! Signals that arrive while zio's own code runs on a thread are held
//! until it leaves. A handler that touches an elided buffer faults, and
//! the fault is answered by zio's handler thread, which needs zio's lock:
//! if the interrupted code held that lock, the thread would wait for
//! itself forever.
//!
//! So every handler the program installs (`sigaction`, `signal`) is
//! installed behind one trampoline of zio's, which runs the program's
//! handler at once unless this thread is inside zio; then it notes the
//! signal (the first one's `siginfo_t` kept) and returns, and the thread,
//! leaving zio, sends the noted signals to itself again
//! (`rt_tgsigqueueinfo` with the kept `siginfo_t`, so the handler sees
//! the sender's details), as soon as it leaves. zio's own threads
//! block every signal, so the kernel never picks them for one.
//!
//! Faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS) are never
//! held: returning from them would repeat the faulting instruction.
//! `SA_RESETHAND` is done by the trampoline when it runs the handler,
//! not by the kernel when it runs the trampoline. The program's view is
//! unchanged: `sigaction` reports its own handlers and flags.

use core::ffi::c_int;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use libc::{c_void, sigaction, siginfo_t};

use crate::thread;

const NSIG: usize = 65;

/// The program's handler for each signal (0: none of the program's; the
/// kernel's action is its own then).
static HANDLERS: [AtomicUsize; NSIG] = [const { AtomicUsize::new(0) }; NSIG];
/// The flags it was installed with.
static FLAGS: [AtomicU64; NSIG] = [const { AtomicU64::new(0) }; NSIG];

/// True for the signals a fault raises, which are never held.
fn is_fault(sig: c_int) -> bool {
    matches!(
        sig,
        libc::SIGSEGV | libc::SIGBUS | libc::SIGFPE | libc::SIGILL | libc::SIGTRAP | libc::SIGSYS
    )
}

/// True if the program's handler for `sig` goes behind the trampoline.
fn wrapped(sig: c_int, handler: usize) -> bool {
    (1..NSIG as c_int).contains(&sig)
        && !is_fault(sig)
        && handler != libc::SIG_DFL
        && handler != libc::SIG_IGN
}

/// The action to give the kernel for the program's `act` on `sig`, and
/// records the program's handler. `None`: `act` goes to the kernel as is
/// (a default or ignored disposition, a fault signal, or an invalid
/// number, which the kernel refuses).
pub fn install(sig: c_int, act: &sigaction) -> Option<sigaction> {
    let handler = act.sa_sigaction;
    if !wrapped(sig, handler) {
        if (1..NSIG as c_int).contains(&sig) {
            HANDLERS[sig as usize].store(0, Ordering::Release);
        }
        return None;
    }
    FLAGS[sig as usize].store(act.sa_flags as u64, Ordering::Relaxed);
    HANDLERS[sig as usize].store(handler, Ordering::Release);
    let mut k = *act;
    k.sa_sigaction = trampoline as *const () as usize;
    k.sa_flags = (act.sa_flags | libc::SA_SIGINFO) & !libc::SA_RESETHAND;
    Some(k)
}

/// The program's own view of `old`, the kernel's previous action on
/// `sig`, given the handler and flags the program had installed then.
pub fn reported(old: &mut sigaction, prev: (usize, u64)) {
    if old.sa_sigaction == trampoline as *const () as usize && prev.0 != 0 {
        old.sa_sigaction = prev.0;
        old.sa_flags = prev.1 as c_int;
    }
}

/// The program's handler and flags for `sig` now (0 if none).
pub fn current(sig: c_int) -> (usize, u64) {
    if !(1..NSIG as c_int).contains(&sig) {
        return (0, 0);
    }
    (
        HANDLERS[sig as usize].load(Ordering::Acquire),
        FLAGS[sig as usize].load(Ordering::Relaxed),
    )
}

/// Puts back what [`install`] recorded, after the kernel refused it.
pub fn restore(sig: c_int, prev: (usize, u64)) {
    if (1..NSIG as c_int).contains(&sig) {
        FLAGS[sig as usize].store(prev.1, Ordering::Relaxed);
        HANDLERS[sig as usize].store(prev.0, Ordering::Release);
    }
}

extern "C" fn trampoline(sig: c_int, info: *mut siginfo_t, uc: *mut c_void) {
    if thread::inside() {
        hold(sig, info);
        return;
    }
    let (h, flags) = current(sig);
    if h == 0 {
        return; // reset meanwhile: the kernel's action is the program's now
    }
    if flags & libc::SA_RESETHAND as u64 != 0 {
        reset_to_default(sig);
    }
    if flags & libc::SA_SIGINFO as u64 != 0 {
        // SAFETY: the program installed a three-argument handler.
        let f: extern "C" fn(c_int, *mut siginfo_t, *mut c_void) =
            unsafe { core::mem::transmute(h) };
        f(sig, info, uc);
    } else {
        // SAFETY: the program installed a one-argument handler.
        let f: extern "C" fn(c_int) = unsafe { core::mem::transmute(h) };
        f(sig);
    }
}

/// The one-shot handler ran: the disposition is the default again.
fn reset_to_default(sig: c_int) {
    HANDLERS[sig as usize].store(0, Ordering::Release);
    // SAFETY: an all-zero sigaction is SIG_DFL with an empty mask.
    let mut dfl: sigaction = unsafe { core::mem::zeroed() };
    dfl.sa_sigaction = libc::SIG_DFL;
    // SAFETY: a valid action for a valid signal; no old action asked for.
    unsafe { crate::real::sigaction(sig, &dfl, core::ptr::null_mut()) };
}

/// Notes `sig` (and the first held signal's details) for delivery when
/// this thread leaves zio.
fn hold(sig: c_int, info: *const siginfo_t) {
    thread::with(|s| {
        let held = s.held_signals.get();
        if held == 0 && !info.is_null() {
            // SAFETY: the kernel's siginfo for this delivery, 128 bytes.
            s.held_info
                .set(unsafe { core::ptr::read(info.cast::<[u64; 16]>()) });
            s.held_first.set(sig as u8);
        }
        s.held_signals.set(held | 1 << sig);
    });
}

/// Sends this thread the signals held while it was inside zio (called as
/// it leaves). Each arrives at once, the thread no longer being inside.
pub fn deliver_held() {
    // SAFETY: __errno_location returns this thread's errno slot.
    let errno = unsafe { *libc::__errno_location() };
    let (held, first, info) = thread::with(|s| {
        (
            s.held_signals.replace(0),
            s.held_first.replace(0),
            s.held_info.get(),
        )
    });
    // SAFETY: getpid and gettid have no preconditions.
    let (pid, tid) = unsafe { (libc::getpid(), libc::gettid()) };
    for sig in 1..NSIG as c_int {
        if held & 1 << sig == 0 {
            continue;
        }
        let r = if sig == first as c_int {
            // SAFETY: the kept siginfo, 128 bytes, to this very thread.
            unsafe {
                crate::real::raw_syscall(
                    libc::SYS_rt_tgsigqueueinfo,
                    [pid as _, tid as _, sig as _, info.as_ptr() as _, 0, 0],
                )
            }
        } else {
            -1
        };
        if r < 0 {
            // SAFETY: a signal to this very thread.
            unsafe {
                crate::real::raw_syscall(libc::SYS_tgkill, [pid as _, tid as _, sig as _, 0, 0, 0])
            };
        }
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Blocks every signal on this thread and returns the mask it had: the
/// threads zio starts inherit it, so the kernel never picks them for a
/// process-directed signal (they run inside zio for good).
pub fn block_all() -> libc::sigset_t {
    // SAFETY: all-zero sigset_t values are valid sets; sigfillset and
    // pthread_sigmask write only them.
    unsafe {
        let mut all: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        old
    }
}

/// Puts back the mask [`block_all`] returned.
pub fn restore_mask(old: &libc::sigset_t) {
    // SAFETY: `old` is a mask pthread_sigmask returned.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old, core::ptr::null_mut()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" fn program_handler(_: c_int) {}

    #[test]
    fn handlers_go_behind_the_trampoline_and_are_reported_as_installed() {
        // SAFETY: an all-zero sigaction is valid.
        let mut act: sigaction = unsafe { core::mem::zeroed() };
        act.sa_sigaction = program_handler as *const () as usize;
        act.sa_flags = libc::SA_RESTART | libc::SA_RESETHAND;
        let k = install(libc::SIGUSR2, &act).expect("wrapped");
        assert_eq!(k.sa_sigaction, trampoline as *const () as usize);
        assert_eq!(
            k.sa_flags & libc::SA_RESETHAND,
            0,
            "reset done by the trampoline"
        );
        assert_ne!(k.sa_flags & libc::SA_SIGINFO, 0);
        let mut old = k;
        reported(&mut old, current(libc::SIGUSR2));
        assert_eq!(old.sa_sigaction, program_handler as *const () as usize);
        assert_eq!(old.sa_flags, libc::SA_RESTART | libc::SA_RESETHAND);
        act.sa_sigaction = libc::SIG_IGN;
        assert!(install(libc::SIGUSR2, &act).is_none());
        assert_eq!(current(libc::SIGUSR2).0, 0);
        act.sa_sigaction = program_handler as *const () as usize;
        assert!(
            install(libc::SIGSEGV, &act).is_none(),
            "faults are the program's"
        );
        assert!(install(0, &act).is_none() && install(65, &act).is_none());
    }
}
