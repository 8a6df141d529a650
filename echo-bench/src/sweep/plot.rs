//! A sweep's SVG plot: throughput with and without zio per point, against
//! the 0-copy ceiling where there is one, and for the size and touch
//! sweeps a second panel of the ratio with zio / without.

use super::measure::Measured;
use super::report::ceiling_of;
use super::{Kind, Point, SweepOpts};
use crate::svg::{self, Panel, Series, XAxis, COLORS};

const YLABEL: &str = "Gbit/s (echoed payload)";

/// The plot of sweep `o`: its points, their results and the description
/// of the configuration.
pub(super) fn plot(o: &SweepOpts, pts: &[Point], res: &[Measured], desc: &str) -> String {
    let sub = format!(
        "{desc}; median of {} run{} of {} s{}",
        o.reps,
        if o.reps == 1 { "" } else { "s" },
        o.duration,
        match &o.launch.pin {
            Some((s, c)) => format!("; server on CPU {s}, client on CPU {c}"),
            None => String::new(),
        }
    );
    let p = Plot { pts, res, sub };
    match o.kind {
        Kind::Copies => p.copies(),
        Kind::Size => p.size(),
        Kind::Threads => p.lines(
            "Echo throughput vs server threads",
            "server threads / client connections",
        ),
        Kind::Faults => p.lines(
            "Echo throughput vs pages read per message",
            "pages read per message",
        ),
        Kind::Touch => p.touch(),
    }
}

/// What every panel of one plot draws from.
struct Plot<'a> {
    pts: &'a [Point],
    res: &'a [Measured],
    /// The subtitle: the configuration and the run details.
    sub: String,
}

impl Plot<'_> {
    /// A series through the points `pick` gives a value.
    fn series(
        &self,
        name: &str,
        color: usize,
        dashed: bool,
        pick: &dyn Fn(usize) -> Option<f64>,
    ) -> Series {
        Series {
            name: name.to_string(),
            color: COLORS[color],
            dashed,
            markers: true,
            points: (0..self.pts.len())
                .filter_map(|i| pick(i).map(|y| (self.pts[i].x, y)))
                .collect(),
        }
    }

    /// A side's medians over the points of group `g` (all with None).
    fn side(&self, name: &str, color: usize, dashed: bool, g: Option<&str>, zio: bool) -> Series {
        self.series(name, color, dashed, &|i| {
            self.in_group(g, i).then(|| self.res[i].med(zio))
        })
    }

    /// With zio / without zio over the points of group `g`.
    fn ratio(&self, name: &str, color: usize, dashed: bool, g: &str) -> Series {
        self.series(name, color, dashed, &|i| {
            self.in_group(Some(g), i)
                .then(|| self.res[i].med(true) / self.res[i].med(false))
        })
    }

    fn in_group(&self, g: Option<&str>, i: usize) -> bool {
        g.is_none_or(|g| self.pts[i].group == g)
    }

    /// The groups, in the order of their first point.
    fn groups(&self) -> Vec<String> {
        let mut g: Vec<String> = Vec::new();
        for p in self.pts {
            if !g.contains(&p.group) {
                g.push(p.group.clone());
            }
        }
        g
    }

    /// The x labels of group `g`.
    fn cats(&self, g: &str) -> Vec<String> {
        self.pts
            .iter()
            .filter(|p| p.group == g)
            .map(|p| p.label.clone())
            .collect()
    }

    /// The ratio panels get the configuration without the run details.
    fn short(&self) -> String {
        self.sub.split(';').next().unwrap_or("").to_string()
    }

    /// The throughput panel of one plot.
    fn panel(&self, title: String, xlabel: &str, x: XAxis, series: Vec<Series>) -> Panel {
        Panel {
            title,
            subtitle: self.sub.clone(),
            xlabel: xlabel.into(),
            ylabel: YLABEL.into(),
            x,
            series,
        }
    }

    /// The ratio panel, with a dashed line at 1.0 over `cats`.
    fn ratio_panel(&self, xlabel: &str, cats: Vec<String>, mut series: Vec<Series>) -> Panel {
        series.push(Series {
            name: "1.0 (no change)".into(),
            color: COLORS[2],
            dashed: true,
            markers: false,
            points: (0..cats.len()).map(|i| (i as f64, 1.0)).collect(),
        });
        Panel {
            title: "Throughput with zio / without zio".into(),
            subtitle: self.short(),
            xlabel: xlabel.into(),
            ylabel: "throughput ratio".into(),
            x: XAxis::Categories(cats),
            series,
        }
    }

    fn copies(&self) -> String {
        let ticks: Vec<f64> = self.pts.iter().map(|p| p.x).collect();
        svg::render(&[self.panel(
            "Echo throughput vs application copies".into(),
            "application copies per message",
            XAxis::Linear { ticks },
            vec![
                self.side("without zio", 1, false, None, false),
                self.side("with zio", 0, false, None, true),
                self.series("0-copy (without zio)", 2, true, &|i| {
                    Some(ceiling_of(self.pts, self.res, i))
                }),
            ],
        )])
    }

    fn size(&self) -> String {
        let copies = self.pts.first().map(|p| p.copies).unwrap_or(5);
        let cg = format!("{copies} copies");
        let sizes = self.cats(&cg);
        let mut s = vec![
            self.side(
                &format!("without zio, {copies} copies"),
                1,
                false,
                Some(&cg),
                false,
            ),
            self.side(
                &format!("with zio, {copies} copies"),
                0,
                false,
                Some(&cg),
                true,
            ),
        ];
        let mut r = vec![self.ratio(&format!("{copies} copies"), 0, false, &cg)];
        if self.groups().iter().any(|g| g == "0 copies") {
            let z = Some("0 copies");
            s.push(self.side("without zio, 0 copies", 2, true, z, false));
            s.push(self.side("with zio, 0 copies", 3, true, z, true));
            r.push(self.ratio("0 copies", 3, true, "0 copies"));
        }
        let xlabel = "message size (bytes)";
        svg::render(&[
            self.panel(
                "Echo throughput vs message size".into(),
                xlabel,
                XAxis::Categories(sizes.clone()),
                s,
            ),
            self.ratio_panel(xlabel, sizes, r),
        ])
    }

    /// One panel, both sides over the categories of the first group.
    fn lines(&self, title: &str, xlabel: &str) -> String {
        let g = &self.groups()[0];
        svg::render(&[self.panel(
            title.to_string(),
            xlabel,
            XAxis::Categories(self.cats(g)),
            vec![
                self.side("without zio", 1, false, None, false),
                self.side("with zio", 0, false, None, true),
            ],
        )])
    }

    /// A throughput panel per message size, then their ratios in one.
    fn touch(&self) -> String {
        let groups = self.groups();
        let xlabel = "fraction of the last copy read";
        let mut panels = Vec::new();
        let mut ratio = Vec::new();
        for (k, g) in groups.iter().enumerate() {
            panels.push(self.panel(
                format!("Echo throughput vs data read, {g} messages"),
                xlabel,
                XAxis::Categories(self.cats(g)),
                vec![
                    self.side("without zio", 1, false, Some(g), false),
                    self.side("with zio", 0, false, Some(g), true),
                ],
            ));
            ratio.push(self.ratio(g, [0, 3, 4, 5][k % 4], false, g));
        }
        panels.push(self.ratio_panel(xlabel, self.cats(&groups[0]), ratio));
        svg::render(&panels)
    }
}
