//! The plots of one run, each a [`Figure`]: what happened to the pairs, RSA operations by
//! party (private and public apart), bytes by artifact, keys held over time, latency over
//! time, and, when the scenario has them, exposure to a stolen key, readable share against
//! certificate availability and cost against list size.

use crate::RunReport;
use crate::metrics::SchemeReport;
use crate::plot::{
    Axis, BarChart, EARLY, Figure, GREEN, GREY, LATE, Mark, Panel, Series, Span, StackedBars, Style, XyChart,
};
use crate::plot::{linear_ticks, log_ticks, nice_max, short};
use crate::scenario::Scenario;

/// Every plot of `r`: (file name, figure), the headline's first.
pub fn files(r: &RunReport) -> Vec<(&'static str, Figure)> {
    let mut out = vec![
        ("outcome.svg", outcome(r)),
        ("rsa_operations.svg", rsa_operations(r)),
        ("bytes.svg", bytes(r)),
        ("keys_held.svg", keys_held(r)),
        ("latency.svg", latency(r)),
    ];
    if !r.scenario.faults.compromised.is_empty() {
        out.push(("exposure.svg", exposure(r)));
    }
    if r.availability_sweep.len() >= 2 {
        out.push(("availability.svg", availability(r)));
    }
    if r.late.by_list_size.len() >= 2 {
        out.push(("list_size.svg", list_size(r)));
    }
    let first = super::headline::of(r).plot;
    if let Some(i) = out.iter().position(|(n, _)| *n == first) {
        let h = out.remove(i);
        out.insert(0, h);
    }
    out
}

const WIDE: f64 = 900.0;
const HIGH: f64 = 380.0;

fn figure(title: String, note: Option<String>, panels: Vec<Panel>) -> Figure {
    let panel_width = WIDE / panels.len().max(1) as f64;
    Figure { title, note, panels, panel_width: panel_width.max(440.0), panel_height: HIGH }
}

fn scheme_names() -> [&'static str; 2] {
    ["late binding (EKG)", "early binding (S/MIME)"]
}

/// Read, lost by reason, never read: one stacked bar per scheme, totals equal.
pub fn outcome(r: &RunReport) -> Figure {
    let row = |x: &SchemeReport| {
        let mut segs = vec![("read".to_owned(), x.pairs_readable as f64)];
        segs.extend(x.lost.iter().map(|(k, v)| (format!("lost: {k}"), *v as f64)));
        segs.push(("never opened (workload)".to_owned(), x.pairs_never_read as f64));
        segs
    };
    let [late, early] = scheme_names();
    let h = super::headline::of(r);
    figure(
        format!("{}: what happened to each (message, recipient) pair", r.scenario.name),
        Some(if h.plot == "outcome.svg" { h.takeaway } else { readable_note(r) }),
        vec![Panel::Stacked(StackedBars {
            title: format!("{} pairs; the same workload under both schemes", r.late.pairs),
            x_label: "(message, recipient) pairs".into(),
            rows: vec![(late.into(), row(&r.late)), (early.into(), row(&r.early))],
        })],
    )
}

fn readable_note(r: &RunReport) -> String {
    format!(
        "Readable share of the pairs opened: late {:.2} %, early {:.2} %.",
        r.late.readable_share * 100.0,
        r.early.readable_share * 100.0
    )
}

/// Which parties took part in the scenario (a party that took part and did no RSA operation
/// is drawn as 0; a party a scheme does not have, as n/a).
fn parties(r: &RunReport) -> Vec<(&'static str, &'static str)> {
    let mut out = vec![("sender", "sender"), ("gatekeeper", "gatekeeper"), ("recipient", "recipient")];
    if r.scenario.workload.gateway_fetch_share > 0.0 {
        out.push(("sender_gateway", "sender's\ngateway"));
    }
    if r.late.foreign_gateway_attempts + r.early.foreign_gateway_attempts > 0 {
        out.push(("recipient_gateway", "recipient's\ngateway"));
    }
    if !r.scenario.faults.compromised.is_empty() {
        out.push(("attacker", "attacker"));
    }
    out
}

