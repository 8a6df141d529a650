//! `echo-bench interleave` end to end: three real echo servers (one under
//! zio through `zio-run`), or four with a second ceiling, served in turn by
//! one client, verified echoes, and zio's counters proving every copy of
//! the zio server was elided.

use std::process::Command;

use zio_integration::{echo_bench_path, run, without_zio_env, zio_run_path, TempDir};

/// Runs `echo-bench interleave` at 64 KiB × 2 copies for `rounds` rounds
/// with `extra` arguments; its stdout and CSV.
fn interleave(rounds: usize, extra: &[&str]) -> (String, String) {
    interleave_at("64K", rounds, extra)
}

/// As [`interleave`] at messages of `size`.
fn interleave_at(size: &str, rounds: usize, extra: &[&str]) -> (String, String) {
    let dir = TempDir::new("interleave");
    let csv = dir.path().join("il.csv");
    let mut cmd = Command::new(echo_bench_path());
    // zio's defaults (an exported ZIO_THRESHOLD above 64K would elide nothing).
    without_zio_env(&mut cmd)
        .args(["interleave", "--sizes", size, "--copies", "2", "--rounds"])
        .arg(rounds.to_string())
        .args(["--slice", "0.2", "--warmup", "0.05", "--verify", "full"])
        .args(extra)
        .arg("--zio-run")
        .arg(zio_run_path())
        .arg("--csv")
        .arg(&csv);
    let r = run(cmd, false, None);
    r.assert_success("interleave");
    (r.stdout(), std::fs::read_to_string(&csv).unwrap())
}

#[test]
fn interleave_measures_three_servers_and_zio_elides_every_copy() {
    let (stdout, text) = interleave(3, &[]);
    // size copies 0-copy w/o with, three ratios with their (lo-hi),
    // elided/msg skips/msg cpu...
    let row: Vec<&str> = stdout
        .lines()
        .find(|l| l.starts_with("64K "))
        .unwrap_or_else(|| panic!("no 64K row in\n{stdout}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[1], "2", "{row:?}");
    for g in &row[2..5] {
        assert!(g.parse::<f64>().unwrap() > 0.0, "{row:?}");
    }
    assert_eq!(row[12], "0.00", "no policy skips: {row:?}");
    assert!(
        !stdout.contains('|'),
        "no fourth server asked for: {stdout}"
    );

    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 3, "{text}");
    for l in &lines[1..] {
        // size,copies,run,round,gbps_0copy,gbps_without,gbps_with,elided_bytes_per_msg,...
        let f: Vec<&str> = l.split(',').collect();
        assert_eq!(&f[..3], ["65536", "2", "0"], "{l}");
        for g in &f[4..7] {
            assert!(g.parse::<f64>().unwrap() > 0.0, "{l}");
        }
        // Both copies of (nearly) every message elided, 128 KiB per
        // message: the first messages of the run, before anything is
        // tracked, may be copied for real.
        let elided: f64 = f[7].parse().unwrap();
        assert!(elided >= 0.99 * 131072.0, "copies not elided: {l}");
        assert_eq!(f[9], "", "no fourth server: {l}");
    }
}

/// `--ceiling-inputs 2` adds a fourth server (0 copies, two input buffers
/// in turn) to every round; its Gbit/s, zio's ratio to it and its CPU time
/// follow the usual columns, and the CSV has its Gbit/s per round.
#[test]
fn interleave_with_a_second_ceiling_measures_four_servers() {
    let (stdout, text) = interleave(2, &["--ceiling-inputs", "2"]);
    assert!(
        stdout.contains("| 0-copy with 2 input buffers"),
        "header names the fourth server: {stdout}"
    );
    let row = stdout
        .lines()
        .find(|l| l.starts_with("64K "))
        .unwrap_or_else(|| panic!("no 64K row in\n{stdout}"));
    // "| Gbit/s, ratio (lo-hi), CPU us/msg"
    let kept: Vec<&str> = row
        .split_once(" | ")
        .unwrap_or_else(|| panic!("no fourth server's columns: {row}"))
        .1
        .split(", ")
        .collect();
    assert_eq!(kept.len(), 3, "{row}");
    for v in [kept[0], kept[1].split(' ').next().unwrap(), kept[2]] {
        assert!(v.parse::<f64>().unwrap() > 0.0, "{row}");
    }
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 2, "{text}");
    assert!(
        lines[0].ends_with(",gbps_0copy_more_inputs,syscalls_per_msg"),
        "{text}"
    );
    for l in &lines[1..] {
        let f: Vec<&str> = l.split(',').collect();
        assert!(f[9].parse::<f64>().unwrap() > 0.0, "{l}");
        assert!(f[7].parse::<f64>().unwrap() >= 0.99 * 131072.0, "{l}");
    }
}

/// The chain of fresh allocations real servers make (`--buffers chain`),
/// under glibc and under jemalloc (preloaded after libzio.so by zio-run):
/// every echo verified, and (nearly) every copy of the zio server elided.
/// (256 KiB: a 64 KiB heap chunk is not page-aligned, so its whole pages
/// are fewer than the threshold.)
#[test]
fn chain_buffers_under_either_allocator_are_elided_and_verified() {
    for alloc in ["glibc", "jemalloc"] {
        let (stdout, text) =
            interleave_at("256K", 3, &["--buffers", "chain", "--allocator", alloc]);
        let named = if alloc == "glibc" {
            "chain buffers".to_string()
        } else {
            format!("chain ({alloc}) buffers")
        };
        assert!(stdout.contains(&named), "{stdout}");
        assert_eq!(text.lines().count(), 1 + 3, "{text}");
        for l in text.lines().skip(1) {
            let f: Vec<&str> = l.split(',').collect();
            let elided: f64 = f[7].parse().unwrap();
            // Two copies of 256 KiB, less the partial pages at their ends.
            assert!(elided >= 0.95 * 524288.0, "{alloc}: copies not elided: {l}");
        }
    }
}
