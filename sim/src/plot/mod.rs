//! SVG charts for the simulator's reports: line, step and point series on linear or log axes
//! with shaded phases and marked instants, grouped bars, and horizontal stacked bars. Every
//! axis has a title with its unit; every series is a `<g class="series" data-series=NAME>`
//! with a legend entry, so that a test (or a reader of the file) can find what is drawn.
//!
//! Hand-written: the plots are few and fixed, and the SVG stays small, dependency-free and
//! byte-for-byte the same for the same report.

use std::fmt::Write as _;

mod bars;
mod scale;

pub use scale::{esc, linear_ticks, log_ticks, nice_max, short, wrap};

/// Late binding's colour (matplotlib's tab:blue).
pub const LATE: &str = "#1f77b4";
/// Early binding's colour (tab:orange).
pub const EARLY: &str = "#ff7f0e";
/// Green (tab:green): sends in the latency plot.
pub const GREEN: &str = "#2ca02c";
/// Grey (tab:grey): context series.
pub const GREY: &str = "#7f7f7f";
/// Light grey: what is neither a success nor a loss.
pub const LIGHT_GREY: &str = "#c7c7c7";
/// Further colours, in order (tab10 without blue and orange).
pub const PALETTE: &[&str] =
    &["#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78"];

/// A whole picture: a title, an optional note under it, and panels side by side.
pub struct Figure {
    /// The title (what the picture shows, with the scenario's name).
    pub title: String,
    /// A line under the title (the takeaway, or what is not drawn and why).
    pub note: Option<String>,
    /// The panels, left to right.
    pub panels: Vec<Panel>,
    /// Width of one panel, px.
    pub panel_width: f64,
    /// Height of the panels, px.
    pub panel_height: f64,
}

/// One panel.
pub enum Panel {
    /// Series against two axes.
    Xy(XyChart),
    /// Grouped vertical bars.
    Bars(BarChart),
    /// Horizontal stacked bars.
    Stacked(StackedBars),
}

/// A shaded range of x: (from, to, label, colour).
pub type Span = (f64, f64, String, &'static str);
/// A vertical line at x: (at, label).
pub type Mark = (f64, String);

/// Series against two axes.
pub struct XyChart {
    /// The panel's title.
    pub title: String,
    /// Horizontal axis.
    pub x: Axis,
    /// Vertical axis.
    pub y: Axis,
    /// The series, drawn in order.
    pub series: Vec<Series>,
    /// Shaded ranges of x.
    pub spans: Vec<Span>,
    /// Vertical lines at x.
    pub marks: Vec<Mark>,
}

/// An axis: its title (with the unit), scale, range and labelled ticks.
pub struct Axis {
    /// Title with unit, e.g. "read latency (virtual s, log scale)".
    pub label: String,
    /// Linear or logarithmic.
    pub log: bool,
    /// Shown range (for a log axis, both ends positive).
    pub range: (f64, f64),
    /// Ticks: (value, label).
    pub ticks: Vec<(f64, String)>,
}

/// How a series is drawn.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A polyline.
    Line,
    /// A dashed polyline.
    Dashed,
    /// Horizontal then vertical steps (a count that changes at instants).
    Step,
    /// Small circles.
    Points,
    /// A wide, pale polyline drawn under the others (context, e.g. everything that could be).
    Wide,
    /// A polyline with a circle at each point.
    LinePoints,
}

/// One named series.
pub struct Series {
    /// The legend's name.
    pub name: String,
    /// Colour.
    pub colour: &'static str,
    /// Style.
    pub style: Style,
    /// Points (x, y).
    pub points: Vec<(f64, f64)>,
}

/// Grouped vertical bars; a missing value is written `n/a` instead of drawn as zero.
pub struct BarChart {
    /// The panel's title.
    pub title: String,
    /// The vertical axis title with its unit.
    pub y_label: String,
    /// Group labels (under the axis).
    pub groups: Vec<String>,
    /// Series: (name, colour), one bar per group each.
    pub series: Vec<(String, &'static str)>,
    /// `values[group][series]`.
    pub values: Vec<Vec<Option<f64>>>,
}

/// Horizontal stacked bars, one per row; segments are named and coloured by name.
pub struct StackedBars {
    /// The panel's title.
    pub title: String,
    /// The horizontal axis title with its unit.
    pub x_label: String,
    /// Rows: (label, segments (name, value)).
    pub rows: Vec<(String, Vec<(String, f64)>)>,
}

const TITLE_H: f64 = 30.0;
const NOTE_H: f64 = 18.0;
const LEGEND_ROW_H: f64 = 16.0;

impl Figure {
    /// The SVG document.
    pub fn svg(&self) -> String {
        let legend_rows = self.panels.iter().map(|p| legend_rows(&p.legend(), self.panel_width)).max().unwrap_or(0);
        let width = self.panel_width * self.panels.len().max(1) as f64;
        let note = self.note.as_deref().map(|n| wrap(n, ((width - 24.0) / 6.6) as usize)).unwrap_or_default();
        let top = TITLE_H + NOTE_H * note.len() as f64 + 6.0;
        let height = top + self.panel_height + legend_rows as f64 * LEGEND_ROW_H + 8.0;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
             viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"11\">"
        );
        let _ = writeln!(s, "<title>{}</title>", esc(&self.title));
        let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
        let _ =
            writeln!(s, "<text x=\"12\" y=\"21\" font-size=\"15\" font-weight=\"bold\">{}</text>", esc(&self.title));
        for (i, line) in note.iter().enumerate() {
            let y = TITLE_H + 9.0 + NOTE_H * i as f64;
            let _ = writeln!(
                s,
                "<text class=\"note\" x=\"12\" y=\"{y}\" font-size=\"12\" fill=\"#333\">{}</text>",
                esc(line)
            );
        }
        for (i, p) in self.panels.iter().enumerate() {
            let x0 = i as f64 * self.panel_width;
            let area = Rect { x: x0, y: top, w: self.panel_width, h: self.panel_height };
            match p {
                Panel::Xy(c) => c.draw(&mut s, area),
                Panel::Bars(c) => c.draw(&mut s, area),
                Panel::Stacked(c) => c.draw(&mut s, area),
            }
            draw_legend(&mut s, &p.legend(), x0 + 12.0, top + self.panel_height + 4.0, self.panel_width - 24.0);
        }
        s.push_str("</svg>\n");
        s
    }
}

