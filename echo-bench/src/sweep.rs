//! The sweep driver: every point is run with and without zio, alternating
//! the order per repetition, server and client pinned to different cores;
//! medians, zio's counters, a table, a CSV file and an SVG plot.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use zio_core::summary::Summary;

use crate::args::fmt_size;
use crate::cpu::{wait_quiet, CpuTimes, IdleSpinners};
use crate::launch::{
    drain, json_num, server_command, server_messages, start_server, stop_server, wait_for, Echo,
    Launch, Listening,
};
use crate::median::median;
use crate::server::Touch;
use crate::svg::{self, Panel, Series, XAxis, COLORS};

/// The sweeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Copies,
    Size,
    Threads,
    Faults,
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

#[derive(Clone, Debug)]
pub struct SweepOpts {
    pub kind: Kind,
    pub launch: Launch,
    pub reps: usize,
    pub duration: f64,
    pub warmup: f64,
    pub out: PathBuf,
    pub quick: bool,
    pub size: Option<usize>,
    pub copies: Option<usize>,
    /// Overrides the swept values (comma-separated, in the sweep's own unit).
    pub points: Option<Vec<String>>,
    /// A run during which other processes used more than this many CPUs
    /// (on average) is repeated, up to `retries` times.
    pub max_foreign: f64,
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

/// One run's outcome.
#[derive(Clone, Debug, Default)]
struct Run {
    gbps: f64,
    p50_us: f64,
    p99_us: f64,
    /// Messages the server echoed (warm-up included), from its exit line.
    messages: u64,
    counters: BTreeMap<String, u64>,
    /// CPU time other processes used during the run, in cores (0.25 = a
    /// quarter of one CPU on average).
    foreign: f64,
    /// Of which stolen by the hypervisor (in CPUs).
    steal: f64,
}

#[derive(Default)]
struct Measured {
    without: Vec<Run>,
    with: Vec<Run>,
    failures: Vec<String>,
    /// Runs thrown away because other processes used the CPUs meanwhile.
    disturbed: usize,
}

/// zio counters summed and shown per point.
const COUNTERS: [&str; 10] = [
    "elided_copies",
    "elided_bytes",
    "copied_bytes",
    "bytes_substituted",
    "faults_missing",
    "faults_zero",
    "faults_wp",
    "policy_skips",
    "refused",
    "bytes_dropped",
];

fn parse_list<T: std::str::FromStr>(v: &[String]) -> Result<Vec<T>, String> {
    crate::args::parse_list_with(v, "points", |s| s.parse().ok())
}

fn parse_sizes(v: &[String]) -> Result<Vec<usize>, String> {
    crate::args::parse_list_with(v, "points", crate::args::parse_size)
}

fn k512() -> usize {
    512 << 10
}

fn points(o: &SweepOpts) -> Result<(Vec<Point>, String), String> {
    let q = o.quick;
    let mut pts = Vec::new();
    let base = |group: String, label: String, x: f64, size: usize, copies: usize| Point {
        group,
        label,
        x,
        size,
        copies,
        threads: 1,
        conns: 1,
        touch: Touch::None,
        ceiling: None,
    };
    let desc;
    match o.kind {
        Kind::Copies => {
            let size = o.size.unwrap_or_else(k512);
            let mut list: Vec<usize> = match &o.points {
                Some(p) => parse_list(p)?,
                None if q => vec![0, 1, 5, 12],
                None => vec![0, 1, 2, 3, 5, 8, 12],
            };
            if !list.contains(&0) {
                list.insert(0, 0); // the 0-copy ceiling
            }
            for &c in &list {
                pts.push(base(fmt_size(size), format!("{c}"), c as f64, size, c));
            }
            let zero = list.iter().position(|&c| c == 0);
            for p in &mut pts {
                p.ceiling = zero;
            }
            desc = format!(
                "{} messages, 1 server thread, {} buffers",
                fmt_size(size),
                o.launch.buffers.name()
            );
        }
        Kind::Size => {
            let copies = o.copies.unwrap_or(5);
            let sizes: Vec<usize> = match (&o.points, o.size) {
                (Some(p), _) => parse_sizes(p)?,
                (None, Some(s)) => vec![s],
                (None, None) if q => vec![16 << 10, 64 << 10, 512 << 10],
                (None, None) => (13..=20).map(|b| 1usize << b).collect(),
            };
            for (i, &s) in sizes.iter().enumerate() {
                let ci = pts.len();
                pts.push(base(
                    format!("{copies} copies"),
                    fmt_size(s),
                    i as f64,
                    s,
                    copies,
                ));
                if copies != 0 {
                    let zi = pts.len();
                    pts.push(base("0 copies".into(), fmt_size(s), i as f64, s, 0));
                    pts[ci].ceiling = Some(zi);
                    pts[zi].ceiling = Some(zi);
                }
            }
            desc = format!(
                "{copies} copies and 0 copies, 1 server thread, {} buffers",
                o.launch.buffers.name()
            );
        }
        Kind::Threads => {
            let size = o.size.unwrap_or_else(k512);
            let copies = o.copies.unwrap_or(1);
            let list: Vec<(usize, usize)> = match &o.points {
                Some(p) => p
                    .iter()
                    .map(|s| {
                        let (t, c) = s.split_once('/').unwrap_or((s, s));
                        Ok((
                            t.trim()
                                .parse()
                                .map_err(|_| format!("bad threads in --points: {s:?}"))?,
                            c.trim()
                                .parse()
                                .map_err(|_| format!("bad conns in --points: {s:?}"))?,
                        ))
                    })
                    .collect::<Result<_, String>>()?,
                None if q => vec![(1, 1), (2, 2)],
                None => vec![(1, 1), (2, 2), (1, 4), (2, 4)],
            };
            for (i, &(t, c)) in list.iter().enumerate() {
                let mut p = base(
                    fmt_size(size),
                    format!("{t} thr / {c} conn{}", if c == 1 { "" } else { "s" }),
                    i as f64,
                    size,
                    copies,
                );
                p.threads = t;
                p.conns = c;
                pts.push(p);
            }
            desc = format!(
                "{} messages, {copies} cop{}, {} buffers",
                fmt_size(size),
                if copies == 1 { "y" } else { "ies" },
                o.launch.buffers.name()
            );
        }
        Kind::Faults => {
            let size = o.size.unwrap_or_else(k512);
            let copies = o.copies.unwrap_or(0);
            let list: Vec<usize> = match &o.points {
                Some(p) => parse_list(p)?,
                None if q => vec![0, 4, 32, 128],
                None => vec![0, 1, 2, 4, 8, 16, 32, 64, 128],
            };
            for (i, &k) in list.iter().enumerate() {
                let mut p = base(fmt_size(size), k.to_string(), i as f64, size, copies);
                p.touch = if k == 0 { Touch::None } else { Touch::Pages(k) };
                pts.push(p);
            }
            desc = format!(
                "{} messages, {copies} cop{}, pages of the {} touched, {} buffers",
                fmt_size(size),
                if copies == 1 { "y" } else { "ies" },
                if copies == 0 {
                    "reused input buffer"
                } else {
                    "last copy"
                },
                o.launch.buffers.name()
            );
        }
        Kind::Touch => {
            let copies = o.copies.unwrap_or(1);
            let sizes: Vec<usize> = match o.size {
                Some(s) => vec![s],
                None if q => vec![k512()],
                None => vec![k512(), 16 << 10],
            };
            let list: Vec<f64> = match &o.points {
                Some(p) => parse_list(p)?,
                None if q => vec![0.0, 0.03, 0.25, 1.0],
                None => vec![0.0, 0.01, 0.03, 0.06, 0.1, 0.25, 0.5, 1.0],
            };
            for &s in &sizes {
                for (i, &f) in list.iter().enumerate() {
                    let mut p = base(fmt_size(s), format!("{f}"), i as f64, s, copies);
                    p.touch = if f == 0.0 {
                        Touch::None
                    } else {
                        Touch::Fraction(f)
                    };
                    pts.push(p);
                }
            }
            desc = format!(
                "{copies} cop{}, a fraction of the last copy read before the reply, {} buffers",
                if copies == 1 { "y" } else { "ies" },
                o.launch.buffers.name()
            );
        }
    }
    Ok((pts, desc))
}

/// One run of one point, with or without zio.
fn run_one(o: &SweepOpts, p: &Point, zio: bool, tag: &str) -> Result<Run, String> {
    let log = std::env::temp_dir().join(format!("echo-bench-{}-{tag}.log", std::process::id()));
    let before = CpuTimes::now();
    let wall = Instant::now();
    let _ = std::fs::remove_file(&log);
    let keep_log = |why: &str| -> String {
        let kept = o.out.join("failures").join(format!("{tag}.log"));
        let note = if zio && log.exists() {
            let _ = std::fs::create_dir_all(kept.parent().unwrap());
            let _ = std::fs::copy(&log, &kept);
            format!(" (zio log kept in {})", kept.display())
        } else {
            String::new()
        };
        format!("{why}{note}")
    };
    let cmd = server_command(
        &o.launch,
        &p.echo(),
        zio,
        &log,
        o.warmup + o.duration + 60.0,
    );
    let Listening {
        child: mut server,
        port,
        stderr: server_err,
    } = start_server(cmd).map_err(|e| keep_log(&e))?;
    // The client.
    let mut cc = o.launch.client_command();
    cc.args(["--port", &port]);
    cc.arg("--threads").arg(p.conns.to_string());
    cc.arg("--conns").arg(p.conns.to_string());
    cc.arg("--size").arg(p.size.to_string());
    cc.arg("--duration").arg(o.duration.to_string());
    cc.arg("--warmup").arg(o.warmup.to_string());
    cc.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut client = match cc.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = stop_server(&mut server);
            return Err(format!("cannot start the client: {e}"));
        }
    };
    let cout = drain(client.stdout.take());
    let cerr = drain(client.stderr.take());
    let limit = Duration::from_secs_f64(o.warmup + o.duration + 40.0);
    let cstatus = wait_for(&mut client, limit);
    if cstatus.is_none() {
        let _ = client.kill();
        let _ = client.wait();
    }
    let cout = cout.join().unwrap_or_default();
    let cerr = cerr.join().unwrap_or_default();
    let sstatus = stop_server(&mut server);
    let serr = server_err.join().unwrap_or_default();
    let summary = Summary::parse(&std::fs::read_to_string(&log).unwrap_or_default());
    let side = side(zio);
    let mut problems = Vec::new();
    match cstatus {
        None => problems.push(format!(
            "client did not finish within {} s (killed)",
            limit.as_secs()
        )),
        Some(s) if !s.success() => problems.push(format!("client failed ({s}): {}", cerr.trim())),
        _ => {}
    }
    match &sstatus {
        Err(e) => problems.push(e.clone()),
        Ok(s) if !s.success() => {
            problems.push(format!("server exited with {s}; stderr: {}", serr.trim()))
        }
        _ => {}
    }
    if zio {
        // Only the header is certain: the engine's counters follow it only
        // when zio ran in ready mode, not in pass-through.
        if summary.processes() == 0 {
            problems.push("zio printed no stats summary at exit".to_string());
        }
        if !summary.messages.is_empty() {
            eprintln!("    zio said ({side}, {tag}):");
            for m in summary.messages.iter().take(10) {
                eprintln!("      {m}");
            }
        }
    }
    if !problems.is_empty() {
        return Err(keep_log(&format!("{side}: {}", problems.join("; "))));
    }
    let _ = std::fs::remove_file(&log);
    let after = CpuTimes::now();
    let secs = wall.elapsed().as_secs_f64();
    let foreign = after.others_since(&before, secs).max(0.0);
    let steal = after.steal_since(&before, secs);
    let gbps =
        json_num(&cout, "gbps").ok_or_else(|| format!("no gbps in client output {cout:?}"))?;
    let messages = server_messages(&serr);
    Ok(Run {
        gbps,
        p50_us: json_num(&cout, "p50_us").unwrap_or(f64::NAN),
        p99_us: json_num(&cout, "p99_us").unwrap_or(f64::NAN),
        messages,
        counters: summary.counters(),
        foreign,
        steal,
    })
}

