//! Output: the terminal comparison, the JSON report, the plots (SVG) and an HTML page per
//! run; the summary of several runs.

pub mod headline;
pub mod html;
pub mod plots;

use std::fmt::Write as _;
use std::path::Path;

use crate::RunReport;
use crate::error::SimError;
use crate::metrics::SchemeReport;

/// Widest line of [`text`].
pub const WIDTH: usize = 100;

/// The readable comparison of the two schemes: the takeaway first, then one table whose
/// counts add up the same way for both schemes (pairs = read + lost + never opened).
pub fn text(r: &RunReport) -> String {
    let (l, e) = (&r.late, &r.early);
    let mut s = String::new();
    // Free text wrapped to the table's width.
    let para = |s: &mut String, text: &str| {
        for line in crate::plot::wrap(text, WIDTH) {
            let _ = writeln!(s, "{line}");
        }
    };
    para(&mut s, &format!("scenario {}: {}", r.scenario.name, r.scenario.description.trim()));
    para(
        &mut s,
        &format!(
            "{} users, {} RSA keys made in {:.1} s, provider {}, {} messages, {} (message, recipient) pairs",
            r.users, r.keys_generated, r.setup_secs, r.provider, l.messages, l.pairs
        ),
    );
    if !r.deterministic_bytes {
        para(
            &mut s,
            &format!(
                "provider {} draws some randomness from the OS: the same seed gives the same events and trace \
                 hash, not the same bytes (use provider = \"rustcrypto\" for byte-identical runs)",
                r.provider
            ),
        );
    }
    let h = headline::of(r);
    let _ = writeln!(s);
    para(&mut s, &format!("headline, {}: late {}, early {}", h.what, h.late, h.early));
    para(&mut s, &h.takeaway);
    let _ = writeln!(s);
    let _ = writeln!(s, "{:<46} {:>16} {:>16}", "", "late (EKG)", "early (S/MIME)");
    let row = |s: &mut String, name: &str, a: String, b: String| {
        let _ = writeln!(s, "{name:<46} {a:>16} {b:>16}");
    };
    let na = || "n/a".to_owned();
    let pct = |x: f64| format!("{:.2} %", x * 100.0);
    let lost = |x: &SchemeReport| x.lost.values().sum::<u64>();
    row(&mut s, "(message, recipient) pairs", l.pairs.to_string(), e.pairs.to_string());
    row(&mut s, "  read by their recipient", l.pairs_readable.to_string(), e.pairs_readable.to_string());
    row(&mut s, "  lost for good (reasons below)", lost(l).to_string(), lost(e).to_string());
    row(&mut s, "  never opened (workload)", l.pairs_never_read.to_string(), e.pairs_never_read.to_string());
    row(&mut s, "readable share of the pairs opened", pct(l.readable_share), pct(e.readable_share));
    row(
        &mut s,
        "messages not encrypted for every recipient",
        l.messages_not_encrypted_for_some.to_string(),
        e.messages_not_encrypted_for_some.to_string(),
    );
    row(
        &mut s,
        "  of which for no recipient",
        l.messages_not_encrypted.to_string(),
        e.messages_not_encrypted.to_string(),
    );
    row(
        &mut s,
        "bytes on the wire per message",
        format!("{:.0}", l.bytes_per_message),
        format!("{:.0}", e.bytes_per_message),
    );
    let _ = writeln!(s, "RSA operations, private / public (whole run):");
    for (role, label) in [
        ("sender", "senders"),
        ("gatekeeper", "gatekeepers"),
        ("recipient", "recipients"),
        ("sender_gateway", "sender organisations' gateways"),
        ("recipient_gateway", "recipient organisations' gateways"),
        ("attacker", "the attacker"),
    ] {
        let f = |x: &SchemeReport| {
            if x.scheme == "early" && role == "gatekeeper" {
                return na();
            }
            let o = x.ops.get(role).copied().unwrap_or_default();
            format!("{} / {}", o.private(), o.public())
        };
        let took_part = match role {
            "sender_gateway" => r.scenario.workload.gateway_fetch_share > 0.0,
            "recipient_gateway" => l.foreign_gateway_attempts + e.foreign_gateway_attempts > 0,
            "attacker" => !r.scenario.faults.compromised.is_empty(),
            _ => true,
        };
        if took_part {
            row(&mut s, &format!("  {label}"), f(l), f(e));
        }
    }
    row(
        &mut s,
        "gatekeeper requests (mean / peak per s)",
        format!("{:.2} / {}", l.gatekeeper_rps_mean, l.gatekeeper_rps_peak),
        na(),
    );
    row(
        &mut s,
        "send latency p50 / p99 (virtual s)",
        format!("{:.2} / {:.2}", l.send_latency_secs.p50, l.send_latency_secs.p99),
        na(),
    );
    row(
        &mut s,
        "read latency p50 / p99 (virtual s)",
        format!("{:.2} / {:.2}", l.read_latency_secs.p50, l.read_latency_secs.p99),
        na(),
    );
    row(&mut s, "keys held by gatekeepers (peak)", l.keys_held_peak.to_string(), na());
    row(
        &mut s,
        "key lifetime at gatekeeper mean / max (s)",
        format!("{:.0} / {:.0}", l.key_lifetime_secs.mean, l.key_lifetime_secs.max),
        "unbounded".into(),
    );
    row(&mut s, "orphan keys (issued, never used)", l.orphan_keys.to_string(), na());
    if l.reads_delayed_by_lost_certificate > 0 {
        row(&mut s, "reads waiting for a lost certificate", l.reads_delayed_by_lost_certificate.to_string(), na());
    }
    if !r.scenario.faults.compromised.is_empty() {
        row(
            &mut s,
            "messages exposed by a stolen recipient key",
            l.exposed_messages.to_string(),
            e.exposed_messages.to_string(),
        );
    }
    if l.foreign_gateway_attempts + e.foreign_gateway_attempts > 0 {
        row(
            &mut s,
            "recipient-org gateway attempts (all refused)",
            l.foreign_gateway_attempts.to_string(),
            e.foreign_gateway_attempts.to_string(),
        );
    }
    row(&mut s, "owed keys not delivered after healing", l.owed_undelivered.to_string(), na());
    row(
        &mut s,
        "invariant checks / violations",
        format!("{} / {}", l.checks, l.violations.len()),
        format!("{} / {}", e.checks, e.violations.len()),
    );
    row(
        &mut s,
        "events / virtual time (s)",
        format!("{} / {:.0}", l.events, l.virtual_secs),
        format!("{} / {:.0}", e.events, e.virtual_secs),
    );
    row(
        &mut s,
        "wall time (s) / outside crypto",
        format!("{:.2} / {}", l.wall_secs, pct(l.outside_crypto_share)),
        format!("{:.2} / {}", e.wall_secs, pct(e.outside_crypto_share)),
    );
    let _ =
        writeln!(s, "n/a: early binding has no gatekeeper and no round trip to one (sending and reading are local).");
    for p in &r.availability_sweep {
        let _ = writeln!(
            s,
            "early binding at {:.0} % of certificates found: {} readable, {} messages not encrypted for all",
            p.cert_availability * 100.0,
            pct(p.readable_share),
            p.messages_not_encrypted_for_some
        );
    }
    let _ = writeln!(s);
    for x in [l, e] {
        if !x.lost.is_empty() {
            let lost: Vec<String> = x.lost.iter().map(|(k, v)| format!("{k} {v}")).collect();
            para(&mut s, &format!("{} binding, pairs lost for good, by reason: {}", x.scheme, lost.join(", ")));
        }
        for v in x.violations.iter().take(10) {
            let _ = writeln!(s, "{} binding VIOLATION {v}", x.scheme);
        }
    }
    let _ = writeln!(
        s,
        "whole run {:.2} s, {} outside crypto and key generation",
        r.wall_secs,
        pct(r.outside_crypto_share)
    );
    let _ = writeln!(s, "trace {}", r.trace_hash);
    if r.scenario.labels.is_some() {
        let _ = writeln!(s);
        s.push_str(&labelled_text(r));
    }
    if let Some(list) = &r.list {
        let _ = writeln!(s);
        s.push_str(&crate::lists::text(list));
    }
    if let Some(c) = &r.compromise {
        let _ = writeln!(s);
        s.push_str(&crate::compromise::text(c));
    }
    let _ = writeln!(s, "verdict: {:?} (exit {})", r.verdict, r.verdict.exit_code());
    s
}

