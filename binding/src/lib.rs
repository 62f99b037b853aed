//! `ekg-binding`: the HTTP binding of the protocol (`docs/protocol.md` §8): paths, media
//! types, the status of every rejection and what a client does on it, and RFC 9457 problem
//! bodies. Shared by the server (`ekg-server`, which re-exports it as `ekg_server::binding`)
//! and the clients (`ekg send`, `ekg read`, `ekg load`, `ekg conformance`), which need not
//! link the server for it.

#![forbid(unsafe_code)]

#[cfg(feature = "client")]
pub mod client;

use ekg_core::Rejection;
use serde::{Deserialize, Serialize};

/// The path, below the gatekeeper's URI, that takes key requests.
pub const KEY_REQUEST: &str = "key-request";
/// The path, below the gatekeeper's URI, that takes release requests.
pub const RELEASE_REQUEST: &str = "release-request";
/// The issuance log's latest signed tree head (`GET`, `application/cms`; §10.3).
pub const LOG_HEAD: &str = "log/head";
/// A ticket's inclusion proof (`GET ?ticket=HEX`, `application/json`; §10.8).
pub const LOG_INCLUSION: &str = "log/inclusion";
/// A consistency proof between two sizes (`GET ?first=N&second=M`, `application/json`).
pub const LOG_CONSISTENCY: &str = "log/consistency";
/// The log's entries `[start, end)` back to back, as a log file (§10.2)
/// (`GET ?start=N&end=M`, at most 65 536 entries, `application/octet-stream`).
pub const LOG_ENTRIES: &str = "log/entries";
/// Media type of the log's entries.
pub const MEDIA_OCTETS: &str = "application/octet-stream";
/// Media type of the log's proofs.
pub const MEDIA_JSON: &str = "application/json";
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

/// The HTTP status of every rejection, in [`Rejection::ALL`]'s order: the one table the
/// server answers with, the runner expects and `docs/protocol.md` §8.2 shows
/// ([`status_table`]; `server/tests/docs.rs` checks the document against it). A requester's
/// fault is a `4xx`: `400` when the bytes are not a message of the profile, `403` when they
/// are but the requester may not have this, `404`/`409`/`410`/`413` where the ledger or a limit
/// says more; the gatekeeper's own failures are `500`, its store's `503`.
pub const REJECTION_STATUS: &[(Rejection, u16)] = {
    use Rejection as R;
    &[
        (R::InputTooLarge, 413),
        (R::BerNotDer, 400),
        (R::MalformedDer, 400),
        (R::UnexpectedContentType, 400),
        (R::UnsupportedVersion, 400),
        (R::UnsupportedAlgorithm, 400),
        (R::ProfileViolation, 400),
        (R::ContentTypeMismatch, 400),
        (R::DigestMismatch, 403),
        (R::SignerCertificateMissing, 400),
        (R::BadSignature, 403),
        (R::UntrustedCertificate, 403),
        (R::ChainTooLong, 403),
        (R::CertificateExpired, 403),
        (R::CertificateNotYetValid, 403),
        (R::CertificateRevoked, 403),
        (R::CrlStale, 500),
        (R::KeyUsageNotAllowed, 403),
        (R::ExtendedKeyUsageNotAllowed, 403),
        (R::UnknownCriticalExtension, 403),
        (R::NameNotPermitted, 403),
        (R::UnsupportedKey, 403),
        (R::CertificateHasNoEmail, 403),
        (R::InvalidAddress, 400),
        (R::SenderAddressMismatch, 403),
        (R::SenderNotRecognised, 403),
        (R::NoRecipients, 400),
        (R::TooManyRecipients, 403),
        (R::DuplicateRecipient, 400),
        (R::RequestTimeSkew, 403),
        (R::DuplicateRequest, 409),
        (R::WrongGatekeeper, 403),
        (R::TicketExpired, 410),
        (R::RecipientNotListed, 403),
        (R::KeyUnknown, 404),
        (R::KeyDestroyed, 410),
        (R::AlreadyReleased, 409),
        (R::ReleasedToOtherCertificate, 409),
        (R::RedeliveryLimit, 409),
        (R::AnchorNotAllowedForDomain, 403),
        (R::InvalidLabel, 400),
        (R::LabelUnknown, 403),
        (R::EntitlementAllOfUnmet, 403),
        (R::EntitlementAnyOfUnmet, 403),
        (R::EntitlementHierarchyUnmet, 403),
        (R::ListLoop, 403),
        (R::ListDepthExceeded, 403),
        (R::TokenInvalid, 403),
        (R::TokenIssuer, 403),
        (R::TokenKeyUnknown, 403),
        (R::TokenAudience, 403),
        (R::TokenExpired, 403),
        (R::TokenNotYetValid, 403),
        (R::TokenUnbound, 403),
        (R::TokenReplayed, 409),
        (R::ResponseMismatch, 403),
        (R::NotForThisRecipient, 400),
        (R::KeyUnwrapFailed, 403),
        (R::AuthenticationFailed, 403),
        (R::TicketDigestMismatch, 403),
        (R::ListExpansionMismatch, 403),
        // The auditor's (the issuance log, A1 to A6): a gatekeeper never answers them.
        (R::LogMalformed, 400),
        (R::TreeHeadMalformed, 400),
        (R::TreeHeadBadSignature, 403),
        (R::LogRootMismatch, 403),
        (R::LogProofMalformed, 400),
        (R::LogInclusionFailed, 403),
        (R::TicketNotLogged, 403),
        (R::LogConsistencyFailed, 403),
        (R::LogFork, 403),
        (R::LogAddressMismatch, 403),
        (R::StorageFailed, 503),
        (R::KeyIdCollision, 500),
        (R::InvalidConfiguration, 500),
        (R::CryptoFailure, 500),
    ]
};

