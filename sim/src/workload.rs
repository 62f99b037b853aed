//! The workload: every message with its sender, recipients, size, read times and the
//! early-binding certificate lookups, drawn once from the workload seed so that both schemes
//! see exactly the same mail.

use std::collections::BTreeSet;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::draw::Draw;
use crate::scenario::Scenario;
use crate::world::World;

/// One message.
#[derive(Clone, Debug)]
pub struct Message {
    /// Its index.
    pub id: usize,
    /// Submission time, virtual ms.
    pub submit_ms: u64,
    /// The sending user.
    pub sender: usize,
    /// The recipients (users, distinct, not the sender).
    pub recipients: Vec<usize>,
    /// Body size in bytes.
    pub size: usize,
    /// Per recipient: delay from delivery to reading, ms (`None`: never read).
    pub read_after_ms: Vec<Option<u64>>,
    /// Per recipient, early binding: whether the sender finds the certificate at send time.
    pub cert_found: Vec<bool>,
    /// Whether the sender organisation's gateway decrypts it.
    pub gateway_fetch: bool,
    /// Recipient organisations whose gateway tries to fetch the key.
    pub foreign_probes: Vec<usize>,
    /// Whether it carries the scenario's label (`[labels]`; only an entitled sender's).
    pub labelled: bool,
}

/// Draws the workload of `scenario` over `world`.
pub fn generate(scenario: &Scenario, world: &World, seed: u64) -> Vec<Message> {
    let w = &scenario.workload;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let senders: Vec<usize> = world.orgs.iter().filter(|o| o.sends).flat_map(|o| o.users.clone()).collect();
    // Labels come from a stream of their own: a scenario's other draws do not change with them.
    let mut label_rng = ChaCha20Rng::seed_from_u64(crate::draw::derive_seed(seed, "labels"));
    let mut t = 0.0f64;
    let mut out = Vec::with_capacity(w.messages);
    for id in 0..w.messages {
        t += rng.exp(1000.0 / w.rate_per_sec);
        let sender = senders.get(rng.below(senders.len() as u64) as usize).copied().unwrap_or(0);
        let sender_org = world.users.get(sender).map_or(0, |u| u.org);
        let count = rng.weighted(&w.recipients).unwrap_or(1);
        let own: Vec<usize> =
            world.orgs.get(sender_org).map(|o| o.users.clone().filter(|u| *u != sender).collect()).unwrap_or_default();
        let other: Vec<usize> =
            (0..world.users.len()).filter(|u| world.users.get(*u).is_some_and(|x| x.org != sender_org)).collect();
        let recipients = pick(&mut rng, count, own, other, w.cross_org_share);
        let size = rng.weighted(&w.sizes).unwrap_or(1024);
        let read_after_ms = recipients
            .iter()
            .map(|_| (!rng.chance(w.never_read_share)).then(|| rng.exp(w.read_delay_mean_secs * 1000.0) as u64))
            .collect();
        let cert_found = recipients.iter().map(|_| rng.unit() < w.cert_availability).collect();
        let gateway_fetch = rng.chance(w.gateway_fetch_share);
        let mut foreign_orgs: Vec<usize> =
            recipients.iter().filter_map(|r| world.users.get(*r).map(|u| u.org)).filter(|o| *o != sender_org).collect();
        foreign_orgs.sort_unstable();
        foreign_orgs.dedup();
        let foreign_probes = foreign_orgs.into_iter().filter(|_| rng.chance(w.foreign_gateway_probe_share)).collect();
        let labelled = match (&scenario.labels, &world.labels, world.users.get(sender)) {
            (Some(spec), Some((label, policy)), Some(u)) => {
                crate::labels::holds(policy, label, &u.address) && label_rng.chance(spec.share)
            }
            _ => false,
        };
        out.push(Message {
            id,
            submit_ms: t as u64,
            sender,
            recipients,
            size,
            read_after_ms,
            cert_found,
            gateway_fetch,
            foreign_probes,
            labelled,
        });
    }
    out
}

/// `count` distinct recipients: each from `other` with probability `cross`, else from
/// `own`; when one pool runs dry the other is used.
fn pick(rng: &mut ChaCha20Rng, count: usize, mut own: Vec<usize>, mut other: Vec<usize>, cross: f64) -> Vec<usize> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count && !(own.is_empty() && other.is_empty()) {
        let from_other = if own.is_empty() {
            true
        } else if other.is_empty() {
            false
        } else {
            rng.chance(cross)
        };
        let pool = if from_other { &mut other } else { &mut own };
        let i = rng.below(pool.len() as u64) as usize;
        if i < pool.len() {
            out.push(pool.swap_remove(i));
        }
    }
    out
}

/// Copies of a sealed message on the wire: one per recipient domain (SMTP sends one copy to
/// each destination domain).
pub fn mail_copies(w: &World, m: &Message) -> usize {
    let orgs: BTreeSet<usize> = m.recipients.iter().filter_map(|r| w.users.get(*r).map(|u| u.org)).collect();
    orgs.len().max(1)
}
