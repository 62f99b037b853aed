//! Requests to answers: routing, media types, body limits (413 before a body is read whole),
//! body timeouts (408), and problem+json refusals (`docs/protocol.md` §8).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ekg_core::role::planted::{PlantedBug as P, is as planted};
use ekg_core::wire::limits::{MAX_KEY_REQUEST_LEN, MAX_RELEASE_REQUEST_LEN};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};

use crate::binding::{self, Problem, http_codes};
use crate::caller::{self, Caller};
use crate::listener::WatchedBody;
pub use crate::listener::{Answer, Handler};
use crate::service::Service;

/// The routes of one gatekeeper.
pub struct Routes {
    service: Arc<Service>,
    key_request: String,
    release_request: String,
    /// `{base}log/`: the issuance log's routes.
    log: String,
    body_timeout: Duration,
    request_deadline: Duration,
    /// One count of the keys held at a time (a query on a blocking thread, with a database
    /// handle): a scrape that arrives meanwhile gets the last count. Unbounded, a flood of
    /// pipelined `GET /metrics` took a thread and a SQLite handle each (294 handles open
    /// after 1,100 slow readers).
    counting: tokio::sync::Semaphore,
}

impl core::fmt::Debug for Routes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Routes({}, {})", self.key_request, self.release_request)
    }
}

enum Endpoint {
    KeyRequest,
    ReleaseRequest,
}

impl Routes {
    /// The routes of `service` (its URI's path gives the endpoints' base).
    /// A protocol request has `request_deadline` once its body is read (`crate::caller`).
    pub fn new(service: Arc<Service>, body_timeout: Duration, request_deadline: Duration) -> Routes {
        let base = binding::base_path(service.uri());
        Routes::at(service, &base, body_timeout, request_deadline)
    }

    /// The routes of `service` below `base` (`/`: the test mode, whatever URI is loaded).
    pub fn at(service: Arc<Service>, base: &str, body_timeout: Duration, request_deadline: Duration) -> Routes {
        Routes {
            key_request: format!("{base}{}", binding::KEY_REQUEST),
            release_request: format!("{base}{}", binding::RELEASE_REQUEST),
            log: format!("{base}log/"),
            service,
            body_timeout,
            request_deadline,
            counting: tokio::sync::Semaphore::const_new(1),
        }
    }

    /// As a connection [`Handler`].
    pub fn handler(self: Arc<Self>) -> Handler {
        Arc::new(move |req| Box::pin(Arc::clone(&self).handle(req)))
    }

    /// Answers one request (never fails: every refusal is a problem body).
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Answer, Infallible> {
        let path = req.uri().path().to_owned();
        let peer = req.extensions().get::<crate::ClientConnection>().map(crate::ClientConnection::peer);
        let (label, answer) = if path == self.key_request {
            ("key_request", self.protocol(req, Endpoint::KeyRequest).await)
        } else if path == self.release_request {
            ("release_request", self.protocol(req, Endpoint::ReleaseRequest).await)
        } else if let Some(route) = path.strip_prefix(&self.log) {
            ("log", self.log(req.method(), route, req.uri().query().unwrap_or("")).await)
        } else if path == binding::HEALTHZ {
            ("healthz", self.healthz(req.method()).await)
        } else if path == binding::METRICS {
            if req.method() == Method::GET
                && let Ok(_counting) = self.counting.try_acquire()
            {
                self.service.count_held().await;
            }
            ("metrics", self.metrics(req.method()))
        } else {
            ("other", problem(&Problem::http(http_codes::NOT_FOUND, format!("no resource at {path}"))))
        };
        let status = answer.status().as_u16();
        self.service.metrics.answered(label, status);
        if status >= 400 {
            let code = answer.extensions().get::<RefusalCode>().map_or("", |c| c.0.as_str());
            // The code and status only: a detail may name addresses.
            tracing::info!(endpoint = label, status, code, peer = ?peer.map(|p| p.ip()), "refused");
        }
        Ok(answer)
    }

