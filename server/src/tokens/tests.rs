//! The key-set cache against a tiny HTTP server on loopback: what it answers is set by each
//! test, and it counts the fetches.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use der::Decode;

use super::*;

/// What the loopback server answers: status, body, delay before answering.
#[derive(Clone)]
struct Answer {
    status: u16,
    body: Vec<u8>,
    delay: Duration,
}

struct KeyServer {
    uri: String,
    answer: Arc<Mutex<Answer>>,
    fetches: Arc<AtomicUsize>,
}

/// Serves `answer` to every connection, on a thread, for at most 64 connections.
fn key_server(answer: Answer) -> KeyServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("http://{}/jwks", listener.local_addr().unwrap());
    let answer = Arc::new(Mutex::new(answer));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (a, f) = (Arc::clone(&answer), Arc::clone(&fetches));
    std::thread::spawn(move || {
        for conn in listener.incoming().take(64) {
            let Ok(mut conn) = conn else { continue };
            f.fetch_add(1, Ordering::SeqCst);
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let Answer { status, body, delay } = a.lock().unwrap().clone();
            std::thread::sleep(delay);
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
        }
    });
    KeyServer { uri, answer, fetches }
}

#[derive(der::Sequence)]
struct RsaPublicKey<'a> {
    modulus: der::asn1::UintRef<'a>,
    public_exponent: der::asn1::UintRef<'a>,
}

/// The SPKI and the JWK of the test RSA key `seed`, named `kid`.
fn key(seed: u64, kid: &str) -> (Vec<u8>, serde_json::Value) {
    let p: &dyn ekg_core::crypto::CryptoProvider = &ekg_core::crypto::AwsLc;
    let spki = p.load_private_key(&ekg_testpki::rsa_key_from_seed(seed)).unwrap().public_key_spki().to_vec();
    let info = spki::SubjectPublicKeyInfoRef::from_der(&spki).unwrap();
    let rsa = RsaPublicKey::from_der(info.subject_public_key.raw_bytes()).unwrap();
    let jwk = serde_json::json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
        "n": B64.encode(rsa.modulus.as_bytes()), "e": B64.encode(rsa.public_exponent.as_bytes())});
    (spki, jwk)
}

fn set(keys: &[&serde_json::Value]) -> Vec<u8> {
    serde_json::json!({ "keys": keys }).to_string().into_bytes()
}

const ISS: &str = "http://127.0.0.1/issuer";

fn cache(uri: &str, refresh_secs: u64) -> JwksCache {
    JwksCache::new(vec![JwksSource {
        issuer: ISS.into(),
        uri: uri.into(),
        refresh: Duration::from_secs(refresh_secs),
        timeout: Duration::from_secs(1),
    }])
}

fn code(r: ekg_core::Result<Vec<u8>>) -> &'static str {
    r.map_or_else(|e| e.code(), |_| "ok")
}

#[test]
fn keys_are_fetched_once_at_start_and_served_from_the_cache() {
    let ((spki1, jwk1), (spki2, jwk2)) = (key(28, "k1"), key(29, "k2"));
    let server = key_server(Answer { status: 200, body: set(&[&jwk1, &jwk2]), delay: Duration::ZERO });
    let c = cache(&server.uri, 60);
    let t0 = Instant::now();
    assert!(c.fetch_all(t0).is_empty());
    for _ in 0..5 {
        assert_eq!(c.key_at(ISS, "k1", t0).unwrap(), spki1);
        assert_eq!(c.key_at(ISS, "k2", t0).unwrap(), spki2);
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1);
    assert_eq!(code(c.key_at("http://127.0.0.1/other", "k1", t0)), "token_key_unknown");
}

