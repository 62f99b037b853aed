//! `ekg serve --test-mode`: the reference gatekeeper behind the conformance management
//! endpoint (`docs/conformance.md` §2), in the manner of Pebble's management port. Loopback
//! only. A `POST /ekg-test/v1/state` replaces the gatekeeper with one built from a vector's
//! `config`, `store`, `now` and `inject` (names of the `v1/pki` files), over a memory store;
//! `clock`, `tick`, `restart` and `store` move time, sweep, recover from the store alone, and
//! make the store fail. The protocol endpoints are `/key-request` and `/release-request`
//! whatever gatekeeper URI is loaded, on the same HTTP code as `ekg serve`.
//!
//! A web page must not drive it: every request's `Host` must be a loopback name
//! (`localhost`, `127.0.0.1`, `[::1]`, with any port; else `403 host_not_allowed`, which
//! stops DNS rebinding), a request with an `Origin` header (a browser's cross-origin or
//! same-origin fetch) is refused (`403 cross_origin_refused`), and a management body must be
//! `application/json` (else `415 unsupported_media_type`: a form or `text/plain` post, the
//! kinds a browser sends across origins without asking first, is never read).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ekg_core::crypto::CryptoProvider;
use ekg_core::wire::limits::MAX_KEY_REQUEST_LEN;
use ekg_core::{KeyId, UnixTime};
use ekg_fixtures::target::ForcedKeyId;
use ekg_fixtures::{FixtureError, Pki};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Request, Response, StatusCode};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::binding::{self, Problem};
use crate::http::{Answer, Handler, Routes, problem, read_body};
use crate::metrics::Metrics;
use crate::service::{Clock, Service};
use crate::store::AnyStore;
use crate::{Running, ServeError};

/// The management endpoint's base path and problem codes: the runner's too (`ekg-binding`).
pub use ekg_binding::manage::{BASE as MANAGE_BASE, codes};
/// Largest management body (a state with its store records), bytes.
pub const MAX_STATE_LEN: usize = 8 * 1024 * 1024;
/// The injections the reference can make (`inject` of the gatekeeper vectors).
pub const INJECTIONS: &[&str] = &["storeFails", "drawKeyId", "providerFails"];

/// What `ekg serve --test-mode` runs with.
pub struct TestSettings {
    /// Listen address (loopback only).
    pub listen: SocketAddr,
    /// The test PKI the states name.
    pub pki: Pki,
    /// The crypto provider of the gatekeepers it builds.
    pub provider: &'static dyn CryptoProvider,
    /// Worker threads.
    pub workers: usize,
    /// Body read timeout.
    pub body_timeout: Duration,
}

impl core::fmt::Debug for TestSettings {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "TestSettings({}, {} entities)", self.listen, self.pki.entities.len())
    }
}

/// One loaded state.
struct Current {
    config: Value,
    provider: &'static dyn CryptoProvider,
    service: Arc<Service>,
    routes: Arc<Routes>,
    forced_key_id: Option<KeyId>,
}

/// The test mode's handler: the management endpoint, and the current gatekeeper's routes.
struct TestMode {
    settings: TestSettings,
    clock: Arc<Clock>,
    current: Mutex<Option<Arc<Current>>>,
}

