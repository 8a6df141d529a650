//! Options: one table, one getter, read once at start.
//!
//! Every option is an environment variable listed in [`OPTIONS`]. The library
//! reads them in its constructor ([`init_from_env`]); a value that does not
//! parse is named in one warning line and its default is used, so a typo
//! never stops the host program. `zio-run --check` uses the same parser
//! ([`check_env`]) strictly and fails instead.
//!
//! Values are kept as `u64` in atomics so that the hot path reads them with a
//! plain load and no lock.

use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// How an option's text is interpreted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `0/1`, `true/false`, `yes/no`, `on/off`.
    Bool,
    /// Bytes with an optional `K`, `M` or `G` suffix (powers of 1024).
    Size,
    /// A decimal fraction in `[0, 1]`, kept as `f64` bits.
    Ratio,
    /// A plain positive integer.
    Count,
    /// Milliseconds, a plain integer.
    Millis,
    /// A log level name (see [`crate::log::Level`]).
    Level,
    /// A file path, used as is (`%p` is replaced by the process id).
    Path,
}

/// One row of the options table.
#[derive(Debug)]
pub struct OptDesc {
    /// Environment variable name.
    pub name: &'static str,
    /// How the value is parsed.
    pub kind: Kind,
    /// The default, as a user would write it.
    pub default_text: &'static str,
    /// The default, parsed (kept next to its text; a unit test checks they agree).
    pub default: u64,
    /// Smallest accepted value (parsed units), inclusive.
    pub min: u64,
    /// Largest accepted value (parsed units), inclusive.
    pub max: u64,
    /// The `zio-run` flag that sets this option.
    pub flag: &'static str,
    /// One line of help.
    pub help: &'static str,
}

/// Index of an option in [`OPTIONS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Opt {
    /// `ZIO_ENABLE`
    Enable,
    /// `ZIO_THRESHOLD`
    Threshold,
    /// `ZIO_FAULT_RATIO`
    FaultRatio,
    /// `ZIO_MAX_RECORDS`
    MaxRecords,
    /// `ZIO_QUARANTINE`
    Quarantine,
    /// `ZIO_GC_MS`
    GcMs,
    /// `ZIO_REDIRECT_INPUT`
    RedirectInput,
    /// `ZIO_STATS`
    Stats,
    /// `ZIO_LOG`
    Log,
    /// `ZIO_LOG_FILE`
    LogFile,
    /// `ZIO_INJECT`
    Inject,
    /// `ZIO_VALGRIND`
    Valgrind,
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
const TIB: u64 = 1024 * GIB;

/// Number of options.
pub const NOPTS: usize = 12;

