//! A gatekeeper under test over HTTP: the protocol endpoints of `docs/protocol.md` §8 at
//! `--target`, and the management endpoint of `docs/conformance.md` §2 at `--manage`.
//! Every refusal must be a problem+json body whose status is the one §8.2 gives its code: a
//! right code with a wrong status is reported as a failure (`<code> with status N, not M`).

use std::time::Duration;

use ekg_binding as binding;
use ekg_core::{Rejection, UnixTime};
use ekg_fixtures::FixtureError;
use ekg_fixtures::target::{Accepted, Answer, Loaded, Observed, Refusal, Target};
use serde_json::{Value, json};

/// Most bytes of an answer read.
pub const MAX_ANSWER_LEN: u64 = 4 * 1024 * 1024;

/// A gatekeeper over HTTP.
pub struct Http {
    base: String,
    manage: String,
    agent: ureq::Agent,
}

/// The management base of a target: `{scheme}://{host}/ekg-test/v1/`.
pub fn default_manage(target: &str) -> String {
    let after = target.split_once("://").map_or(0, |(s, _)| s.len() + 3);
    let end = target[after..].find('/').map_or(target.len(), |i| after + i);
    format!("{}{}", &target[..end], binding::manage::BASE)
}

/// The `host:port` of an `http://` URL (port 80 when it names none).
pub fn authority(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://")?;
    let host = rest.split(['/', '?', '#']).next().filter(|h| !h.is_empty())?;
    Some(if host.rsplit_once(':').is_some_and(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())) && !host.ends_with(']') {
        host.to_owned()
    } else {
        format!("{host}:80")
    })
}

/// Waits until something accepts TCP connections at `url`'s host and port, for at most
/// `within` (a server started just before the runner, as in `ekg serve --test-mode &`, may
/// not listen yet). Tries every 100 ms; `Err` with what was tried when the time is up.
pub fn wait_until_listening(url: &str, within: Duration) -> Result<(), String> {
    use std::net::{TcpStream, ToSocketAddrs};
    let authority = authority(url).ok_or_else(|| format!("{url}: no host in the URL"))?;
    let deadline = std::time::Instant::now() + within;
    let mut told = false;
    loop {
        let addrs: Vec<_> = authority.to_socket_addrs().map(Iterator::collect).unwrap_or_default();
        if addrs.iter().any(|a| TcpStream::connect_timeout(a, Duration::from_millis(500)).is_ok()) {
            return Ok(());
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return Err(format!("nothing accepted a connection at {authority} within {} s", within.as_secs()));
        }
        if !told {
            eprintln!("ekg conformance: waiting for {authority} to listen (at most {} s)", within.as_secs());
            told = true;
        }
        std::thread::sleep(Duration::from_millis(100).min(deadline - now));
    }
}

fn slash(url: &str) -> String {
    if url.ends_with('/') { url.to_owned() } else { format!("{url}/") }
}

impl Http {
    /// The gatekeeper whose protocol endpoints are below `target` (`http://HOST:PORT/`), and
    /// whose management endpoint is below `manage`.
    pub fn new(target: &str, manage: Option<&str>) -> Result<Http, String> {
        // The management endpoint is loopback-only plain HTTP, and so is the runner.
        if !target.starts_with("http://") || manage.is_some_and(|m| !m.starts_with("http://")) {
            return Err(format!("--target {target}: an http:// URL (the runner speaks plain HTTP on loopback)"));
        }
        let manage = manage.map_or_else(|| default_manage(target), slash);
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Ok(Http { base: slash(target), manage, agent })
    }