impl Measured {
    /// Accepted runs during which others took more than `max` CPUs.
    fn kept_disturbed(&self, max: f64) -> usize {
        self.without
            .iter()
            .chain(&self.with)
            .filter(|r| r.foreign > max)
            .count()
    }
    fn max(&self, zio: bool) -> f64 {
        if zio { &self.with } else { &self.without }
            .iter()
            .map(|r| r.gbps)
            .fold(f64::NAN, f64::max)
    }
    fn med(&self, zio: bool) -> f64 {
        let v: Vec<f64> = if zio { &self.with } else { &self.without }
            .iter()
            .map(|r| r.gbps)
            .collect();
        median(&v)
    }
    fn med_lat(&self, zio: bool, p99: bool) -> f64 {
        let v: Vec<f64> = if zio { &self.with } else { &self.without }
            .iter()
            .map(|r| if p99 { r.p99_us } else { r.p50_us })
            .collect();
        median(&v)
    }
    fn counter(&self, name: &str) -> u64 {
        self.with
            .iter()
            .map(|r| r.counters.get(name).copied().unwrap_or(0))
            .sum()
    }
    fn messages(&self) -> u64 {
        self.with.iter().map(|r| r.messages).sum()
    }
    /// Counters per message, summed over the with-zio runs.
    fn summary(&self) -> String {
        let m = self.messages();
        if self.with.is_empty() {
            return "-".into();
        }
        if m == 0 {
            return "no messages".into();
        }
        let per = |n: &str| self.counter(n) as f64 / m as f64;
        format!(
            "elided {:.0}K/msg, subst {:.0}K/msg, faults {:.1}+{:.1}z/msg, skips {:.2}/msg",
            per("elided_bytes") / 1024.0,
            per("bytes_substituted") / 1024.0,
            per("faults_missing"),
            per("faults_zero"),
            per("policy_skips"),
        )
    }
}

