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
    assert!(out.contains("configuration ok") && out.contains("policy once"), "{out}");

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

    let mut server = server;
    let status = server.child.wait().unwrap();
    let mut stdout = String::new();
    server.child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    assert!(status.success(), "{stdout}");
    assert!(stdout.contains("ekg serve: stopped"), "{stdout}");

    // The key it issued is in the store, which opens again.
    let server = spawn_serve(EKG, &files.config, free_port());
    let metrics = agent().get(format!("http://{}/metrics", server.addr)).call().unwrap().into_body().read_to_string();
    assert!(metrics.unwrap().contains("ekg_keys_held 1"), "the issued key is not held after the restart");
    drop(server);
}

#[test]
fn load_reports_each_operation_and_fails_when_nothing_succeeds() {
    let dir = fresh_dir("cli-load");
    let files = demo(&dir, "");
    let server = spawn_serve(EKG, &files.config, free_port());
    let target = format!("http://{}/", server.addr);
    let load = |sender: &str| {
        Command::new(EKG)
            .args(["load", "--target", &target, "--uri", &files.uri, "--requests", "20", "--duration", "30"])
            .args(["--sender", sender, "--pki"])
            .arg(&files.pki)
            .output()
            .unwrap()
    };
    let out = load("example.com/alice");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    for row in ["issuance         20       20", "release          20       20", "rsa-sign"] {
        assert!(stdout.contains(row), "{row} missing: {stdout}");
    }
    // dave of example.org is no sender of this gatekeeper: every key request is refused,
    // nothing is released, and the command says so.
    let out = load("example.org/dave");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("issuance: 20 x 403 sender_not_recognised"), "{stdout}");
    // Bounds are checked before any work.
    let out = Command::new(EKG)
        .args(["load", "--target", &target, "--concurrency", "0", "--pki"])
        .arg(&files.pki)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--concurrency: 1 to 256"));
    drop(server);
}

#[test]
fn sighup_reloads_and_sigusr1_and_sigusr2_do_not_stop_the_server() {
    let dir = fresh_dir("cli-signals");
    let files = demo(&dir, "");
    let port = free_port();
    let mut server = spawn_serve(EKG, &files.config, port);
    let pid = server.child.id().to_string();
    for sig in ["-HUP", "-USR1", "-USR2"] {
        assert!(Command::new("kill").args([sig, &pid]).status().unwrap().success());
        std::thread::sleep(Duration::from_millis(200));
        assert!(server.child.try_wait().unwrap().is_none(), "{sig} stopped the server");
        let healthz = agent().get(format!("http://{}/healthz", server.addr)).call().unwrap();
        assert_eq!(healthz.status(), 200, "after {sig}");
    }
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(server.child.wait().unwrap().success());
    let log = std::fs::read_to_string(serve_log(&files.config, port)).unwrap();
    for line in [
        "ekg serve started",
        "version=",
        "signal=\"SIGHUP\"",
        // The demo has a CRL: SIGHUP reads it again.
        "reloaded part=crls",
        "signal=\"SIGUSR1\"",
        "ignored",
        "ekg serve stopped",
    ] {
        assert!(log.contains(line), "{line} not in the log: {log}");
    }
}

#[test]
fn keys_storage_key_writes_a_0600_key_once_and_the_server_takes_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = fresh_dir("cli-storage-key");
    let files = demo(&dir, "");
    let key = dir.join("new-storage.key");
    let out = Command::new(EKG).args(["keys", "storage-key", "--out"]).arg(&key).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&key).unwrap();
    assert_eq!(text.len(), 65);
    assert!(text.trim_end().chars().all(|c| c.is_ascii_hexdigit()) && text.ends_with('\n'), "{text}");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    // Never overwritten.
    let again = Command::new(EKG).args(["keys", "storage-key", "--out"]).arg(&key).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwritten"));
    assert_eq!(std::fs::read_to_string(&key).unwrap(), text);
    // A fresh database under it: the configuration holds.
    let config = std::fs::read_to_string(&files.config)
        .unwrap()
        .replace("storage_key = \"storage.key\"", "storage_key = \"new-storage.key\"")
        .replace("sqlite:ekg.db", "sqlite:new.db");
    std::fs::write(&files.config, config).unwrap();
    let check = Command::new(EKG).args(["serve", "--check-config", "--config"]).arg(&files.config).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
}
