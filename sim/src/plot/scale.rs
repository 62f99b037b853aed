//! Scales and text: tick positions and labels on linear and log axes, short numbers, wrapped
//! lines and escaped XML text.

/// `text` in lines of at most `width` characters (words are not split).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// A round upper bound for an axis from 0 to `max`.
pub fn nice_max(max: f64) -> f64 {
    if max.is_nan() || max <= 0.0 {
        return 1.0;
    }
    let step = nice_step(max / 5.0);
    (max / step).ceil() * step
}

fn nice_step(raw: f64) -> f64 {
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    mag * if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 2.5 {
        2.5
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    }
}

/// About five round ticks from `min` to `max`.
pub fn linear_ticks(min: f64, max: f64) -> Vec<(f64, String)> {
    let step = nice_step(((max - min) / 5.0).max(1e-9));
    let mut out = Vec::new();
    let mut v = (min / step).ceil() * step;
    while v <= max + step * 1e-6 && out.len() < 50 {
        out.push((v, short(v)));
        v += step;
    }
    out
}

/// A tick at each power of ten from `min` to `max`, labelled by `label`.
pub fn log_ticks(min: f64, max: f64, label: impl Fn(f64) -> String) -> Vec<(f64, String)> {
    let (a, b) = (min.max(1e-12).log10().ceil() as i32, max.max(1e-12).log10().floor() as i32);
    (a..=b).map(|e| 10f64.powi(e)).map(|v| (v, label(v))).collect()
}

/// A number in few characters: 0.04, 6.6, 138, 1,382, 12.3k.
pub fn short(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 100_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if a >= 10_000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if a >= 100.0 || (v.fract() == 0.0 && a >= 1.0) {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.1 {
        format!("{v:.2}").trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        format!("{v:.3}").trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// Escapes text for SVG and HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
