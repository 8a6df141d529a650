//! `echo-bench stack`'s files: every run's MB/s as CSV, and a plot of the
//! modes' MB/s and the bridge's ratios against message size.

use super::{SizeRuns, Stack, StackOpts};
use crate::median::median;
use crate::svg::{self, Panel, Series, XAxis, COLORS};

/// Goal 9's floor for the iceoryx2 pipeline with the bridge, as a share of
/// the 1-copy pipeline (drawn as a reference line).
const IOX_FLOOR: f64 = 0.95;

/// The CSV of every run: one row per (size, round, mode).
pub(super) fn csv(stack: Stack, names: &[&str], all: &[SizeRuns]) -> Result<String, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| format!("CSV: {e}");
    w.write_record(["stack", "size", "bytes", "round", "mode", "mbs"])
        .map_err(err)?;
    let stack = format!("{stack:?}").to_lowercase();
    for runs in all {
        for (mode, v) in names.iter().zip(&runs.mbs) {
            for (round, mbs) in v.iter().enumerate() {
                w.write_record([
                    stack.as_str(),
                    &crate::args::fmt_size(runs.size),
                    &runs.size.to_string(),
                    &round.to_string(),
                    mode,
                    &format!("{mbs:.1}"),
                ])
                .map_err(err)?;
            }
        }
    }
    let bytes = w.into_inner().map_err(|e| format!("CSV: {e}"))?;
    String::from_utf8(bytes).map_err(|e| format!("CSV: {e}"))
}

/// The colour and dash of mode `name` (the bridge as zio is drawn in the
/// sweeps, the 1-copy ceiling as their 0-copy line).
fn style(name: &str) -> (&'static str, bool) {
    match name {
        "zio+bridge" => (COLORS[0], false),
        "without zio" => (COLORS[1], false),
        "zio" => (COLORS[5], false),
        _ => (COLORS[2], true),
    }
}

/// A dashed reference line at `y` over `n` categories.
fn level(name: &str, y: f64, color: &'static str, n: usize) -> Series {
    Series {
        name: name.into(),
        color,
        dashed: true,
        markers: false,
        points: (0..n).map(|i| (i as f64, y)).collect(),
    }
}

/// Two panels: each mode's median MB/s per size, and the bridge's MB/s over
/// each other mode's (the median of the rounds' ratios).
pub(super) fn svg(o: &StackOpts, names: &[&str], all: &[SizeRuns]) -> String {
    let cats: Vec<String> = all.iter().map(|r| crate::args::fmt_size(r.size)).collect();
    let n = cats.len();
    let sub = format!(
        "{} copies after the first; {} round{} of {} MiB per run, each mode once per round",
        o.copies,
        o.rounds,
        if o.rounds == 1 { "" } else { "s" },
        o.bytes >> 20
    );
    let what = match o.stack {
        Stack::Iceoryx2 => "iceoryx2 pipeline (source -> echo -> sink)",
        Stack::Smoltcp => "smoltcp echo (Loopback device)",
    };
    let last = names.len() - 1;
    let modes = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let (color, dashed) = style(name);
            Series {
                name: (*name).into(),
                color,
                dashed,
                markers: true,
                points: all
                    .iter()
                    .enumerate()
                    .map(|(k, r)| (k as f64, median(&r.mbs[i])))
                    .collect(),
            }
        })
        .collect();
    let mut ratios: Vec<Series> = names[..last]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let (color, _) = style(name);
            Series {
                name: format!("over {name}"),
                color,
                dashed: false,
                markers: true,
                points: all
                    .iter()
                    .enumerate()
                    .map(|(k, r)| (k as f64, r.ratio(i).0))
                    .collect(),
            }
        })
        .collect();
    ratios.push(level("1.0 (no change)", 1.0, COLORS[2], n));
    if o.stack == Stack::Iceoryx2 {
        ratios.push(level("0.95 (goal over 1 copy)", IOX_FLOOR, COLORS[4], n));
    }
    svg::render(&[
        Panel {
            title: format!("{what}: throughput per mode"),
            subtitle: sub.clone(),
            xlabel: "message size".into(),
            ylabel: "MB/s (payload)".into(),
            x: XAxis::Categories(cats.clone()),
            series: modes,
        },
        Panel {
            title: "zio+bridge over each other mode".into(),
            subtitle: sub,
            xlabel: "message size".into(),
            ylabel: "throughput ratio (median of rounds)".into(),
            x: XAxis::Categories(cats),
            series: ratios,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs() -> Vec<SizeRuns> {
        vec![
            SizeRuns {
                size: 64 << 10,
                mbs: vec![vec![100.0, 110.0], vec![50.0, 55.0], vec![90.0, 99.0]],
            },
            SizeRuns {
                size: 1 << 20,
                mbs: vec![vec![80.0, 80.0], vec![40.0, 40.0], vec![80.0, 88.0]],
            },
        ]
    }

    #[test]
    fn csv_has_a_row_per_run() {
        let names = ["without zio", "zio", "zio+bridge"];
        let text = csv(Stack::Smoltcp, &names, &runs()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "stack,size,bytes,round,mode,mbs");
        assert_eq!(lines.len(), 1 + 2 * 3 * 2);
        assert_eq!(lines[1], "smoltcp,64K,65536,0,without zio,100.0");
        assert_eq!(lines[12], "smoltcp,1M,1048576,1,zio+bridge,88.0");
    }

    #[test]
    fn ratio_is_the_bridge_over_a_mode_per_round() {
        let r = &runs()[1];
        assert!(
            (r.ratio(1).0 - 2.1).abs() < 1e-9,
            "median of 80/40 and 88/40"
        );
        assert_eq!(r.ratio(2).0, 1.0, "the bridge over itself");
    }
}
