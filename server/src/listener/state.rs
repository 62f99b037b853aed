//! What is known about one connection while it lives, shared by its stream ([`super::io`]),
//! the requests it carries, and the admission of new connections ([`super::admission`]).

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::Waker;
use std::time::Instant;

use tokio::sync::{Notify, watch};

/// One connection's state.
#[derive(Debug)]
pub struct ConnState {
    /// The client's address.
    pub(crate) peer: SocketAddr,
    /// Requests whose handler runs.
    in_flight: AtomicU32,
    /// Requests begun on this connection.
    requests: AtomicU32,
    /// When the first byte of the next request head arrived (none: no head begun).
    head_started: Mutex<Option<Instant>>,
    /// Since when nothing is in progress (an evictable connection), if so.
    idle_since: Mutex<Option<Instant>>,
    /// Since when bytes of an answer wait for the client to read them (also evictable).
    write_stalled_since: Mutex<Option<Instant>>,
    /// The current request's body has been read whole (or it has none): the end of the
    /// client's input is then a half-close, not a cut-off body.
    body_read: AtomicBool,
    /// The client ended its input during a request.
    half_closed: AtomicBool,
    /// The handler's last poll of the request's body found nothing to take: it waits for
    /// bytes from the client.
    body_waiting: AtomicBool,
    /// The end of input came before the handler had read the body whole: the reader waiting
    /// to learn whether it cut the body short (the handler waits for more) or followed a
    /// whole body (a half-close).
    eof_waiter: Mutex<Option<Waker>>,
    /// Set once the connection is gone (an I/O error, a timeout, eviction, or its end).
    closed: watch::Sender<bool>,
    /// Set once the client's input has ended during a request (a half-close, or a client
    /// that closed its socket and left: TCP cannot tell them apart), or the connection is
    /// gone.
    departed: watch::Sender<bool>,
    /// Asks the connection to close (it is idle and a new one needs its slot).
    pub(crate) evict: Notify,
}

impl ConnState {
    pub(crate) fn new(peer: SocketAddr) -> ConnState {
        ConnState {
            peer,
            in_flight: AtomicU32::new(0),
            requests: AtomicU32::new(0),
            head_started: Mutex::new(None),
            idle_since: Mutex::new(Some(Instant::now())),
            write_stalled_since: Mutex::new(None),
            body_read: AtomicBool::new(true),
            half_closed: AtomicBool::new(false),
            body_waiting: AtomicBool::new(false),
            eof_waiter: Mutex::new(None),
            closed: watch::Sender::new(false),
            departed: watch::Sender::new(false),
            evict: Notify::new(),
        }
    }

    /// Whether a request's handler runs.
    pub(crate) fn in_flight(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    /// A request's handler starts: its head is complete. Returns how many requests this
    /// connection has begun, this one included.
    pub(crate) fn begin_request(&self, has_body: bool) -> u32 {
        self.body_read.store(!has_body, Ordering::Release);
        self.body_waiting.store(false, Ordering::Release);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.set_head_started(None);
        self.not_idle();
        self.requests.fetch_add(1, Ordering::AcqRel).saturating_add(1)
    }

    /// A request's handler has returned (or was dropped).
    pub(crate) fn end_request(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        // An end of input held during the request is shown now.
        self.wake_eof_waiter();
    }

    fn set_head_started(&self, at: Option<Instant>) {
        if let Ok(mut h) = self.head_started.lock() {
            *h = at;
        }
    }

    /// Bytes of a request head arrived while no request was in progress.
    pub(crate) fn head_bytes_arrived(&self) {
        self.not_idle();
        if let Ok(mut h) = self.head_started.lock() {
            h.get_or_insert_with(Instant::now);
        }
    }

    /// When the current request head began, if one did.
    pub(crate) fn head_started_at(&self) -> Option<Instant> {
        self.head_started.lock().ok().and_then(|h| *h)
    }

    /// Nothing in progress: the connection waits for a request.
    pub(crate) fn mark_idle(&self) {
        if let Ok(mut i) = self.idle_since.lock() {
            i.get_or_insert_with(Instant::now);
        }
    }

    /// Something in progress (bytes read or written).
    pub(crate) fn not_idle(&self) {
        if let Ok(mut i) = self.idle_since.lock() {
            *i = None;
        }
    }

    /// Since when the connection is idle, if it is.
    pub(crate) fn idle_since(&self) -> Option<Instant> {
        if self.in_flight() {
            return None;
        }
        self.idle_since.lock().ok().and_then(|i| *i)
    }

    /// Since when the connection may be closed to make room: idle, or its answer waiting
    /// for a client that does not read.
    pub(crate) fn evictable_since(&self) -> Option<Instant> {
        let stalled = self.write_stalled_since.lock().ok().and_then(|w| *w);
        match (self.idle_since(), stalled) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A write could not go on: the client is not reading.
    pub(crate) fn write_stalled(&self) {
        if let Ok(mut w) = self.write_stalled_since.lock() {
            w.get_or_insert_with(Instant::now);
        }
    }

    /// Everything written was taken.
    pub(crate) fn write_flowing(&self) {
        if let Ok(mut w) = self.write_stalled_since.lock() {
            *w = None;
        }
    }

    /// The current request's body has been read whole.
    pub(crate) fn mark_body_read(&self) {
        self.body_read.store(true, Ordering::Release);
        self.wake_eof_waiter();
    }

    /// The handler's poll of the body found nothing (`true`), or took a frame (`false`). An
    /// end of input already seen then cut the body short: its reader is woken to show it.
    pub(crate) fn set_body_waiting(&self, waiting: bool) {
        self.body_waiting.store(waiting, Ordering::Release);
        if waiting {
            self.wake_eof_waiter();
        }
    }

    pub(crate) fn is_body_waiting(&self) -> bool {
        self.body_waiting.load(Ordering::Acquire)
    }

    /// The reader holds an end of input until the handler's next look at the body tells what
    /// it is; `waker` is woken then.
    pub(crate) fn wait_for_eof_verdict(&self, waker: &Waker) {
        if let Ok(mut w) = self.eof_waiter.lock() {
            *w = Some(waker.clone());
        }
    }

    fn wake_eof_waiter(&self) {
        let waker = self.eof_waiter.lock().ok().and_then(|mut w| w.take());
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub(crate) fn is_body_read(&self) -> bool {
        self.body_read.load(Ordering::Acquire)
    }

    pub(crate) fn mark_half_closed(&self) {
        self.half_closed.store(true, Ordering::Release);
    }

    /// The connection is gone.
    pub(crate) fn mark_closed(&self) {
        self.closed.send_replace(true);
        self.departed.send_replace(true);
    }

    /// The client's input ended during a request.
    pub(crate) fn mark_input_ended(&self) {
        self.departed.send_replace(true);
    }

    pub(crate) fn has_departed(&self) -> bool {
        *self.departed.borrow()
    }

    pub(crate) fn subscribe_departed(&self) -> watch::Receiver<bool> {
        self.departed.subscribe()
    }

    pub(crate) fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    pub(crate) fn is_half_closed(&self) -> bool {
        self.half_closed.load(Ordering::Acquire)
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }
}