/// The options table. The order matches [`Opt`].
pub static OPTIONS: [OptDesc; NOPTS] = [
    OptDesc {
        name: "ZIO_ENABLE",
        kind: Kind::Bool,
        default_text: "1",
        default: 1,
        min: 0,
        max: 1,
        flag: "--disable",
        help: "0 = load but never elide (pure pass-through)",
    },
    OptDesc {
        name: "ZIO_THRESHOLD",
        kind: Kind::Size,
        // An elided copy has a fixed cost of a few microseconds, which
        // small copies do not repay (docs/design.md, "The policy").
        default_text: "64K",
        default: 64 * KIB,
        // Below one page there is no core to leave unmapped.
        min: 4 * KIB,
        max: TIB,
        flag: "--threshold",
        help: "smallest copy core (whole pages) tracked or elided; K/M/G suffixes",
    },
    OptDesc {
        name: "ZIO_FAULT_RATIO",
        kind: Kind::Ratio,
        default_text: "0.06",
        default: 0x3FAE_B851_EB85_1EB8, // 0.06_f64.to_bits()
        min: 0,
        max: 0x3FF0_0000_0000_0000, // 1.0_f64.to_bits()
        flag: "--fault-ratio",
        help: "touched/elided bytes above which elision stops for a buffer or call site (1: never)",
    },
    OptDesc {
        name: "ZIO_MAX_RECORDS",
        kind: Kind::Count,
        default_text: "16384",
        // Each intermediate may add VMAs, and vm.max_map_count bounds them
        // (65530 by default).
        default: 16384,
        min: 1,
        max: 1 << 24,
        flag: "--max-records",
        help: "live records beyond which garbage collection materializes the least recently used",
    },
    OptDesc {
        name: "ZIO_QUARANTINE",
        kind: Kind::Size,
        default_text: "64M",
        default: 64 * MIB,
        min: 0,
        max: TIB,
        flag: "--quarantine",
        help: "byte budget of freed originals kept for their dependents, and again of zio-owned copies (backups, redirected input)",
    },
    OptDesc {
        name: "ZIO_GC_MS",
        kind: Kind::Millis,
        default_text: "1000",
        default: 1000,
        min: 1,
        max: 3_600_000,
        flag: "--gc-ms",
        help: "period of the garbage-collection pass, in milliseconds",
    },
    OptDesc {
        name: "ZIO_REDIRECT_INPUT",
        kind: Kind::Bool,
        default_text: "1",
        default: 1,
        min: 0,
        max: 1,
        flag: "--no-redirect-input",
        help: "1 = land input into a reused buffer in zio's memory and leave the buffer's pages unmapped (no backup, no protection changes)",
    },
    OptDesc {
        name: "ZIO_STATS",
        kind: Kind::Bool,
        default_text: "0",
        default: 0,
        min: 0,
        max: 1,
        flag: "--stats",
        help: "1 = print a stats summary at exit (on stderr, or ZIO_LOG_FILE)",
    },
    OptDesc {
        name: "ZIO_LOG",
        kind: Kind::Level,
        default_text: "warn",
        default: 2,
        min: 0,
        max: 5,
        flag: "--log",
        help: "message level: off, error, warn, info, debug, trace",
    },
    OptDesc {
        name: "ZIO_LOG_FILE",
        kind: Kind::Path,
        default_text: "",
        default: 0,
        min: 0,
        max: 0,
        flag: "--log-file",
        help: "write messages and stats here instead of stderr; %p becomes the pid",
    },
    OptDesc {
        name: "ZIO_INJECT",
        kind: Kind::Count,
        default_text: "0",
        default: 0,
        min: 0,
        max: 1 << 32,
        flag: "--inject",
        help: "testing: every Nth mapping or userfaultfd request of zio's own fails (ENOMEM, or EAGAIN; 0 = never)",
    },
    OptDesc {
        name: "ZIO_VALGRIND",
        kind: Kind::Bool,
        default_text: "0",
        default: 0,
        min: 0,
        max: 1,
        flag: "--under-valgrind",
        help: "1 = elide under valgrind anyway (instruction counts of programs that never touch an elided copy: a touch hangs)",
    },
];

/// Variables with the `ZIO_` prefix that are not library options but are
/// known, so that neither the library nor `--check` calls them typos.
pub const KNOWN_OTHER: &[&str] = &["ZIO_LIB"];

static VALUES: [AtomicU64; NOPTS] = {
    let mut v = [const { AtomicU64::new(0) }; NOPTS];
    let mut i = 0;
    while i < NOPTS {
        v[i] = AtomicU64::new(OPTIONS[i].default);
        i += 1;
    }
    v
};

/// The current value of an option, in parsed units (see [`Kind`]).
#[inline(always)]
pub fn get(opt: Opt) -> u64 {
    VALUES[opt as usize].load(Ordering::Relaxed)
}

/// The current value of a [`Kind::Ratio`] option.
pub fn get_ratio(opt: Opt) -> f64 {
    f64::from_bits(get(opt))
}

/// Sets an option (used at start and by in-process tests).
pub fn set(opt: Opt, value: u64) {
    VALUES[opt as usize].store(value, Ordering::Relaxed);
}

/// True unless `ZIO_ENABLE=0`.
#[inline(always)]
pub fn enabled() -> bool {
    get(Opt::Enable) != 0
}

/// The size threshold in bytes.
#[inline(always)]
pub fn threshold() -> usize {
    get(Opt::Threshold) as usize
}

