//! `zio-run`: run a program under zio.
//!
//! Finds libzio.so, puts it in `LD_PRELOAD`, turns flags into `ZIO_*`
//! variables, and replaces itself with the program (`exec`), so the exit
//! status, signals and process id are the program's own. `--check` validates
//! the current `ZIO_*` environment strictly with the same parser the library
//! uses. Options and help text come from the library's options table, so the
//! two cannot disagree.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{exit, Command};

use clap::{Arg, ArgAction, ArgMatches, CommandFactory, FromArgMatches, Parser};
use zio_core::config::{self, Kind, OptDesc, OPTIONS};

mod setup;

const USAGE_EXIT: i32 = 2;

const AFTER_HELP: &str = "\
Each zio option flag sets the environment variable shown, over the environment's
value. SIZE takes K, M, G suffixes (powers of 1024). Bad values in the environment
are warned about by the library and replaced by their defaults; --check and the flags
refuse them instead. The exit status is the program's; zio-run itself exits 2 on a
usage error, 126 if the program cannot be run, 127 if it is not found.";

/// Runs a program with zio (copy elision for IO data) preloaded.
#[derive(Parser, Debug)]
#[command(name = "zio-run", version, about, after_help = AFTER_HELP)]
struct Cli {
    /// The libzio.so to preload [ZIO_LIB; default: next to zio-run, then
    /// ../lib/ from it]
    #[arg(long, value_name = "PATH")]
    lib: Option<PathBuf>,

    /// Validate every ZIO_* variable strictly, report userfaultfd and the
    /// library found, and exit
    #[arg(long, conflicts_with_all = ["setup", "program"])]
    check: bool,

    /// As root: give /dev/userfaultfd to a group zio (kept by a udev rule),
    /// add each --user to it, and exit. For servers that run as their own
    /// users
    #[arg(long, conflicts_with = "program")]
    setup: bool,

    /// With --setup: a service user to add to group zio (with --undo: to
    /// remove); repeat it or separate names with commas
    #[arg(long, value_name = "NAME", requires = "setup", value_delimiter = ',',
          action = ArgAction::Append)]
    user: Vec<String>,

    /// With --setup: reverse the setup (or, with --user, only remove the
    /// users named)
    #[arg(long, requires = "setup")]
    undo: bool,

    /// Print this manual page (roff, for man(1)) and exit
    #[arg(long, exclusive = true)]
    man: bool,

    /// Print a completion script for SHELL and exit
    #[arg(long, value_name = "SHELL", exclusive = true)]
    completions: Option<clap_complete::Shell>,

    /// The program to run
    #[arg(value_name = "PROGRAM")]
    program: Option<OsString>,

    /// Its arguments
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        requires = "program"
    )]
    args: Vec<OsString>,
}

/// The value name of a table option's flag.
fn value_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Bool => "",
        Kind::Size => "SIZE",
        Kind::Ratio => "RATIO",
        Kind::Count => "N",
        Kind::Millis => "MS",
        Kind::Level => "LEVEL",
        Kind::Path => "PATH",
    }
}

/// The flag of one row of the options table, checked by the library's
/// own parser.
fn option_arg(d: &'static OptDesc) -> Arg {
    let default = if d.default_text.is_empty() {
        "stderr"
    } else {
        d.default_text
    };
    let help = if d.kind == Kind::Bool {
        format!("{} [{}]", d.flag_text(), d.name)
    } else {
        format!("{} [{}={}]", d.flag_text(), d.name, default)
    };
    let arg = Arg::new(d.name)
        .long(d.flag.trim_start_matches("--"))
        .help(help)
        .help_heading("zio options");
    if d.kind == Kind::Bool {
        return arg.action(ArgAction::SetTrue);
    }
    arg.value_name(value_name(d.kind))
        .value_parser(move |v: &str| -> Result<String, String> {
            if d.parse(v.as_bytes()).is_ok() {
                return Ok(v.to_string());
            }
            let mut msg = String::new();
            let (opt, _) = config::find(d.name.as_bytes()).expect("table entry");
            let _ = config::write_refusal(&mut msg, opt, v.as_bytes());
            Err(msg)
        })
}

/// The whole command line: the fixed flags and one per option.
fn command() -> clap::Command {
    OPTIONS
        .iter()
        .fold(Cli::command(), |c, d| c.arg(option_arg(d)))
}

