//! Starting and stopping the measured processes: echo servers with and
//! without zio and their clients, pinned to their CPUs, and reading what
//! they print. Shared by [`crate::sweep`] and [`crate::interleave`].

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::pattern::Verify;
use crate::server::{Buffers, Recv, Touch};

/// How servers and clients are started.
#[derive(Clone, Debug)]
pub struct Launch {
    /// This executable (server and client).
    pub bin: PathBuf,
    /// The launcher a with-zio server runs under.
    pub zio_run: PathBuf,
    /// `taskset` CPU lists for server and client; None = no pinning.
    pub pin: Option<(String, String)>,
    /// The servers' buffer mode (`server --buffers`).
    pub buffers: Buffers,
    /// The servers' allocator.
    pub allocator: Allocator,
    /// The servers' input mode (`server --recv`).
    pub recv: Recv,
    /// The client's verification mode (`client --verify`).
    pub verify: Verify,
    /// Keep the CPUs from halting with `SCHED_IDLE` spinners (see
    /// [`crate::cpu::IdleSpinners`]).
    pub idle_spin: bool,
}

/// The allocator the servers run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocator {
    /// glibc's malloc.
    Glibc,
    /// jemalloc, preloaded from Debian's `libjemalloc2` (after libzio.so,
    /// which must see `free` first).
    Jemalloc,
}

choices!(Allocator, "allocator": Glibc = "glibc", Jemalloc = "jemalloc");

impl Allocator {
    /// The library to preload, if any; Err if it is not installed.
    pub fn library(self) -> Result<Option<PathBuf>, String> {
        match self {
            Allocator::Glibc => Ok(None),
            Allocator::Jemalloc => {
                let found = ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"]
                    .iter()
                    .map(|d| Path::new(d).join("libjemalloc.so.2"))
                    .find(|p| p.exists());
                found.map(Some).ok_or_else(|| {
                    "libjemalloc.so.2 not found: install Debian's libjemalloc2 (make deps)".into()
                })
            }
        }
    }
}

impl Launch {
    /// The servers' memory as tables name it: the buffer mode, with the
    /// allocator when it is not glibc's.
    pub fn memory(&self) -> String {
        match self.allocator {
            Allocator::Glibc => self.buffers.name().to_string(),
            a => format!("{} ({})", self.buffers.name(), a.name()),
        }
    }

    /// The CPUs the idle spinners and the busy probe use: the pinned ones
    /// (single CPU numbers), else all.
    pub fn cpus(&self) -> Vec<usize> {
        match &self.pin {
            Some((a, b)) => [a, b].iter().filter_map(|c| c.parse().ok()).collect(),
            None => (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
        }
    }

    /// The server's `taskset` CPU list, if pinned.
    fn server_cpu(&self) -> Option<&str> {
        self.pin.as_ref().map(|(s, _)| s.as_str())
    }

    /// The client's `taskset` CPU list, if pinned.
    fn client_cpu(&self) -> Option<&str> {
        self.pin.as_ref().map(|(_, c)| c.as_str())
    }

    /// `echo-bench client` on the client CPUs, with this launch's
    /// verification mode and a 15 s progress timeout; the caller adds the
    /// ports and the timing.
    pub(crate) fn client_command(&self) -> Command {
        let mut cc = pinned(self.client_cpu(), &self.bin);
        cc.arg("client");
        cc.arg("--verify").arg(self.verify.name());
        cc.arg("--timeout").arg("15");
        cc
    }
}

/// What one echo server does per message (its `server` options).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Echo {
    /// Message size.
    pub(crate) size: usize,
    /// Chained copies per message.
    pub(crate) copies: usize,
    /// Server threads.
    pub(crate) threads: usize,
    /// What the server reads of the last copy.
    pub(crate) touch: Touch,
}

/// `program` under `taskset -c cpu`, or alone without a CPU list.
fn pinned(cpu: Option<&str>, program: &Path) -> Command {
    let mut c = match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu).arg(program);
            c
        }
        None => Command::new(program),
    };
    c.env_remove("LD_PRELOAD");
    c
}

