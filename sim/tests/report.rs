//! The report of a run: every kind of plot renders as well-formed SVG with the series it must
//! draw and titled axes, the HTML page shows them beside the table, the counts add up the same
//! way in both schemes, each scenario's headline is computed, the policy is parsed by one
//! parser, and the shipped scenarios are counted right wherever they are listed.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use ekg_core::ledger::ReleasePolicy;
use ekg_sim::{Options, RunReport, Scenario};

/// A small world with everything a plot can show: two list sizes, an outage, a crash, loss, a
/// stolen recipient key, the sender's and the recipient's gateways, and an availability sweep.
const EVERYTHING: &str = r#"
name = "everything"
seed = 5
provider = "rustcrypto"

[[org]]
domain = "a.example"
users = 4
trusts = ["b.example"]

[[org]]
domain = "b.example"
users = 4
trusts = ["a.example"]

[workload]
messages = 24
rate_per_sec = 0.2
recipients = [[1, 60], [4, 40]]
cross_org_share = 0.6
sizes = [[2048, 100]]
cert_availability = 0.6
read_delay_mean_secs = 40
never_read_share = 0.1
gateway_fetch_share = 0.3
foreign_gateway_probe_share = 0.5

[faults]
loss = 0.05
outages = [{ org = "a.example", at_secs = 30, for_secs = 40 }]
crashes = [{ org = "b.example", at_secs = 60, restart_after_secs = 20 }]
compromised = [{ user = "u1@b.example", at_secs = 90 }]

[gatekeeper]
policy = "same_certificate"
retention_secs = 300
max_deliveries = 8
ticket_lifetime_secs = 3600

[report]
headline = "exposure"
cert_availability_sweep = [0.2, 0.6, 1.0]
"#;

fn run(s: &Scenario) -> RunReport {
    let mut quiet = |_: &str, _: u64, _: u64| {};
    ekg_sim::run(s, "test".into(), Options { threads: 2, progress: &mut quiet, base: ekg_sim::BASE }).expect("run")
}

fn out_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The series a well-formed SVG draws (`<g class="series" data-series=...>`), its axis titles,
/// and the number of points of each series.
struct Drawn {
    series: BTreeSet<String>,
    axis_titles: Vec<String>,
    points: std::collections::BTreeMap<String, usize>,
    spans: BTreeSet<String>,
    marks: BTreeSet<String>,
}

fn parse(path: &std::path::Path) -> Drawn {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{}: not well-formed: {e}", path.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg", "{}", path.display());
    let class = |n: &roxmltree::Node, c: &str| n.attribute("class") == Some(c);
    let mut d = Drawn {
        series: BTreeSet::new(),
        axis_titles: Vec::new(),
        points: Default::default(),
        spans: BTreeSet::new(),
        marks: BTreeSet::new(),
    };
    for n in doc.descendants() {
        if class(&n, "series") {
            let name = n.attribute("data-series").unwrap().to_owned();
            let marks = n.children().filter(|c| matches!(c.tag_name().name(), "circle" | "rect")).count();
            d.points.insert(name.clone(), marks);
            d.series.insert(name);
        }
        if class(&n, "axis-title") {
            d.axis_titles.push(n.text().unwrap_or("").to_owned());
        }
        if class(&n, "span") {
            d.spans.insert(n.attribute("data-span").unwrap().to_owned());
        }
        if class(&n, "mark") {
            d.marks.insert(n.attribute("data-mark").unwrap().to_owned());
        }
    }
    d
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn every_kind_of_plot_renders_well_formed_with_its_series_and_titled_axes() {
    let r = run(&Scenario::from_toml(EVERYTHING).unwrap());
    let dir = out_dir("everything");
    let written = ekg_sim::report::write(&r, &dir).unwrap();
    let plots = [
        "exposure.svg",
        "outcome.svg",
        "rsa_operations.svg",
        "bytes.svg",
        "keys_held.svg",
        "latency.svg",
        "availability.svg",
        "list_size.svg",
    ];
    for p in plots {
        assert!(written.iter().any(|w| w == p), "{p} not written: {written:?}");
    }
    let both = set(&["late binding (EKG)", "early binding (S/MIME)"]);

    let d = parse(&dir.join("exposure.svg"));
    assert_eq!(d.series, set(&["mail listing the victim", "exposed, early binding", "exposed, late binding"]));
    assert!(d.marks.contains("u1@b.example's key stolen"), "{:?}", d.marks);

    let d = parse(&dir.join("outcome.svg"));
    assert!(d.series.contains("read") && d.series.contains("never opened (workload)"), "{:?}", d.series);
    for reason in r.late.lost.keys().chain(r.early.lost.keys()) {
        assert!(d.series.contains(&format!("lost: {reason}")), "{reason}: {:?}", d.series);
    }

    let d = parse(&dir.join("rsa_operations.svg"));
    assert_eq!(d.series, both);
    // Two panels (private, public), each with its vertical axis titled.
    assert_eq!(d.axis_titles.iter().filter(|t| t.contains("RSA operations per message")).count(), 2);

    let d = parse(&dir.join("bytes.svg"));
    let artifacts: BTreeSet<String> =
        r.late.bytes.keys().chain(r.early.bytes.keys()).map(|k| k.replace('_', " ")).collect();
    assert_eq!(d.series, artifacts);
    assert!(d.axis_titles.iter().any(|t| t == "KiB per message"), "{:?}", d.axis_titles);

    let d = parse(&dir.join("keys_held.svg"));
    assert_eq!(d.series, set(&["keys held (late binding)"]));
    assert!(d.axis_titles.iter().any(|t| t.contains("log scale")), "{:?}", d.axis_titles);
    assert!(d.spans.iter().any(|s| s.starts_with("fault phase")), "{:?}", d.spans);
    assert!(d.spans.contains("a.example down") && d.marks.contains("b.example crashes"), "{:?} {:?}", d.spans, d.marks);

    let d = parse(&dir.join("latency.svg"));
    assert_eq!(d.series, set(&["read: opened to plaintext", "send: submitted to sent"]));
    assert_eq!(d.points["read: opened to plaintext"], r.late.read_latency_ms.len());
    assert_eq!(d.points["send: submitted to sent"], r.late.send_latency_ms.len());
    assert!(d.axis_titles.iter().any(|t| t.contains("virtual minutes")), "{:?}", d.axis_titles);

    let d = parse(&dir.join("availability.svg"));
    assert!(d.series.contains("early binding (S/MIME)"), "{:?}", d.series);
    assert_eq!(d.points["early binding (S/MIME)"], 3, "one point per swept availability");

    let d = parse(&dir.join("list_size.svg"));
    assert_eq!(
        d.series,
        set(&[
            "late binding (EKG)",
            "early binding (S/MIME)",
            "late, private",
            "late, public",
            "early, private",
            "early, public"
        ])
    );

    // Every plot has a title on each axis (none empty).
    for p in plots {
        let d = parse(&dir.join(p));
        assert!(d.axis_titles.iter().filter(|t| !t.is_empty()).count() >= 1, "{p}: {:?}", d.axis_titles);
    }

    // The page shows the table beside every plot, the headline's first.
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    let first = html.find("<img src=\"").map(|i| &html[i + 10..]).unwrap();
    assert!(first.starts_with("exposure.svg"), "{}", &first[..40]);
    for p in plots {
        assert!(html.contains(&format!("<img src=\"{p}\"")), "{p}");
    }
    assert!(html.contains("<pre>scenario everything"), "the table");
    serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
}

