//! The `echo-bench` command: `server`, `client`, `sweep`, `interleave`, and
//! `stack` (with its roles `iox` and `smoltcp-echo`).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use echo_bench::args::Opts;
use echo_bench::client::{self, ClientConfig};
use echo_bench::interleave::{self, InterleaveOpts};
use echo_bench::launch::{Allocator, Launch};
use echo_bench::pattern::Verify;
use echo_bench::server::{self, Buffers, Recv, Server, ServerConfig, Touch};
use echo_bench::sweep::{self, Kind, SweepOpts};

const USAGE: &str = "\
echo-bench: the zIO paper's echo microbenchmarks, with and without zio

usage:
  echo-bench server --port P [--threads T] --size S --copies N [--buffers static|malloc|chain]
                    [--touch-pages K | --touch-fraction F] [--recv read|waitall] [--inputs N]
                    [--max-seconds SECS] [--congestion ALG]
  echo-bench client --port P [--threads T] [--conns C] --size S [--duration SECS] [--warmup SECS]
                    [--verify sample|full|off] [--timeout SECS] [--congestion ALG]
  echo-bench client --ports LIST --size S [--slice SECS] [--rounds R] [--warmup SECS]
                    [--verify sample|full|off] [--timeout SECS] [--congestion ALG]
  echo-bench sweep copies|size|threads|faults|touch [--reps R] [--duration SECS] [--warmup SECS]
                    [--out DIR] [--quick] [--buffers static|malloc|chain] [--allocator glibc|jemalloc]
                    [--size S] [--copies N]
                    [--points LIST] [--tag NAME] [--verify MODE] [--recv MODE] [--zio-run PATH] [--no-pin]
                    [--server-cpu CPUS] [--client-cpu CPUS]
                    [--max-other-cpu C] [--retries N] [--time-budget F] [--no-idle-spin]
  echo-bench interleave [--sizes LIST] [--copies LIST] [--touch-pages K | --touch-fraction F]
                    [--rounds R] [--runs K] [--slice SECS] [--warmup SECS] [--csv FILE] [--inputs N]
                    [--ceiling-inputs M] [--buffers MODE] [--allocator A]
                    [--verify MODE] [--recv MODE] [--zio-run PATH] [--no-pin] [--server-cpu CPUS]
                    [--client-cpu CPUS] [--no-idle-spin]
  echo-bench stack --stack iceoryx2|smoltcp [--sizes LIST] [--copies N] [--rounds R] [--bytes B]
                    user-space IO stacks with zio's bridge (zio+IO), each mode side by side
  echo-bench iox source|echo|sink ...      one role of the iceoryx2 pipeline (used by stack)
  echo-bench smoltcp-echo SIZE N MESSAGES bridge|plain   the smoltcp echo (used by stack)

