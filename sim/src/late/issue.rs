//! The sender's side: key request, the gatekeeper's issuance, the grant, sealing and mail.

use super::*;

impl LateRun<'_> {
    pub(super) fn send_key_request(&mut self, msg: usize) -> Result<String, SimError> {
        let m = self.msg(msg)?;
        let sender = self.w.user(m.sender)?;
        let now = self.now();
        let listed = self.st(msg)?.listed.clone();
        self.w.provider.act_as(Role::Sender);
        let sender_role = &sender
            .versions
            .get(self.version_at(m.sender, self.now_ms()))
            .ok_or_else(|| SimError::Internal("version".into()))?
            .sender;
        let label =
            self.w.labels.as_ref().map(|(l, _)| l).filter(|_| m.labelled && self.sc.plant != Plant::LabelsDropped);
        let pending = match label {
            Some(l) => sender_role.request_labelled_key(&listed, std::slice::from_ref(l), now, &mut self.rng),
            None => sender_role.request_key(&listed, now, &mut self.rng),
        }
        .map_err(SimError::core)?;
        let der = Rc::new(pending.der.clone());
        self.rep.add_bytes("key_request", der.len());
        let s = self.st(msg)?;
        s.attempt += 1;
        let attempt = s.attempt;
        s.pending = Some(pending);
        let backoff = s.backoff_ms;
        self.transmit(false, Ev::KeyRequestAtGk { org: sender.org, msg, attempt, der });
        self.schedule(backoff, Ev::SenderRetry(msg, attempt));
        Ok(format!("attempt {attempt}"))
    }

    pub(super) fn gk_key_request(
        &mut self,
        org: usize,
        msg: usize,
        attempt: u32,
        der: &[u8],
    ) -> Result<String, SimError> {
        if !self.gk_up(org) {
            return Ok("gatekeeper down".into());
        }
        self.count_request();
        let now = self.now();
        self.w.provider.act_as(Role::Gatekeeper);
        let slot = self.gks.get_mut(org).ok_or_else(|| SimError::Internal("gk".into()))?;
        let Some(gk) = slot.gk.as_mut() else { return Ok("gatekeeper down".into()) };
        let result = gk.handle_key_request(der, now, &mut self.rng);
        let reply = match result {
            Ok(issuance) => {
                slot.live.insert(issuance.key_id, self.q.now_ms());
                self.life_of.insert(issuance.key_id, self.lives.len());
                self.lives.push(KeyLife { msg, org, issued_ms: self.q.now_ms(), destroyed_ms: None, used: false });
                self.sample_held();
                self.arm_sweep(org);
                let listed = self.state.get(msg).map(|s| s.listed.clone()).unwrap_or_default();
                let expires_ms = issuance.expires_at.secs().saturating_sub(self.base.secs()).saturating_mul(1000);
                self.obs.issued(issuance.key_id, msg, &listed, expires_ms);
                self.issued += 1;
                self.rep.add_bytes("grant", issuance.grant.len());
                self.rep.add_bytes("ticket", issuance.ticket.len());
                Ev::IssuanceAtSender { msg, attempt, grant: Rc::new(issuance.grant), ticket: Rc::new(issuance.ticket) }
            }
            Err(e) => Ev::RefusalAtSender { msg, attempt, code: e.code() },
        };
        let outcome = match &reply {
            Ev::RefusalAtSender { code, .. } => (*code).to_owned(),
            _ => "issued".to_owned(),
        };
        if self.gks.get(org).is_some_and(|s| s.armed.is_some()) {
            self.crash(org)?;
            return Ok(format!("{outcome}, then crashed before answering"));
        }
        self.transmit(false, reply);
        Ok(outcome)
    }

    pub(super) fn accept_issuance(
        &mut self,
        msg: usize,
        attempt: u32,
        grant: &[u8],
        ticket: &[u8],
    ) -> Result<String, SimError> {
        let now = self.now();
        let now_ms = self.now_ms();
        let m = self.msg(msg)?;
        let s = self.st(msg)?;
        if s.sent_ms.is_some() || s.given_up.is_some() || s.attempt != attempt {
            return Ok("stale answer".into());
        }
        let Some(pending) = s.pending.take() else { return Ok("no request".into()) };
        let body_word = s.body_word;
        let sender = self.w.user(m.sender)?;
        let version =
            sender.versions.get(self.version_at(m.sender, now_ms)).ok_or_else(|| SimError::Internal("v".into()))?;
        self.w.provider.act_as(Role::Sender);
        let key = match version.sender.accept_grant(&pending, grant, ticket, now, &mut self.rng) {
            Ok(k) => k,
            Err(e) => {
                self.st(msg)?.given_up = Some(format!("grant_refused:{}", e.code()));
                return Ok(e.code().to_owned());
            }
        };
        let body = body_at(self.body_seed, body_word, m.size);
        let sealed = version.sender.seal(&key, &body, &mut self.rng).map_err(SimError::core)?;
        let body_digest: [u8; 32] = Sha256::digest(&body).into();
        drop(body);
        let digest: [u8; 32] = Sha256::digest(key.key.expose()).into();
        self.scan_store_for(sender.org, &key.key_id, key.key.expose());
        let facts = self.facts(msg)?;
        self.obs.key_bytes(msg, digest);
        self.obs.learned(&facts, Party::Sender(m.sender));
        let copies = mail_copies(self.w, m);
        self.rep.add_bytes("sealed_message", sealed.len() * copies);
        let lifetime_ms = self.sc.gatekeeper.ticket_lifetime_secs * 1000;
        let s = self.st(msg)?;
        s.sealed = Some(Rc::new(sealed));
        s.body_digest = Some(body_digest);
        s.sent_ms = Some(now_ms);
        s.key_id = Some(key.key_id);
        s.expires_ms = now_ms + lifetime_ms;
        self.send_latency.push((m.submit_ms, now_ms - m.submit_ms));
        let mail = self.sc.network.mail_latency_ms;
        for rcpt in 0..m.recipients.len() {
            self.schedule(mail, Ev::Mail { msg, rcpt });
        }
        if m.gateway_fetch {
            self.start_fetch(msg, Who::SenderGateway(sender.org), None)?;
        }
        for o in &m.foreign_probes {
            let f = self.new_fetch(msg, Who::RecipientGateway(*o), None);
            self.schedule(mail, Ev::FetchStart(f));
        }
        Ok("sent".into())
    }
}
