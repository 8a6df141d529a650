//! `zio-stat` against real processes: an echo server under zio with a
//! client driving it (counters growing while it runs, rates printed), the
//! counters file closed to other users, gone after a normal exit and
//! ignored after `kill -9`, a forked child's file of its own, and the
//! plain answers to a pid without zio, a dead pid and another format.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use zio_integration::{echo_bench_path, lib_path, require_root, without_zio_env, zio_run_path};

fn zio_stat() -> Command {
    let mut c = Command::new(lib_path().with_file_name("zio-stat"));
    without_zio_env(&mut c);
    c
}

fn stat_file(pid: u32) -> PathBuf {
    PathBuf::from(format!("/dev/shm/zio.{pid}"))
}

/// `zio-stat ARGS`: status, stdout, stderr.
fn stat(args: &[&str]) -> (bool, String, String) {
    let out = zio_stat().args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An engine counter of `zio-stat PID --json`; `None` before the engine
/// publishes.
fn engine_counter(pid: u32, name: &str) -> Option<u64> {
    let (ok, out, err) = stat(&[&pid.to_string(), "--json"]);
    assert!(ok, "zio-stat {pid} --json failed: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["pid"], pid, "{out}");
    v["engine"][name].as_u64()
}

/// Starts `c` and reads the first line it prints.
fn first_line(mut c: Command) -> (Child, String) {
    let mut child = c.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line)
}

/// An echo server under zio (256 KiB messages, 2 copies), with its port.
fn server() -> (Child, u16) {
    let mut c = Command::new(zio_run_path());
    without_zio_env(&mut c)
        .arg("--")
        .arg(echo_bench_path())
        .args(["server", "--port", "0", "--size", "256K", "--copies", "2"])
        .args(["--max-seconds", "120"])
        .stderr(Stdio::null());
    let (child, line) = first_line(c);
    let port = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("no port in {line:?}"))
        .parse()
        .unwrap();
    (child, port)
}