/// Why a value was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Empty text.
    Empty,
    /// Not of the option's kind at all.
    Malformed,
    /// Parsed, but outside `[min, max]`.
    OutOfRange,
}

impl OptDesc {
    /// What a value of this option looks like, for messages.
    pub fn expected(&self) -> &'static str {
        match self.kind {
            Kind::Bool => "0 or 1",
            Kind::Size => "a size in bytes with optional K/M/G suffix, e.g. 16K",
            Kind::Ratio => "a fraction between 0 and 1, e.g. 0.06",
            Kind::Count => "a positive integer",
            Kind::Millis => "milliseconds, a positive integer",
            Kind::Level => "one of off, error, warn, info, debug, trace",
            Kind::Path => "a file path",
        }
    }

    /// Parses `text` as a value of this option.
    pub fn parse(&self, text: &[u8]) -> Result<u64, ParseError> {
        let text = trim(text);
        if text.is_empty() {
            return Err(ParseError::Empty);
        }
        let v = match self.kind {
            Kind::Bool => parse_bool(text)?,
            Kind::Size => parse_size(text)?,
            Kind::Count | Kind::Millis => parse_u64(text)?,
            Kind::Level => parse_level(text)?,
            Kind::Path => return Ok(0),
            Kind::Ratio => {
                let r = parse_ratio(text)?;
                if !(0.0..=1.0).contains(&r) {
                    return Err(ParseError::OutOfRange);
                }
                return Ok(r.to_bits());
            }
        };
        if v < self.min || v > self.max {
            return Err(ParseError::OutOfRange);
        }
        Ok(v)
    }

    /// Writes the accepted range, for out-of-range messages.
    pub fn write_range(&self, w: &mut dyn fmt::Write) -> fmt::Result {
        match self.kind {
            Kind::Size => {
                write!(w, "between ")?;
                write_size(w, self.min)?;
                write!(w, " and ")?;
                write_size(w, self.max)
            }
            Kind::Ratio => write!(w, "between 0 and 1"),
            _ => write!(w, "between {} and {}", self.min, self.max),
        }
    }
}

/// Writes a byte count the way a user would type it (`16K`, `64M`, `12345`).
pub fn write_size(w: &mut dyn fmt::Write, v: u64) -> fmt::Result {
    for (unit, s) in [(TIB, "T"), (GIB, "G"), (MIB, "M"), (KIB, "K")] {
        if v >= unit && v.is_multiple_of(unit) {
            return write!(w, "{}{}", v / unit, s);
        }
    }
    write!(w, "{v}")
}

fn trim(mut t: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = t {
        if !first.is_ascii_whitespace() {
            break;
        }
        t = rest;
    }
    while let [rest @ .., last] = t {
        if !last.is_ascii_whitespace() {
            break;
        }
        t = rest;
    }
    t
}