/// `ZIO_*` variables and their values.
type Vars = Vec<(&'static str, OsString)>;

/// The `ZIO_*` variables the option flags set.
fn option_env(m: &ArgMatches) -> Vars {
    let mut env = Vec::new();
    for d in &OPTIONS {
        if d.kind == Kind::Bool {
            if m.get_flag(d.name) {
                // --disable turns ZIO_ENABLE off; other switches turn theirs
                // on (or off, as --no-publish).
                env.push((
                    d.name,
                    OsString::from(if d.default == 1 { "0" } else { "1" }),
                ));
            }
        } else if let Some(v) = m.get_one::<String>(d.name) {
            env.push((d.name, OsString::from(v)));
        }
    }
    env
}

fn die(msg: &str) -> ! {
    eprintln!("zio-run: {msg}");
    eprintln!("zio-run: try `zio-run --help`");
    exit(USAGE_EXIT);
}

/// Where libzio.so is: `--lib`, then `ZIO_LIB`, then next to this executable
/// (cargo puts both in `target/<profile>/`), then `../lib/`.
fn find_lib(explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = explicit.or_else(|| std::env::var_os("ZIO_LIB").map(PathBuf::from)) {
        return if p.is_file() {
            Ok(std::fs::canonicalize(&p).unwrap_or(p))
        } else {
            Err(format!("libzio.so not found at {}", p.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate zio-run itself: {e}"))?;
    let dir = exe.parent().unwrap_or(Path::new("/"));
    for cand in [dir.join("libzio.so"), dir.join("../lib/libzio.so")] {
        if cand.is_file() {
            return Ok(std::fs::canonicalize(&cand).unwrap_or(cand));
        }
    }
    Err(format!(
        "libzio.so not found next to {} (build it with `cargo build --release`, or pass --lib PATH)",
        exe.display()
    ))
}

fn check() -> ! {
    let vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let problems = config::check_env(
        vars.iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())),
    );
    let w = OPTIONS
        .iter()
        .map(|d| d.name.len())
        .chain(["/dev/userfaultfd".len()])
        .max()
        .unwrap_or(0);
    for d in &OPTIONS {
        match std::env::var_os(d.name) {
            Some(v) => println!("{:<w$} {:<12} (environment)", d.name, v.to_string_lossy()),
            None => println!("{:<w$} {:<12} (default)", d.name, d.default_text),
        }
    }
    match find_lib(None) {
        Ok(p) => println!("{:<w$} {}", "libzio.so", p.display()),
        Err(e) => println!("{:<w$} {e}", "libzio.so"),
    }
    match zio_core::uffd::probe() {
        Ok(f) => println!("{:<w$} available (features {f:#x})", "userfaultfd"),
        Err(e) => println!(
            "{:<w$} unavailable ({} failed with {}): zio would run as pure pass-through",
            "userfaultfd",
            e.step,
            zio_core::uffd::errno_name(e.errno)
        ),
    }
    match std::fs::metadata("/dev/userfaultfd") {
        Ok(m) => {
            use std::os::unix::fs::MetadataExt;
            let group = if setup::device_is_granted(&m) {
                " (zio-run --setup: group zio may open it)"
            } else {
                ""
            };
            println!(
                "{:<w$} uid {} gid {} mode {:04o}{group}",
                "/dev/userfaultfd",
                m.uid(),
                m.gid(),
                m.mode() & 0o7777
            );
        }
        Err(e) => println!("{:<w$} {e}", "/dev/userfaultfd"),
    }
    for p in &problems {
        eprintln!("zio-run: {}", p.message);
    }
    if problems.is_empty() {
        println!("ok");
        exit(0);
    }
    eprintln!(
        "zio-run: {} problem(s) in the ZIO_* environment",
        problems.len()
    );
    exit(1);
}

fn main() {
    let m = command().get_matches();
    let cli = Cli::from_arg_matches(&m).unwrap_or_else(|e| e.exit());
    if cli.man {
        let shown = clap_mangen::Man::new(command()).render(&mut std::io::stdout());
        exit(i32::from(shown.is_err()));
    }
    if let Some(shell) = cli.completions {
        clap_complete::generate(shell, &mut command(), "zio-run", &mut std::io::stdout());
        exit(0);
    }
    if cli.check {
        check();
    }
    if cli.setup {
        let req = setup::Request::new(cli.undo, &cli.user).unwrap_or_else(|e| {
            eprintln!("zio-run --setup: {e}");
            exit(USAGE_EXIT)
        });
        setup::main(req);
    }
    let env = option_env(&m);
    let Some(program) = cli.program else {
        die("no program given");
    };
    let lib = find_lib(cli.lib).unwrap_or_else(|e| {
        eprintln!("zio-run: {e}");
        exit(USAGE_EXIT)
    });

    let mut cmd = Command::new(&program);
    cmd.args(cli.args);
    for (k, v) in &env {
        cmd.env(k, v);
    }
    cmd.env(
        "LD_PRELOAD",
        preload_value(&lib, std::env::var_os("LD_PRELOAD")),
    );
    let err = cmd.exec();
    eprintln!(
        "zio-run: cannot run {}: {err}",
        Path::new(&program).display()
    );
    exit(if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    });
}

/// `LD_PRELOAD` with libzio.so first (zio must see calls before any other
/// preloaded library forwards them) and the user's entries kept.
fn preload_value(lib: &Path, existing: Option<OsString>) -> OsString {
    let mut v = OsString::from(lib.as_os_str());
    if let Some(old) = existing {
        for entry in old
            .as_bytes()
            .split(|&c| c == b':' || c == b' ')
            .filter(|e| !e.is_empty())
        {
            if Path::new(OsStr::from_bytes(entry)) != lib {
                v.push(":");
                v.push(OsStr::from_bytes(entry));
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preload_keeps_other_libraries_once() {
        let lib = Path::new("/opt/zio/libzio.so");
        assert_eq!(preload_value(lib, None), "/opt/zio/libzio.so");
        assert_eq!(
            preload_value(lib, Some("libfoo.so /opt/zio/libzio.so:libbar.so".into())),
            "/opt/zio/libzio.so:libfoo.so:libbar.so"
        );
    }

    #[test]
    fn readme_options_table_matches_the_code() {
        let readme = include_str!("../../README.md");
        for d in &OPTIONS {
            let default = if d.default_text.is_empty() {
                "stderr"
            } else {
                d.default_text
            };
            let row = format!("| `{}` | {} | {} |", d.name, default, d.help);
            assert!(readme.contains(&row), "README lacks the row: {row}");
        }
    }

    fn parse(args: &[&str]) -> Result<(Cli, Vars), clap::Error> {
        let m = command()
            .try_get_matches_from(std::iter::once("zio-run").chain(args.iter().copied()))?;
        Ok((Cli::from_arg_matches(&m)?, option_env(&m)))
    }

    #[test]
    fn help_lists_every_option_with_its_own_words() {
        command().debug_assert();
        let h = command().render_long_help().to_string();
        for d in &OPTIONS {
            assert!(h.contains(d.flag) && h.contains(d.name), "{}", d.name);
            assert!(h.contains(d.flag_text()), "{}", d.name);
        }
        assert!(
            !h.contains("0 = load"),
            "a flag's help says what the flag does"
        );
        assert!(
            !h.contains("1 = land"),
            "a flag's help says what the flag does"
        );
    }

    #[test]
    fn the_manual_and_completions_cover_every_option() {
        let mut man = Vec::new();
        clap_mangen::Man::new(command()).render(&mut man).unwrap();
        let man = String::from_utf8(man).unwrap();
        let mut bash = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut command(),
            "zio-run",
            &mut bash,
        );
        let bash = String::from_utf8(bash).unwrap();
        for d in &OPTIONS {
            assert!(man.contains(&d.flag.replace('-', r"\-")), "{}", d.flag);
            assert!(man.contains(d.name), "{}", d.name);
            assert!(bash.contains(d.flag), "{}", d.flag);
        }
        assert!(parse(&["--man", "prog"]).is_err(), "--man runs nothing");
        assert!(parse(&["--completions", "bash", "--check"]).is_err());
    }

    #[test]
    fn flags_become_variables_and_the_program_keeps_its_own() {
        let (cli, env) = parse(&[
            "--stats",
            "--threshold",
            "1M",
            "--disable",
            "--no-publish",
            "prog",
            "-x",
            "--stats",
        ])
        .unwrap();
        assert_eq!(cli.program.as_deref(), Some(OsStr::new("prog")));
        assert_eq!(cli.args, ["-x", "--stats"]);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.to_str().unwrap())).collect();
        assert_eq!(
            env,
            [
                ("ZIO_ENABLE", "0"),
                ("ZIO_THRESHOLD", "1M"),
                ("ZIO_STATS", "1"),
                ("ZIO_PUBLISH", "0")
            ]
        );
        let (cli, _) = parse(&["--", "prog", "--lib"]).unwrap();
        assert_eq!(cli.args, ["--lib"]);
        let e = parse(&["--threshold", "lots", "prog"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("ZIO_THRESHOLD"), "{e}");
        assert!(parse(&["--bogus", "prog"]).is_err());
        assert!(
            parse(&["--stats=1", "prog"]).is_err(),
            "switches take no value"
        );
        assert!(parse(&["--user", "x"]).is_err(), "--user only with --setup");
        let (cli, _) = parse(&[
            "--setup",
            "--user",
            "postgres,www-data",
            "--user=redis",
            "--undo",
        ])
        .unwrap();
        assert_eq!(cli.user, ["postgres", "www-data", "redis"]);
        assert!(cli.undo && cli.setup);
        assert!(parse(&["--check", "prog"]).is_err());
    }
}