    /// The issuance log's routes (`docs/protocol.md` §10.8): the latest head, a ticket's
    /// inclusion proof, a consistency proof.
    async fn log(&self, method: &Method, route: &str, query: &str) -> Answer {
        if method != Method::GET {
            return not_allowed("GET");
        }
        let param = |name: &str| {
            query.split('&').find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('='))).unwrap_or("")
        };
        let invalid = |detail: &str| problem(&Problem::http(http_codes::LOG_QUERY_INVALID, detail));
        let answer = match format!("log/{route}").as_str() {
            binding::LOG_HEAD => self
                .service
                .on_log(|log, gk, now| log.head(gk, now))
                .await
                .map(|r| r.map(|der| (binding::MEDIA_CMS, der))),
            binding::LOG_INCLUSION => {
                let Some(ticket) = hex::decode(param("ticket")).ok().and_then(|b| ekg_core::Digest::from_slice(&b))
                else {
                    return invalid("ticket: the ticket's SHA-256, 64 hex digits");
                };
                self.service
                    .on_log(move |log, gk, now| log.inclusion(gk, ticket, now))
                    .await
                    .map(|r| r.map(|a| (binding::MEDIA_JSON, serde_json::to_vec(&a).unwrap_or_default())))
            }
            binding::LOG_ENTRIES => {
                let (Ok(start), Ok(end)) = (param("start").parse::<u64>(), param("end").parse::<u64>()) else {
                    return invalid("start and end: entry indexes, decimal");
                };
                if start > end || end - start > crate::store::MAX_LOG_RANGE {
                    return invalid(&format!("need start <= end <= start + {}", crate::store::MAX_LOG_RANGE));
                }
                self.service
                    .on_log(move |_, gk, _| {
                        gk.store_mut()
                            .log_entries(start, end)
                            .map(|e| (binding::MEDIA_OCTETS, e.concat()))
                            .map_err(|e| ekg_core::Error::new(ekg_core::Rejection::StorageFailed, e.0))
                    })
                    .await
            }
            binding::LOG_CONSISTENCY => {
                let (Ok(first), Ok(second)) = (param("first").parse::<u64>(), param("second").parse::<u64>()) else {
                    return invalid("first and second: tree sizes, decimal");
                };
                match self.service.on_log(move |log, gk, _| log.consistency(gk, first, second)).await {
                    Some(Ok(Err(detail))) => return invalid(&detail),
                    Some(Ok(Ok(a))) => Some(Ok((binding::MEDIA_JSON, serde_json::to_vec(&a).unwrap_or_default()))),
                    Some(Err(e)) => Some(Err(e)),
                    None => None,
                }
            }
            _ => return problem(&Problem::http(http_codes::NOT_FOUND, format!("no log resource {route}"))),
        };
        match answer {
            None => problem(&Problem::http(http_codes::NOT_FOUND, "this gatekeeper keeps no issuance log")),
            Some(Ok((media, body))) => {
                let mut r = Response::new(Full::new(Bytes::from(body)));
                r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(media));
                r
            }
            Some(Err(e)) => problem(&Problem::of(&e)),
        }
    }

    /// 200 only if the store answers a read and a write now (`Service::probe`), else 503.
    async fn healthz(&self, method: &Method) -> Answer {
        if method != Method::GET {
            return not_allowed("GET");
        }
        match self.service.probe().await {
            Ok(()) => text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into()),
            Err(detail) => {
                // The store's own words (a path, a host) are the operator's: logged, not sent.
                tracing::warn!(detail = %detail, "healthz: 503, the store failed its probe");
                problem(&Problem::http(http_codes::UNAVAILABLE, "the store did not answer a read and a write in time"))
            }
        }
    }

    fn metrics(&self, method: &Method) -> Answer {
        if method != Method::GET {
            return not_allowed("GET");
        }
        text(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            self.service.metrics.encode(),
        )
    }

    async fn protocol(&self, req: Request<Incoming>, endpoint: Endpoint) -> Answer {
        if req.method() != Method::POST {
            return not_allowed("POST");
        }
        let (limit, name) = match endpoint {
            Endpoint::KeyRequest => {
                (MAX_KEY_REQUEST_LEN + usize::from(planted(P::KeyRequestSizePlusOne)), "key_request")
            }
            Endpoint::ReleaseRequest => {
                (MAX_RELEASE_REQUEST_LEN + usize::from(planted(P::ReleaseRequestSizePlusOne)), "release_request")
            }
        };
        let stated = req.headers().get(caller::TIMEOUT_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let conn = req.extensions().get::<crate::ClientConnection>().cloned();
        let body = match read_body(req, limit, self.body_timeout).await {
            Ok(b) => b,
            Err(answer) => return answer,
        };
        // `departure` goes with this future (if the connection fails, hyper drops it), or
        // as soon as the client's input ends: the store then writes nothing more for this
        // request.
        let (caller, departure) = Caller::new(caller::deadline(self.request_deadline, stated.as_deref()));
        let started = Instant::now();
        let now = self.service.clock.now();
        let work = async {
            match endpoint {
                Endpoint::KeyRequest => self.service.key_request(body, now, Some(caller.clone())).await,
                Endpoint::ReleaseRequest => self.service.release_request(body, now, Some(caller.clone())).await.map(Ok),
            }
        };
        // The departure, if not dropped, lives on until the answer is made (the store's error
        // is told apart by whether the caller still waits).
        let (result, _departure) = unless_departed(work, conn, departure).await;
        let labels = crate::metrics::EndpointLabels { endpoint: name.into() };
        self.service.metrics.latency.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
        match result {
            Ok(Err(over)) => {
                let detail = format!("{} keys held for this sender, at most {}", over.held, over.limit);
                let p = Problem::http(http_codes::SENDER_QUOTA_EXCEEDED, detail);
                let codes = crate::metrics::CodeLabels { code: p.code.clone() };
                self.service.metrics.refusals.get_or_create(&codes).inc();
                let mut answer = problem(&p);
                answer.headers_mut().insert(RETRY_AFTER, HeaderValue::from(binding::QUOTA_RETRY_AFTER_SECS));
                answer
            }
            Ok(Ok(der)) => {
                let mut r = Response::new(Full::new(Bytes::from(der)));
                let media =
                    if planted(P::SuccessAsOctetStream) { "application/octet-stream" } else { binding::MEDIA_CMS };
                r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(media));
                r
            }
            Err(e) => {
                let storage_failed = e.rejection() == ekg_core::Rejection::StorageFailed;
                let p = if storage_failed && !caller.waiting() {
                    let detail = "the request's deadline passed, or the client's input ended, before its records were written: nothing was recorded";
                    Problem::http(http_codes::DEADLINE_EXCEEDED, detail)
                } else if storage_failed {
                    // The operator's, not the client's: the store's own words (a database's
                    // host and port, a file's path).
                    tracing::error!(
                        endpoint = name,
                        detail = e.detail(),
                        "store failed: answered 503, nothing recorded"
                    );
                    let mut p = Problem::of(&e);
                    p.detail = "the store did not take the record: nothing was recorded; retry later".into();
                    p
                } else {
                    Problem::of(&e)
                };
                let codes = crate::metrics::CodeLabels { code: p.code.clone() };
                self.service.metrics.refusals.get_or_create(&codes).inc();
                problem(&p)
            }
        }
    }
}

