//! The management endpoint of `ekg serve --test-mode` (`docs/conformance.md` §2): its
//! answers when there is no state, when a state is malformed, unsupported or refused, and
//! that a loaded state, its clock, a restart and a failing store behave as documented.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::path::Path;
use std::time::Duration;

use ekg_server::testmode::{self, TestSettings};
use serde_json::{Value, json};

fn start() -> ekg_server::Running {
    testmode::start(TestSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        pki: ekg_fixtures::Pki::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/v1")).unwrap(),
        provider: &ekg_core::crypto::AwsLc,
        workers: 2,
        body_timeout: Duration::from_secs(5),
    })
    .unwrap()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

fn post(base: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
    let mut r = agent().post(format!("{base}{path}")).header("Content-Type", content_type).send(body).unwrap();
    let status = r.status().as_u16();
    let bytes = r.body_mut().read_to_vec().unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn manage(base: &str, action: &str, body: &Value) -> (u16, Value) {
    post(base, &format!("/ekg-test/v1/{action}"), "application/json", body.to_string().as_bytes())
}

#[test]
fn the_management_endpoint_answers_as_documented() {
    let server = start();
    let base = format!("http://{}", server.addr);
    let now = "2026-06-01T00:00:00Z";

    // Nothing loaded yet.
    let (s, p) = post(&base, "/key-request", "application/cms", b"\x30\x00");
    assert_eq!((s, p["code"].as_str()), (409, Some("no_state")));
    assert_eq!(manage(&base, "restart", &json!({})).1["code"], "no_state");
    let r = agent().get(format!("{base}/ekg-test/v1/state")).call().unwrap();
    assert_eq!(r.status().as_u16(), 405);

    // Malformed states.
    let (s, p) = post(&base, "/ekg-test/v1/state", "application/json", b"{not json");
    assert_eq!((s, p["code"].as_str()), (400, Some("malformed_state")));
    let config = ekg_fixtures::default_config("once");
    let (s, p) = manage(&base, "state", &json!({"config": config}));
    assert_eq!((s, p["code"].as_str()), (400, Some("malformed_state")), "no now: {p}");
    let mut unknown = config.clone();
    unknown["gatekeeper"] = json!("nobody@example.com");
    let (s, p) = manage(&base, "state", &json!({"config": unknown, "now": now}));
    assert_eq!((s, p["code"].as_str()), (400, Some("malformed_state")), "{p}");

    // Too large: 413 before it is read whole.
    let (s, p) = post(&base, "/ekg-test/v1/state", "application/json", &vec![b' '; testmode::MAX_STATE_LEN + 1]);
    assert_eq!((s, p["code"].as_str()), (413, Some("input_too_large")));

    // An injection the reference does not have: unsupported (the runner skips).
    let (s, p) = manage(&base, "state", &json!({"config": config, "now": now, "inject": {"clockJumps": 1}}));
    assert_eq!((s, p["code"].as_str()), (422, Some("unsupported")));

    // A configuration the gatekeeper refuses: its code and status (§8.2).
    let mut bad = config.clone();
    bad["maxDeliveries"] = json!(0);
    let (s, p) = manage(&base, "state", &json!({"config": bad, "now": now}));
    assert_eq!((s, p["code"].as_str()), (500, Some("invalid_configuration")), "{p}");
    // A label policy the configuration file would refuse is refused alike: a mapping with no
    // condition, an attribute name that is not one (draft "The Policy").
    let grant = "https://example.com/attr/export/value/itar";
    for (name, conditions) in [
        ("https://example.com/attr/export", json!([])),
        ("https://example.com/attr/export/value/x", json!([{"domain": "example.com"}])),
    ] {
        let mut labelled = config.clone();
        labelled["attributes"] = json!({
            "definitions": [{"name": name, "rule": "all_of", "values": ["itar"]}],
            "mappings": [{"conditions": conditions, "grants": [grant]}]});
        let (s, p) = manage(&base, "state", &json!({"config": labelled, "now": now}));
        assert_eq!((s, p["code"].as_str()), (500, Some("invalid_configuration")), "{name} {conditions}: {p}");
    }
    // ...and leaves no gatekeeper behind.
    assert_eq!(post(&base, "/key-request", "application/cms", b"\x30\x00").1["code"], "no_state");

    // A good state: the clock is the state's, and the protocol answers on / whatever the URI.
    assert_eq!(manage(&base, "state", &json!({"config": config, "now": now})).0, 204);
    assert_eq!(server.clock.now().to_rfc3339(), now);
    assert_eq!(post(&base, "/key-request", "application/cms", b"\x30\x00").1["code"], "malformed_der");
    assert_eq!(manage(&base, "clock", &json!({"now": "2026-06-01T01:00:00Z"})).0, 204);
    assert_eq!(server.clock.now().to_rfc3339(), "2026-06-01T01:00:00Z");
    assert_eq!(manage(&base, "tick", &json!({"now": "2026-06-01T02:00:00Z"})).0, 204);
    assert_eq!(manage(&base, "restart", &json!({})).0, 204);
    assert_eq!(manage(&base, "store", &json!({"fails": true})).0, 204);
    assert_eq!(manage(&base, "store", &json!({})).1["code"], "malformed_state");
    assert_eq!(manage(&base, "nothing", &json!({})).0, 404);
    server.stop().unwrap();
}

#[test]
fn the_test_mode_listens_on_loopback_only() {
    let e = testmode::start(TestSettings {
        listen: "192.0.2.1:0".parse().unwrap(),
        pki: ekg_fixtures::Pki::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/v1")).unwrap(),
        provider: &ekg_core::crypto::AwsLc,
        workers: 1,
        body_timeout: Duration::from_secs(5),
    })
    .unwrap_err();
    assert!(e.to_string().contains("loopback"), "{e}");
}

/// A web page cannot drive the management endpoint: a foreign `Host` (DNS rebinding), an
/// `Origin` header, or a `text/plain` body (a cross-origin "simple" POST) is refused, and
/// nothing is loaded.
#[test]
fn the_management_endpoint_refuses_what_a_web_page_could_send() {
    use std::io::{Read, Write};
    let server = start();
    let base = format!("http://{}", server.addr);
    let state = json!({"config": ekg_fixtures::default_config("once"), "now": "2026-06-01T00:00:00Z"}).to_string();
    let raw = |host: &str, extra: &str, content_type: &str| {
        let mut s = std::net::TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let req = format!(
            "POST /ekg-test/v1/state HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{state}",
            state.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    let refused = [
        (raw("evil.example:8443", "", "application/json"), "403", "host_not_allowed"),
        (raw("127.0.0.1", "Origin: http://evil.example\r\n", "application/json"), "403", "cross_origin_refused"),
        (raw("localhost:1", "", "text/plain"), "415", "unsupported_media_type"),
    ];
    for (answer, status, code) in refused {
        assert!(answer.starts_with(&format!("HTTP/1.1 {status}")), "{answer}");
        assert!(answer.contains(&format!("\"code\":\"{code}\"")), "{answer}");
    }
    // Nothing was loaded by any of them.
    let (s, p) = post(&base, "/key-request", "application/cms", b"\x30\x00");
    assert_eq!((s, p["code"].as_str()), (409, Some("no_state")));
    // The same state from a loopback name, as JSON, loads.
    let answer = raw("localhost:1", "", "application/json");
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    server.stop().unwrap();
}
