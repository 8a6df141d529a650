//! Hand-written SVG line charts: axes with ticks and labels, one polyline
//! with markers per series, a legend, a title; several panels side by side.

use std::fmt::Write;

/// The x axis of a panel.
#[derive(Clone, Debug)]
pub enum XAxis {
    /// Numeric, with ticks at the given values.
    Linear {
        /// The tick values, which also give the axis's range.
        ticks: Vec<f64>,
    },
    /// Equally spaced categories; series x values are indices.
    Categories(Vec<String>),
}

/// One line of a panel.
#[derive(Clone, Debug)]
pub struct Series {
    /// Its legend entry.
    pub name: String,
    /// Its colour (one of [`COLORS`]).
    pub color: &'static str,
    /// Dashed rather than solid.
    pub dashed: bool,
    /// Draw markers at the points (not for reference lines).
    pub markers: bool,
    /// (x, y); NaN y values (failed points) break the line.
    pub points: Vec<(f64, f64)>,
}

/// One chart: titles, axes and series.
#[derive(Clone, Debug)]
pub struct Panel {
    /// The title line.
    pub title: String,
    /// A second, smaller title line (the configuration).
    pub subtitle: String,
    /// The x axis's label.
    pub xlabel: String,
    /// The y axis's label.
    pub ylabel: String,
    /// The x axis.
    pub x: XAxis,
    /// The lines, in legend order.
    pub series: Vec<Series>,
}

const W: f64 = 640.0;
const H: f64 = 480.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 116.0;
const BOTTOM: f64 = 64.0;

/// The series colours, in the order the plots use them.
pub const COLORS: [&str; 6] = [
    "#d62728", "#1f77b4", "#555555", "#2ca02c", "#9467bd", "#ff7f0e",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" tick step for a range of `span` with about `n` ticks.
fn nice_step(span: f64, n: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / n;
    let mag = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * mag >= raw {
            return m * mag;
        }
    }
    10.0 * mag
}

/// A tick label without trailing zeros: 0, 0.25, 12.
fn fmt_num(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn marker(out: &mut String, i: usize, x: f64, y: f64, color: &str) {
    let r = 4.5;
    match i % 4 {
        0 => {
            let _ = write!(
                out,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="{r}" fill="{color}"/>"#
            );
        }
        1 => {
            let _ = write!(
                out,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"/>"#,
                x - r,
                y - r,
                2.0 * r,
                2.0 * r
            );
        }
        2 => {
            let _ = write!(
                out,
                r#"<polygon points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" fill="{color}"/>"#,
                x,
                y - r * 1.2,
                x - r * 1.1,
                y + r * 0.8,
                x + r * 1.1,
                y + r * 0.8
            );
        }
        _ => {
            let _ = write!(
                out,
                r#"<polygon points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" fill="white" stroke="{color}" stroke-width="2"/>"#,
                x,
                y - r * 1.3,
                x + r * 1.3,
                y,
                x,
                y + r * 1.3,
                x - r * 1.3,
                y
            );
        }
    }
}

/// Where a panel's plot area is and how data maps onto it.
struct Frame {
    /// The panel's top left corner.
    ox: f64,
    oy: f64,
    /// The plot area's top left corner, width and height.
    x0: f64,
    y0: f64,
    pw: f64,
    ph: f64,
    /// The x range shown.
    xmin: f64,
    xmax: f64,
    /// The y range shown is 0 to `ymax`, with grid lines every `ystep`.
    ymax: f64,
    ystep: f64,
}

impl Frame {
    /// The frame of panel `p` at `(ox, oy)`, and its x ticks with labels.
    fn of(p: &Panel, ox: f64, oy: f64) -> (Frame, Vec<(f64, String)>) {
        let (xmin, xmax, xticks): (f64, f64, Vec<(f64, String)>) = match &p.x {
            XAxis::Linear { ticks } => {
                let lo = ticks.iter().cloned().fold(f64::INFINITY, f64::min);
                let hi = ticks.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let (lo, hi) = if lo < hi {
                    (lo, hi)
                } else {
                    (lo - 1.0, lo + 1.0)
                };
                (lo, hi, ticks.iter().map(|&t| (t, fmt_num(t))).collect())
            }
            XAxis::Categories(c) => (
                -0.5,
                c.len() as f64 - 0.5,
                c.iter()
                    .enumerate()
                    .map(|(i, s)| (i as f64, s.clone()))
                    .collect(),
            ),
        };
        let pad = if matches!(p.x, XAxis::Linear { .. }) {
            (xmax - xmin) * 0.04
        } else {
            0.0
        };
        // y from 0 to a nice maximum above the data.
        let ymax_data = p
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|&(_, y)| y))
            .filter(|y| y.is_finite())
            .fold(0.0, f64::max);
        let ystep = nice_step(ymax_data.max(1e-9) * 1.15, 6.0);
        let frame = Frame {
            ox,
            oy,
            x0: ox + LEFT,
            y0: oy + TOP,
            pw: W - LEFT - RIGHT,
            ph: H - TOP - BOTTOM,
            xmin: xmin - pad,
            xmax: xmax + pad,
            ymax: (ymax_data * 1.15 / ystep).ceil().max(1.0) * ystep,
            ystep,
        };
        (frame, xticks)
    }

    fn sx(&self, x: f64) -> f64 {
        self.x0 + (x - self.xmin) / (self.xmax - self.xmin) * self.pw
    }

    fn sy(&self, y: f64) -> f64 {
        self.y0 + self.ph - y / self.ymax * self.ph
    }
}

