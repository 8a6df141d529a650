//! The `echo-bench` command: `server`, `client` and `sweep`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use echo_bench::args::Opts;
use echo_bench::client::{self, ClientConfig};
use echo_bench::pattern::Verify;
use echo_bench::server::{self, Buffers, Recv, Server, ServerConfig, Touch};
use echo_bench::sweep::{self, Kind, SweepOpts};

const USAGE: &str = "\
echo-bench: the zIO paper's echo microbenchmarks, with and without zio

usage:
  echo-bench server --port P [--threads T] --size S --copies N [--buffers static|malloc]
                    [--touch-pages K | --touch-fraction F] [--recv read|waitall] [--max-seconds SECS]
  echo-bench client --port P [--threads T] [--conns C] --size S [--duration SECS] [--warmup SECS]
                    [--verify sample|full|off] [--timeout SECS]
  echo-bench sweep copies|size|threads|faults|touch [--reps R] [--duration SECS] [--warmup SECS]
                    [--out DIR] [--quick] [--buffers static|malloc] [--size S] [--copies N]
                    [--points LIST] [--tag NAME] [--verify MODE] [--recv MODE] [--zio-run PATH] [--no-pin]
                    [--server-cpu CPUS] [--client-cpu CPUS]
                    [--max-other-cpu C] [--retries N] [--time-budget F] [--no-idle-spin]

`echo-bench <command> --help` describes each command. Sizes take K/M suffixes (powers of 1024).";

const SERVER_HELP: &str = "\
echo-bench server: TCP echo server on 127.0.0.1

Per message: read exactly S bytes into the input buffer (libc read(2) in a loop, or
recv(2) with MSG_WAITALL with --recv waitall), make N chained copies input -> c1 -> ...
-> cN with libc memcpy (each into its own buffer), optionally read part of the last
copy, then write the last copy (the input if N = 0) back with libc write(2).

  --port P             port (0: any free port); prints \"listening on PORT\" when ready
  --threads T          worker threads (default 1); connections are handed out round-robin,
                       each thread has its own buffers and serves its own connections
  --size S             message size (required)
  --copies N           chained copies per message (required)
  --buffers MODE       static (default): page-aligned buffers allocated once per thread
                       (posix_memalign) and reused; malloc: input and copies malloc'ed per
                       message and freed after the reply
  --touch-pages K      read one byte in each of K pages spread evenly over the last copy
  --touch-fraction F   read the first F (0..1) of the bytes of the last copy, summed
  --recv MODE          read (default) or waitall
  --max-seconds SECS   exit after this long (default 600)

SIGTERM or SIGINT stop it: it prints \"echo-bench server: N messages ...\" on stderr and
exits with status 0 through exit(3), so a preloaded zio prints its summary.";

const CLIENT_HELP: &str = "\
echo-bench client: closed-loop echo client; prints one line of JSON

  --port P             server port (required)
  --threads T          client threads (default 1)
  --conns C            connections in total (default T), spread over the threads; each
                       connection always has exactly one message outstanding
  --size S             message size (required, at least 16)
  --duration SECS      measured time (default 3)
  --warmup SECS        time before measuring (default 1)
  --verify MODE        sample (default): first and last 16 bytes, two random 8-byte words
                       and two random page headers of every echo; full: every byte; off
  --timeout SECS       fail if no echo progresses for this long (default 15)

Each message carries the connection id and sequence number in its first 16 bytes and a
(connection, sequence, page) header at the start of every 4 KiB page. A mismatch prints
the first differing offset and exits with status 1.

