//! What zio owes any program it is loaded into, beyond its own benchmark:
//! under secure execution the caller's `ZIO_*` files and values are
//! ignored; under valgrind zio stands aside instead of hanging; a forked
//! worker that drops its privileges gets its own log file and a status
//! line that says what it really does.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use zio_integration::{
    compile_c, last_words, lib_path, pattern, require_root, require_unprivileged_userfaultfd_off,
    without_zio_env, zio_lines, Stats, TempDir,
};

/// A file of `len` pattern bytes in `dir`, readable by anyone.
fn data_file(dir: &TempDir, len: usize) -> PathBuf {
    let p = dir.path().join("in.bin");
    std::fs::write(&p, pattern(len, 21)).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    p
}

/// A directory anyone may create files in (as a caller's choice of log
/// destination would be).
fn open_dir(dir: &TempDir) -> PathBuf {
    let d = dir.path().join("drop");
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    d
}

/// A setuid-root copy of libzio.so in the system library directory (the
/// only place `ld.so` preloads from in secure execution), removed on drop.
struct SystemLib(PathBuf);

impl SystemLib {
    fn install() -> SystemLib {
        let dir = Path::new("/usr/lib/x86_64-linux-gnu");
        let p = dir.join(format!("libzio-securetest-{}.so", std::process::id()));
        std::fs::copy(lib_path(), &p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o4755)).unwrap();
        SystemLib(p)
    }

    fn name(&self) -> String {
        self.0.file_name().unwrap().to_string_lossy().into_owned()
    }
}

