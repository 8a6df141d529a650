//! The points of each sweep: its defaults (fewer with `--quick`), the
//! `--size`, `--copies` and `--points` overrides, and the line that
//! describes the configuration in the table and the plot.

use super::{Kind, Point, SweepOpts};
use crate::args::{fmt_size, parse_list_with, parse_size};
use crate::server::Touch;

/// The points of sweep `o.kind` and their description.
pub(super) fn points(o: &SweepOpts) -> Result<(Vec<Point>, String), String> {
    match o.kind {
        Kind::Copies => copies(o),
        Kind::Size => size(o),
        Kind::Threads => threads(o),
        Kind::Faults => faults(o),
        Kind::Touch => touch(o),
    }
}

/// A point with one server thread, one connection and nothing read.
fn base(group: String, label: String, x: f64, size: usize, copies: usize) -> Point {
    Point {
        group,
        label,
        x,
        size,
        copies,
        threads: 1,
        conns: 1,
        touch: Touch::None,
        ceiling: None,
    }
}

fn parse_list<T: std::str::FromStr>(v: &[String]) -> Result<Vec<T>, String> {
    parse_list_with(v, "points", |s| s.parse().ok())
}

fn parse_sizes(v: &[String]) -> Result<Vec<usize>, String> {
    parse_list_with(v, "points", parse_size)
}

fn k512() -> usize {
    512 << 10
}

/// "y" or "ies", for "N cop..." in descriptions.
fn cop(copies: usize) -> &'static str {
    if copies == 1 {
        "y"
    } else {
        "ies"
    }
}

/// Copy counts at one size, each against the 0-copy point's ceiling.
fn copies(o: &SweepOpts) -> Result<(Vec<Point>, String), String> {
    let size = o.size.unwrap_or_else(k512);
    let mut list: Vec<usize> = match &o.points {
        Some(p) => parse_list(p)?,
        None if o.quick => vec![0, 1, 5, 12],
        None => vec![0, 1, 2, 3, 5, 8, 12],
    };
    if !list.contains(&0) {
        list.insert(0, 0); // the 0-copy ceiling
    }
    let zero = list.iter().position(|&c| c == 0);
    let pts = list
        .iter()
        .map(|&c| Point {
            ceiling: zero,
            ..base(fmt_size(size), format!("{c}"), c as f64, size, c)
        })
        .collect();
    let desc = format!(
        "{} messages, 1 server thread, {} buffers",
        fmt_size(size),
        o.launch.memory()
    );
    Ok((pts, desc))
}

/// Message sizes at N copies, each with a 0-copy point as its ceiling.
fn size(o: &SweepOpts) -> Result<(Vec<Point>, String), String> {
    let copies = o.copies.unwrap_or(5);
    let sizes: Vec<usize> = match (&o.points, o.size) {
        (Some(p), _) => parse_sizes(p)?,
        (None, Some(s)) => vec![s],
        (None, None) if o.quick => vec![16 << 10, 64 << 10, 512 << 10],
        (None, None) => (13..=20).map(|b| 1usize << b).collect(),
    };
    let mut pts = Vec::new();
    for (i, &s) in sizes.iter().enumerate() {
        let ci = pts.len();
        pts.push(base(
            format!("{copies} copies"),
            fmt_size(s),
            i as f64,
            s,
            copies,
        ));
        if copies != 0 {
            let zi = pts.len();
            pts.push(base("0 copies".into(), fmt_size(s), i as f64, s, 0));
            pts[ci].ceiling = Some(zi);
            pts[zi].ceiling = Some(zi);
        }
    }
    let desc = format!(
        "{copies} copies and 0 copies, 1 server thread, {} buffers",
        o.launch.memory()
    );
    Ok((pts, desc))
}

/// `--points` of the threads sweep: `T/C` (threads / connections) or `N`
/// for both.
fn thread_pairs(p: &[String]) -> Result<Vec<(usize, usize)>, String> {
    p.iter()
        .map(|s| {
            let (t, c) = s.split_once('/').unwrap_or((s, s));
            Ok((
                t.trim()
                    .parse()
                    .map_err(|_| format!("bad threads in --points: {s:?}"))?,
                c.trim()
                    .parse()
                    .map_err(|_| format!("bad conns in --points: {s:?}"))?,
            ))
        })
        .collect()
}

/// Server threads and client connections.
fn threads(o: &SweepOpts) -> Result<(Vec<Point>, String), String> {
    let size = o.size.unwrap_or_else(k512);
    let copies = o.copies.unwrap_or(1);
    let list: Vec<(usize, usize)> = match &o.points {
        Some(p) => thread_pairs(p)?,
        None if o.quick => vec![(1, 1), (2, 2)],
        None => vec![(1, 1), (2, 2), (1, 4), (2, 4)],
    };
    let pts = list
        .iter()
        .enumerate()
        .map(|(i, &(t, c))| Point {
            threads: t,
            conns: c,
            ..base(
                fmt_size(size),
                format!("{t} thr / {c} conn{}", if c == 1 { "" } else { "s" }),
                i as f64,
                size,
                copies,
            )
        })
        .collect();
    let desc = format!(
        "{} messages, {copies} cop{}, {} buffers",
        fmt_size(size),
        cop(copies),
        o.launch.memory()
    );
    Ok((pts, desc))
}

/// Pages of the last copy (or of the reused input) read per message.
fn faults(o: &SweepOpts) -> Result<(Vec<Point>, String), String> {
    let size = o.size.unwrap_or_else(k512);
    let copies = o.copies.unwrap_or(0);
    let list: Vec<usize> = match &o.points {
        Some(p) => parse_list(p)?,
        None if o.quick => vec![0, 4, 32, 128],
        None => vec![0, 1, 2, 4, 8, 16, 32, 64, 128],
    };
    let pts = list
        .iter()
        .enumerate()
        .map(|(i, &k)| Point {
            touch: if k == 0 { Touch::None } else { Touch::Pages(k) },
            ..base(fmt_size(size), k.to_string(), i as f64, size, copies)
        })
        .collect();
    let desc = format!(
        "{} messages, {copies} cop{}, pages of the {} touched, {} buffers",
        fmt_size(size),
        cop(copies),
        if copies == 0 {
            "reused input buffer"
        } else {
            "last copy"
        },
        o.launch.memory()
    );
    Ok((pts, desc))
}

/// Fractions of the last copy read, one series per message size.
fn touch(o: &SweepOpts) -> Result<(Vec<Point>, String), String> {
    let copies = o.copies.unwrap_or(1);
    let sizes: Vec<usize> = match o.size {
        Some(s) => vec![s],
        None if o.quick => vec![k512()],
        None => vec![k512(), 16 << 10],
    };
    let list: Vec<f64> = match &o.points {
        Some(p) => parse_list(p)?,
        None if o.quick => vec![0.0, 0.03, 0.25, 1.0],
        None => vec![0.0, 0.01, 0.03, 0.06, 0.1, 0.25, 0.5, 1.0],
    };
    let mut pts = Vec::new();
    for &s in &sizes {
        for (i, &f) in list.iter().enumerate() {
            pts.push(Point {
                touch: if f == 0.0 {
                    Touch::None
                } else {
                    Touch::Fraction(f)
                },
                ..base(fmt_size(s), format!("{f}"), i as f64, s, copies)
            });
        }
    }
    let desc = format!(
        "{copies} cop{}, a fraction of the last copy read before the reply, {} buffers",
        cop(copies),
        o.launch.memory()
    );
    Ok((pts, desc))
}
