//! Bar charts: grouped bars (one group per category, one bar per series, "n/a" where a series
//! has no value) and horizontal stacked bars (the parts of each whole, in reading order).

use std::fmt::Write as _;

use super::{Axis, BarChart, Rect, StackedBars, axis_lines_and_titles, inner, panel_title};
use super::{GREEN, GREY, LIGHT_GREY, PALETTE, esc, linear_ticks, nice_max, short};

impl BarChart {
    pub(super) fn draw(&self, s: &mut String, area: Rect) {
        panel_title(s, area, &self.title);
        let r = inner(area, 64.0);
        let max = self.values.iter().flatten().flatten().copied().fold(0.0f64, f64::max);
        let y = Axis {
            label: self.y_label.clone(),
            log: false,
            range: (0.0, nice_max(max)),
            ticks: linear_ticks(0.0, nice_max(max)),
        };
        let py = |v: f64| y.at(v, r.y + r.h, -r.h);
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
        let groups = self.groups.len().max(1) as f64;
        let slot = r.w / groups;
        let bar = (slot * 0.8 / self.series.len().max(1) as f64).min(34.0);
        for (si, (name, colour)) in self.series.iter().enumerate() {
            let _ = write!(s, "<g class=\"series\" data-series=\"{}\">", esc(name));
            for (gi, row) in self.values.iter().enumerate() {
                let x = r.x + gi as f64 * slot + (slot - bar * self.series.len() as f64) / 2.0 + si as f64 * bar;
                match row.get(si).copied().flatten() {
                    Some(v) => {
                        let top = py(v);
                        let _ = write!(
                            s,
                            "<rect x=\"{x:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"/>\
                             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"9\">{}</text>",
                            bar - 1.0,
                            (r.y + r.h - top).max(0.0),
                            x + bar / 2.0,
                            top - 3.0,
                            short(v)
                        );
                    }
                    None => {
                        let _ = write!(
                            s,
                            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"9\" fill=\"#777\">n/a</text>",
                            x + bar / 2.0,
                            r.y + r.h - 4.0
                        );
                    }
                }
            }
            s.push_str("</g>\n");
        }
        for (gi, g) in self.groups.iter().enumerate() {
            // A label may have two lines (`\n`).
            for (li, line) in g.lines().enumerate() {
                let _ = writeln!(
                    s,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                    r.x + (gi as f64 + 0.5) * slot,
                    r.y + r.h + 15.0 + 13.0 * li as f64,
                    esc(line)
                );
            }
        }
        axis_lines_and_titles(s, r, "", &self.y_label);
    }
}

impl StackedBars {
    /// Segment names in first-seen order, each with its colour.
    pub(super) fn segments(&self) -> Vec<(String, &'static str)> {
        let mut names: Vec<String> = Vec::new();
        for (_, segs) in &self.rows {
            for (n, _) in segs {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
        }
        // Read first and green, "never" last and grey, the others in between, taking turns.
        names.sort_by_key(|n| {
            if n == "read" {
                0
            } else if n.starts_with("never") {
                2
            } else {
                1
            }
        });
        let mut others = PALETTE.iter().filter(|c| **c != GREEN && **c != GREY).cycle();
        names
            .into_iter()
            .map(|n| {
                let colour = if n == "read" {
                    GREEN
                } else if n.starts_with("never") {
                    LIGHT_GREY
                } else {
                    others.next().copied().unwrap_or(GREY)
                };
                (n, colour)
            })
            .collect()
    }

    pub(super) fn draw(&self, s: &mut String, area: Rect) {
        panel_title(s, area, &self.title);
        let label_w = self.rows.iter().map(|(l, _)| l.len()).max().unwrap_or(4) as f64 * 6.6 + 16.0;
        let r = inner(area, label_w);
        let max = self.rows.iter().map(|(_, segs)| segs.iter().map(|(_, v)| *v).sum::<f64>()).fold(0.0f64, f64::max);
        let x = Axis {
            label: self.x_label.clone(),
            log: false,
            range: (0.0, nice_max(max)),
            ticks: linear_ticks(0.0, nice_max(max)),
        };
        let px = |v: f64| x.at(v, r.x, r.w);
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
        let colours = self.segments();
        let row_h = r.h / self.rows.len().max(1) as f64;
        let bar_h = (row_h * 0.6).min(40.0);
        for (name, colour) in &colours {
            let _ = write!(s, "<g class=\"series\" data-series=\"{}\">", esc(name));
            for (ri, (_, segs)) in self.rows.iter().enumerate() {
                let y = r.y + ri as f64 * row_h + (row_h - bar_h) / 2.0;
                let mut start = 0.0;
                for (n, v) in segs {
                    if n == name && *v > 0.0 {
                        let (a, b) = (px(start), px(start + v));
                        let _ = write!(
                            s,
                            "<rect x=\"{a:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bar_h:.1}\" fill=\"{colour}\"/>",
                            (b - a).max(0.5)
                        );
                        if b - a > 34.0 {
                            let _ = write!(
                                s,
                                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\" fill=\"white\">{}</text>",
                                (a + b) / 2.0,
                                y + bar_h / 2.0 + 4.0,
                                short(*v)
                            );
                        }
                    }
                    start += v;
                }
            }
            s.push_str("</g>\n");
        }
        for (ri, (label, segs)) in self.rows.iter().enumerate() {
            let y = r.y + ri as f64 * row_h + row_h / 2.0 + 4.0;
            let total: f64 = segs.iter().map(|(_, v)| v).sum();
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{y:.1}\" text-anchor=\"end\" font-size=\"12\">{}</text>",
                r.x - 6.0,
                esc(label)
            );
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{y:.1}\" font-size=\"10\" fill=\"#333\">{}</text>",
                px(total) + 4.0,
                short(total)
            );
        }
        axis_lines_and_titles(s, r, &self.x_label, "");
    }
}
