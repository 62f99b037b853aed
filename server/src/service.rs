//! The gatekeeper as a service: `ekg-core`'s one decision path, on the blocking pool.
//!
//! - a request runs on one worker thread, at most `workers` at a time (a semaphore sized to
//!   the cores): verify, then the core's round over the store (read the key, decide, append
//!   if unchanged; the store makes the records durable before the round ends), then build;
//!   one hand-off from the async threads and back;
//! - nothing about keys is kept in this process between requests, whatever the store: no
//!   lock is held around a decision, requests on different keys run in parallel, and the
//!   store orders those on one key (SQLite: its group commit; PostgreSQL: its row locks);
//! - the key is in memory only inside the one request that needs it (`OneTimeKey` and the
//!   built bodies zeroize themselves; the store holds it wrapped);
//! - a timer task sweeps what is due (expiry, end of retention, purge) every
//!   [`SWEEP_SECS`], and when the test clock moves.
//!
//! No protocol decision is made here: every `if` about tickets or addresses is the core's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ekg_core::ledger::ReleaseKind;
use ekg_core::role::Gatekeeper;
use ekg_core::{Error, Rejection, UnixTime};
use tokio::sync::Semaphore;

use crate::caller::Caller;
use crate::metrics::Metrics;
use crate::rng::request_rng;
use crate::store::AnyStore;

/// The running gatekeeper.
pub struct Service {
    /// Cloned for each request: the crypto half is shared, the store is a handle.
    prototype: Gatekeeper<AnyStore>,
    workers: Arc<Semaphore>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The store's round trips as last counted into the metrics.
    seen_trips: AtomicU64,
    /// The clock.
    pub clock: Arc<Clock>,
    /// Most keys held for one sender's requests (0: no quota).
    sender_quota: u64,
    /// The issuance log's tree and heads, if the gatekeeper keeps a log, and the seconds
    /// between two heads signed by the timer.
    log: Option<(Arc<crate::log::IssuanceLog>, u64)>,
    /// When the timer last signed a head (seconds, the service's clock).
    last_head: AtomicU64,
}

/// A key request over its sender's quota: `held` keys held for it, at most `limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverQuota {
    /// Keys held for the sender.
    pub held: u64,
    /// The quota.
    pub limit: u64,
}

/// The longest `/healthz` waits for the store's probe.
pub const PROBE_SECS: u64 = 2;

/// How often the timer sweeps for what is due.
pub const SWEEP_SECS: u64 = 1;

impl core::fmt::Debug for Service {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Service")
    }
}

/// The wall clock, as the core takes it.
pub fn wall_clock() -> UnixTime {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UnixTime(secs)
}

/// The service's clock: the wall clock plus an offset that only tests and the conformance
/// management endpoint move (`ekg serve --test-mode`); zero otherwise.
#[derive(Debug, Default)]
pub struct Clock {
    offset_secs: std::sync::atomic::AtomicU64,
    /// A fixed time set by the management endpoint (0: none).
    pinned_secs: std::sync::atomic::AtomicU64,
    moved: tokio::sync::Notify,
}

impl Clock {
    /// Now, as the gatekeeper sees it.
    pub fn now(&self) -> UnixTime {
        let pinned = self.pinned_secs.load(Ordering::Relaxed);
        let base = if pinned == 0 { wall_clock() } else { UnixTime(pinned) };
        base.plus_secs(self.offset_secs.load(Ordering::Relaxed))
    }

    /// Stops the clock at `now` (the conformance management endpoint only: each loaded state
    /// brings a new gatekeeper, so the clock may go back between states).
    pub fn pin(&self, now: UnixTime) {
        self.offset_secs.store(0, Ordering::Relaxed);
        self.pinned_secs.store(now.secs().max(1), Ordering::Relaxed);
        self.moved.notify_waiters();
    }

