//! The options read from the environment at start: each variable parsed
//! once, bad values and unknown `ZIO_*` names warned about (never the
//! caller's text under secure execution), and the strict check of
//! `zio-run --check`.

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use super::{find, get, parse::ParseError, set, Opt, ALL, KNOWN_OTHER, OPTIONS};

/// Reads one variable with `getenv` (no allocation; `name` under 32
/// bytes).
pub(crate) fn getenv(name: &str) -> Option<&'static [u8]> {
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