#[test]
fn the_counts_add_up_the_same_way_in_both_schemes() {
    counts_add_up(&run(&Scenario::from_toml(EVERYTHING).unwrap()));
    // Few certificates and many who never read: early binding cannot encrypt some messages for
    // anyone, and some of their recipients would never have read them (never read, not lost).
    let scarce = EVERYTHING
        .replace("cert_availability = 0.6", "cert_availability = 0.2")
        .replace("never_read_share = 0.1", "never_read_share = 0.5");
    let r = run(&Scenario::from_toml(&scarce).unwrap());
    assert!(r.early.messages_not_encrypted > 0, "of {} messages", r.early.messages);
    counts_add_up(&r);
}

fn counts_add_up(r: &RunReport) {
    for x in [&r.late, &r.early] {
        let lost: u64 = x.lost.values().sum();
        assert_eq!(x.pairs, x.pairs_readable + lost + x.pairs_never_read, "{}: {:?}", x.scheme, x.lost);
        // Every message and every byte is charged to its list size.
        let by = &x.by_list_size;
        assert_eq!(by.values().map(|c| c.messages).sum::<u64>(), x.messages, "{}", x.scheme);
        assert_eq!(by.values().map(|c| c.bytes).sum::<u64>(), x.bytes.values().sum::<u64>(), "{}", x.scheme);
        let private: u64 = x.ops.values().map(|o| o.private()).sum();
        let charged: u64 = by.values().map(|c| c.private_ops).sum();
        assert!(charged <= private && charged * 10 >= private * 9, "{}: {charged} of {private}", x.scheme);
    }
    assert_eq!(r.late.pairs, r.early.pairs);
    assert_eq!(r.late.pairs_never_read, r.early.pairs_never_read, "the workload decides who never reads");
}

#[test]
fn the_summary_gives_each_run_its_headline_and_takeaway() {
    let r = run(&Scenario::from_toml(EVERYTHING).unwrap());
    let text = ekg_sim::report::headline::summary(std::slice::from_ref(&r));
    assert!(text.contains("messages exposed by a stolen key"), "{text}");
    assert!(text.contains(&format!("exposed {} messages under late binding", r.late.exposed_messages)), "{text}");
    let dir = out_dir("summary");
    ekg_sim::report::write_summary(std::slice::from_ref(&r), &dir).unwrap();
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(html.contains("href=\"everything/index.html\"") && html.contains("everything/exposure.svg"), "{html}");
    let table = ekg_sim::report::text(&r);
    assert!(table.lines().all(|l| l.chars().count() <= 100), "{table}");
}