fn fmt_g(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}")
    } else {
        "FAIL".into()
    }
}

fn fmt_r(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}x")
    } else {
        "-".into()
    }
}

fn touch_name(t: Touch) -> String {
    match t {
        Touch::None => "none".into(),
        Touch::Pages(k) => format!("pages:{k}"),
        Touch::Fraction(f) => format!("fraction:{f}"),
    }
}

/// Runs a sweep; returns the table, and Err if any run failed.
pub fn run(o: &SweepOpts) -> Result<(), String> {
    if o.reps == 0 {
        return Err("--reps must be at least 1".into());
    }
    let (pts, desc) = points(o)?;
    std::fs::create_dir_all(&o.out).map_err(|e| format!("{}: {e}", o.out.display()))?;
    let zio_env: Vec<String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("ZIO_"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let t0 = Instant::now();
    eprintln!(
        "sweep {}: {} points x {} reps x 2 sides, {} s + {} s warm-up per run ({desc}){}{}",
        o.kind.name(),
        pts.len(),
        o.reps,
        o.duration,
        o.warmup,
        match &o.launch.pin {
            Some((s, c)) => format!("; server on CPU {s}, client on CPU {c}"),
            None => "; not pinned".into(),
        },
        if zio_env.is_empty() {
            String::new()
        } else {
            format!("; {}", zio_env.join(" "))
        }
    );
    let probe_cpus = o.launch.cpus();
    let _spinners = o.launch.idle_spin.then(|| IdleSpinners::start(&probe_cpus));
    let mut results: Vec<Measured> = Vec::new();
    // Time budget: the planned runs plus `budget_extra` for repeats.
    let planned = pts.len() * o.reps * 2;
    let budget = planned as f64 * (o.warmup + o.duration + 0.1) * (1.0 + o.budget_extra) + 10.0;
    let (mut runs_done, mut runs_kept, mut run_secs) = (0usize, 0usize, 0.0f64);
    for (i, p) in pts.iter().enumerate() {
        let mut m = Measured::default();
        for rep in 0..o.reps {
            let order = if rep % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            };
            for zio in order {
                let tag = format!(
                    "{}-{}-{}-{}-r{rep}-{}",
                    o.kind.name(),
                    p.group.replace(' ', ""),
                    p.label.replace([' ', '/'], ""),
                    i,
                    if zio { "zio" } else { "plain" }
                );
                let mut attempt = 0;
                let outcome = loop {
                    let started = Instant::now();
                    let r = run_one(o, p, zio, &tag);
                    runs_done += 1;
                    run_secs += started.elapsed().as_secs_f64();
                    // Retry only while the sweep stays within its time budget.
                    let avg = run_secs / runs_done as f64;
                    let projected = t0.elapsed().as_secs_f64()
                        + (planned - runs_kept - 1) as f64 * avg
                        + avg
                        + 3.0;
                    // "  [  12 s] 5 copies 512K with zio": who a message is about.
                    let who = || {
                        format!(
                            "  [{:>4.0} s] {} {} {}",
                            t0.elapsed().as_secs_f64(),
                            p.group,
                            p.label,
                            side(zio)
                        )
                    };
                    match &r {
                        Ok(run) if run.foreign > o.max_foreign && projected > budget => {
                            eprintln!(
                                "{}: disturbed (other {:.0}%, steal {:.0}%) but kept: the sweep's time budget ({:.0} s) allows no more repeats",
                                who(),
                                run.foreign * 100.0,
                                run.steal * 100.0,
                                budget
                            );
                            break r;
                        }
                        Ok(run) if run.foreign > o.max_foreign && attempt < o.retries => {
                            attempt += 1;
                            m.disturbed += 1;
                            eprintln!(
                                "{}: other processes and the hypervisor took {:.0}% of a CPU meanwhile (steal {:.0}%; {:.2} Gbit/s discarded); waiting for quiet, retrying",
                                who(),
                                run.foreign * 100.0,
                                run.steal * 100.0,
                                run.gbps
                            );
                            wait_quiet(
                                &probe_cpus,
                                o.max_foreign,
                                Duration::from_secs(10),
                                o.launch.idle_spin,
                            );
                        }
                        _ => break r,
                    }
                };
                runs_kept += 1;
                match outcome {
                    Ok(r) => {
                        eprintln!(
                            "  [{:>4.0} s] {} {:>10} {:<11} rep {}: {:>6.2} Gbit/s  other {:>3.0}% (steal {:>3.0}%){}",
                            t0.elapsed().as_secs_f64(),
                            p.group,
                            p.label,
                            side(zio),
                            rep + 1,
                            r.gbps,
                            r.foreign * 100.0,
                            r.steal * 100.0,
                            if zio {
                                format!(
                                    "  (elided {} B, faults {}+{}z, skips {})",
                                    r.counters.get("elided_bytes").unwrap_or(&0),
                                    r.counters.get("faults_missing").unwrap_or(&0),
                                    r.counters.get("faults_zero").unwrap_or(&0),
                                    r.counters.get("policy_skips").unwrap_or(&0)
                                )
                            } else {
                                String::new()
                            }
                        );
                        if zio {
                            m.with.push(r)
                        } else {
                            m.without.push(r)
                        }
                    }
                    Err(e) => {
                        eprintln!("  FAILED {} {} rep {}: {e}", p.group, p.label, rep + 1);
                        m.failures
                            .push(format!("{} {} rep {}: {e}", p.group, p.label, rep + 1));
                    }
                }
            }
        }
        results.push(m);
    }
    let secs = t0.elapsed().as_secs_f64();
    let table = table(o, &pts, &results, &desc);
    print!("{table}");
    println!("sweep {} took {:.0} s", o.kind.name(), secs);
    let csv = csv(o, &pts, &results);
    let base = match &o.tag {
        Some(t) => format!("{}-{t}", o.kind.name()),
        None => o.kind.name().to_string(),
    };
    let csv_path = o.out.join(format!("{base}.csv"));
    std::fs::write(&csv_path, csv).map_err(|e| format!("{}: {e}", csv_path.display()))?;
    let svg_path = o.out.join(format!("{base}.svg"));
    std::fs::write(&svg_path, plot(o, &pts, &results, &desc))
        .map_err(|e| format!("{}: {e}", svg_path.display()))?;
    println!("wrote {} and {}", csv_path.display(), svg_path.display());
    let failures: Vec<&String> = results.iter().flat_map(|m| m.failures.iter()).collect();
    if failures.is_empty() {
        Ok(())
    } else {
        let mut s = format!("{} run(s) failed:\n", failures.len());
        for f in failures {
            let _ = writeln!(s, "  {f}");
        }
        Err(s)
    }
}

