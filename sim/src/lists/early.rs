//! The list under early binding: RFC 2634 §4's mail list agent. The sender encrypts to the
//! list's certificate; the agent decrypts the content key, wraps it to each member's
//! certificate (the encrypted content kept byte for byte) and signs the result; each member
//! verifies the agent's signature, decrypts, and verifies the sender's.

use ekg_core::wire::oid;
use ekg_core::wire::signed;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sha2::{Digest as _, Sha256};
use x509_cert::Certificate;

use super::{ListScheme, MAX_LEN, RunOn, all_ops};
use crate::error::SimError;
use crate::metered::Role;

pub(super) fn run(on: &RunOn<'_>, seed: u64, trace: &mut Sha256) -> Result<ListScheme, SimError> {
    let w = on.w;
    let list = w.list.as_ref().ok_or_else(|| SimError::Internal("no list".into()))?;
    let list_credential = w.list_credential()?;
    let list_anchors = w.anchors(list.org)?;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut rep = ListScheme { scheme: "early".into(), ..ListScheme::default() };
    let mut ops = all_ops(w);
    let mail = on.sc.network.mail_latency_ms;
    for (i, post) in on.posts.iter().enumerate() {
        let sender = w.user(post.sender)?;
        let sv = sender.versions.first().ok_or_else(|| SimError::Internal("version".into()))?;
        let sent_at = on.at(post.submit_ms);
        // The sender: the list's certificate (validated as any recipient's), sign, encrypt once.
        w.provider.act_as(Role::Sender);
        let sender_anchors = w.anchors(sender.org)?;
        if let Err(e) =
            sender_anchors.validate(w.provider, list_credential.certificate(), list_credential.chain(), sent_at)
        {
            rep.charge(w, "sender", &mut ops);
            rep.lose_post(post, &format!("recipient_{}", e.code()));
            trace.update(format!("{i} list certificate refused\n").as_bytes());
            continue;
        }
        let body = post.body();
        let signed_body =
            signed::sign(w.provider, &sv.credential, oid::ID_DATA, &body, sent_at, &mut rng).map_err(SimError::core)?;
        let to = [list_credential.certificate(), sv.credential.certificate()];
        let envelope = crate::smime::seal_to_all(w.provider, &to, oid::ID_SIGNED_DATA, &signed_body, &mut rng)
            .map_err(SimError::core)?;
        rep.sender_side_addresses.insert(list.address.to_string());
        rep.charge(w, "sender", &mut ops);
        rep.add_bytes("envelope", envelope.len());
        rep.bytes_stored += envelope.len() as u64;

        // The agent: every member's certificate validated, the content key re-addressed.
        let at_agent = on.at(post.submit_ms + mail);
        w.provider.act_as(Role::Recipient);
        let mut certs: Vec<&Certificate> = Vec::with_capacity(on.delivered.len());
        let mut refused: Vec<Option<String>> = Vec::with_capacity(on.delivered.len());
        for u in on.delivered {
            let cred = &w.user(*u)?.versions.first().ok_or_else(|| SimError::Internal("version".into()))?.credential;
            match list_anchors.validate(w.provider, cred.certificate(), cred.chain(), at_agent) {
                Ok(_) => {
                    certs.push(cred.certificate());
                    refused.push(None);
                }
                Err(e) => refused.push(Some(format!("list_agent:recipient_{}", e.code()))),
            }
        }
        if certs.is_empty() {
            rep.charge(w, "list_agent", &mut ops);
            rep.lose_post(post, "list_agent:no_member_certificate");
            continue;
        }
        let readdressed = crate::smime::readdress(w.provider, &envelope, &list_credential, &certs, MAX_LEN, &mut rng)
            .map_err(SimError::core)?;
        rep.agent_held_key += 1;
        let expanded =
            signed::sign(w.provider, &list_credential, oid::ID_AUTH_ENVELOPED_DATA, &readdressed, at_agent, &mut rng)
                .map_err(SimError::core)?;
        rep.charge(w, "list_agent", &mut ops);
        rep.add_bytes("expanded_envelope", expanded.len() * on.copies());
        rep.bytes_stored += (expanded.len() * on.delivered.len()) as u64;
        trace.update(format!("{i} sent {} expanded {}\n", envelope.len(), expanded.len()).as_bytes());

        // The members.
        for (k, u) in on.delivered.iter().enumerate() {
            let Some(after) = post.read_after_ms.get(k).copied().flatten() else {
                rep.never_read += 1;
                continue;
            };
            if let Some(Some(reason)) = refused.get(k) {
                rep.lose(reason);
                continue;
            }
            let member = w.user(*u)?;
            let cred = &member.versions.first().ok_or_else(|| SimError::Internal("version".into()))?.credential;
            let anchors = w.anchors(member.org)?;
            let read_at = on.at(post.submit_ms + 2 * mail + after);
            w.provider.act_as(Role::Recipient);
            let opened = (|| -> Result<Vec<u8>, &'static str> {
                let outer =
                    signed::open(w.provider, &expanded, oid::ID_AUTH_ENVELOPED_DATA, MAX_LEN).map_err(|e| e.code())?;
                anchors.validate(w.provider, &outer.signer, &outer.certificates, read_at).map_err(|e| e.code())?;
                crate::early::open(w, &outer.content, cred, Some(&anchors), read_at, &mut rng)
            })();
            rep.charge(w, "members", &mut ops);
            match opened {
                Ok(plain) => on.read(&mut rep, i, *u, &plain)?,
                Err(code) => rep.lose(code),
            }
        }
    }
    Ok(rep)
}