`echo-bench <command> --help` describes each command. Sizes take K/M/G suffixes (powers of 1024).";

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
                       message and freed after the reply; chain: the input malloc'ed once
                       per connection, each copy into a fresh malloc, the previous
                       intermediate freed right after the next copy
  --touch-pages K      read one byte in each of K pages spread evenly over the last copy
  --touch-fraction F   read the first F (0..1) of the bytes of the last copy, summed
  --recv MODE          read (default) or waitall
  --inputs N           static input buffers taken in turn, one per message (default 1); 2 is
                       the memory zio's input redirection keeps in use (the previous message
                       stays while the next is read), without zio
  --max-seconds SECS   exit after this long (default 600)
  --congestion ALG     TCP congestion control of its connections (default cubic; system:
                       the system's default). Pacing by per-connection estimates (BBR)
                       makes identical servers differ; an unknown name is an error at start

SIGTERM or SIGINT stop it: it prints \"echo-bench server: N messages ...\" on stderr and
exits with status 0 through exit(3), so a preloaded zio prints its summary.";

const CLIENT_HELP: &str = "\
echo-bench client: closed-loop echo client; prints one line of JSON

  --port P             server port (required unless --ports)
  --threads T          client threads (default 1)
  --conns C            connections in total (default T), spread over the threads; each
                       connection always has exactly one message outstanding. With
                       --ports: connections per server (default 1)
  --size S             message size (required, at least 16)
  --duration SECS      measured time (default 3)
  --warmup SECS        time before measuring (default 1)
  --verify MODE        sample (default): first and last 16 bytes, two random 8-byte words
                       and two random page headers of every echo; full: every byte; off
  --timeout SECS       fail if no echo progresses for this long (default 15)
  --congestion ALG     TCP congestion control of its connections, as the server's (default
                       cubic; system: the system's default)
  --ports LIST         instead of --port: --conns connections to each of these servers, served
                       in turn from one thread, a slice each per round; the first server of
                       a round moves on by one each round; --warmup defaults to 0.05 and is
                       the part of each slice not counted
  --slice SECS         with --ports: seconds per server per round (default 0.3)
  --rounds R           with --ports: rounds (default 30)

Each message carries the connection id and sequence number in its first 16 bytes and a
(connection, sequence, page) header at the start of every 4 KiB page. A mismatch prints
the first differing offset and exits with status 1.

Output: {\"size\":S,\"conns\":C,\"threads\":T,\"secs\":..,\"requests\":..,\"gbps\":..,\"rps\":..,
\"p50_us\":..,\"p99_us\":..}. gbps is the paper's convention: echoed payload bytes per
second in ONE direction (requests * S * 8 / secs / 1e9), counting requests completed in
the measured window; p50/p99 are request round-trip latencies. With --ports:
{\"size\":S,\"slice\":..,\"warmup\":..,\"ports\":[..],\"rounds\":[[Gbit/s per port],..]}.";

const INTERLEAVE_HELP: &str = "\
echo-bench interleave: the servers of a point side by side in one run, one client taking turns

For every size and copy count: starts three servers at once on the server CPU (without
zio at 0 copies, the ceiling; without zio at N copies; with zio at N copies; the first
is left out for N = 0 unless --inputs is above 1), then one client on the client CPU
serves them in turn, a slice each per round (client --ports). A sweep's runs come one
after the other and the machine's speed drifts between them; the servers of one round
see the same moment, so the ratio per round is what zio changes. Prints per point the
median Gbit/s of each server, the median ratios zio / 0-copy, zio / without zio and
without zio / 0-copy over the rounds, each with a 95% interval of that median (order
statistics, no assumption about the distribution), zio's elided bytes and policy skips
per message (read from its stats log), and each server's CPU time (user + system,
warm-ups included) per message.

  --sizes LIST         message sizes (default 64K,128K,256K,512K,1M)
  --copies LIST        copy counts (default 1,5,12)
  --touch-pages K      read K pages of the last copy (not in the 0-copy server)
  --touch-fraction F   read this fraction of the last copy (not in the 0-copy server)
  --threads T          worker threads of every server (default 1)
  --conns C            connections per server (default 1), driven together by the client in
                       that server's slice
  --rounds R           rounds per point (default 30)
  --runs K             measure each point K times with fresh servers and connections
                       (default 1) and print the median of the runs' medians and their range:
                       runs differ by more than rounds do (each server's connection and
                       memory are its own)
  --slice SECS         seconds per server per round (default 0.3)
  --warmup SECS        seconds at the start of each slice not counted (default 0.05)
  --csv FILE           write every round's Gbit/s per server, with zio's elided bytes and
                       policy skips per message
  --inputs M           the servers at N copies take M static input buffers in turn (server
                       --inputs); with --copies 0 and --inputs 2, \"w/o zio / 0-copy\" is what
                       the memory of input redirection costs a program without zio
  --ceiling-inputs M   above 1 (default 1): a fourth server, without zio at 0 copies, takes
                       M input buffers in turn, and \"zio / it\" is printed after the CPU
                       column. With 2, it is the ceiling of a program that keeps the previous
                       message while it reads the next, as zio's input redirection does
  --buffers, --allocator, --verify, --recv, --zio-run, --server-cpu, --client-cpu,
  --no-pin, --no-idle-spin
                       as for echo-bench sweep";

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
  --buffers MODE       static (default), malloc or chain
  --allocator A        glibc (default) or jemalloc (Debian's libjemalloc2, preloaded after
                       libzio.so) for every server
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
                       cross-CPU wake-up then waits for the host scheduler)
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
        "interleave" => interleave_main(rest),
        "stack" => echo_bench::stack::bench(rest),
        "iox" => echo_bench::stack::iox::run(rest),
        "smoltcp-echo" => echo_bench::stack::smoltcp::run(rest),
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

/// `--touch-pages K` or `--touch-fraction F` (server, interleave).
fn touch(o: &mut Opts) -> Result<Touch, String> {
    let pages: Option<usize> = o.get("touch-pages")?;
    let frac: Option<f64> = o.get("touch-fraction")?;
    Ok(match (pages, frac) {
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
    })
}

/// `--inputs N` (server, interleave) or `--ceiling-inputs M` (interleave,
/// named by `name`): taking turns needs reused buffers.
fn check_inputs(name: &str, inputs: usize, buffers: Buffers) -> Result<(), String> {
    if inputs == 0 || (inputs > 1 && buffers != Buffers::Static) {
        return Err(format!(
            "usage: --{name} must be at least 1, and more than 1 needs static buffers"
        ));
    }
    Ok(())
}

fn server_main(argv: &[String]) -> Result<(), String> {
    let mut o = Opts::parse(argv, &["help"])?;
    if help(&mut o, SERVER_HELP) {
        return Ok(());
    }
    let touch = touch(&mut o)?;
    let d = ServerConfig::new(
        req(o.size("size")?, "size")?,
        req(o.get("copies")?, "copies")?,
    );
    let cfg = ServerConfig {
        port: req(o.get("port")?, "port")?,
        threads: o.get("threads")?.unwrap_or(d.threads),
        buffers: o.get::<Buffers>("buffers")?.unwrap_or(d.buffers),
        touch,
        recv: o.get::<Recv>("recv")?.unwrap_or(d.recv),
        inputs: o.get("inputs")?.unwrap_or(d.inputs),
        max_seconds: o.get("max-seconds")?.unwrap_or(d.max_seconds),
        congestion: o.string("congestion")?.unwrap_or(d.congestion),
        ..d
    };
    check_inputs("inputs", cfg.inputs, cfg.buffers)?;
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
    let d = ClientConfig::new(0, req(o.size("size")?, "size")?);
    let given_threads: Option<usize> = o.get("threads")?;
    let threads = given_threads.unwrap_or(d.threads);
    let conns: Option<usize> = o.get("conns")?;
    let duration: Option<f64> = o.get("duration")?;
    let warmup: Option<f64> = o.get("warmup")?;
    let port: Option<u16> = o.get("port")?;
    let ports: Option<Vec<u16>> = o.list("ports")?;
    if ports.is_some() && (given_threads.is_some() || duration.is_some()) {
        return Err(
            "usage: with --ports, one thread drives --conns connections per server for \
             --rounds slices (no --threads or --duration)"
                .into(),
        );
    }
    let cfg = ClientConfig {
        port: port.unwrap_or(d.port),
        threads,
        conns: conns.unwrap_or(if ports.is_some() { 1 } else { threads }),
        duration: duration.unwrap_or(d.duration),
        warmup: warmup.unwrap_or(if ports.is_some() { 0.05 } else { d.warmup }),
        verify: o.get::<Verify>("verify")?.unwrap_or(d.verify),
        timeout: o.get("timeout")?.unwrap_or(d.timeout),
        congestion: o.string("congestion")?.unwrap_or(d.congestion),
        ..d
    };
    let slice: Option<f64> = o.get("slice")?;
    let rounds: Option<usize> = o.get("rounds")?;
    o.finish().map_err(|e| format!("usage: {e}"))?;
    let Some(ports) = ports else {
        if slice.is_some() || rounds.is_some() {
            return Err("usage: --slice and --rounds go with --ports".into());
        }
        req(port, "port")?;
        let r = client::run(&cfg)?;
        println!("{}", r.to_json());
        return Ok(());
    };
    if port.is_some() {
        return Err("usage: --port and --ports exclude each other".into());
    }
    let slice = slice.unwrap_or(0.3);
    let rounds = rounds.unwrap_or(30);
    let rows = client::rotate(&cfg, &ports, slice, rounds)?;
    println!("{}", client::rotation_json(&cfg, &ports, slice, &rows));
    Ok(())
}

/// How servers and clients are started (sweep, interleave): this
/// executable, the zio launcher (`--zio-run`, default: `zio-run` next to
/// it), the server and client CPUs unless `--no-pin` or no `taskset`, and
/// the buffer, input and verification modes.
fn launcher(o: &mut Opts, cmd: &str) -> Result<Launch, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let zio_run = match o.string("zio-run")? {
        Some(p) => PathBuf::from(p),
        None => exe
            .parent()
            .map(|d| d.join("zio-run"))
            .unwrap_or_else(|| PathBuf::from("zio-run")),
    };
    if !zio_run.exists() {
        return Err(format!(
            "{} not found: build zio first (cargo build --release) or pass --zio-run",
            zio_run.display()
        ));
    }
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
        eprintln!("echo-bench {cmd}: taskset not found, not pinning");
        None
    };
    Ok(Launch {
        bin: exe,
        zio_run,
        pin,
        buffers: o.get::<Buffers>("buffers")?.unwrap_or(Buffers::Static),
        allocator: {
            let a = o.get::<Allocator>("allocator")?.unwrap_or(Allocator::Glibc);
            a.library()?;
            a
        },
        recv: o.get::<Recv>("recv")?.unwrap_or(Recv::Read),
        verify: o.get::<Verify>("verify")?.unwrap_or(Verify::Sample),
        idle_spin: !o.flag("no-idle-spin"),
    })
}