fn ceiling_of(pts: &[Point], res: &[Measured], i: usize) -> f64 {
    match pts[i].ceiling {
        Some(c) => res[c].med(false),
        None => f64::NAN,
    }
}

fn has_ceiling(o: &SweepOpts) -> bool {
    matches!(o.kind, Kind::Copies | Kind::Size)
}

fn table(o: &SweepOpts, pts: &[Point], res: &[Measured], desc: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nsweep {} ({desc}); median of {} rep(s) per side, Gbit/s of echoed payload (one direction)",
        o.kind.name(),
        o.reps
    );
    let xname = match o.kind {
        Kind::Copies => "copies",
        Kind::Size => "size",
        Kind::Threads => "config",
        Kind::Faults => "pages",
        Kind::Touch => "fraction",
    };
    let ceil = has_ceiling(o);
    let _ = write!(
        s,
        "{:<10} {:<16} {:>8} {:>8} {:>6}",
        "series", xname, "w/o zio", "with zio", "ratio"
    );
    if ceil {
        let _ = write!(s, " {:>7} {:>7}", "0-copy", "zio/0cp");
    }
    let _ = writeln!(s, " {:>15}  zio counters (with-zio runs)", "max w/o | with");
    let mut noisy = false;
    for (i, (p, m)) in pts.iter().zip(res).enumerate() {
        let (a, b) = (m.med(false), m.med(true));
        let mark = if m.kept_disturbed(o.max_foreign) > 0 {
            noisy = true;
            "*"
        } else {
            ""
        };
        let _ = write!(
            s,
            "{:<10} {:<16} {:>8} {:>8} {:>6}",
            p.group,
            format!("{}{mark}", p.label),
            fmt_g(a),
            fmt_g(b),
            fmt_r(b / a)
        );
        if ceil {
            let c = ceiling_of(pts, res, i);
            let _ = write!(s, " {:>7} {:>7}", fmt_g(c), fmt_r(b / c));
        }
        let _ = writeln!(
            s,
            " {:>7} | {:<5}  {}",
            fmt_g(m.max(false)),
            fmt_g(m.max(true)),
            m.summary()
        );
    }
    if noisy {
        let _ = writeln!(
            s,
            "* a run of this point was disturbed (other processes or hypervisor steal above {:.0}% of a CPU) and kept",
            o.max_foreign * 100.0
        );
    }
    s
}

