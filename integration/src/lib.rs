//! Helpers for running real programs with and without zio and reading zio's
//! counters back.
//!
//! A run under zio sets `LD_PRELOAD`, `ZIO_STATS=1` and a per-run
//! `ZIO_LOG_FILE=<dir>/zio.%p.log`; after the program exits, every
//! process's summary is parsed from those files, so tests can prove that the
//! hooks really saw the traffic (not merely that the output was right).

#![deny(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub mod redis;

/// Root of the workspace.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The built libzio.so (`ZIO_TEST_LIB` overrides).
pub fn lib_path() -> PathBuf {
    let p = std::env::var_os("ZIO_TEST_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/release/libzio.so"));
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build --release` (or `make test`) first",
        p.display()
    );
    std::fs::canonicalize(p).unwrap()
}

/// The built zio-run launcher.
pub fn zio_run_path() -> PathBuf {
    built("zio-run")
}

/// The built echo-bench.
pub fn echo_bench_path() -> PathBuf {
    built("echo-bench")
}

/// The release executable `name`, next to libzio.so.
fn built(name: &str) -> PathBuf {
    let p = lib_path().with_file_name(name);
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build --release`",
        p.display()
    );
    p
}

/// Removes every `ZIO_*` variable the caller exported from `cmd`'s
/// environment, so that a test sees zio's defaults.
pub fn without_zio_env(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ZIO_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A scratch directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `/tmp/zio-test-<pid>-<n>-<tag>` with mode 0755 (other users,
    /// such as `nobody` in the fallback test, may enter it).
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "zio-test-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(p)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub use zio_core::summary::Count;
use zio_core::summary::{self, Summary};

/// Counters of every process of a run, as printed in their summaries
/// (read by [`zio_core::summary`]).
pub type Stats = Summary;

/// An engine counter from zio's summaries (lines `zio[pid]   <name>
/// <value>`), summed over every process that printed one; 0 if none did.
pub fn counter(log: &str, name: &str) -> u64 {
    Summary::parse(log).counter(name)
}

/// Asserts every `(counter, at least)` pair of the engine counters in
/// `log`, listing all shortfalls at once with the engine's counters.
pub fn assert_counters(log: &str, what: &str, mins: &[(&str, u64)]) {
    let bad: Vec<String> = mins
        .iter()
        .filter(|(name, min)| counter(log, name) < *min)
        .map(|(name, min)| format!("{name} = {} (expected >= {min})", counter(log, name)))
        .collect();
    assert!(
        bad.is_empty(),
        "{what}: zio did not do what was expected:\n{}\nengine counters:\n{}",
        bad.join("\n"),
        engine_block(log)
    );
}

/// The engine counter lines of a log (for failure messages).
pub fn engine_block(log: &str) -> String {
    log.lines()
        .filter(|l| matches!(summary::line(l), summary::Line::Counter { .. }))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The result of running a program.
pub struct Run {
    /// Its exit status, stdout and stderr.
    pub output: Output,
    /// zio's counters (empty without zio).
    pub stats: Stats,
    /// Everything zio logged (summaries and messages).
    pub log: String,
}

impl Run {
    /// Stdout as text (lossy).
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    /// Stderr as text (lossy).
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    /// An engine counter of this run (see [`counter`]).
    pub fn counter(&self, name: &str) -> u64 {
        self.stats.counter(name)
    }

    /// Bytes of elided copies that zio preserved before their original
    /// changed or was released: backed up once (`bytes_backed_up`), or
    /// rebuilt page by page when the backup budget was spent (`pages_by_write`
    /// and `pages_by_gc`).
    pub fn preserved_bytes(&self) -> u64 {
        self.counter("bytes_backed_up")
            + 4096 * (self.counter("pages_by_write") + self.counter("pages_by_gc"))
    }

    /// Asserts every `(counter, at least)` pair (see [`assert_counters`]).
    pub fn assert_counters(&self, what: &str, mins: &[(&str, u64)]) {
        assert_counters(&self.log, what, mins);
    }

    /// Panics with the program's stderr unless it exited with status 0.
    pub fn assert_success(&self, what: &str) -> &Run {
        assert!(
            self.output.status.success(),
            "{what} failed: {:?}\nstderr:\n{}\nzio log:\n{}",
            self.output.status,
            self.stderr(),
            self.log
        );
        self
    }
}

/// Adds the zio environment to `cmd`: preload, stats on, log files in `logs`.
pub fn with_zio(cmd: &mut Command, logs: &Path) {
    cmd.env("LD_PRELOAD", lib_path())
        .env("ZIO_STATS", "1")
        .env("ZIO_LOG_FILE", logs.join("zio.%p.log"));
}

/// Reads and removes the zio log files in `logs`.
pub fn collect_logs(logs: &Path) -> String {
    collect_logs_named(logs, "zio.")
}

/// Reads and removes the files `<prefix>*.log` in `logs`.
pub fn collect_logs_named(logs: &Path, prefix: &str) -> String {
    let mut all = String::new();
    let mut files: Vec<_> = std::fs::read_dir(logs)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for p in files {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with(prefix) && name.ends_with(".log") {
            all.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
            let _ = std::fs::remove_file(&p);
        }
    }
    all
}

/// Runs `cmd` to completion, under zio if `zio` is true, with `stdin` fed.
pub fn run(mut cmd: Command, zio: bool, stdin: Option<&[u8]>) -> Run {
    let logs = TempDir::new("logs");
    if zio {
        with_zio(&mut cmd, logs.path());
    } else {
        cmd.env_remove("LD_PRELOAD");
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let Some(data) = stdin {
        let mut w = child.stdin.take().unwrap();
        let data = data.to_vec();
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = w.write_all(&data);
        });
    }
    let output = child.wait_with_output().unwrap();
    let log = collect_logs(logs.path());
    Run {
        output,
        stats: Stats::parse(&log),
        log,
    }
}

/// Runs `scripts/<script> --quick --csv FILE` (the short form of a long
/// suite), asserts it succeeds, prints its output, and returns its stdout
/// and the CSV it wrote.
pub fn quick_script(script: &str, dir: &TempDir) -> (String, String) {
    let csv = dir.path().join("quick.csv");
    let out = Command::new("python3")
        .arg(workspace().join("scripts").join(script))
        .arg("--quick")
        .arg("--csv")
        .arg(&csv)
        .output()
        .expect("python3 is needed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    let table = std::fs::read_to_string(&csv).expect("the csv");
    (text, table)
}

/// Runs `make()` once without and once with zio, asserts both succeed with
/// identical stdout, and returns the zio run.
pub fn differential(what: &str, make: impl Fn() -> Command) -> Run {
    let plain = run(make(), false, None);
    plain.assert_success(&format!("{what} without zio"));
    let zio = run(make(), true, None);
    zio.assert_success(&format!("{what} under zio"));
    assert!(
        plain.output.stdout == zio.output.stdout,
        "{what}: output differs with zio ({} vs {} bytes)",
        plain.output.stdout.len(),
        zio.output.stdout.len()
    );
    assert!(
        zio.stats.processes() >= 1,
        "{what}: no zio summary\n{}",
        zio.log
    );
    zio
}

/// Lines zio wrote on stderr (its messages start with `zio[pid]`).
pub fn zio_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.starts_with("zio[")).collect()
}

/// The last word of every line: the checksums the test programs print
/// after what they name.
pub fn last_words(text: &str) -> Vec<&str> {
    text.lines()
        .map(|l| l.rsplit(' ').next().unwrap_or(""))
        .collect()
}

/// `dir/in.bin` holding `len` bytes of [`pattern`] `seed`: a test
/// program's input file.
pub fn pattern_file(dir: &TempDir, len: usize, seed: u64) -> PathBuf {
    let p = dir.path().join("in.bin");
    std::fs::write(&p, pattern(len, seed)).unwrap();
    p
}

/// A command that runs `env ARGS...` as `user`, with that user's primary
/// and supplementary groups, as a service manager starts a server. The
/// caller puts `LD_PRELOAD=...` among the arguments, after the switch, so
/// that zio is not loaded into setpriv (which would open zio's log file
/// as root under the pid the program then keeps).
pub fn as_user(user: &str) -> Command {
    let out = Command::new("id").args(["-g", user]).output().unwrap();
    assert!(out.status.success(), "no user {user}");
    let gid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut c = Command::new("setpriv");
    c.args(["--reuid", user, "--regid", &gid, "--init-groups", "env"]);
    c
}

/// Fails the test unless it runs as root (it switches users or installs
/// setuid files); `what` names it.
pub fn require_root(what: &str) {
    assert!(nix::unistd::geteuid().is_root(), "{what} needs root");
}

/// Fails the test unless unprivileged processes are refused userfaultfd
/// here (`vm.unprivileged_userfaultfd=0`), which `what` relies on.
pub fn require_unprivileged_userfaultfd_off(what: &str) {
    let sysctl =
        std::fs::read_to_string("/proc/sys/vm/unprivileged_userfaultfd").unwrap_or_default();
    assert_eq!(
        sysctl.trim(),
        "0",
        "{what} expects vm.unprivileged_userfaultfd=0"
    );
}

/// splitmix64's finalizer: a bijection, so distinct inputs give distinct
/// words (the test programs' message contents).
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Deterministic pseudo-random bytes (xorshift), so runs are reproducible.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests
/// that start one server at a time on it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Compiles a C test program from `integration/c/<name>.c` into `dir`.
pub fn compile_c(name: &str, dir: &Path) -> PathBuf {
    compile_c_with(name, dir, &[])
}

/// As [`compile_c`], with `extra` arguments after the source (libraries
/// to link, `-shared -fPIC` for a library).
pub fn compile_c_with(name: &str, dir: &Path, extra: &[&str]) -> PathBuf {
    let src = workspace().join("integration/c").join(format!("{name}.c"));
    let out = dir.join(name);
    let st = Command::new("cc")
        .args(["-O1", "-g", "-fno-builtin", "-Wall", "-Werror", "-o"])
        .arg(&out)
        .arg(&src)
        .args(extra)
        .status()
        .expect("a C compiler (cc) is needed: install gcc");
    assert!(st.success(), "compiling {} failed", src.display());
    out
}
