//! What the command-line tests share: the server's test helpers (a server on loopback with
//! the demo PKI, `ekg serve` as a child process), and `ekg` run as its users run it.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../../../server/tests/common/mod.rs"]
mod server;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

pub use server::*;

/// The `ekg` binary under test.
pub const EKG: &str = env!("CARGO_BIN_EXE_ekg");

/// Runs `ekg ARGS --config CLIENT --identity IDENTITY` with `input` on standard input.
pub fn ekg_as(client: &Path, args: &[&str], identity: &Path, input: &[u8]) -> Output {
    let mut child = Command::new(EKG)
        .args(args)
        .arg("--config")
        .arg(client)
        .arg("--identity")
        .arg(identity)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// Standard error starts `ekg: CODE: `, exit 1, nothing on standard output, no panic.
pub fn refused(out: &Output, code: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty(), "partial output: {}", String::from_utf8_lossy(&out.stdout));
    assert!(err.starts_with(&format!("ekg: {code}: ")), "expected {code}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// As [`refused`], in one line.
pub fn refused_in_one_line(out: &Output, code: &str) {
    refused(out, code);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
}
