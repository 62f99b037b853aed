//! Planted gatekeeper bugs (`docs/conformance.md` §6): the switch exists only under
//! `ekg serve --test-mode`, and the runner catches a sample of the bugs while the reference
//! passes (`ekg conformance planted`, one test-mode server per bug, loopback only, each
//! stopped with its run).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::Command;

const EKG: &str = env!("CARGO_BIN_EXE_ekg");

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/v1")
}

#[test]
fn a_planted_bug_outside_the_test_mode_is_refused_loudly() {
    // Refused before the configuration is even read (the file does not exist: without the
    // refusal the error would name the file instead).
    for args in [
        vec!["serve", "--config", "/nonexistent/ekg.toml"],
        vec!["serve", "--check-config", "--config", "/nonexistent/ekg.toml"],
    ] {
        let out = Command::new(EKG).args(&args).env("EKG_PLANTED_BUG", "v14_skipped").output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("EKG_PLANTED_BUG is set") && stderr.contains("--test-mode"), "{args:?}: {stderr}");
    }
    // Under the test mode, an unknown name is refused before anything listens.
    let out = Command::new(EKG)
        .args(["serve", "--test-mode", "--listen", "127.0.0.1:0", "--vectors"])
        .arg(vectors())
        .env("EKG_PLANTED_BUG", "no_such_bug")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no such planted bug") && stderr.contains("v14_in_memory"), "{stderr}");
}

/// The sample CI runs: six bugs the outside team's runner missed, each must fail a case, and
/// the reference must pass every case (`ekg conformance planted` exits 1 otherwise).
#[test]
fn the_runner_catches_a_sample_of_planted_bugs_and_passes_the_reference() {
    let sample = [
        "forged_ticket_served",
        "v14_in_memory",
        "once_per_certificate",
        "fetch_at_expiry_served",
        "configured_policy_at_release",
        "answer_before_durable",
    ];
    let out = Command::new(EKG)
        .args(["conformance", "planted", "--vectors"])
        .arg(vectors())
        .args(["--bug", &sample.join(",")])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for bug in sample {
        let row = stdout.lines().find(|l| l.starts_with(&format!("| `{bug}`"))).unwrap_or_else(|| panic!("{stdout}"));
        assert!(row.contains("| yes |"), "{row}");
    }
    assert!(stdout.contains(&format!("{} of {} planted bugs caught", sample.len(), sample.len())), "{stdout}");
    assert!(stdout.contains(", 0 failing"), "{stdout}");
}

/// The list probes (`docs/conformance.md` §2.4, issue 29) against the list bugs: a loop
/// issued, one expansion over the depth bound issued, and a gatekeeper that refuses every
/// expansion (as one without lists would) each fail their probe, the reference passing.
#[test]
fn the_list_probes_catch_the_list_bugs() {
    let bugs = [
        ("list_loop_ignored", &["probe/list_loop"][..]),
        ("list_depth_off_by_one", &["probe/list_depth"][..]),
        ("expansion_refused", &["probe/list_expansion", "probe/list_loop", "probe/list_depth"][..]),
    ];
    let names: Vec<&str> = bugs.iter().map(|(b, _)| *b).collect();
    let out = Command::new(EKG)
        .args(["conformance", "planted", "--vectors"])
        .arg(vectors())
        .args(["--bug", &names.join(",")])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for (bug, probes) in bugs {
        let row = stdout.lines().find(|l| l.starts_with(&format!("| `{bug}`"))).unwrap_or_else(|| panic!("{stdout}"));
        for probe in probes {
            assert!(row.contains(&format!("`{probe}`")), "{bug} does not fail {probe}: {row}");
        }
    }
    assert!(stdout.contains(", 0 failing"), "{stdout}");
}

/// `docs/conformance.md` §6 is the table `ekg conformance planted` printed: one row per bug
/// of `PlantedBug::ALL`, none missing or extra, and its count line agrees.
#[test]
fn the_documented_table_names_every_planted_bug_once() {
    use ekg_core::role::planted::PlantedBug;
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/conformance.md")).unwrap();
    let start = doc.find("<!-- planted-table -->").expect("the table's start marker");
    let end = doc.find("<!-- /planted-table -->").expect("the table's end marker");
    let table = &doc[start..end];
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| `")).collect();
    assert_eq!(rows.len(), PlantedBug::ALL.len(), "one row per planted bug");
    for bug in PlantedBug::ALL {
        let mine: Vec<&&str> = rows.iter().filter(|r| r.starts_with(&format!("| `{bug}`:"))).collect();
        assert_eq!(mine.len(), 1, "{bug}");
        assert!(mine[0].contains(bug.description()), "{bug}: the description changed; run the command again");
    }
    let caught = rows.iter().filter(|r| r.contains("| yes |")).count();
    assert!(table.contains(&format!("{caught} of {} planted bugs caught", PlantedBug::ALL.len())), "{table}");
}
