//! The zio+IO modes: user-space IO stacks whose buffers zio learns of
//! through the bridge (`zio-stack-bridge`), each run without zio, with
//! zio, and with zio and the bridge, side by side in one run.
//!
//! - `iox.rs`: the iceoryx2 pipeline, source → echo → sink, three
//!   processes (`echo-bench iox ROLE ...`);
//! - `smoltcp.rs`: the echo over smoltcp's Loopback device, one process
//!   (`echo-bench smoltcp-echo ...`);
//! - here: `echo-bench stack`, which runs either in rounds, every mode once
//!   per round in a rotating order, and prints MB/s and the ratios of each
//!   round's runs with their intervals;
//! - `plot.rs`: its CSV of every run and its SVG plot.

pub mod iox;
mod plot;
pub mod smoltcp;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::median::{median, median_ci};

/// Which stack `echo-bench stack` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Stack {
    /// The pipeline source -> echo -> sink (three processes); the echo
    /// copies each message into its buffer, makes N more copies and
    /// publishes the last. Modes: the same pipeline publishing what it
    /// received (1 copy: the publish copy no pipeline avoids), N copies
    /// without zio, under zio, and under zio with the bridge
    Iceoryx2,
    /// The echo over smoltcp's Loopback device (one process), the server
    /// reading each message, making N more copies, sending the last.
    /// Modes: without zio, under zio, under zio with the bridge
    Smoltcp,
}

/// One way of running a point: zio loaded or not, the bridge used or not,
/// and (iceoryx2) the echo's copies or `None` for the one-copy pipeline.
#[derive(Clone, Copy, Debug)]
struct Mode {
    name: &'static str,
    zio: bool,
    bridge: bool,
    direct: bool,
}

/// iceoryx2's modes; smoltcp's are all but the first (it has no 1-copy
/// pipeline).
const MODES: [Mode; 4] = [
    Mode {
        name: "1 copy",
        zio: false,
        bridge: false,
        direct: true,
    },
    Mode {
        name: "without zio",
        zio: false,
        bridge: false,
        direct: false,
    },
    Mode {
        name: "zio",
        zio: true,
        bridge: false,
        direct: false,
    },
    Mode {
        name: "zio+bridge",
        zio: true,
        bridge: true,
        direct: false,
    },
];

/// `echo-bench stack`: user-space IO stacks with zio's bridge (zio+IO):
/// every point run in each mode once per round, the order rotating, and
/// the bridge's throughput over each other mode's in the same round.
#[derive(clap::Args, Debug)]
pub struct StackOpts {
    /// The stack
    #[arg(long, value_enum)]
    stack: Stack,
    /// Message sizes
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = crate::args::size_arg,
          default_value = "64K,256K,1M,8M")]
    sizes: Vec<usize>,
    /// The echo's copies after its first
    #[arg(long, value_name = "N", default_value_t = 2)]
    copies: usize,
    /// Rounds
    #[arg(long, value_name = "R", default_value_t = 5,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    rounds: usize,
    /// Bytes per run (at least 16 messages)
    #[arg(long, value_name = "B", value_parser = crate::args::size_arg, default_value = "256M")]
    bytes: usize,
    /// Write every run's MB/s here as CSV (stack, size, round, mode, MB/s)
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Draw the modes' MB/s and the bridge's ratios against message size
    /// here (SVG)
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
}

/// One size's runs: MB/s of each mode (in the order of the stack's modes),
/// one entry per round.
struct SizeRuns {
    size: usize,
    mbs: Vec<Vec<f64>>,
}

impl SizeRuns {
    /// The bridge's (the last mode's) MB/s over mode `i`'s, per round:
    /// their median and the interval around it.
    fn ratio(&self, i: usize) -> (f64, f64, f64) {
        let last = self.mbs.len() - 1;
        let r: Vec<f64> = self.mbs[last]
            .iter()
            .zip(&self.mbs[i])
            .map(|(b, a)| b / a)
            .collect();
        median_ci(&r)
    }
}

