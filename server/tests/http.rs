//! The gatekeeper over real HTTP on loopback: whole flows, a restart on the same database,
//! expiry, bad input of every kind, and an outsider that uses only openssl and curl.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_whole_flow_over_http_survives_a_restart() {
    let dir = fresh_dir("flow");
    let files = demo(&dir, "");
    let server = start(&files);
    let (sealed, plaintext) = send(&server, &files, &["bob@example.org", "carol@example.com"], 1);
    // The sender organisation's gateway reads it without using a release.
    let gw = gateway(&files, "example.com");
    let now = now(&server);
    let msg = gw.receive(&sealed, now).unwrap();
    let pending = gw.request_key(&msg, now, &mut rng(2)).unwrap();
    let (status, _, body) = post(&server, "release-request", &pending.der);
    assert_eq!(status, 200);
    let key = gw.accept_key(&msg, &pending, &body, now, &mut rng(3)).unwrap();
    assert_eq!(gw.open(&msg, &key).unwrap().to_vec(), plaintext);
    // The recipient organisation's gateway is not a principal here.
    let foreign = gateway(&files, "example.org");
    let msg = foreign.receive(&sealed, now).unwrap();
    let pending = foreign.request_key(&msg, now, &mut rng(4)).unwrap();
    let (status, ct, body) = post(&server, "release-request", &pending.der);
    assert_eq!((status, ct.as_str(), code(&body).as_str()), (403, "application/problem+json", "recipient_not_listed"));
    // bob once, and only once.
    let bob = recipient(&files, "example.org", "bob");
    assert_eq!(fetch(&server, &bob, &sealed, 5).expect("bob"), plaintext);
    assert_eq!(fetch(&server, &bob, &sealed, 6), Err((409, "already_released".into())));
    // A restart on the same database changes no answer.
    server.stop().unwrap();
    let server = start(&files);
    assert_eq!(fetch(&server, &bob, &sealed, 7), Err((409, "already_released".into())));
    let carol = recipient(&files, "example.com", "carol");
    assert_eq!(fetch(&server, &carol, &sealed, 8).expect("carol"), plaintext);
    // Every listed recipient served: destroyed.
    assert_eq!(fetch(&server, &bob, &sealed, 9), Err((410, "key_destroyed".into())));
    // A replayed key request is refused across the restart too (V14 is durable).
    let (m2, _) = send(&server, &files, &["dave@example.org"], 10);
    let dave = recipient(&files, "example.org", "dave");
    assert!(fetch(&server, &dave, &m2, 11).is_ok());
    // The metrics of this process (they start at zero with it; the keys held come from the
    // recovered ledger).
    let (status, body) = get(&server, "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("ekg_issuances_total 1"), "{body}");
    assert!(body.contains("ekg_releases_total{kind=\"first\"} 2"), "{body}");
    assert!(body.contains("ekg_refusals_total{code=\"already_released\"} 1"), "{body}");
    assert!(body.contains("ekg_keys_held 0"), "{body}");
    server.stop().unwrap();
}

#[test]
fn a_replayed_key_request_is_refused_after_a_restart() {
    let dir = fresh_dir("replay");
    let files = demo(&dir, "");
    let server = start(&files);
    let alice = sender(&files, "alice");
    let pending = alice.request_key(&[addr("bob@example.org")], now(&server), &mut rng(20)).unwrap();
    assert_eq!(post(&server, "key-request", &pending.der).0, 200);
    server.stop().unwrap();
    let server = start(&files);
    let (status, _, body) = post(&server, "key-request", &pending.der);
    assert_eq!((status, code(&body).as_str()), (409, "duplicate_request"));
    server.stop().unwrap();
}

#[test]
fn expiry_destroys_keys_at_their_time() {
    let dir = fresh_dir("expiry");
    let files = demo(&dir, "");
    let server = start(&files);
    let (sealed, _) = send(&server, &files, &["bob@example.org"], 30);
    assert!(get(&server, "/metrics").1.contains("ekg_keys_held 1"));
    // A week and a second later (the demo's ticket lifetime is a week).
    server.clock.advance(7 * 24 * 3600 + 1);
    let bob = recipient(&files, "example.org", "bob");
    // Only the gatekeeper knows the ticket's expiry; its answer:
    let msg = bob.receive(&sealed, now(&server)).unwrap();
    let pending = bob.request_release(&msg, now(&server), &mut rng(31)).unwrap();
    let (status, _, body) = post(&server, "release-request", &pending.der);
    assert_eq!((status, code(&body).as_str()), (410, "ticket_expired"));
    // The timer destroys the key at its deadline, without any request.
    let start_wait = Instant::now();
    loop {
        if get(&server, "/metrics").1.contains("ekg_keys_held 0") {
            break;
        }
        assert!(start_wait.elapsed() < Duration::from_secs(30), "the expired key is still held");
        std::thread::sleep(Duration::from_millis(100));
    }
    server.stop().unwrap();
    let config = ekg_core::ledger::LedgerConfig::default();
    let store = ekg_server::store::SqliteStore::open(&dir.join("ekg.db"), config).unwrap();
    let ledger = ekg_core::ledger::Ledger::recover(config, store.records().unwrap().iter()).unwrap();
    let states: Vec<bool> = ledger.keys().map(|(_, s)| matches!(s, ekg_core::ledger::KeyState::Destroyed(_))).collect();
    assert_eq!(states, [true], "no live key, one tombstone");
}

