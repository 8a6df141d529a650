//! Messages: never on the program's stdout, never allocating.
//!
//! At start the library takes a private, close-on-exec duplicate of fd 2
//! (programs such as daemons close or reuse fd 2 later) or opens
//! `ZIO_LOG_FILE` (private, mode 0600, never through a symbolic link; not
//! under secure execution). With `%p` in it, each process opens its own,
//! on its first message (a child of any kind of fork). Each message is formatted into a stack buffer and written
//! with a single `write(2)`, so lines from several threads or processes do not
//! interleave mid-line and no lock is taken.

use core::fmt;
use core::sync::atomic::{AtomicI32, AtomicPtr, AtomicU8, AtomicUsize, Ordering};

/// Message levels, lowest number = most important.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    /// Nothing at all.
    Off = 0,
    /// zio cannot do what it was asked (it still never stops the program).
    Error = 1,
    /// Something the user should fix or know (bad option, no userfaultfd).
    Warn = 2,
    /// Start-up banner and summaries.
    Info = 3,
    /// Decisions worth tracing while debugging.
    Debug = 4,
    /// Everything.
    Trace = 5,
}

impl Level {
    /// The names accepted in `ZIO_LOG`, in level order.
    pub const NAMES: [&'static str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

    /// Parses a level name (case-insensitive).
    pub fn from_name(t: &[u8]) -> Option<Level> {
        Self::NAMES
            .iter()
            .position(|n| n.as_bytes().eq_ignore_ascii_case(t))
            .map(|i| Self::from_u64(i as u64))
    }

    /// The level for a stored option value (out-of-range values clamp).
    pub fn from_u64(v: u64) -> Level {
        match v {
            0 => Level::Off,
            1 => Level::Error,
            2 => Level::Warn,
            3 => Level::Info,
            4 => Level::Debug,
            _ => Level::Trace,
        }
    }

    fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Warn as u8);
/// Destination fd; -2 = not set up yet (use fd 2), -1 = nowhere.
static FD: AtomicI32 = AtomicI32::new(-2);
/// `ZIO_LOG_FILE` when it holds `%p` (null otherwise): each process opens
/// its own file, on its first message after a fork. It points into
/// `PATH_COPY`, not the environment, which programs that set their process
/// title (nginx, PostgreSQL, Redis) write over.
static PID_PATH: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());
static PID_PATH_LEN: AtomicUsize = AtomicUsize::new(0);

/// Room for the `%p` path (longer ones could not be expanded anyway).
const PATH_MAX: usize = 4096;

/// The copy of the `%p` path that `PID_PATH` points to.
struct PathCopy(core::cell::UnsafeCell<[u8; PATH_MAX]>);

// SAFETY: written only by `init`, before `PID_PATH` publishes it with
// Release; every reader loads `PID_PATH` with Acquire first and never
// writes.
unsafe impl Sync for PathCopy {}

static PATH_COPY: PathCopy = PathCopy(core::cell::UnsafeCell::new([0; PATH_MAX]));
/// The process `FD` was opened for when `PID_PATH` is set.
static FD_PID: AtomicI32 = AtomicI32::new(0);

/// Lowest fd number for our private descriptors, so that they stay out of the
/// way of programs that assume the small numbers are theirs.
const PRIVATE_FD_MIN: i32 = 100;

/// Sets the level and destination. `file` may contain `%p` for the pid.
pub fn init(level: Level, file: Option<&'static [u8]>) {
    LEVEL.store(level as u8, Ordering::Relaxed);
    // SAFETY: fcntl on fd 2 has no memory-safety preconditions; a closed fd 2
    // just yields -1, which means "nowhere".
    let stderr_dup = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, PRIVATE_FD_MIN) };
    FD.store(stderr_dup, Ordering::Relaxed);
    let Some(path) = file else {
        return;
    };
    if path.windows(2).any(|w| w == b"%p")
        && path.len() <= PATH_MAX
        && PID_PATH.load(Ordering::Acquire).is_null()
    {
        let copy = PATH_COPY.0.get().cast::<u8>();
        // SAFETY: `copy` has room for PATH_MAX bytes and nothing reads it
        // before the Release store below publishes it; `init` runs once, at
        // start, and a second call finds `PID_PATH` set and skips this.
        unsafe { core::ptr::copy_nonoverlapping(path.as_ptr(), copy, path.len()) };
        PID_PATH_LEN.store(path.len(), Ordering::Relaxed);
        PID_PATH.store(copy, Ordering::Release);
    }
    open_file(path);
}

