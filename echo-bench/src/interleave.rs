//! Side by side in one run: the servers of one point (without zio at 0
//! copies, without zio and with zio at N copies) run at the same time and
//! one client takes turns among them in short slices ([`client::rotate`]).
//!
//! A sweep measures each side in runs of seconds, one after the other; on
//! a shared VM the machine's speed drifts between such runs by as much as
//! the differences to be measured. Slices of a fraction of a second,
//! taken in turn, see the same drift: the ratio of two servers within one
//! round is what zio changes, and the median over many rounds, with a
//! distribution-free confidence interval, says how sure it is.

use std::path::{Path, PathBuf};

use zio_core::summary::Summary;

use crate::args::fmt_size;
use crate::client;
use crate::cpu::{process_secs, IdleSpinners};
use crate::launch::{
    server_command, server_messages, start_server, stop_server, Echo, Launch, Listening,
};
use crate::median::{median, median_ci};
use crate::server::Touch;

/// What to measure and how.
#[derive(Clone, Debug)]
pub struct InterleaveOpts {
    /// Servers, buffers, pinning and the launcher, as for a sweep.
    pub launch: Launch,
    /// Message sizes, one group of points each.
    pub sizes: Vec<usize>,
    /// Copy counts, one point per size each.
    pub copies: Vec<usize>,
    /// What the servers at N copies read of the last copy.
    pub touch: Touch,
    /// Rounds per point (per run).
    pub rounds: usize,
    /// Seconds per server per round, of which `warm` are not counted.
    pub slice: f64,
    /// Seconds at the start of each slice not counted.
    pub warm: f64,
    /// Where the per-round CSV goes (None: not written).
    pub csv: Option<PathBuf>,
    /// Static input buffers of the servers at N copies (server `--inputs`).
    pub inputs: usize,
    /// Times each point is measured, with fresh servers and connections.
    pub runs: usize,
    /// Above 1: a fourth server, without zio at 0 copies, takes this many
    /// input buffers in turn. It is the ceiling of a program that keeps
    /// the previous message while it reads the next, as zio's input
    /// redirection does, so "zio / it" separates the cost of that memory
    /// from the rest of zio's.
    pub ceiling_inputs: usize,
    /// Worker threads of every server.
    pub threads: usize,
    /// Connections per server, driven together in its slice.
    pub conns: usize,
}

/// One point's servers, in the order of their columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Without zio, 0 copies: the ceiling.
    Ceiling,
    /// Without zio, 0 copies, `ceiling_inputs` input buffers in turn.
    CeilingInputs,
    Without,
    With,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Ceiling => "0-copy",
            Role::CeilingInputs => "0-copy with more input buffers",
            Role::Without => "without zio",
            Role::With => "with zio",
        }
    }
}

/// One point's outcome.
struct Outcome {
    size: usize,
    copies: usize,
    /// Which of the point's runs (fresh servers each).
    run: usize,
    roles: Vec<Role>,
    /// Gbit/s per round, one column per role.
    rounds: Vec<Vec<f64>>,
    /// zio's counters of the with-zio server.
    counters: std::collections::BTreeMap<String, u64>,
    /// Per role: messages echoed, and CPU seconds (user + system) used.
    messages: Vec<u64>,
    cpu: Vec<f64>,
}

