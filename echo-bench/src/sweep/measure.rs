//! The run loop: every point's repetitions with and without zio in
//! alternating order, a disturbed run repeated while the sweep's time
//! budget allows, and what was measured per point.

use std::time::{Duration, Instant};

use super::run::{run_one, Run};
use super::{side, Point, SweepOpts};
use crate::cpu::{wait_quiet, IdleSpinners};
use crate::median::median;

/// A point's runs on both sides.
#[derive(Default)]
pub(super) struct Measured {
    /// The accepted runs without zio.
    pub(super) without: Vec<Run>,
    /// The accepted runs with zio.
    pub(super) with: Vec<Run>,
    /// Why runs failed, one line each.
    pub(super) failures: Vec<String>,
    /// Runs thrown away because other processes used the CPUs meanwhile.
    pub(super) disturbed: usize,
}

impl Measured {
    fn side(&self, zio: bool) -> &[Run] {
        if zio {
            &self.with
        } else {
            &self.without
        }
    }

    /// Accepted runs during which others took more than `max` CPUs.
    pub(super) fn kept_disturbed(&self, max: f64) -> usize {
        self.without
            .iter()
            .chain(&self.with)
            .filter(|r| r.foreign > max)
            .count()
    }

    /// The best throughput of one side (NaN without runs).
    pub(super) fn max(&self, zio: bool) -> f64 {
        self.side(zio)
            .iter()
            .map(|r| r.gbps)
            .fold(f64::NAN, f64::max)
    }

    /// The median throughput of one side.
    pub(super) fn med(&self, zio: bool) -> f64 {
        let v: Vec<f64> = self.side(zio).iter().map(|r| r.gbps).collect();
        median(&v)
    }

    /// The median p50 (or p99) latency of one side.
    pub(super) fn med_lat(&self, zio: bool, p99: bool) -> f64 {
        let v: Vec<f64> = self
            .side(zio)
            .iter()
            .map(|r| if p99 { r.p99_us } else { r.p50_us })
            .collect();
        median(&v)
    }

    /// A zio counter summed over the with-zio runs.
    pub(super) fn counter(&self, name: &str) -> u64 {
        self.with
            .iter()
            .map(|r| r.counters.get(name).copied().unwrap_or(0))
            .sum()
    }

    /// Messages echoed in the with-zio runs.
    pub(super) fn messages(&self) -> u64 {
        self.with.iter().map(|r| r.messages).sum()
    }
}

/// The sweep's time budget: the planned runs plus `budget_extra` for
/// repeats, against the average run so far.
struct Budget {
    t0: Instant,
    planned: usize,
    secs: f64,
    done: usize,
    kept: usize,
    run_secs: f64,
}

impl Budget {
    fn new(o: &SweepOpts, points: usize, t0: Instant) -> Budget {
        let planned = points * o.reps * 2;
        Budget {
            t0,
            planned,
            secs: planned as f64 * (o.warmup + o.duration + 0.1) * (1.0 + o.budget_extra) + 10.0,
            done: 0,
            kept: 0,
            run_secs: 0.0,
        }
    }

    /// True if the sweep, going on at its average pace, would end past its
    /// budget: no time for a repeat.
    fn spent(&self) -> bool {
        let avg = self.run_secs / self.done as f64;
        let projected = self.t0.elapsed().as_secs_f64()
            + (self.planned - self.kept - 1) as f64 * avg
            + avg
            + 3.0;
        projected > self.secs
    }
}

/// Runs every point `o.reps` times per side; prints progress on stderr.
pub(super) fn measure(o: &SweepOpts, pts: &[Point], desc: &str, t0: Instant) -> Vec<Measured> {
    banner(o, pts, desc);
    let cpus = o.launch.cpus();
    let _spinners = o.launch.idle_spin.then(|| IdleSpinners::start(&cpus));
    let mut budget = Budget::new(o, pts.len(), t0);
    let mut results = Vec::new();
    for (i, p) in pts.iter().enumerate() {
        let mut m = Measured::default();
        for rep in 0..o.reps {
            // Alternate the order: without/with, with/without, ...
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
                let outcome = until_undisturbed(o, p, zio, &tag, &cpus, &mut budget, &mut m);
                budget.kept += 1;
                record(&mut m, outcome, p, zio, rep, t0);
            }
        }
        results.push(m);
    }
    results
}

/// The plan on stderr: points, repetitions, run times, pinning and the
/// `ZIO_*` variables the servers inherit.
fn banner(o: &SweepOpts, pts: &[Point], desc: &str) {
    let zio_env: Vec<String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("ZIO_"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
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
}

/// Runs `p` on one side, again while other processes or the hypervisor
/// took more than `o.max_foreign` CPUs meanwhile, at most `o.retries`
/// times and only while the budget allows; the last outcome.
fn until_undisturbed(
    o: &SweepOpts,
    p: &Point,
    zio: bool,
    tag: &str,
    cpus: &[usize],
    budget: &mut Budget,
    m: &mut Measured,
) -> Result<Run, String> {
    let mut attempt = 0;
    loop {
        let started = Instant::now();
        let r = run_one(o, p, zio, tag);
        budget.done += 1;
        budget.run_secs += started.elapsed().as_secs_f64();
        // "  [  12 s] 5 copies 512K with zio": who a message is about.
        let who = || {
            format!(
                "  [{:>4.0} s] {} {} {}",
                budget.t0.elapsed().as_secs_f64(),
                p.group,
                p.label,
                side(zio)
            )
        };
        match &r {
            Ok(run) if run.foreign > o.max_foreign && budget.spent() => {
                eprintln!(
                    "{}: disturbed (other {:.0}%, steal {:.0}%) but kept: the sweep's time budget ({:.0} s) allows no more repeats",
                    who(),
                    run.foreign * 100.0,
                    run.steal * 100.0,
                    budget.secs
                );
                return r;
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
                    cpus,
                    o.max_foreign,
                    Duration::from_secs(10),
                    o.launch.idle_spin,
                );
            }
            _ => return r,
        }
    }
}

/// Adds a run's outcome to `m` and reports it on stderr.
fn record(
    m: &mut Measured,
    outcome: Result<Run, String>,
    p: &Point,
    zio: bool,
    rep: usize,
    t0: Instant,
) {
    let r = match outcome {
        Ok(r) => r,
        Err(e) => {
            eprintln!("  FAILED {} {} rep {}: {e}", p.group, p.label, rep + 1);
            m.failures
                .push(format!("{} {} rep {}: {e}", p.group, p.label, rep + 1));
            return;
        }
    };
    let c = |name: &str| r.counters.get(name).copied().unwrap_or(0);
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
                c("elided_bytes"),
                c("faults_missing"),
                c("faults_zero"),
                c("policy_skips")
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
