//! Connections: accept (TCP, then TLS if configured), admit within the caps
//! ([`admission`]), serve HTTP/1.1 with the timeouts of [`io`] and a limit of requests per
//! connection, and stop gracefully: no new connection, idle ones closed at once, in-flight
//! requests finish (up to the grace), then the caller closes the store.
//!
//! Every request carries a [`ClientConnection`] (a request extension): its peer, and whether
//! the connection is still there, for work that should not be done for a client that left.

mod admission;
mod io;
mod state;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{CONNECTION, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

pub(crate) use admission::{MAX_REFUSALS_IN_FLIGHT, REFUSAL_TIME};
use admission::{Refusal, Registry, Slot};
pub(crate) use io::Timeouts;
pub use state::ConnState;

/// The answer type.
pub type Answer = Response<Full<Bytes>>;

/// What answers the requests of a connection (`crate::http`: the routes of a gatekeeper, or the test mode's
/// management endpoint in front of them).
pub type Handler = Arc<
    dyn Fn(Request<Incoming>) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Answer, Infallible>> + Send>>
        + Send
        + Sync,
>;

/// Largest request head (request line and headers), bytes. A larger head is `431
/// headers_too_large` (so is a request target that does not fit in it).
pub const MAX_HEAD_LEN: usize = 64 * 1024;
/// Most header fields in a request (hyper's default): more is `431 headers_too_large`.
pub const MAX_HEADERS: usize = 100;
/// The kernel's send and receive buffers of each connection, bytes (Linux doubles the
/// figure): what a client that never reads can make the kernel hold, per connection.
pub const SOCKET_BUFFER_LEN: usize = 64 * 1024;

/// How connections are served.
pub struct Listen {
    /// The bound socket.
    pub listener: TcpListener,
    /// TLS, if configured.
    pub tls: Option<crate::tls::Reloadable>,
    /// The connection limits and timeouts.
    pub limits: ConnectionLimits,
    /// Time in-flight requests get at shutdown.
    pub grace: Duration,
    /// Where refusals are counted, if anywhere.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// The bounds of the connection layer (`[server]` in `docs/server.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections at once.
    pub max_connections: usize,
    /// Most connections at once from one client address.
    pub max_connections_per_client: usize,
    /// Most requests on one connection (then `Connection: close`).
    pub max_requests_per_connection: u32,
    /// A connection with no request in progress is closed after this.
    pub idle_timeout: Duration,
    /// A request head must be complete this long after its first byte (else `408`); also
    /// the TLS handshake's limit.
    pub header_timeout: Duration,
    /// Bytes of a response must be written this long after they were handed over.
    pub write_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 1024,
            max_connections_per_client: 64,
            max_requests_per_connection: 1000,
            idle_timeout: Duration::from_secs(15),
            header_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// The connection a request came on (a request extension): its client's address, and
/// whether it is still there. A handler about to do work whose answer nobody would read
/// checks [`ClientConnection::is_closed`] (or awaits [`ClientConnection::closed`]).
///
/// "Closed" means the connection failed (a reset, a write or read error), timed out, was
/// evicted, or ended. A client that only shut down its sending side after a whole request
/// (a half-close) is still there: it waits for its answer, and [`ClientConnection::is_half_closed`]
/// tells it apart. TCP cannot tell a half-close from a client that closed its socket without
/// reading: such a client shows as closed only when the answer's bytes are refused, so the
/// request's deadline, not this, is what stops work for a client that gave up.
#[derive(Clone, Debug)]
pub struct ClientConnection {
    state: Arc<ConnState>,
}

impl ClientConnection {
    /// The client's address (a proxy's, behind one).
    pub fn peer(&self) -> SocketAddr {
        self.state.peer
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.state.is_closed()
    }

    /// Whether the client shut down its sending side during this request.
    pub fn is_half_closed(&self) -> bool {
        self.state.is_half_closed()
    }

    /// Wraps the request's body so that the connection learns how the handler reads it: whole
    /// (the end of the client's input after it is a half-close) or waiting for bytes (an end
    /// of input then cuts the body short). Read a body through it.
    pub fn watch_body<B: Body + Unpin>(&self, body: B) -> WatchedBody<B> {
        WatchedBody { inner: body, state: Some(Arc::clone(&self.state)) }
    }

    /// Whether the client's input ended during a request, or the connection is gone: the
    /// client may have left (a half-close looks the same on the wire), so work that would be
    /// recorded for it is not done ([`crate::http`] ties this to the request's
    /// [`crate::caller::Caller`]).
    pub fn has_departed(&self) -> bool {
        self.state.has_departed()
    }

    /// Resolves once [`ClientConnection::has_departed`].
    pub async fn departed(&self) {
        let mut rx = self.state.subscribe_departed();
        let _ = rx.wait_for(|departed| *departed).await;
    }