impl Drop for SystemLib {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The `zio.<pid>.log` files in `logs`, by name: (name, text).
fn logs_by_file(logs: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(logs)
        .unwrap()
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// Runs `drop_privileges MODE` (a master and its forked worker, each
/// copying the same MiB) under zio with one log file per process; both
/// copies must be the same. Returns the directory and the two log files.
fn master_and_worker(tag: &str, mode: &str) -> (TempDir, Vec<(String, String)>) {
    let dir = TempDir::new(tag);
    let input = data_file(&dir, 1 << 20);
    let bin = compile_c("drop_privileges", dir.path());
    let logs = open_dir(&dir);
    let mut c = Command::new(&bin);
    without_zio_env(&mut c)
        .arg(mode)
        .arg(&input)
        .env("LD_PRELOAD", lib_path())
        .env("ZIO_STATS", "1")
        .env("ZIO_LOG", "info")
        .env("ZIO_LOG_FILE", logs.join("zio.%p.log"));
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sums = last_words(&stdout);
    assert_eq!(sums.len(), 2, "{stdout}");
    assert_eq!(sums[0], sums[1], "the worker's copy differs: {stdout}");
    let files = logs_by_file(&logs);
    assert_eq!(files.len(), 2, "one log per process: {files:?}");
    (dir, files)
}

/// Every line of the log file `name` is from the process it is named for.
fn assert_only_its_own_lines(name: &str, text: &str) {
    let pid = name.trim_start_matches("zio.").trim_end_matches(".log");
    assert!(
        text.lines().all(|l| l.starts_with(&format!("zio[{pid}]"))),
        "{name} holds another process's lines:\n{text}"
    );
}

#[test]
fn secure_execution_ignores_the_callers_files_and_values() {
    require_root("the secure-execution test");
    let dir = TempDir::new("secure");
    let input = data_file(&dir, 1 << 20);
    let bin = compile_c("drop_privileges", dir.path());
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let lib = SystemLib::install();
    let drop = open_dir(&dir);
    let target = drop.join("owned-by-root");
    // Switched to nobody by the exec itself: no program in between that
    // the preload (honoured there, as for any program) would log from.
    let mut c = Command::new(&bin);
    without_zio_env(&mut c)
        .uid(65534)
        .gid(65534)
        .arg("copy")
        .arg(&input)
        .env("LD_PRELOAD", lib.name())
        .env("ZIO_LOG", "info")
        .env("ZIO_STATS", "1")
        .env("ZIO_LOG_FILE", &target)
        .env("ZIO_THRESHOLD", "caller-text-1")
        .env("ZIO_NOT_AN_OPTION", "caller-text-2");
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{err}");
    assert!(
        stdout.contains("master euid 0"),
        "not setuid root: {stdout}"
    );
    assert!(
        err.contains("loaded: ready"),
        "zio was not preloaded into the setuid program:\n{err}"
    );
    assert!(
        err.contains("secure execution: ZIO_LOG_FILE is ignored"),
        "{err}"
    );
    assert!(!target.exists(), "a file was created at the caller's path");
    assert_eq!(std::fs::read_dir(&drop).unwrap().count(), 0);
    for value in ["caller-text", "ZIO_NOT_AN_OPTION", target.to_str().unwrap()] {
        assert!(
            !err.contains(value),
            "the caller's {value:?} was printed:\n{err}"
        );
    }
    // The numeric options still apply: the copy was elided.
    let stats = Stats::parse(&err);
    assert!(stats.counter("elided_copies") >= 1, "{err}");
}

#[test]
fn under_valgrind_zio_stands_aside() {
    let dir = TempDir::new("valgrind");
    let input = data_file(&dir, 1 << 20);
    let bin = compile_c("drop_privileges", dir.path());
    let time = |preload: bool| {
        let mut c = Command::new("timeout");
        without_zio_env(&mut c)
            .args(["120", "valgrind", "-q", "--error-exitcode=9"])
            .arg(&bin)
            .arg("copy")
            .arg(&input);
        if preload {
            c.env("LD_PRELOAD", lib_path());
        }
        let t = Instant::now();
        let out = c.output().expect("valgrind is needed (scripts/deps.sh)");
        (out, t.elapsed())
    };
    let (plain, t_plain) = time(false);
    let (zio, t_zio) = time(true);
    let err = String::from_utf8_lossy(&zio.stderr);
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    assert!(zio.status.success(), "under zio: {:?}\n{err}", zio.status);
    assert_eq!(plain.stdout, zio.stdout);
    let lines = zio_lines(&err);
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("valgrind") && lines[0].contains("stands aside"),
        "{err}"
    );
    eprintln!("valgrind: {t_plain:?} without zio, {t_zio:?} with zio");
}

#[test]
fn a_worker_that_drops_privileges_has_its_own_true_log() {
    require_root("the privilege-drop test");
    require_unprivileged_userfaultfd_off("the privilege-drop test");
    let (_dir, files) = master_and_worker("privdrop", "fork");
    for (name, text) in &files {
        assert_only_its_own_lines(name, text);
        let stats = Stats::parse(text);
        let header = stats.headers.values().next().expect("a summary");
        if text.contains("userfaultfd unavailable") {
            assert!(
                header.contains("pass-through (userfaultfd unavailable: EPERM)"),
                "the worker's status line: {header}"
            );
            assert_eq!(stats.counter("elided_copies"), 0, "{text}");
        } else {
            assert!(header.contains("ready"), "the master's: {header}");
            assert!(stats.counter("elided_copies") >= 1, "{text}");
        }
    }
    assert_eq!(
        files
            .iter()
            .filter(|(_, t)| t.contains("userfaultfd unavailable"))
            .count(),
        1,
        "the worker (as nobody) cannot open userfaultfd: {files:?}"
    );
}

#[test]
fn a_program_that_writes_its_title_over_its_environment_keeps_one_log_per_process() {
    // The worker's path is expanded from zio's own copy of ZIO_LOG_FILE,
    // not from the environment block its parent wrote over.
    let (_dir, files) = master_and_worker("retitle", "retitle");
    for (name, text) in &files {
        assert_only_its_own_lines(name, text);
        assert!(!text.contains("cannot open ZIO_LOG_FILE"), "{text}");
        let stats = Stats::parse(text);
        assert!(stats.counter("elided_copies") >= 1, "{name}:\n{text}");
    }
}