/// The command line of an echo server doing `e`, under zio (stats logged
/// to `log`) or not, pinned to the server CPUs of `l`.
pub(crate) fn server_command(
    l: &Launch,
    e: &Echo,
    zio: bool,
    log: &Path,
    max_secs: f64,
) -> Command {
    let server_cpu = l.server_cpu();
    let mut cmd = if zio {
        let mut c = pinned(server_cpu, &l.zio_run);
        c.arg("--stats")
            .arg("--log-file")
            .arg(log)
            .arg("--")
            .arg(&l.bin);
        c
    } else {
        pinned(server_cpu, &l.bin)
    };
    // Checked when the options were read; zio-run puts libzio.so first.
    if let Ok(Some(lib)) = l.allocator.library() {
        cmd.env("LD_PRELOAD", lib);
    }
    cmd.args(["server", "--port", "0"]);
    cmd.arg("--threads").arg(e.threads.to_string());
    cmd.arg("--size").arg(e.size.to_string());
    cmd.arg("--copies").arg(e.copies.to_string());
    cmd.arg("--buffers").arg(l.buffers.name());
    cmd.arg("--recv").arg(l.recv.name());
    match e.touch {
        Touch::None => {}
        Touch::Pages(k) => {
            cmd.arg("--touch-pages").arg(k.to_string());
        }
        Touch::Fraction(f) => {
            cmd.arg("--touch-fraction").arg(f.to_string());
        }
    }
    cmd.arg("--max-seconds").arg(format!("{max_secs}"));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A started echo server that said where it listens.
pub(crate) struct Listening {
    /// The server process.
    pub child: Child,
    /// The port it printed.
    pub port: String,
    /// Its stderr, read to the end once it exits.
    pub stderr: JoinHandle<String>,
}

/// Starts `cmd` (from [`server_command`]) and waits up to 15 s for its
/// `listening on PORT` line; kills it if that does not come.
pub(crate) fn start_server(mut cmd: Command) -> Result<Listening, String> {
    let mut server = cmd
        .spawn()
        .map_err(|e| format!("cannot start the server: {e}"))?;
    let server_err = drain(server.stderr.take());
    let out = server.stdout.take();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        if let Some(out) = out {
            let mut r = BufReader::new(out);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = tx.send(line);
            let mut sink = String::new();
            let _ = r.read_to_string(&mut sink);
        }
    });
    match rx.recv_timeout(Duration::from_secs(15)) {
        Ok(line) if line.starts_with("listening on ") => Ok(Listening {
            child: server,
            port: line["listening on ".len()..].trim().to_string(),
            stderr: server_err,
        }),
        other => {
            let _ = server.kill();
            let _ = server.wait();
            let err = server_err.join().unwrap_or_default();
            Err(format!(
                "server did not say \"listening\" ({:?}); stderr: {}",
                other.ok(),
                err.trim()
            ))
        }
    }
}

/// Stops a server with SIGTERM (so that zio prints its summary); kills it
/// if it has not exited 15 s later.
pub(crate) fn stop_server(server: &mut Child) -> Result<ExitStatus, String> {
    let pid = nix::unistd::Pid::from_raw(server.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    match wait_for(server, Duration::from_secs(15)) {
        Some(s) => Ok(s),
        None => {
            let _ = server.kill();
            let _ = server.wait();
            Err("server did not exit within 15 s of SIGTERM (killed)".to_string())
        }
    }
}

/// Reads a child's pipe to the end on a thread.
pub(crate) fn drain<R: Read + Send + 'static>(r: Option<R>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut r) = r {
            let _ = r.read_to_string(&mut s);
        }
        s
    })
}

/// Waits for `child` up to `limit`; None if it is still running.
pub(crate) fn wait_for(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let t = Instant::now();
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if t.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The messages a server echoed, from its exit line on stderr
/// (`echo-bench server: N messages, ...`); 0 if it has none.
pub(crate) fn server_messages(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("echo-bench server: ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// A numeric field of the client's one-line JSON.
pub fn json_num(json: &str, key: &str) -> Option<f64> {
    serde_json::from_str::<serde_json::Value>(json.trim())
        .ok()?
        .get(key)?
        .as_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_output() {
        let j = r#"{"size":8,"gbps":1.5,"p99_us":12.0}"#;
        assert_eq!(json_num(j, "gbps"), Some(1.5));
        assert_eq!(json_num(j, "p99_us"), Some(12.0));
        assert_eq!(json_num(j, "rps"), None);
        let err = "zio[3]: warn: x\necho-bench server: 42 messages, 1 connections, 0 errors\n";
        assert_eq!(server_messages(err), 42);
        assert_eq!(server_messages("nothing"), 0);
    }
}