fn client(port: u16, secs: &str) -> Child {
    Command::new(echo_bench_path())
        .args(["client", "--port", &port.to_string(), "--size", "256K"])
        .args(["--duration", secs, "--warmup", "0", "--verify", "sample"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(20), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn terminate(child: &mut Child) {
    let pid = Pid::from_raw(child.id() as i32);
    kill(pid, Signal::SIGTERM).expect("SIGTERM to our own child");
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_live_server_shows_its_counters_and_rates_to_its_user_only() {
    require_root("the test of another user's access");
    let (mut srv, port) = server();
    let pid = srv.id();
    let file = stat_file(pid);
    // A process publishes at its first large input: not before.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!file.exists(), "an idle server has no file yet");
    let (ok, _, err) = stat(&[&pid.to_string()]);
    assert!(!ok && err.contains("publishes no counters"), "{err}");

    let mut cl = client(port, "6");
    wait_until("the counters file", || file.exists());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    wait_until("elided copies published", || {
        engine_counter(pid, "elided_copies").unwrap_or(0) > 0
    });
    let first = engine_counter(pid, "elided_copies").unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let later = engine_counter(pid, "elided_copies").unwrap();
    assert!(later > first, "elided copies grew: {first} -> {later}");

    let (ok, text, err) = stat(&[&pid.to_string()]);
    assert!(ok, "{err}");
    for want in [
        "memcpy",
        "read",
        "elided_copies",
        "bytes_substituted",
        "ready",
    ] {
        assert!(text.contains(want), "no {want} in\n{text}");
    }

    let (ok, watch, err) = stat(&["-w", &pid.to_string(), "-i", "0.5", "-n", "3"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = watch.lines().collect();
    assert_eq!(lines.len(), 4, "a header and 3 lines:\n{watch}");
    assert!(
        lines[0].contains("elided/s") && lines[0].contains("zio sys/s"),
        "{watch}"
    );
    let elided_per_s: Vec<f64> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().nth(2).unwrap().parse().unwrap())
        .collect();
    assert!(
        elided_per_s.iter().any(|&r| r > 100.0),
        "copies elided per second while the client runs: {watch}"
    );

    let (ok, list, _) = stat(&[]);
    assert!(ok);
    assert!(
        list.lines()
            .any(|l| l.split_whitespace().next() == Some(pid.to_string().as_str())),
        "{pid} listed:\n{list}"
    );

    // Another user sees neither the counters nor the process in the list.
    let nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(lib_path().with_file_name("zio-stat"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = nobody(&[&pid.to_string()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "nobody read the counters");
    assert!(err.contains("readable by that user and root only"), "{err}");
    let out = nobody(&[]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&format!(" {pid} ")),
        "nobody's list shows the server"
    );
    let cat = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!cat.status.success(), "the file is closed to other users");

    assert!(cl.wait().unwrap().success(), "client verified every echo");
    terminate(&mut srv);
    assert!(!file.exists(), "the file is removed at normal exit");
    let (ok, _, err) = stat(&[&pid.to_string()]);
    assert!(!ok && err.contains(&format!("no process {pid}")), "{err}");
}

#[test]
fn a_killed_process_leaves_a_file_that_is_ignored_and_removed() {
    let (mut srv, port) = server();
    let pid = srv.id();
    let file = stat_file(pid);
    let mut cl = client(port, "0.5");
    wait_until("the counters file", || file.exists());
    assert!(cl.wait().unwrap().success());
    srv.kill().unwrap();
    srv.wait().unwrap();
    assert!(file.exists(), "kill -9 leaves the file");
    let (ok, list, _) = stat(&[]);
    assert!(ok);
    assert!(
        !list
            .lines()
            .any(|l| l.split_whitespace().next() == Some(pid.to_string().as_str())),
        "a dead process is not listed:\n{list}"
    );
    assert!(!file.exists(), "and its file was cleaned up");
    let (ok, _, err) = stat(&[&pid.to_string()]);
    assert!(!ok && err.contains("no process"), "{err}");
}

/// Two forked children: one that only writes a byte publishes nothing (a
/// child pays for a file only once its engine starts), one that reads a
/// large input publishes a file of its own, with its own counts.
#[test]
fn a_forked_child_publishes_its_own_file_once_its_engine_starts() {
    let script = "import os, sys, time\n\
                  r, w = os.pipe()\n\
                  a = os.fork()\n\
                  if a == 0:\n\
                  \x20   os.close(r); os.write(w, b'a'); time.sleep(4); sys.exit(0)\n\
                  b = os.fork()\n\
                  if b == 0:\n\
                  \x20   os.close(r); z = os.open('/dev/zero', os.O_RDONLY)\n\
                  \x20   data = os.read(z, 1 << 20)\n\
                  \x20   os.write(w, b'x' * 5000); time.sleep(4); sys.exit(0)\n\
                  os.close(w); os.read(r, 1)\n\
                  print(a, b, flush=True)\n\
                  os.waitpid(a, 0); os.waitpid(b, 0)\n";
    let mut c = Command::new(zio_run_path());
    without_zio_env(&mut c).args(["--", "python3", "-c", script]);
    let (mut py, line) = first_line(c);
    let kids: Vec<u32> = line
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let (quiet, reader, parent) = (kids[0], kids[1], py.id());
    let writes = |pid: u32| {
        let (ok, out, err) = stat(&[&pid.to_string(), "--json"]);
        assert!(ok, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        (
            v["hooks"]["write"]["calls"].as_u64().unwrap(),
            v["hooks"]["write"]["bytes"].as_u64().unwrap(),
        )
    };
    wait_until("the reading child's write counted in its own file", || {
        stat_file(reader).exists() && {
            let (calls, bytes) = writes(reader);
            calls >= 1 && bytes >= 5000
        }
    });
    assert!(
        writes(parent).1 < 5000,
        "the child's counts are not the parent's"
    );
    assert!(!stat_file(quiet).exists(), "a quiet child makes no file");
    let (ok, _, err) = stat(&[&quiet.to_string()]);
    assert!(!ok && err.contains("publishes no counters"), "{err}");
    assert!(py.wait().unwrap().success());
    for p in [parent, reader] {
        assert!(!stat_file(p).exists(), "{p}'s file went at its exit");
    }
}

#[test]
fn plain_answers_for_processes_it_cannot_show() {
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let (ok, _, err) = stat(&[&sleeper.id().to_string()]);
    assert!(!ok && err.contains("publishes no counters"), "{err}");
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();

    let (ok, _, err) = stat(&["4194999"]);
    assert!(!ok && err.contains("no process 4194999"), "{err}");

    // A live process with a counters file of another format.
    let script = "import mmap, os, sys, time\n\
                  p = '/dev/shm/zio.%d' % os.getpid()\n\
                  fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o600)\n\
                  os.ftruncate(fd, 4096)\n\
                  m = mmap.mmap(fd, 4096)\n\
                  m[0:12] = b'zio-stat' + (99).to_bytes(4, 'little')\n\
                  print('ready', flush=True)\n\
                  time.sleep(20)\n";
    let mut c = Command::new("python3");
    c.args(["-c", script]);
    let (mut py, _) = first_line(c);
    let (ok, _, err) = stat(&[&py.id().to_string()]);
    py.kill().unwrap();
    py.wait().unwrap();
    let _ = std::fs::remove_file(stat_file(py.id()));
    assert!(!ok && err.contains("format 99"), "{err}");

    let (ok, _, err) = stat(&["-w"]);
    assert!(!ok, "--watch needs a pid: {err}");
}