/// The HTTP status of a rejection ([`REJECTION_STATUS`]; `500` for a code the table lacks,
/// which a test rules out).
pub fn status(rejection: Rejection) -> u16 {
    REJECTION_STATUS.iter().find(|(r, _)| *r == rejection).map_or(500, |(_, s)| *s)
}

/// The HTTP layer's own codes ([`http_codes`]) and their status.
pub const HTTP_CODE_STATUS: &[(&str, u16)] = http_codes::ALL;

/// The status of an HTTP-layer code (`500` for a code the table lacks).
pub fn http_status(code: &str) -> u16 {
    HTTP_CODE_STATUS.iter().find(|(c, _)| *c == code).map_or(500, |(_, s)| *s)
}

/// What each status means to a client (the third column of `docs/protocol.md` §8.2).
const MEANING: &[(u16, &str)] = &[
    (400, "the bytes are not a message of the profile"),
    (403, "the bytes are right, the requester may not have this"),
    (404, "no such key, or no such path"),
    (405, "the path takes another method (`Allow` says which)"),
    (408, "the request head or body did not arrive within the server's timeouts"),
    (409, "the ledger has already decided otherwise"),
    (410, "gone for good"),
    (413, "the body is over the endpoint's limit (§8.4)"),
    (415, "the body is not `application/cms`"),
    (414, "the request target is longer than the server takes"),
    (
        429,
        "nothing was recorded: too many connections from this address, or the sender has its quota of keys held; retry after `Retry-After`",
    ),
    (431, "the request head is larger than the server takes"),
    (500, "the server failed; nothing was released"),
    (503, "nothing was recorded: send the same bytes again after `Retry-After: 5`"),
];