fn parse_u64(t: &[u8]) -> Result<u64, ParseError> {
    let mut v: u64 = 0;
    for &c in t {
        if !c.is_ascii_digit() {
            return Err(ParseError::Malformed);
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .ok_or(ParseError::OutOfRange)?;
    }
    Ok(v)
}

fn parse_size(t: &[u8]) -> Result<u64, ParseError> {
    let (digits, mult) = match t.last().map(u8::to_ascii_uppercase) {
        Some(b'K') => (&t[..t.len() - 1], KIB),
        Some(b'M') => (&t[..t.len() - 1], MIB),
        Some(b'G') => (&t[..t.len() - 1], GIB),
        Some(b'T') => (&t[..t.len() - 1], TIB),
        _ => (t, 1),
    };
    let digits = trim(digits);
    if digits.is_empty() {
        return Err(ParseError::Malformed);
    }
    parse_u64(digits)?
        .checked_mul(mult)
        .ok_or(ParseError::OutOfRange)
}

fn parse_bool(t: &[u8]) -> Result<u64, ParseError> {
    let mut buf = [0u8; 8];
    if t.len() > buf.len() {
        return Err(ParseError::Malformed);
    }
    for (b, c) in buf.iter_mut().zip(t) {
        *b = c.to_ascii_lowercase();
    }
    match &buf[..t.len()] {
        b"1" | b"true" | b"yes" | b"on" => Ok(1),
        b"0" | b"false" | b"no" | b"off" => Ok(0),
        _ => Err(ParseError::Malformed),
    }
}

fn parse_level(t: &[u8]) -> Result<u64, ParseError> {
    crate::log::Level::from_name(t)
        .map(|l| l as u64)
        .ok_or(ParseError::Malformed)
}

/// Parses `d`, `d.ddd` or `.ddd` without allocating (no `str::parse`, which
/// is fine but would need UTF-8 validation and gives worse messages).
fn parse_ratio(t: &[u8]) -> Result<f64, ParseError> {
    let (int, frac) = match t.iter().position(|&c| c == b'.') {
        Some(i) => (&t[..i], &t[i + 1..]),
        None => (t, &[][..]),
    };
    if int.is_empty() && frac.is_empty() {
        return Err(ParseError::Malformed);
    }
    if int.len() > 6 || frac.len() > 12 {
        return Err(ParseError::Malformed);
    }
    let i = if int.is_empty() { 0 } else { parse_u64(int)? };
    let f = if frac.is_empty() { 0 } else { parse_u64(frac)? };
    Ok(i as f64 + f as f64 / 10f64.powi(frac.len() as i32))
}

/// Looks an option up by its variable name.
pub fn find(name: &[u8]) -> Option<(Opt, &'static OptDesc)> {
    OPTIONS
        .iter()
        .position(|d| d.name.as_bytes() == name)
        .map(|i| (ALL[i], &OPTIONS[i]))
}

/// Every option, in table order.
pub const ALL: [Opt; NOPTS] = [
    Opt::Enable,
    Opt::Threshold,
    Opt::FaultRatio,
    Opt::MaxRecords,
    Opt::Quarantine,
    Opt::GcMs,
    Opt::RedirectInput,
    Opt::Stats,
    Opt::Log,
    Opt::LogFile,
    Opt::Inject,
    Opt::Valgrind,
];

/// Reads one variable with `getenv` (no allocation).
fn getenv(name: &str) -> Option<&'static [u8]> {
    let mut buf = [0u8; 32];
    let n = name.len();
    buf[..n].copy_from_slice(name.as_bytes());
    // SAFETY: `buf` is NUL-terminated (names are < 32 bytes, the rest is 0).
    // getenv returns a pointer into the environment block, which lives for
    // the process unless the program edits its environment; we only read it
    // during start-up, before the program's own code runs.
    unsafe {
        let p = libc::getenv(buf.as_ptr().cast());
        if p.is_null() {
            None
        } else {
            Some(core::ffi::CStr::from_ptr(p).to_bytes())
        }
    }
}

/// The raw text of an option's variable, if set.
pub fn raw(opt: Opt) -> Option<&'static [u8]> {
    getenv(OPTIONS[opt as usize].name)
}

static SECURE: AtomicBool = AtomicBool::new(false);

/// True under secure execution (`AT_SECURE`: a setuid or setgid program,
/// or one with file capabilities). The caller then is not the program's
/// owner: options naming files are ignored, and no value the caller set
/// is ever printed.
pub fn secure() -> bool {
    SECURE.load(Ordering::Relaxed)
}

/// Reads every option from the environment. Bad values are warned about (one
/// line naming the variable) and defaulted; unknown `ZIO_*` variables are
/// warned about as likely typos. Logging is set up first so that warnings
/// about the other options reach the chosen destination.
pub fn init_from_env() {
    // SAFETY: getauxval has no preconditions; 0 means "not secure".
    let secure = unsafe { libc::getauxval(libc::AT_SECURE) } != 0;
    SECURE.store(secure, Ordering::Relaxed);
    let log_bad = load(Opt::Log);
    let file = raw(Opt::LogFile).filter(|p| !p.is_empty());
    crate::log::init(
        crate::log::Level::from_u64(get(Opt::Log)),
        file.filter(|_| !secure),
    );
    if secure && file.is_some() {
        crate::log::emit(
            crate::log::Level::Warn,
            "secure execution: ZIO_LOG_FILE is ignored; messages go to stderr",
        );
    }
    if let Some(text) = log_bad {
        warn_bad(Opt::Log, text);
    }
    for opt in ALL {
        if matches!(opt, Opt::Log | Opt::LogFile) {
            continue;
        }
        if let Some(text) = load(opt) {
            warn_bad(opt, text);
        }
    }
    warn_unknown();
}

