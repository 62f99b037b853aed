//! What one phase of `ekg load` measured: counts by outcome, throughput, latency quantiles,
//! and a progress line on a terminal.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// One request's outcome: HTTP status and the problem code (empty on success).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Outcome {
    /// 200, or the refusal's status (0: no answer).
    pub status: u16,
    /// The problem's `code`, or the transport error.
    pub code: String,
}

impl Outcome {
    /// Whether the request succeeded.
    pub fn ok(&self) -> bool {
        self.status == 200
    }
}

/// One phase's figures.
#[derive(Debug)]
pub struct Phase {
    /// `issuance` or `release`.
    pub name: &'static str,
    /// Requests sent.
    pub sent: usize,
    /// Outcomes and how many of each.
    pub outcomes: BTreeMap<Outcome, usize>,
    /// Wall time from the first request to the last answer.
    pub elapsed: Duration,
    /// Latencies of the successful requests, sorted.
    pub latencies: Vec<Duration>,
}

impl Phase {
    /// Successful requests.
    pub fn ok(&self) -> usize {
        self.latencies.len()
    }

    /// Successful requests per second.
    pub fn throughput(&self) -> f64 {
        self.ok() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0..=1) of the successful latencies (nearest rank).
    pub fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((q * self.latencies.len() as f64).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies.get(rank - 1).copied().unwrap_or_default()
    }

    /// One table row.
    pub fn row(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        format!(
            "{:<10} {:>8} {:>8} {:>10.1} {:>9.2} {:>9.2} {:>9.2}",
            self.name,
            self.sent,
            self.ok(),
            self.throughput(),
            ms(self.quantile(0.5)),
            ms(self.quantile(0.99)),
            ms(self.latencies.last().copied().unwrap_or_default()),
        )
    }

    /// The refusals, one line each.
    pub fn refusals(&self) -> Vec<String> {
        self.outcomes
            .iter()
            .filter(|(o, _)| !o.ok())
            .map(|(o, n)| format!("  {}: {n} x {} {}", self.name, o.status, o.code))
            .collect()
    }
}

/// The table's header.
pub const HEADER: &str = "operation      sent       ok      req/s   p50(ms)   p99(ms)   max(ms)";

/// A progress line on standard error, redrawn while a phase runs (terminals only).
pub struct Progress<'a> {
    /// The phase.
    pub name: &'static str,
    /// Requests done.
    pub done: &'a AtomicUsize,
    /// Requests to do.
    pub total: usize,
    /// The phase's time budget.
    pub budget: Duration,
}

impl Progress<'_> {
    /// Redraws every 200 ms until `finished` is set.
    pub fn run(&self, finished: &std::sync::atomic::AtomicBool) {
        let tty = std::io::stderr().is_terminal();
        let start = std::time::Instant::now();
        while !finished.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
            if tty {
                let done = self.done.load(Ordering::Relaxed);
                let t = start.elapsed().as_secs_f64();
                let frac = (done as f64 / self.total.max(1) as f64).max(t / self.budget.as_secs_f64()).min(1.0);
                let filled = (frac * 30.0) as usize;
                eprint!(
                    "\r{:<10} [{}{}] {done}/{} {t:.1} s ",
                    self.name,
                    "=".repeat(filled),
                    " ".repeat(30 - filled),
                    self.total
                );
                let _ = std::io::stderr().flush();
            }
        }
        if tty {
            eprint!("\r{}\r", " ".repeat(72));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let latencies: Vec<_> = (1..=100).map(Duration::from_millis).collect();
        let p = Phase { name: "x", sent: 100, outcomes: BTreeMap::new(), elapsed: Duration::from_secs(2), latencies };
        assert_eq!(p.quantile(0.5), Duration::from_millis(50));
        assert_eq!(p.quantile(0.99), Duration::from_millis(99));
        assert_eq!(p.quantile(1.0), Duration::from_millis(100));
        assert!((p.throughput() - 50.0).abs() < 1e-9);
    }
}
