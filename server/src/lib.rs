//! `ekg-server`: the Email Key Gatekeeper as a network service.
//!
//! - [`binding`]: the HTTP binding (paths, media types, statuses, problem bodies).
//! - [`certificates`]: the credential check at start, CRL reloads, renewal warnings.
//! - [`config`]: the TOML configuration, checked field by field.
//! - [`store`]: the durable store (SQLite, one schema for every database store).
//! - [`service`]: `ekg-core`'s typed pipeline on threads around one serial ledger.
//! - [`http`]: requests to answers; [`listener`]: connections (caps, timeouts, graceful
//!   stop); [`tls`]: TLS.
//! - [`metrics`]: Prometheus metrics; [`files`]: modes of the files the server keeps.
//! - With the `testmode` feature only (test material: the test PKI and the fixtures crate):
//!   `demo` (`ekg serve --demo`) and `testmode` (`ekg serve --test-mode`, the conformance
//!   runner's management endpoint). A production gatekeeper is built without it
//!   (`docs/server.md`, "Test material and the `testmode` feature").
//!
//! [`run`] serves until told to stop; [`start`] does it on a thread of its own (tests, the
//! demo); `ekg serve` is the command line around both.

#![forbid(unsafe_code)]

/// The HTTP binding (the `ekg-binding` crate, shared with the clients), under its old path.
pub use ekg_binding as binding;

pub mod caller;
pub mod certificates;
pub mod config;
pub mod custody;
#[cfg(feature = "testmode")]
pub mod demo;
pub mod files;
pub mod http;
pub mod listener;
pub mod log;
pub mod metrics;
mod rng;
pub mod service;
pub mod store;
#[cfg(feature = "testmode")]
pub mod testmode;
pub mod tls;
pub mod tokens;

use std::net::SocketAddr;
use std::sync::Arc;

use ekg_core::role::Gatekeeper;
use tokio::net::TcpListener;

pub use config::Settings;
pub use listener::{ClientConnection, ConnectionLimits};

use crate::config::Database;
use crate::store::{AnyStore, PostgresStore, SqliteStore};

/// Why the server could not start or stopped.
#[derive(Debug)]
pub enum ServeError {
    /// The configuration does not hold.
    Config(config::ConfigError),
    /// The gatekeeper refused its configuration or store (a rejection code).
    Core(ekg_core::Error),
    /// A socket or file.
    Io(String),
    /// The store is not this gatekeeper's own ([`store::identity`]).
    Store(store::identity::Refusal),
}

impl core::fmt::Display for ServeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ServeError::Config(e) => write!(f, "{e}"),
            ServeError::Core(e) => write!(f, "{}: {}", e.code(), e.detail()),
            ServeError::Store(e) => write!(f, "{e}"),
            ServeError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ServeError {}

impl From<config::ConfigError> for ServeError {
    fn from(e: config::ConfigError) -> Self {
        ServeError::Config(e)
    }
}

/// Opens the configured store (blocking: call it off the async threads), migrated; `config`
/// gives the retention under which a migrated key's deadline is computed.
pub fn open_store(database: &Database, config: ekg_core::ledger::LedgerConfig) -> Result<AnyStore, ServeError> {
    let failed = |e: ekg_core::ledger::StoreError| {
        ServeError::Core(ekg_core::Error::new(ekg_core::Rejection::StorageFailed, e.0))
    };
    match database {
        Database::Memory => Ok(AnyStore::Memory(ekg_core::ledger::MemoryStore::new())),
        Database::Sqlite(path) => {
            files::owner_only_database(path).map_err(ServeError::Io)?;
            SqliteStore::open(path, config).map(AnyStore::Sqlite).map_err(failed)
        }
        Database::Postgres(url) => PostgresStore::connect(url, config).map(AnyStore::Postgres).map_err(failed),
    }
}

/// Opens the configured store and checks it is this gatekeeper's own against its identity
/// file (`identity`: the file; `adopt`: take the database as found), advancing its
/// generation; the store and what advances it later (`None`: the memory store).
pub fn open_owned_store(
    database: &Database,
    config: ekg_core::ledger::LedgerConfig,
    identity: Option<&std::path::Path>,
    adopt: bool,
) -> Result<(AnyStore, Option<store::identity::Generations>), ServeError> {
    use store::identity::{Generations, Refusal, read_file, sqlite_absent};
    if let (Database::Sqlite(path), Some(file)) = (database, identity)
        && !adopt
        && sqlite_absent(path)
        && let Some(known) = read_file(file).map_err(ServeError::Store)?
    {
        // Refused before SQLite would create an empty database in its place.
        return Err(ServeError::Store(Refusal::Missing(format!(
            "{} is missing or empty, but the identity file {} names store {} at generation {}: restore the \
             database, or start once with `ekg serve --adopt-store` to begin an empty one (keys still owed are lost)",
            path.display(),
            file.display(),
            hex::encode(known.store_id),
            known.generation
        ))));
    }
    let store = open_store(database, config)?;
    let generations = match identity {
        Some(file) if !matches!(database, Database::Memory) => {
            Some(Generations::start(&store, file, adopt).map_err(ServeError::Store)?)
        }
        _ => None,
    };
    Ok((store, generations))
}