/// RSA operations per message by party, private and public in two panels.
pub fn rsa_operations(r: &RunReport) -> Figure {
    let parties = parties(r);
    let per = |x: &SchemeReport, role: &str, private: bool| -> Option<f64> {
        if x.scheme == "early" && role == "gatekeeper" {
            return None;
        }
        let o = x.ops.get(role).copied().unwrap_or_default();
        let n = if private { o.private() } else { o.public() };
        Some(n as f64 / x.messages.max(1) as f64)
    };
    let panel = |private: bool| {
        Panel::Bars(BarChart {
            title: if private {
                "private-key operations (sign, decrypt)".into()
            } else {
                "public-key operations (verify, encrypt)".into()
            },
            y_label: "RSA operations per message".into(),
            groups: parties.iter().map(|(_, label)| (*label).to_owned()).collect(),
            series: vec![(scheme_names()[0].into(), LATE), (scheme_names()[1].into(), EARLY)],
            values: parties
                .iter()
                .map(|(role, _)| vec![per(&r.late, role, private), per(&r.early, role, private)])
                .collect(),
        })
    };
    let total = |x: &SchemeReport, f: fn(&crate::metered::OpCounts) -> u64| x.ops.values().map(f).sum::<u64>();
    let note = format!(
        "All parties, whole run: private {} late / {} early, public {} late / {} early (n/a: early binding has no gatekeeper).",
        total(&r.late, crate::metered::OpCounts::private),
        total(&r.early, crate::metered::OpCounts::private),
        total(&r.late, crate::metered::OpCounts::public),
        total(&r.early, crate::metered::OpCounts::public),
    );
    figure(format!("{}: RSA operations by party", r.scenario.name), Some(note), vec![panel(true), panel(false)])
}

/// Bytes on the wire per message, by artifact.
pub fn bytes(r: &RunReport) -> Figure {
    let row = |x: &SchemeReport| -> Vec<(String, f64)> {
        x.bytes.iter().map(|(k, v)| (k.replace('_', " "), *v as f64 / 1024.0 / x.messages.max(1) as f64)).collect()
    };
    let [late, early] = scheme_names();
    let note = format!(
        "Per message: {:.1} KiB late, {:.1} KiB early ({:.2}x); a sealed message or envelope is counted once per destination domain.",
        r.late.bytes_per_message / 1024.0,
        r.early.bytes_per_message / 1024.0,
        if r.early.bytes_per_message > 0.0 { r.late.bytes_per_message / r.early.bytes_per_message } else { 0.0 }
    );
    figure(
        format!("{}: bytes on the wire by artifact", r.scenario.name),
        Some(note),
        vec![Panel::Stacked(StackedBars {
            title: "mean over every message sent".into(),
            x_label: "KiB per message".into(),
            rows: vec![(late.into(), row(&r.late)), (early.into(), row(&r.early))],
        })],
    )
}

/// Ticks of a log time axis in seconds, labelled in s, min, h and d.
fn time_ticks(max_secs: f64) -> Vec<(f64, String)> {
    [
        (1.0, "1 s"),
        (10.0, "10 s"),
        (60.0, "1 min"),
        (600.0, "10 min"),
        (3600.0, "1 h"),
        (6.0 * 3600.0, "6 h"),
        (86_400.0, "1 d"),
        (2.0 * 86_400.0, "2 d"),
        (7.0 * 86_400.0, "1 w"),
        (30.0 * 86_400.0, "30 d"),
    ]
    .iter()
    .filter(|(v, _)| *v <= max_secs * 1.0001)
    .map(|(v, l)| (*v, (*l).to_owned()))
    .collect()
}

