//! `ekg serve` as a user runs it: `--check-config` says what holds and what does not, and
//! SIGTERM stops it gracefully: the listener closes, a request already in flight is
//! answered, the store is closed, the exit status is 0.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../../server/tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use common::*;

const EKG: &str = env!("CARGO_BIN_EXE_ekg");

#[test]
fn check_config_reports_the_configuration_or_the_field_that_does_not_hold() {
    let dir = fresh_dir("cli-check");
    let files = demo(&dir, "");
    let ok = Command::new(EKG).args(["serve", "--check-config", "--config"]).arg(&files.config).output().unwrap();
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{out}{}", String::from_utf8_lossy(&ok.stderr));
    assert!(out.contains("configuration ok") && out.contains("policy Once"), "{out}");

    let text = std::fs::read_to_string(&files.config).unwrap().replace("policy = \"once\"", "policy = \"twice\"");
    std::fs::write(&files.config, text).unwrap();
    let bad = Command::new(EKG).args(["serve", "--check-config", "--config"]).arg(&files.config).output().unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(err.contains("gatekeeper.policy: once or same_certificate"), "{err}");

    let plain = Command::new(EKG)
        .args(["serve", "--check-config", "--listen", "0.0.0.0:8443", "--config"])
        .arg(&files.config)
        .output()
        .unwrap();
    assert!(!plain.status.success());
}

#[test]
fn sigterm_answers_the_request_in_flight_then_exits_zero() {
    let dir = fresh_dir("cli-sigterm");
    let files = demo(&dir, "");
    let port = free_port();
    let server = spawn_serve(EKG, &files.config, port);

    // A key request whose body is half sent when SIGTERM arrives.
    let alice = sender(&files, "alice");
    let now = ekg_server::service::wall_clock();
    let pending = alice.request_key(&[addr("bob@example.org")], now, &mut rng(1)).unwrap();
    let body = &pending.der;
    let mut conn = std::net::TcpStream::connect(&server.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST /key-request HTTP/1.1\r\nHost: {}\r\nContent-Type: application/cms\r\nContent-Length: {}\r\n\r\n",
        server.addr,
        body.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(&body[..body.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());

    // No new connection is accepted once the listener is closed.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&server.addr).is_ok() {
        assert!(std::time::Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }

    // The request in flight completes and is answered.
    conn.write_all(&body[body.len() / 2..]).unwrap();
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let out = server.child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("ekg serve: stopped"), "{stdout}");

    // The key it issued is in the store, which opens again.
    let server = spawn_serve(EKG, &files.config, free_port());
    let metrics = agent().get(format!("http://{}/metrics", server.addr)).call().unwrap().into_body().read_to_string();
    assert!(metrics.unwrap().contains("ekg_keys_held 1"), "the issued key is not held after the restart");
    let mut child = server.child;
    child.kill().unwrap();
    child.wait().unwrap();
}
