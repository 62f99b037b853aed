//! Per-sender quota (issue 25 item 7): a sender with `max_held_per_sender` keys held gets
//! `429 sender_quota_exceeded` with `Retry-After`, nothing recorded, until one of its keys is
//! released or expires.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::*;

#[test]
fn a_sender_over_its_quota_is_refused_until_a_key_leaves() {
    let dir = fresh_dir("quota");
    let files = demo(&dir, "max_held_per_sender = 2\n");
    let server = start(&files);
    let (first, _) = send(&server, &files, &["bob@example.org"], 1);
    let _ = send(&server, &files, &["bob@example.org"], 2);

    let alice = sender(&files, "alice");
    let pending = alice.request_key(&[addr("bob@example.org")], now(&server), &mut rng(3)).unwrap();
    let r = agent()
        .post(url(&server, "key-request"))
        .header("Content-Type", "application/cms")
        .send(&pending.der[..])
        .expect("POST");
    let retry_after = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let status = r.status().as_u16();
    let body = r.into_body().read_to_vec().unwrap();
    assert_eq!((status, code(&body).as_str()), (429, "sender_quota_exceeded"));
    assert_eq!(retry_after.as_deref(), Some("60"));

    // Another sender is not held to alice's quota.
    let (_, _) = {
        let carol = ekg_core::role::Sender::new(
            p(),
            credential(&files, "example.com", "carol"),
            anchors(&files),
            files.uri.clone(),
        )
        .unwrap();
        let pending = carol.request_key(&[addr("bob@example.org")], now(&server), &mut rng(4)).unwrap();
        let (status, _, body) = post(&server, "key-request", &pending.der);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        ((), ())
    };

    // bob reads the first message: its key is destroyed and leaves alice's quota. The refused
    // request was not recorded, so the same bytes now get a key (no duplicate_request).
    let bob = recipient(&files, "example.org", "bob");
    fetch(&server, &bob, &first, 5).expect("bob's release");
    let (status, _, body) = post(&server, "key-request", &pending.der);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    server.stop().unwrap();
}