    /// Moves the clock forward by `secs` (never backwards: the core needs a monotonic `now`).
    pub fn advance(&self, secs: u64) {
        self.offset_secs.fetch_add(secs, Ordering::Relaxed);
        // The timer task sleeps by the wall clock: wake it to look again.
        self.moved.notify_waiters();
    }
}

fn joined(e: tokio::task::JoinError) -> Error {
    Error::new(Rejection::CryptoFailure, format!("worker: {e}"))
}

impl Service {
    /// A service around `gatekeeper`, with `workers` threads for requests.
    pub fn new(gatekeeper: Gatekeeper<AnyStore>, workers: usize, metrics: Arc<Metrics>, clock: Arc<Clock>) -> Service {
        Service {
            prototype: gatekeeper,
            workers: Arc::new(Semaphore::new(workers.max(1))),
            metrics,
            seen_trips: AtomicU64::new(0),
            clock,
            sender_quota: 0,
            log: None,
            last_head: AtomicU64::new(0),
        }
    }

    /// Serves the issuance log and signs a head of it every `interval_secs` (if it grew), when
    /// the gatekeeper keeps one.
    pub fn with_log_heads(mut self, interval_secs: u64) -> Service {
        if self.prototype.logs() {
            self.log = Some((Arc::default(), interval_secs));
        }
        self
    }

