//! One run of one point: its server (under zio or not) and its client
//! started, waited for and stopped; throughput, latency, zio's counters
//! and the CPU time others took meanwhile, or why the run failed.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use zio_core::summary::Summary;

use super::{side, Point, SweepOpts};
use crate::cpu::CpuTimes;
use crate::launch::{
    drain, json_num, server_command, server_messages, start_server, stop_server, wait_for,
    Listening,
};

/// One run's outcome.
#[derive(Clone, Debug, Default)]
pub(super) struct Run {
    /// Echoed payload, Gbit/s in one direction.
    pub(super) gbps: f64,
    /// Median request latency.
    pub(super) p50_us: f64,
    /// 99th percentile request latency.
    pub(super) p99_us: f64,
    /// Messages the server echoed (warm-up included), from its exit line.
    pub(super) messages: u64,
    /// zio's engine counters, summed over its processes (none without zio).
    pub(super) counters: BTreeMap<String, u64>,
    /// CPU time other processes used during the run, in cores (0.25 = a
    /// quarter of one CPU on average).
    pub(super) foreign: f64,
    /// Of which stolen by the hypervisor (in CPUs).
    pub(super) steal: f64,
}

/// Runs point `p` once, with or without zio; `tag` names its log files.
pub(super) fn run_one(o: &SweepOpts, p: &Point, zio: bool, tag: &str) -> Result<Run, String> {
    let log = std::env::temp_dir().join(format!("echo-bench-{}-{tag}.log", std::process::id()));
    let before = CpuTimes::now();
    let wall = Instant::now();
    let _ = std::fs::remove_file(&log);
    let keep = |why: &str| keep_log(o, zio, &log, tag, why);
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
    } = start_server(cmd).map_err(|e| keep(&e))?;
    let mut client = match client_command(o, p, &port).spawn() {
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
    let mut problems = exit_problems(cstatus, limit, &cerr, &sstatus, &serr);
    if zio {
        check_zio(&summary, tag, &mut problems);
    }
    if !problems.is_empty() {
        return Err(keep(&format!("{}: {}", side(zio), problems.join("; "))));
    }
    let _ = std::fs::remove_file(&log);
    let after = CpuTimes::now();
    let secs = wall.elapsed().as_secs_f64();
    let gbps =
        json_num(&cout, "gbps").ok_or_else(|| format!("no gbps in client output {cout:?}"))?;
    Ok(Run {
        gbps,
        p50_us: json_num(&cout, "p50_us").unwrap_or(f64::NAN),
        p99_us: json_num(&cout, "p99_us").unwrap_or(f64::NAN),
        messages: server_messages(&serr),
        counters: summary.counters(),
        foreign: after.others_since(&before, secs).max(0.0),
        steal: after.steal_since(&before, secs),
    })
}

/// The client of point `p`, for the server on `port`.
fn client_command(o: &SweepOpts, p: &Point, port: &str) -> Command {
    let mut cc = o.launch.client_command();
    cc.args(["--port", port]);
    cc.arg("--threads").arg(p.conns.to_string());
    cc.arg("--conns").arg(p.conns.to_string());
    cc.arg("--size").arg(p.size.to_string());
    cc.arg("--duration").arg(o.duration.to_string());
    cc.arg("--warmup").arg(o.warmup.to_string());
    cc.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cc
}

/// `why`, and where the zio log of a failed with-zio run was kept
/// (`<out>/failures/<tag>.log`).
fn keep_log(o: &SweepOpts, zio: bool, log: &Path, tag: &str, why: &str) -> String {
    let kept = o.out.join("failures").join(format!("{tag}.log"));
    let note = if zio && log.exists() {
        let _ = std::fs::create_dir_all(kept.parent().unwrap());
        let _ = std::fs::copy(log, &kept);
        format!(" (zio log kept in {})", kept.display())
    } else {
        String::new()
    };
    format!("{why}{note}")
}

/// What went wrong with the client (None: still running after `limit`)
/// and the server, from their exit statuses and stderr.
fn exit_problems(
    client: Option<ExitStatus>,
    limit: Duration,
    cerr: &str,
    server: &Result<ExitStatus, String>,
    serr: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    match client {
        None => problems.push(format!(
            "client did not finish within {} s (killed)",
            limit.as_secs()
        )),
        Some(s) if !s.success() => problems.push(format!("client failed ({s}): {}", cerr.trim())),
        _ => {}
    }
    match server {
        Err(e) => problems.push(e.clone()),
        Ok(s) if !s.success() => {
            problems.push(format!("server exited with {s}; stderr: {}", serr.trim()))
        }
        _ => {}
    }
    problems
}

/// A with-zio run must end with zio's summary; zio's other messages are
/// shown (the first ten), not counted as problems.
fn check_zio(summary: &Summary, tag: &str, problems: &mut Vec<String>) {
    // Only the header is certain: the engine's counters follow it only
    // when zio ran in ready mode, not in pass-through.
    if summary.processes() == 0 {
        problems.push("zio printed no stats summary at exit".to_string());
    }
    if !summary.messages.is_empty() {
        eprintln!("    zio said ({}, {tag}):", side(true));
        for m in summary.messages.iter().take(10) {
            eprintln!("      {m}");
        }
    }
}