/// Runs `work`, dropping `departure` (its caller is then no longer waiting) as soon as the
/// client's input ends or its connection fails. A half-close after a whole request looks,
/// on the wire, like a client that closed its socket and left; a release recorded for a
/// client that left is a key spent for nobody (under `once`, for good), so both are taken
/// as a departure: the request is still answered (`503 deadline_exceeded` if its records
/// were not written), and a client that wants its key keeps its sending side open.
/// Returns the departure unless it was dropped: the caller must keep it while it still
/// asks whether its caller waits.
async fn unless_departed<T>(
    work: impl std::future::Future<Output = T>,
    conn: Option<crate::ClientConnection>,
    departure: caller::Departure,
) -> (T, Option<caller::Departure>) {
    let Some(conn) = conn else {
        return (work.await, Some(departure));
    };
    tokio::pin!(work);
    tokio::select! {
        result = &mut work => (result, Some(departure)),
        () = conn.departed() => {
            drop(departure);
            (work.await, None)
        }
    }
}

/// The largest oversized body read and discarded before its 413, bytes.
pub const MAX_DRAIN_LEN: u64 = 1024 * 1024;

/// Reads a protocol body: `application/cms` (else 415), at most `limit` bytes (413 at once
/// on a larger Content-Length, or as soon as more arrives), within `timeout` (408).
pub async fn read_body(req: Request<Incoming>, limit: usize, timeout: Duration) -> Result<Vec<u8>, Answer> {
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let exact = content_type == binding::MEDIA_CMS;
    let refused = if planted(P::ContentTypeParametersRefused) { !exact } else { !binding::is_cms(content_type) };
    if refused && !planted(P::ContentTypeUnchecked) {
        let detail = format!("the body must be {} (got {content_type:?})", binding::MEDIA_CMS);
        return Err(problem(&Problem::http(http_codes::UNSUPPORTED_MEDIA_TYPE, detail)));
    }
    let conn = req.extensions().get::<crate::ClientConnection>().cloned();
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let too_large =
        || problem(&Problem::rejection(ekg_core::Rejection::InputTooLarge, format!("at most {limit} bytes")));
    if let Some(n) = declared.filter(|n| *n > limit as u64) {
        // Refused before it is read whole. A body of at most MAX_DRAIN_LEN is read and thrown
        // away first (at most a second): closing on unread bytes resets the connection, and
        // the client could lose the 413 with it.
        if n <= MAX_DRAIN_LEN {
            let mut body = WatchedBody::new(req.into_body(), conn.as_ref());
            let drain = async { while let Some(Ok(_)) = body.frame().await {} };
            let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
        }
        return Err(too_large());
    }
    let body = Limited::new(WatchedBody::new(req.into_body(), conn.as_ref()), limit);
    match tokio::time::timeout(timeout, body.collect()).await {
        Err(_) => Err(problem(&Problem::http(http_codes::REQUEST_TIMEOUT, "the body did not arrive in time"))),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => {
            Err(problem(&Problem::rejection(ekg_core::Rejection::MalformedDer, format!("reading the body: {e}"))))
        }
        Ok(Ok(collected)) => Ok(collected.to_bytes().to_vec()),
    }
}

/// The code of a refusal, kept with its answer for the log.
#[derive(Clone, Debug)]
pub struct RefusalCode(pub String);

/// A problem+json answer (with `Retry-After` on 503).
pub fn problem(p: &Problem) -> Answer {
    let mut p = p.clone();
    p.status = match p.status {
        409 if planted(P::ConflictAs400) => 400,
        410 if planted(P::GoneAs404) => 404,
        503 if planted(P::StorageFailedAs500) && p.code == ekg_core::Rejection::StorageFailed.code() => 500,
        s => s,
    };
    let mut r = Response::new(Full::new(Bytes::from(p.to_json())));
    r.extensions_mut().insert(RefusalCode(p.code.clone()));
    *r.status_mut() = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let media = if planted(P::ProblemAsPlainJson) { "application/json" } else { binding::MEDIA_PROBLEM };
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(media));
    if p.status == 503 {
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(binding::RETRY_AFTER_SECS));
    }
    r
}

fn not_allowed(allow: &'static str) -> Answer {
    let mut r = problem(&Problem::http(http_codes::METHOD_NOT_ALLOWED, format!("use {allow}")));
    r.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
    r
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}
