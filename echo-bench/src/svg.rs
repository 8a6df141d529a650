//! Line charts drawn with plotters' SVG backend: axes with ticks and
//! labels, one line with markers per series, a legend, a title; several
//! panels side by side.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::{Drawable, PointCollection};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

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

const W: u32 = 640;
const H: u32 = 480;
/// Height of the titles and the legend above a panel's chart.
const TITLES: u32 = 96;
/// Where the plot area starts, from a panel's left edge.
const LEFT: i32 = 72;
const FONT: &str = "sans-serif";

/// The series colours, in the order the plots use them.
pub const COLORS: [&str; 6] = [
    "#d62728", "#1f77b4", "#555555", "#2ca02c", "#9467bd", "#ff7f0e",
];

/// `#rrggbb` as a colour (black for anything else).
fn rgb(hex: &str) -> RGBColor {
    let v = u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap_or(0);
    RGBColor((v >> 16) as u8, (v >> 8) as u8, v as u8)
}

/// A tick label without trailing zeros: 0, 0.25, 12.
fn fmt_num(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// The subtitle in one line, or two split at the "; " nearest its middle
/// if it is too long.
fn subtitle_lines(sub: &str) -> Vec<&str> {
    if sub.chars().count() <= 92 {
        return vec![sub];
    }
    let mid = sub.len() / 2;
    match sub
        .match_indices("; ")
        .map(|(i, _)| i)
        .min_by_key(|&i| i.abs_diff(mid))
    {
        Some(i) => vec![&sub[..i], &sub[i + 2..]],
        None => vec![sub],
    }
}

/// The runs of finite points of a series (a NaN breaks the line).
fn segments(points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    points
        .split(|p| !p.1.is_finite())
        .filter(|s| !s.is_empty())
        .map(<[(f64, f64)]>::to_vec)
        .collect()
}

/// The x range shown and the tick labels by position.
fn x_range(x: &XAxis) -> (f64, f64, Vec<(f64, String)>) {
    match x {
        XAxis::Linear { ticks } => {
            let lo = ticks.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = ticks.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let (lo, hi) = if lo < hi {
                (lo, hi)
            } else {
                (lo - 1.0, lo + 1.0)
            };
            let pad = (hi - lo) * 0.04;
            (
                lo - pad,
                hi + pad,
                ticks.iter().map(|&t| (t, fmt_num(t))).collect(),
            )
        }
        XAxis::Categories(c) => (
            -0.5,
            c.len() as f64 - 0.5,
            c.iter()
                .enumerate()
                .map(|(i, s)| (i as f64, s.clone()))
                .collect(),
        ),
    }
}

type Result<T> = std::result::Result<T, String>;

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("plot: {e:?}")
}

/// An x axis with ticks exactly at the panel's points (the copy counts
/// 0, 1, 2, 3, 5, 8, 12; the categories), not at plotters' round numbers.
struct Ticked {
    range: RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.range.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> Range<f64> {
        self.range.range()
    }
}

/// The markers of the `i`th series (its shape: circle, square, triangle,
/// cross) at `pts`, drawn by `draw` with each shape's elements.
macro_rules! markers {
    ($draw:expr, $i:expr, $pts:expr, $style:expr) => {{
        let (style, fill): (ShapeStyle, ShapeStyle) = ($style, $style.filled());
        match $i % 4 {
            0 => $draw($pts.map(|p| Circle::new(p, 4, fill))),
            1 => {
                $draw($pts.map(|p| EmptyElement::at(p) + Rectangle::new([(-4, -4), (4, 4)], fill)))
            }
            2 => $draw($pts.map(|p| TriangleMarker::new(p, 5, fill))),
            _ => $draw($pts.map(|p| Cross::new(p, 4, style))),
        }
    }};
}

/// Draws every element of `elements` into `area`.
fn draw_all<'a, E, I>(
    area: &DrawingArea<SVGBackend<'a>, Shift>,
    elements: I,
) -> std::result::Result<(), DrawingAreaErrorKind<std::io::Error>>
where
    I: Iterator<Item = E>,
    E: Drawable<SVGBackend<'a>>,
    for<'b> &'b E: PointCollection<'b, (i32, i32)>,
{
    elements.into_iter().try_for_each(|e| area.draw(&e))
}

/// The legend: entries in rows under the titles, each a line, its marker
/// and the series' name.
fn legend(top: &DrawingArea<SVGBackend<'_>, Shift>, p: &Panel) -> Result<()> {
    let (mut x, mut y) = (LEFT, 70);
    let font = (FONT, 13)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (i, s) in p.series.iter().enumerate() {
        let w = s.name.chars().count() as i32 * 7 + 52;
        if x + w > W as i32 - 20 && x > LEFT {
            (x, y) = (LEFT, y + 19);
        }
        let style = line_style(s);
        if s.dashed {
            for k in 0..3 {
                top.draw(&PathElement::new(
                    vec![(x + 11 * k, y), (x + 11 * k + 7, y)],
                    style,
                ))
                .map_err(err)?;
            }
        } else {
            top.draw(&PathElement::new(vec![(x, y), (x + 30, y)], style))
                .map_err(err)?;
        }
        if s.markers {
            let at = std::iter::once((x + 15, y));
            markers!(|e| draw_all(top, e), i, at, style).map_err(err)?;
        }
        top.draw(&Text::new(s.name.clone(), (x + 36, y), font.clone()))
            .map_err(err)?;
        x += w;
    }
    Ok(())
}

