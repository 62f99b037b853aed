//! The list under late binding: the sender's gatekeeper releases once to the list, the core's
//! `ListAgent` re-issues at the list's gatekeeper, each member fetches there.

/// A protocol step inside a function answering `Result<Result<_, code>, SimError>`: a
/// refusal becomes the inner `Err` with its code (the outcome the report counts).
macro_rules! step {
    ($e:expr) => {
        match $e {
            Ok(x) => x,
            Err(e) => return Ok(Err(e.code().to_owned())),
        }
    };
}

use std::rc::Rc;

use ekg_core::ledger::{Concrete, MemoryStore};
use ekg_core::role::{Gatekeeper, ListAgent};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sha2::{Digest as _, Sha256};

use super::{ListScheme, RunOn, all_ops};
use crate::error::SimError;
use crate::metered::Role;
use crate::queue::Queue;

enum Ev {
    Post(usize),
    AtAgent(usize),
    Read { post: usize, member: usize },
}

/// A step refused by a party: the rejection code.
type Step<T> = Result<Result<T, String>, SimError>;

struct Late<'a, 'b> {
    on: &'b RunOn<'a>,
    agent: ListAgent,
    gks: Vec<Gatekeeper<MemoryStore<Concrete>>>,
    rng: ChaCha20Rng,
    rep: ListScheme,
    ops: crate::metered::OpCounts,
    sealed: Vec<Option<Rc<Vec<u8>>>>,
    expanded: Vec<Option<Rc<Vec<u8>>>>,
}

pub(super) fn run(on: &RunOn<'_>, seed: u64, trace: &mut Sha256) -> Result<ListScheme, SimError> {
    let w = on.w;
    let gks = (0..w.orgs.len()).map(|o| w.gatekeeper(o, on.sc, MemoryStore::new())).collect::<Result<_, _>>()?;
    let mut l = Late {
        on,
        agent: w.list_agent(on.delivered)?,
        gks,
        rng: ChaCha20Rng::seed_from_u64(seed),
        rep: ListScheme { scheme: "late".into(), ..ListScheme::default() },
        ops: all_ops(w),
        sealed: vec![None; on.posts.len()],
        expanded: vec![None; on.posts.len()],
    };
    let mut q = Queue::default();
    for (i, p) in on.posts.iter().enumerate() {
        q.at(p.submit_ms, Ev::Post(i));
    }
    let mail = on.sc.network.mail_latency_ms;
    while let Some((now_ms, ev)) = q.pop() {
        let line = match ev {
            Ev::Post(i) => match l.post(i, now_ms)? {
                Ok(len) => {
                    q.after(mail, Ev::AtAgent(i));
                    format!("post {i} sealed {len}")
                }
                Err(code) => {
                    l.rep.lose_post(on.post(i)?, &format!("send_refused:{code}"));
                    format!("post {i} refused {code}")
                }
            },
            Ev::AtAgent(i) => match l.expand(i, now_ms)? {
                Ok(len) => {
                    let post = on.post(i)?;
                    for (member, after) in post.read_after_ms.iter().enumerate() {
                        match after {
                            Some(d) => q.after(mail + d, Ev::Read { post: i, member }),
                            None => l.rep.never_read += 1,
                        }
                    }
                    format!("agent {i} expanded {len}")
                }
                Err(code) => {
                    l.rep.lose_post(on.post(i)?, &format!("list_agent:{code}"));
                    format!("agent {i} refused {code}")
                }
            },
            Ev::Read { post, member } => match l.read(post, member, now_ms)? {
                Ok(()) => format!("read {post} {member}"),
                Err(code) => {
                    l.rep.lose(&code);
                    format!("read {post} {member} {code}")
                }
            },
        };
        trace.update(now_ms.to_be_bytes());
        trace.update(line.as_bytes());
        trace.update(b"\n");
    }
    Ok(l.rep)
}

impl Late<'_, '_> {
    fn charge(&mut self, party: &str) {
        let mut ops = self.ops;
        self.rep.charge(self.on.w, party, &mut ops);
        self.ops = ops;
    }

    /// The sender asks its gatekeeper for a key for the list address alone and seals once.
    fn post(&mut self, i: usize, now_ms: u64) -> Step<usize> {
        let (on, w) = (self.on, self.on.w);
        let now = on.at(now_ms);
        let list = w.list.as_ref().ok_or_else(|| SimError::Internal("no list".into()))?;
        let post = on.post(i)?;
        let user = w.user(post.sender)?;
        let sender = &user.versions.first().ok_or_else(|| SimError::Internal("version".into()))?.sender;
        w.provider.act_as(Role::Sender);
        let pending =
            sender.request_key(std::slice::from_ref(&list.address), now, &mut self.rng).map_err(SimError::core)?;
        self.rep.sender_side_addresses.extend(pending.content.recipients.iter().map(ToString::to_string));
        self.rep.add_bytes("key_request", pending.der.len());
        self.charge("sender");
        w.provider.act_as(Role::Gatekeeper);
        let gk = self.gks.get_mut(user.org).ok_or_else(|| SimError::Internal("gatekeeper".into()))?;
        let issuance = match gk.handle_key_request(&pending.der, now, &mut self.rng) {
            Ok(x) => x,
            Err(e) => return Ok(Err(e.code().to_owned())),
        };
        self.charge("sender_gatekeeper");
        self.rep.sender_gatekeeper.issuances += 1;
        self.rep.add_bytes("grant", issuance.grant.len());
        self.rep.add_bytes("ticket", issuance.ticket.len());
        w.provider.act_as(Role::Sender);
        let key = match sender.accept_grant(&pending, &issuance.grant, &issuance.ticket, now, &mut self.rng) {
            Ok(k) => k,
            Err(e) => return Ok(Err(e.code().to_owned())),
        };
        let sealed = sender.seal(&key, &post.body(), &mut self.rng).map_err(SimError::core)?;
        self.charge("sender");
        // One copy to the list's domain, stored in the agent's mailbox.
        self.rep.add_bytes("sealed_message", sealed.len());
        self.rep.bytes_stored += sealed.len() as u64;
        let len = sealed.len();
        if let Some(slot) = self.sealed.get_mut(i) {
            *slot = Some(Rc::new(sealed));
        }
        Ok(Ok(len))
    }

