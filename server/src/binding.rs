//! The HTTP binding of the protocol (`docs/protocol.md` §8): paths, media types, the status
//! of every rejection and what a client does on it, and RFC 9457 problem bodies. Shared by
//! the server and the clients (`ekg send`, `ekg read`, `ekg load`, `ekg conformance`).

use ekg_core::{Fault, Rejection};
use serde::{Deserialize, Serialize};

/// The path, below the gatekeeper's URI, that takes key requests.
pub const KEY_REQUEST: &str = "key-request";
/// The path, below the gatekeeper's URI, that takes release requests.
pub const RELEASE_REQUEST: &str = "release-request";
/// Health: `200 ok` while the store answers.
pub const HEALTHZ: &str = "/healthz";
/// Prometheus metrics (OpenMetrics text).
pub const METRICS: &str = "/metrics";
/// Media type of request and success bodies (RFC 7193).
pub const MEDIA_CMS: &str = "application/cms";
/// Media type of refusals (RFC 9457).
pub const MEDIA_PROBLEM: &str = "application/problem+json";
/// Seconds a client waits before retrying after `503`.
pub const RETRY_AFTER_SECS: u32 = 5;

/// `Retry-After` on `429 sender_quota_exceeded`, seconds: keys leave the quota as they are
/// released or expire, which takes longer than a store's hiccup.
pub const QUOTA_RETRY_AFTER_SECS: u32 = 60;

/// The base path of a gatekeeper URI (`https://ekg.example.com/ekg` -> `/ekg/`): its path,
/// ending with `/`. Endpoints are `{base}key-request` and `{base}release-request`.
pub fn base_path(uri: &str) -> String {
    let after_scheme = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    let path = path.split(['?', '#']).next().unwrap_or("/");
    if path.ends_with('/') { path.to_owned() } else { format!("{path}/") }
}

/// An endpoint's full URL on a gatekeeper at `uri`.
pub fn endpoint(uri: &str, name: &str) -> String {
    if uri.ends_with('/') { format!("{uri}{name}") } else { format!("{uri}/{name}") }
}

/// What a client does on a status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAction {
    /// Done: use the body.
    Accept,
    /// Do not send these bytes again: the request is refused for good (a new request, made
    /// right, may be answered).
    GiveUp,
    /// Send the same bytes again after `Retry-After` seconds (nothing was recorded).
    RetryLater,
    /// The server failed: the same bytes may be retried, with backoff.
    RetryWithBackoff,
}

/// The HTTP status of a rejection, by who is at fault and what is left to do.
pub fn status(rejection: Rejection) -> u16 {
    use Rejection as R;
    match rejection {
        R::InputTooLarge => 413,
        R::DuplicateRequest | R::AlreadyReleased | R::ReleasedToOtherCertificate | R::RedeliveryLimit => 409,
        R::KeyUnknown => 404,
        R::KeyDestroyed | R::TicketExpired => 410,
        R::StorageFailed => 503,
        R::KeyIdCollision | R::CryptoFailure | R::InvalidConfiguration => 500,
        r => match r.fault() {
            Fault::InvalidMessage => 400,
            Fault::Untrusted | Fault::Refused => 403,
            Fault::Local => 500,
        },
    }
}

/// What a client does on `status` (`docs/protocol.md` §8.3).
pub fn client_action(status: u16) -> ClientAction {
    match status {
        200 => ClientAction::Accept,
        503 => ClientAction::RetryLater,
        500 | 502 | 504 => ClientAction::RetryWithBackoff,
        _ => ClientAction::GiveUp,
    }
}