fn line_style(s: &Series) -> ShapeStyle {
    ShapeStyle {
        color: rgb(s.color).to_rgba(),
        filled: false,
        stroke_width: 2,
    }
}

/// One panel into `area`.
fn panel(area: &DrawingArea<SVGBackend<'_>, Shift>, p: &Panel) -> Result<()> {
    let (top, rest) = area.split_vertically(TITLES);
    let centre = Pos::new(HPos::Center, VPos::Top);
    let title = (FONT, 17)
        .into_font()
        .style(FontStyle::Bold)
        .color(&BLACK)
        .pos(centre);
    top.draw(&Text::new(p.title.clone(), (W as i32 / 2, 8), title))
        .map_err(err)?;
    let sub = (FONT, 13)
        .into_font()
        .color(&RGBColor(0x33, 0x33, 0x33))
        .pos(centre);
    for (k, line) in subtitle_lines(&p.subtitle).into_iter().enumerate() {
        top.draw(&Text::new(
            line.to_string(),
            (W as i32 / 2, 30 + 15 * k as i32),
            sub.clone(),
        ))
        .map_err(err)?;
    }
    legend(&top, p)?;

    let (xmin, xmax, ticks) = x_range(&p.x);
    let ymax_data = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|&(_, y)| y))
        .filter(|y| y.is_finite())
        .fold(0.0, f64::max);
    let ymax = (ymax_data * 1.15).max(1e-9);
    let keys: Vec<f64> = ticks.iter().map(|t| t.0).collect();
    let mut chart = ChartBuilder::on(&rest)
        .margin_left(8)
        .margin_right(20)
        .margin_bottom(8)
        .x_label_area_size(44)
        .y_label_area_size(LEFT - 8)
        .build_cartesian_2d(
            Ticked {
                range: (xmin..xmax).into(),
                ticks: keys,
            },
            0.0..ymax,
        )
        .map_err(err)?;
    let label_of = |v: &f64| {
        ticks
            .iter()
            .find(|(t, _)| (t - v).abs() <= (xmax - xmin) * 1e-6)
            .map(|(_, l)| l.clone())
            .unwrap_or_default()
    };
    chart
        .configure_mesh()
        .x_desc(p.xlabel.as_str())
        .y_desc(p.ylabel.as_str())
        .axis_desc_style((FONT, 14))
        .label_style((FONT, 13))
        .x_label_formatter(&label_of)
        .y_labels(6)
        .y_label_formatter(&|v| fmt_num(*v))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(0xe8, 0xe8, 0xe8))
        .draw()
        .map_err(err)?;

    for (i, s) in p.series.iter().enumerate() {
        let style = line_style(s);
        for seg in segments(&s.points) {
            if s.dashed {
                chart.draw_series(DashedLineSeries::new(seg, 7, 4, style))
            } else {
                chart.draw_series(LineSeries::new(seg, style))
            }
            .map_err(err)?;
        }
        if s.markers {
            let pts = s.points.iter().copied().filter(|p| p.1.is_finite());
            markers!(|e| chart.draw_series(e).map(|_| ()), i, pts, style).map_err(err)?;
        }
    }
    Ok(())
}

/// An SVG document with `panels` side by side.
pub fn render(panels: &[Panel]) -> String {
    let n = panels.len().max(1) as u32;
    let mut out = String::new();
    let drawn = (|| -> Result<()> {
        let root = SVGBackend::with_string(&mut out, (W * n, H)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        for (area, p) in root.split_evenly((1, n as usize)).iter().zip(panels) {
            panel(area, p)?;
        }
        root.present().map_err(err)
    })();
    if let Err(e) = drawn {
        eprintln!("echo-bench: {e}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_series_breaks_and_escapes() {
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
        let s = render(&[p.clone(), p]);
        assert!(
            s.starts_with("<svg") && s.trim_end().ends_with("</svg>"),
            "{s}"
        );
        assert!(s.contains("a &lt; b &amp; c"), "titles are escaped");
        assert!(s.contains("with zio") && s.contains("Gbit/s"));
        assert!(s.contains("width=\"1280\""), "two panels side by side");
        assert_eq!(
            segments(&[(0.0, 1.0), (1.0, f64::NAN), (2.0, 2.0), (3.0, 3.0)]).len(),
            2
        );
        assert_eq!(fmt_num(2.50), "2.5");
        assert_eq!(
            subtitle_lines(&format!("{}; {}", "a".repeat(60), "b".repeat(60))).len(),
            2
        );
    }
}