/// Opens `path` (`%p` expanded) as the destination, in place of the current
/// one; on failure the current destination stays and says so. The file is
/// never followed through a symbolic link, and is created private (0600).
fn open_file(path: &[u8]) {
    // SAFETY: getpid has no preconditions.
    FD_PID.store(unsafe { libc::getpid() }, Ordering::Relaxed);
    let mut buf = [0u8; 4096];
    let fd = match expand_pid(path, &mut buf) {
        // SAFETY: `buf` holds a NUL-terminated path (expand_pid guarantees it).
        Some(()) => unsafe {
            let fd = libc::open(
                buf.as_ptr().cast(),
                libc::O_WRONLY
                    | libc::O_CREAT
                    | libc::O_APPEND
                    | libc::O_CLOEXEC
                    | libc::O_NOFOLLOW,
                0o600,
            );
            if (0..PRIVATE_FD_MIN).contains(&fd) {
                let high = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, PRIVATE_FD_MIN);
                libc::close(fd);
                high
            } else {
                fd
            }
        },
        None => -1,
    };
    if fd >= 0 {
        let old = FD.swap(fd, Ordering::Relaxed);
        if old >= 0 {
            // SAFETY: closing our own previous destination (a private
            // duplicate of stderr, or the file of the parent process).
            unsafe { libc::close(old) };
        }
    } else {
        let mut line = Line::new();
        let _ = fmt::Write::write_str(&mut line, "cannot open ZIO_LOG_FILE \"");
        let _ = line.write_str_escaped(path);
        let _ = fmt::Write::write_str(&mut line, "\"; logging to stderr");
        emit(Level::Warn, line.as_str());
    }
}

/// The destination of this process: with `%p` in `ZIO_LOG_FILE`, a process
/// other than the one that opened the file (a child of any kind of fork)
/// opens its own first.
fn destination() -> i32 {
    let p = PID_PATH.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        let was = FD_PID.load(Ordering::Relaxed);
        if pid != was
            && FD_PID
                .compare_exchange(was, pid, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            // SAFETY: `PID_PATH` points to `PATH_COPY`, written once with
            // `PID_PATH_LEN` bytes in `init` and never again.
            open_file(unsafe {
                core::slice::from_raw_parts(p, PID_PATH_LEN.load(Ordering::Relaxed))
            });
        }
    }
    match FD.load(Ordering::Relaxed) {
        -2 => 2,
        fd => fd,
    }
}

/// `v` in decimal, in `buf` (no allocation, no formatter: for paths built
/// where zio must not allocate).
pub(crate) fn decimal(mut v: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut n = buf.len();
    loop {
        n -= 1;
        buf[n] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[n..];
        }
    }
}

/// Writes `path` with each `%p` replaced by the pid into `out`, NUL-terminated.
/// Returns `None` if it does not fit.
pub fn expand_pid(path: &[u8], out: &mut [u8]) -> Option<()> {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let mut buf = [0u8; 10];
    let digits = decimal(pid as u32, &mut buf);
    let mut o = 0;
    let mut i = 0;
    while i < path.len() {
        let piece: &[u8] = if path[i] == b'%' && path.get(i + 1) == Some(&b'p') {
            i += 2;
            digits
        } else {
            i += 1;
            &path[i - 1..i]
        };
        out.get_mut(o..o + piece.len())?.copy_from_slice(piece);
        o += piece.len();
    }
    *out.get_mut(o)? = 0;
    Some(())
}

