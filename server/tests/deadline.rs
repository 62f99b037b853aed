//! Deadlines (issue 25 item 2): with the store stalled, a release whose client has left, or
//! whose deadline passed, is not recorded. The proof that nothing was burned: under `once`,
//! the recipient's next request is answered as a first release (a recorded one would make it
//! `already_released`).
//!
//! The stall is real: the test takes SQLite's write lock on the server's own database file
//! (`BEGIN IMMEDIATE` on a second connection), so the server's group commit waits for it.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// Holds SQLite's write lock on `db` for `hold`, on a thread of its own; returns once the
/// lock is held.
fn stall_store(db: &std::path::Path, hold: Duration) -> std::thread::JoinHandle<()> {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    std::thread::spawn(move || {
        std::thread::sleep(hold);
        conn.execute_batch("ROLLBACK").unwrap();
    })
}

/// bob's release request for `sealed`, as bytes to post.
fn release_der(server: &ekg_server::Running, files: &ekg_server::demo::DemoFiles, sealed: &[u8]) -> Vec<u8> {
    let bob = recipient(files, "example.org", "bob");
    let now = now(server);
    let msg = bob.receive(sealed, now).unwrap();
    bob.request_release(&msg, now, &mut rng(90)).unwrap().der
}

/// Posts `der` to the release endpoint with extra `headers`; (status, problem code).
fn post_release(server: &ekg_server::Running, der: &[u8], headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = agent().post(url(server, "release-request")).header("Content-Type", "application/cms");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut r = req.send(der).expect("POST");
    let body = r.body_mut().read_to_vec().unwrap_or_default();
    (r.status().as_u16(), code(&body))
}

fn start_with(name: &str, extra: &str) -> (std::path::PathBuf, ekg_server::demo::DemoFiles, ekg_server::Running) {
    let dir = fresh_dir(name);
    let files = demo(&dir, extra);
    let server = start(&files);
    (dir, files, server)
}

#[test]
fn a_release_past_its_deadline_while_the_store_stalls_records_nothing() {
    let (dir, files, server) = start_with("deadline-config", "request_deadline_secs = 1\n");
    let (sealed, plaintext) = send(&server, &files, &["bob@example.org"], 1);
    let der = release_der(&server, &files, &sealed);

    let unstall = stall_store(&dir.join("ekg.db"), Duration::from_millis(2500));
    let started = Instant::now();
    let (status, code) = post_release(&server, &der, &[]);
    unstall.join().unwrap();
    assert_eq!((status, code.as_str()), (503, "deadline_exceeded"));
    assert!(started.elapsed() < Duration::from_secs(10), "the answer waited {:?}", started.elapsed());

    // Nothing was recorded: bob's release is still his first one.
    let bob = recipient(&files, "example.org", "bob");
    assert_eq!(fetch(&server, &bob, &sealed, 2).expect("bob's first release"), plaintext);
    assert_eq!(fetch(&server, &bob, &sealed, 3), Err((410, "key_destroyed".into())));
    server.stop().unwrap();
}

#[test]
fn a_client_may_shorten_its_deadline_but_not_lengthen_it() {
    let (dir, files, server) = start_with("deadline-header", "");
    let (sealed, plaintext) = send(&server, &files, &["bob@example.org"], 4);
    let der = release_der(&server, &files, &sealed);

    let unstall = stall_store(&dir.join("ekg.db"), Duration::from_millis(2500));
    let (status, code) = post_release(&server, &der, &[("Ekg-Timeout", "1")]);
    unstall.join().unwrap();
    assert_eq!((status, code.as_str()), (503, "deadline_exceeded"));

    // A stated timeout longer than the configured deadline (10 s) does not lengthen it, and a
    // stall shorter than the deadline is waited out: the release is answered and recorded.
    let unstall = stall_store(&dir.join("ekg.db"), Duration::from_millis(500));
    let (status, code) = post_release(&server, &der, &[("Ekg-Timeout", "3600")]);
    unstall.join().unwrap();
    assert_eq!((status, code.as_str()), (200, ""));
    let bob = recipient(&files, "example.org", "bob");
    assert_eq!(fetch(&server, &bob, &sealed, 5), Err((410, "key_destroyed".into())));
    let _ = plaintext;
    server.stop().unwrap();
}

#[test]
fn a_client_that_leaves_while_the_store_stalls_has_nothing_recorded() {
    let (dir, files, server) = start_with("deadline-gone", "");
    let (sealed, plaintext) = send(&server, &files, &["bob@example.org"], 6);
    let der = release_der(&server, &files, &sealed);

    let unstall = stall_store(&dir.join("ekg.db"), Duration::from_millis(2000));
    {
        // The whole request, then the client gives up and closes before any answer.
        let mut s = TcpStream::connect(server.addr).unwrap();
        let head = format!(
            "POST /release-request HTTP/1.1\r\nHost: {}\r\nContent-Type: application/cms\r\nContent-Length: {}\r\n\r\n",
            server.addr,
            der.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&der).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        let mut buf = [0u8; 64];
        assert!(s.read(&mut buf).is_err(), "an answer arrived while the store was stalled");
    }
    unstall.join().unwrap();
    // The stalled write has had its turn (the lock is free; the group commit runs at once).
    std::thread::sleep(Duration::from_millis(1000));

    let bob = recipient(&files, "example.org", "bob");
    assert_eq!(fetch(&server, &bob, &sealed, 7).expect("bob's first release"), plaintext);
    server.stop().unwrap();
}