fn csv(o: &SweepOpts, pts: &[Point], res: &[Measured]) -> String {
    let mut s = String::from(
        "sweep,group,point,x,size,copies,server_threads,conns,buffers,touch,reps,without_gbps,with_gbps,ratio,without_max_gbps,with_max_gbps,ceiling_gbps,zio_over_ceiling,without_runs,with_runs,without_p50_us,with_p50_us,without_p99_us,with_p99_us,zio_messages",
    );
    for c in COUNTERS {
        let _ = write!(s, ",{c}");
    }
    s.push_str(
        ",max_other_cpu,max_steal_cpu,disturbed_runs_repeated,disturbed_runs_kept,failures\n",
    );
    for (i, (p, m)) in pts.iter().zip(res).enumerate() {
        let (a, b) = (m.med(false), m.med(true));
        let c = ceiling_of(pts, res, i);
        let runs = |v: &[Run]| {
            v.iter()
                .map(|r| format!("{:.3}", r.gbps))
                .collect::<Vec<_>>()
                .join(";")
        };
        let _ = write!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{},{},{:.1},{:.1},{:.1},{:.1},{}",
            o.kind.name(),
            p.group,
            p.label.replace(',', ";"),
            p.x,
            p.size,
            p.copies,
            p.threads,
            p.conns,
            o.launch.buffers.name(),
            touch_name(p.touch),
            o.reps,
            a,
            b,
            b / a,
            m.max(false),
            m.max(true),
            c,
            b / c,
            runs(&m.without),
            runs(&m.with),
            m.med_lat(false, false),
            m.med_lat(true, false),
            m.med_lat(false, true),
            m.med_lat(true, true),
            m.messages()
        );
        for c in COUNTERS {
            let _ = write!(s, ",{}", m.counter(c));
        }
        let other = m
            .without
            .iter()
            .chain(&m.with)
            .map(|r| r.foreign)
            .fold(0.0, f64::max);
        let steal = m
            .without
            .iter()
            .chain(&m.with)
            .map(|r| r.steal)
            .fold(0.0, f64::max);
        let _ = writeln!(
            s,
            ",{:.3},{:.3},{},{},{}",
            other,
            steal,
            m.disturbed,
            m.kept_disturbed(o.max_foreign),
            m.failures.len()
        );
    }
    s
}

