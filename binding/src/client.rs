//! The client side of the HTTP binding (feature `client`): a request's bytes POSTed or a
//! log route read with a bounded answer, `503` retried after its `Retry-After`, and a refusal
//! turned into its problem code (RFC 9457). Used by `ekg send` and `ekg read`.

use std::sync::Arc;
use std::time::Duration;

use crate::{self as binding, ClientAction, Problem};

/// Why a request got no `200` answer: a stable code (the gatekeeper's problem code, or
/// `gatekeeper_unreachable`, `gatekeeper_unavailable`, `gatekeeper_error`) and one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The code.
    pub code: String,
    /// The line.
    pub detail: String,
}

impl core::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for Failure {}

fn fail<T>(code: &str, detail: impl Into<String>) -> Result<T, Failure> {
    Err(Failure { code: code.to_owned(), detail: detail.into() })
}

/// The client side of the HTTP binding.
pub struct GatekeeperClient {
    agent: ureq::Agent,
}

/// Most times a `503` is retried, and the longest `Retry-After` honoured.
const RETRIES: u32 = 2;
const MAX_RETRY_AFTER_SECS: u64 = 10;
/// Largest answer read.
const MAX_ANSWER_LEN: u64 = 1024 * 1024;

impl GatekeeperClient {
    /// A client trusting the public web roots and `extra_roots`.
    pub fn new(extra_roots: Vec<ureq::tls::Certificate<'static>>) -> GatekeeperClient {
        let crypto = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let roots = if extra_roots.is_empty() {
            ureq::tls::RootCerts::WebPki
        } else {
            ureq::tls::RootCerts::new_with_certs(&extra_roots)
        };
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(roots)
            .unversioned_rustls_crypto_provider(crypto)
            .build();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .tls_config(tls)
            .build()
            .into();
        GatekeeperClient { agent }
    }

    /// POSTs `der` to `{uri}{endpoint}`; the `200` body, or the refusal as a [`Failure`]
    /// (`503` is retried after its `Retry-After`, twice at most).
    pub fn post(&self, uri: &str, endpoint: &str, der: &[u8]) -> Result<Vec<u8>, Failure> {
        let url = binding::endpoint(uri, endpoint);
        for attempt in 0..=RETRIES {
            let sent = self.agent.post(&url).header("Content-Type", binding::MEDIA_CMS).send(der);
            let mut answer = match sent {
                Ok(a) => a,
                Err(e) => return fail("gatekeeper_unreachable", format!("{url}: {e}")),
            };
            let status = answer.status().as_u16();
            let retry_after = answer
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(u64::from(binding::RETRY_AFTER_SECS));
            let body = read_answer(&mut answer, &url)?;
            match binding::client_action(status) {
                ClientAction::Accept => return Ok(body),
                ClientAction::RetryLater if attempt < RETRIES => {
                    std::thread::sleep(Duration::from_secs(retry_after.min(MAX_RETRY_AFTER_SECS)));
                }
                _ => return Err(refusal(&url, status, &body)),
            }
        }
        fail("gatekeeper_unavailable", format!("{url}: still 503 after {RETRIES} retries"))
    }

    /// GETs `{uri}{endpoint}` (its query included): the `200` body, or the refusal as a
    /// [`Failure`] (no retry: the log's routes change no state, a caller asks again).
    pub fn get(&self, uri: &str, endpoint: &str) -> Result<Vec<u8>, Failure> {
        let url = binding::endpoint(uri, endpoint);
        let mut answer = match self.agent.get(&url).call() {
            Ok(a) => a,
            Err(e) => return fail("gatekeeper_unreachable", format!("{url}: {e}")),
        };
        let status = answer.status().as_u16();
        let body = read_answer(&mut answer, &url)?;
        if binding::client_action(status) == ClientAction::Accept {
            return Ok(body);
        }
        Err(refusal(&url, status, &body))
    }
}

/// A refusal's problem body as a [`Failure`] with its code.
fn refusal(url: &str, status: u16, body: &[u8]) -> Failure {
    let problem: Option<Problem> = serde_json::from_slice(body).ok();
    match problem {
        Some(p) => Failure {
            code: p.code.clone(),
            detail: if p.detail.is_empty() {
                format!("the gatekeeper refused ({status} {})", p.title)
            } else {
                format!("the gatekeeper refused ({status} {}): {}", p.title, p.detail)
            },
        },
        None => Failure {
            code: "gatekeeper_error".into(),
            detail: format!("{url} answered {status} without a problem body"),
        },
    }
}

/// An answer's body, read to at most [`MAX_ANSWER_LEN`] octets.
fn read_answer(answer: &mut ureq::http::Response<ureq::Body>, url: &str) -> Result<Vec<u8>, Failure> {
    answer
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_LEN)
        .read_to_vec()
        .or_else(|e| fail("gatekeeper_unreachable", format!("{url}: reading the answer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_carries_the_problem_code_and_a_body_without_one_is_a_gatekeeper_error() {
        let body = Problem::new(409, "already_released", "twice").to_json();
        let f = refusal("http://127.0.0.1/release-request", 409, body.as_bytes());
        assert_eq!(f.code, "already_released");
        assert!(f.detail.contains("409") && f.detail.ends_with(": twice"), "{}", f.detail);
        let f = refusal("http://127.0.0.1/release-request", 502, b"<html>bad gateway</html>");
        assert_eq!(f.code, "gatekeeper_error");
        assert!(f.detail.contains("502 without a problem body"), "{}", f.detail);
    }
}