/// True if messages of `level` are written.
#[inline]
pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// A message line being built on the stack (truncated if too long).
pub struct Line {
    buf: [u8; 1024],
    len: usize,
}

impl Line {
    /// An empty line.
    pub fn new() -> Line {
        Line {
            buf: [0; 1024],
            len: 0,
        }
    }

    /// The text so far.
    pub fn as_str(&self) -> &str {
        // Only whole `str`s (and escaped bytes) are ever appended.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// Appends bytes that may not be UTF-8, escaping what is not printable.
    pub fn write_str_escaped(&mut self, t: &[u8]) -> fmt::Result {
        write_escaped(self, t)
    }
}

impl Default for Line {
    fn default() -> Self {
        Line::new()
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        // Truncate on a char boundary so `as_str` stays valid.
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Writes bytes that may not be UTF-8 (environment text), escaping what is
/// not printable and cutting very long values.
pub fn write_escaped(w: &mut dyn fmt::Write, text: &[u8]) -> fmt::Result {
    for &c in text.iter().take(200) {
        if c.is_ascii_graphic() || c == b' ' {
            w.write_char(c as char)?;
        } else {
            write!(w, "\\x{c:02x}")?;
        }
    }
    if text.len() > 200 {
        w.write_str("...")?;
    }
    Ok(())
}

/// Writes one message line: `zio[pid]: level: text`.
pub fn emit(level: Level, text: &str) {
    if !enabled(level) {
        return;
    }
    let mut line = Line::new();
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let _ = fmt::Write::write_fmt(
        &mut line,
        format_args!("zio[{pid}]: {}: {text}\n", level.name()),
    );
    write_raw(line.as_str().as_bytes());
}

/// Formats and writes one message (used by the `zio_log!` macro).
pub fn emit_fmt(level: Level, args: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let mut line = Line::new();
    let _ = fmt::Write::write_fmt(&mut line, args);
    emit(level, line.as_str());
}

/// Writes bytes to the log destination as they are (one `write(2)` if it
/// takes them all; retried on short writes and `EINTR`).
pub fn write_raw(mut bytes: &[u8]) {
    let fd = destination();
    if fd < 0 {
        return;
    }
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid readable slice; fd is ours or stderr.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n > 0 {
            bytes = &bytes[n as usize..];
        } else if n < 0 && errno() == libc::EINTR {
            continue;
        } else {
            return;
        }
    }
}

/// The calling thread's `errno`.
pub fn errno() -> i32 {
    // SAFETY: __errno_location always returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// Writes a message at a level, formatting only if that level is enabled.
#[macro_export]
macro_rules! zio_log {
    ($lvl:expr, $($arg:tt)*) => {
        if $crate::log::enabled($lvl) {
            $crate::log::emit_fmt($lvl, format_args!($($arg)*));
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_expansion() {
        let mut out = [0u8; 64];
        expand_pid(b"/tmp/zio.%p.log", &mut out).unwrap();
        let s = core::ffi::CStr::from_bytes_until_nul(&out)
            .unwrap()
            .to_str()
            .unwrap();
        assert_eq!(s, format!("/tmp/zio.{}.log", std::process::id()));
        let mut small = [0u8; 4];
        assert!(expand_pid(b"/tmp/x", &mut small).is_none());
    }

    #[test]
    fn levels() {
        assert_eq!(Level::from_name(b"WARN"), Some(Level::Warn));
        assert_eq!(Level::from_name(b"off"), Some(Level::Off));
        assert_eq!(Level::from_name(b"verbose"), None);
        assert!(Level::Error < Level::Debug);
    }

    #[test]
    fn line_truncates_on_char_boundary() {
        let mut l = Line::new();
        for _ in 0..600 {
            fmt::Write::write_str(&mut l, "é").unwrap();
        }
        assert_eq!(l.as_str().len(), 1024);
        assert!(l.as_str().chars().all(|c| c == 'é'));
    }
}