/// What SIGHUP reloads: a part of the configuration read again from its files. A reload that
/// fails leaves the part as it was (and says why).
pub trait Reload: Send + Sync + core::fmt::Debug {
    /// What it is, for the log (`tls (/etc/ekg/tls.pem)`).
    fn name(&self) -> String;
    /// Reads it again and puts it in place.
    fn reload(&self) -> Result<(), String>;
}

/// Reloads every part that can be (on SIGHUP): each is logged, a failure keeps the old one.
/// Returns how many failed.
pub fn reload_all(parts: &[Arc<dyn Reload>]) -> usize {
    let mut failed = 0;
    for part in parts {
        match part.reload() {
            Ok(()) => tracing::info!(part = %part.name(), "reloaded"),
            Err(e) => {
                failed += 1;
                tracing::error!(part = %part.name(), error = %e, "reload failed: the previous one stays in use");
            }
        }
    }
    if parts.is_empty() {
        tracing::info!("reload: nothing to reload; the rest of the configuration needs a restart");
    }
    failed
}

/// SIGHUP re-reads the CRL files (and checks the gatekeeper's credential again).
impl Reload for certificates::CertificateWatch {
    fn name(&self) -> String {
        "crls".into()
    }

    fn reload(&self) -> Result<(), String> {
        certificates::CertificateWatch::reload(self).map(|_| ()).map_err(|e| e.to_string())
    }
}

/// Serves `settings` until `stop` resolves, then stops gracefully (no new connections,
/// in-flight requests finish, the store is closed). Each message on `reloads` reloads what
/// can be ([`Reload`]: the TLS certificate and key, the CRL files). `bound` learns the
/// listening address.
pub async fn run(
    settings: Settings,
    stop: impl std::future::Future<Output = ()>,
    mut reloads: tokio::sync::mpsc::Receiver<()>,
    bound: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let tls = settings.tls.clone().map(tls::Reloadable::new).transpose()?;
    // The gatekeeper's own certificate must hold now (a ticket clients refuse is never issued).
    for line in certificates::check_at(
        settings.provider,
        &settings.gatekeeper,
        &settings.credential,
        &settings.certificates,
        settings.clock.now(),
    )? {
        eprintln!("ekg serve: {line}");
    }
    let watched = settings.certificates.clone();
    // Opening a store and recovering from it block (a database client, a disk): not on the
    // async threads.
    let (provider, config, credential, storage_key, database) =
        (settings.provider, settings.gatekeeper, settings.credential, settings.storage_keys, settings.database);
    let (identity, adopt) = (settings.store_identity, settings.adopt_store);
    let log_salt = settings.log_salt;
    let jwks = Arc::new(tokens::JwksCache::new(settings.jwks));
    let (gatekeeper, generations) = tokio::task::spawn_blocking(move || {
        let (store, generations) = open_owned_store(&database, config.ledger_config(), identity.as_deref(), adopt)?;
        let gk = Gatekeeper::new(provider, config, credential, storage_key, store).map_err(ServeError::Core)?;
        let gk = match log_salt {
            Some(salt) => gk.with_log(salt),
            None => gk,
        };
        Ok::<_, ServeError>((gk, generations))
    })
    .await
    .map_err(|e| ServeError::Io(format!("opening the store: {e}")))??;
    // The token issuers' key sets: fetched before the first request (a failure is logged;
    // those issuers' tokens are token_key_unknown until a later fetch succeeds).
    gatekeeper.crypto().set_token_keys(Arc::clone(&jwks) as Arc<dyn ekg_core::access::token::TokenKeys>);
    let fetching = Arc::clone(&jwks);
    let failures =
        tokio::task::spawn_blocking(move || fetching.fetch_all(std::time::Instant::now())).await.unwrap_or_default();
    for line in failures {
        eprintln!("ekg serve: {line}");
    }
    let advancing = generations.map(|g| tokio::spawn(advance_generations(g, settings.store_generation)));
    let metrics = Arc::new(metrics::Metrics::new());
    let (workers, clock) = (settings.workers, settings.clock);
    let watch = Arc::new(certificates::CertificateWatch::new(
        gatekeeper.shared_crypto(),
        provider,
        watched,
        Arc::clone(&metrics),
        Arc::clone(&clock),
    ));
    watch.observe();
    let service = Arc::new(
        service::Service::new(gatekeeper, workers, Arc::clone(&metrics), clock)
            .with_sender_quota(settings.max_held_per_sender)
            .with_log_heads(settings.log_head_interval_secs),
    );
    service.count_held().await;
    let listener =
        TcpListener::bind(settings.listen).await.map_err(|e| ServeError::Io(format!("{}: {e}", settings.listen)))?;
    let addr = listener.local_addr().map_err(|e| ServeError::Io(e.to_string()))?;
    files::warn_if_few_descriptors(settings.limits.max_connections);
    bound(addr);
    let routes = Arc::new(http::Routes::new(Arc::clone(&service), settings.body_timeout, settings.request_deadline));
    let (stop_timer, timer_stopped) = tokio::sync::oneshot::channel::<()>();
    let timer = tokio::spawn(Arc::clone(&service).run_timer(async move {
        let _ = timer_stopped.await;
    }));
    let (stop_watch, watch_stopped) = tokio::sync::oneshot::channel::<()>();
    let watching = tokio::spawn(Arc::clone(&watch).run(async move {
        let _ = watch_stopped.await;
    }));
    // What SIGHUP reloads: the TLS certificate and key, and the CRL files.
    let mut reloadable: Vec<Arc<dyn Reload>> = Vec::new();
    if let Some(t) = &tls {
        reloadable.push(Arc::new(t.clone()));
    }
    reloadable.push(Arc::clone(&watch) as Arc<dyn Reload>);
    let reloader = tokio::spawn(async move {
        while reloads.recv().await.is_some() {
            let parts = reloadable.clone();
            let _ = tokio::task::spawn_blocking(move || reload_all(&parts)).await;
        }
    });
    let listen = listener::Listen {
        listener,
        tls,
        limits: settings.limits,
        grace: settings.shutdown_grace,
        metrics: Some(metrics),
    };
    listener::serve(listen, routes.handler(), stop).await;
    reloader.abort();
    if let Some(a) = advancing {
        a.abort();
    }
    let _ = stop_timer.send(());
    let _ = timer.await;
    let _ = stop_watch.send(());
    let _ = watching.await;
    // The last reference to the gatekeeper (and its store) goes with the service.
    drop(service);
    Ok(())
}