    /// The agent: receive as the list, fetch K1 from the sender's gatekeeper, ask its own for
    /// K2 with the expansion history, re-address the content key.
    fn expand(&mut self, i: usize, now_ms: u64) -> Step<usize> {
        let (on, w) = (self.on, self.on.w);
        let now = on.at(now_ms);
        let list = w.list.as_ref().ok_or_else(|| SimError::Internal("no list".into()))?;
        let sealed = self.sealed.get(i).cloned().flatten().ok_or_else(|| SimError::Internal("sealed".into()))?;
        w.provider.act_as(Role::Recipient);
        let message = step!(self.agent.receive(&sealed, now));
        let pending = step!(self.agent.request_release(&message, now, &mut self.rng));
        self.rep.add_bytes("agent_release_request", pending.der.len());
        self.charge("list_agent");
        let org = w.org_by_uri(message.gatekeeper_uri()).ok_or_else(|| SimError::Internal("uri".into()))?;
        w.provider.act_as(Role::Gatekeeper);
        let gk = self.gks.get_mut(org).ok_or_else(|| SimError::Internal("gatekeeper".into()))?;
        let release = step!(gk.handle_release_request(&pending.der, now, &mut self.rng));
        self.charge("sender_gatekeeper");
        self.rep.sender_gatekeeper.releases += 1;
        self.rep.checks += 1;
        if release.served != [list.address.clone()] {
            self.rep.violation(
                "release_to_unlisted",
                format!("post {i}: the sender's gatekeeper served {:?}", release.served),
            );
        }
        self.rep.sender_side_addresses.extend(release.served.iter().map(ToString::to_string));
        self.rep.add_bytes("agent_release", release.der.len());
        w.provider.act_as(Role::Recipient);
        let k1 = step!(self.agent.accept_release(&message, &pending, &release.der, now, &mut self.rng));
        self.rep.agent_held_key += 1;
        let request = step!(self.agent.request_expansion(&message, now, &mut self.rng));
        self.rep.add_bytes("expansion_key_request", request.der.len());
        self.charge("list_agent");
        w.provider.act_as(Role::Gatekeeper);
        let gk = self.gks.get_mut(list.org).ok_or_else(|| SimError::Internal("gatekeeper".into()))?;
        let issuance = step!(gk.handle_key_request(&request.der, now, &mut self.rng));
        self.charge("list_gatekeeper");
        self.rep.list_gatekeeper.issuances += 1;
        self.rep.add_bytes("expansion_grant", issuance.grant.len());
        self.rep.add_bytes("expansion_ticket", issuance.ticket.len());
        w.provider.act_as(Role::Recipient);
        let send = step!(self.agent.accept_grant(&request, &issuance.grant, &issuance.ticket, now, &mut self.rng));
        let expanded = step!(self.agent.expand(&message, &k1, &send));
        drop((k1, send));
        self.charge("list_agent");
        self.rep.add_bytes("expanded_message", expanded.len() * on.copies());
        self.rep.bytes_stored += (expanded.len() * on.delivered.len()) as u64;
        let len = expanded.len();
        if let Some(slot) = self.expanded.get_mut(i) {
            *slot = Some(Rc::new(expanded));
        }
        Ok(Ok(len))
    }

    /// A member reads the expanded message: the key from the list's gatekeeper.
    fn read(&mut self, i: usize, member: usize, now_ms: u64) -> Step<()> {
        let (on, w) = (self.on, self.on.w);
        let now = on.at(now_ms);
        let user = *on.delivered.get(member).ok_or_else(|| SimError::Internal("member".into()))?;
        let expanded = self.expanded.get(i).cloned().flatten().ok_or_else(|| SimError::Internal("expanded".into()))?;
        let recipient = &w.user(user)?.versions.first().ok_or_else(|| SimError::Internal("version".into()))?.recipient;
        w.provider.act_as(Role::Recipient);
        let message = step!(recipient.receive(&expanded, now));
        let pending = step!(recipient.request_release(&message, now, &mut self.rng));
        self.rep.add_bytes("member_release_request", pending.der.len());
        self.charge("members");
        let org = w.org_by_uri(message.gatekeeper_uri()).ok_or_else(|| SimError::Internal("uri".into()))?;
        w.provider.act_as(Role::Gatekeeper);
        let gk = self.gks.get_mut(org).ok_or_else(|| SimError::Internal("gatekeeper".into()))?;
        let release = step!(gk.handle_release_request(&pending.der, now, &mut self.rng));
        self.charge("list_gatekeeper");
        self.rep.list_gatekeeper.releases += 1;
        self.rep.checks += 1;
        for a in &release.served {
            let member_address = on.members.iter().any(|m| w.user(*m).is_ok_and(|u| u.address == *a));
            if !member_address {
                self.rep.violation("release_to_non_member", format!("post {i}: the list's gatekeeper served {a}"));
            }
        }
        self.rep.add_bytes("member_release", release.der.len());
        w.provider.act_as(Role::Recipient);
        let key = step!(recipient.accept_release(&message, &pending, &release.der, now, &mut self.rng));
        let plain = step!(recipient.open(&message, &key));
        self.charge("members");
        on.read(&mut self.rep, i, user, &plain)?;
        Ok(Ok(()))
    }
}
