//! What zio-stat prints: the list of processes, one process's counters
//! (the names of the exit summary), and the per-second rates of a watch,
//! as text or JSON.

use serde_json::{json, Map, Value};
use zio_core::runtime::Mode;
use zio_core::statfile::Reading;

use crate::files;

/// The library's mode, as the exit summary's header words it.
pub fn mode_name(m: u32) -> &'static str {
    const READY: u32 = Mode::Ready as u32;
    const DISABLED: u32 = Mode::Disabled as u32;
    const NO_UFFD: u32 = Mode::NoUserfaultfd as u32;
    const TRANSLATED: u32 = Mode::Translated as u32;
    match m {
        READY => "ready",
        DISABLED => "pass-through (ZIO_ENABLE=0)",
        NO_UFFD => "pass-through (no userfaultfd)",
        TRANSLATED => "pass-through (valgrind)",
        _ => "starting",
    }
}

/// Seconds since the process's zio started.
pub fn uptime_s(r: &Reading) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    now.saturating_sub(r.started_unix_ns) as f64 / 1e9
}

/// An engine counter by name; 0 if the engine never started.
pub fn engine(r: &Reading, name: &str) -> u64 {
    r.engine
        .as_ref()
        .and_then(|(_, e)| e.iter().find(|(n, _)| n == name))
        .map_or(0, |(_, v)| *v)
}

fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// The processes running with zio that the caller may read.
pub fn print_list(rows: &[(u32, Reading)], as_json: bool) {
    if as_json {
        let v: Vec<Value> = rows
            .iter()
            .map(|(pid, r)| {
                json!({
                    "pid": pid,
                    "command": files::command(*pid),
                    "uid": r.uid,
                    "uptime_s": uptime_s(r),
                    "mode": mode_name(r.mode),
                    "elided_bytes": engine(r, "elided_bytes"),
                })
            })
            .collect();
        println!("{}", Value::Array(v));
        return;
    }
    if rows.is_empty() {
        println!("no process running with zio that this user may see");
        return;
    }
    println!(
        "{:>8} {:<10} {:>10} {:>12}  {:<30} COMMAND",
        "PID", "USER", "UPTIME", "ELIDED", "MODE"
    );
    for (pid, r) in rows {
        let user = files::login(r.uid).unwrap_or_else(|| r.uid.to_string());
        println!(
            "{pid:>8} {user:<10} {:>9.0}s {:>12}  {:<30} {}",
            uptime_s(r),
            human_bytes(engine(r, "elided_bytes")),
            mode_name(r.mode),
            files::command(*pid)
        );
    }
}

/// Monotonic clock now, in ns (the clock the engine counters are stamped
/// with).
fn now_ns() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// One process's counters now: the hook table and the engine counters.
pub fn print_counters(pid: u32, r: &Reading, as_json: bool) {
    let age = r
        .engine
        .as_ref()
        .map(|(ns, _)| now_ns().saturating_sub(*ns) as f64 / 1e9);
    if as_json {
        let mut hooks = Map::new();
        for (name, calls, bytes) in &r.hooks {
            hooks.insert(name.clone(), json!({ "calls": calls, "bytes": bytes }));
        }
        let engine = r.engine.as_ref().map(|(_, e)| {
            e.iter()
                .map(|(n, v)| (n.clone(), json!(v)))
                .collect::<Map<String, Value>>()
        });
        let v = json!({
            "pid": pid,
            "command": files::command(pid),
            "uid": r.uid,
            "version": r.version,
            "mode": mode_name(r.mode),
            "uptime_s": uptime_s(r),
            "hooks": hooks,
            "engine": engine,
            "engine_age_s": age,
        });
        println!("{v}");
        return;
    }
    println!(
        "pid {pid} ({}), {}, up {:.1} s, zio {}, {}",
        files::command(pid),
        files::user_name(r.uid),
        uptime_s(r),
        r.version,
        mode_name(r.mode)
    );
    println!("  {:<16} {:>14} {:>18}", "hook", "calls", "bytes");
    for (name, calls, bytes) in r.hooks.iter().filter(|h| h.1 != 0) {
        println!("  {name:<16} {calls:>14} {bytes:>18}");
    }
    match (&r.engine, age) {
        (Some((_, e)), Some(age)) => {
            println!("engine counters (published {age:.2} s ago):");
            for (name, v) in e {
                println!("  {name:<20} {v:>18}");
            }
        }
        _ => println!("engine not started (no input of ZIO_THRESHOLD or more yet)"),
    }
}

/// Rates between two readings of one process.
#[derive(Debug, Default, PartialEq)]
pub struct Rates {
    /// Copy-hook calls per second.
    pub copies: f64,
    /// Copies elided per second.
    pub elided: f64,
    /// MB (10^6 bytes) elided per second.
    pub elided_mb: f64,
    /// MB handed to the kernel from originals per second.
    pub substituted_mb: f64,
    /// Page faults on elided memory per second.
    pub faults: f64,
    /// Copies the policy made for real per second.
    pub skips: f64,
    /// System calls zio made per second.
    pub syscalls: f64,
}