/// Loads one option from the environment; returns the offending text if it
/// was set but refused (the default stays).
fn load(opt: Opt) -> Option<&'static [u8]> {
    let text = raw(opt)?;
    match OPTIONS[opt as usize].parse(text) {
        Ok(v) => {
            set(opt, v);
            None
        }
        Err(_) => Some(text),
    }
}

/// Writes the one-line explanation of why `text` was refused for `opt`.
pub fn write_refusal(w: &mut dyn fmt::Write, opt: Opt, text: &[u8]) -> fmt::Result {
    let d = &OPTIONS[opt as usize];
    write!(w, "{}=\"", d.name)?;
    crate::log::write_escaped(w, text)?;
    match d.parse(text) {
        Err(ParseError::OutOfRange) => {
            write!(w, "\" is out of range (must be ")?;
            d.write_range(w)?;
            write!(w, ")")
        }
        Err(ParseError::Empty) => write!(w, "\" is empty (expected {})", d.expected()),
        _ => write!(w, "\" is not valid (expected {})", d.expected()),
    }
}

fn warn_bad(opt: Opt, text: &[u8]) {
    let d = &OPTIONS[opt as usize];
    let mut line = crate::log::Line::new();
    if secure() {
        let _ = fmt::Write::write_fmt(&mut line, format_args!("{} is not valid", d.name));
    } else {
        let _ = write_refusal(&mut line, opt, text);
    }
    let _ = fmt::Write::write_fmt(
        &mut line,
        format_args!("; using the default {}", d.default_text),
    );
    crate::log::emit(crate::log::Level::Warn, line.as_str());
}

fn is_known_name(name: &[u8]) -> bool {
    find(name).is_some() || KNOWN_OTHER.iter().any(|k| k.as_bytes() == name)
}

fn warn_unknown() {
    extern "C" {
        static environ: *const *const libc::c_char;
    }
    if secure() {
        return; // the names are the caller's too
    }
    // SAFETY: `environ` is the process environment, a NULL-terminated array
    // of NUL-terminated strings; start-up code runs before the program can
    // modify it from another thread.
    unsafe {
        let mut p = environ;
        while !p.is_null() && !(*p).is_null() {
            let entry = core::ffi::CStr::from_ptr(*p).to_bytes();
            p = p.add(1);
            let name = entry.split(|&c| c == b'=').next().unwrap_or(entry);
            if name.starts_with(b"ZIO_") && !is_known_name(name) {
                let mut line = crate::log::Line::new();
                let _ = line.write_str_escaped(name);
                let _ = fmt::Write::write_str(
                    &mut line,
                    " is not a zio option and is ignored (see `zio-run --help`)",
                );
                crate::log::emit(crate::log::Level::Warn, line.as_str());
            }
        }
    }
}

/// One problem found by [`check_env`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The variable concerned.
    pub name: String,
    /// What is wrong with it.
    pub message: String,
}

