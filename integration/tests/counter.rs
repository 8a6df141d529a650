//! `zio_counter`, libzio's exported counter lookup, from a program that
//! finds it with `dlsym` (integration/c/zio_counter.c): -1 before the engine
//! starts and for unknown or null names, real values after a 1 MiB pread and
//! memcpy (one elided copy of 1 MiB) and after one touch of the copy (a
//! missing fault), and the same values as the `ZIO_STATS` summary at exit.

use std::collections::BTreeMap;
use std::process::Command;

use zio_integration::{compile_c, run, TempDir};

/// The program's `label name=value` lines.
fn values(stdout: &str) -> BTreeMap<String, i64> {
    stdout
        .lines()
        .filter_map(|l| {
            let (label, rest) = l.split_once(' ')?;
            let (name, v) = rest.split_once('=')?;
            Some((format!("{label} {name}"), v.parse().ok()?))
        })
        .collect()
}

#[test]
fn zio_counter_reports_the_engine_counters_live() {
    let dir = TempDir::new("counter");
    let bin = compile_c("zio_counter", dir.path());
    let cmd = || {
        let mut c = Command::new(&bin);
        c.arg(dir.path());
        c
    };

    let plain = run(cmd(), false, None);
    plain.assert_success("zio_counter without zio");
    assert_eq!(
        plain.stdout(),
        "absent\n",
        "dlsym finds nothing without zio"
    );

    let z = run(cmd(), true, None);
    z.assert_success("zio_counter under zio");
    let out = z.stdout();
    assert!(out.ends_with("done\n"), "{out}");
    let v = values(&out);
    let get = |k: &str| *v.get(k).unwrap_or_else(|| panic!("no `{k}` in:\n{out}"));
    // Before any input reached the threshold the engine has not started.
    assert_eq!(get("start elided_copies"), -1, "{out}");
    // Started by the 1 MiB pread; nothing elided yet.
    assert_eq!(get("input elided_copies"), 0, "{out}");
    // The page-aligned 1 MiB memcpy was elided whole.
    assert_eq!(get("copied elided_copies"), 1, "{out}");
    assert_eq!(get("copied elided_bytes"), 1 << 20, "{out}");
    assert_eq!(get("copied faults_missing"), 0, "{out}");
    assert_eq!(get("copied no_such_counter"), -1, "{out}");
    assert_eq!(get("copied (null)"), -1, "{out}");
    // Reading one byte of the copy: one missing fault (with fault-around).
    assert_eq!(get("touched faults_missing"), 1, "{out}");
    assert!(get("touched pages_by_fault") >= 1, "{out}");
    // The live values are the summary's.
    for name in ["elided_copies", "elided_bytes", "faults_missing"] {
        let last = ["touched", "copied"]
            .iter()
            .find_map(|l| v.get(&format!("{l} {name}")))
            .unwrap();
        assert_eq!(*last as u64, z.counter(name), "{name}\n{}", z.log);
    }
}
