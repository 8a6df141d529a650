//! echo-bench's command line (clap): one struct per command, the flags
//! sweep and interleave share, and what each flag means.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use echo_bench::args::size_arg;
use echo_bench::launch::Allocator;
use echo_bench::pattern::Verify;
use echo_bench::server::{Buffers, Recv};
use echo_bench::stack::StackOpts;
use echo_bench::sweep::Kind;

/// The zIO paper's echo microbenchmarks, with and without zio.
///
/// Sizes take K/M/G suffixes (powers of 1024). `echo-bench COMMAND --help`
/// describes each command.
#[derive(Parser, Debug)]
#[command(name = "echo-bench", version, about)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// TCP echo server on 127.0.0.1
    #[command(long_about = SERVER_ABOUT, after_long_help = SERVER_AFTER)]
    Server(ServerArgs),
    /// Closed-loop echo client; prints one line of JSON
    #[command(long_about = CLIENT_ABOUT, after_long_help = CLIENT_AFTER)]
    Client(ClientArgs),
    /// Run each point with and without zio, print a table, write CSV and SVG
    #[command(long_about = SWEEP_ABOUT, after_long_help = SWEEP_AFTER)]
    Sweep(SweepArgs),
    /// The servers of a point side by side in one run, one client taking turns
    #[command(long_about = INTERLEAVE_ABOUT)]
    Interleave(InterleaveArgs),
    /// User-space IO stacks with zio's bridge (zio+IO), each mode side by side
    Stack(StackOpts),
    /// One role of the iceoryx2 pipeline (run by `stack`):
    /// source|echo|sink NAME SIZE MESSAGES [COPIES|direct bridge|plain]
    #[command(hide = true)]
    Iox {
        /// The role's arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The smoltcp echo (run by `stack`): SIZE COPIES MESSAGES bridge|plain [--tun DEV]
    #[command(name = "smoltcp-echo", hide = true)]
    SmoltcpEcho {
        /// Its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

const SERVER_ABOUT: &str = "\
TCP echo server on 127.0.0.1.

Per message: read exactly S bytes into the input buffer (libc read(2) in a loop, or
recv(2) with MSG_WAITALL with --recv waitall), make N chained copies input -> c1 -> ...
-> cN with libc memcpy (each into its own buffer), optionally read part of the last
copy, then write the last copy (the input if N = 0) back with libc write(2).";

const SERVER_AFTER: &str = "\
SIGTERM or SIGINT stop it: it prints \"echo-bench server: N messages ...\" on stderr and
exits with status 0 through exit(3), so a preloaded zio prints its summary.";

/// What the server and interleave read of the last copy.
#[derive(Args, Debug, Clone, Copy)]
pub struct TouchArgs {
    /// Read one byte in each of K pages spread evenly over the last copy
    #[arg(long, value_name = "K", conflicts_with = "touch_fraction")]
    pub touch_pages: Option<usize>,
    /// Read the first F (0..1) of the bytes of the last copy, summed
    #[arg(long, value_name = "F", value_parser = fraction)]
    pub touch_fraction: Option<f64>,
}

fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("a fraction within 0..1, not {s:?}")),
    }
}

/// `echo-bench server`.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Port (0: any free port); prints "listening on PORT" when ready
    #[arg(long, value_name = "P")]
    pub port: u16,
    /// Worker threads; connections are handed out round-robin, each thread
    /// has its own buffers and serves its own connections [default: 1]
    #[arg(long, value_name = "T")]
    pub threads: Option<usize>,
    /// Message size
    #[arg(long, value_name = "S", value_parser = size_arg)]
    pub size: usize,
    /// Chained copies per message
    #[arg(long, value_name = "N")]
    pub copies: usize,
    /// static: page-aligned buffers allocated once per thread
    /// (posix_memalign) and reused; malloc: input and copies malloc'ed per
    /// message and freed after the reply; chain: the input malloc'ed once
    /// per connection, each copy into a fresh malloc, the previous
    /// intermediate freed right after the next copy [default: static]
    #[arg(long, value_name = "MODE")]
    pub buffers: Option<Buffers>,
    /// What to read of the last copy.
    #[command(flatten)]
    pub touch: TouchArgs,
    /// read or waitall [default: read]
    #[arg(long, value_name = "MODE")]
    pub recv: Option<Recv>,
    /// Static input buffers taken in turn, one per message; 2 is the memory
    /// zio's input redirection keeps in use (the previous message stays
    /// while the next is read), without zio [default: 1]
    #[arg(long, value_name = "N")]
    pub inputs: Option<usize>,
    /// Exit after this long [default: 600]
    #[arg(long, value_name = "SECS")]
    pub max_seconds: Option<f64>,
    /// TCP congestion control of its connections (system: the system's
    /// default). Pacing by per-connection estimates (BBR) makes identical
    /// servers differ; an unknown name is an error at start [default: cubic]
    #[arg(long, value_name = "ALG")]
    pub congestion: Option<String>,
}

const CLIENT_ABOUT: &str = "\
Closed-loop echo client; prints one line of JSON.