/// `docs/protocol.md` §8.2's table, made from [`REJECTION_STATUS`] and [`HTTP_CODE_STATUS`]:
/// one row per status, every code in exactly one row.
pub fn status_table() -> String {
    let mut statuses: Vec<u16> =
        REJECTION_STATUS.iter().map(|(_, s)| *s).chain(HTTP_CODE_STATUS.iter().map(|(_, s)| *s)).collect();
    statuses.sort_unstable();
    statuses.dedup();
    let mut out = String::from("| Status | Codes | Meaning |\n|---|---|---|\n");
    for status in statuses {
        let quoted = |c: &str| format!("`{c}`");
        let protocol: Vec<String> =
            REJECTION_STATUS.iter().filter(|(_, s)| *s == status).map(|(r, _)| quoted(r.code())).collect();
        let http: Vec<String> = HTTP_CODE_STATUS.iter().filter(|(_, s)| *s == status).map(|(c, _)| quoted(c)).collect();
        let codes = match (protocol.is_empty(), http.is_empty()) {
            (false, true) => protocol.join(", "),
            (true, false) => format!("HTTP layer: {}", http.join(", ")),
            _ => format!("{}; HTTP layer: {}", protocol.join(", "), http.join(", ")),
        };
        let meaning = MEANING.iter().find(|(s, _)| *s == status).map_or("", |(_, m)| *m);
        out.push_str(&format!("| `{status}` | {codes} | {meaning} |\n"));
    }
    out
}

/// What a client does on `status` (`docs/protocol.md` §8.3).
pub fn client_action(status: u16) -> ClientAction {
    match status {
        200 => ClientAction::Accept,
        429 | 503 => ClientAction::RetryLater,
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
    /// A query of the issuance log's routes that is missing, not a number or a 64-digit hex
    /// hash, or out of the log's range: 400.
    pub const LOG_QUERY_INVALID: &str = "log_query_invalid";
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
        (LOG_QUERY_INVALID, 400),
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
    /// A problem of the HTTP layer: `code` (one of [`http_codes`]) with its status
    /// ([`HTTP_CODE_STATUS`]).
    pub fn http(code: &str, detail: impl Into<String>) -> Problem {
        Problem::new(http_status(code), code, detail)
    }

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

    /// A problem of a protocol code, with its status ([`REJECTION_STATUS`]).
    pub fn rejection(rejection: Rejection, detail: impl Into<String>) -> Problem {
        Problem::new(status(rejection), rejection.code(), detail)
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

/// The management endpoint of a gatekeeper under test (`docs/conformance.md` §2): what the
/// reference's test mode serves and the conformance runner calls.
pub mod manage {
    /// The management endpoint's base path.
    pub const BASE: &str = "/ekg-test/v1/";

    /// Problem codes of the management endpoint.
    pub mod codes {
        /// The body is not a state (bad JSON, an unknown name of `v1/pki`, a bad field).
        pub const MALFORMED_STATE: &str = "malformed_state";
        /// The implementation cannot load this state (an injection it lacks): the runner skips.
        pub const UNSUPPORTED: &str = "unsupported";
        /// A protocol request or an action before any state was loaded.
        pub const NO_STATE: &str = "no_state";
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ekg_core::Fault;

    #[test]
    fn every_rejection_has_a_status_and_requester_faults_are_4xx() {
        // The table lists every code once, in Rejection::ALL's order (a new code without a
        // status fails here rather than answering 500).
        let listed: Vec<Rejection> = REJECTION_STATUS.iter().map(|(r, _)| *r).collect();
        assert_eq!(listed, Rejection::ALL);
        for r in Rejection::ALL {
            let s = status(*r);
            assert!((400..600).contains(&s), "{r:?}");
            if r.fault() != Fault::Local {
                assert!((400..500).contains(&s), "{r:?} is the requester's: 4xx, got {s}");
            } else {
                assert!(s >= 500, "{r:?} is the gatekeeper's own failure: 5xx, got {s}");
            }
        }
        for (code, s) in HTTP_CODE_STATUS {
            assert_eq!(http_status(code), *s);
            assert!(Rejection::from_code(code).is_none(), "{code} is also a protocol code");
        }
        let table = status_table();
        for r in Rejection::ALL {
            assert_eq!(table.matches(&format!("`{}`", r.code())).count(), 1, "{r:?}");
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