/// Fault phase, outages, crashes and compromises as shaded spans and marks, x in `unit` seconds.
fn faults(s: &Scenario, fault_end_secs: f64, unit: f64) -> (Vec<Span>, Vec<Mark>) {
    let f = &s.faults;
    let mut spans = Vec::new();
    if f.loss > 0.0 || f.duplication > 0.0 || f.rotate_share > 0.0 || f.lose_share > 0.0 {
        let what = format!("fault phase (loss {:.0} %, duplication {:.0} %)", f.loss * 100.0, f.duplication * 100.0);
        spans.push((0.0, fault_end_secs / unit, what, GREY));
    }
    for o in &f.outages {
        spans.push((
            o.at_secs as f64 / unit,
            (o.at_secs + o.for_secs) as f64 / unit,
            format!("{} down", o.org),
            "#d62728",
        ));
    }
    let mut marks: Vec<Mark> =
        f.crashes.iter().map(|c| (c.at_secs as f64 / unit, format!("{} crashes", c.org))).collect();
    marks.extend(f.compromised.iter().map(|c| (c.at_secs as f64 / unit, format!("{}'s key stolen", c.user))));
    (spans, marks)
}

/// Keys held by all gatekeepers over time, on a log time axis.
pub fn keys_held(r: &RunReport) -> Figure {
    let l = &r.late;
    let max_t = l.keys_held.iter().map(|(t, _)| *t as f64).fold(r.fault_phase_end_secs, f64::max).max(10.0);
    let max_k = l.keys_held_peak as f64;
    let points: Vec<(f64, f64)> = l.keys_held.iter().map(|(t, k)| ((*t as f64).max(1.0), *k as f64)).collect();
    let (spans, marks) = faults(&r.scenario, r.fault_phase_end_secs.max(1.0), 1.0);
    let note = format!(
        "Peak {} keys; mean lifetime {:.0} s, max {:.0} s (ticket lifetime {} s). Early binding has no key holder: a key lives as long as any recipient's private key.",
        l.keys_held_peak, l.key_lifetime_secs.mean, l.key_lifetime_secs.max, r.scenario.gatekeeper.ticket_lifetime_secs
    );
    figure(
        format!("{}: keys held by the gatekeepers (late binding)", r.scenario.name),
        Some(note),
        vec![Panel::Xy(XyChart {
            title: "every organisation's gatekeeper, summed; sampled at each change".into(),
            x: Axis {
                label: "virtual time since the first submission (log scale)".into(),
                log: true,
                range: (1.0, max_t),
                ticks: time_ticks(max_t),
            },
            y: Axis {
                label: "keys held".into(),
                log: false,
                range: (0.0, nice_max(max_k)),
                ticks: linear_ticks(0.0, nice_max(max_k)),
            },
            series: vec![Series { name: "keys held (late binding)".into(), colour: LATE, style: Style::Step, points }],
            spans,
            marks,
        })],
    )
}

/// Send and read latency over virtual time (late binding), log latency axis.
pub fn latency(r: &RunReport) -> Figure {
    let l = &r.late;
    let min = 60_000.0;
    let pts = |v: &[(u64, u64)]| -> Vec<(f64, f64)> {
        v.iter().map(|(t, lat)| (*t as f64 / min, (*lat as f64 / 1000.0).max(0.001))).collect()
    };
    let (reads, sends) = (pts(&l.read_latency_ms), pts(&l.send_latency_ms));
    let max_x =
        reads.iter().chain(sends.iter()).map(|(x, _)| *x).fold(r.fault_phase_end_secs / 60.0, f64::max).max(1.0);
    let max_y = reads.iter().chain(sends.iter()).map(|(_, y)| *y).fold(1.0, f64::max) * 2.0;
    let min_y = reads.iter().chain(sends.iter()).map(|(_, y)| *y).fold(max_y, f64::min).max(0.001) / 2.0;
    let (spans, marks) = faults(&r.scenario, r.fault_phase_end_secs, 60.0);
    let h = super::headline::of(r);
    let note = if h.plot == "latency.svg" {
        h.takeaway
    } else {
        format!(
            "Read latency p50 {:.2} s, p99 {:.2} s, max {:.2} s.",
            l.read_latency_secs.p50, l.read_latency_secs.p99, l.read_latency_secs.max
        )
    };
    figure(
        format!("{}: latency through the gatekeeper (late binding; early binding has no round trip)", r.scenario.name),
        Some(note),
        vec![Panel::Xy(XyChart {
            title: "one point per message sent and per read".into(),
            x: Axis {
                label: "when the message was submitted or opened (virtual minutes)".into(),
                log: false,
                range: (0.0, nice_max(max_x)),
                ticks: linear_ticks(0.0, nice_max(max_x)),
            },
            y: Axis {
                label: "latency (virtual s, log scale)".into(),
                log: true,
                range: (min_y, max_y),
                ticks: log_ticks(min_y, max_y, |v| format!("{} s", short(v))),
            },
            series: vec![
                Series { name: "read: opened to plaintext".into(), colour: LATE, style: Style::Points, points: reads },
                Series { name: "send: submitted to sent".into(), colour: GREEN, style: Style::Points, points: sends },
            ],
            spans,
            marks,
        })],
    )
}