fn interleave_main(argv: &[String]) -> Result<(), String> {
    let mut o = Opts::parse(argv, &["help", "no-pin", "no-idle-spin"])?;
    if help(&mut o, INTERLEAVE_HELP) {
        return Ok(());
    }
    let launch = launcher(&mut o, "interleave")?;
    let opts = InterleaveOpts {
        launch,
        sizes: o
            .sizes("sizes")?
            .unwrap_or_else(|| vec![64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20]),
        copies: o.list("copies")?.unwrap_or_else(|| vec![1, 5, 12]),
        touch: touch(&mut o)?,
        rounds: o.get("rounds")?.unwrap_or(30),
        slice: o.get("slice")?.unwrap_or(0.3),
        warm: o.get("warmup")?.unwrap_or(0.05),
        csv: o.string("csv")?.map(PathBuf::from),
        inputs: o.get("inputs")?.unwrap_or(1),
        runs: o.get("runs")?.unwrap_or(1),
        ceiling_inputs: o.get("ceiling-inputs")?.unwrap_or(1),
        threads: o.get("threads")?.unwrap_or(1),
        conns: o.get("conns")?.unwrap_or(1),
    };
    o.finish().map_err(|e| format!("usage: {e}"))?;
    check_inputs("inputs", opts.inputs, opts.launch.buffers)?;
    check_inputs("ceiling-inputs", opts.ceiling_inputs, opts.launch.buffers)?;
    if opts.rounds == 0
        || opts.runs == 0
        || opts.threads == 0
        || opts.conns == 0
        || !(opts.slice > opts.warm && opts.warm >= 0.0)
    {
        return Err(
            "usage: --rounds, --runs, --threads and --conns must be at least 1 and --slice \
             longer than --warmup"
                .into(),
        );
    }
    interleave::run(&opts)
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
    let launch = launcher(&mut o, "sweep")?;
    let opts = SweepOpts {
        kind,
        launch,
        reps: o.get("reps")?.unwrap_or(3),
        duration: o.get("duration")?.unwrap_or(if quick { 1.0 } else { 3.0 }),
        warmup: o.get("warmup")?.unwrap_or(if quick { 0.5 } else { 1.0 }),
        out: o
            .string("out")?
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target/echo-bench")),
        quick,
        size: o.size("size")?,
        copies: o.get("copies")?,
        points: o
            .string("points")?
            .map(|s| s.split(',').map(|x| x.trim().to_string()).collect()),
        max_foreign: o.get("max-other-cpu")?.unwrap_or(0.25),
        retries: o.get("retries")?.unwrap_or(3),
        budget_extra: o.get("time-budget")?.unwrap_or(0.1),
        tag: o.string("tag")?,
    };
    o.finish().map_err(|e| format!("usage: {e}"))?;
    sweep::run(&opts)
}