Each message carries the connection id and sequence number in its first 16 bytes and a
(connection, sequence, page) header at the start of every 4 KiB page. A mismatch prints
the first differing offset and exits with status 1.";

const CLIENT_AFTER: &str = "\
Output: {\"size\":S,\"conns\":C,\"threads\":T,\"secs\":..,\"requests\":..,\"gbps\":..,\"rps\":..,
\"p50_us\":..,\"p99_us\":..,\"p999_us\":..}. gbps is the paper's convention: echoed payload
bytes per second in ONE direction (requests * S * 8 / secs / 1e9), counting requests
completed in the measured window; p50/p99/p99.9 are request round-trip latencies (an HDR
histogram, three significant digits). With --ports:
{\"size\":S,\"slice\":..,\"warmup\":..,\"ports\":[..],\"rounds\":[[Gbit/s per port],..]}.";

/// `echo-bench client`.
#[derive(Args, Debug)]
pub struct ClientArgs {
    /// Server port
    #[arg(
        long,
        value_name = "P",
        required_unless_present = "ports",
        conflicts_with = "ports"
    )]
    pub port: Option<u16>,
    /// Client threads [default: 1]
    #[arg(long, value_name = "T", conflicts_with = "ports")]
    pub threads: Option<usize>,
    /// Connections in total, spread over the threads; each connection
    /// always has exactly one message outstanding. With --ports:
    /// connections per server [default: T, with --ports 1]
    #[arg(long, value_name = "C")]
    pub conns: Option<usize>,
    /// Message size (at least 16)
    #[arg(long, value_name = "S", value_parser = size_arg)]
    pub size: usize,
    /// Measured time [default: 3]
    #[arg(long, value_name = "SECS", conflicts_with = "ports")]
    pub duration: Option<f64>,
    /// Time before measuring; with --ports the part of each slice not
    /// counted [default: 1, with --ports 0.05]
    #[arg(long, value_name = "SECS")]
    pub warmup: Option<f64>,
    /// sample: first and last 16 bytes, two random 8-byte words and two
    /// random page headers of every echo; full: every byte; off
    /// [default: sample]
    #[arg(long, value_name = "MODE")]
    pub verify: Option<Verify>,
    /// Fail if no echo progresses for this long [default: 15]
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// TCP congestion control of its connections, as the server's
    /// [default: cubic]
    #[arg(long, value_name = "ALG")]
    pub congestion: Option<String>,
    /// Instead of --port: --conns connections to each of these servers,
    /// served in turn from one thread, a slice each per round; the first
    /// server of a round moves on by one each round
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub ports: Option<Vec<u16>>,
    /// With --ports: seconds per server per round [default: 0.3]
    #[arg(long, value_name = "SECS")]
    pub slice: Option<f64>,
    /// With --ports: rounds [default: 30]
    #[arg(long, value_name = "R")]
    pub rounds: Option<usize>,
}

/// How sweep and interleave start servers and clients.
#[derive(Args, Debug)]
pub struct LaunchArgs {
    /// static, malloc or chain, for every server (see `server --help`)
    #[arg(long, value_name = "MODE", default_value = "static")]
    pub buffers: Buffers,
    /// glibc or jemalloc (Debian's libjemalloc2, preloaded after
    /// libzio.so) for every server
    #[arg(long, value_name = "A", default_value = "glibc")]
    pub allocator: Allocator,
    /// Client verification (see `client --help`)
    #[arg(long, value_name = "MODE", default_value = "sample")]
    pub verify: Verify,
    /// Server input mode (see `server --help`)
    #[arg(long, value_name = "MODE", default_value = "read")]
    pub recv: Recv,
    /// The launcher [default: zio-run next to this executable]
    #[arg(long, value_name = "PATH")]
    pub zio_run: Option<PathBuf>,
    /// taskset CPU list for the server
    #[arg(long, value_name = "CPUS", default_value = "0")]
    pub server_cpu: String,
    /// taskset CPU list for the client
    #[arg(long, value_name = "CPUS", default_value = "1")]
    pub client_cpu: String,
    /// Do not use taskset
    #[arg(long)]
    pub no_pin: bool,
    /// Do not run the SCHED_IDLE spinners: by default one thread per CPU
    /// spins at idle priority so that the vCPUs never halt (on a busy VM
    /// host a halted vCPU loses its physical CPU and every cross-CPU
    /// wake-up then waits for the host scheduler)
    #[arg(long)]
    pub no_idle_spin: bool,
}

const SWEEP_ABOUT: &str = "\
Run each point with and without zio, print a table, write CSV and SVG.

  copies    512K messages, copies 0,1,2,3,5,8,12 (0-copy ceiling shown)
  size      5 copies and 0 copies, sizes 8K..1M
  threads   512K, 1 copy, server threads/client connections 1/1, 2/2, 1/4, 2/4
  faults    512K, 0 copies, --touch-pages 0,1,2,4,8,16,32,64,128 (reused input buffer)
  touch     1 copy, 512K and 16K, --touch-fraction 0,0.01,0.03,0.06,0.1,0.25,0.5,1";

