//! The connection layer under the attacks of issue 25, small and bounded: slow readers that
//! pipeline and never read, an idle flood, slowloris heads, hyper's own refusals, a
//! half-closed request, the idle timeout and the request limit of a connection. Attackers
//! connect from 127.0.0.2.. (Linux routes all of 127/8 to loopback), the legitimate client
//! from 127.0.0.1; every loop is bounded in count and time.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

/// A server with small caps and short timeouts.
fn small_server(name: &str) -> (ekg_server::Running, ekg_server::demo::DemoFiles) {
    small_server_with(name, |_| {})
}

/// A server with small caps and short timeouts, as `adjust` changes them.
fn small_server_with(
    name: &str,
    adjust: impl FnOnce(&mut ekg_server::Settings),
) -> (ekg_server::Running, ekg_server::demo::DemoFiles) {
    let dir = fresh_dir(name);
    let files = demo(&dir, "");
    let mut s = settings(&files);
    s.limits = ekg_server::ConnectionLimits {
        max_connections: 40,
        max_connections_per_client: 10,
        max_requests_per_connection: 5,
        idle_timeout: Duration::from_secs(1),
        header_timeout: Duration::from_secs(1),
        write_timeout: Duration::from_secs(1),
    };
    adjust(&mut s);
    (ekg_server::start(s).expect("server"), files)
}

/// A connection from `from` (a loopback address) with a small receive buffer.
fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.bind(&SocketAddr::from((from, 0)).into()).unwrap();
    sock.connect_timeout(&to.into(), Duration::from_secs(5)).unwrap();
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    s
}

