//! The gatekeepers: availability, crashes and restarts, sweeps at the store's next deadline,
//! and the keys they hold.

use super::*;

/// The next deadline in a gatekeeper's store (a memory store: it cannot fail).
fn next_deadline(gk: &Gatekeeper<MemoryStore<Concrete>>) -> Option<ekg_core::UnixTime> {
    let mut store = gk.store().clone();
    ekg_core::ledger::Store::next_deadline(&mut store).ok().flatten()
}

impl LateRun<'_> {
    pub(super) fn gk_up(&self, org: usize) -> bool {
        self.gks.get(org).is_some_and(|s| s.gk.is_some() && !s.outage)
    }

    pub(super) fn count_request(&mut self) {
        *self.rps.entry(self.now_ms() / 1000).or_default() += 1;
    }

    pub(super) fn crash(&mut self, org: usize) -> Result<String, SimError> {
        let volatile = self.sc.plant == Plant::VolatileStore;
        let Some(slot) = self.gks.get_mut(org) else { return Ok("no gatekeeper".into()) };
        let Some(restart_after) = slot.armed.take() else { return Ok("already crashed".into()) };
        if let Some(gk) = slot.gk.take() {
            slot.store = Some(if volatile { MemoryStore::new() } else { gk.into_store() });
        }
        self.schedule(restart_after, Ev::Restart(org));
        Ok("crashed".into())
    }

    /// Schedules `org`'s next sweep at its store's next deadline, if it holds a key
    /// and no earlier sweep is scheduled (tombstone purges change no metric: not swept for).
    pub(super) fn arm_sweep(&mut self, org: usize) {
        let now_ms = self.now_ms();
        let base = self.base.secs();
        let Some(slot) = self.gks.get_mut(org) else { return };
        let Some(gk) = slot.gk.as_ref() else { return };
        if slot.live.is_empty() {
            return;
        }
        let Some(due) = next_deadline(gk) else { return };
        let due_ms = due.secs().saturating_sub(base).saturating_mul(1000).max(now_ms);
        if slot.sweep_at.is_none_or(|at| due_ms < at) {
            slot.sweep_at = Some(due_ms);
            self.q.at(due_ms, Ev::Sweep(org));
        }
    }

    /// `org`'s gatekeeper handles what is due now (destruction at expiry and at the end of
    /// retention), then the observer checks that every key past its time is gone from its
    /// store; the next sweep is armed.
    pub(super) fn sweep(&mut self, org: usize) -> Result<String, SimError> {
        let now = self.now();
        let now_ms = self.now_ms();
        let Some(slot) = self.gks.get_mut(org) else { return Ok("no gatekeeper".into()) };
        if slot.sweep_at != Some(now_ms) {
            return Ok("superseded".into());
        }
        slot.sweep_at = None;
        let Some(gk) = slot.gk.as_mut() else { return Ok("gatekeeper down".into()) };
        self.w.provider.act_as(Role::Gatekeeper);
        let records = gk.handle_timeout(now).map_err(SimError::core)?;
        let whole = gk.store().ledger(*gk.rules().config()).map_err(SimError::core)?;
        if let Err(e) = whole.check_invariants() {
            let name = self.w.orgs.get(org).map(|x| x.domain.clone()).unwrap_or_default();
            self.obs.ledger_violation(&name, e);
        }
        let destroyed = self.reap(org)?;
        // The destruction oracle reads this gatekeeper's store.
        let gks = &self.gks;
        self.obs.check_destruction(now_ms, |k| {
            let slot = gks.get(org)?;
            let gk = slot.gk.as_ref()?;
            let ours = slot.live.contains_key(k) || !gk.store().records_of(k).is_empty();
            ours.then(|| gk.store().records_of(k).iter().any(|r| matches!(r, ekg_core::ledger::Record::Issued { .. })))
        });
        self.arm_sweep(org);
        Ok(format!("{records} records, destroyed {destroyed}"))
    }

    /// Keys `org`'s ledger no longer holds: their lifetimes are recorded, the observer told,
    /// the ledger's invariants checked. Returns how many.
    pub(super) fn reap(&mut self, org: usize) -> Result<usize, SimError> {
        let now_ms = self.q.now_ms();
        let Some(slot) = self.gks.get_mut(org) else { return Ok(0) };
        let Some(gk) = slot.gk.as_ref() else { return Ok(0) };
        let gone: Vec<KeyId> = slot
            .live
            .keys()
            .filter(|k| {
                let state = gk.store().state_of(*gk.rules().config(), k).ok().flatten();
                !matches!(state, Some(KeyState::Pending(_) | KeyState::Retained { .. }))
            })
            .copied()
            .collect();
        for k in &gone {
            if let Some(at) = slot.live.remove(k) {
                self.lifetimes.push((now_ms - at) as f64 / 1000.0);
            }
            if let Some(life) = self.life_of.get(k).and_then(|i| self.lives.get_mut(*i)) {
                life.destroyed_ms.get_or_insert(now_ms);
            }
            self.obs.destroyed(*k);
        }
        if !gone.is_empty() {
            self.sample_held();
        }
        Ok(gone.len())
    }

    /// What a thief of `org`'s database alone reads of a key: every stored record of
    /// `key_id`, encoded as the store keeps it, searched for the key's bytes in the clear.
    pub(super) fn scan_store_for(&mut self, org: usize, key_id: &KeyId, key: &[u8]) {
        let Some(gk) = self.gks.get(org).and_then(|s| s.gk.as_ref()) else { return };
        for record in gk.store().records_of(key_id) {
            self.rep.db_records_scanned += 1;
            self.rep.db_plaintext_keys_found += u64::from(crate::compromise::holds_in_clear(&record.encode(), key));
        }
    }

    /// Records the keys held by all gatekeepers now (one sample per change, the last of a
    /// second kept: memory follows the keys issued, not the run's length).
    pub(super) fn sample_held(&mut self) {
        let held: u64 = self.gks.iter().map(|s| s.live.len() as u64).sum();
        let at = self.now_ms() / 1000;
        match self.rep.keys_held.last_mut() {
            Some(last) if last.0 == at => last.1 = held,
            _ => self.rep.keys_held.push((at, held)),
        }
    }
}