impl Outcome {
    fn col(&self, r: Role) -> Option<usize> {
        self.roles.iter().position(|&x| x == r)
    }
    fn ratios(&self, num: Role, den: Role) -> Option<Vec<f64>> {
        let (a, b) = (self.col(num)?, self.col(den)?);
        Some(self.rounds.iter().map(|r| r[a] / r[b]).collect())
    }
    fn med(&self, r: Role) -> f64 {
        self.col(r).map_or(f64::NAN, |c| {
            median(&self.rounds.iter().map(|x| x[c]).collect::<Vec<_>>())
        })
    }
    fn per_msg(&self, name: &str) -> f64 {
        let m = self.col(Role::With).map_or(0, |c| self.messages[c]);
        self.counters.get(name).copied().unwrap_or(0) as f64 / m.max(1) as f64
    }
    /// zio's system calls per message (userfaultfd and memory-map
    /// ioctls, madvise).
    fn syscalls_per_msg(&self) -> f64 {
        self.per_msg("syscalls_uffd")
            + self.per_msg("syscalls_madvise")
            + self.per_msg("syscalls_maps")
    }
    /// CPU microseconds per message of one server, warm-ups included.
    fn cpu_us(&self, r: Role) -> f64 {
        self.col(r).map_or(f64::NAN, |c| {
            self.cpu[c] * 1e6 / self.messages[c].max(1) as f64
        })
    }
}

fn fmt_ci(v: Option<Vec<f64>>) -> String {
    match v {
        Some(v) => {
            let (m, lo, hi) = median_ci(&v);
            format!("{m:.3} ({lo:.3}-{hi:.3})")
        }
        None => "-".into(),
    }
}

/// Stops every server; per server its stderr, or `FAILED: why`.
fn stop_all(servers: &mut Vec<Listening>) -> Vec<String> {
    servers
        .drain(..)
        .map(|mut l| {
            let st = stop_server(&mut l.child);
            let err = l.stderr.join().unwrap_or_default();
            match st {
                Ok(x) if x.success() => err,
                Ok(x) => format!("FAILED: server exited with {x}; stderr: {}", err.trim()),
                Err(e) => format!("FAILED: {e}"),
            }
        })
        .collect()
}

/// Starts the servers of `roles` (one point at `size` x `copies`), the
/// with-zio one logging to `log`, each stopping after `max_secs`; stops
/// those already started if one fails.
fn start_servers(
    o: &InterleaveOpts,
    roles: &[Role],
    size: usize,
    copies: usize,
    log: &Path,
    max_secs: f64,
) -> Result<Vec<Listening>, String> {
    let mut servers = Vec::new();
    for &r in roles {
        let ceiling = matches!(r, Role::Ceiling | Role::CeilingInputs);
        let e = Echo {
            size,
            copies: if ceiling { 0 } else { copies },
            threads: o.threads,
            touch: if ceiling { Touch::None } else { o.touch },
        };
        let mut cmd = server_command(&o.launch, &e, r == Role::With, log, max_secs);
        let inputs = match r {
            Role::Ceiling => 1,
            Role::CeilingInputs => o.ceiling_inputs,
            Role::Without | Role::With => o.inputs,
        };
        cmd.arg("--inputs").arg(inputs.to_string());
        match start_server(cmd) {
            Ok(l) => servers.push(l),
            Err(e) => {
                stop_all(&mut servers);
                return Err(format!("{}: {e}", r.name()));
            }
        }
    }
    Ok(servers)
}

