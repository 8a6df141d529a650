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

use zio_core::config::{self, Kind, OPTIONS};

mod setup;

const USAGE_EXIT: i32 = 2;

fn help() -> String {
    let mut s = String::from(
        "zio-run: run a program with zio (copy elision for IO data) preloaded\n\n\
         usage: zio-run [options] [--] program [args...]\n\
         \x20      zio-run --check    validate the ZIO_* environment and exit\n\
         \x20      zio-run --setup [--user NAME]... [--undo]\n\
         \x20                         let service users open /dev/userfaultfd (as root, once)\n\n\
         options (each sets the environment variable shown; flags override the environment):\n",
    );
    for d in &OPTIONS {
        let arg = match d.kind {
            Kind::Bool => "",
            Kind::Size => " SIZE",
            Kind::Ratio => " RATIO",
            Kind::Count => " N",
            Kind::Millis => " MS",
            Kind::Level => " LEVEL",
            Kind::Path => " PATH",
        };
        let default = if d.default_text.is_empty() {
            "stderr".to_string()
        } else {
            d.default_text.to_string()
        };
        s.push_str(&format!(
            "  {:<22} {} [{}={}]\n",
            format!("{}{}", d.flag, arg),
            d.help,
            d.name,
            default
        ));
    }
    s.push_str(
        "  --lib PATH             the libzio.so to preload [ZIO_LIB; default: next to zio-run]\n\
         \x20 --check                validate every ZIO_* variable strictly, report userfaultfd, exit\n\
         \x20 --setup                give /dev/userfaultfd to a group zio (udev rule), add each\n\
         \x20                        --user NAME to it, exit; --undo reverses it (or only removes\n\
         \x20                        the users named). For servers that run as their own users.\n\
         \x20 -h, --help             this text\n\
         \x20 -V, --version          version\n\n\
         SIZE takes K, M, G suffixes (powers of 1024). Bad values in the environment are\n\
         warned about by the library and replaced by their defaults; --check and the flags\n\
         above refuse them instead. The exit status is the program's; zio-run itself exits\n\
         2 on a usage error, 126 if the program cannot be run, 127 if it is not found.\n",
    );
    s
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
    for d in &OPTIONS {
        match std::env::var_os(d.name) {
            Some(v) => println!("{:<16} {:<12} (environment)", d.name, v.to_string_lossy()),
            None => println!("{:<16} {:<12} (default)", d.name, d.default_text),
        }
    }
    match find_lib(None) {
        Ok(p) => println!("libzio.so        {}", p.display()),
        Err(e) => println!("libzio.so        {e}"),
    }
    match zio_core::uffd::probe() {
        Ok(f) => println!("userfaultfd      available (features {f:#x})"),
        Err(e) => println!(
            "userfaultfd      unavailable ({} failed with {}): zio would run as pure pass-through",
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
                "/dev/userfaultfd uid {} gid {} mode {:04o}{group}",
                m.uid(),
                m.gid(),
                m.mode() & 0o7777
            );
        }
        Err(e) => println!("/dev/userfaultfd {e}"),
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
    let mut args = std::env::args_os().skip(1).peekable();
    let mut env: Vec<(&'static str, OsString)> = Vec::new();
    let mut lib: Option<PathBuf> = None;

    while let Some(arg) = args.peek() {
        let a = arg.to_string_lossy().into_owned();
        if !a.starts_with('-') {
            break;
        }
        args.next();
        if a == "--" {
            break;
        }
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(OsString::from(v))),
            None => (a.clone(), None),
        };
        match flag.as_str() {
            "-h" | "--help" => {
                print!("{}", help());
                exit(0);
            }
            "-V" | "--version" => {
                println!("zio-run {}", env!("CARGO_PKG_VERSION"));
                exit(0);
            }
            "--check" => check(),
            "--setup" if inline.is_none() => {
                let rest: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
                setup::main(&rest)
            }
            "--lib" => {
                let v = inline
                    .or_else(|| args.next())
                    .unwrap_or_else(|| die("--lib needs a path"));
                lib = Some(PathBuf::from(v));
            }
            _ => {
                let Some(d) = OPTIONS.iter().find(|d| d.flag == flag) else {
                    die(&format!("unknown option {a}"));
                };
                let value = if d.kind == Kind::Bool {
                    if inline.is_some() {
                        die(&format!("{flag} takes no value"));
                    }
                    // --disable turns ZIO_ENABLE off; other switches turn theirs on.
                    OsString::from(if d.default == 1 { "0" } else { "1" })
                } else {
                    inline
                        .or_else(|| args.next())
                        .unwrap_or_else(|| die(&format!("{flag} needs a value")))
                };
                if d.parse(value.as_bytes()).is_err() {
                    let mut msg = String::new();
                    let (opt, _) = config::find(d.name.as_bytes()).expect("table entry");
                    let _ = config::write_refusal(&mut msg, opt, value.as_bytes());
                    die(&format!("{flag}: {msg}"));
                }
                env.push((d.name, value));
            }
        }
    }

    let Some(program) = args.next() else {
        die("no program given");
    };
    let lib = find_lib(lib).unwrap_or_else(|e| {
        eprintln!("zio-run: {e}");
        exit(USAGE_EXIT)
    });

    let mut cmd = Command::new(&program);
    cmd.args(args);
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

    #[test]
    fn help_lists_every_option() {
        let h = help();
        for d in &OPTIONS {
            assert!(h.contains(d.flag) && h.contains(d.name), "{}", d.name);
        }
    }
}