/// Runs `echo-bench stack`.
pub fn bench(opts: StackOpts) -> Result<(), String> {
    let stack = opts.stack;
    let modes: &[Mode] = match stack {
        Stack::Iceoryx2 => &MODES,
        Stack::Smoltcp => &MODES[1..],
    };
    let bin = std::env::current_exe().map_err(|e| format!("echo-bench's own path: {e}"))?;
    let zio_run = bin.with_file_name("zio-run");
    if !zio_run.is_file() {
        return Err(format!(
            "{} is missing: run `cargo build --release`",
            zio_run.display()
        ));
    }
    println!(
        "{:?}, {} copies, {} rounds, {} MiB per run: MB/s (median) per mode; ratios of each round's runs, median (interval)",
        opts.stack,
        opts.copies,
        opts.rounds,
        opts.bytes >> 20
    );
    let mut head = format!("{:>6}", "size");
    for m in modes {
        head += &format!("  {:>12}", m.name);
    }
    let last = modes.len() - 1;
    for m in &modes[..last] {
        head += &format!("  {:>22}", format!("bridge / {}", m.name));
    }
    println!("{head}");
    let mut all = Vec::new();
    for &size in &opts.sizes {
        let messages = (opts.bytes / size).max(16) as u64;
        let mut mbs = vec![Vec::new(); modes.len()];
        for round in 0..opts.rounds {
            for k in 0..modes.len() {
                let i = (k + round) % modes.len();
                let m = modes[i];
                mbs[i].push(run_point(&opts, &bin, &zio_run, m, size, messages)?);
            }
        }
        let runs = SizeRuns { size, mbs };
        let mut line = format!("{:>6}", crate::args::fmt_size(size));
        for v in &runs.mbs {
            line += &format!("  {:>12.0}", median(v));
        }
        for i in 0..last {
            let (m, lo, hi) = runs.ratio(i);
            line += &format!("  {:>22}", format!("{m:.3} ({lo:.3}-{hi:.3})"));
        }
        println!("{line}");
        all.push(runs);
    }
    let names: Vec<&str> = modes.iter().map(|m| m.name).collect();
    if let Some(path) = &opts.csv {
        write_file(path, &plot::csv(stack, &names, &all)?)?;
    }
    if let Some(path) = &opts.plot {
        write_file(path, &plot::svg(&opts, &names, &all))?;
    }
    Ok(())
}

fn write_file(path: &std::path::Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// One run of `m` at `size`: the MB/s its stack reported.
fn run_point(
    o: &StackOpts,
    bin: &PathBuf,
    zio_run: &PathBuf,
    m: Mode,
    size: usize,
    messages: u64,
) -> Result<f64, String> {
    let mode = if m.bridge { "bridge" } else { "plain" };
    let cmd = |zio: bool| {
        let mut c = if zio {
            let mut c = Command::new(zio_run);
            c.arg("--").arg(bin);
            c
        } else {
            Command::new(bin)
        };
        c.env_remove("LD_PRELOAD");
        c
    };
    match o.stack {
        Stack::Smoltcp => {
            let out = cmd(m.zio)
                .args(["smoltcp-echo", &size.to_string(), &o.copies.to_string()])
                .args([&messages.to_string(), mode])
                .stdout(Stdio::null())
                .output()
                .map_err(|e| format!("smoltcp-echo: {e}"))?;
            figure(&out, "MB/s")
        }
        Stack::Iceoryx2 => {
            let name = format!(
                "zio-bench-{}-{size}-{}",
                std::process::id(),
                m.name.replace(' ', "-")
            );
            let role = |c: &mut Command, r: &str| {
                c.args(["iox", r, &name, &size.to_string(), &messages.to_string()]);
            };
            let mut sink = cmd(false);
            role(&mut sink, "sink");
            let sink = sink
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("iox sink: {e}"))?;
            let mut echo = cmd(m.zio);
            role(&mut echo, "echo");
            let copies = if m.direct {
                "direct".to_string()
            } else {
                o.copies.to_string()
            };
            echo.args([copies.as_str(), mode]).stderr(Stdio::null());
            let mut echo = echo.spawn().map_err(|e| format!("iox echo: {e}"))?;
            let mut source = cmd(false);
            role(&mut source, "source");
            let src = source
                .stderr(Stdio::null())
                .status()
                .map_err(|e| format!("iox source: {e}"))?;
            let e = echo.wait().map_err(|e| format!("iox echo: {e}"))?;
            let out = sink
                .wait_with_output()
                .map_err(|e| format!("iox sink: {e}"))?;
            if !src.success() || !e.success() {
                return Err(format!("iox {}: source {src}, echo {e}", m.name));
            }
            figure(&out, "MB/s")
        }
    }
}

/// The number after `name` on the stderr of a finished run.
fn figure(out: &std::process::Output, name: &str) -> Result<f64, String> {
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("run failed ({}): {}", out.status, err.trim()));
    }
    let mut w = err.split_whitespace();
    w.find(|x| *x == name)
        .and_then(|_| w.next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no {name} in {}", err.trim()))
}