    fn post(&self, url: &str, content_type: &str, body: &[u8]) -> Result<(u16, Vec<u8>, String), FixtureError> {
        let mut r = self
            .agent
            .post(url)
            .header("Content-Type", content_type)
            .send(body)
            .map_err(|e| FixtureError::Io(format!("{url}: {e}")))?;
        let status = r.status().as_u16();
        let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let body = r
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_LEN)
            .read_to_vec()
            .map_err(|e| FixtureError::Io(format!("{url}: {e}")))?;
        Ok((status, body, ct))
    }

    /// A management call: done, a protocol refusal (a code of `docs/protocol.md` §3.5, or
    /// `unsupported`), or a runner error for anything else.
    fn manage(&self, action: &str, body: &Value) -> Result<Answer, FixtureError> {
        let url = format!("{}{action}", self.manage);
        let (status, bytes, ct) = self.post(&url, "application/json", body.to_string().as_bytes())?;
        if (200..300).contains(&status) {
            return Ok(Ok(Accepted { body: Vec::new(), kind: None }));
        }
        let problem = problem_of(status, &bytes, &ct);
        let known = problem.code == binding::manage::codes::UNSUPPORTED
            || Rejection::ALL.iter().any(|r| r.code() == problem.code);
        if known {
            return Ok(Err(problem));
        }
        let detail = if problem.detail.is_empty() { String::new() } else { format!(" ({})", problem.detail) };
        Err(FixtureError::Io(format!(
            "the management endpoint answered {status} {}{detail} to {action} (docs/conformance.md §2.1)",
            problem.code
        )))
    }

    /// A management action other than `state`: `unsupported` skips the case.
    fn action(&self, action: &str, body: &Value) -> Result<Answer, FixtureError> {
        match self.manage(action, body)? {
            Err(r) if r.code == binding::manage::codes::UNSUPPORTED => {
                Err(FixtureError::Unsupported(format!("{action}: {}", r.detail)))
            }
            other => Ok(other),
        }
    }

    fn protocol(&self, endpoint: &str, der: &[u8]) -> Result<Answer, FixtureError> {
        let (status, body, ct) = self.post(&format!("{}{endpoint}", self.base), binding::MEDIA_CMS, der)?;
        if status == 200 {
            if !binding::is_cms(&ct) {
                return Ok(Err(Refusal { code: format!("200 with Content-Type {ct:?}"), detail: String::new() }));
            }
            return Ok(Ok(Accepted { body, kind: None }));
        }
        Ok(Err(problem_of(status, &body, &ct)))
    }
}

/// The refusal a problem body gives, its code marked if the status is not §8.2's for it or
/// the body is not `application/problem+json`.
fn problem_of(status: u16, body: &[u8], content_type: &str) -> Refusal {
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case(binding::MEDIA_PROBLEM) {
        return Refusal {
            code: format!("status {status} with Content-Type {content_type:?}, not a problem"),
            detail: String::new(),
        };
    }
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = v.get("code").and_then(Value::as_str).unwrap_or("");
    let detail = v.get("detail").and_then(Value::as_str).unwrap_or("").to_owned();
    if code.is_empty() {
        return Refusal { code: format!("status {status} without a problem code"), detail };
    }
    match Rejection::ALL.iter().find(|r| r.code() == code) {
        Some(r) if binding::status(*r) != status => {
            Refusal { code: format!("{code} with status {status}, not {}", binding::status(*r)), detail }
        }
        _ => Refusal { code: code.to_owned(), detail },
    }
}

impl Target for Http {
    fn load(&mut self, state: &Value) -> Result<Loaded, FixtureError> {
        Ok(match self.manage("state", state)? {
            Ok(_) => Loaded::Ready,
            Err(r) if r.code == binding::manage::codes::UNSUPPORTED => Loaded::Unsupported(r.detail),
            Err(r) => Loaded::Refused(r),
        })
    }

    fn set_clock(&mut self, now: UnixTime) -> Result<(), FixtureError> {
        match self.action("clock", &json!({"now": now.to_rfc3339()}))? {
            Ok(_) => Ok(()),
            Err(r) => Err(FixtureError::Io(format!("clock: {}", r.code))),
        }
    }

    fn key_request(&mut self, der: &[u8]) -> Result<Answer, FixtureError> {
        self.protocol(binding::KEY_REQUEST, der)
    }

    fn release_request(&mut self, der: &[u8]) -> Result<Answer, FixtureError> {
        self.protocol(binding::RELEASE_REQUEST, der)
    }

