//! The conformance report: one record per case (JSON Lines, the vectors' record format with
//! `id`, `family`, `flags` and `reason` added), JUnit XML for CI systems, and a one-page
//! Markdown summary by family and by flag. Expected failures are declared in a JSON file
//! (`{"gatekeeper/12": "why"}`); a declared case that passes is reported as unexpected.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};

/// What happened to a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Passed.
    Pass,
    /// Failed.
    Fail,
    /// Not run: the implementation said it cannot (the reason is recorded).
    Skip,
    /// Failed, as the expected-failures file declares.
    ExpectedFail,
    /// Passed, though the expected-failures file declares it failing (unexpected).
    UnexpectedPass,
}

impl Verdict {
    /// As in the records.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Skip => "skip",
            Verdict::ExpectedFail => "expected_fail",
            Verdict::UnexpectedPass => "unexpected_pass",
        }
    }

    /// Whether the run must fail for it.
    pub fn unexpected(self) -> bool {
        matches!(self, Verdict::Fail | Verdict::UnexpectedPass)
    }
}

/// One case's result.
#[derive(Clone, Debug)]
pub struct Case {
    /// `family/tcId` or `family/name` (`gatekeeper/12`, `flow/3`, `produce/seal`).
    pub id: String,
    /// The vector file, if the case is a vector.
    pub file: String,
    /// The test id within it (0 for cases that are not vectors).
    pub tc_id: u64,
    /// The family.
    pub family: String,
    /// The vector's flags.
    pub flags: Vec<String>,
    /// What was expected (`valid`, `invalid bad_signature`).
    pub expected: String,
    /// What the implementation did.
    pub got: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Why skipped, or why expected to fail.
    pub reason: String,
    /// The test's comment.
    pub comment: String,
}

impl Case {
    /// One JSON Lines record.
    pub fn json_line(&self) -> String {
        json!({
            "id": self.id, "file": self.file, "tcId": self.tc_id, "family": self.family, "flags": self.flags,
            "result": self.verdict.as_str(), "expected": self.expected, "got": self.got,
            "reason": self.reason, "comment": self.comment,
        })
        .to_string()
    }
}

/// Most bytes of an expected-failures file.
pub const MAX_EXPECTATIONS_LEN: u64 = 1024 * 1024;

/// Reads an expected-failures file: a JSON object from case id to reason.
pub fn expectations(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let text = ekg_fixtures::read_bounded(path, MAX_EXPECTATIONS_LEN).map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    let obj = v.as_object().ok_or_else(|| format!("{}: a JSON object {{\"case id\": \"reason\"}}", path.display()))?;
    obj.iter()
        .map(|(k, r)| match r.as_str() {
            Some(r) if !r.trim().is_empty() => Ok((k.clone(), r.to_owned())),
            _ => Err(format!("{}: {k}: the reason must be a non-empty string", path.display())),
        })
        .collect()
}

/// Applies the expected failures to raw pass/fail verdicts.
pub fn apply_expectations(cases: &mut [Case], expected: &BTreeMap<String, String>) {
    for c in cases {
        if let Some(reason) = expected.get(&c.id) {
            c.verdict = match c.verdict {
                Verdict::Fail => Verdict::ExpectedFail,
                Verdict::Pass => Verdict::UnexpectedPass,
                v => v,
            };
            if c.reason.is_empty() {
                c.reason.clone_from(reason);
            }
        }
    }
}

/// Counts by verdict.
pub fn counts(cases: &[Case]) -> BTreeMap<Verdict, usize> {
    let mut m = BTreeMap::new();
    for c in cases {
        *m.entry(c.verdict).or_insert(0) += 1;
    }
    m
}

/// The one-line summary.
pub fn summary(cases: &[Case]) -> String {
    let n = counts(cases);
    let get = |v| n.get(&v).copied().unwrap_or(0);
    format!(
        "{} cases: {} passed, {} failed, {} skipped, {} expected failures, {} unexpected passes",
        cases.len(),
        get(Verdict::Pass),
        get(Verdict::Fail),
        get(Verdict::Skip),
        get(Verdict::ExpectedFail),
        get(Verdict::UnexpectedPass)
    )
}

fn xml(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".into(),
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '"' => "&quot;".into(),
            '\'' => "&apos;".into(),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => " ".into(),
            c => c.to_string(),
        })
        .collect()
}