/// The scenarios' gatekeeper is the core's one form: without a section, the core's defaults
/// but the four the simulator deliberately sets (`simulated_gatekeeper`); a section's field
/// left out is the core's default, a field it does not have is refused.
#[test]
fn the_scenario_gatekeeper_is_the_cores_settings_form() {
    use ekg_core::role::GatekeeperSettings;
    let base = include_str!("../../fixtures/scenarios/seed-policy.toml");
    let start = base.find("[gatekeeper]").unwrap();
    let end = base[start..].find("\n\n").map_or(base.len(), |e| start + e + 2);
    let without = format!("{}{}", &base[..start], &base[end..]);
    let s = Scenario::from_toml(&without).unwrap().gatekeeper;
    assert_eq!(s, ekg_sim::scenario::simulated_gatekeeper());
    let d = GatekeeperSettings::default();
    assert_eq!(
        (s.policy, s.retention_secs, s.max_deliveries, s.ticket_lifetime_secs),
        (ReleasePolicy::SameCertificate, 600, 8, 2 * 24 * 3600)
    );
    let rest = GatekeeperSettings {
        policy: d.policy,
        retention_secs: d.retention_secs,
        max_deliveries: d.max_deliveries,
        ticket_lifetime_secs: d.ticket_lifetime_secs,
        ..s
    };
    assert_eq!(rest, d);
    let partial = base.replace("max_deliveries = 1\n", "");
    assert_eq!(Scenario::from_toml(&partial).unwrap().gatekeeper.max_deliveries, d.max_deliveries);
    let more = base.replace("max_deliveries = 1\n", "max_deliveries = 1\nmax_clock_skew_secs = 60\n");
    assert_eq!(Scenario::from_toml(&more).unwrap().gatekeeper.max_clock_skew_secs, 60);
    let typo = base.replace("max_deliveries = 1\n", "max_delivery = 1\n");
    assert_eq!(Scenario::from_toml(&typo).unwrap_err().code(), "scenario_invalid");
}

#[test]
fn an_unknown_policy_is_refused_not_read_as_a_default() {
    let base = include_str!("../../fixtures/scenarios/seed-policy.toml");
    assert_eq!(ekg_sim::shipped("seed-policy").unwrap().unwrap().gatekeeper.policy, ReleasePolicy::Once);
    let same = base.replace("policy = \"once\"", "policy = \"same_certificate\"");
    assert_eq!(Scenario::from_toml(&same).unwrap().gatekeeper.policy, ReleasePolicy::SameCertificate);
    for bad in ["twice", "Once", "same-certificate", ""] {
        let text = base.replace("policy = \"once\"", &format!("policy = \"{bad}\""));
        let e = Scenario::from_toml(&text).unwrap_err();
        assert_eq!(e.code(), "scenario_invalid", "{bad}");
        assert!(e.to_string().contains("once") && e.to_string().contains("same_certificate"), "{bad}: {e}");
    }
}

#[test]
fn a_headline_without_its_data_is_refused() {
    assert!(Scenario::from_toml(EVERYTHING).is_ok());
    let sweep = "cert_availability_sweep = [0.2, 0.6, 1.0]";
    let no_theft = EVERYTHING.replace("compromised = [{ user = \"u1@b.example\", at_secs = 90 }]", "");
    let one_point = EVERYTHING
        .replace("headline = \"exposure\"", "headline = \"availability\"")
        .replace(sweep, "cert_availability_sweep = [0.5]");
    let out_of_range = EVERYTHING.replace(sweep, "cert_availability_sweep = [0.2, 1.5]");
    let one_size = EVERYTHING
        .replace("headline = \"exposure\"", "headline = \"list_size\"")
        .replace("[[1, 60], [4, 40]]", "[[2, 1]]");
    for text in [no_theft, one_point, out_of_range, one_size] {
        let e = Scenario::from_toml(&text).unwrap_err();
        assert_eq!(e.code(), "scenario_invalid", "{e}");
    }
}

#[test]
fn the_shipped_scenarios_are_counted_right_in_the_docs() {
    let n = ekg_sim::SHIPPED.len();
    assert_eq!(n, std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/scenarios")).unwrap().count());
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/simulator.md")).unwrap();
    let words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"];
    for (i, w) in words.iter().enumerate() {
        if i != n {
            assert!(!docs.contains(&format!("all {w}")) && !docs.contains(&format!("{w} runs")), "docs say {w}");
        }
    }
    assert!(docs.contains(&format!("all {}", words[n])), "docs/simulator.md names the count");
    // The results table has one row per shipped scenario.
    for (name, _) in ekg_sim::SHIPPED {
        assert!(docs.lines().any(|l| l.starts_with(&format!("| {name} |"))), "{name} has no row in docs/simulator.md");
    }
}