fn series(
    name: &str,
    color: usize,
    dashed: bool,
    pts: &[Point],
    pick: &dyn Fn(usize) -> Option<f64>,
) -> Series {
    Series {
        name: name.to_string(),
        color: COLORS[color],
        dashed,
        markers: true,
        points: (0..pts.len())
            .filter_map(|i| pick(i).map(|y| (pts[i].x, y)))
            .collect(),
    }
}

fn plot(o: &SweepOpts, pts: &[Point], res: &[Measured], desc: &str) -> String {
    let ylabel = "Gbit/s (echoed payload)".to_string();
    let in_group = |g: &str, i: usize| pts[i].group == g;
    let groups: Vec<String> = {
        let mut g: Vec<String> = Vec::new();
        for p in pts {
            if !g.contains(&p.group) {
                g.push(p.group.clone());
            }
        }
        g
    };
    let cats = |g: &str| -> Vec<String> {
        pts.iter()
            .filter(|p| p.group == g)
            .map(|p| p.label.clone())
            .collect()
    };
    let sub = format!(
        "{desc}; median of {} run{} of {} s{}",
        o.reps,
        if o.reps == 1 { "" } else { "s" },
        o.duration,
        match &o.launch.pin {
            Some((s, c)) => format!("; server on CPU {s}, client on CPU {c}"),
            None => String::new(),
        }
    );
    let short = |s: &str| -> String {
        // The ratio panels get the configuration without the run details.
        s.split(';').next().unwrap_or("").to_string()
    };
    match o.kind {
        Kind::Copies => {
            let ticks: Vec<f64> = pts.iter().map(|p| p.x).collect();
            let panel = Panel {
                title: "Echo throughput vs application copies".into(),
                subtitle: sub.clone(),
                xlabel: "application copies per message".into(),
                ylabel,
                x: XAxis::Linear { ticks },
                series: vec![
                    series("without zio", 1, false, pts, &|i| Some(res[i].med(false))),
                    series("with zio", 0, false, pts, &|i| Some(res[i].med(true))),
                    series("0-copy (without zio)", 2, true, pts, &|i| {
                        Some(ceiling_of(pts, res, i))
                    }),
                ],
            };
            svg::render(&[panel])
        }
        Kind::Size => {
            let copies = pts.first().map(|p| p.copies).unwrap_or(5);
            let cg = format!("{copies} copies");
            let sizes = cats(&cg);
            let mut s = vec![
                series(
                    &format!("without zio, {copies} copies"),
                    1,
                    false,
                    pts,
                    &|i| in_group(&cg, i).then(|| res[i].med(false)),
                ),
                series(&format!("with zio, {copies} copies"), 0, false, pts, &|i| {
                    in_group(&cg, i).then(|| res[i].med(true))
                }),
            ];
            let mut r = vec![series(&format!("{copies} copies"), 0, false, pts, &|i| {
                in_group(&cg, i).then(|| res[i].med(true) / res[i].med(false))
            })];
            if groups.iter().any(|g| g == "0 copies") {
                s.push(series("without zio, 0 copies", 2, true, pts, &|i| {
                    in_group("0 copies", i).then(|| res[i].med(false))
                }));
                s.push(series("with zio, 0 copies", 3, true, pts, &|i| {
                    in_group("0 copies", i).then(|| res[i].med(true))
                }));
                r.push(series("0 copies", 3, true, pts, &|i| {
                    in_group("0 copies", i).then(|| res[i].med(true) / res[i].med(false))
                }));
            }
            r.push(Series {
                name: "1.0 (no change)".into(),
                color: COLORS[2],
                dashed: true,
                markers: false,
                points: (0..sizes.len()).map(|i| (i as f64, 1.0)).collect(),
            });
            svg::render(&[
                Panel {
                    title: "Echo throughput vs message size".into(),
                    subtitle: sub.clone(),
                    xlabel: "message size (bytes)".into(),
                    ylabel,
                    x: XAxis::Categories(sizes.clone()),
                    series: s,
                },
                Panel {
                    title: "Throughput with zio / without zio".into(),
                    subtitle: short(&sub),
                    xlabel: "message size (bytes)".into(),
                    ylabel: "throughput ratio".into(),
                    x: XAxis::Categories(sizes),
                    series: r,
                },
            ])
        }
        Kind::Threads | Kind::Faults => {
            let g = &groups[0];
            let (title, xlabel) = if o.kind == Kind::Threads {
                (
                    "Echo throughput vs server threads".to_string(),
                    "server threads / client connections",
                )
            } else {
                (
                    "Echo throughput vs pages read per message".to_string(),
                    "pages read per message",
                )
            };
            svg::render(&[Panel {
                title,
                subtitle: sub.clone(),
                xlabel: xlabel.into(),
                ylabel,
                x: XAxis::Categories(cats(g)),
                series: vec![
                    series("without zio", 1, false, pts, &|i| Some(res[i].med(false))),
                    series("with zio", 0, false, pts, &|i| Some(res[i].med(true))),
                ],
            }])
        }
        Kind::Touch => {
            let mut panels = Vec::new();
            let mut ratio = Vec::new();
            for (k, g) in groups.iter().enumerate() {
                panels.push(Panel {
                    title: format!("Echo throughput vs data read, {g} messages"),
                    subtitle: sub.clone(),
                    xlabel: "fraction of the last copy read".into(),
                    ylabel: ylabel.clone(),
                    x: XAxis::Categories(cats(g)),
                    series: vec![
                        series("without zio", 1, false, pts, &|i| {
                            in_group(g, i).then(|| res[i].med(false))
                        }),
                        series("with zio", 0, false, pts, &|i| {
                            in_group(g, i).then(|| res[i].med(true))
                        }),
                    ],
                });
                ratio.push(series(g, [0, 3, 4, 5][k % 4], false, pts, &|i| {
                    in_group(g, i).then(|| res[i].med(true) / res[i].med(false))
                }));
            }
            let n = cats(&groups[0]).len();
            ratio.push(Series {
                name: "1.0 (no change)".into(),
                color: COLORS[2],
                dashed: true,
                markers: false,
                points: (0..n).map(|i| (i as f64, 1.0)).collect(),
            });
            panels.push(Panel {
                title: "Throughput with zio / without zio".into(),
                subtitle: short(&sub),
                xlabel: "fraction of the last copy read".into(),
                ylabel: "throughput ratio".into(),
                x: XAxis::Categories(cats(&groups[0])),
                series: ratio,
            });
            svg::render(&panels)
        }
    }
}