/// Messages exposed by a stolen recipient key, cumulative by submission time.
pub fn exposure(r: &RunReport) -> Figure {
    let min = 60_000.0;
    let cumulative = |v: &[u64]| -> Vec<(f64, f64)> {
        let mut out = vec![(0.0, 0.0)];
        out.extend(v.iter().enumerate().map(|(i, t)| (*t as f64 / min, (i + 1) as f64)));
        out
    };
    let all = cumulative(&r.stolen_key_mail_submitted_ms);
    let end = all.last().map_or(1.0, |p| p.0).max(r.fault_phase_end_secs / 60.0);
    let mut series = vec![
        Series { name: "mail listing the victim".into(), colour: GREY, style: Style::Wide, points: all.clone() },
        Series {
            name: "exposed, early binding".into(),
            colour: EARLY,
            style: Style::Step,
            points: cumulative(&r.early.exposed_submitted_ms),
        },
        Series {
            name: "exposed, late binding".into(),
            colour: LATE,
            style: Style::Step,
            points: cumulative(&r.late.exposed_submitted_ms),
        },
    ];
    for s in &mut series {
        if let Some(last) = s.points.last().copied() {
            s.points.push((end, last.1));
        }
    }
    let top = all.last().map_or(1.0, |p| p.1);
    let (_, marks) = faults(&r.scenario, r.fault_phase_end_secs, 60.0);
    figure(
        format!("{}: messages a stolen recipient key exposes", r.scenario.name),
        Some(super::headline::of(r).takeaway),
        vec![Panel::Xy(XyChart {
            title: "cumulative, by when the message was submitted".into(),
            x: Axis {
                label: "submission time (virtual minutes)".into(),
                log: false,
                range: (0.0, nice_max(end)),
                ticks: linear_ticks(0.0, nice_max(end)),
            },
            y: Axis {
                label: "messages (cumulative)".into(),
                log: false,
                range: (0.0, nice_max(top)),
                ticks: linear_ticks(0.0, nice_max(top)),
            },
            series,
            spans: Vec::new(),
            marks,
        })],
    )
}

/// Readable share against the share of certificates found at send time.
pub fn availability(r: &RunReport) -> Figure {
    let early: Vec<(f64, f64)> =
        r.availability_sweep.iter().map(|p| (p.cert_availability * 100.0, p.readable_share * 100.0)).collect();
    let late = r.late.readable_share * 100.0;
    figure(
        format!("{}: readable share against certificate availability", r.scenario.name),
        Some(super::headline::of(r).takeaway),
        vec![Panel::Xy(XyChart {
            title: "each early-binding point is a run of the same workload".into(),
            x: Axis {
                label: "recipient certificates found at send time (%)".into(),
                log: false,
                range: (0.0, 100.0),
                ticks: linear_ticks(0.0, 100.0),
            },
            y: Axis {
                label: "pairs read / pairs opened (%)".into(),
                log: false,
                range: (0.0, 105.0),
                ticks: linear_ticks(0.0, 100.0),
            },
            series: vec![
                Series {
                    name: "late binding (EKG): no lookup at send (this run)".into(),
                    colour: LATE,
                    style: Style::Dashed,
                    points: vec![(0.0, late), (100.0, late)],
                },
                Series {
                    name: "early binding (S/MIME)".into(),
                    colour: EARLY,
                    style: Style::LinePoints,
                    points: early,
                },
            ],
            spans: Vec::new(),
            marks: vec![(r.scenario.workload.cert_availability * 100.0, "this scenario".into())],
        })],
    )
}

