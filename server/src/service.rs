//! The gatekeeper as a service: the typed pipeline of `ekg-core` driven on threads.
//!
//! - verify and build run on the blocking pool, at most `workers` at a time (a semaphore
//!   sized to the cores);
//! - decide and commit run one at a time under the gatekeeper's lock, the commit making the
//!   records durable in the store before the lock is released and before any response
//!   exists;
//! - the key is in memory only inside the one request that needs it (`OneTimeKey` and the
//!   built bodies zeroize themselves; the store holds it wrapped);
//! - a timer task sleeps until the ledger's `poll_timeout` and handles what is due; on a
//!   store shared with other instances (PostgreSQL), where they add deadlines too, it sweeps
//!   every [`SHARED_SWEEP_SECS`] instead.
//!
//! No protocol decision is made here: every `if` about tickets or addresses is the core's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ekg_core::ledger::ReleaseKind;
use ekg_core::role::{Gatekeeper, GatekeeperCrypto};
use ekg_core::{Error, Rejection, UnixTime};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tokio::sync::{Semaphore, watch};

use crate::metrics::Metrics;
use crate::store::AnyStore;

/// The running gatekeeper.
pub struct Service {
    crypto: Arc<GatekeeperCrypto>,
    serial: Arc<Mutex<Gatekeeper<AnyStore>>>,
    workers: Arc<Semaphore>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The ledger's next deadline, as last seen: the timer task sleeps until it.
    deadline: watch::Sender<Option<UnixTime>>,
    store_ok: AtomicBool,
    /// Whether the store is shared: nothing about keys is kept in this process.
    shared: bool,
    /// The store's round trips and lost races, as last counted into the metrics.
    seen_trips: std::sync::atomic::AtomicU64,
    seen_races: std::sync::atomic::AtomicU64,
    /// The clock.
    pub clock: Arc<Clock>,
}

/// How often an instance on a shared store sweeps for what is due.
pub const SHARED_SWEEP_SECS: u64 = 1;

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

/// A fresh RNG for one request, seeded from the operating system.
fn request_rng() -> Result<ChaCha20Rng, Error> {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut_slice()).map_err(|e| Error::new(Rejection::CryptoFailure, format!("OS RNG: {e}")))?;
    Ok(ChaCha20Rng::from_seed(*seed))
}

fn joined(e: tokio::task::JoinError) -> Error {
    Error::new(Rejection::CryptoFailure, format!("worker: {e}"))
}

fn poisoned() -> Error {
    Error::new(Rejection::StorageFailed, "the gatekeeper's lock is poisoned")
}

impl Service {
    /// A service around `gatekeeper`, with `workers` threads for verification and building.
    /// Blocking on a shared store (it counts the keys held): call it off the async threads.
    pub fn new(
        mut gatekeeper: Gatekeeper<AnyStore>,
        workers: usize,
        metrics: Arc<Metrics>,
        clock: Arc<Clock>,
    ) -> Service {
        let crypto = gatekeeper.shared_crypto();
        let shared = gatekeeper.is_shared();
        if let Ok(held) = gatekeeper.held_keys() {
            metrics.keys_held.set(i64::try_from(held).unwrap_or(i64::MAX));
        }
        let (deadline, _) = watch::channel(gatekeeper.poll_timeout());
        Service {
            crypto,
            serial: Arc::new(Mutex::new(gatekeeper)),
            workers: Arc::new(Semaphore::new(workers.max(1))),
            metrics,
            deadline,
            store_ok: AtomicBool::new(true),
            shared,
            seen_trips: std::sync::atomic::AtomicU64::new(0),
            seen_races: std::sync::atomic::AtomicU64::new(0),
            clock,
        }
    }

    /// Runs `f` on the gatekeeper under its lock, on this thread (the management endpoint:
    /// a tick, a restart).
    pub fn with_gatekeeper<T>(&self, f: impl FnOnce(&mut Gatekeeper<AnyStore>) -> T) -> Result<T, Error> {
        let mut gk = self.serial.lock().map_err(|_| poisoned())?;
        Ok(f(&mut gk))
    }

    /// The gatekeeper's URI.
    pub fn uri(&self) -> &str {
        &self.crypto.config().uri
    }

    /// Whether the last use of the store succeeded.
    pub fn healthy(&self) -> bool {
        self.store_ok.load(Ordering::Relaxed)
    }

