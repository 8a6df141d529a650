//! Start-up and exit of the library as a whole.
//!
//! Start-up order matters: the real functions first (everything after may
//! copy or write), then options and logging, then the counters. The
//! userfaultfd probe that decides whether zio can do anything beyond passing
//! calls through waits for the first input large enough to need it
//! ([`probe_kernel`]): a process that never has one never pays for it.

use core::fmt::Write as _;
use core::sync::atomic::{AtomicI32, AtomicU64, AtomicU8, Ordering};

use crate::config::{self, Kind, Opt, OPTIONS};
use crate::log::{Level, Line};
use crate::{real, stats, thread, uffd, zio_log};

/// What the library can do in this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// The constructor has not run yet.
    Starting = 0,
    /// `ZIO_ENABLE=0`: every call passes through.
    Disabled = 1,
    /// userfaultfd could not be opened: every call passes through.
    NoUserfaultfd = 2,
    /// Copy elision may be used: userfaultfd worked when probed, or has
    /// not been probed yet (no input large enough so far).
    Ready = 3,
    /// Under a binary translator that does not emulate userfaultfd
    /// (valgrind): every call passes through.
    Translated = 4,
}

static MODE: AtomicU8 = AtomicU8::new(Mode::Starting as u8);
static UFFD_FEATURES: AtomicU64 = AtomicU64::new(0);
static UFFD_ERRNO: AtomicI32 = AtomicI32::new(0);
static START_NS: AtomicU64 = AtomicU64::new(0);

/// The current mode.
pub fn mode() -> Mode {
    match MODE.load(Ordering::Relaxed) {
        1 => Mode::Disabled,
        2 => Mode::NoUserfaultfd,
        3 => Mode::Ready,
        4 => Mode::Translated,
        _ => Mode::Starting,
    }
}

/// The userfaultfd features the kernel offered when probed (0 if it has not
/// been, or refused).
pub fn uffd_features() -> u64 {
    UFFD_FEATURES.load(Ordering::Relaxed)
}

/// `clock` in nanoseconds (vDSO: no system call).
fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Monotonic clock in nanoseconds.
pub(crate) fn now_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// Wall clock in nanoseconds since the epoch.
pub(crate) fn realtime_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}

/// Sleeps `ms` milliseconds (an interrupted sleep ends early, which every
/// caller tolerates: they wait in loops or periods).
pub(crate) fn sleep_ms(ms: u64) {
    let t = libc::timespec {
        tv_sec: (ms / 1000) as libc::time_t,
        tv_nsec: ((ms % 1000) * 1_000_000) as libc::c_long,
    };
    // SAFETY: a valid timespec; no remainder asked for.
    unsafe { libc::nanosleep(&t, core::ptr::null_mut()) };
}

/// The library constructor's work. Runs once, before `main`.
pub fn init() {
    let _inside = thread::enter();
    real::resolve_all();
    START_NS.store(now_ns(), Ordering::Relaxed);
    config::init_from_env();
    crate::statfile::init();
    stats::init();

    let mode = if !config::enabled() {
        Mode::Disabled
    } else if let Some(name) = translator().filter(|_| config::get(Opt::Valgrind) == 0) {
        zio_log!(
            Level::Warn,
            "running under {name}, which does not emulate userfaultfd: zio stands aside, every call passes through"
        );
        Mode::Translated
    } else {
        Mode::Ready
    };
    MODE.store(mode as u8, Ordering::Release);
    crate::statfile::set_mode(mode as u32);
    if mode == Mode::Ready {
        crate::elide::activate();
    }
    if crate::log::enabled(Level::Info) {
        banner(mode);
    }
}

/// Probes userfaultfd, once per process (the first large input's caller;
/// a forked child inherits the answer). False, with one warning and the
/// status line saying why, if the kernel refuses it: every call passes
/// through from then on.
pub fn probe_kernel() -> bool {
    if UFFD_FEATURES.load(Ordering::Acquire) != 0 {
        return true;
    }
    match uffd::probe() {
        Ok(features) => {
            UFFD_FEATURES.store(features, Ordering::Release);
            true
        }
        Err(e) => {
            let hint = if e.errno == libc::EPERM {
                " (an unprivileged process needs read-write access to /dev/userfaultfd: as root, `zio-run --setup --user NAME` grants it)"
            } else {
                ""
            };
            zio_log!(
                Level::Warn,
                "userfaultfd unavailable: {} failed with {}{}; running as pure pass-through, no copies will be elided",
                e.step,
                uffd::errno_name(e.errno),
                hint
            );
            elision_failed(e.errno);
            false
        }
    }
}

