//! The sweep driver: what a sweep is (its kind, options and points) and
//! its course: points ([`points`]), runs ([`measure`], each a [`run`]),
//! then the table, CSV file and SVG plot ([`report`], [`plot`]).
//!
//! Every point is run with and without zio, alternating the order per
//! repetition, server and client pinned to different cores.

mod measure;
mod plot;
mod points;
mod report;
mod run;

use std::path::PathBuf;
use std::time::Instant;

use crate::launch::{Echo, Launch};
use crate::server::Touch;

/// The sweeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Throughput against chained copies per message.
    Copies,
    /// Throughput against message size, at N copies and at 0.
    Size,
    /// Throughput against server threads and client connections.
    Threads,
    /// Throughput against pages read per message (page faults under zio).
    Faults,
    /// Throughput against the fraction of the last copy read.
    Touch,
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "copies" => Kind::Copies,
            "size" => Kind::Size,
            "threads" => Kind::Threads,
            "faults" => Kind::Faults,
            "touch" => Kind::Touch,
            _ => {
                return Err(format!(
                    "unknown sweep {s:?} (copies, size, threads, faults, touch)"
                ))
            }
        })
    }
}

impl Kind {
    /// The name on the command line and in file names.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Copies => "copies",
            Kind::Size => "size",
            Kind::Threads => "threads",
            Kind::Faults => "faults",
            Kind::Touch => "touch",
        }
    }
}

/// What to sweep and how (`echo-bench sweep`'s options).
#[derive(Clone, Debug)]
pub struct SweepOpts {
    /// The sweep.
    pub kind: Kind,
    /// Servers, buffers, pinning and the launcher.
    pub launch: Launch,
    /// Repetitions per side and point.
    pub reps: usize,
    /// Measured seconds per run.
    pub duration: f64,
    /// Warm-up seconds per run.
    pub warmup: f64,
    /// Where the CSV and SVG files (and kept logs of failures) go.
    pub out: PathBuf,
    /// Fewer points.
    pub quick: bool,
    /// Message size override.
    pub size: Option<usize>,
    /// Copy count override.
    pub copies: Option<usize>,
    /// Overrides the swept values (comma-separated, in the sweep's own unit).
    pub points: Option<Vec<String>>,
    /// A run during which other processes used more than this many CPUs
    /// (on average) is repeated, up to `retries` times.
    pub max_foreign: f64,
    /// Repeats of a disturbed run at most.
    pub retries: usize,
    /// Extra time allowed for repeats, as a fraction of the planned time.
    pub budget_extra: f64,
    /// Appended to the output file names: `<sweep>-<tag>.csv`.
    pub tag: Option<String>,
}

/// How a run is named in tables and messages.
fn side(zio: bool) -> &'static str {
    if zio {
        "with zio"
    } else {
        "without zio"
    }
}

/// One configuration measured with and without zio.
#[derive(Clone, Debug)]
struct Point {
    /// The series it belongs to ("5 copies", "512K", ...).
    group: String,
    /// Its x label.
    label: String,
    /// Its x value (a category index for categorical axes).
    x: f64,
    /// Message size.
    size: usize,
    /// Chained copies per message.
    copies: usize,
    /// Server threads.
    threads: usize,
    /// Client connections.
    conns: usize,
    /// What the server reads of the last copy.
    touch: Touch,
    /// The point whose without-zio throughput is this one's 0-copy ceiling.
    ceiling: Option<usize>,
}

impl Point {
    /// What its server does per message.
    fn echo(&self) -> Echo {
        Echo {
            size: self.size,
            copies: self.copies,
            threads: self.threads,
            touch: self.touch,
        }
    }
}

/// Runs a sweep: prints the table, writes the CSV file and the plot, and
/// returns Err if any run failed.
pub fn run(o: &SweepOpts) -> Result<(), String> {
    if o.reps == 0 {
        return Err("--reps must be at least 1".into());
    }
    let (pts, desc) = points::points(o)?;
    std::fs::create_dir_all(&o.out).map_err(|e| format!("{}: {e}", o.out.display()))?;
    let t0 = Instant::now();
    let results = measure::measure(o, &pts, &desc, t0);
    report::write(o, &pts, &results, &desc, t0.elapsed().as_secs_f64())
}