impl Panel {
    fn legend(&self) -> Vec<(String, &'static str, Style)> {
        match self {
            Panel::Xy(c) => c.series.iter().map(|x| (x.name.clone(), x.colour, x.style)).collect(),
            Panel::Bars(c) => c.series.iter().map(|(n, col)| (n.clone(), *col, Style::Line)).collect(),
            Panel::Stacked(c) => c.segments().into_iter().map(|(n, col)| (n, col, Style::Line)).collect(),
        }
    }
}

#[derive(Clone, Copy)]
struct Rect {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

/// The plotting area inside a panel: room for the panel title, tick labels and axis titles.
fn inner(area: Rect, left: f64) -> Rect {
    Rect { x: area.x + left, y: area.y + 22.0, w: area.w - left - 18.0, h: area.h - 22.0 - 44.0 }
}

fn panel_title(s: &mut String, area: Rect, title: &str) {
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"13\">{}</text>",
        area.x + 12.0,
        area.y + 12.0,
        esc(title)
    );
}

impl Axis {
    fn at(&self, v: f64, from: f64, len: f64) -> f64 {
        let (a, b) = self.range;
        let t = if self.log {
            let (la, lb) = (a.max(1e-12).log10(), b.max(1e-12).log10());
            (v.max(a).max(1e-12).log10() - la) / (lb - la).max(1e-12)
        } else {
            (v - a) / (b - a).max(1e-12)
        };
        from + t.clamp(0.0, 1.0) * len
    }
}

impl XyChart {
    fn draw(&self, s: &mut String, area: Rect) {
        panel_title(s, area, &self.title);
        let r = inner(area, 64.0);
        let px = |x: f64| self.x.at(x, r.x, r.w);
        let py = |y: f64| self.y.at(y, r.y + r.h, -r.h);
        // Labels one under the other (spans first, then marks), drawn last with a white halo so
        // that no series hides them.
        let mut labels =
            String::from("<g class=\"labels\" stroke=\"white\" stroke-width=\"3\" paint-order=\"stroke\">");
        let mut label = |x: f64, row: usize, colour: &str, text: &str| {
            let y = r.y + 11.0 + 12.0 * row as f64;
            let _ = write!(
                labels,
                "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"10\" fill=\"{colour}\">{}</text>",
                esc(text)
            );
        };
        for (i, (from, to, text, colour)) in self.spans.iter().enumerate() {
            let (a, b) = (px(*from), px(*to));
            let _ = writeln!(
                s,
                "<g class=\"span\" data-span=\"{l}\"><rect x=\"{a:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\" fill-opacity=\"0.15\"/></g>",
                r.y,
                (b - a).max(1.0),
                r.h,
                l = esc(text)
            );
            label(a + 3.0, i, "#555", text);
        }
        grid_and_axes(s, r, &self.x, &self.y, px, py);
        for (i, (at, text)) in self.marks.iter().enumerate() {
            let x = px(*at);
            let _ = writeln!(
                s,
                "<g class=\"mark\" data-mark=\"{l}\"><line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#d62728\" stroke-dasharray=\"4 3\"/></g>",
                r.y,
                r.y + r.h,
                l = esc(text)
            );
            label(x + 3.0, self.spans.len() + i, "#d62728", text);
        }
        labels.push_str("</g>");
        for series in &self.series {
            let pts: Vec<(f64, f64)> = series.points.iter().map(|(x, y)| (px(*x), py(*y))).collect();
            let _ = write!(s, "<g class=\"series\" data-series=\"{}\">", esc(&series.name));
            let path =
                |pts: &[(f64, f64)]| pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect::<Vec<_>>().join(" ");
            match series.style {
                Style::Line | Style::Dashed | Style::LinePoints => {
                    let dash = if series.style == Style::Dashed { " stroke-dasharray=\"6 4\"" } else { "" };
                    let _ = write!(
                        s,
                        "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\"{dash} points=\"{}\"/>",
                        series.colour,
                        path(&pts)
                    );
                }
                Style::Wide => {
                    let _ = write!(
                        s,
                        "<polyline fill=\"none\" stroke=\"{}\" stroke-opacity=\"0.45\" stroke-width=\"7\" points=\"{}\"/>",
                        series.colour,
                        path(&step(&pts))
                    );
                }
                Style::Step => {
                    let _ = write!(
                        s,
                        "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\" points=\"{}\"/>",
                        series.colour,
                        path(&step(&pts))
                    );
                }
                Style::Points => {}
            }
            if matches!(series.style, Style::Points | Style::LinePoints) {
                let radius = if series.style == Style::Points { 1.8 } else { 3.2 };
                for (x, y) in &pts {
                    let _ = write!(
                        s,
                        "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{radius}\" fill=\"{}\" fill-opacity=\"0.6\"/>",
                        series.colour
                    );
                }
            }
            s.push_str("</g>\n");
        }
        s.push_str(&labels);
        s.push('\n');
    }
}

