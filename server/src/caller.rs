//! Whether the client of one request still waits for its answer.
//!
//! A release recorded for a client that has gone is a key spent for nobody: under `once`, the
//! recipient's next request gets `already_released`. So a protocol request carries a
//! [`Caller`]: a deadline (the configured `request_deadline_secs`, shortened by the client's
//! own `Ekg-Timeout` header) and a flag set when the request's future is dropped (its
//! connection closed). The store checks it **inside** the write, after it holds the write
//! lock and before the append's first statement (SQLite: per append of a group; PostgreSQL:
//! before the append's round trip), so a client that left while the store was stalled has
//! nothing recorded. What cannot be helped: a client that leaves while the commit itself is
//! in flight (the record is then durable and its answer lost, as with any lost response;
//! the recipient gets it again under `redeliver`, and `docs/model.md` states the loss under
//! `once`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ekg_core::ledger::StoreError;

/// The client of one request, as the store sees it.
#[derive(Clone, Debug)]
pub struct Caller {
    deadline: Instant,
    gone: Arc<AtomicBool>,
}

/// Dropped with the request's future: marks its [`Caller`] gone.
#[derive(Debug)]
pub struct Departure(Arc<AtomicBool>);

impl Drop for Departure {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The header a client may state its own timeout in (whole seconds; only ever shortens the
/// configured deadline).
pub const TIMEOUT_HEADER: &str = "ekg-timeout";

/// What the store answers for an append whose caller is no longer waiting (the service turns
/// it into 503 `deadline_exceeded`).
pub const ABANDONED: &str = "the client is no longer waiting: nothing recorded";

impl Caller {
    /// A caller whose deadline is `within` from now, and the guard that marks it gone.
    pub fn new(within: Duration) -> (Caller, Departure) {
        let gone = Arc::new(AtomicBool::new(false));
        let caller = Caller { deadline: Instant::now() + within, gone: Arc::clone(&gone) };
        (caller, Departure(gone))
    }

    /// Whether the client still waits (before its deadline, its request not dropped).
    pub fn waiting(&self) -> bool {
        !self.gone.load(Ordering::Relaxed) && Instant::now() < self.deadline
    }

    /// `Ok` while the client waits, else the store's [`ABANDONED`] error.
    pub fn check(&self) -> Result<(), StoreError> {
        if self.waiting() { Ok(()) } else { Err(StoreError(ABANDONED.into())) }
    }

    /// The time left before the deadline (zero once past).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// The deadline of a request: the configured one, or the client's `Ekg-Timeout` when it is a
/// whole number of seconds at least 1 and shorter (anything else in the header is ignored).
pub fn deadline(configured: Duration, header: Option<&str>) -> Duration {
    let stated = header.and_then(|v| v.trim().parse::<u64>().ok()).filter(|s| *s >= 1).map(Duration::from_secs);
    stated.map_or(configured, |s| s.min(configured))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_dropped_request_is_no_longer_waited_for() {
        let (caller, departure) = Caller::new(Duration::from_secs(60));
        assert!(caller.waiting());
        assert!(caller.check().is_ok());
        drop(departure);
        assert!(!caller.waiting());
        assert_eq!(caller.check().unwrap_err().0, ABANDONED);
    }

    #[test]
    fn a_passed_deadline_is_no_longer_waited_for() {
        let (caller, _departure) = Caller::new(Duration::ZERO);
        assert!(!caller.waiting());
        assert_eq!(caller.remaining(), Duration::ZERO);
    }

    #[test]
    fn the_client_may_only_shorten_the_deadline() {
        let ten = Duration::from_secs(10);
        assert_eq!(deadline(ten, None), ten);
        assert_eq!(deadline(ten, Some("3")), Duration::from_secs(3));
        assert_eq!(deadline(ten, Some("60")), ten);
        assert_eq!(deadline(ten, Some("0")), ten);
        assert_eq!(deadline(ten, Some("-1")), ten);
        assert_eq!(deadline(ten, Some("2.5")), ten);
    }
}