/// Sends raw bytes, then reads what comes back until the server closes or `wait` passes.
fn raw(server: &ekg_server::Running, bytes: &[u8], pause_after: Option<usize>, wait: Duration) -> String {
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    match pause_after {
        None => s.write_all(bytes).unwrap(),
        Some(n) => {
            s.write_all(&bytes[..n]).unwrap();
            std::thread::sleep(Duration::from_millis(1500));
            let _ = s.write_all(&bytes[n..]);
        }
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn bad_input_gets_its_status_and_problem_and_the_server_keeps_serving() {
    let dir = fresh_dir("bad");
    let files = demo(&dir, "");
    let server = start(&files);
    let ok = |server: &ekg_server::Running| assert_eq!(get(server, "/healthz"), (200, "ok\n".into()));
    // Garbage, and an empty body.
    for body in [&b"\x30\x03garbage"[..], b""] {
        let (status, ct, b) = post(&server, "key-request", body);
        assert_eq!((status, ct.as_str(), code(&b).as_str()), (400, "application/problem+json", "malformed_der"));
    }
    ok(&server);
    // Wrong media type.
    let mut r = agent().post(url(&server, "key-request")).header("Content-Type", "text/plain").send(&b"x"[..]).unwrap();
    assert_eq!(r.status().as_u16(), 415);
    assert_eq!(code(&r.body_mut().read_to_vec().unwrap()), "unsupported_media_type");
    // Unknown path, wrong method (with Allow).
    let (status, _) = get(&server, "/no-such-thing");
    assert_eq!(status, 404);
    let mut r = agent().get(url(&server, "key-request")).call().unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(r.headers().get("allow").and_then(|v| v.to_str().ok()), Some("POST"));
    let _ = r.body_mut().read_to_vec();
    // A Content-Length over the limit: 413 before the body is sent at all.
    let head =
        "POST /key-request HTTP/1.1\r\nHost: x\r\nContent-Type: application/cms\r\nContent-Length: 200000\r\n\r\n";
    let answer = raw(&server, head.as_bytes(), None, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("input_too_large"), "{answer}");
    // A chunked body that grows over the limit: 413 as soon as it does.
    let big = vec![0x41u8; 140 * 1024];
    let mut r = agent()
        .post(url(&server, "key-request"))
        .header("Content-Type", "application/cms")
        .header("Transfer-Encoding", "chunked")
        .send(&big[..])
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let _ = r.body_mut().read_to_vec();
    ok(&server);
    // A truncated body: the client stops sending; the server answers 408 within its body
    // timeout (1 s here), or closes.
    let head = "POST /release-request HTTP/1.1\r\nHost: x\r\nContent-Type: application/cms\r\nContent-Length: 1000\r\n\r\n0123456789";
    let started = Instant::now();
    let answer = raw(&server, head.as_bytes(), None, Duration::from_secs(10));
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    ok(&server);
    // Slow headers: the connection is closed after the header timeout, nothing answered.
    let started = Instant::now();
    let answer = raw(&server, b"POST /key-request HTTP/1.1\r\nHost:", None, Duration::from_secs(10));
    assert!(!answer.contains("200"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    ok(&server);
    // A slow body: 408.
    let slow =
        b"POST /key-request HTTP/1.1\r\nHost: x\r\nContent-Type: application/cms\r\nContent-Length: 4\r\n\r\nabcd";
    let answer = raw(&server, slow, Some(slow.len() - 2), Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 408") || answer.is_empty(), "{answer}");
    ok(&server);
    // And a real request still works.
    let (sealed, plaintext) = send(&server, &files, &["bob@example.org"], 40);
    assert_eq!(fetch(&server, &recipient(&files, "example.org", "bob"), &sealed, 41).unwrap(), plaintext);
    server.stop().unwrap();
}

#[test]
fn an_outsider_with_openssl_and_curl_completes_the_protocol() {
    let dir = fresh_dir("outsider");
    let files = demo(&dir, "");
    let server = start(&files);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/openssl-client.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .arg(&files.pki)
        .arg(format!("http://{}/", server.addr))
        .arg(dir.join("work"))
        .output()
        .expect("run the openssl client");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("openssl-client: ok"), "{text}");
    server.stop().unwrap();
}