/// Bytes and RSA operations per message against the number of recipients.
pub fn list_size(r: &RunReport) -> Figure {
    let sizes: Vec<usize> = r.late.by_list_size.keys().copied().collect();
    let (lo, hi) = (sizes.first().copied().unwrap_or(1) as f64, sizes.last().copied().unwrap_or(1) as f64);
    let log_x = hi / lo.max(1.0) >= 10.0;
    let x = || Axis {
        label: format!("recipients per message{}", if log_x { " (log scale)" } else { "" }),
        log: log_x,
        range: if log_x { (lo / 1.5, hi * 1.5) } else { (0.0, nice_max(hi)) },
        ticks: sizes.iter().map(|n| (*n as f64, n.to_string())).collect(),
    };
    let series = |x: &SchemeReport, f: &dyn Fn((f64, f64, f64)) -> f64| -> Vec<(f64, f64)> {
        x.by_list_size.iter().map(|(n, c)| (*n as f64, f(c.per_message()).max(0.01))).collect()
    };
    let y_log = |label: &str, pts: &[&[(f64, f64)]]| {
        let all = pts.iter().flat_map(|p| p.iter().map(|(_, y)| *y));
        let (mn, mx) = all.fold((f64::MAX, 0.0f64), |(a, b), y| (a.min(y), b.max(y)));
        let (mn, mx) = (mn.min(mx).max(0.01) / 2.0, mx.max(0.02) * 2.0);
        Axis { label: label.into(), log: true, range: (mn, mx), ticks: log_ticks(mn, mx, short) }
    };
    let (lk, ek) = (series(&r.late, &|c| c.0), series(&r.early, &|c| c.0));
    let (lp, ep) = (series(&r.late, &|c| c.1), series(&r.early, &|c| c.1));
    let (lq, eq) = (series(&r.late, &|c| c.2), series(&r.early, &|c| c.2));
    let bytes = XyChart {
        title: "bytes on the wire".into(),
        x: x(),
        y: y_log("KiB per message (log scale)", &[&lk, &ek]),
        series: vec![
            Series { name: "late binding (EKG)".into(), colour: LATE, style: Style::LinePoints, points: lk },
            Series { name: "early binding (S/MIME)".into(), colour: EARLY, style: Style::LinePoints, points: ek },
        ],
        spans: Vec::new(),
        marks: Vec::new(),
    };
    let ops = XyChart {
        title: "RSA operations, every party".into(),
        x: x(),
        y: y_log("RSA operations per message (log scale)", &[&lp, &ep, &lq, &eq]),
        series: vec![
            Series { name: "late, private".into(), colour: LATE, style: Style::LinePoints, points: lp },
            Series { name: "late, public".into(), colour: LATE, style: Style::Dashed, points: lq },
            Series { name: "early, private".into(), colour: EARLY, style: Style::LinePoints, points: ep },
            Series { name: "early, public".into(), colour: EARLY, style: Style::Dashed, points: eq },
        ],
        spans: Vec::new(),
        marks: Vec::new(),
    };
    let h = super::headline::of(r);
    let note = if h.plot == "list_size.svg" { h.takeaway } else { "Mean per message of each list size.".into() };
    figure(format!("{}: cost against list size", r.scenario.name), Some(note), vec![Panel::Xy(bytes), Panel::Xy(ops)])
}
