//! `echo-bench interleave` end to end: three real echo servers (one under
//! zio through `zio-run`) served in turn by one client, verified echoes,
//! and zio's counters proving every copy of the zio server was elided.

use std::process::Command;

use zio_integration::{echo_bench_path, run, without_zio_env, zio_run_path, TempDir};

#[test]
fn interleave_measures_three_servers_and_zio_elides_every_copy() {
    let dir = TempDir::new("interleave");
    let csv = dir.path().join("il.csv");
    let mut cmd = Command::new(echo_bench_path());
    // zio's defaults (an exported ZIO_THRESHOLD above 64K would elide nothing).
    without_zio_env(&mut cmd)
        .args([
            "interleave",
            "--sizes",
            "64K",
            "--copies",
            "2",
            "--rounds",
            "3",
        ])
        .args(["--slice", "0.2", "--warmup", "0.05", "--verify", "full"])
        .arg("--zio-run")
        .arg(zio_run_path())
        .arg("--csv")
        .arg(&csv);
    let r = run(cmd, false, None);
    r.assert_success("interleave");
    let stdout = r.stdout();
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

    let text = std::fs::read_to_string(&csv).unwrap();
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
    }
}
