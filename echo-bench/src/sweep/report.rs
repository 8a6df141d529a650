//! A sweep's results as text and files: the table printed at the end, the
//! CSV file, the plot written next to it ([`super::plot`]), and the
//! failures the sweep exits with.

use std::fmt::Write as _;

use super::measure::Measured;
use super::plot::plot;
use super::run::Run;
use super::{Kind, Point, SweepOpts};
use crate::server::Touch;

/// zio counters summed and shown per point.
const COUNTERS: [&str; 13] = [
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
    "syscalls_uffd",
    "syscalls_madvise",
    "syscalls_maps",
];

/// Prints the table and how long the sweep took (`secs`), writes
/// `<sweep>[-<tag>].csv` and `.svg` under `o.out`; Err lists the failed
/// runs.
pub(super) fn write(
    o: &SweepOpts,
    pts: &[Point],
    results: &[Measured],
    desc: &str,
    secs: f64,
) -> Result<(), String> {
    print!("{}", table(o, pts, results, desc));
    println!("sweep {} took {:.0} s", o.kind.name(), secs);
    let base = match &o.tag {
        Some(t) => format!("{}-{t}", o.kind.name()),
        None => o.kind.name().to_string(),
    };
    let csv_path = o.out.join(format!("{base}.csv"));
    std::fs::write(&csv_path, csv(o, pts, results))
        .map_err(|e| format!("{}: {e}", csv_path.display()))?;
    let svg_path = o.out.join(format!("{base}.svg"));
    std::fs::write(&svg_path, plot(o, pts, results, desc))
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

/// The without-zio median of point `i`'s 0-copy ceiling (NaN if none).
pub(super) fn ceiling_of(pts: &[Point], res: &[Measured], i: usize) -> f64 {
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
            per_message(m)
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

/// zio's counters per message, summed over the with-zio runs.
fn per_message(m: &Measured) -> String {
    let msgs = m.messages();
    if m.with.is_empty() {
        return "-".into();
    }
    if msgs == 0 {
        return "no messages".into();
    }
    let per = |n: &str| m.counter(n) as f64 / msgs as f64;
    format!(
        "elided {:.0}K/msg, subst {:.0}K/msg, faults {:.1}+{:.1}z/msg, skips {:.2}/msg, \
         syscalls {:.1}/msg",
        per("elided_bytes") / 1024.0,
        per("bytes_substituted") / 1024.0,
        per("faults_missing"),
        per("faults_zero"),
        per("policy_skips"),
        per("syscalls_uffd") + per("syscalls_madvise") + per("syscalls_maps"),
    )
}

fn csv(o: &SweepOpts, pts: &[Point], res: &[Measured]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let head = [
        "sweep",
        "group",
        "point",
        "x",
        "size",
        "copies",
        "server_threads",
        "conns",
        "buffers",
        "touch",
        "reps",
        "without_gbps",
        "with_gbps",
        "ratio",
        "without_max_gbps",
        "with_max_gbps",
        "ceiling_gbps",
        "zio_over_ceiling",
        "without_runs",
        "with_runs",
        "without_p50_us",
        "with_p50_us",
        "without_p99_us",
        "with_p99_us",
        "zio_messages",
    ];
    let tail = [
        "max_other_cpu",
        "max_steal_cpu",
        "disturbed_runs_repeated",
        "disturbed_runs_kept",
        "failures",
    ];
    let _ = w.write_record(head.iter().chain(COUNTERS.iter()).chain(tail.iter()));
    for (i, (p, m)) in pts.iter().zip(res).enumerate() {
        let _ = w.write_record(csv_row(o, p, m, ceiling_of(pts, res, i)));
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// One point's CSV fields; `c` is its ceiling's throughput.
fn csv_row(o: &SweepOpts, p: &Point, m: &Measured, c: f64) -> Vec<String> {
    let (a, b) = (m.med(false), m.med(true));
    let runs = |v: &[Run]| {
        v.iter()
            .map(|r| format!("{:.3}", r.gbps))
            .collect::<Vec<_>>()
            .join(";")
    };
    let f3 = |v: f64| format!("{v:.3}");
    let f1 = |v: f64| format!("{v:.1}");
    let mut row = vec![
        o.kind.name().to_string(),
        p.group.to_string(),
        p.label.replace(',', ";"),
        p.x.to_string(),
        p.size.to_string(),
        p.copies.to_string(),
        p.threads.to_string(),
        p.conns.to_string(),
        o.launch.memory().to_string(),
        touch_name(p.touch).to_string(),
        o.reps.to_string(),
        f3(a),
        f3(b),
        f3(b / a),
        f3(m.max(false)),
        f3(m.max(true)),
        f3(c),
        f3(b / c),
        runs(&m.without),
        runs(&m.with),
        f1(m.med_lat(false, false)),
        f1(m.med_lat(true, false)),
        f1(m.med_lat(false, true)),
        f1(m.med_lat(true, true)),
        m.messages().to_string(),
    ];
    row.extend(COUNTERS.iter().map(|c| m.counter(c).to_string()));
    let worst = |f: fn(&Run) -> f64| m.without.iter().chain(&m.with).map(f).fold(0.0, f64::max);
    row.extend([
        f3(worst(|r| r.foreign)),
        f3(worst(|r| r.steal)),
        m.disturbed.to_string(),
        m.kept_disturbed(o.max_foreign).to_string(),
        m.failures.len().to_string(),
    ]);
    row
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

#[cfg(test)]
mod tests {
    use super::super::points::points;
    use super::*;
    use crate::launch::Launch;
    use crate::pattern::Verify;
    use crate::server::{Buffers, Recv};

    fn opts(kind: Kind) -> SweepOpts {
        SweepOpts {
            kind,
            launch: Launch {
                bin: "echo-bench".into(),
                zio_run: "zio-run".into(),
                pin: None,
                buffers: Buffers::Static,
                allocator: crate::launch::Allocator::Glibc,
                recv: Recv::Read,
                verify: Verify::Sample,
                idle_spin: false,
            },
            reps: 1,
            duration: 1.0,
            warmup: 0.5,
            out: "out".into(),
            quick: true,
            size: None,
            copies: None,
            points: Some(vec!["0".into(), "2".into()]),
            max_foreign: 0.25,
            retries: 0,
            budget_extra: 0.1,
            tag: None,
        }
    }

    /// One run each side: `gbps` without zio, twice that with.
    fn measured(gbps: f64) -> Measured {
        let run = |gbps: f64, messages: u64| Run {
            gbps,
            p50_us: 10.0,
            p99_us: 20.0,
            messages,
            counters: [("elided_bytes".to_string(), 2048 * messages)].into(),
            ..Run::default()
        };
        Measured {
            without: vec![run(gbps, 0)],
            with: vec![run(2.0 * gbps, 100)],
            ..Measured::default()
        }
    }

    #[test]
    fn table_and_csv_columns() {
        let o = opts(Kind::Copies);
        let (pts, desc) = points(&o).unwrap();
        let res = [measured(4.0), measured(1.0)];
        let csv = csv(&o, &pts, &res);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "sweep,group,point,x,size,copies,server_threads,conns,buffers,touch,reps,\
             without_gbps,with_gbps,ratio,without_max_gbps,with_max_gbps,ceiling_gbps,\
             zio_over_ceiling,without_runs,with_runs,without_p50_us,with_p50_us,\
             without_p99_us,with_p99_us,zio_messages,elided_copies,elided_bytes,\
             copied_bytes,bytes_substituted,faults_missing,faults_zero,faults_wp,\
             policy_skips,refused,bytes_dropped,syscalls_uffd,syscalls_madvise,\
             syscalls_maps,max_other_cpu,max_steal_cpu,\
             disturbed_runs_repeated,disturbed_runs_kept,failures"
        );
        assert_eq!(
            lines[2],
            "copies,512K,2,2,524288,2,1,1,static,none,1,1.000,2.000,2.000,1.000,2.000,\
             4.000,0.500,1.000,2.000,10.0,10.0,20.0,20.0,100,0,204800,0,0,0,0,0,0,0,0,\
             0,0,0,0.000,0.000,0,0,0"
        );
        let table = table(&o, &pts, &res, &desc);
        let t: Vec<&str> = table.lines().collect();
        assert_eq!(
            t[1],
            "sweep copies (512K messages, 1 server thread, static buffers); median of 1 \
             rep(s) per side, Gbit/s of echoed payload (one direction)"
        );
        assert_eq!(
            t[4].split_whitespace().collect::<Vec<_>>(),
            [
                "512K",
                "2",
                "1.00",
                "2.00",
                "2.00x",
                "4.00",
                "0.50x",
                "1.00",
                "|",
                "2.00",
                "elided",
                "2K/msg,",
                "subst",
                "0K/msg,",
                "faults",
                "0.0+0.0z/msg,",
                "skips",
                "0.00/msg,",
                "syscalls",
                "0.0/msg"
            ]
        );
    }
}
