//! The HTML pages: one per run (its takeaway, the table beside the plots, the headline's
//! first) and one for several runs (the summary table with a link to each run's page).
//! Static, self-contained (the plots are the SVG files beside the page), no script.

use std::fmt::Write as _;

use crate::RunReport;
use crate::plot::esc;

const STYLE: &str = "body{font-family:DejaVu Sans,Arial,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em}.takeaway{font-size:1.1em;background:#f3f6fa;border-left:4px solid #1f77b4;padding:.5em .8em}\
.grid{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}.table{flex:0 0 auto}\
.plots{flex:1 1 900px}.plots img{max-width:100%;border:1px solid #ddd;margin-bottom:1em}\
pre{font-size:12px;background:#fafafa;border:1px solid #ddd;padding:.8em}table{border-collapse:collapse}\
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}td.n{text-align:right}";

/// The page of one run: `plots` are the file names written beside it, the headline's first.
pub fn run_page(r: &RunReport, text: &str, plots: &[&str]) -> String {
    let h = super::headline::of(r);
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>ekg simulate: {name}</title>\
         <style>{STYLE}</style></head><body>\n<h1>ekg simulate: {name}</h1>\n<p>{desc}</p>\n\
         <p class=\"takeaway\"><b>{what}</b>: late binding {late}, early binding {early}. {takeaway}</p>\n\
         <p>Verdict <b>{verdict:?}</b> (exit {exit}); reproduce with <code>{command}</code>; \
         <a href=\"report.json\">report.json</a>, <a href=\"report.txt\">report.txt</a>.</p>\n\
         <div class=\"grid\"><div class=\"table\"><pre>{text}</pre></div><div class=\"plots\">\n",
        name = esc(&r.scenario.name),
        desc = esc(r.scenario.description.trim()),
        what = esc(&h.what),
        late = esc(&h.late),
        early = esc(&h.early),
        takeaway = esc(&h.takeaway),
        verdict = r.verdict,
        exit = r.verdict.exit_code(),
        command = esc(&r.command),
        text = esc(text),
    );
    for p in plots {
        let _ = writeln!(s, "<a href=\"{p}\"><img src=\"{p}\" alt=\"{p}\"></a>");
    }
    s.push_str("</div></div>\n</body></html>\n");
    s
}

/// The page of several runs: the summary table, each run's takeaway and a link to its page.
pub fn summary_page(reports: &[RunReport]) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>ekg simulate: {n} scenarios</title>\
         <style>{STYLE}</style></head><body>\n<h1>ekg simulate: {n} scenarios, late binding (EKG) against early binding (S/MIME)</h1>\n\
         <table><tr><th>scenario</th><th>verdict</th><th>headline</th><th>late (EKG)</th><th>early (S/MIME)</th><th>takeaway</th></tr>\n",
        n = reports.len()
    );
    for r in reports {
        let h = super::headline::of(r);
        let name = esc(&r.scenario.name);
        let _ = writeln!(
            s,
            "<tr><td><a href=\"{name}/index.html\">{name}</a></td><td>{:?}</td><td>{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td>{}</td></tr>",
            r.verdict,
            esc(&h.what),
            esc(&h.late),
            esc(&h.early),
            esc(&h.takeaway)
        );
    }
    s.push_str("</table>\n<div class=\"plots\">\n");
    for r in reports {
        let h = super::headline::of(r);
        let name = esc(&r.scenario.name);
        let _ = writeln!(s, "<a href=\"{name}/index.html\"><img src=\"{name}/{}\" alt=\"{name}\"></a>", h.plot);
    }
    s.push_str("</div>\n</body></html>\n");
    s
}
