//! Output: the terminal comparison, the JSON report and SVG plots.

use std::fmt::Write as _;
use std::path::Path;

use crate::RunReport;
use crate::error::SimError;
use crate::metrics::SchemeReport;

/// The readable comparison of the two schemes.
pub fn text(r: &RunReport) -> String {
    let (l, e) = (&r.late, &r.early);
    let mut s = String::new();
    let _ = writeln!(s, "scenario {}: {}", r.scenario.name, r.scenario.description.trim());
    let _ = writeln!(
        s,
        "{} users, {} RSA keys made in {:.1} s, provider {}, {} messages, {} (message, recipient) pairs",
        r.users, r.keys_generated, r.setup_secs, r.provider, l.messages, l.pairs
    );
    if !r.deterministic_bytes {
        let _ = writeln!(
            s,
            "provider {} draws some randomness from the OS: the same seed gives the same events and trace \
             hash, not the same bytes (use provider = \"rustcrypto\" for byte-identical runs)",
            r.provider
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "{:<46} {:>16} {:>16}", "", "late (EKG)", "early (S/MIME)");
    let row = |s: &mut String, name: &str, a: String, b: String| {
        let _ = writeln!(s, "{name:<46} {a:>16} {b:>16}");
    };
    let pct = |x: f64| format!("{:.2} %", x * 100.0);
    row(&mut s, "readable share of pairs that are read", pct(l.readable_share), pct(e.readable_share));
    row(
        &mut s,
        "pairs read / pairs never read",
        format!("{} / {}", l.pairs_readable, l.pairs_never_read),
        format!("{} / {}", e.pairs_readable, e.pairs_never_read),
    );
    row(
        &mut s,
        "messages not encrypted for all at send",
        l.messages_not_encrypted_for_some.to_string(),
        e.messages_not_encrypted_for_some.to_string(),
    );
    row(
        &mut s,
        "messages not encrypted at all at send",
        l.messages_not_encrypted.to_string(),
        e.messages_not_encrypted.to_string(),
    );
    row(
        &mut s,
        "bytes on the wire per message",
        format!("{:.0}", l.bytes_per_message),
        format!("{:.0}", e.bytes_per_message),
    );
    for role in ["sender", "gatekeeper", "recipient", "sender_gateway", "recipient_gateway", "attacker"] {
        let f =
            |x: &SchemeReport| x.ops.get(role).map_or("-".to_owned(), |o| format!("{} / {}", o.private(), o.public()));
        row(&mut s, &format!("RSA private / public ops: {role}"), f(l), f(e));
    }
    row(
        &mut s,
        "gatekeeper requests (mean / peak per s)",
        format!("{:.2} / {}", l.gatekeeper_rps_mean, l.gatekeeper_rps_peak),
        "-".into(),
    );
    row(
        &mut s,
        "send latency p50 / p99 (virtual s)",
        format!("{:.2} / {:.2}", l.send_latency_secs.p50, l.send_latency_secs.p99),
        "0 / 0".into(),
    );
    row(
        &mut s,
        "read latency p50 / p99 (virtual s)",
        format!("{:.2} / {:.2}", l.read_latency_secs.p50, l.read_latency_secs.p99),
        "0 / 0".into(),
    );
    row(&mut s, "keys held by gatekeepers (peak)", l.keys_held_peak.to_string(), "-".into());
    row(
        &mut s,
        "key lifetime at gatekeeper mean / max (s)",
        format!("{:.0} / {:.0}", l.key_lifetime_secs.mean, l.key_lifetime_secs.max),
        "unbounded".into(),
    );
    row(&mut s, "orphan keys (issued, never used)", l.orphan_keys.to_string(), "-".into());
    row(&mut s, "reads waiting for a lost certificate", l.reads_delayed_by_lost_certificate.to_string(), "-".into());
    row(
        &mut s,
        "messages exposed by a stolen recipient key",
        l.exposed_messages.to_string(),
        e.exposed_messages.to_string(),
    );
    row(
        &mut s,
        "recipient-org gateway attempts (all refused)",
        l.foreign_gateway_attempts.to_string(),
        e.foreign_gateway_attempts.to_string(),
    );
    row(&mut s, "owed keys not delivered after healing", l.owed_undelivered.to_string(), "-".into());
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
    let _ = writeln!(s);
    for x in [l, e] {
        if !x.lost.is_empty() {
            let lost: Vec<String> = x.lost.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(s, "{} binding, pairs lost for good, by reason: {}", x.scheme, lost.join(", "));
        }
        for v in x.violations.iter().take(10) {
            let _ = writeln!(s, "{} binding VIOLATION {v}", x.scheme);
        }
    }
    let _ = writeln!(
        s,
        "whole run {:.2} s, {} outside crypto and key generation; trace {}",
        r.wall_secs,
        pct(r.outside_crypto_share),
        r.trace_hash
    );
    let _ = writeln!(s, "verdict: {:?} (exit {})", r.verdict, r.verdict.exit_code());
    s
}

/// Writes `report.json`, `report.txt`, `comparison.svg` and `keys_held.svg` into `dir`.
pub fn write(r: &RunReport, dir: &Path) -> Result<(), SimError> {
    let out = |e: std::io::Error| SimError::Output(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(out)?;
    let json = serde_json::to_string_pretty(r).map_err(|e| SimError::Output(e.to_string()))?;
    std::fs::write(dir.join("report.json"), json).map_err(out)?;
    std::fs::write(dir.join("report.txt"), text(r)).map_err(out)?;
    std::fs::write(dir.join("comparison.svg"), comparison_svg(r)).map_err(out)?;
    std::fs::write(dir.join("keys_held.svg"), keys_held_svg(&r.late)).map_err(out)?;
    Ok(())
}

/// Four panels of two bars: readable share, bytes per message, sender RSA operations per
/// message, recipient RSA private operations per read pair.
pub fn comparison_svg(r: &RunReport) -> String {
    let (l, e) = (&r.late, &r.early);
    let per = |n: u64, d: u64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    let sender_ops = |x: &SchemeReport| x.ops.get("sender").map_or(0.0, |o| per(o.private() + o.public(), x.messages));
    let gk_ops = |x: &SchemeReport| x.ops.get("gatekeeper").map_or(0.0, |o| per(o.private() + o.public(), x.messages));
    let panels = [
        ("readable share (%)", l.readable_share * 100.0, e.readable_share * 100.0),
        ("bytes per message (KiB)", l.bytes_per_message / 1024.0, e.bytes_per_message / 1024.0),
        ("sender RSA ops/message", sender_ops(l), sender_ops(e)),
        ("gatekeeper RSA ops/message", gk_ops(l), gk_ops(e)),
    ];
    let (w, h) = (880.0, 300.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"18\" font-size=\"14\">{}: late binding (EKG, blue) vs early binding (S/MIME, orange)</text>\n",
        escape(&r.scenario.name)
    );
    for (i, (title, a, b)) in panels.iter().enumerate() {
        let x0 = 20.0 + i as f64 * 215.0;
        let top = 60.0;
        let height = 180.0;
        let max = a.max(*b).max(1e-9);
        let _ = writeln!(s, "<text x=\"{x0}\" y=\"45\">{}</text>", escape(title));
        for (j, (v, colour)) in [(a, "#1f77b4"), (b, "#ff7f0e")].iter().enumerate() {
            let bh = **v / max * height;
            let x = x0 + 30.0 + j as f64 * 70.0;
            let y = top + height - bh;
            let _ = writeln!(s, "<rect x=\"{x}\" y=\"{y:.1}\" width=\"50\" height=\"{bh:.1}\" fill=\"{colour}\"/>");
            let _ = writeln!(s, "<text x=\"{x}\" y=\"{:.1}\">{}</text>", y - 4.0, fmt_value(**v));
            let label = if j == 0 { "late" } else { "early" };
            let _ = writeln!(s, "<text x=\"{}\" y=\"{}\">{label}</text>", x + 10.0, top + height + 16.0);
        }
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>",
            x0 + 20.0,
            top + height,
            x0 + 180.0,
            top + height
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Keys held by all gatekeepers against virtual time.
pub fn keys_held_svg(l: &SchemeReport) -> String {
    let (w, h, left, bottom, top) = (880.0, 320.0, 60.0, 40.0, 30.0);
    let max_t = l.keys_held.iter().map(|(t, _)| *t).max().unwrap_or(1).max(1) as f64;
    let max_k = l.keys_held.iter().map(|(_, k)| *k).max().unwrap_or(1).max(1) as f64;
    let px = |t: f64| left + t / max_t * (w - left - 20.0);
    let py = |k: f64| h - bottom - k / max_k * (h - bottom - top);
    let points: Vec<String> =
        l.keys_held.iter().map(|(t, k)| format!("{:.1},{:.1}", px(*t as f64), py(*k as f64))).collect();
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"18\" font-size=\"14\">Keys held by the gatekeepers (late binding); early binding: every key lives as long as any recipient key</text>\n\
         <line x1=\"{left}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\" stroke=\"black\"/>\n\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{y0}\" stroke=\"black\"/>\n\
         <text x=\"4\" y=\"{ty}\">{max_k}</text><text x=\"4\" y=\"{y0}\">0</text>\n\
         <text x=\"{x1m}\" y=\"{tl}\">{max_t} s</text><text x=\"{left}\" y=\"{tl}\">0</text>\n\
         <polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"{}\"/>\n</svg>\n",
        points.join(" "),
        y0 = h - bottom,
        x1 = w - 20.0,
        x1m = w - 80.0,
        ty = top + 4.0,
        tl = h - bottom + 16.0,
    )
}

fn fmt_value(v: f64) -> String {
    if v >= 100.0 { format!("{v:.0}") } else { format!("{v:.2}") }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