/// Advances the store's generation every `every`, for as long as the server runs (aborted at
/// stop). A failure is logged and tried again at the next interval; a database found replaced
/// is logged as an error every time (and `/healthz` fails on it by its own probe).
async fn advance_generations(generations: store::identity::Generations, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let g = generations.clone();
        match tokio::task::spawn_blocking(move || g.advance()).await {
            Ok(Ok(n)) => tracing::debug!(generation = n, "store generation advanced"),
            Ok(Err(e)) => tracing::error!(code = e.code(), detail = e.detail(), "store generation not advanced"),
            Err(e) => tracing::error!(error = %e, "store generation task failed"),
        }
    }
}

/// A server on a thread of its own (tests, the demo).
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its clock (tests move it forward).
    pub clock: Arc<service::Clock>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    reloads: tokio::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<Result<(), ServeError>>>,
}

impl Running {
    /// Reloads what can be (as SIGHUP does to `ekg serve`); returns at once.
    pub fn reload(&self) {
        let _ = self.reloads.try_send(());
    }

    /// Stops gracefully and waits for it.
    pub fn stop(mut self) -> Result<(), ServeError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), ServeError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(ServeError::Io("the server thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Starts serving `settings` on a new thread; returns once it listens.
pub fn start(settings: Settings) -> Result<Running, ServeError> {
    let (workers, clock) = (settings.workers, Arc::clone(&settings.clock));
    spawn(workers, clock, move |stop, reloads, bound| run(settings, stop, reloads, bound))
}

/// Runs the server future that `serve` makes on a new thread with its own runtime; returns
/// once it listens.
pub(crate) fn spawn<F, Fut>(workers: usize, clock: Arc<service::Clock>, serve: F) -> Result<Running, ServeError>
where
    F: FnOnce(
            std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
            tokio::sync::mpsc::Receiver<()>,
            Box<dyn FnOnce(SocketAddr) + Send>,
        ) -> Fut
        + Send
        + 'static,
    Fut: std::future::Future<Output = Result<(), ServeError>>,
{
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (reloads, reload_rx) = tokio::sync::mpsc::channel::<()>(4);
    let (tx, rx) = std::sync::mpsc::channel::<Result<SocketAddr, String>>();
    let thread = std::thread::Builder::new()
        .name("ekg-server".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers.clamp(1, 4))
                .enable_all()
                .build()
                .map_err(|e| ServeError::Io(e.to_string()))?;
            let tx2 = tx.clone();
            let r = runtime.block_on(serve(
                Box::pin(async move {
                    let _ = stopped.await;
                }),
                reload_rx,
                Box::new(move |addr| {
                    let _ = tx2.send(Ok(addr));
                }),
            ));
            if let Err(e) = &r {
                let _ = tx.send(Err(e.to_string()));
            }
            r
        })
        .map_err(|e| ServeError::Io(e.to_string()))?;
    match rx.recv() {
        Ok(Ok(addr)) => Ok(Running { addr, clock, stop: Some(stop), reloads, thread: Some(thread) }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(ServeError::Io(e))
        }
        Err(_) => match thread.join() {
            Ok(Err(e)) => Err(e),
            _ => Err(ServeError::Io("the server stopped before it listened".into())),
        },
    }
}