const COPY_HOOKS: &[&str] = &[
    "memcpy",
    "memmove",
    "mempcpy",
    "__memcpy_chk",
    "__memmove_chk",
    "__mempcpy_chk",
];

impl Rates {
    /// From `a` to `b`, `wall_s` seconds apart. The hook counters are
    /// live and go by the wall clock; the engine counters are stamped
    /// when they were published, and go by those stamps.
    pub fn between(a: &Reading, b: &Reading, wall_s: f64) -> Rates {
        let calls = |r: &Reading| -> u64 {
            r.hooks
                .iter()
                .filter(|h| COPY_HOOKS.contains(&h.0.as_str()))
                .map(|h| h.1)
                .sum()
        };
        let per_wall = |d: u64| if wall_s > 0.0 { d as f64 / wall_s } else { 0.0 };
        let stamp = |r: &Reading| r.engine.as_ref().map_or(0, |e| e.0);
        let engine_s = stamp(b).saturating_sub(stamp(a)) as f64 / 1e9;
        let d = |names: &[&str]| -> f64 {
            if engine_s <= 0.0 {
                return 0.0;
            }
            let sum = |r: &Reading| names.iter().map(|n| engine(r, n)).sum::<u64>();
            sum(b).saturating_sub(sum(a)) as f64 / engine_s
        };
        Rates {
            copies: per_wall(calls(b).saturating_sub(calls(a))),
            elided: d(&["elided_copies"]),
            elided_mb: d(&["elided_bytes"]) / 1e6,
            substituted_mb: d(&["bytes_substituted"]) / 1e6,
            faults: d(&["faults_missing", "faults_zero", "faults_wp"]),
            skips: d(&["policy_skips"]),
            syscalls: d(&["syscalls_uffd", "syscalls_madvise", "syscalls_maps"]),
        }
    }
}

/// The column titles of a watch.
pub fn rates_header() -> String {
    format!(
        "{:>8} {:>10} {:>10} {:>12} {:>12} {:>9} {:>9} {:>10}",
        "time",
        "copies/s",
        "elided/s",
        "elided MB/s",
        "subst MB/s",
        "faults/s",
        "skips/s",
        "zio sys/s"
    )
}

/// One line of a watch, `t` seconds in.
pub fn rates_line(t: f64, r: &Rates, as_json: bool) -> String {
    if as_json {
        return json!({
            "t": t,
            "copies_per_s": r.copies,
            "elided_per_s": r.elided,
            "elided_mb_per_s": r.elided_mb,
            "substituted_mb_per_s": r.substituted_mb,
            "faults_per_s": r.faults,
            "policy_skips_per_s": r.skips,
            "syscalls_per_s": r.syscalls,
        })
        .to_string();
    }
    format!(
        "{t:>7.1}s {:>10.0} {:>10.0} {:>12.1} {:>12.1} {:>9.0} {:>9.0} {:>10.0}",
        r.copies, r.elided, r.elided_mb, r.substituted_mb, r.faults, r.skips, r.syscalls
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(stamp_ns: u64, memcpy_calls: u64, engine: &[(&str, u64)]) -> Reading {
        Reading {
            pid: 1,
            uid: 0,
            mode: Mode::Ready as u32,
            version: "0".into(),
            started_unix_ns: 0,
            hooks: vec![("memcpy".into(), memcpy_calls, 0), ("read".into(), 99, 0)],
            engine: Some((
                stamp_ns,
                engine.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
            )),
        }
    }

    #[test]
    fn rates_go_by_the_publication_stamps() {
        let a = reading(1_000_000_000, 10, &[("elided_copies", 5), ("faults_wp", 1)]);
        let b = reading(
            1_500_000_000,
            110,
            &[
                ("elided_copies", 55),
                ("elided_bytes", 2_000_000),
                ("faults_wp", 2),
                ("faults_zero", 3),
            ],
        );
        let r = Rates::between(&a, &b, 2.0);
        assert_eq!(r.copies, 50.0, "hook calls by the wall clock");
        assert_eq!(r.elided, 100.0, "50 in 0.5 s of engine stamps");
        assert_eq!(r.elided_mb, 4.0);
        assert_eq!(r.faults, 8.0);
        assert_eq!(r.syscalls, 0.0);
        let same = Rates::between(&b, &b, 1.0);
        assert_eq!(same, Rates::default(), "nothing new published: no rate");
    }

    #[test]
    fn every_mode_has_a_name() {
        assert_eq!(mode_name(Mode::Ready as u32), "ready");
        assert_eq!(mode_name(Mode::Starting as u32), "starting");
        assert!(mode_name(Mode::Disabled as u32).contains("ZIO_ENABLE=0"));
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }
}