/// Runs one point: starts its servers, rotates the client among them,
/// stops them and reads zio's counters.
fn run_point(
    o: &InterleaveOpts,
    size: usize,
    copies: usize,
    run: usize,
) -> Result<Outcome, String> {
    let s = &o.launch;
    let mut roles = vec![Role::Without, Role::With];
    if copies > 0 || o.inputs > 1 {
        roles.insert(0, Role::Ceiling);
    }
    if o.ceiling_inputs > 1 {
        roles.insert(1, Role::CeilingInputs);
    }
    let log = std::env::temp_dir().join(format!("echo-bench-il-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let planned = o.rounds as f64 * o.slice * roles.len() as f64;
    let mut servers = start_servers(o, &roles, size, copies, &log, planned + 120.0)?;
    let ports: Vec<String> = servers.iter().map(|l| l.port.clone()).collect();
    let mut cc = s.client_command();
    cc.args(["--ports", &ports.join(",")]);
    cc.arg("--size").arg(size.to_string());
    cc.arg("--slice").arg(o.slice.to_string());
    cc.arg("--warmup").arg(o.warm.to_string());
    cc.arg("--rounds").arg(o.rounds.to_string());
    cc.arg("--conns").arg(o.conns.to_string());
    let out = cc.output();
    let cpu: Vec<f64> = servers.iter().map(|l| process_secs(l.child.id())).collect();
    let errs = stop_all(&mut servers);
    let summary = Summary::parse(&std::fs::read_to_string(&log).unwrap_or_default());
    let _ = std::fs::remove_file(&log);
    let out = out.map_err(|e| format!("cannot run the client: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "client failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if let Some(e) = errs.iter().find(|e| e.starts_with("FAILED: ")) {
        return Err(e["FAILED: ".len()..].to_string());
    }
    let json = String::from_utf8_lossy(&out.stdout);
    let rounds = client::parse_rounds(&json)
        .filter(|r| r.len() == o.rounds && r.iter().all(|x| x.len() == roles.len()))
        .ok_or_else(|| format!("unexpected client output {json:?}"))?;
    let messages = errs.iter().map(|e| server_messages(e)).collect();
    if summary.processes() == 0 {
        return Err("zio printed no stats summary at exit".into());
    }
    Ok(Outcome {
        size,
        copies,
        run,
        roles,
        rounds,
        counters: summary.counters(),
        messages,
        cpu,
    })
}

fn header(o: &InterleaveOpts) -> String {
    let touch = match o.touch {
        Touch::None => String::new(),
        Touch::Pages(k) => format!(", {k} pages of the last copy read"),
        Touch::Fraction(f) => format!(", {f} of the last copy read"),
    };
    let inputs = if o.inputs > 1 {
        format!(", {} input buffers (not in the 0-copy server)", o.inputs)
    } else {
        String::new()
    };
    let kept = if o.ceiling_inputs > 1 {
        format!(
            "  | 0-copy with {} input buffers: Gbit/s, zio / it, CPU us/msg",
            o.ceiling_inputs
        )
    } else {
        String::new()
    };
    format!(
        "interleaved: {} rounds of {} s per server ({} s not counted), {} buffers, {} server thread(s), {} connection(s) per server{touch}{inputs}; medians over rounds, (95% interval of the median)\n\
         {:<6} {:>6} {:>8} {:>8} {:>8}  {:<21} {:<21} {:<21} {:>10} {:>9} {:>8}  {}{kept}",
        o.rounds,
        o.slice,
        o.warm,
        o.launch.memory(),
        o.threads,
        o.conns,
        "size",
        "copies",
        "0-copy",
        "w/o zio",
        "with zio",
        "zio / 0-copy",
        "zio / w/o zio",
        "w/o zio / 0-copy",
        "elided/msg",
        "skips/msg",
        "sys/msg",
        "server CPU us/msg: 0-copy, w/o, with",
    )
}

fn row(p: &Outcome) -> String {
    let kept = if p.col(Role::CeilingInputs).is_some() {
        format!(
            "  | {:.2}, {}, {:.1}",
            p.med(Role::CeilingInputs),
            fmt_ci(p.ratios(Role::With, Role::CeilingInputs)),
            p.cpu_us(Role::CeilingInputs),
        )
    } else {
        String::new()
    };
    format!(
        "{:<6} {:>6} {:>8.2} {:>8.2} {:>8.2}  {:<21} {:<21} {:<21} {:>9.0}K {:>9.2} {:>8.2}  {:.1}, {:.1}, {:.1}{kept}",
        fmt_size(p.size),
        p.copies,
        p.med(Role::Ceiling),
        p.med(Role::Without),
        p.med(Role::With),
        fmt_ci(p.ratios(Role::With, Role::Ceiling)),
        fmt_ci(p.ratios(Role::With, Role::Without)),
        fmt_ci(p.ratios(Role::Without, Role::Ceiling)),
        p.per_msg("elided_bytes") / 1024.0,
        p.per_msg("policy_skips"),
        p.syscalls_per_msg(),
        p.cpu_us(Role::Ceiling),
        p.cpu_us(Role::Without),
        p.cpu_us(Role::With),
    )
}

/// One point's runs summed up: per ratio, the median of the runs' medians
/// and their range. Fresh servers and connections differ by more than the
/// rounds of one run do (a run's interval says nothing about the next).
fn across_runs(runs: &[Outcome]) -> String {
    let Some(p) = runs.first() else {
        return String::new();
    };
    let one = |num: Role, den: Role| -> String {
        let meds: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.ratios(num, den))
            .map(|v| median(&v))
            .collect();
        if meds.is_empty() {
            return "-".into();
        }
        let lo = meds.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = meds.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{:.3} [{lo:.3}-{hi:.3}]", median(&meds))
    };
    let kept = if p.col(Role::CeilingInputs).is_some() {
        format!(
            ", zio / 0-copy with more inputs {}",
            one(Role::With, Role::CeilingInputs)
        )
    } else {
        String::new()
    };
    format!(
        "{:<6} {:>6} {} runs: zio / 0-copy {}, zio / w/o zio {}, w/o zio / 0-copy {}{kept} (median of the runs' medians [lowest-highest])",
        fmt_size(p.size),
        p.copies,
        runs.len(),
        one(Role::With, Role::Ceiling),
        one(Role::With, Role::Without),
        one(Role::Without, Role::Ceiling),
    )
}

fn csv(points: &[Outcome]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "size",
        "copies",
        "run",
        "round",
        "gbps_0copy",
        "gbps_without",
        "gbps_with",
        "elided_bytes_per_msg",
        "policy_skips_per_msg",
        "gbps_0copy_more_inputs",
        "syscalls_per_msg",
    ]);
    for p in points {
        for (i, r) in p.rounds.iter().enumerate() {
            let g = |role| {
                p.col(role)
                    .map_or(String::new(), |c| format!("{:.4}", r[c]))
            };
            let _ = w.write_record([
                p.size.to_string(),
                p.copies.to_string(),
                p.run.to_string(),
                i.to_string(),
                g(Role::Ceiling),
                g(Role::Without),
                g(Role::With),
                format!("{:.0}", p.per_msg("elided_bytes")),
                format!("{:.3}", p.per_msg("policy_skips")),
                g(Role::CeilingInputs),
                format!("{:.3}", p.syscalls_per_msg()),
            ]);
        }
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// Runs every (size, copies) point; prints the table as it goes.
pub fn run(o: &InterleaveOpts) -> Result<(), String> {
    let _spin = o
        .launch
        .idle_spin
        .then(|| IdleSpinners::start(&o.launch.cpus()));
    println!("{}", header(o));
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for &size in &o.sizes {
        for &copies in &o.copies {
            let first = done.len();
            for run in 0..o.runs {
                match run_point(o, size, copies, run) {
                    Ok(p) => {
                        println!("{}", row(&p));
                        done.push(p);
                    }
                    Err(e) => {
                        println!("{:<6} {:>6} FAIL: {e}", fmt_size(size), copies);
                        failed.push(format!("{} x {copies}: {e}", fmt_size(size)));
                    }
                }
            }
            if o.runs > 1 {
                println!("{}", across_runs(&done[first..]));
            }
        }
    }
    if let Some(path) = &o.csv {
        if let Some(d) = path.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        std::fs::write(path, csv(&done)).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} point(s) failed: {}",
            failed.len(),
            failed.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_survive_the_json_line() {
        let cfg = client::ClientConfig {
            warmup: 0.05,
            ..client::ClientConfig::new(0, 65536)
        };
        let rows = vec![vec![9.5, 5.25, 9.0], vec![9.75, 5.0, 9.125]];
        let json = client::rotation_json(&cfg, &[1, 2, 3], 0.3, &rows);
        assert_eq!(client::parse_rounds(&json), Some(rows));
        assert_eq!(client::parse_rounds("{\"rounds\":[[1,x]]}"), None);
    }
}
