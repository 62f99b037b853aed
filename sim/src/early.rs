//! Early binding on the same workload: S/MIME-style sign-then-encrypt. At send time the sender
//! looks up each recipient's certificate (found with the workload's availability), validates
//! it, signs the body (SignedData) and encrypts it once in an AuthEnvelopedData with one
//! KeyTransRecipientInfo per recipient found, plus itself and, for inspected mail, its
//! organisation's gateway. Each recipient decrypts with the key of the certificate it holds
//! when it reads, then verifies the signature and the sender's certificate.
//!
//! No gatekeeper is involved, so the network faults between clients and gatekeepers do not
//! apply; mail transport is reliable in both schemes.

use std::collections::BTreeMap;
use std::time::Instant;

use ekg_core::UnixTime;
use ekg_core::crypto::pki::TrustAnchors;
use ekg_core::wire::oid;
use ekg_core::wire::signed;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use sha2::{Digest as _, Sha256};
use x509_cert::Certificate;

use crate::error::SimError;
use crate::invariants::{MessageFacts, Observer, Party};
use crate::metered::Role;
use crate::metrics::{Attribution, SchemeReport, Stats};
use crate::scenario::Scenario;
use crate::workload::Message;
use crate::workload::mail_copies;
use crate::world::World;
use crate::world::ops;

/// Largest early-binding envelope accepted by recipients.
const MAX_LEN: usize = 64 * 1024 * 1024;