/// Problem codes of the HTTP layer itself (the protocol's codes are [`Rejection`]'s).
pub mod http_codes {
    /// No such path.
    pub const NOT_FOUND: &str = "not_found";
    /// A known path, another method.
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// The body is not `application/cms`.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    /// The body did not arrive in time.
    pub const REQUEST_TIMEOUT: &str = "request_timeout";
    /// The server is stopping, or its store is down.
    pub const UNAVAILABLE: &str = "service_unavailable";
    /// The request is not well-formed HTTP/1.1 (hyper's parser refused it): 400.
    pub const MALFORMED_HTTP: &str = "malformed_http";
    /// The request target is longer than the server takes: 414.
    pub const URI_TOO_LONG: &str = "uri_too_long";
    /// The request head is larger than the server takes, or has too many fields: 431.
    pub const HEADERS_TOO_LARGE: &str = "headers_too_large";
    /// Every connection slot is busy (none idle to close): 503, `Retry-After`.
    pub const CONNECTION_LIMIT: &str = "connection_limit";
    /// The client's address holds its share of the connections: 429, `Retry-After`.
    pub const CLIENT_CONNECTION_LIMIT: &str = "client_connection_limit";
    /// The request's deadline passed (or its client left) before its records were written:
    /// nothing was recorded; the same bytes may be sent again.
    pub const DEADLINE_EXCEEDED: &str = "deadline_exceeded";
    /// The sender has as many keys held as its quota allows (`server.max_held_per_sender`):
    /// nothing was recorded; the same request may succeed once some of its keys are released
    /// or expire (429, `Retry-After`).
    pub const SENDER_QUOTA_EXCEEDED: &str = "sender_quota_exceeded";
    /// Test mode: the `Host` header is not a loopback name: 403.
    pub const HOST_NOT_ALLOWED: &str = "host_not_allowed";
    /// Test mode: a browser's cross-origin request (an `Origin` header): 403.
    pub const CROSS_ORIGIN_REFUSED: &str = "cross_origin_refused";

    /// Every code of the HTTP layer, with its status.
    pub const ALL: &[(&str, u16)] = &[
        (NOT_FOUND, 404),
        (METHOD_NOT_ALLOWED, 405),
        (UNSUPPORTED_MEDIA_TYPE, 415),
        (REQUEST_TIMEOUT, 408),
        (UNAVAILABLE, 503),
        (MALFORMED_HTTP, 400),
        (URI_TOO_LONG, 414),
        (HEADERS_TOO_LARGE, 431),
        (CONNECTION_LIMIT, 503),
        (CLIENT_CONNECTION_LIMIT, 429),
        (DEADLINE_EXCEEDED, 503),
        (SENDER_QUOTA_EXCEEDED, 429),
        (HOST_NOT_ALLOWED, 403),
        (CROSS_ORIGIN_REFUSED, 403),
    ];
}

/// An RFC 9457 problem body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// `urn:ekg:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short title.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// The stable snake_case code (a [`Rejection`] code, or one of [`http_codes`]).
    pub code: String,
    /// More detail, for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl Problem {
    /// A problem with `code` and `status`.
    pub fn new(status: u16, code: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("urn:ekg:problem:{code}"),
            title: title(code),
            status,
            code: code.to_owned(),
            detail: detail.into(),
        }
    }

    /// The problem of a rejection.
    pub fn of(e: &ekg_core::Error) -> Problem {
        Problem::new(status(e.rejection()), e.code(), e.detail())
    }

    /// The JSON body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| format!("{{\"code\":\"{}\"}}", self.code))
    }
}

/// A readable title from a code (`already_released` -> `Already released`).
fn title(code: &str) -> String {
    let words = code.replace('_', " ");
    let mut c = words.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Whether a `Content-Type` value is `application/cms` (parameters allowed, case-insensitive).
pub fn is_cms(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case(MEDIA_CMS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rejection_has_a_status_and_requester_faults_are_4xx() {
        for r in Rejection::ALL {
            let s = status(*r);
            assert!((400..600).contains(&s), "{r:?}");
            if r.fault() != Fault::Local {
                assert!((400..500).contains(&s), "{r:?} is the requester's: 4xx, got {s}");
            }
        }
        assert_eq!(status(Rejection::StorageFailed), 503);
        assert_eq!(client_action(503), ClientAction::RetryLater);
        assert_eq!(client_action(409), ClientAction::GiveUp);
    }

    #[test]
    fn base_paths_and_endpoints() {
        assert_eq!(base_path("https://ekg.example.com/"), "/");
        assert_eq!(base_path("https://ekg.example.com"), "/");
        assert_eq!(base_path("https://ekg.example.com/ekg"), "/ekg/");
        assert_eq!(base_path("http://127.0.0.1:8443/a/b/?x"), "/a/b/");
        assert_eq!(endpoint("https://ekg.example.com/", KEY_REQUEST), "https://ekg.example.com/key-request");
        assert!(is_cms("application/cms; encapsulatingContent=1.2.3") && is_cms("Application/CMS"));
        assert!(!is_cms("application/json"));
    }
}
