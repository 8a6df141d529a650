//! Options, graceful degradation and the launcher, from the user's side.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use zio_integration::{
    lib_path, pattern, require_root, require_unprivileged_userfaultfd_off, run, without_zio_env,
    zio_lines, zio_run_path, Stats, TempDir,
};

fn data_file(dir: &TempDir, len: usize) -> (std::path::PathBuf, Vec<u8>) {
    let data = pattern(len, 3);
    let p = dir.path().join("data.bin");
    std::fs::write(&p, &data).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    (p, data)
}

#[test]
fn bad_option_values_are_named_once_and_defaulted() {
    let dir = TempDir::new("badopts");
    let (path, data) = data_file(&dir, 1 << 20);
    let mut c = Command::new("cat");
    c.arg(&path)
        .env("LD_PRELOAD", lib_path())
        .env("ZIO_STATS", "yes")
        .env("ZIO_THRESHOLD", "banana")
        .env("ZIO_GC_MS", "0")
        .env("ZIO_FAULT_RATIO", "1.5")
        .env("ZIO_LOG", "loud")
        .env("ZIO_TRESHOLD", "32K");
    let out = c.output().unwrap();
    assert!(out.status.success());
    assert!(out.stdout == data, "output changed");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines = zio_lines(&err);
    let warn = |needle: &str| {
        let n = lines.iter().filter(|l| l.contains(needle)).count();
        assert_eq!(n, 1, "expected one line about {needle}:\n{err}");
    };
    warn("ZIO_THRESHOLD=\"banana\" is not valid (expected a size in bytes with optional K/M/G suffix, e.g. 16K); using the default 64K");
    warn("ZIO_GC_MS=\"0\" is out of range (must be between 1 and 3600000); using the default 1000");
    warn(
        "ZIO_FAULT_RATIO=\"1.5\" is out of range (must be between 0 and 1); using the default 0.06",
    );
    warn("ZIO_LOG=\"loud\" is not valid (expected one of off, error, warn, info, debug, trace); using the default warn");
    warn("ZIO_TRESHOLD is not a zio option");
    // The good one (ZIO_STATS=yes) took effect: a summary was printed.
    let stats = Stats::parse(&err);
    assert!(stats.hook("read").bytes >= data.len() as u64, "{err}");
}

#[test]
fn log_file_pid_expansion_and_info_banner() {
    let dir = TempDir::new("logfile");
    let (path, _) = data_file(&dir, 100_000);
    let out = Command::new("cat")
        .arg(&path)
        .env("LD_PRELOAD", lib_path())
        .env("ZIO_LOG", "info")
        .env("ZIO_THRESHOLD", "128K")
        .env("ZIO_LOG_FILE", dir.path().join("z-%p.log"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("zio["),
        "messages must go to the log file, not stderr"
    );
    let logs: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("z-"))
        .collect();
    assert_eq!(logs.len(), 1);
    let name = logs[0].file_name().to_string_lossy().into_owned();
    let pid: u32 = name
        .trim_start_matches("z-")
        .trim_end_matches(".log")
        .parse()
        .unwrap();
    let text = std::fs::read_to_string(logs[0].path()).unwrap();
    assert!(
        text.contains(&format!("zio[{pid}]: info: loaded: ready"))
            && text.contains("set: ZIO_THRESHOLD=128K, ZIO_LOG=info, ZIO_LOG_FILE="),
        "{text}"
    );
}

#[test]
fn disabled_runs_as_pass_through() {
    let dir = TempDir::new("disabled");
    let (path, data) = data_file(&dir, 1 << 20);
    let mut c = Command::new("cat");
    c.arg(&path).env("ZIO_ENABLE", "0");
    let r = run(c, true, None);
    r.assert_success("cat with ZIO_ENABLE=0");
    assert!(r.output.stdout == data);
    let header = r.stats.headers.values().next().expect("summary");
    assert!(header.contains("pass-through (ZIO_ENABLE=0)"), "{header}");
    assert!(r.stats.hook("read").bytes >= data.len() as u64);
}