/// Reads until the server closes, `limit` bytes, or `wait`.
fn read_some(s: &mut TcpStream, wait: Duration, limit: usize) -> String {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    while out.len() < limit && started.elapsed() < wait {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The legitimate client: `GET /healthz` from 127.0.0.1 until it is answered 200, at most
/// `within`; the time it took.
fn legitimate_answer_within(server: &ekg_server::Running, within: Duration) -> Duration {
    let started = Instant::now();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    loop {
        if let Ok(r) = agent.get(url(server, "/healthz")).call()
            && r.status() == 200
        {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "the legitimate client was not answered within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn slow_readers_that_pipeline_lose_their_connections_and_a_legitimate_client_is_served() {
    // Enough requests per connection that the request limit does not end them first.
    let (server, _files) = small_server_with("slow-readers", |s| {
        s.limits.max_requests_per_connection = 1000;
        s.limits.idle_timeout = Duration::from_secs(10);
    });
    // 4 addresses x 10 connections: every slot, each with 2,000 pipelined requests for
    // /metrics and never a byte read.
    let pipelined = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2000);
    let mut attackers = Vec::new();
    for a in 2..6u8 {
        for _ in 0..10 {
            let mut s = connect_from([127, 0, 0, a], server.addr);
            let _ = s.write_all(pipelined.as_bytes());
            attackers.push(s);
        }
    }
    // Their writes stall once the buffers are full; the write timeout (1 s) frees the slots.
    let started = Instant::now();
    let took = legitimate_answer_within(&server, Duration::from_secs(6));
    eprintln!("legitimate answer after {took:?} with 40 slow readers");
    // After the write timeout, each has been cut off: reading now gets what was in the
    // buffers, then the end.
    std::thread::sleep(Duration::from_secs(2).saturating_sub(started.elapsed()));
    for s in &mut attackers {
        let answers = read_some(s, Duration::from_secs(4), 4 << 20).matches("HTTP/1.1 200 OK").count();
        // What the kernel's buffers held when the server gave up (7 answers here); without
        // the write timeout, every answer up to the request limit (about 1,000).
        assert!(answers < 200, "a slow reader got {answers} answers: no write timeout");
    }
    drop(attackers);
    server.stop().unwrap();
}

#[test]
fn an_idle_flood_gives_way_to_a_legitimate_client_and_a_client_over_its_share_is_told_429() {
    // Idle connections would wait 10 s: only eviction makes room in time.
    let (server, _files) = small_server_with("idle-flood", |s| s.limits.idle_timeout = Duration::from_secs(10));
    let mut idle = Vec::new();
    for a in 2..6u8 {
        for _ in 0..10 {
            idle.push(connect_from([127, 0, 0, a], server.addr));
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    // The total cap is reached with idle connections: the longest idle makes room.
    let took = legitimate_answer_within(&server, Duration::from_secs(2));
    assert!(took < Duration::from_millis(900), "{took:?}");
    // An 11th connection from one address: 429 with its problem, then closed.
    let mut share = Vec::new();
    for _ in 0..10 {
        share.push(connect_from([127, 0, 0, 9], server.addr));
    }
    let mut over = connect_from([127, 0, 0, 9], server.addr);
    let answer = read_some(&mut over, Duration::from_secs(3), 4096);
    assert!(answer.starts_with("HTTP/1.1 429 Too Many Requests\r\n"), "{answer}");
    assert!(
        answer.contains("application/problem+json") && answer.contains("\"code\":\"client_connection_limit\""),
        "{answer}"
    );
    assert!(answer.contains("retry-after: 5"), "{answer}");
    drop((idle, share));
    server.stop().unwrap();
}

#[test]
fn a_slow_request_head_is_answered_408_within_the_header_timeout() {
    let (server, _files) = small_server("slowloris");
    let mut loris = Vec::new();
    for a in 2..4u8 {
        for _ in 0..5 {
            let mut s = connect_from([127, 0, 0, a], server.addr);
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
            loris.push(s);
        }
    }
    let started = Instant::now();
    // One more header line every 300 ms: never a whole head.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(300));
        for s in &mut loris {
            let _ = s.write_all(b"X-a: b\r\n");
        }
    }
    legitimate_answer_within(&server, Duration::from_secs(2));
    for s in &mut loris {
        let answer = read_some(s, Duration::from_secs(3), 4096);
        assert!(answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{answer}");
        assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    }
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    server.stop().unwrap();
}

#[test]
fn hypers_own_refusals_carry_a_problem_body_with_a_stable_code() {
    let (server, _files) = small_server("refusals");
    let cases: [(Vec<u8>, &str, &str); 3] = [
        (b"NOT HTTP AT ALL\r\n\r\n".to_vec(), "HTTP/1.1 400 Bad Request\r\n", "malformed_http"),
        (
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-big: {}\r\n\r\n", "a".repeat(70 * 1024)).into_bytes(),
            "HTTP/1.1 431 Request Header Fields Too Large\r\n",
            "headers_too_large",
        ),
        (
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n", "X-a: b\r\n".repeat(101)).into_bytes(),
            "HTTP/1.1 431 Request Header Fields Too Large\r\n",
            "headers_too_large",
        ),
    ];
    for (request, status_line, code) in cases {
        let mut s = connect_from([127, 0, 0, 1], server.addr);
        let _ = s.write_all(&request);
        let answer = read_some(&mut s, Duration::from_secs(3), 64 * 1024);
        assert!(answer.starts_with(status_line), "{code} {} {answer}", request.len());
        assert!(answer.contains("content-type: application/problem+json\r\n"), "{answer}");
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
        assert_eq!(common::code(body.as_bytes()), code, "{answer}");
    }
    legitimate_answer_within(&server, Duration::from_secs(2));
    server.stop().unwrap();
}

#[test]
fn a_half_closed_request_is_answered_and_a_body_cut_short_is_not_waited_for() {
    let (server, _files) = small_server_with("half-close", |s| s.body_timeout = Duration::from_secs(10));
    // The end of input arrives with the request (hyper may take the whole body before the
    // handler reads it), or after it; a body the handler never reads (404). A protocol
    // request whose input ended before its work started counts as abandoned (a half-close
    // looks like a client that left): it is answered, 503 deadline_exceeded.
    for pause in [Duration::ZERO, Duration::from_millis(200)] {
        for (request, status_lines) in [
            (&b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"[..], &["HTTP/1.1 200 OK"][..]),
            (
                b"POST /key-request HTTP/1.1\r\nHost: x\r\nContent-Type: application/cms\r\nContent-Length: 4\r\n\r\n\x30\x02\x05\x00",
                &["HTTP/1.1 400 Bad Request", "HTTP/1.1 503 Service Unavailable"],
            ),
            (b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd", &["HTTP/1.1 404 Not Found"]),
        ] {
            let mut s = connect_from([127, 0, 0, 1], server.addr);
            s.write_all(request).unwrap();
            std::thread::sleep(pause);
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let answer = read_some(&mut s, Duration::from_secs(5), 64 * 1024);
            assert!(status_lines.iter().any(|l| answer.starts_with(l)), "{pause:?} {answer:?}");
            if answer.starts_with("HTTP/1.1 503") {
                let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
                assert_eq!(common::code(body.as_bytes()), "deadline_exceeded", "{answer}");
            }
        }
        // None or 10 bytes of a declared 1,000, then the end of input: the body will never
        // come; the connection is not held for the body timeout (10 s here).
        for sent in [&b""[..], b"0123456789"] {
            let mut s = connect_from([127, 0, 0, 1], server.addr);
            let started = Instant::now();
            let head = b"POST /key-request HTTP/1.1\r\nHost: x\r\nContent-Type: application/cms\r\nContent-Length: 1000\r\n\r\n";
            s.write_all(&[&head[..], sent].concat()).unwrap();
            std::thread::sleep(pause);
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let answer = read_some(&mut s, Duration::from_secs(10), 64 * 1024);
            let held = started.elapsed();
            assert!(held < Duration::from_secs(3), "{pause:?} {} bytes: held {held:?}: {answer}", sent.len());
            assert!(answer.starts_with("HTTP/1.1 400 Bad Request"), "{answer}");
        }
    }
    server.stop().unwrap();
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout_and_a_busy_one_after_its_request_limit() {
    let (server, _files) = small_server("idle-and-limit");
    let mut idle = connect_from([127, 0, 0, 1], server.addr);
    let started = Instant::now();
    let answer = read_some(&mut idle, Duration::from_secs(4), 16);
    assert!(answer.is_empty(), "{answer}");
    let waited = started.elapsed();
    // 1 s of idle timeout; hyper's own header timer alone would take 3 s.
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_millis(2500), "{waited:?}");
    // Five requests on one connection, then `Connection: close`.
    let mut s = connect_from([127, 0, 0, 1], server.addr);
    s.write_all(&b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".repeat(6)).unwrap();
    let answers = read_some(&mut s, Duration::from_secs(3), 64 * 1024);
    assert_eq!(answers.matches("HTTP/1.1 200 OK").count(), 5, "{answers}");
    assert_eq!(answers.matches("connection: close").count(), 1, "{answers}");
    server.stop().unwrap();
}
