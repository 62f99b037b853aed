//! Connections: accept (TCP, then TLS if configured), HTTP/1.1 with a header read timeout,
//! at most `max_connections` at once, and a graceful stop: no new connection, in-flight
//! requests finish (up to the grace), then the caller closes the store.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::http::Handler;

/// How connections are served.
pub struct Listen {
    /// The bound socket.
    pub listener: TcpListener,
    /// TLS, if configured.
    pub tls: Option<TlsAcceptor>,
    /// Header read timeout.
    pub header_timeout: Duration,
    /// Most concurrent connections.
    pub max_connections: usize,
    /// Time in-flight requests get at shutdown.
    pub grace: Duration,
}

/// Serves until `stop` resolves, then stops gracefully.
pub async fn serve(listen: Listen, handler: Handler, stop: impl std::future::Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(listen.max_connections));
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            () = &mut stop => break,
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, _) = tokio::select! {
            () = &mut stop => break,
            accepted = listen.listener.accept() => match accepted {
                Ok(a) => a,
                // Out of descriptors, a reset before accept: try the next one.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let handler = Arc::clone(&handler);
        let builder = {
            let mut b = http1::Builder::new();
            b.timer(TokioTimer::new()).header_read_timeout(listen.header_timeout).keep_alive(true);
            b
        };
        let service = service_fn(move |req| handler(req));
        match &listen.tls {
            None => {
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                    drop(permit);
                });
            }
            Some(tls) => {
                let tls = tls.clone();
                let handshake = listen.header_timeout;
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let Ok(Ok(stream)) = tokio::time::timeout(handshake, tls.accept(stream)).await else {
                        drop(permit);
                        return;
                    };
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn).await;
                    drop(permit);
                });
            }
        }
    }
    drop(listen.listener);
    let _ = tokio::time::timeout(listen.grace, graceful.shutdown()).await;
}