    /// Resolves once the connection is gone.
    pub async fn closed(&self) {
        let mut rx = self.state.subscribe();
        let _ = rx.wait_for(|closed| *closed).await;
    }
}

/// A request body read through [`ClientConnection::watch_body`] (or, with no connection, as
/// it is).
#[derive(Debug)]
pub struct WatchedBody<B> {
    inner: B,
    state: Option<Arc<ConnState>>,
}

impl<B> WatchedBody<B> {
    /// `body` read through `conn`'s watch, if there is a connection.
    pub fn new(body: B, conn: Option<&ClientConnection>) -> WatchedBody<B> {
        WatchedBody { inner: body, state: conn.map(|c| Arc::clone(&c.state)) }
    }
}

impl<B: Body + Unpin> Body for WatchedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Some(state) = &self.state {
            match &polled {
                Poll::Pending => state.set_body_waiting(true),
                Poll::Ready(None) => {
                    state.set_body_waiting(false);
                    state.mark_body_read();
                }
                Poll::Ready(Some(_)) => state.set_body_waiting(false),
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves until `stop` resolves, then stops gracefully.
pub async fn serve(listen: Listen, handler: Handler, stop: impl std::future::Future<Output = ()>) {
    let limits = listen.limits;
    let registry = Arc::new(Registry::new(limits.max_connections, limits.max_connections_per_client));
    let (stopping, stopped) = watch::channel(false);
    tune_socket_buffers(&listen.listener);
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = listen.listener.accept() => match accepted {
                Ok(a) => a,
                // Out of descriptors, a reset before accept: try the next one.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let tls = listen.tls.as_ref().map(crate::tls::Reloadable::current);
        match registry.admit(ConnState::new(peer)) {
            Ok(slot) => {
                let conn = Connection { slot, limits, handler: Arc::clone(&handler), stopped: stopped.clone() };
                tokio::spawn(conn.run(stream, tls));
            }
            Err(refusal) => refuse(&registry, stream, tls, refusal, limits.header_timeout, listen.metrics.as_deref()),
        }
    }
    drop(listen.listener);
    let _ = stopping.send(true);
    let drained = async {
        while registry.len() > 0 {
            let emptied = registry.emptied.notified();
            if registry.len() == 0 {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), emptied).await;
        }
    };
    let _ = tokio::time::timeout(listen.grace, drained).await;
}

/// Smaller kernel buffers for every accepted connection (they inherit the listener's).
fn tune_socket_buffers(listener: &TcpListener) {
    let sock = socket2::SockRef::from(listener);
    let _ = sock.set_recv_buffer_size(SOCKET_BUFFER_LEN);
    let _ = sock.set_send_buffer_size(SOCKET_BUFFER_LEN);
}

/// Answers a connection over a cap (after the TLS handshake, if any), within bounds.
fn refuse(
    registry: &Registry,
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    refusal: Refusal,
    handshake: Duration,
    metrics: Option<&crate::metrics::Metrics>,
) {
    if let Some(m) = metrics {
        m.connections_refused.get_or_create(&crate::metrics::CodeLabels { code: refusal.code().into() }).inc();
    }
    tracing::debug!(code = refusal.code(), "connection refused");
    // Past the refusals being answered, a connection is closed unanswered.
    let Ok(permit) = Arc::clone(&registry.refusals).try_acquire_owned() else { return };
    tokio::spawn(async move {
        let _permit = permit;
        let problem = refusal.problem();
        match tls {
            None => admission::answer_refusal(stream, &problem).await,
            Some(tls) => {
                if let Ok(Ok(s)) = tokio::time::timeout(handshake.min(REFUSAL_TIME), tls.accept(stream)).await {
                    admission::answer_refusal(s, &problem).await;
                }
            }
        }
    });
}

/// One admitted connection.
struct Connection {
    slot: Slot,
    limits: ConnectionLimits,
    handler: Handler,
    stopped: watch::Receiver<bool>,
}

impl Connection {
    async fn run(self, stream: TcpStream, tls: Option<TlsAcceptor>) {
        match tls {
            None => self.serve(stream).await,
            Some(tls) => {
                let handshake = tokio::time::timeout(self.limits.header_timeout, tls.accept(stream)).await;
                if let Ok(Ok(stream)) = handshake {
                    self.serve(stream).await;
                }
            }
        }
    }

    async fn serve<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(self, stream: S) {
        let Connection { slot, limits, handler, mut stopped } = self;
        let state = Arc::clone(&slot.state);
        let timeouts =
            Timeouts { idle: limits.idle_timeout, header: limits.header_timeout, write: limits.write_timeout };
        let io = TokioIo::new(io::ConnIo::new(stream, Arc::clone(&state), timeouts));
        let mut builder = http1::Builder::new();
        // hyper's own header timer runs from the start of each wait for a request: a
        // backstop behind the idle and header timeouts of `io`.
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.idle_timeout + limits.header_timeout + Duration::from_secs(1))
            .keep_alive(true)
            .max_header_size(MAX_HEAD_LEN)
            .max_headers(MAX_HEADERS);
        let max_requests = limits.max_requests_per_connection;
        let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            let has_body = !hyper::body::Body::is_end_stream(req.body());
            let n = state.begin_request(has_body);
            let in_flight = InFlight(Arc::clone(&state));
            req.extensions_mut().insert(ClientConnection { state: Arc::clone(&state) });
            let answer = handler(req);
            async move {
                let mut answer = answer.await;
                if let Ok(a) = &mut answer
                    && n >= max_requests
                {
                    a.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
                }
                drop(in_flight);
                answer
            }
        });
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        let stop = async {
            tokio::select! {
                () = slot.state.evict.notified() => {}
                _ = stopped.wait_for(|s| *s) => {}
            }
        };
        tokio::select! {
            _ = conn.as_mut() => {}
            () = stop => {
                // Idle: closed now; busy: after the answer in progress.
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
        drop(slot);
    }
}

/// A request whose handler runs (until the answer is returned, or the handler dropped).
struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end_request();
    }
}
