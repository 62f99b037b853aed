//! `ekg load --in-process CONFIG --prefill N`: N keys pending in the fresh database before the
//! run, so that the run measures the gatekeeper's memory and throughput beside a store that
//! already holds them (issue 24: memory bounded whatever the store holds).
//!
//! Each key is made by the core's own issuance round (the same `Issue` decision, key draw and
//! storage-key wrap as a real request), for a synthetic verified request (a fresh nonce, one
//! listed recipient); the round's batch is captured instead of written, and the batches are
//! then imported into SQLite in large transactions. Only the request's signature checks are
//! skipped: they decide nothing the store holds.

use ekg_core::ledger::{
    Answered, Batch, Concrete, IssueFacts, IssueRules, LoadedKey, Round, Store, StoreError, VerifiedIssue,
};
use ekg_core::role::Gatekeeper;
use ekg_core::{EmailAddress, UnixTime};
use ekg_core::{KeyId, Nonce, RequestId, StoredKey};
use ekg_server::store::AnyStore;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

/// Most keys `--prefill` writes.
pub const MAX_PREFILL: u64 = 2_000_000;

/// Keys made per import call (bounds the batches held in memory at once).
const CHUNK: u64 = 10_000;

/// A key request as if its checks had passed.
struct Synthetic {
    id: RequestId,
    time: UnixTime,
    to: EmailAddress,
}

impl VerifiedIssue<Concrete> for Synthetic {
    fn request_id(&self) -> RequestId {
        self.id.clone()
    }
    fn request_time(&self) -> UnixTime {
        self.time
    }
    fn sender(&self) -> EmailAddress {
        self.id.sender.clone()
    }
    fn recipients(&self) -> Vec<EmailAddress> {
        vec![self.to.clone()]
    }
}

/// A store that knows nothing and keeps the one batch a round writes.
#[derive(Default)]
struct Capture(Option<Batch<Concrete>>);

impl Store<Concrete> for Capture {
    fn load_key(&mut self, _: &KeyId) -> Result<LoadedKey<Concrete>, StoreError> {
        Ok(LoadedKey::absent())
    }
    fn load_request(&mut self, _: &RequestId) -> Result<Option<Answered<Concrete>>, StoreError> {
        Ok(None)
    }
    fn append_if_unchanged(&mut self, batch: &Batch<Concrete>) -> Result<bool, StoreError> {
        self.0 = Some(batch.clone());
        Ok(true)
    }
    fn due(&mut self, _: UnixTime, _: usize) -> Result<Vec<KeyId>, StoreError> {
        Ok(Vec::new())
    }
    fn next_deadline(&mut self) -> Result<Option<UnixTime>, StoreError> {
        Ok(None)
    }
    fn held_keys(&mut self) -> Result<u64, StoreError> {
        Ok(0)
    }
    fn live_handle(&mut self) -> Result<Option<StoredKey>, StoreError> {
        Ok(None)
    }
}

/// Writes `n` pending keys for `sender` to `to` into the gatekeeper's SQLite store; the number
/// written.
pub fn prefill(
    gk: &Gatekeeper<AnyStore>,
    n: u64,
    sender: &EmailAddress,
    to: &EmailAddress,
    now: UnixTime,
) -> Result<u64, String> {
    if n > MAX_PREFILL {
        return Err(format!("--prefill: at most {MAX_PREFILL}"));
    }
    let AnyStore::Sqlite(store) = gk.store() else { return Err("--prefill needs the SQLite store".into()) };
    let config = gk.crypto().config();
    let rules = IssueRules { policy: config.policy, ticket_lifetime_secs: config.ticket_lifetime_secs };
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("OS RNG: {e}"))?;
    let mut rng = ChaCha20Rng::from_seed(seed);
    let mut written = 0;
    while written < n {
        let mut batches = Vec::new();
        for _ in 0..CHUNK.min(n - written) {
            let mut nonce = Nonce([0; ekg_core::NONCE_LEN]);
            rng.fill_bytes(&mut nonce.0);
            let request = Synthetic { id: RequestId { sender: sender.clone(), nonce }, time: now, to: to.clone() };
            let mut round =
                Round::new(gk.rules(), ekg_core::ledger::round::Issue::new(IssueFacts::of(&request, rules, now)), now);
            let mut capture = Capture::default();
            let mut draw = gk.crypto().draw_from(&mut rng, now);
            round.run(&mut capture, &mut draw).map_err(|e| format!("{}: {}", e.code(), e.detail()))?;
            batches.push(capture.0.ok_or("the issuance round wrote nothing")?);
        }
        let made = batches.len() as u64;
        let imported = store.import(batches).map_err(|e| e.0)?;
        if imported != made {
            return Err(format!("--prefill: {imported} of {made} keys written (a key id or nonce collided)"));
        }
        written += made;
    }
    Ok(written)
}

/// This process's resident memory now and at its peak since the last [`reset_peak`], KiB
/// (Linux `/proc/self/status`; `None` elsewhere).
pub fn memory_kib() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Resets the peak resident memory to the current one (Linux: `5` into
/// `/proc/self/clear_refs`); whether it could.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}
