//! Each scenario's headline: the figure it leads with (late and early) and a one-line
//! takeaway, both computed from the run; and the summary of several runs.

use std::fmt::Write as _;

use crate::RunReport;
use crate::metrics::SchemeReport;
use crate::scenario::Headline;

/// A headline: what is compared, the two values, and the sentence that says what it shows.
pub struct Figure {
    /// What the values are.
    pub what: String,
    /// Late binding's value.
    pub late: String,
    /// Early binding's value (`n/a` with the reason when the scheme has no such thing).
    pub early: String,
    /// One sentence, from measured values only.
    pub takeaway: String,
    /// The plot that shows it (a file of [`super::plots::files`]).
    pub plot: &'static str,
}

fn pct(x: f64) -> String {
    format!("{:.2} %", x * 100.0)
}

/// The headline of `r`.
pub fn of(r: &RunReport) -> Figure {
    let (l, e) = (&r.late, &r.early);
    match r.scenario.report.headline {
        Headline::Readable => readable(l, e),
        Headline::Latency => latency(r),
        Headline::Exposure => Figure {
            what: "messages exposed by a stolen key".into(),
            late: l.exposed_messages.to_string(),
            early: e.exposed_messages.to_string(),
            takeaway: format!(
                "A stolen recipient key exposed {} messages under late binding and {} under early binding, of {} \
                 listing the victim: early binding exposes all mail ever encrypted to that key, late binding only \
                 the messages whose key the gatekeeper still held at the theft or issued after it.",
                l.exposed_messages,
                e.exposed_messages,
                r.stolen_key_mail_submitted_ms.len()
            ),
            plot: "exposure.svg",
        },
        Headline::Availability => availability(r),
        Headline::ListSize => list_size(l, e),
        Headline::KeysHeld => Figure {
            what: "keys held at the peak".into(),
            late: l.keys_held_peak.to_string(),
            early: "n/a".into(),
            takeaway: format!(
                "The gatekeepers held at most {} keys; a key lived {:.0} s on average and {:.0} s at most (ticket \
                 lifetime {} s, retention {} s after the last listed recipient).",
                l.keys_held_peak,
                l.key_lifetime_secs.mean,
                l.key_lifetime_secs.max,
                r.scenario.gatekeeper.ticket_lifetime_secs,
                r.scenario.gatekeeper.retention_secs
            ),
            plot: "keys_held.svg",
        },
    }
}

fn readable(l: &SchemeReport, e: &SchemeReport) -> Figure {
    let lost = |x: &SchemeReport| match x.lost.iter().max_by_key(|(_, n)| **n) {
        None => "lost none".to_owned(),
        Some((k, n)) => format!("lost {} ({n} to {k})", x.lost.values().sum::<u64>()),
    };
    Figure {
        what: "readable share of pairs opened".into(),
        late: pct(l.readable_share),
        early: pct(e.readable_share),
        takeaway: format!(
            "Late binding delivered {} of the pairs whose recipient opened the message and {}; early binding {} and {}.",
            pct(l.readable_share),
            lost(l),
            pct(e.readable_share),
            lost(e)
        ),
        plot: "outcome.svg",
    }
}

/// p99 of the latencies (ms) of the reads started in `[from, to)` virtual ms, in seconds.
fn p99_secs(reads: &[(u64, u64)], from: u64, to: u64) -> Option<f64> {
    let v: Vec<f64> = reads.iter().filter(|(t, _)| (from..to).contains(t)).map(|(_, l)| *l as f64 / 1000.0).collect();
    (!v.is_empty()).then(|| crate::metrics::Stats::of(v).p99)
}