/// The panel's background, title and subtitle: on one line, or two split
/// at the "; " nearest its middle if it is too long.
fn titles(out: &mut String, p: &Panel, f: &Frame) {
    let (ox, oy) = (f.ox, f.oy);
    let _ = write!(
        out,
        r##"<g font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12"><rect x="{ox}" y="{oy}" width="{W}" height="{H}" fill="white"/>"##
    );
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
        ox + W / 2.0,
        oy + 22.0,
        esc(&p.title)
    );
    let lines: Vec<String> = if p.subtitle.chars().count() > 92 {
        let mid = p.subtitle.len() / 2;
        let cut = p
            .subtitle
            .match_indices("; ")
            .map(|(i, _)| i)
            .min_by_key(|&i| i.abs_diff(mid));
        match cut {
            Some(i) => vec![p.subtitle[..i].to_string(), p.subtitle[i + 2..].to_string()],
            None => vec![p.subtitle.clone()],
        }
    } else {
        vec![p.subtitle.clone()]
    };
    for (k, line) in lines.iter().enumerate() {
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12" fill="#333">{}</text>"##,
            ox + W / 2.0,
            oy + 40.0 + 15.0 * k as f64,
            esc(line)
        );
    }
}

/// The grid, the ticks of both axes, the axes and their labels.
fn axes(out: &mut String, p: &Panel, f: &Frame, xticks: &[(f64, String)]) {
    let (x0, y0, pw, ph) = (f.x0, f.y0, f.pw, f.ph);
    let mut v = 0.0;
    while v <= f.ymax + f.ystep * 1e-6 {
        let y = f.sy(v);
        let _ = write!(
            out,
            r##"<line x1="{x0:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e3e3e3"/><line x1="{:.1}" y1="{y:.1}" x2="{x0:.1}" y2="{y:.1}" stroke="black"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            x0 + pw,
            x0 - 5.0,
            x0 - 8.0,
            y + 4.0,
            fmt_num(v)
        );
        v += f.ystep;
    }
    for (t, label) in xticks {
        let x = f.sx(*t);
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" y1="{y0:.1}" x2="{x:.1}" y2="{:.1}" stroke="#f0f0f0"/><line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="black"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            y0 + ph,
            y0 + ph,
            y0 + ph + 5.0,
            y0 + ph + 19.0,
            esc(label)
        );
    }
    let _ = write!(
        out,
        r#"<line x1="{x0:.1}" y1="{y0:.1}" x2="{x0:.1}" y2="{:.1}" stroke="black"/><line x1="{x0:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/>"#,
        y0 + ph,
        y0 + ph,
        x0 + pw,
        y0 + ph
    );
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="13">{}</text>"#,
        x0 + pw / 2.0,
        f.oy + H - 18.0,
        esc(&p.xlabel)
    );
    let (lx, ly) = (f.ox + 18.0, y0 + ph / 2.0);
    let _ = write!(
        out,
        r#"<text x="{lx:.1}" y="{ly:.1}" text-anchor="middle" font-size="13" transform="rotate(-90 {lx:.1} {ly:.1})">{}</text>"#,
        esc(&p.ylabel)
    );
}

