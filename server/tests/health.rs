//! `/healthz` probes the store itself (issue 25 item 6): a read and a write within
//! `PROBE_SECS`, so a stalled store is reported while it stalls, a database file removed under
//! the running server is noticed, and the answer recovers by itself.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn healthz_follows_the_store_through_a_stall() {
    let dir = fresh_dir("health-stall");
    let files = demo(&dir, "");
    let server = start(&files);
    assert_eq!(get(&server, "healthz").0, 200);

    // SQLite's write lock held by another connection for 4 s (the server's busy timeout is 5 s).
    let conn = rusqlite::Connection::open(dir.join("ekg.db")).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = Instant::now();
    let (status, body) = get(&server, "healthz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("service_unavailable"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(4), "the probe took {:?}", started.elapsed());
    conn.execute_batch("ROLLBACK").unwrap();
    drop(conn);

    // Recovers by itself once the store answers (the stalled probe's write drains first).
    let until = Instant::now() + Duration::from_secs(10);
    while get(&server, "healthz").0 != 200 {
        assert!(Instant::now() < until, "healthz did not recover");
        std::thread::sleep(Duration::from_millis(200));
    }
    server.stop().unwrap();
}

#[test]
fn a_database_removed_under_the_server_is_noticed() {
    let dir = fresh_dir("health-removed");
    let files = demo(&dir, "");
    let server = start(&files);
    assert_eq!(get(&server, "healthz").0, 200);
    std::fs::remove_file(dir.join("ekg.db")).unwrap();
    let (status, body) = get(&server, "healthz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("service_unavailable"), "{body}");
    server.stop().unwrap();
}
