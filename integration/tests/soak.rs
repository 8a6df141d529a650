//! The soak: random sequences of the hooked calls from several threads,
//! with forks, reallocs, munmaps and SIGALRM, against a plain-copy
//! reference kept by the program itself (integration/c/soak.c), without
//! zio, with zio, and with zio's own resources failing (`ZIO_INJECT`).
//! Every byte compared must match; with injected failures zio says so once
//! per process and goes on copying for real; its records and memory stay
//! within bounds. The figures are printed side by side.
//!
//! Short form in `make test` (`ZIO_SOAK_SECONDS`, 6 s per run by default);
//! the long form is `make soak` (300 s per run).

use std::process::Command;

use zio_integration::{compile_c_with, run, Run, TempDir};

struct Figures {
    operations: u64,
    compared: u64,
    rss_kib: u64,
    mappings: u64,
}

fn figures(out: &str) -> Figures {
    let num = |key: &str| -> u64 {
        let at = out
            .find(key)
            .unwrap_or_else(|| panic!("no {key:?} in {out}"))
            + key.len();
        out[at..]
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    Figures {
        operations: num("operations"),
        compared: num("bytes compared"),
        rss_kib: num("peak rss"),
        mappings: num("peak mappings"),
    }
}

/// The largest value one process reported for an engine counter.
fn per_process_max(r: &Run, name: &str) -> u64 {
    let values = r.stats.engine.values().filter_map(|m| m.get(name));
    values.copied().max().unwrap_or(0)
}

fn soak(dir: &TempDir, zio: bool, env: &[(&str, &str)]) -> (Run, Figures) {
    let bin = compile_c_with("soak", dir.path(), &["-pthread"]);
    let secs = std::env::var("ZIO_SOAK_SECONDS").unwrap_or_else(|_| "6".into());
    let limit = (secs.parse::<u64>().unwrap_or(6) * 3 + 60).to_string();
    let mut c = Command::new("timeout");
    c.arg(&limit)
        .arg(&bin)
        .arg(dir.path())
        .arg(&secs)
        .arg("3")
        .arg("11");
    for (k, v) in env {
        c.env(k, v);
    }
    let r = run(c, zio, None);
    r.assert_success(&format!("soak (zio: {zio}, {env:?})"));
    let f = figures(&r.stdout());
    assert!(r.stdout().contains("mismatches 0"), "{}", r.stdout());
    (r, f)
}

#[test]
fn soak_with_and_without_zio_and_with_zios_resources_failing() {
    let dir = TempDir::new("soak");
    let (_, plain) = soak(&dir, false, &[]);
    // Every copy elided however much it is touched: the most work for zio.
    let (z, with) = soak(&dir, true, &[("ZIO_FAULT_RATIO", "1")]);
    let (i, injected) = soak(
        &dir,
        true,
        &[("ZIO_FAULT_RATIO", "1"), ("ZIO_INJECT", "300")],
    );
    eprintln!("                 operations  GB compared  peak RSS MiB  peak mappings");
    for (name, f) in [
        ("without zio", &plain),
        ("zio", &with),
        ("zio, injected", &injected),
    ] {
        eprintln!(
            "{name:<16} {:>10}  {:>11.1}  {:>12.1}  {:>13}",
            f.operations,
            f.compared as f64 / 1e9,
            f.rss_kib as f64 / 1024.0,
            f.mappings
        );
    }
    for (what, r) in [("zio", &z), ("zio, injected", &i)] {
        eprintln!(
            "{what}: elided_copies {}, faults_missing {}, pages_by_fork {}, peak_records {} (max), vmas_registered {} (max), quarantined_total {}",
            r.counter("elided_copies"),
            r.counter("faults_missing"),
            r.counter("pages_by_fork"),
            per_process_max(r, "peak_records"),
            per_process_max(r, "vmas_registered"),
            r.counter("quarantined_total"),
        );
    }
    assert!(z.counter("elided_copies") >= 100, "{}", z.log);
    assert!(i.counter("elided_copies") >= 1, "{}", i.log);
    // Within the configured bounds (ZIO_MAX_RECORDS, twice ZIO_QUARANTINE
    // of zio's own memory beside the program's, a few mappings per
    // registration).
    for r in [&z, &i] {
        assert!(per_process_max(r, "peak_records") <= 16384);
    }
    for f in [&with, &injected] {
        assert!(
            f.rss_kib <= plain.rss_kib + 2 * 64 * 1024 + 64 * 1024,
            "peak RSS {} KiB against {} without zio",
            f.rss_kib,
            plain.rss_kib
        );
        assert!(
            f.mappings <= plain.mappings + 4 * 1024,
            "{} mappings",
            f.mappings
        );
    }
    // Injected failures: said once per process that met one, never more.
    let said: Vec<&str> = i
        .log
        .lines()
        .filter(|l| l.contains("resources ran out"))
        .collect();
    assert!(!said.is_empty(), "no failure was injected:\n{}", i.log);
    let mut pids: Vec<&str> = said.iter().map(|l| l.split(']').next().unwrap()).collect();
    pids.sort();
    let n = pids.len();
    pids.dedup();
    assert_eq!(
        pids.len(),
        n,
        "said more than once in a process:\n{}",
        said.join("\n")
    );
    let errors: Vec<&str> = i.log.lines().filter(|l| l.contains(": error: ")).collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}