/// Who read the labelled messages, per scheme; the third column is early binding with the
/// only early-binding mitigation, a sender-side check before encryption (the sender leaves out
/// every recipient it knows to lack the label): its reads are early binding's by entitled
/// recipients, and no unentitled one.
fn labelled_text(r: &RunReport) -> String {
    let (l, e) = (&r.late.labelled, &r.early.labelled);
    let mut s = String::new();
    let label = r.scenario.labels.as_ref().map_or("", |x| x.label.as_str());
    let _ = writeln!(s, "labelled messages ({label}): {} of {}", l.messages, r.late.messages);
    let _ = writeln!(s, "{:<46} {:>12} {:>12} {:>16}", "", "late (EKG)", "early", "early, checked");
    let row = |s: &mut String, name: &str, a: u64, b: u64, c: u64| {
        let _ = writeln!(s, "{name:<46} {a:>12} {b:>12} {c:>16}");
    };
    row(&mut s, "pairs, recipient holds the label", l.pairs_entitled, e.pairs_entitled, e.pairs_entitled);
    row(&mut s, "pairs, recipient lacks it", l.pairs_unentitled, e.pairs_unentitled, e.pairs_unentitled);
    row(&mut s, "read by a recipient holding it", l.read_entitled, e.read_entitled, e.read_entitled);
    row(&mut s, "read by a recipient lacking it", l.read_unentitled, e.read_unentitled, 0);
    row(&mut s, "withheld by the policy (late: at release)", l.withheld, 0, e.read_unentitled);
    let _ = writeln!(
        s,
        "early, checked: the sender leaves out recipients it knows to lack the label (derived from the early run)"
    );
    s
}