    fn tick(&mut self, now: UnixTime) -> Result<Answer, FixtureError> {
        self.action("tick", &json!({"now": now.to_rfc3339()}))
    }

    fn restart(&mut self) -> Result<Answer, FixtureError> {
        self.action("restart", &json!({}))
    }

    fn store_fails(&mut self, fails: bool) -> Result<Answer, FixtureError> {
        self.action("store", &json!({"fails": fails}))
    }

    fn observe(&mut self) -> Result<Observed, FixtureError> {
        let url = format!("{}observe", self.manage);
        let (status, bytes, ct) = self.post(&url, "application/json", b"{}")?;
        if status != 200 {
            let problem = problem_of(status, &bytes, &ct);
            if problem.code == binding::manage::codes::UNSUPPORTED || status == 404 {
                return Err(FixtureError::Unsupported(format!("observe: {status} {}", problem.code)));
            }
            return Err(FixtureError::Io(format!("observe answered {status} {}", problem.code)));
        }
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| FixtureError::Io(format!("observe: {e}")))?;
        let list = |k: &str| -> Vec<String> {
            v.get(k)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_ascii_lowercase)
                .collect()
        };
        Ok(Observed { held: list("held"), stored: list("stored"), wrapped: list("wrapped") })
    }

    fn key_request_as(&mut self, der: &[u8], media: &str) -> Result<Answer, FixtureError> {
        let (status, body, ct) = self.post(&format!("{}{}", self.base, binding::KEY_REQUEST), media, der)?;
        if status == 200 && binding::is_cms(&ct) {
            return Ok(Ok(Accepted { body, kind: None }));
        }
        let mut refusal = problem_of(status, &body, &ct);
        let http = binding::HTTP_CODE_STATUS.iter().find(|(c, _)| *c == refusal.code);
        if let Some((code, s)) = http.filter(|(_, s)| *s != status) {
            refusal.code = format!("{code} with status {status}, not {s}");
        }
        Ok(Err(refusal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn management_base_and_status_checks() {
        assert_eq!(default_manage("http://127.0.0.1:8443/"), "http://127.0.0.1:8443/ekg-test/v1/");
        assert_eq!(default_manage("http://127.0.0.1:8443/ekg"), "http://127.0.0.1:8443/ekg-test/v1/");
        assert_eq!(default_manage("http://h"), "http://h/ekg-test/v1/");
        let pj = "application/problem+json";
        let ok = problem_of(409, br#"{"code":"already_released"}"#, pj);
        assert_eq!(ok.code, "already_released");
        let wrong = problem_of(400, br#"{"code":"already_released"}"#, pj);
        assert_eq!(wrong.code, "already_released with status 400, not 409");
        assert_eq!(problem_of(500, b"oops", pj).code, "status 500 without a problem code");
        assert_eq!(
            problem_of(409, br#"{"code":"already_released"}"#, "text/plain").code,
            "status 409 with Content-Type \"text/plain\", not a problem"
        );
    }

    #[test]
    fn the_authority_of_a_target() {
        assert_eq!(authority("http://127.0.0.1:8444/").as_deref(), Some("127.0.0.1:8444"));
        assert_eq!(authority("http://localhost/ekg/").as_deref(), Some("localhost:80"));
        assert_eq!(authority("http://[::1]:9000/").as_deref(), Some("[::1]:9000"));
        assert_eq!(authority("https://x/"), None);
        assert_eq!(authority("http:///"), None);
    }

    #[test]
    fn the_runner_waits_for_a_server_that_starts_late_and_gives_up_in_time() {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let url = format!("http://{addr}/");
        // Nothing listens: refused after the time given, not before, not long after.
        let start = std::time::Instant::now();
        assert!(wait_until_listening(&url, Duration::from_millis(600)).is_err());
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(600) && took < Duration::from_secs(5), "{took:?}");
        // A server that binds 300 ms later is waited for.
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let l = std::net::TcpListener::bind(addr).unwrap();
            let _ = l.accept();
        });
        assert!(wait_until_listening(&url, Duration::from_secs(10)).is_ok());
        late.join().unwrap();
    }
}