/// Runs early binding over the workload.
pub fn run(
    sc: &Scenario,
    w: &World,
    msgs: &[Message],
    crypto_seed: u64,
    base: UnixTime,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(SchemeReport, [u8; 32]), SimError> {
    let started = Instant::now();
    let crypto_before = w.provider.crypto_secs();
    let ops_before = ops(w);
    let (private_before, public_before) = w.provider.totals();
    let mut rng = ChaCha20Rng::seed_from_u64(crypto_seed);
    let mut body_rng = ChaCha20Rng::seed_from_u64(crypto_seed ^ 0x5eed);
    let mut obs = Observer::new(ekg_core::ledger::ReleasePolicy::Once, 0);
    let mut rep = SchemeReport { scheme: "early".into(), messages: msgs.len() as u64, ..Default::default() };
    let mut trace = Sha256::new();
    let anchors: Vec<TrustAnchors> = (0..w.orgs.len()).map(|o| w.anchors(o)).collect::<Result<_, _>>()?;
    let compromised: BTreeMap<usize, u64> = sc
        .faults
        .compromised
        .iter()
        .filter_map(|c| {
            let a = ekg_core::EmailAddress::parse(&c.user).ok()?;
            w.by_address.get(&a).map(|u| (*u, c.at_secs * 1000))
        })
        .collect();
    let version_at = |user: usize, at_ms: u64| match w.users.get(user).and_then(|u| u.rotates_at_ms) {
        Some(t) if at_ms >= t => 1usize,
        _ => 0usize,
    };
    let entitled: Vec<bool> = w
        .users
        .iter()
        .map(|u| w.labels.as_ref().is_none_or(|(label, p)| crate::labels::holds(p, label, &u.address)))
        .collect();
    let holds = |u: usize| entitled.get(u).copied().unwrap_or(false);
    let mail = sc.network.mail_latency_ms;
    let mut read_latency = Vec::new();
    let totals = |rep: &SchemeReport| {
        let (private, public) = w.provider.totals();
        [rep.total_bytes(), private, public]
    };
    let mut cost = Attribution::new(msgs.len(), [0, private_before, public_before]);
    for (i, m) in msgs.iter().enumerate() {
        // What the previous message cost (each message is one iteration).
        cost.charge(i.checked_sub(1), totals(&rep));
        if i % 64 == 0 {
            progress(i as u64, msgs.len() as u64);
        }
        rep.events += 1;
        if m.labelled {
            // Early binding cannot withhold a labelled message from a recipient it was
            // encrypted to: every listed recipient counts, entitled or not.
            rep.labelled.messages += 1;
            for u in &m.recipients {
                *(if holds(*u) { &mut rep.labelled.pairs_entitled } else { &mut rep.labelled.pairs_unentitled }) += 1;
            }
        }
        let at = |ms: u64| base.plus_secs(ms / 1000);
        let sender = w.user(m.sender)?;
        let sender_org = sender.org;
        let sv =
            sender.versions.get(version_at(m.sender, m.submit_ms)).ok_or_else(|| SimError::Internal("v".into()))?;
        let facts = MessageFacts { id: m.id, sender: m.sender, sender_org, recipients: &m.recipients };
        let mut body = vec![0u8; m.size];
        body_rng.fill_bytes(&mut body);

        // Send: find and validate certificates, sign, encrypt once.
        w.provider.act_as(Role::Sender);
        let sanchors = anchors.get(sender_org).ok_or_else(|| SimError::Internal("anchors".into()))?;
        let mut to: Vec<Certificate> = Vec::new();
        let mut encrypted_for: Vec<Option<Result<usize, String>>> = Vec::with_capacity(m.recipients.len());
        for (r, user) in m.recipients.iter().enumerate() {
            if !m.cert_found.get(r).copied().unwrap_or(false) {
                encrypted_for.push(Some(Err("no_certificate_at_send".to_owned())));
                continue;
            }
            let u = w.user(*user)?;
            let v = version_at(*user, m.submit_ms);
            let cred = &u.versions.get(v).ok_or_else(|| SimError::Internal("v".into()))?.credential;
            match sanchors.validate(w.provider, cred.certificate(), cred.chain(), at(m.submit_ms)) {
                Ok(_) => {
                    to.push(cred.certificate().clone());
                    encrypted_for.push(Some(Ok(v)));
                }
                Err(e) => encrypted_for.push(Some(Err(format!("recipient_{}", e.code())))),
            }
        }
        let found = encrypted_for.iter().filter(|e| matches!(e, Some(Ok(_)))).count();
        if found < m.recipients.len() {
            rep.messages_not_encrypted_for_some += 1;
        }
        if found == 0 {
            rep.messages_not_encrypted += 1;
            for (r, e) in encrypted_for.iter().enumerate() {
                rep.pairs += 1;
                // A recipient who never reads loses nothing: counted as never read, as in
                // every other message and in late binding.
                if m.read_after_ms.get(r).copied().flatten().is_none() {
                    rep.pairs_never_read += 1;
                    continue;
                }
                rep.lose(e.as_ref().and_then(|x| x.as_ref().err()).map_or("not_encrypted", |s| s.as_str()));
            }
            trace.update(format!("{i} not encrypted\n").as_bytes());
            continue;
        }
        if found == m.recipients.len() {
            rep.messages_encrypted_for_all += 1;
        }
        to.push(sv.credential.certificate().clone());
        if m.gateway_fetch {
            // The gateway's certificate is the organisation's: add it as a recipient.
            to.push(gateway_certificate(w, sender_org)?);
        }
        let signed_body = signed::sign(w.provider, &sv.credential, oid::ID_DATA, &body, at(m.submit_ms), &mut rng)
            .map_err(SimError::core)?;
        let refs: Vec<&Certificate> = to.iter().collect();
        let der = crate::smime::seal_to_all(w.provider, &refs, oid::ID_SIGNED_DATA, &signed_body, &mut rng)
            .map_err(SimError::core)?;
        obs.learned(&facts, Party::Sender(m.sender));
        rep.add_bytes("envelope", der.len() * mail_copies(w, m));
        trace.update(format!("{i} sent {} to {}\n", der.len(), to.len()).as_bytes());

        // Read.
        for (r, user) in m.recipients.iter().enumerate() {
            rep.pairs += 1;
            let Some(after) = m.read_after_ms.get(r).copied().flatten() else {
                rep.pairs_never_read += 1;
                continue;
            };
            match encrypted_for.get(r).cloned().flatten() {
                Some(Ok(_)) => {}
                Some(Err(reason)) => {
                    rep.lose(&reason);
                    continue;
                }
                None => {
                    rep.lose("not_encrypted");
                    continue;
                }
            }
            let read_ms = m.submit_ms + mail + after;
            let u = w.user(*user)?;
            let v = u.versions.get(version_at(*user, read_ms)).ok_or_else(|| SimError::Internal("v".into()))?;
            w.provider.act_as(Role::Recipient);
            match open(w, &der, &v.credential, anchors.get(u.org), at(read_ms), &mut rng) {
                Ok(plain) if plain == body => {
                    rep.pairs_readable += 1;
                    if m.labelled {
                        let l = &mut rep.labelled;
                        *(if holds(*user) { &mut l.read_entitled } else { &mut l.read_unentitled }) += 1;
                    }
                    read_latency.push(0.0);
                    obs.learned(&facts, Party::Recipient(*user));
                }
                Ok(_) => obs.ledger_violation("client", format!("message {i}: plaintext differs")),
                Err(code) => {
                    let reason = match code {
                        "not_for_this_recipient" if u.reissued_at_ms.is_some() => "certificate_lost_before_read",
                        "not_for_this_recipient" => "key_rotated_before_read",
                        other => other,
                    };
                    rep.lose(reason);
                }
            }
        }
        // The sender organisation's gateway, the recipient organisations' gateways, the attacker.
        if m.gateway_fetch {
            w.provider.act_as(Role::SenderGateway);
            let cred = gateway_credential(w, sender_org)?;
            if open(w, &der, cred, anchors.get(sender_org), at(m.submit_ms + mail), &mut rng).is_ok() {
                obs.learned(&facts, Party::SenderGateway(sender_org));
            }
        }
        for o in &m.foreign_probes {
            rep.foreign_gateway_attempts += 1;
            w.provider.act_as(Role::RecipientGateway);
            let cred = gateway_credential(w, *o)?;
            if open(w, &der, cred, anchors.get(*o), at(m.submit_ms + mail), &mut rng).is_ok() {
                obs.learned(&facts, Party::RecipientGateway(*o));
            }
        }
        for (r, user) in m.recipients.iter().enumerate() {
            let Some(&stolen_at) = compromised.get(user) else { continue };
            let Some(Some(Ok(v_sent))) = encrypted_for.get(r) else { continue };
            // The attacker holds the key of the certificate in use when it was stolen, and
            // every message ever encrypted to that certificate, past or future.
            if version_at(*user, stolen_at) != *v_sent {
                continue;
            }
            let u = w.user(*user)?;
            let v = u.versions.get(*v_sent).ok_or_else(|| SimError::Internal("v".into()))?;
            w.provider.act_as(Role::Attacker);
            let when = at(stolen_at.max(m.submit_ms + mail));
            if open(w, &der, &v.credential, anchors.get(u.org), when, &mut rng).is_ok() {
                obs.learned(&facts, Party::Attacker { victim: *user });
            }
        }
    }
    cost.charge(msgs.len().checked_sub(1), totals(&rep));
    progress(msgs.len() as u64, msgs.len() as u64);
    rep.by_list_size = cost.by_list_size(msgs.iter().map(|m| m.recipients.len()));
    rep.exposed_submitted_ms = obs.exposed.iter().filter_map(|m| msgs.get(*m)).map(|m| m.submit_ms).collect();
    rep.exposed_submitted_ms.sort_unstable();
    rep.wall_secs = started.elapsed().as_secs_f64();
    rep.crypto_secs = w.provider.crypto_secs() - crypto_before;
    rep.set_ops(&ops_before, &ops(w));
    rep.virtual_secs = msgs.last().map_or(0.0, |m| m.submit_ms as f64 / 1000.0);
    rep.exposed_messages = obs.exposed.len() as u64;
    rep.violations = std::mem::take(&mut obs.violations);
    rep.checks = obs.checks;
    rep.read_latency_secs = Stats::of(read_latency);
    rep.finish(&BTreeMap::new());
    Ok((rep, trace.finalize().into()))
}

/// Decrypts, verifies the signature and the signer's certificate; the rejection code on
/// failure.
pub(crate) fn open(
    w: &World,
    der: &[u8],
    cred: &ekg_core::crypto::pki::Credential,
    anchors: Option<&TrustAnchors>,
    now: UnixTime,
    rng: &mut ChaCha20Rng,
) -> Result<Vec<u8>, &'static str> {
    let (ct, inner) = crate::smime::open_as_one_of(w.provider, der, cred, MAX_LEN, rng).map_err(|e| e.code())?;
    if ct != oid::ID_SIGNED_DATA {
        return Err("unexpected_content_type");
    }
    let s = signed::open(w.provider, &inner, oid::ID_DATA, MAX_LEN).map_err(|e| e.code())?;
    let anchors = anchors.ok_or("untrusted_certificate")?;
    anchors.validate(w.provider, &s.signer, &s.certificates, now).map_err(|e| e.code())?;
    Ok(s.content.to_vec())
}

fn gateway_credential(w: &World, org: usize) -> Result<&ekg_core::crypto::pki::Credential, SimError> {
    w.gateway_credentials.get(org).ok_or_else(|| SimError::Internal("gateway credential".into()))
}

fn gateway_certificate(w: &World, org: usize) -> Result<Certificate, SimError> {
    Ok(gateway_credential(w, org)?.certificate().clone())
}