/// As `nobody`, userfaultfd is refused here (vm.unprivileged_userfaultfd=0):
/// zio says so once and passes every call through; the program is unharmed.
#[test]
fn unprivileged_user_falls_back_to_pass_through() {
    require_root("the fallback test (it switches to nobody)");
    require_unprivileged_userfaultfd_off("the fallback test");

    let dir = TempDir::new("nobody");
    let (path, data) = data_file(&dir, 4 << 20);
    // A copy of the library that `nobody` can read, wherever the tree is.
    let lib = dir.path().join("libzio.so");
    std::fs::copy(lib_path(), &lib).unwrap();
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o755)).unwrap();

    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg("cat")
        .arg(&path)
        .env("LD_PRELOAD", &lib)
        .env("ZIO_STATS", "1")
        .output()
        .expect("setpriv (util-linux) is needed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(out.stdout == data, "output changed under the fallback");
    let warnings: Vec<_> = zio_lines(&err)
        .into_iter()
        .filter(|l| l.contains(": warn: ") && l.contains("userfaultfd"))
        .collect();
    assert_eq!(warnings.len(), 1, "exactly one warning expected:\n{err}");
    assert!(
        warnings[0].contains("EPERM") && warnings[0].contains("pure pass-through"),
        "{}",
        warnings[0]
    );
    let stats = Stats::parse(&err);
    let header = stats.headers.values().next().expect("summary");
    assert!(
        header.contains("pass-through (userfaultfd unavailable: EPERM)"),
        "{header}"
    );
    assert!(stats.hook("read").bytes >= data.len() as u64);
    assert!(stats.hook("write").bytes >= data.len() as u64);

    // And as root the same run has no warning at all.
    let out = Command::new("cat")
        .arg(&path)
        .env("LD_PRELOAD", &lib)
        .output()
        .unwrap();
    assert!(zio_lines(&String::from_utf8_lossy(&out.stderr)).is_empty());
}

fn zio_run() -> Command {
    let mut c = Command::new(zio_run_path());
    without_zio_env(&mut c);
    c
}

#[test]
fn zio_run_check_is_strict() {
    let out = zio_run()
        .arg("--check")
        .env("ZIO_THRESHOLD", "32K")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} row in {text}"))
    };
    let t = row("ZIO_THRESHOLD");
    assert!(
        t.contains(" 32K ") && t.ends_with("(environment)"),
        "{text}"
    );
    // Every row's value starts in one column, the longest name's too.
    let column = |l: &str| l.find(l.split_whitespace().nth(1).unwrap()).unwrap();
    for name in [
        "ZIO_REDIRECT_INPUT",
        "ZIO_ENABLE",
        "userfaultfd",
        "libzio.so",
    ] {
        assert_eq!(column(row(name)), column(t), "{text}");
    }
    assert!(row("userfaultfd").contains(" available"), "{text}");
    assert!(text.trim_end().ends_with("ok"));

    let out = zio_run()
        .arg("--check")
        .env("ZIO_THRESHOLD", "12Q")
        .env("ZIO_STATZ", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ZIO_THRESHOLD=\"12Q\" is not valid"), "{err}");
    assert!(err.contains("ZIO_STATZ is not a zio option"), "{err}");
    assert!(err.contains("2 problem(s)"), "{err}");
}

#[test]
fn zio_run_launches_with_options_and_passes_the_status_through() {
    let dir = TempDir::new("ziorun");
    let (path, data) = data_file(&dir, 2 << 20);

    let mut c = zio_run();
    c.args(["--threshold", "32K", "--stats", "--log=info", "--log-file"])
        .arg(dir.path().join("run.%p.log"))
        .arg("--")
        .arg("cat")
        .arg(&path);
    let out = c.output().unwrap();
    assert!(out.status.success());
    assert!(out.stdout == data);
    let log = zio_integration::collect_logs_named(dir.path(), "run.");
    assert!(
        log.contains("set: ZIO_THRESHOLD=32K, ZIO_STATS=1, ZIO_LOG=info"),
        "{log}"
    );
    assert!(
        Stats::parse(&log).hook("read").bytes >= data.len() as u64,
        "{log}"
    );

    let st = zio_run()
        .args(["--", "sh", "-c", "exit 7"])
        .status()
        .unwrap();
    assert_eq!(
        st.code(),
        Some(7),
        "the program's exit status passes through"
    );
    let st = zio_run()
        .args(["--threshold", "tiny", "true"])
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(2));
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(
        err.contains("--threshold") && err.contains("ZIO_THRESHOLD=\"tiny\" is not valid"),
        "{err}"
    );
    let st = zio_run().args(["--frobnicate", "true"]).output().unwrap();
    assert_eq!(st.status.code(), Some(2));
    let st = zio_run().arg("/nonexistent/program").output().unwrap();
    assert_eq!(st.status.code(), Some(127));
    let st = zio_run()
        .args(["--lib", "/nonexistent/libzio.so", "true"])
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(2));

    let help = zio_run().arg("--help").output().unwrap();
    let h = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--threshold",
        "--fault-ratio",
        "--max-records",
        "--quarantine",
        "--gc-ms",
        "--stats",
        "--log",
        "--log-file",
        "--disable",
        "--lib",
        "--check",
    ] {
        assert!(h.contains(flag), "--help lacks {flag}");
    }
}