fn no_content() -> Answer {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

fn malformed(detail: impl Into<String>) -> Answer {
    problem(&Problem::new(400, codes::MALFORMED_STATE, detail))
}

fn refused(e: &ekg_core::Error) -> Answer {
    problem(&Problem::of(e))
}

/// The `now` of a management body (the detail of a `malformed_state` if there is none).
fn time_of(body: &Value) -> Result<UnixTime, String> {
    let s = body.get("now").and_then(Value::as_str).ok_or("no \"now\"")?;
    UnixTime::from_rfc3339(s).ok_or_else(|| format!("now: not RFC 3339: {s}"))
}

impl TestMode {
    fn current(&self) -> Option<Arc<Current>> {
        self.current.lock().ok().and_then(|c| c.clone())
    }

    fn set(&self, c: Option<Current>) {
        if let Ok(mut slot) = self.current.lock() {
            *slot = c.map(Arc::new);
        }
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Answer, Infallible> {
        if let Some(refused) = not_same_machine(&req) {
            return Ok(refused);
        }
        let path = req.uri().path().to_owned();
        if let Some(action) = path.strip_prefix(MANAGE_BASE) {
            let action = action.to_owned();
            if req.method() != Method::POST {
                return Ok(problem(&Problem::http(binding::http_codes::METHOD_NOT_ALLOWED, "use POST")));
            }
            let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            if !is_json(content_type) {
                let detail = format!("a management body must be application/json (got {content_type:?})");
                return Ok(problem(&Problem::new(415, binding::http_codes::UNSUPPORTED_MEDIA_TYPE, detail)));
            }
            let body = match read_json(req, self.settings.body_timeout).await {
                Ok(b) => b,
                Err(a) => return Ok(a),
            };
            let this = Arc::clone(&self);
            let answer = tokio::task::spawn_blocking(move || this.manage(&action, &body)).await;
            return Ok(answer.unwrap_or_else(|e| malformed(format!("management: {e}"))));
        }
        let Some(current) = self.current() else {
            return Ok(problem(&Problem::new(409, codes::NO_STATE, "load a state first (POST /ekg-test/v1/state)")));
        };
        let key_request = format!("/{}", binding::KEY_REQUEST);
        if let (Some(key_id), true) = (current.forced_key_id, path == key_request && req.method() == Method::POST) {
            return Ok(self.forced_issue(&current, req, key_id).await);
        }
        Arc::clone(&current.routes).handle(req).await
    }

    /// A key request with the injection `drawKeyId`: the same stages as the service's, with
    /// the key id of the draw replaced.
    async fn forced_issue(&self, current: &Current, req: Request<Incoming>, key_id: KeyId) -> Answer {
        let der = match read_body(req, MAX_KEY_REQUEST_LEN, self.settings.body_timeout).await {
            Ok(d) => d,
            Err(a) => return a,
        };
        let now = self.clock.now();
        let service = Arc::clone(&current.service);
        let built = tokio::task::spawn_blocking(move || {
            service.with_gatekeeper(|gk| {
                let mut rng = ChaCha20Rng::seed_from_u64(now.secs());
                let verified = gk.crypto().verify_key_request(&der, now)?;
                let crypto = gk.shared_crypto();
                let mut draw = ForcedKeyId { inner: crypto.draw_from(&mut rng, now), key_id };
                let committed = gk.issue_with(verified, &mut draw, now)?;
                crypto.build_issuance(committed, &mut rng)?.to_response_der()
            })
        })
        .await;
        match built {
            Ok(Ok(Ok(body))) => {
                let mut r = Response::new(Full::new(Bytes::from(body)));
                r.headers_mut().insert(CONTENT_TYPE, hyper::header::HeaderValue::from_static(binding::MEDIA_CMS));
                r
            }
            Ok(Ok(Err(e)) | Err(e)) => refused(&e),
            Err(e) => malformed(format!("worker: {e}")),
        }
    }

    fn manage(&self, action: &str, body: &Value) -> Answer {
        match action {
            "state" => self.load(body),
            "clock" => match time_of(body) {
                Ok(now) => {
                    self.clock.pin(now);
                    no_content()
                }
                Err(detail) => malformed(detail),
            },
            "tick" => {
                let now = match time_of(body) {
                    Ok(n) => n,
                    Err(detail) => return malformed(detail),
                };
                self.clock.pin(now);
                let Some(c) = self.current() else { return no_state() };
                match c.service.with_gatekeeper(|gk| gk.handle_timeout(now)) {
                    Ok(Ok(_)) => no_content(),
                    Ok(Err(e)) | Err(e) => refused(&e),
                }
            }
            "restart" => self.recover(None),
            "observe" => self.observe(),
            "store" => match body.get("fails").and_then(Value::as_bool) {
                Some(fails) => self.recover(Some(fails)),
                None => malformed("store: {\"fails\": true|false}"),
            },
            other => problem(&Problem::http(binding::http_codes::NOT_FOUND, format!("no action {other}"))),
        }
    }

    fn load(&self, body: &Value) -> Answer {
        let Some(config) = body.get("config").filter(|c| c.is_object()) else {
            return malformed("no \"config\" object");
        };
        let now = match time_of(body) {
            Ok(n) => n,
            Err(detail) => return malformed(detail),
        };
        let inject = body.get("inject").cloned().unwrap_or(Value::Null);
        if let Some(unknown) =
            inject.as_object().into_iter().flatten().map(|(k, _)| k).find(|k| !INJECTIONS.contains(&k.as_str()))
        {
            return problem(&Problem::new(422, codes::UNSUPPORTED, format!("injection {unknown}")));
        }
        let failing = inject.get("storeFails").and_then(Value::as_bool).unwrap_or(false);
        let forced_key_id = match ekg_fixtures::target::forced_key_id(&inject) {
            Ok(k) => k,
            Err(e) => return malformed(e.to_string()),
        };
        let provider = if inject.get("providerFails").is_some() {
            ekg_fixtures::client::failing_provider()
        } else {
            self.settings.provider
        };
        // The previous gatekeeper goes first: a refused state leaves none.
        self.set(None);
        self.clock.pin(now);
        let store = match ekg_fixtures::memory_store(config, body.get("store"), failing) {
            Ok(s) => s,
            Err(FixtureError::Core(e)) => return refused(&e),
            Err(e) => return malformed(e.to_string()),
        };
        self.start(config.clone(), provider, store, forced_key_id)
    }

    /// A gatekeeper over `store` (recovering its ledger), served from now on.
    fn start(
        &self,
        config: Value,
        provider: &'static dyn CryptoProvider,
        store: ekg_core::ledger::MemoryStore<ekg_core::ledger::Concrete>,
        forced_key_id: Option<KeyId>,
    ) -> Answer {
        match ekg_fixtures::gatekeeper_on(&self.settings.pki, &config, AnyStore::Memory(store), provider) {
            Ok(gk) => {
                let service = Arc::new(Service::new(
                    gk,
                    self.settings.workers,
                    Arc::new(Metrics::new()),
                    Arc::clone(&self.clock),
                ));
                let routes = Arc::new(Routes::at(
                    Arc::clone(&service),
                    "/",
                    self.settings.body_timeout,
                    Duration::from_secs(crate::config::DEFAULT_REQUEST_DEADLINE_SECS),
                ));
                self.set(Some(Current { config, provider, service, routes, forced_key_id }));
                no_content()
            }
            Err(FixtureError::Core(e)) => refused(&e),
            Err(e) => malformed(e.to_string()),
        }
    }

    /// `observe`: the key ids held (pending or retained), those whose key material is still
    /// stored, and those whose stored material unwraps under the configured storage key (is
    /// wrapped, not in the clear), from the store's records (`200`, JSON).
    fn observe(&self) -> Answer {
        use ekg_core::ledger::{KeyState, Ledger, Record};
        let Some(c) = self.current() else { return no_state() };
        let storage_key: Option<[u8; 32]> = c
            .config
            .get("storageKey")
            .and_then(Value::as_str)
            .and_then(|h| hex::decode(h).ok())
            .and_then(|k| k.try_into().ok());
        let provider = c.provider;
        let seen = c.service.with_gatekeeper(|gk| {
            let AnyStore::Memory(m) = gk.store() else { return Err("not a memory store".to_owned()) };
            let records = m.records();
            let ledger = Ledger::recover(*gk.rules().config(), records.iter()).map_err(|e| e.to_string())?;
            let held: Vec<String> = ledger
                .keys()
                .filter(|(_, s)| !matches!(s, KeyState::Destroyed(_)))
                .map(|(k, _)| hex::encode(k.0))
                .collect();
            let mut stored = Vec::new();
            let mut wrapped = Vec::new();
            for r in &records {
                if let Record::Issued { key_id, handle, .. } = r {
                    stored.push(hex::encode(key_id.0));
                    if storage_key.is_some_and(|k| provider.aes256_kw_unwrap(&k, &handle.wrapped.0).is_ok()) {
                        wrapped.push(hex::encode(key_id.0));
                    }
                }
            }
            Ok(serde_json::json!({"held": held, "stored": stored, "wrapped": wrapped}))
        });
        match seen {
            Ok(Ok(v)) => {
                let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
                r.headers_mut().insert(CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
                r
            }
            Ok(Err(detail)) => malformed(detail),
            Err(e) => refused(&e),
        }
    }

    /// As after a crash: a new gatekeeper recovers from the current one's store alone (which
    /// then fails its writes, or not, if `fails` says so).
    fn recover(&self, fails: Option<bool>) -> Answer {
        let Some(c) = self.current() else { return no_state() };
        let store = c.service.with_gatekeeper(|gk| match gk.store() {
            AnyStore::Memory(m) => Some(m.clone()),
            AnyStore::Sqlite(_) | AnyStore::Postgres(_) => None,
        });
        let Ok(Some(store)) = store else { return malformed("the store cannot be copied") };
        if let Some(f) = fails {
            store.set_failing(f);
        }
        self.set(None);
        self.start(c.config.clone(), c.provider, store, c.forced_key_id)
    }
}

/// Whether `content_type` is `application/json` (parameters allowed).
fn is_json(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether `host` (a `Host` header) names this machine's loopback: `localhost`, `127.0.0.1`
/// (any of 127/8), `[::1]`, each with or without a port.
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((inside, port)) if port.is_empty() || port.starts_with(':') => inside,
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            Some(_) => return false,
            None => host,
        }
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The refusal of what a web page could send (a non-loopback `Host`, an `Origin` header), if
/// `req` is one.
fn not_same_machine(req: &Request<Incoming>) -> Option<Answer> {
    let host = req.headers().get(hyper::header::HOST).and_then(|v| v.to_str().ok());
    let host = host.or_else(|| req.uri().authority().map(hyper::http::uri::Authority::as_str));
    if !host.is_some_and(is_loopback_host) {
        let detail = "the test mode answers requests for a loopback name only (Host: localhost, 127.0.0.1 or [::1])";
        return Some(problem(&Problem::new(403, binding::http_codes::HOST_NOT_ALLOWED, detail)));
    }
    if req.headers().contains_key(hyper::header::ORIGIN) {
        let detail = "requests from web pages (with an Origin header) are refused";
        return Some(problem(&Problem::new(403, binding::http_codes::CROSS_ORIGIN_REFUSED, detail)));
    }
    None
}

fn no_state() -> Answer {
    problem(&Problem::new(409, codes::NO_STATE, "load a state first (POST /ekg-test/v1/state)"))
}

/// A JSON body of at most [`MAX_STATE_LEN`] bytes (an empty body is `{}`).
async fn read_json(req: Request<Incoming>, timeout: Duration) -> Result<Value, Answer> {
    let conn = req.extensions().get::<crate::ClientConnection>().cloned();
    let body = Limited::new(crate::listener::WatchedBody::new(req.into_body(), conn.as_ref()), MAX_STATE_LEN);
    let bytes = match tokio::time::timeout(timeout, body.collect()).await {
        Err(_) => {
            return Err(problem(&Problem::http(
                binding::http_codes::REQUEST_TIMEOUT,
                "the body did not arrive in time",
            )));
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(problem(&Problem::rejection(
                ekg_core::Rejection::InputTooLarge,
                format!("at most {MAX_STATE_LEN} bytes"),
            )));
        }
        Ok(Err(e)) => return Err(malformed(format!("reading the body: {e}"))),
        Ok(Ok(c)) => c.to_bytes(),
    };
    if bytes.is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_slice(&bytes).map_err(|e| malformed(format!("not JSON: {e}")))
}

/// Serves the test mode until `stop` resolves.
pub async fn run(
    settings: TestSettings,
    clock: Arc<Clock>,
    stop: impl std::future::Future<Output = ()>,
    bound: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    if !settings.listen.ip().is_loopback() {
        return Err(ServeError::Io(format!("{}: the test mode listens on a loopback address only", settings.listen)));
    }
    let listener =
        TcpListener::bind(settings.listen).await.map_err(|e| ServeError::Io(format!("{}: {e}", settings.listen)))?;
    bound(listener.local_addr().map_err(|e| ServeError::Io(e.to_string()))?);
    let mode = Arc::new(TestMode { settings, clock, current: Mutex::new(None) });
    let handler: Handler = Arc::new(move |req| Box::pin(Arc::clone(&mode).handle(req)));
    let listen = crate::listener::Listen {
        listener,
        tls: None,
        limits: crate::listener::ConnectionLimits {
            max_connections: 64,
            max_connections_per_client: 64,
            ..crate::listener::ConnectionLimits::default()
        },
        grace: Duration::from_secs(5),
        metrics: None,
    };
    crate::listener::serve(listen, handler, stop).await;
    Ok(())
}

/// Starts the test mode on a thread of its own; returns once it listens.
pub fn start(settings: TestSettings) -> Result<Running, ServeError> {
    let clock = Arc::new(Clock::default());
    let workers = settings.workers;
    let c = Arc::clone(&clock);
    crate::spawn(workers, clock, move |stop, _reloads, bound| run(settings, c, stop, bound))
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn only_loopback_names_are_hosts_of_the_test_mode() {
        for ok in ["localhost", "LOCALHOST:8443", "127.0.0.1", "127.0.0.1:8443", "127.1.2.3:1", "[::1]", "[::1]:8443"] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for refused in [
            "evil.example",
            "evil.example:8443",
            "localhost.evil.example",
            "10.0.0.1:8443",
            "[::2]:1",
            "127.0.0.1:x",
            "[::1]x",
            "",
        ] {
            assert!(!is_loopback_host(refused), "{refused}");
        }
    }
}