fn latency(r: &RunReport) -> Figure {
    let l = &r.late;
    let end = (r.fault_phase_end_secs * 1000.0) as u64;
    let during = p99_secs(&l.read_latency_ms, 0, end);
    let after = p99_secs(&l.read_latency_ms, end, u64::MAX);
    let show = |x: Option<f64>| x.map_or("no reads".to_owned(), |v| format!("{v:.2} s"));
    Figure {
        what: "read latency p99 (virtual s)".into(),
        late: format!("{:.2}", l.read_latency_secs.p99),
        early: "n/a".into(),
        takeaway: format!(
            "Late binding's read latency p99 was {} for reads started in the fault phase and {} after it (max {:.2} s); \
             {} owed keys were undelivered after healing.",
            show(during),
            show(after),
            l.read_latency_secs.max,
            l.owed_undelivered
        ),
        plot: "latency.svg",
    }
}

fn availability(r: &RunReport) -> Figure {
    let (l, e) = (&r.late, &r.early);
    let lo = r.availability_sweep.iter().min_by(|a, b| a.cert_availability.total_cmp(&b.cert_availability));
    let hi = r.availability_sweep.iter().max_by(|a, b| a.cert_availability.total_cmp(&b.cert_availability));
    let range = match (lo, hi) {
        (Some(a), Some(b)) => format!(
            "from {} at {:.0} % of certificates found to {} at {:.0} %",
            pct(a.readable_share),
            a.cert_availability * 100.0,
            pct(b.readable_share),
            b.cert_availability * 100.0
        ),
        _ => "not swept".into(),
    };
    Figure {
        what: format!("readable share, {:.0} % certs found", r.scenario.workload.cert_availability * 100.0),
        late: pct(l.readable_share),
        early: pct(e.readable_share),
        takeaway: format!(
            "Early binding read {range} (the same workload re-run); late binding needs no certificate at send and read {}.",
            pct(l.readable_share)
        ),
        plot: "availability.svg",
    }
}

fn list_size(l: &SchemeReport, e: &SchemeReport) -> Figure {
    let largest = l.by_list_size.keys().next_back().copied().unwrap_or(0);
    let at = |x: &SchemeReport| x.by_list_size.get(&largest).map(|c| c.per_message()).unwrap_or_default();
    let ((lk, lp, _), (ek, ep, _)) = (at(l), at(e));
    Figure {
        what: format!("KiB per {largest}-recipient message"),
        late: format!("{lk:.0}"),
        early: format!("{ek:.0}"),
        takeaway: format!(
            "A {largest}-recipient message cost {lk:.0} KiB and {lp:.0} RSA private operations under late binding, \
             {ek:.0} KiB and {ep:.0} under early binding ({:.1}x the bytes).",
            if ek > 0.0 { lk / ek } else { 0.0 }
        ),
        plot: "list_size.svg",
    }
}

/// The summary of several runs: one line per scenario with its verdict and headline.
pub fn summary(reports: &[RunReport]) -> String {
    let rows: Vec<[String; 5]> = reports
        .iter()
        .map(|r| {
            let h = of(r);
            [r.scenario.name.clone(), format!("{:?}", r.verdict), h.what, h.late, h.early]
        })
        .collect();
    let header = ["scenario", "verdict", "headline", "late (EKG)", "early (S/MIME)"].map(str::to_owned);
    let mut w = [0usize; 5];
    for row in rows.iter().chain([&header]) {
        for (w, c) in w.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut s = String::new();
    for row in [&header].into_iter().chain(rows.iter()) {
        let mut line = String::new();
        for (i, (c, w)) in row.iter().zip(w).enumerate() {
            let _ = if i < 3 { write!(line, "{c:<w$}  ") } else { write!(line, "{c:>w$}  ") };
        }
        let _ = writeln!(s, "{}", line.trim_end());
    }
    let _ = writeln!(s, "n/a: early binding has no gatekeeper and no round trip to one.");
    for r in reports {
        let lines = crate::plot::wrap(&format!("{}: {}", r.scenario.name, of(r).takeaway), 96);
        for (i, line) in lines.iter().enumerate() {
            let _ = writeln!(s, "{}{line}", if i == 0 { "" } else { "    " });
        }
    }
    s
}
