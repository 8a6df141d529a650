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

use core::sync::atomic::{AtomicU64, Ordering};

mod env;
mod parse;

pub(crate) use env::getenv;
pub use env::{check_env, init_from_env, raw, secure, write_refusal, Problem};
pub use parse::{write_size, ParseError};

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
    /// One line of help for the variable.
    pub help: &'static str,
    /// One line of help for the flag, where it differs (a switch says
    /// what the flag does, not what each value of the variable means).
    pub flag_help: &'static str,
}

impl OptDesc {
    /// The help of the `zio-run` flag.
    pub fn flag_text(&self) -> &'static str {
        if self.flag_help.is_empty() {
            self.help
        } else {
            self.flag_help
        }
    }
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
    /// `ZIO_PUBLISH`
    Publish,
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
const TIB: u64 = 1024 * GIB;

/// Number of options.
pub const NOPTS: usize = 13;

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
        flag_help: "load zio but never elide: every call passes through",
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
        flag_help: "",
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
        flag_help: "",
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
        flag_help: "",
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
        flag_help: "",
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
        flag_help: "",
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
        flag_help: "read input into the program's own buffers, never into zio's memory",
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
        flag_help: "print a stats summary at exit (on stderr, or in the --log-file)",
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
        flag_help: "",
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
        flag_help: "",
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
        flag_help: "",
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
        flag_help: "elide under valgrind anyway (for instruction counts of programs that never touch an elided copy: a touch hangs)",
    },
    OptDesc {
        name: "ZIO_PUBLISH",
        kind: Kind::Bool,
        default_text: "1",
        default: 1,
        min: 0,
        max: 1,
        flag: "--no-publish",
        help: "0 = no live counters file (/dev/shm/zio.<pid>, mode 0600, read by zio-stat)",
        flag_help: "publish no live counters file for zio-stat",
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
    Opt::Publish,
];

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