const SWEEP_AFTER: &str = "\
With zio the server runs as `zio-run --stats --log-file TMP -- echo-bench server ...`;
ZIO_* variables in the environment pass through. zio's counters (elided_bytes,
bytes_substituted, faults_missing, faults_zero, policy_skips, ...) are read from the log
and shown per message. A failed run (echo mismatch, hang, crash) is reported with its
cause, the zio log is kept under DIR/failures/, and the sweep exits with status 1.";

/// `echo-bench sweep`.
#[derive(Args, Debug)]
pub struct SweepArgs {
    /// copies, size, threads, faults or touch
    #[arg(value_name = "SWEEP")]
    pub kind: Kind,
    /// Repetitions per side; the order alternates per repetition
    /// (without/with, with/without, ...); medians are reported
    #[arg(long, value_name = "R", default_value_t = 3)]
    pub reps: usize,
    /// Measured seconds per run [default: 3; --quick: 1]
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Warm-up seconds per run [default: 1; --quick: 0.5]
    #[arg(long, value_name = "SECS")]
    pub warmup: Option<f64>,
    /// Fewer points, shorter runs
    #[arg(long)]
    pub quick: bool,
    /// Where <sweep>.csv and <sweep>.svg go
    #[arg(long, value_name = "DIR", default_value = "target/echo-bench")]
    pub out: PathBuf,
    /// Name the files <sweep>-NAME.csv and <sweep>-NAME.svg instead
    #[arg(long, value_name = "NAME")]
    pub tag: Option<String>,
    /// Message size override (size sweep: a single size)
    #[arg(long, value_name = "S", value_parser = size_arg)]
    pub size: Option<usize>,
    /// Copy count override (size, threads, faults, touch)
    #[arg(long, value_name = "N")]
    pub copies: Option<usize>,
    /// Values to sweep instead of the defaults (copies: counts; size:
    /// sizes; threads: T/C pairs; faults: pages; touch: fractions)
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub points: Option<Vec<String>>,
    /// A run during which other processes and the hypervisor (steal) took
    /// more than C CPUs on average (/proc/stat minus this sweep and its
    /// children) is discarded and repeated once the machine is quiet again
    /// (watched in 0.5 s windows, at most 10 s; without the idle spinners
    /// a 0.4 s busy probe, since steal shows only under load)
    #[arg(long, value_name = "C", default_value_t = 0.25)]
    pub max_other_cpu: f64,
    /// Repeat a disturbed run at most N times
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub retries: usize,
    /// Repeats stop once the sweep would exceed its planned time (runs x
    /// (warm-up + duration + 0.1 s)) by more than F, plus 10 s; disturbed
    /// runs kept after that are marked * in the table and counted in the CSV
    #[arg(long, value_name = "F", default_value_t = 0.1)]
    pub time_budget: f64,
    /// How servers and clients are started.
    #[command(flatten)]
    pub launch: LaunchArgs,
}

const INTERLEAVE_ABOUT: &str = "\
The servers of a point side by side in one run, one client taking turns.

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
warm-ups included) per message.";

/// `echo-bench interleave`.
#[derive(Args, Debug)]
pub struct InterleaveArgs {
    /// Message sizes
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = size_arg,
          default_value = "64K,128K,256K,512K,1M")]
    pub sizes: Vec<usize>,
    /// Copy counts
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "1,5,12"
    )]
    pub copies: Vec<usize>,
    /// What to read of the last copy (not in the 0-copy server).
    #[command(flatten)]
    pub touch: TouchArgs,
    /// Worker threads of every server
    #[arg(long, value_name = "T", default_value_t = 1)]
    pub threads: usize,
    /// Connections per server, driven together by the client in that
    /// server's slice
    #[arg(long, value_name = "C", default_value_t = 1)]
    pub conns: usize,
    /// Rounds per point
    #[arg(long, value_name = "R", default_value_t = 30)]
    pub rounds: usize,
    /// Measure each point K times with fresh servers and connections and
    /// print the median of the runs' medians and their range: runs differ
    /// by more than rounds do (each server's connection and memory are its
    /// own)
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub runs: usize,
    /// Seconds per server per round
    #[arg(long, value_name = "SECS", default_value_t = 0.3)]
    pub slice: f64,
    /// Seconds at the start of each slice not counted
    #[arg(long, value_name = "SECS", default_value_t = 0.05)]
    pub warmup: f64,
    /// Write every round's Gbit/s per server, with zio's elided bytes and
    /// policy skips per message
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// The servers at N copies take M static input buffers in turn (server
    /// --inputs); with --copies 0 and --inputs 2, "w/o zio / 0-copy" is
    /// what the memory of input redirection costs a program without zio
    #[arg(long, value_name = "M", default_value_t = 1)]
    pub inputs: usize,
    /// Above 1: a fourth server, without zio at 0 copies, takes M input
    /// buffers in turn, and "zio / it" is printed after the CPU column.
    /// With 2, it is the ceiling of a program that keeps the previous
    /// message while it reads the next, as zio's input redirection does
    #[arg(long, value_name = "M", default_value_t = 1)]
    pub ceiling_inputs: usize,
    /// How servers and clients are started.
    #[command(flatten)]
    pub launch: LaunchArgs,
}