#[test]
fn an_unknown_kid_fetches_again_at_most_once_per_interval_and_finds_the_rotated_key() {
    let ((_, jwk1), (spki2, jwk2)) = (key(28, "k1"), key(29, "k2"));
    let server = key_server(Answer { status: 200, body: set(&[&jwk1]), delay: Duration::ZERO });
    let c = cache(&server.uri, 60);
    let t0 = Instant::now();
    assert!(c.fetch_all(t0).is_empty());
    // The provider rotates to k2.
    server.answer.lock().unwrap().body = set(&[&jwk2]);
    // Within the interval: no fetch, however many unknown kids arrive.
    for kid in ["k2", "k3", "k4"] {
        assert_eq!(code(c.key_at(ISS, kid, t0 + Duration::from_secs(59))), "token_key_unknown");
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1);
    // After it: one fetch, and the new key serves.
    let t1 = t0 + Duration::from_secs(60);
    assert_eq!(c.key_at(ISS, "k2", t1).unwrap(), spki2);
    assert_eq!(server.fetches.load(Ordering::SeqCst), 2);
    // The retired key is gone with the set that dropped it; asking again is within the new
    // interval.
    assert_eq!(code(c.key_at(ISS, "k1", t1 + Duration::from_secs(1))), "token_key_unknown");
    assert_eq!(server.fetches.load(Ordering::SeqCst), 2);
}

#[test]
fn a_failed_fetch_is_token_key_unknown_and_keeps_the_keys_held() {
    let ((spki1, jwk1), (_, jwk2)) = (key(28, "k1"), key(29, "k2"));
    let server = key_server(Answer { status: 200, body: set(&[&jwk1]), delay: Duration::ZERO });
    let c = cache(&server.uri, 1);
    let t0 = Instant::now();
    assert!(c.fetch_all(t0).is_empty());
    let mut t = t0;
    for (status, body, delay, why) in [
        (500, set(&[&jwk2]), Duration::ZERO, "HTTP 500"),
        (200, b"not json".to_vec(), Duration::ZERO, "not JSON"),
        // Over the size bound: a set padded past 256 KiB is not read to its end.
        (
            200,
            format!("{{\"keys\":[],\"pad\":\"{}\"}}", "x".repeat(MAX_JWKS_LEN)).into_bytes(),
            Duration::ZERO,
            "reading the key set",
        ),
        // Over the time bound (the fetch's timeout is 1 s).
        (200, set(&[&jwk2]), Duration::from_millis(2500), "imeout"),
    ] {
        *server.answer.lock().unwrap() = Answer { status, body, delay };
        t += Duration::from_secs(2);
        let started = Instant::now();
        let e = c.key_at(ISS, "k2", t).unwrap_err();
        assert_eq!(e.code(), "token_key_unknown", "{status}");
        assert!(e.detail().contains("fetching the key set failed") && e.detail().contains(why), "{}", e.detail());
        assert!(started.elapsed() < Duration::from_secs(2), "the fetch's timeout holds");
        // The key fetched before still serves.
        assert_eq!(c.key_at(ISS, "k1", t).unwrap(), spki1);
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), 5);
}

#[test]
fn a_key_set_that_cannot_be_reached_at_start_is_reported_and_fetched_later() {
    let (spki1, jwk1) = key(28, "k1");
    // A port nothing listens on (bound, then closed).
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let c = cache(&format!("http://{closed}/jwks"), 1);
    let t0 = Instant::now();
    let failures = c.fetch_all(t0);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(code(c.key_at(ISS, "k1", t0)), "token_key_unknown");
    // The same cache with a reachable set: a later unknown kid fetches it.
    let server = key_server(Answer { status: 200, body: set(&[&jwk1]), delay: Duration::ZERO });
    let c = cache(&server.uri, 1);
    assert_eq!(c.key_at(ISS, "k1", t0).unwrap(), spki1, "never fetched: fetched at first use");
}

#[test]
fn a_redirect_is_not_followed() {
    let (_, jwk1) = key(28, "k1");
    let target = key_server(Answer { status: 200, body: set(&[&jwk1]), delay: Duration::ZERO });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("http://{}/jwks", listener.local_addr().unwrap());
    let location = target.uri.clone();
    std::thread::spawn(move || {
        if let Some(Ok(mut conn)) = listener.incoming().next() {
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let _ = write!(conn, "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let c = cache(&uri, 1);
    assert_eq!(c.fetch_all(Instant::now()).len(), 1);
    assert_eq!(code(c.key_at(ISS, "k1", Instant::now())), "token_key_unknown");
    assert_eq!(target.fetches.load(Ordering::SeqCst), 0);
}