/// A polyline through `pts` in horizontal then vertical steps.
fn step(pts: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut stepped = Vec::with_capacity(pts.len() * 2);
    for (i, p) in pts.iter().enumerate() {
        if let Some(prev) = i.checked_sub(1).and_then(|j| pts.get(j)) {
            stepped.push((p.0, prev.1));
        }
        stepped.push(*p);
    }
    stepped
}

fn grid_and_axes(s: &mut String, r: Rect, x: &Axis, y: &Axis, px: impl Fn(f64) -> f64, py: impl Fn(f64) -> f64) {
    for (v, label) in &y.ticks {
        let yy = py(*v);
        let _ = writeln!(
            s,
            "<line x1=\"{:.1}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#e5e5e5\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            r.x,
            r.x + r.w,
            r.x - 5.0,
            yy + 4.0,
            esc(label)
        );
    }
    for (v, label) in &x.ticks {
        let xx = px(*v);
        let _ = writeln!(
            s,
            "<line x1=\"{xx:.1}\" y1=\"{:.1}\" x2=\"{xx:.1}\" y2=\"{:.1}\" stroke=\"#e5e5e5\"/>\
             <text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            r.y,
            r.y + r.h,
            r.y + r.h + 15.0,
            esc(label)
        );
    }
    axis_lines_and_titles(s, r, &x.label, &y.label);
}

fn axis_lines_and_titles(s: &mut String, r: Rect, x_label: &str, y_label: &str) {
    let (bottom, right) = (r.y + r.h, r.x + r.w);
    let _ = writeln!(
        s,
        "<line x1=\"{:.1}\" y1=\"{bottom:.1}\" x2=\"{right:.1}\" y2=\"{bottom:.1}\" stroke=\"black\"/>\
         <line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{bottom:.1}\" stroke=\"black\"/>",
        r.x, r.x, r.y, r.x
    );
    let _ = writeln!(
        s,
        "<text class=\"axis-title\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"12\">{}</text>",
        r.x + r.w / 2.0,
        bottom + 33.0,
        esc(x_label)
    );
    let (tx, ty) = (r.x - 48.0, r.y + r.h / 2.0);
    let _ = writeln!(
        s,
        "<text class=\"axis-title\" x=\"{tx:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\" font-size=\"12\" \
         transform=\"rotate(-90 {tx:.1} {ty:.1})\">{}</text>",
        esc(y_label)
    );
}

fn legend_rows(items: &[(String, &'static str, Style)], width: f64) -> usize {
    let mut rows = 1;
    let mut x = 0.0;
    for (name, _, _) in items {
        let w = 30.0 + name.len() as f64 * 6.2;
        if x + w > width - 24.0 && x > 0.0 {
            rows += 1;
            x = 0.0;
        }
        x += w;
    }
    if items.is_empty() { 0 } else { rows }
}

fn draw_legend(s: &mut String, items: &[(String, &'static str, Style)], x0: f64, y0: f64, width: f64) {
    let (mut x, mut y) = (x0, y0);
    for (name, colour, style) in items {
        let w = 30.0 + name.len() as f64 * 6.2;
        if x + w > x0 + width && x > x0 {
            x = x0;
            y += LEGEND_ROW_H;
        }
        let _ = match style {
            Style::Points => {
                write!(s, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{colour}\"/>", x + 9.0, y + 7.0)
            }
            Style::Wide => write!(
                s,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"18\" height=\"7\" fill=\"{colour}\" fill-opacity=\"0.45\"/>",
                y + 3.5
            ),
            Style::Dashed => write!(
                s,
                "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-width=\"2\" stroke-dasharray=\"5 3\"/>",
                y + 7.0,
                x + 18.0,
                y + 7.0
            ),
            _ => write!(s, "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"18\" height=\"10\" fill=\"{colour}\"/>", y + 2.0),
        };
        let _ = writeln!(s, "<text class=\"legend\" x=\"{:.1}\" y=\"{:.1}\">{}</text>", x + 23.0, y + 11.0, esc(name));
        x += w;
    }
}