/// The binary translator the process runs under, if it is one known not
/// to deliver userfaultfd faults: valgrind puts its own libraries first in
/// `LD_PRELOAD`. (Its threads run one at a time, so a fault raised in
/// translated code would wait forever for zio's handler thread.)
fn translator() -> Option<&'static str> {
    let preload = config::getenv("LD_PRELOAD")?;
    preload
        .windows(b"/vgpreload_".len())
        .any(|w| w == b"/vgpreload_")
        .then_some("valgrind")
}

fn write_mode(w: &mut Line, mode: Mode) {
    let _ = match mode {
        Mode::Ready if uffd_features() == 0 => {
            write!(w, "ready, userfaultfd not probed (no large input)")
        }
        Mode::Ready => write!(w, "ready, userfaultfd features {:#x}", uffd_features()),
        Mode::Disabled => write!(w, "pass-through (ZIO_ENABLE=0)"),
        Mode::NoUserfaultfd => write!(
            w,
            "pass-through (userfaultfd unavailable: {})",
            uffd::errno_name(UFFD_ERRNO.load(Ordering::Relaxed))
        ),
        Mode::Translated => write!(w, "pass-through (under valgrind)"),
        Mode::Starting => write!(w, "starting"),
    };
}

/// One line with the mode and every option that differs from its default,
/// so a log shows what a process ran with.
fn banner(mode: Mode) {
    let mut line = Line::new();
    let _ = write!(line, "loaded: ");
    write_mode(&mut line, mode);
    let mut first = true;
    for (i, d) in OPTIONS.iter().enumerate() {
        let opt = config::ALL[i];
        let changed = match d.kind {
            Kind::Path => !config::secure() && config::raw(opt).is_some_and(|p| !p.is_empty()),
            _ => config::get(opt) != d.default,
        };
        if !changed {
            continue;
        }
        let _ = line.write_str(if first { "; set: " } else { ", " });
        first = false;
        let _ = line.write_str(d.name);
        if config::secure() {
            continue; // the values are the caller's, not the program owner's
        }
        let _ = line.write_str("=");
        if let Some(t) = config::raw(opt) {
            let _ = line.write_str_escaped(t);
        }
    }
    crate::log::emit(Level::Info, line.as_str());
}

/// Copy elision turned out impossible after start (the engine could not
/// open userfaultfd, typically after the process dropped its privileges,
/// or start its threads): from now on the process passes every call
/// through, and its status line says so, with `errno`.
pub fn elision_failed(errno: i32) {
    UFFD_ERRNO.store(errno, Ordering::Relaxed);
    MODE.store(Mode::NoUserfaultfd as u8, Ordering::Release);
    crate::statfile::set_mode(Mode::NoUserfaultfd as u32);
}

/// The library destructor's work: the counters file goes, and the stats
/// summary is written if asked for.
pub fn at_exit() {
    let _inside = thread::enter();
    crate::statfile::remove();
    if config::get(Opt::Stats) == 0 {
        return;
    }
    let secs = now_ns().saturating_sub(START_NS.load(Ordering::Relaxed)) as f64 / 1e9;
    let mut header = Line::new();
    let _ = write!(header, "{secs:.2} s, ");
    write_mode(&mut header, mode());
    stats::write_summary(&stats::snapshot(), header.as_str());
    // The engine starts at the first large input; a process that never had
    // one still reports its (zero) counters, so every summary has the same
    // lines.
    if mode() == Mode::Ready {
        stats::write_engine_summary(&crate::elide::counters().unwrap_or_default());
    }
}

/// In the child of a `fork`: the counters and the clock start again, so the
/// child's summary covers the child alone.
pub fn after_fork_in_child() {
    stats::reset_after_fork();
    // Only the summary reads the clock; unwritten, its page stays shared.
    if config::get(Opt::Stats) != 0 {
        START_NS.store(now_ns(), Ordering::Relaxed);
    }
}