/// Strict validation of `ZIO_*` variables (for `zio-run --check`): every bad
/// value and every unknown `ZIO_*` name is a problem.
pub fn check_env<I, K, V>(vars: I) -> Vec<Problem>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let mut problems = Vec::new();
    for (name, value) in vars {
        let (name, value) = (name.as_ref(), value.as_ref());
        if !name.starts_with(b"ZIO_") {
            continue;
        }
        let name_s = String::from_utf8_lossy(name).into_owned();
        match find(name) {
            Some((opt, d)) => {
                if d.parse(value).is_err() {
                    let mut message = String::new();
                    let _ = write_refusal(&mut message, opt, value);
                    problems.push(Problem {
                        name: name_s,
                        message,
                    });
                }
            }
            None if is_known_name(name) => {}
            None => problems.push(Problem {
                message: format!("{name_s} is not a zio option"),
                name: name_s,
            }),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_agree_with_their_text() {
        for d in &OPTIONS {
            if d.kind == Kind::Path {
                continue;
            }
            assert_eq!(
                d.parse(d.default_text.as_bytes()),
                Ok(d.default),
                "{}",
                d.name
            );
        }
        assert_eq!(
            f64::from_bits(OPTIONS[Opt::FaultRatio as usize].default),
            0.06
        );
    }

    #[test]
    fn table_order_matches_enum() {
        for (i, opt) in ALL.iter().enumerate() {
            assert_eq!(*opt as usize, i);
            assert_eq!(find(OPTIONS[i].name.as_bytes()).unwrap().0, *opt);
        }
    }

    #[test]
    fn sizes() {
        let d = &OPTIONS[Opt::Threshold as usize];
        assert_eq!(d.parse(b"16K"), Ok(16384));
        assert_eq!(d.parse(b"16k"), Ok(16384));
        assert_eq!(d.parse(b" 32K "), Ok(32768));
        assert_eq!(d.parse(b"1M"), Ok(1 << 20));
        assert_eq!(d.parse(b"4096"), Ok(4096));
        assert_eq!(d.parse(b"2G"), Ok(2 << 30));
        assert_eq!(d.parse(b"100"), Err(ParseError::OutOfRange));
        assert_eq!(d.parse(b"banana"), Err(ParseError::Malformed));
        assert_eq!(d.parse(b"K"), Err(ParseError::Malformed));
        assert_eq!(d.parse(b"-4K"), Err(ParseError::Malformed));
        assert_eq!(d.parse(b""), Err(ParseError::Empty));
        assert_eq!(
            d.parse(b"99999999999999999999K"),
            Err(ParseError::OutOfRange)
        );
    }

    #[test]
    fn ratios_bools_levels() {
        let r = &OPTIONS[Opt::FaultRatio as usize];
        assert_eq!(r.parse(b"0.5").map(f64::from_bits), Ok(0.5));
        assert_eq!(r.parse(b".25").map(f64::from_bits), Ok(0.25));
        assert_eq!(r.parse(b"1").map(f64::from_bits), Ok(1.0));
        assert_eq!(r.parse(b"1.5"), Err(ParseError::OutOfRange));
        assert_eq!(r.parse(b"0.x"), Err(ParseError::Malformed));
        assert_eq!(r.parse(b"."), Err(ParseError::Malformed));
        let b = &OPTIONS[Opt::Enable as usize];
        assert_eq!(b.parse(b"off"), Ok(0));
        assert_eq!(b.parse(b"YES"), Ok(1));
        assert_eq!(b.parse(b"2"), Err(ParseError::Malformed));
        let l = &OPTIONS[Opt::Log as usize];
        assert_eq!(l.parse(b"debug"), Ok(4));
        assert_eq!(l.parse(b"loud"), Err(ParseError::Malformed));
    }

    #[test]
    fn refusal_messages_name_the_variable() {
        let mut s = String::new();
        write_refusal(&mut s, Opt::Threshold, b"banana").unwrap();
        assert_eq!(
            s,
            "ZIO_THRESHOLD=\"banana\" is not valid (expected a size in bytes with optional K/M/G suffix, e.g. 16K)"
        );
        s.clear();
        write_refusal(&mut s, Opt::Threshold, b"1").unwrap();
        assert_eq!(
            s,
            "ZIO_THRESHOLD=\"1\" is out of range (must be between 4K and 1T)"
        );
    }

    #[test]
    fn check_env_is_strict() {
        let vars = [
            ("ZIO_THRESHOLD", "32K"),
            ("ZIO_TRESHOLD", "32K"),
            ("ZIO_GC_MS", "0"),
            ("ZIO_LIB", "/x/libzio.so"),
            ("HOME", "/root"),
        ];
        let p = check_env(vars);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0].name, "ZIO_TRESHOLD");
        assert_eq!(p[1].name, "ZIO_GC_MS");
        assert!(check_env([("ZIO_STATS", "1")]).is_empty());
    }
}
