//! Every input a user gives the `ekg` command is bounded: a bad one ends with one clear line
//! and a non-zero exit, within bounded time, never a panic, and never a success for work that
//! was not done (issue 11, items 7 and 8).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn ekg(args: &[&str]) -> Output {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_ekg")).args(args).output().expect("run ekg");
    assert!(start.elapsed() < Duration::from_secs(60), "{args:?} took {:?}", start.elapsed());
    out
}

/// The run failed with a message containing `want`, and did not panic.
fn fails_with(args: &[&str], want: &str) {
    let out = ekg(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded: {}", String::from_utf8_lossy(&out.stdout));
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert!(stderr.contains(want), "{args:?}: {stderr}");
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ekg-bad-input-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn check_refuses_work_it_would_not_do() {
    fails_with(&["check", "--threads", "0"], "--threads must be 1");
    fails_with(&["check", "--only", "no-such-configuration"], "matches no configuration");
    fails_with(
        &["check", "--timeout-secs", "18446744073709551615", "--only", "once/2r+sgw/unordered"],
        "--timeout-secs",
    );
    fails_with(&["check", "--explore", "--addr", "notanaddr"], "invalid socket address");
    fails_with(&["check", "--explore", "--addr", "8.8.8.8:3000"], "loopback");
}

#[test]
fn fixtures_check_on_files_without_tests_is_an_error() {
    let dir = tmp("fixtures");
    std::fs::create_dir_all(dir.join("pki")).unwrap();
    for name in ["codec_test.json", "gatekeeper_test.json", "client_test.json", "flow_test.json"] {
        std::fs::write(dir.join(name), "").unwrap();
    }
    fails_with(&["fixtures", "check", "--dir", dir.to_str().unwrap()], "ekg:");
    let _ = std::fs::remove_dir_all(&dir);
}

const SCENARIO: &str = r#"
name = "NAME"
[[org]]
domain = "DOMAIN"
users = 3
[[org]]
domain = "b.example"
users = 3
[workload]
messages = MESSAGES
rate_per_sec = RATE
recipients = [[1, 1]]
sizes = [[SIZE, 1]]
[faults]
outages = [{ org = "b.example", at_secs = AT, for_secs = 10 }]
"#;

fn scenario(dir: &std::path::Path, edits: &[(&str, &str)]) -> String {
    let mut text = SCENARIO.to_owned();
    for (k, v) in
        [("NAME", "ok"), ("DOMAIN", "a.example"), ("MESSAGES", "3"), ("RATE", "1.0"), ("SIZE", "100"), ("AT", "1")]
    {
        let v = edits.iter().find(|(e, _)| *e == k).map_or(v, |(_, v)| *v);
        text = text.replace(k, v);
    }
    let path = dir.join(format!("s{}.toml", text.len()));
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn simulate_refuses_unbounded_or_unsafe_scenarios() {
    let dir = tmp("simulate");
    let out = dir.join("out");
    let out = out.to_str().unwrap();
    for (edits, want) in [
        (vec![("DOMAIN", "é.example")], "domain"),
        (vec![("NAME", "../../x")], "name"),
        (vec![("NAME", "/tmp/x")], "name"),
        (vec![("AT", "9223372036854775807")], "at most a year"),
        (vec![("RATE", "1e-300")], "within a year"),
        (vec![("MESSAGES", "1000000"), ("SIZE", "16777216")], "4 GiB"),
        (vec![("MESSAGES", "0")], "1 to"),
    ] {
        let path = scenario(&dir, &edits);
        fails_with(&["simulate", &path, "--out", out], want);
    }
    // A file too large to be a scenario is refused before it is parsed.
    let big = dir.join("big.toml");
    std::fs::write(&big, vec![b'#'; 2 * 1024 * 1024]).unwrap();
    fails_with(&["simulate", big.to_str().unwrap(), "--out", out], "larger than");
    fails_with(&["simulate", "default", "--threads", "0", "--out", out], "--threads");
    assert!(!dir.join("x").exists() && !std::path::Path::new("/tmp/x/report.json").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