Output: {\"size\":S,\"conns\":C,\"threads\":T,\"secs\":..,\"requests\":..,\"gbps\":..,\"rps\":..,
\"p50_us\":..,\"p99_us\":..}. gbps is the paper's convention: echoed payload bytes per
second in ONE direction (requests * S * 8 / secs / 1e9), counting requests completed in
the measured window; p50/p99 are request round-trip latencies.";

const SWEEP_HELP: &str = "\
echo-bench sweep: run each point with and without zio, print a table, write CSV and SVG

  copies    512K messages, copies 0,1,2,3,5,8,12 (0-copy ceiling shown)
  size      5 copies and 0 copies, sizes 8K..1M
  threads   512K, 1 copy, server threads/client connections 1/1, 2/2, 1/4, 2/4
  faults    512K, 0 copies, --touch-pages 0,1,2,4,8,16,32,64,128 (reused input buffer)
  touch     1 copy, 512K and 16K, --touch-fraction 0,0.01,0.03,0.06,0.1,0.25,0.5,1

  --reps R             repetitions per side (default 3); the order alternates per
                       repetition (without/with, with/without, ...); medians are reported
  --duration SECS      measured seconds per run (default 3; --quick: 1)
  --warmup SECS        warm-up seconds per run (default 1; --quick: 0.5)
  --quick              fewer points, shorter runs
  --out DIR            where <sweep>.csv and <sweep>.svg go (default target/echo-bench)
  --tag NAME           name the files <sweep>-NAME.csv and <sweep>-NAME.svg instead
  --buffers MODE       static (default) or malloc
  --size S             message size override (size sweep: a single size)
  --copies N           copy count override (size, threads, faults, touch)
  --points LIST        comma-separated values to sweep instead of the defaults
                       (copies: counts; size: sizes; threads: T/C pairs; faults: pages;
                       touch: fractions)
  --verify MODE        client verification (default sample)
  --recv MODE          server input mode (default read)
  --zio-run PATH       the launcher (default: zio-run next to this executable)
  --server-cpu CPUS    taskset CPU list for the server (default 0)
  --client-cpu CPUS    taskset CPU list for the client (default 1)
  --no-pin             do not use taskset
  --no-idle-spin       do not run the SCHED_IDLE spinners: by default one thread per CPU
                       spins at idle priority during the sweep so that the vCPUs never halt
                       (on a busy VM host a halted vCPU loses its physical CPU and every
                       cross-CPU wake-up then waits for the host scheduler: measured here,
                       0-copy 512K echo varied 5-22 Gbit/s without the spinners, 22 with)
  --max-other-cpu C    a run during which other processes and the hypervisor (steal) took
                       more than C CPUs on average (/proc/stat minus this sweep and its
                       children; default 0.25) is discarded and repeated once the machine
                       is quiet again (watched in 0.5 s windows, at most 10 s; without the
                       idle spinners a 0.4 s busy probe, since steal shows only under load)
  --retries N          repeat a disturbed run at most N times (default 3)
  --time-budget F      repeats stop once the sweep would exceed its planned time
                       (runs x (warm-up + duration + 0.1 s)) by more than F, plus 10 s
                       (default 0.1); disturbed runs kept after that are marked * in the
                       table and counted in the CSV

With zio the server runs as `zio-run --stats --log-file TMP -- echo-bench server ...`;
ZIO_* variables in the environment pass through. zio's counters (elided_bytes,
bytes_substituted, faults_missing, faults_zero, policy_skips, ...) are read from the log
and shown per message. A failed run (echo mismatch, hang, crash) is reported with its
cause, the zio log is kept under DIR/failures/, and the sweep exits with status 1.";

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = argv.first() else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let rest = &argv[1..];
    let r = match cmd.as_str() {
        "server" => server_main(rest),
        "client" => client_main(rest),
        "sweep" => sweep_main(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(format!("unknown command {cmd:?}\n\n{USAGE}")),
    };
    if let Err(e) = r {
        eprintln!("echo-bench {cmd}: {e}");
        std::process::exit(if e.starts_with("usage") { 2 } else { 1 });
    }
}

fn help(o: &mut Opts, text: &str) -> bool {
    if o.flag("help") {
        println!("{text}");
        return true;
    }
    false
}

fn req<T>(v: Option<T>, name: &str) -> Result<T, String> {
    v.ok_or_else(|| format!("usage: --{name} is required"))
}

fn server_main(argv: &[String]) -> Result<(), String> {
    let mut o = Opts::parse(argv, &["help"])?;
    if help(&mut o, SERVER_HELP) {
        return Ok(());
    }
    let pages: Option<usize> = o.get("touch-pages")?;
    let frac: Option<f64> = o.get("touch-fraction")?;
    let touch = match (pages, frac) {
        (Some(_), Some(_)) => {
            return Err("usage: --touch-pages and --touch-fraction exclude each other".into())
        }
        (Some(0), None) | (None, None) => Touch::None,
        (Some(k), None) => Touch::Pages(k),
        (None, Some(f)) if (0.0..=1.0).contains(&f) => {
            if f == 0.0 {
                Touch::None
            } else {
                Touch::Fraction(f)
            }
        }
        (None, Some(f)) => {
            return Err(format!(
                "usage: --touch-fraction must be within 0..1, not {f}"
            ))
        }
    };
    let cfg = ServerConfig {
        port: req(o.get("port")?, "port")?,
        threads: o.get("threads")?.unwrap_or(1),
        size: req(o.size("size")?, "size")?,
        copies: req(o.get("copies")?, "copies")?,
        buffers: o.get::<Buffers>("buffers")?.unwrap_or(Buffers::Static),
        touch,
        recv: o.get::<Recv>("recv")?.unwrap_or(Recv::Read),
        max_seconds: o.get("max-seconds")?.unwrap_or(600.0),
    };
    o.finish().map_err(|e| format!("usage: {e}"))?;
    server::install_signal_handlers();
    let srv = Server::bind(cfg).map_err(|e| format!("bind: {e}"))?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {}", srv.port());
        let _ = out.flush();
    }
    let stats = srv
        .serve(Arc::new(AtomicBool::new(false)))
        .map_err(|e| e.to_string())?;
    eprintln!(
        "echo-bench server: {} messages, {} connections, {} errors",
        stats.messages, stats.connections, stats.errors
    );
    // Worker threads may sit in blocking reads: exit the process (running
    // atexit handlers, so a preloaded zio prints its summary) without them.
    std::process::exit(0);
}