    /// Runs `f` on the blocking pool, holding one worker permit.
    async fn on_worker<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let permit = Arc::clone(&self.workers)
            .acquire_owned()
            .await
            .map_err(|_| Error::new(Rejection::CryptoFailure, "the worker pool is closed"))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        })
        .await
        .map_err(joined)?
    }

    /// Runs `f` on the gatekeeper under its lock (decide and commit), on the blocking pool.
    async fn serially<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Gatekeeper<AnyStore>) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let serial = Arc::clone(&self.serial);
        let shared = self.shared;
        let result = tokio::task::spawn_blocking(move || {
            let mut gk = serial.lock().map_err(|_| poisoned())?;
            let r = f(&mut gk);
            // On a shared store the count is the database's: the sweep reads it.
            let held = if shared { None } else { gk.held_keys().ok() };
            let trips = match gk.store() {
                AnyStore::Postgres(s) => s.round_trips(),
                AnyStore::Sqlite(_) | AnyStore::Memory(_) => 0,
            };
            Ok::<_, Error>((r, held, gk.poll_timeout(), (trips, gk.races_lost())))
        })
        .await
        .map_err(joined)??;
        let (r, held, next, (trips, races)) = result;
        // Totals read under the lock only grow: count what is new.
        let seen_trips = self.seen_trips.fetch_max(trips, Ordering::Relaxed);
        self.metrics.store_round_trips.inc_by(trips.saturating_sub(seen_trips));
        let seen_races = self.seen_races.fetch_max(races, Ordering::Relaxed);
        self.metrics.store_races_lost.inc_by(races.saturating_sub(seen_races));
        if let Some(held) = held {
            self.metrics.keys_held.set(i64::try_from(held).unwrap_or(i64::MAX));
        }
        self.store_ok.store(!matches!(&r, Err(e) if e.rejection() == Rejection::StorageFailed), Ordering::Relaxed);
        self.deadline.send_if_modified(|d| {
            let changed = *d != next;
            *d = next;
            changed
        });
        r
    }

    /// A key request: verify, decide, commit, build. The answer is the issuance response's
    /// DER (`docs/protocol.md` §8).
    pub async fn key_request(&self, der: Vec<u8>, now: UnixTime) -> Result<Vec<u8>, Error> {
        let crypto = Arc::clone(&self.crypto);
        let verified = self.on_worker(move || crypto.verify_key_request(&der, now)).await?;
        let committed = self
            .serially(move |gk| {
                let mut rng = request_rng()?;
                gk.issue(verified, now, &mut rng)
            })
            .await?;
        let crypto = Arc::clone(&self.crypto);
        let body = self
            .on_worker(move || {
                let mut rng = request_rng()?;
                crypto.build_issuance(committed, &mut rng)?.to_response_der()
            })
            .await?;
        self.metrics.issuances.inc();
        Ok(body)
    }

    /// A release request: verify, decide, commit, build. The answer is the release's DER.
    pub async fn release_request(&self, der: Vec<u8>, now: UnixTime) -> Result<Vec<u8>, Error> {
        let crypto = Arc::clone(&self.crypto);
        let verified = self.on_worker(move || crypto.verify_release_request(&der, now)).await?;
        let committed = self.serially(move |gk| gk.release(verified, now)).await?;
        let crypto = Arc::clone(&self.crypto);
        let release = self
            .on_worker(move || {
                let mut rng = request_rng()?;
                crypto.build_release(committed, now, &mut rng)
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

    /// Sleeps until the ledger's next deadline (woken when it moves, at most a minute) and
    /// handles what is due; returns when `stop` resolves.
    pub async fn run_timer(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut deadline = self.deadline.subscribe();
        loop {
            let next = *deadline.borrow_and_update();
            let wait = next.map_or(60, |t| t.secs().saturating_sub(self.clock.now().secs()).min(60));
            let wait = if self.shared { SHARED_SWEEP_SECS } else { wait };
            tokio::select! {
                () = &mut stop => return,
                changed = deadline.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
                () = self.clock.moved.notified() => {}
                () = tokio::time::sleep(std::time::Duration::from_secs(wait)) => {}
            }
            let now = self.clock.now();
            if self.shared {
                if let Ok(held) = self.serially(move |gk| gk.handle_timeout(now).and_then(|_| gk.held_keys())).await {
                    self.metrics.keys_held.set(i64::try_from(held).unwrap_or(i64::MAX));
                }
            } else if next.is_some_and(|t| t <= now) {
                let _ = self.serially(move |gk| gk.handle_timeout(now)).await;
            }
        }
    }
}