/// Writes `report.json`, `report.txt`, every plot of [`plots::files`] and `index.html` into
/// `dir`; returns the names of the files written.
pub fn write(r: &RunReport, dir: &Path) -> Result<Vec<String>, SimError> {
    let out = |e: std::io::Error| SimError::Output(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(out)?;
    let json = serde_json::to_string_pretty(r).map_err(|e| SimError::Output(e.to_string()))?;
    std::fs::write(dir.join("report.json"), json).map_err(out)?;
    let text = text(r);
    std::fs::write(dir.join("report.txt"), &text).map_err(out)?;
    let mut written = vec!["index.html".to_owned(), "report.json".to_owned(), "report.txt".to_owned()];
    let plots = plots::files(r);
    for (name, figure) in &plots {
        std::fs::write(dir.join(name), figure.svg()).map_err(out)?;
        written.push((*name).to_owned());
    }
    let names: Vec<&str> = plots.iter().map(|(n, _)| *n).collect();
    std::fs::write(dir.join("index.html"), html::run_page(r, &text, &names)).map_err(out)?;
    Ok(written)
}

/// Writes `index.html` (the summary page) and `summary.txt` into `dir`, above the runs'
/// directories.
pub fn write_summary(reports: &[RunReport], dir: &Path) -> Result<(), SimError> {
    let out = |e: std::io::Error| SimError::Output(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(out)?;
    std::fs::write(dir.join("summary.txt"), headline::summary(reports)).map_err(out)?;
    std::fs::write(dir.join("index.html"), html::summary_page(reports)).map_err(out)?;
    Ok(())
}