    /// Runs `f` with the issuance log on a worker; `None` if the gatekeeper keeps no log.
    pub async fn on_log<T: Send + 'static>(
        &self,
        f: impl FnOnce(&crate::log::IssuanceLog, &mut Gatekeeper<AnyStore>, UnixTime) -> Result<T, Error> + Send + 'static,
    ) -> Option<Result<T, Error>> {
        let (log, _) = self.log.as_ref()?;
        let log = Arc::clone(log);
        let now = self.clock.now();
        Some(self.on_worker(None, move |gk| f(&log, gk, now)).await)
    }

    /// At most `limit` keys held for one sender's requests (0: no quota): a key request past
    /// it is refused before anything is drawn or recorded.
    pub fn with_sender_quota(mut self, limit: u64) -> Service {
        self.sender_quota = limit;
        self
    }

    /// Runs `f` on a gatekeeper of this service, on this thread (the management endpoint: a
    /// tick, a restart, an injected draw).
    pub fn with_gatekeeper<T>(&self, f: impl FnOnce(&mut Gatekeeper<AnyStore>) -> T) -> Result<T, Error> {
        let mut gk = self.prototype.clone();
        Ok(f(&mut gk))
    }

    /// The gatekeeper's URI.
    pub fn uri(&self) -> &str {
        &self.prototype.crypto().config().uri
    }

    /// Whether the store answers a read and a write now, within [`PROBE_SECS`] (waiting for
    /// a worker included: a pool stuck on a stalled store is unhealthy too).
    pub async fn probe(&self) -> Result<(), String> {
        let probe =
            self.on_worker(None, |gk| gk.store_mut().probe().map_err(|e| Error::new(Rejection::StorageFailed, e.0)));
        match tokio::time::timeout(std::time::Duration::from_secs(PROBE_SECS), probe).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.detail().to_owned()),
            Err(_) => Err(format!("the store did not answer within {PROBE_SECS} s")),
        }
    }

    /// Counts the keys held into the metrics (a query: on a scrape, not per request).
    pub async fn count_held(&self) {
        let mut gk = self.prototype.clone();
        if let Ok(Ok(held)) = tokio::task::spawn_blocking(move || gk.held_keys()).await {
            self.metrics.keys_held.set(i64::try_from(held).unwrap_or(i64::MAX));
        }
    }

    /// Runs `f` on a gatekeeper of this service on the blocking pool, holding one worker
    /// permit; records what the store did. With a `caller`, nothing is started once it no
    /// longer waits, and the store writes nothing for it after that (`crate::caller`).
    async fn on_worker<T: Send + 'static>(
        &self,
        caller: Option<Caller>,
        f: impl FnOnce(&mut Gatekeeper<AnyStore>) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let permit = Arc::clone(&self.workers)
            .acquire_owned()
            .await
            .map_err(|_| Error::new(Rejection::CryptoFailure, "the worker pool is closed"))?;
        let mut gk = self.prototype.clone();
        let (r, races, trips) = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            if let Some(c) = &caller {
                c.check().map_err(|e| Error::new(Rejection::StorageFailed, e.0))?;
            }
            gk.store_mut().set_caller(caller);
            let r = f(&mut gk);
            Ok::<_, Error>((r, gk.races_lost(), gk.store().round_trips()))
        })
        .await
        .map_err(joined)??;
        self.metrics.store_races_lost.inc_by(races);
        // The store's total only grows: count what is new.
        let seen = self.seen_trips.fetch_max(trips, Ordering::Relaxed);
        self.metrics.store_round_trips.inc_by(trips.saturating_sub(seen));
        r
    }

    /// A key request: verify, decide over the store, build. The answer is the issuance
    /// response's DER (`docs/protocol.md` §8).
    /// Nothing is recorded for a `caller` that no longer waits.
    /// A sender over its quota gets `Ok(Err(OverQuota))`: checked after verification, before
    /// the round (a soft limit: requests of one sender that race may pass it by the number of
    /// workers).
    pub async fn key_request(
        &self,
        der: Vec<u8>,
        now: UnixTime,
        caller: Option<Caller>,
    ) -> Result<Result<Vec<u8>, OverQuota>, Error> {
        let limit = self.sender_quota;
        let body = self
            .on_worker(caller, move |gk| {
                let mut rng = request_rng()?;
                let verified = gk.crypto().verify_key_request(&der, now)?;
                if limit > 0 {
                    let held = gk
                        .store_mut()
                        .held_of(&verified.content().sender)
                        .map_err(|e| Error::new(Rejection::StorageFailed, e.0))?;
                    if held >= limit {
                        return Ok(Err(OverQuota { held, limit }));
                    }
                }
                let committed = gk.issue(verified, now, &mut rng)?;
                gk.crypto().build_issuance(committed, &mut rng)?.to_response_der().map(Ok)
            })
            .await?;
        if body.is_ok() {
            self.metrics.issuances.inc();
        }
        Ok(body)
    }

    /// A release request: verify, decide over the store, build. The answer is the release's
    /// DER. Nothing is recorded for a `caller` that no longer waits.
    pub async fn release_request(&self, der: Vec<u8>, now: UnixTime, caller: Option<Caller>) -> Result<Vec<u8>, Error> {
        let release = self
            .on_worker(caller, move |gk| {
                let mut rng = request_rng()?;
                let verified = gk.crypto().verify_release_request(&der, now)?;
                let committed = gk.release(verified, now)?;
                gk.crypto().build_release(committed, now, &mut rng)
            })
            .await?;
        let kind = match release.kind {
            ReleaseKind::First => "first",
            ReleaseKind::Redelivery => "redelivery",
            ReleaseKind::Gateway => "gateway",
        };
        self.metrics.releases.get_or_create(&crate::metrics::KindLabels { kind: kind.into() }).inc();
        Ok(release.der)
    }

    /// Sweeps what is due every [`SWEEP_SECS`] (and when the test clock moves); returns when
    /// `stop` resolves.
    pub async fn run_timer(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                () = self.clock.moved.notified() => {}
                () = tokio::time::sleep(std::time::Duration::from_secs(SWEEP_SECS)) => {}
            }
            let now = self.clock.now();
            let _ = self.on_worker(None, move |gk| gk.handle_timeout(now)).await;
            if let Some((_, interval)) = &self.log
                && now.secs() >= self.last_head.load(Ordering::Relaxed).saturating_add(*interval)
            {
                self.last_head.store(now.secs(), Ordering::Relaxed);
                if let Some(Err(e)) = self.on_log(|log, gk, now| log.sign(gk, now, false)).await {
                    tracing::warn!(code = e.code(), "signing a head of the issuance log failed");
                }
            }
        }
    }
}