/// The stroke attribute of a dashed series (empty for a solid one).
fn dash(s: &Series) -> &'static str {
    if s.dashed {
        r#" stroke-dasharray="7,4""#
    } else {
        ""
    }
}

/// Each series as polylines (broken at its NaN points) with markers.
fn lines(out: &mut String, p: &Panel, f: &Frame) {
    for (i, s) in p.series.iter().enumerate() {
        let dash = dash(s);
        let mut seg: Vec<String> = Vec::new();
        let flush = |seg: &mut Vec<String>, out: &mut String| {
            if seg.len() > 1 {
                let _ = write!(
                    out,
                    r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2.2"{dash}/>"#,
                    seg.join(" "),
                    s.color
                );
            }
            seg.clear();
        };
        for &(x, y) in &s.points {
            if y.is_finite() {
                seg.push(format!("{:.1},{:.1}", f.sx(x), f.sy(y)));
            } else {
                flush(&mut seg, out);
            }
        }
        flush(&mut seg, out);
        for &(x, y) in &s.points {
            if y.is_finite() && s.markers {
                marker(out, i, f.sx(x), f.sy(y), s.color);
            }
        }
    }
}

/// The legend: entries in rows between the titles and the plot.
fn legend(out: &mut String, p: &Panel, f: &Frame) {
    let mut lx = f.x0;
    let mut ly = f.oy + 78.0;
    for (i, s) in p.series.iter().enumerate() {
        let w = s.name.chars().count() as f64 * 6.9 + 52.0;
        if lx + w > f.x0 + f.pw && lx > f.x0 {
            lx = f.x0;
            ly += 19.0;
        }
        let _ = write!(
            out,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{}" stroke-width="2.2"{}/>"#,
            lx,
            lx + 30.0,
            s.color,
            dash(s)
        );
        if s.markers {
            marker(out, i, lx + 15.0, ly, s.color);
        }
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 36.0,
            ly + 4.0,
            esc(&s.name)
        );
        lx += w;
    }
}

/// One panel at `(ox, oy)`.
fn panel(out: &mut String, p: &Panel, ox: f64, oy: f64) {
    let (f, xticks) = Frame::of(p, ox, oy);
    titles(out, p, &f);
    axes(out, p, &f, &xticks);
    lines(out, p, &f);
    legend(out, p, &f);
    out.push_str("</g>");
}

/// An SVG document with `panels` side by side.
pub fn render(panels: &[Panel]) -> String {
    let n = panels.len().max(1) as f64;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{:.0}" height="{H:.0}" viewBox="0 0 {:.0} {H:.0}">
"#,
        W * n,
        W * n
    );
    for (i, p) in panels.iter().enumerate() {
        panel(&mut out, p, W * i as f64, 0.0);
        out.push('\n');
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_series_and_escapes() {
        let p = Panel {
            title: "a < b & c".into(),
            subtitle: "sub".into(),
            xlabel: "copies".into(),
            ylabel: "Gbit/s".into(),
            x: XAxis::Linear {
                ticks: vec![0.0, 1.0, 5.0, 12.0],
            },
            series: vec![Series {
                name: "with zio".into(),
                color: COLORS[0],
                dashed: false,
                markers: true,
                points: vec![(0.0, 10.0), (1.0, f64::NAN), (5.0, 8.0), (12.0, 7.5)],
            }],
        };
        let s = render(&[p]);
        assert!(s.contains("a &lt; b &amp; c"));
        assert!(s.contains("<polyline"));
        assert!(s.ends_with("</svg>\n"));
        assert_eq!(nice_step(13.0, 6.0), 2.5);
    }
}