/// JUnit XML: one `testsuite` per family, one `testcase` per case.
pub fn junit(suite: &str, cases: &[Case]) -> String {
    let mut families: BTreeMap<&str, Vec<&Case>> = BTreeMap::new();
    for c in cases {
        families.entry(c.family.as_str()).or_default().push(c);
    }
    let failures = cases.iter().filter(|c| c.verdict.unexpected()).count();
    let skipped = cases.iter().filter(|c| c.verdict == Verdict::Skip).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">",
        xml(suite),
        cases.len()
    );
    for (family, cs) in families {
        let f = cs.iter().filter(|c| c.verdict.unexpected()).count();
        let s = cs.iter().filter(|c| c.verdict == Verdict::Skip).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{f}\" skipped=\"{s}\">",
            xml(family),
            cs.len()
        );
        for c in cs {
            let _ = write!(out, "    <testcase classname=\"{}\" name=\"{}\">", xml(family), xml(&c.id));
            let detail = format!("expected {}, got {}; {}", c.expected, c.got, c.comment);
            match c.verdict {
                Verdict::Pass => {}
                Verdict::Fail => {
                    let _ = write!(out, "<failure message=\"{}\"/>", xml(&detail));
                }
                Verdict::UnexpectedPass => {
                    let _ = write!(
                        out,
                        "<failure message=\"{}\"/>",
                        xml(&format!("declared as an expected failure ({}) but passed", c.reason))
                    );
                }
                Verdict::Skip => {
                    let _ = write!(out, "<skipped message=\"{}\"/>", xml(&c.reason));
                }
                Verdict::ExpectedFail => {
                    let _ = write!(out, "<system-out>{}</system-out>", xml(&format!("expected failure: {}", c.reason)));
                }
            }
            out.push_str("</testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn table_row(out: &mut String, name: &str, cs: &[&Case]) {
    let n = |v: Verdict| cs.iter().filter(|c| c.verdict == v).count();
    let _ = writeln!(
        out,
        "| {name} | {} | {} | {} | {} | {} | {} |",
        cs.len(),
        n(Verdict::Pass),
        n(Verdict::Fail),
        n(Verdict::Skip),
        n(Verdict::ExpectedFail),
        n(Verdict::UnexpectedPass)
    );
}

/// A one-page Markdown summary: by family, by flag, then every unexpected result and every
/// skip with its reason.
pub fn markdown(title: &str, cases: &[Case]) -> String {
    let mut out = format!("# {title}\n\n{}\n\n", summary(cases));
    let header = "| | cases | pass | fail | skip | expected fail | unexpected pass |\n|---|---|---|---|---|---|---|\n";
    out.push_str("## By family\n\n");
    out.push_str(header);
    let mut families: BTreeMap<&str, Vec<&Case>> = BTreeMap::new();
    let mut flags: BTreeMap<&str, Vec<&Case>> = BTreeMap::new();
    for c in cases {
        families.entry(c.family.as_str()).or_default().push(c);
        for f in &c.flags {
            flags.entry(f.as_str()).or_default().push(c);
        }
    }
    for (f, cs) in &families {
        table_row(&mut out, f, cs);
    }
    out.push_str("\n## By flag\n\n");
    out.push_str(header);
    for (f, cs) in &flags {
        table_row(&mut out, f, cs);
    }
    let bad: Vec<&Case> = cases.iter().filter(|c| c.verdict.unexpected()).collect();
    if !bad.is_empty() {
        out.push_str("\n## Unexpected results\n\n| case | expected | got | comment |\n|---|---|---|---|\n");
        for c in bad {
            let got = if c.verdict == Verdict::UnexpectedPass {
                format!("pass (declared: {})", c.reason)
            } else {
                c.got.clone()
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                c.id,
                c.expected,
                got.replace('|', "/"),
                c.comment.replace('|', "/")
            );
        }
    }
    let declared: Vec<&Case> =
        cases.iter().filter(|c| matches!(c.verdict, Verdict::Skip | Verdict::ExpectedFail)).collect();
    if !declared.is_empty() {
        out.push_str("\n## Skipped and expected failures\n\n| case | result | reason |\n|---|---|---|\n");
        for c in declared {
            let _ = writeln!(out, "| {} | {} | {} |", c.id, c.verdict.as_str(), c.reason.replace('|', "/"));
        }
    }
    out
}

/// Writes the reports that were asked for.
pub fn write(
    cases: &[Case],
    title: &str,
    jsonl: Option<&Path>,
    junit_path: Option<&Path>,
    md: Option<&Path>,
) -> Result<(), String> {
    let put = |p: &Path, text: String| std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()));
    if let Some(p) = jsonl {
        put(p, cases.iter().map(|c| c.json_line() + "\n").collect())?;
    }
    if let Some(p) = junit_path {
        put(p, junit(title, cases))?;
    }
    if let Some(p) = md {
        put(p, markdown(title, cases))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(id: &str, verdict: Verdict) -> Case {
        Case {
            id: id.into(),
            file: "gatekeeper_test.json".into(),
            tc_id: 1,
            family: "gatekeeper".into(),
            flags: vec!["Replay".into()],
            expected: "invalid already_released".into(),
            got: "valid".into(),
            verdict,
            reason: String::new(),
            comment: "a <replay> & more".into(),
        }
    }

    #[test]
    fn expectations_turn_failures_expected_and_passes_unexpected() {
        let mut cases = vec![
            case("gatekeeper/1", Verdict::Fail),
            case("gatekeeper/2", Verdict::Pass),
            case("gatekeeper/3", Verdict::Fail),
        ];
        let declared: BTreeMap<String, String> =
            [("gatekeeper/1", "not yet"), ("gatekeeper/2", "also not yet")].map(|(a, b)| (a.into(), b.into())).into();
        apply_expectations(&mut cases, &declared);
        assert_eq!(cases[0].verdict, Verdict::ExpectedFail);
        assert_eq!(cases[1].verdict, Verdict::UnexpectedPass);
        assert!(!cases[0].verdict.unexpected() && cases[1].verdict.unexpected());
        let x = junit("t", &cases);
        assert_eq!(cases[2].verdict, Verdict::Fail, "not declared");
        assert!(x.contains("<testsuites name=\"t\" tests=\"3\" failures=\"2\" skipped=\"0\">"), "{x}");
        assert!(x.contains("a &lt;replay&gt; &amp; more"), "escaped: {x}");
        assert!(x.contains("declared as an expected failure (also not yet) but passed"));
        let md = markdown("t", &cases);
        assert!(md.contains("| gatekeeper | 3 | 0 | 1 | 0 | 1 | 1 |"), "{md}");
        assert!(md.contains("| Replay | 3 |"));
        assert!(md.contains("| gatekeeper/3 | invalid already_released | valid |"), "{md}");
    }
}
