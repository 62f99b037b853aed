//! The fetchers' side: release requests, the gatekeeper's release, opening the message.

use super::*;

impl LateRun<'_> {
    pub(super) fn new_fetch(&mut self, msg: usize, who: Who, rcpt: Option<usize>) -> usize {
        let version = match who {
            Who::Recipient(u) => self.version_at(u, self.now_ms()),
            Who::Attacker(u) => self.compromised.get(&u).map_or(0, |(_, v)| *v),
            _ => 0,
        };
        self.fetches.push(Fetch {
            msg,
            who,
            rcpt,
            version,
            attempt: 0,
            backoff_ms: self.sc.network.timeout_ms,
            started_ms: self.now_ms(),
            received: None,
            pending: None,
            done: false,
        });
        self.fetches.len() - 1
    }

    pub(super) fn start_fetch(&mut self, msg: usize, who: Who, rcpt: Option<usize>) -> Result<(), SimError> {
        let f = self.new_fetch(msg, who, rcpt);
        self.fetch_attempt(f)?;
        Ok(())
    }

    pub(super) fn fetch_attempt(&mut self, f: usize) -> Result<String, SimError> {
        let now = self.now();
        let (msg, who, version) = {
            let fe = self.fetch(f)?;
            (fe.msg, fe.who, fe.version)
        };
        if matches!(who, Who::RecipientGateway(_)) {
            self.rep.foreign_gateway_attempts += u64::from(self.fetch(f)?.attempt == 0);
        }
        let sealed =
            self.state.get(msg).and_then(|s| s.sealed.clone()).ok_or_else(|| SimError::Internal("sealed".into()))?;
        let client = client_for(self.w, who, version)?;
        self.w.provider.act_as(role_of(who));
        if self.fetch(f)?.received.is_none() {
            match client.receive(&sealed, now) {
                Ok(r) => self.fetch(f)?.received = Some(r),
                Err(e) => return self.finish_fetch(f, Err(e.code().to_owned())),
            }
        }
        let received = self.fetch(f)?.received.clone().ok_or_else(|| SimError::Internal("received".into()))?;
        let pending = match client.request(&received, now, &mut self.rng) {
            Ok(p) => p,
            Err(e) => return self.finish_fetch(f, Err(e.code().to_owned())),
        };
        let org = self.w.org_by_uri(received.gatekeeper_uri()).ok_or_else(|| SimError::Internal("uri".into()))?;
        let der = Rc::new(pending.der.clone());
        self.rep.add_bytes("release_request", der.len());
        let fe = self.fetch(f)?;
        fe.attempt += 1;
        fe.pending = Some(pending);
        let (attempt, backoff) = (fe.attempt, fe.backoff_ms);
        let cross = self.w.user(self.msg(msg)?.sender)?.org != client_org(self.w, who)?;
        self.transmit(cross, Ev::ReleaseRequestAtGk { org, fetch: f, attempt, der });
        self.schedule(backoff, Ev::FetchRetry(f, attempt));
        Ok(format!("attempt {attempt}"))
    }

    pub(super) fn gk_release(&mut self, org: usize, f: usize, attempt: u32, der: &[u8]) -> Result<String, SimError> {
        if !self.gk_up(org) {
            return Ok("gatekeeper down".into());
        }
        self.count_request();
        let now = self.now();
        let (msg, who, version) = {
            let fe = self.fetch(f)?;
            (fe.msg, fe.who, fe.version)
        };
        self.w.provider.act_as(Role::Gatekeeper);
        let slot = self.gks.get_mut(org).ok_or_else(|| SimError::Internal("gk".into()))?;
        let Some(gk) = slot.gk.as_mut() else { return Ok("gatekeeper down".into()) };
        let result = gk.handle_release_request(der, now, &mut self.rng);
        let facts = self.facts(msg)?;
        let listed = self.state.get(msg).map(|s| s.listed.clone()).unwrap_or_default();
        let (reply, outcome) = match result {
            Ok(release) => {
                let cert = cert_of(self.w, who, version)?;
                let at_ms = self.q.now_ms();
                self.obs.released(
                    &facts,
                    release.key_id,
                    release.kind,
                    &release.served,
                    &listed,
                    cert,
                    party(who),
                    at_ms,
                );
                self.rep.add_bytes("release", release.der.len());
                // The release may have destroyed the key, or started its retention.
                self.reap(org)?;
                self.arm_sweep(org);
                let outcome = format!("{:?}", release.kind);
                (Ev::ReleaseAtClient { fetch: f, attempt, der: Rc::new(release.der) }, outcome)
            }
            Err(e) => (Ev::RefusalAtClient { fetch: f, attempt, code: e.code() }, e.code().to_owned()),
        };
        if self.gks.get(org).is_some_and(|s| s.armed.is_some()) {
            self.crash(org)?;
            return Ok(format!("{outcome}, then crashed before answering"));
        }
        let cross = self.w.user(self.msg(msg)?.sender)?.org != client_org(self.w, who)?;
        self.transmit(cross, reply);
        Ok(outcome)
    }

    pub(super) fn accept_release(&mut self, f: usize, attempt: u32, der: &[u8]) -> Result<String, SimError> {
        let (msg, who, version, done, current) = {
            let fe = self.fetch(f)?;
            (fe.msg, fe.who, fe.version, fe.done, fe.attempt)
        };
        if done || current != attempt {
            return Ok("stale answer".into());
        }
        let client = client_for(self.w, who, version)?;
        let (received, pending) = {
            let fe = self.fetch(f)?;
            (fe.received.clone(), fe.pending.clone())
        };
        let (Some(received), Some(pending)) = (received, pending) else { return Ok("no request".into()) };
        self.w.provider.act_as(role_of(who));
        let now = self.now();
        let key = match client.accept(&received, &pending, der, now, &mut self.rng) {
            Ok(k) => k,
            Err(e) => return self.finish_fetch(f, Err(e.code().to_owned())),
        };
        let plain = match client.open(&received, &key) {
            Ok(p) => p,
            Err(e) => return self.finish_fetch(f, Err(e.code().to_owned())),
        };
        let read: [u8; 32] = Sha256::digest(plain.as_slice()).into();
        let body_ok = self.state.get(msg).is_some_and(|s| s.body_digest == Some(read));
        if !body_ok {
            self.obs.ledger_violation("client", format!("message {msg}: plaintext differs from what was sent"));
        }
        let facts = self.facts(msg)?;
        self.obs.learned(&facts, party(who));
        if let Who::Recipient(u) = who
            && self.msg(msg)?.labelled
            && !self.entitled.get(u).copied().unwrap_or(false)
        {
            self.obs.unentitled_read(msg, u);
        }
        if self.sc.plant == Plant::LeakToForeignGateway
            && let Who::Recipient(u) = who
        {
            let org = self.w.user(u)?.org;
            if org != facts.sender_org {
                self.obs.learned(&facts, Party::RecipientGateway(org));
            }
        }
        self.finish_fetch(f, Ok(()))
    }

    pub(super) fn finish_fetch(&mut self, f: usize, outcome: Result<(), String>) -> Result<String, SimError> {
        let now_ms = self.now_ms();
        let fe = self.fetch(f)?;
        fe.done = true;
        let (msg, rcpt, started) = (fe.msg, fe.rcpt, fe.started_ms);
        let text = match &outcome {
            Ok(()) => "key".to_owned(),
            Err(c) => c.clone(),
        };
        if let Some(r) = rcpt {
            match outcome {
                Ok(()) => {
                    self.read_latency.push((started, now_ms - started));
                    if let Some(p) = self.st(msg)?.pairs.get_mut(r) {
                        *p = Pair::Read;
                    }
                }
                Err(code) => {
                    // A recipient whose key was stolen first: the attacker may have used up
                    // its release. Not owed: the gatekeeper cannot tell the two apart.
                    let stolen = match self.fetches.get(f).map(|x| x.who) {
                        Some(Who::Recipient(u)) => self.compromised.get(&u).is_some_and(|(at, _)| *at <= now_ms),
                        _ => false,
                    };
                    let code = if stolen { format!("{code}{AFTER_THEFT}") } else { code };
                    if let Some(p) = self.st(msg)?.pairs.get_mut(r) {
                        *p = Pair::Lost(code);
                    }
                }
            }
        }
        Ok(text)
    }
}
