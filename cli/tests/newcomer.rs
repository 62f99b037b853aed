//! What a newcomer meets in the first hour (issue 26): `ekg simulate --help` names every
//! shipped scenario, `ekg check` fits 100 columns and names the actors in its traces,
//! `ekg fixtures check` counts per family, and the demo's `OPENSSL.sh` says which OpenSSL it
//! needs before it tries one that cannot work.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::process::{Command, Output};

const EKG: &str = env!("CARGO_BIN_EXE_ekg");

fn ekg(args: &[&str]) -> Output {
    Command::new(EKG).args(args).current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).output().expect("run ekg")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ekg-newcomer-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn simulate_help_names_every_shipped_scenario_and_their_count() {
    let out = ekg(&["simulate", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for (name, _) in ekg_sim::SHIPPED {
        assert!(help.contains(name), "--help does not name {name}");
    }
    let words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"];
    let n = ekg_sim::SHIPPED.len();
    assert!(help.contains(&format!("the {} of fixtures/scenarios", words[n])), "{help}");
    for (i, w) in words.iter().enumerate() {
        assert!(i == n || !help.contains(&format!("({w})")), "--help says {w}");
    }
}

#[test]
fn check_fits_100_columns_and_names_the_actors_in_its_traces() {
    let out = ekg(&["check", "--only", "once/2r+sgw/unordered+loss1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for line in text.lines() {
        assert!(line.chars().count() <= 100, "{} columns: {line}", line.chars().count());
    }
    // The counterexample of F1: a lost release, and the retry refused.
    assert!(text.contains("quiet: quiescent => every asking recipient holds the key"), "{text}");
    assert!(text.contains("alice → gatekeeper: KeyRequest { signer: alice"), "{text}");
    assert!(text.contains("lost: gatekeeper → bob: Release { key: k0.0"), "{text}");
    assert!(text.contains("bob: timer Retry"), "{text}");
    assert!(!text.contains("Id("), "an actor without a name: {text}");
    // The longest configuration names (49 characters without the policy) fit too.
    let out = ekg(&["check", "--only", "duplicating+clock3(lifetime2,skew1,ahead1)+v14"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("2r/duplicating+clock3(lifetime2,skew1,ahead1)+v14"), "{text}");
    // Grouped by release policy: a heading per policy, the rows without it.
    for policy in ["once/", "same-cert/"] {
        assert_eq!(text.lines().filter(|l| *l == policy).count(), 2, "a {policy} heading per table: {text}");
        assert!(!text.lines().any(|l| l.starts_with(&format!("  {policy}"))), "a row with its policy: {text}");
    }
    for line in text.lines() {
        assert!(line.chars().count() <= 100, "{} columns: {line}", line.chars().count());
    }
}

#[test]
fn fixtures_check_counts_each_family() {
    let out = ekg(&["fixtures", "check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let mut total = 0;
    for family in ["codec", "gatekeeper", "client", "flow"] {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{family} ")))
            .unwrap_or_else(|| panic!("{text}"));
        let passed: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(line.ends_with(" passed, 0 failed") && passed > 0, "{line}");
        total += passed;
    }
    assert_eq!(text.lines().last(), Some(format!("{total} passed, 0 failed").as_str()), "{text}");
}

/// `OPENSSL.sh` run with a stand-in `openssl` that answers `version` with `version` and
/// fails anything else.
fn openssl_sh_with(version: &str) -> (bool, String) {
    // The directory goes into PATH: letters, digits and dots only (a ':' would split it).
    let safe: String = version.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' }).collect();
    let dir = tmp(&format!("openssl-{safe}"));
    let demo = dir.join("demo");
    let out = ekg(&["demo", "--out", demo.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = format!(
        "#!/bin/sh\nif [ \"$1\" = version ]; then echo '{version}'; exit 0; fi\necho \"stand-in openssl: $*\" >&2\nexit 1\n"
    );
    std::fs::write(bin.join("openssl"), fake).unwrap();
    Command::new("chmod").arg("+x").arg(bin.join("openssl")).status().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("sh").arg("OPENSSL.sh").current_dir(&demo).env("PATH", path).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn openssl_sh_names_the_openssl_it_needs_before_trying_an_older_one() {
    for old in [
        "OpenSSL 3.0.19 27 Jan 2026 (Library: OpenSSL 3.0.19 27 Jan 2026)",
        "OpenSSL 1.1.1w  11 Sep 2023",
        "LibreSSL 3.3.6",
    ] {
        let (ok, err) = openssl_sh_with(old);
        assert!(!ok, "{old}");
        assert!(
            err.contains("needs OpenSSL >= 3.0.22") && err.contains(old.split(' ').nth(1).unwrap()),
            "{old}: {err}"
        );
        assert!(!err.contains("stand-in openssl"), "{old}: it ran openssl cms anyway: {err}");
    }
    // A recent enough version passes the check and goes on to openssl cms (the stand-in fails).
    for new in ["OpenSSL 3.0.22 1 Jul 2026", "OpenSSL 3.5.4 30 Sep 2025"] {
        let (ok, err) = openssl_sh_with(new);
        assert!(!ok && err.contains("stand-in openssl: cms -verify"), "{new}: {err}");
        assert!(!err.contains("needs OpenSSL"), "{new}: {err}");
    }
}
