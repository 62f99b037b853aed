//! `ekg audit verify` on the issuance log `ekg demo` writes: the good log, heads, ticket and
//! address verify; a forged ticket (signed with the same gatekeeper key in a second run, never
//! logged), a forked log (a second run's heads: same size, another root; an earlier head of
//! another history), a head checked against another gatekeeper's certificate, a truncated log
//! and an address not listed are each refused with their code and exit status 1.

// Test code: a failed expectation is the test failing.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// 2026-06-01T00:00:00Z.
const NOW: u64 = 1_780_272_000;

fn demo(name: &str, now: u64) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("audit-{name}-{}", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_ekg"))
        .args(["demo", "--seed", "2026", "--now", &now.to_string(), "--out"])
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run ekg demo");
    assert!(status.success(), "ekg demo failed");
    dir
}

/// Runs `ekg audit verify ARGS` (paths relative to `dir`): Ok(stdout) or Err(stderr).
fn verify(dir: &Path, args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ekg"));
    cmd.args(["audit", "verify"]).current_dir(dir).args(args);
    let out = cmd.output().expect("run ekg audit verify");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    if out.status.success() {
        Ok(stdout)
    } else {
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        Err(stderr)
    }
}

fn refused(dir: &Path, args: &[&str], code: &str) {
    let err = verify(dir, args).expect_err(&format!("accepted: {args:?}"));
    assert!(err.starts_with(&format!("ekg: {code}: ")), "{args:?}: wanted {code}, got {err}");
}

const GK: &str = "pki/example.com/gatekeeper.pem";

#[test]
fn the_demo_log_verifies_and_every_forgery_is_refused_with_its_code() {
    let a = demo("a", NOW);
    // The same seed an hour later: the same PKI and gatekeeper key, another ticket and log.
    let b = demo("b", NOW + 3600);
    assert_eq!(std::fs::read(a.join(GK)).unwrap(), std::fs::read(b.join(GK)).unwrap());
    assert_ne!(std::fs::read(a.join("02-ticket.der")).unwrap(), std::fs::read(b.join("02-ticket.der")).unwrap());
    let b_path = |f: &str| b.join(f).to_string_lossy().into_owned();

    let good = [
        "--log",
        "log/issuance.log",
        "--head",
        "log/head-1.der",
        "--head",
        "log/head-4.der",
        "--gatekeeper-cert",
        GK,
        "--ticket",
        "02-ticket.der",
        "--address",
        "bob@example.org",
        "--salt-file",
        "log/salt.hex",
    ];
    let report = verify(&a, &good).unwrap();
    for line in [
        "ok A1 log log/issuance.log: 4 entries (1 issue, 3 release)",
        "ok A2 A3 head log/head-1.der: size 1",
        "ok A5 2 heads",
        "ok A4 ticket 02-ticket.der",
        "entry 0, inclusion proof of 2 hashes",
        "ok A6 the entry commits to bob@example.org",
    ] {
        assert!(report.contains(line), "{line} missing from:\n{report}");
    }

    // A ticket signed with the gatekeeper's key that this log never recorded.
    let forged = b_path("02-ticket.der");
    refused(
        &a,
        &["--log", "log/issuance.log", "--head", "log/head-4.der", "--gatekeeper-cert", GK, "--ticket", &forged],
        "ticket_not_logged",
    );
    // Two heads of the same size with different roots.
    let other_head = b_path("log/head-4.der");
    refused(
        &a,
        &["--log", "log/issuance.log", "--head", "log/head-4.der", "--head", &other_head, "--gatekeeper-cert", GK],
        "log_fork",
    );
    // An earlier head of the other history beside this log's later head.
    let other_early = b_path("log/head-1.der");
    refused(
        &a,
        &["--log", "log/issuance.log", "--head", &other_early, "--head", "log/head-4.der", "--gatekeeper-cert", GK],
        "log_fork",
    );
    // A head alone against a log it does not describe.
    refused(&a, &["--log", "log/issuance.log", "--head", &other_early, "--gatekeeper-cert", GK], "log_root_mismatch");
    // The heads checked against another gatekeeper's certificate.
    refused(
        &a,
        &[
            "--log",
            "log/issuance.log",
            "--head",
            "log/head-4.der",
            "--gatekeeper-cert",
            "pki/example.org/gatekeeper.pem",
        ],
        "tree_head_bad_signature",
    );
    // An address the ticket does not list, and the right address under another salt.
    let mut wrong = good;
    wrong[11] = "alice@example.com";
    refused(&a, &wrong, "log_address_mismatch");
    std::fs::write(a.join("log/other-salt.hex"), "11".repeat(32)).unwrap();
    let mut salted = good;
    salted[13] = "log/other-salt.hex";
    refused(&a, &salted, "log_address_mismatch");
    // A log cut short.
    let log = std::fs::read(a.join("log/issuance.log")).unwrap();
    std::fs::write(a.join("log/cut.log"), &log[..log.len() - 1]).unwrap();
    refused(&a, &["--log", "log/cut.log"], "log_malformed");
}