fn client_main(argv: &[String]) -> Result<(), String> {
    let mut o = Opts::parse(argv, &["help"])?;
    if help(&mut o, CLIENT_HELP) {
        return Ok(());
    }
    let threads: usize = o.get("threads")?.unwrap_or(1);
    let cfg = ClientConfig {
        port: req(o.get("port")?, "port")?,
        threads,
        conns: o.get("conns")?.unwrap_or(threads),
        size: req(o.size("size")?, "size")?,
        duration: o.get("duration")?.unwrap_or(3.0),
        warmup: o.get("warmup")?.unwrap_or(1.0),
        verify: o.get::<Verify>("verify")?.unwrap_or(Verify::Sample),
        timeout: o.get("timeout")?.unwrap_or(15.0),
    };
    o.finish().map_err(|e| format!("usage: {e}"))?;
    let r = client::run(&cfg)?;
    println!("{}", r.to_json());
    Ok(())
}

fn sweep_main(argv: &[String]) -> Result<(), String> {
    let mut o = Opts::parse(argv, &["help", "quick", "no-pin", "no-idle-spin"])?;
    if help(&mut o, SWEEP_HELP) {
        return Ok(());
    }
    let pos = o.positional();
    let [kind] = pos.as_slice() else {
        return Err("usage: echo-bench sweep copies|size|threads|faults|touch [options]".into());
    };
    let kind: Kind = kind.parse()?;
    let quick = o.flag("quick");
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let default_zio = exe
        .parent()
        .map(|d| d.join("zio-run"))
        .unwrap_or_else(|| PathBuf::from("zio-run"));
    let no_pin = o.flag("no-pin");
    let server_cpu = o.string("server-cpu")?.unwrap_or_else(|| "0".into());
    let client_cpu = o.string("client-cpu")?.unwrap_or_else(|| "1".into());
    let pin = if no_pin {
        None
    } else if std::process::Command::new("taskset")
        .arg("-V")
        .output()
        .is_ok()
    {
        Some((server_cpu, client_cpu))
    } else {
        eprintln!("echo-bench sweep: taskset not found, not pinning");
        None
    };
    let opts = SweepOpts {
        kind,
        reps: o.get("reps")?.unwrap_or(3),
        duration: o.get("duration")?.unwrap_or(if quick { 1.0 } else { 3.0 }),
        warmup: o.get("warmup")?.unwrap_or(if quick { 0.5 } else { 1.0 }),
        out: o
            .string("out")?
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target/echo-bench")),
        quick,
        buffers: o.get::<Buffers>("buffers")?.unwrap_or(Buffers::Static),
        size: o.size("size")?,
        copies: o.get("copies")?,
        points: o
            .string("points")?
            .map(|s| s.split(',').map(|x| x.trim().to_string()).collect()),
        verify: o.get::<Verify>("verify")?.unwrap_or(Verify::Sample),
        recv: o.get::<Recv>("recv")?.unwrap_or(Recv::Read),
        zio_run: o
            .string("zio-run")?
            .map(PathBuf::from)
            .unwrap_or(default_zio),
        bin: exe,
        pin,
        max_foreign: o.get("max-other-cpu")?.unwrap_or(0.25),
        retries: o.get("retries")?.unwrap_or(3),
        budget_extra: o.get("time-budget")?.unwrap_or(0.1),
        idle_spin: !o.flag("no-idle-spin"),
        tag: o.string("tag")?,
    };
    o.finish().map_err(|e| format!("usage: {e}"))?;
    sweep::run(&opts)
}
