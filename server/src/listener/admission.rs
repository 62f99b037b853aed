//! Admission: at most `max_connections` connections at once, at most `max_per_client` from
//! one address. At the total cap the connection idle the longest (waiting for a request, as
//! nginx reuses its idle keep-alive connections, or with an answer its client does not read)
//! is closed to make room; when none is
//! the new connection is refused `503 connection_limit`; over the per-address cap, `429
//! client_connection_limit`. Refusals are answered (problem+json) by a few tasks at most,
//! each bounded in time; past that a connection is closed unanswered.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, Semaphore};

use super::ConnState;
use super::io::raw_problem;
use crate::binding::{Problem, http_codes};

/// Most refusals being answered at once.
pub const MAX_REFUSALS_IN_FLIGHT: usize = 64;
/// Longest time spent answering one refusal (writing it, then reading what the client sent).
pub const REFUSAL_TIME: Duration = Duration::from_secs(1);

/// The live connections.
#[derive(Debug)]
pub(crate) struct Registry {
    max_connections: usize,
    max_per_client: usize,
    inner: Mutex<Live>,
    /// Signalled when the last connection goes.
    pub(crate) emptied: Notify,
    pub(crate) refusals: Arc<Semaphore>,
}

#[derive(Debug, Default)]
struct Live {
    next_id: u64,
    by_id: HashMap<u64, Arc<ConnState>>,
    by_client: HashMap<IpAddr, usize>,
}

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Every slot is busy.
    Total,
    /// Its address holds its share.
    Client,
}

impl Refusal {
    pub(crate) fn problem(self) -> Problem {
        match self {
            Refusal::Total => Problem::new(503, http_codes::CONNECTION_LIMIT, "every connection slot is busy"),
            Refusal::Client => {
                Problem::new(429, http_codes::CLIENT_CONNECTION_LIMIT, "too many connections from this address")
            }
        }
    }

    pub(crate) fn code(self) -> &'static str {
        match self {
            Refusal::Total => http_codes::CONNECTION_LIMIT,
            Refusal::Client => http_codes::CLIENT_CONNECTION_LIMIT,
        }
    }
}

/// A connection's place in the registry: dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Slot {
    registry: Arc<Registry>,
    id: u64,
    pub(crate) state: Arc<ConnState>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.state.mark_closed();
        let empty = match self.registry.inner.lock() {
            Ok(mut live) => {
                live.by_id.remove(&self.id);
                let ip = self.state.peer.ip();
                if let Some(n) = live.by_client.get_mut(&ip) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        live.by_client.remove(&ip);
                    }
                }
                live.by_id.is_empty()
            }
            Err(_) => false,
        };
        if empty {
            self.registry.emptied.notify_waiters();
        }
    }
}

impl Registry {
    pub(crate) fn new(max_connections: usize, max_per_client: usize) -> Registry {
        Registry {
            max_connections: max_connections.max(1),
            max_per_client: max_per_client.max(1),
            inner: Mutex::new(Live::default()),
            emptied: Notify::new(),
            refusals: Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT)),
        }
    }

    /// Admits a connection from `state.peer`, closing the longest-idle one at the total cap.
    pub(crate) fn admit(self: &Arc<Self>, state: ConnState) -> Result<Slot, Refusal> {
        let mut live = self.inner.lock().map_err(|_| Refusal::Total)?;
        let ip = state.peer.ip();
        if live.by_client.get(&ip).copied().unwrap_or(0) >= self.max_per_client {
            return Err(Refusal::Client);
        }
        if live.by_id.len() >= self.max_connections {
            // The longest idle goes (it closes when its task sees the notice; its slot is
            // counted until then, so the total may pass the cap by the evictions under way).
            let victim = live
                .by_id
                .iter()
                .filter(|(_, c)| !c.is_closed())
                .filter_map(|(id, c)| c.evictable_since().map(|t| (t, *id)))
                .min()
                .and_then(|(_, id)| live.by_id.get(&id).cloned());
            match victim {
                Some(v) => {
                    v.mark_closed();
                    v.evict.notify_one();
                }
                None => return Err(Refusal::Total),
            }
        }
        live.next_id += 1;
        let id = live.next_id;
        let state = Arc::new(state);
        live.by_id.insert(id, Arc::clone(&state));
        *live.by_client.entry(ip).or_insert(0) += 1;
        Ok(Slot { registry: Arc::clone(self), id, state })
    }

    /// Connections alive now.
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().map_or(0, |l| l.by_id.len())
    }
}

/// Answers a refused connection: the problem, then what the client sent is read and thrown
/// away until it closes (so that closing does not reset the connection before the client
/// reads the answer), all within [`REFUSAL_TIME`].
pub(crate) async fn answer_refusal<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, problem: &Problem) {
    let bytes = raw_problem(problem);
    let answer = async {
        stream.write_all(&bytes).await?;
        stream.flush().await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut total = 0usize;
        while total < 64 * 1024 {
            let n = stream.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            total += n;
        }
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(REFUSAL_TIME, answer).await;
}
