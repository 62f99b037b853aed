//! Mailing lists expanded where the list lives (`docs/protocol.md` §13, `docs/simulator.md`
//! §6), against early binding's mail list agent (RFC 2634 §4), on the same posts.
//!
//! The list is an address (`[list]`) whose organisation runs its agent, the core's
//! [`ListAgent`](ekg_core::role::ListAgent), with a certificate naming the list. Posts are
//! drawn like the workload's messages from a stream of their own, so the scenario's other
//! runs are unchanged by them. Both schemes run after the main runs, on fresh gatekeepers,
//! with the scenario's mail latency and no network faults (`[faults]` apply to the main runs).
//!
//! - **Late binding**: the sender lists the list address only; its gatekeeper releases once,
//!   to the list; the agent asks its own gatekeeper for a key for the members with the
//!   expansion history (V27) and re-addresses the content key (the content is not encrypted
//!   again); each member fetches from the list's gatekeeper.
//! - **Early binding**: the sender encrypts to the list's certificate (and its own); the
//!   agent decrypts the content key and wraps it to each member's certificate, the encrypted
//!   content kept byte for byte, and signs the result (RFC 2634 §4.2.3); each member verifies
//!   the agent's signature, decrypts and verifies the sender's.
//!
//! Checked on every read: only members hold a post's key (`unauthorised_holder` otherwise),
//! the sender's gatekeeper serves only the list address (`release_to_unlisted`), the list's
//! only the members (`release_to_non_member`), and every plaintext is what was sent.

mod early;
mod late;

use std::collections::{BTreeMap, BTreeSet};

use ekg_core::UnixTime;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::draw::{Draw, derive_seed};
use crate::error::SimError;
use crate::metered::{OpCounts, Role};
use crate::scenario::{Plant, Scenario};
use crate::world::World;

/// Largest envelope a member accepts.
const MAX_LEN: usize = 64 * 1024 * 1024;

/// One post to the list.
#[derive(Clone, Debug)]
pub struct Post {
    /// Submission time, virtual ms.
    pub submit_ms: u64,
    /// The sending user.
    pub sender: usize,
    /// Body size in bytes.
    pub size: usize,
    /// Per address the agent delivers to: delay from delivery to reading, ms (`None`: never).
    pub read_after_ms: Vec<Option<u64>>,
    /// Seed of the body's bytes.
    pub body_seed: u64,
}

impl Post {
    fn body(&self) -> Vec<u8> {
        let mut body = vec![0u8; self.size];
        ChaCha20Rng::seed_from_u64(self.body_seed).fill_bytes(&mut body);
        body
    }
}

/// Gatekeeper operations of one gatekeeper.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct GatekeeperOps {
    /// Keys issued.
    pub issuances: u64,
    /// Releases.
    pub releases: u64,
}

/// What one scheme did with the list's posts.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ListScheme {
    /// `late` or `early`.
    pub scheme: String,
    /// (post, member) pairs.
    pub pairs: u64,
    /// Pairs read.
    pub read: u64,
    /// Pairs never read (workload).
    pub never_read: u64,
    /// Pairs lost, by reason.
    pub lost: BTreeMap<String, u64>,
    /// Read share of the pairs whose member reads.
    pub read_share: f64,
    /// Bytes on the wire, by artifact (a message to several mailboxes of one domain is one copy).
    pub bytes: BTreeMap<String, u64>,
    /// Bytes stored in mailboxes: the agent's copy of each post and each member's copy.
    pub bytes_stored: u64,
    /// The sender's organisation's gatekeeper (late binding).
    pub sender_gatekeeper: GatekeeperOps,
    /// The list's organisation's gatekeeper (late binding).
    pub list_gatekeeper: GatekeeperOps,
    /// RSA operations by party: `sender`, `sender_gatekeeper`, `list_agent`,
    /// `list_gatekeeper`, `members`.
    pub ops: BTreeMap<String, OpCounts>,
    /// Posts whose content key the list agent held.
    pub agent_held_key: u64,
    /// (post, member) pairs whose member held the key.
    pub members_held_key: u64,
    /// Every address the sender's side saw: the sender's key requests and its gatekeeper's
    /// releases (late), the sender's recipient infos (early). Membership is private from the
    /// sender's organisation when this is the list address alone.
    pub sender_side_addresses: BTreeSet<String>,
    /// Invariant violations.
    pub violations: Vec<String>,
    /// Checks run.
    pub checks: u64,
}

impl ListScheme {
    fn add_bytes(&mut self, what: &str, by: usize) {
        *self.bytes.entry(what.to_owned()).or_default() += by as u64;
    }

    fn lose(&mut self, reason: &str) {
        *self.lost.entry(reason.to_owned()).or_default() += 1;
    }

    /// A post no member can read: each of its pairs lost for `reason` (or never read).
    fn lose_post(&mut self, post: &Post, reason: &str) {
        for r in &post.read_after_ms {
            match r {
                None => self.never_read += 1,
                Some(_) => self.lose(reason),
            }
        }
    }

    fn violation(&mut self, code: &str, detail: String) {
        self.violations.push(format!("{code}: {detail}"));
    }

    /// Charges the RSA operations made since `since` to `party`; `since` moves to now.
    fn charge(&mut self, w: &World, party: &str, since: &mut OpCounts) {
        let now = all_ops(w);
        let e = self.ops.entry(party.to_owned()).or_default();
        e.sign += now.sign - since.sign;
        e.decrypt += now.decrypt - since.decrypt;
        e.verify += now.verify - since.verify;
        e.encrypt += now.encrypt - since.encrypt;
        *since = now;
    }

    fn finish(&mut self, posts: usize, delivered: usize) {
        self.pairs = (posts * delivered) as u64;
        let readers = self.pairs - self.never_read;
        self.read_share = if readers == 0 { 1.0 } else { self.read as f64 / readers as f64 };
    }

    /// Bytes on the wire, every artifact.
    pub fn total_bytes(&self) -> u64 {
        self.bytes.values().sum()
    }
}

/// The list comparison of one run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ListReport {
    /// The list's address.
    pub list: String,
    /// Its members.
    pub members: usize,
    /// Addresses the agent delivers to (the members, unless a fault is planted).
    pub delivered: usize,
    /// Posts.
    pub posts: u64,
    /// Late binding: the list agent and the list's gatekeeper.
    pub late: ListScheme,
    /// Early binding: RFC 2634's mail list agent.
    pub early: ListScheme,
    /// SHA-256 over both schemes' events (times, outcomes, sizes).
    pub trace_hash: String,
    /// Wall time, seconds (not in the run's `wall_secs`).
    pub wall_secs: f64,
}

/// RSA operations so far, every role.
fn all_ops(w: &World) -> OpCounts {
    Role::ALL.iter().map(|r| w.provider.counts(*r)).fold(OpCounts::default(), |a, c| OpCounts {
        sign: a.sign + c.sign,
        decrypt: a.decrypt + c.decrypt,
        verify: a.verify + c.verify,
        encrypt: a.encrypt + c.encrypt,
    })
}

/// Draws the posts: Poisson arrivals at the workload's rate, senders from the sending
/// organisations, the workload's sizes and reading.
pub fn posts(sc: &Scenario, w: &World, delivered: usize, seed: u64) -> Vec<Post> {
    let (Some(l), wl) = (&sc.list, &sc.workload) else { return Vec::new() };
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let senders: Vec<usize> = w.orgs.iter().filter(|o| o.sends).flat_map(|o| o.users.clone()).collect();
    let mut t = 0.0f64;
    (0..l.posts)
        .map(|p| {
            t += rng.exp(1000.0 / wl.rate_per_sec);
            let sender = senders.get(rng.below(senders.len() as u64) as usize).copied().unwrap_or(0);
            let size = rng.weighted(&wl.sizes).unwrap_or(1024);
            let read_after_ms = (0..delivered)
                .map(|_| (!rng.chance(wl.never_read_share)).then(|| rng.exp(wl.read_delay_mean_secs * 1000.0) as u64))
                .collect();
            Post {
                submit_ms: t as u64,
                sender,
                size,
                read_after_ms,
                body_seed: derive_seed(seed, &format!("body/{p}")),
            }
        })
        .collect()
}

/// Runs both schemes over the list's posts.
pub fn run(
    sc: &Scenario,
    w: &World,
    workload_seed: u64,
    late_seed: u64,
    early_seed: u64,
    base: UnixTime,
) -> Result<Option<ListReport>, SimError> {
    let Some(list) = &w.list else { return Ok(None) };
    let started = std::time::Instant::now();
    let members: BTreeSet<usize> = list.members.iter().copied().collect();
    // The addresses the agent expands to: the members, or with a planted outsider (the first
    // user who is not a member, of any organisation).
    let mut delivered = list.members.clone();
    if sc.plant == Plant::ListAgentAddsNonMember {
        let outsider =
            (0..w.users.len()).find(|u| !members.contains(u) && w.users.get(*u).is_some_and(|x| x.org == list.org));
        delivered.extend(outsider.or_else(|| (0..w.users.len()).find(|u| !members.contains(u))));
    }
    let posts = posts(sc, w, delivered.len(), derive_seed(workload_seed, "list"));
    let mut trace = Sha256::new();
    let run = RunOn { sc, w, posts: &posts, delivered: &delivered, members: &members, base };
    let mut late = late::run(&run, derive_seed(late_seed, "list"), &mut trace)?;
    late.finish(posts.len(), delivered.len());
    let mut early = early::run(&run, derive_seed(early_seed, "list"), &mut trace)?;
    early.finish(posts.len(), delivered.len());
    Ok(Some(ListReport {
        list: list.address.to_string(),
        members: members.len(),
        delivered: delivered.len(),
        posts: posts.len() as u64,
        late,
        early,
        trace_hash: hex::encode(trace.finalize()),
        wall_secs: started.elapsed().as_secs_f64(),
    }))
}

/// What both schemes run on.
struct RunOn<'a> {
    sc: &'a Scenario,
    w: &'a World,
    posts: &'a [Post],
    /// Users the agent delivers to.
    delivered: &'a [usize],
    /// The list's members (the truth the checks hold the agent to).
    members: &'a BTreeSet<usize>,
    base: UnixTime,
}

impl RunOn<'_> {
    fn post(&self, i: usize) -> Result<&Post, SimError> {
        self.posts.get(i).ok_or_else(|| SimError::Internal("post".into()))
    }

    fn at(&self, ms: u64) -> UnixTime {
        self.base.plus_secs(ms / 1000)
    }

    /// Copies of a message to the delivered addresses on the wire: one per domain.
    fn copies(&self) -> usize {
        let orgs: BTreeSet<usize> = self.delivered.iter().filter_map(|u| self.w.users.get(*u).map(|x| x.org)).collect();
        orgs.len().max(1)
    }

    /// A member read post `i`'s plaintext `plain`: checks who and what.
    fn read(&self, rep: &mut ListScheme, i: usize, user: usize, plain: &[u8]) -> Result<(), SimError> {
        rep.checks += 1;
        let sent: [u8; 32] = Sha256::digest(self.post(i)?.body()).into();
        let got: [u8; 32] = Sha256::digest(plain).into();
        if sent != got {
            rep.violation("plaintext_differs", format!("post {i}, user {user}"));
            return Ok(());
        }
        if self.members.contains(&user) {
            rep.read += 1;
            rep.members_held_key += 1;
        } else {
            rep.violation("unauthorised_holder", format!("post {i}: user {user}, not a member, holds its key"));
        }
        Ok(())
    }
}

/// The report's lines for the list (appended to `report.txt`).
pub fn text(r: &ListReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let (l, e) = (&r.late, &r.early);
    let per = |x: u64| x as f64 / (r.posts.max(1) * r.delivered.max(1) as u64) as f64;
    let _ = writeln!(
        s,
        "mailing list {}: {} members, {} posts (expanded where the list lives)",
        r.list, r.members, r.posts
    );
    let _ = writeln!(s, "{:<46} {:>16} {:>16}", "", "late (agent+EKG)", "early (MLA)");
    let row = |s: &mut String, name: &str, a: String, b: String| {
        let _ = writeln!(s, "{name:<46} {a:>16} {b:>16}");
    };
    row(&mut s, "(post, member) pairs", l.pairs.to_string(), e.pairs.to_string());
    row(
        &mut s,
        "  read / never opened",
        format!("{} / {}", l.read, l.never_read),
        format!("{} / {}", e.read, e.never_read),
    );
    let lost = |x: &ListScheme| x.lost.values().sum::<u64>().to_string();
    row(&mut s, "  lost", lost(l), lost(e));
    row(
        &mut s,
        "read share of the pairs opened",
        format!("{:.2} %", l.read_share * 100.0),
        format!("{:.2} %", e.read_share * 100.0),
    );
    row(
        &mut s,
        "bytes on the wire per post",
        format!("{:.0}", l.total_bytes() as f64 / r.posts.max(1) as f64),
        format!("{:.0}", e.total_bytes() as f64 / r.posts.max(1) as f64),
    );
    row(&mut s, "  per member", format!("{:.0}", per(l.total_bytes())), format!("{:.0}", per(e.total_bytes())));
    row(
        &mut s,
        "bytes stored in mailboxes per post",
        format!("{:.0}", l.bytes_stored as f64 / r.posts.max(1) as f64),
        format!("{:.0}", e.bytes_stored as f64 / r.posts.max(1) as f64),
    );
    let gk = |g: &GatekeeperOps| format!("{} / {}", g.issuances, g.releases);
    row(&mut s, "sender's gatekeeper issuances / releases", gk(&l.sender_gatekeeper), "n/a".into());
    row(&mut s, "list's gatekeeper issuances / releases", gk(&l.list_gatekeeper), "n/a".into());
    let _ = writeln!(s, "RSA operations per post, private / public (sign+decrypt / verify+encrypt):");
    for party in ["sender", "sender_gatekeeper", "list_agent", "list_gatekeeper", "members"] {
        let f = |x: &ListScheme| match x.ops.get(party) {
            None if x.scheme == "early" && party.ends_with("gatekeeper") => "n/a".to_owned(),
            o => {
                let o = o.copied().unwrap_or_default();
                format!(
                    "{:.1} / {:.1}",
                    o.private() as f64 / r.posts.max(1) as f64,
                    o.public() as f64 / r.posts.max(1) as f64
                )
            }
        };
        row(&mut s, &format!("  {party}"), f(l), f(e));
    }
    let m = |x: &ListScheme| {
        let o = x.ops.get("members").copied().unwrap_or_default();
        let reads = x.read.max(1) as f64;
        format!("{:.2} / {:.2}", o.sign as f64 / reads, o.decrypt as f64 / reads)
    };
    row(&mut s, "signatures / decryptions per member read", m(l), m(e));
    row(&mut s, "posts whose key the agent held", l.agent_held_key.to_string(), e.agent_held_key.to_string());
    let seen = |x: &ListScheme| x.sender_side_addresses.iter().cloned().collect::<Vec<_>>().join(" ");
    row(&mut s, "addresses the sender's side saw", seen(l), seen(e));
    row(
        &mut s,
        "checks / violations",
        format!("{} / {}", l.checks, l.violations.len()),
        format!("{} / {}", e.checks, e.violations.len()),
    );
    for x in [l, e] {
        if !x.lost.is_empty() {
            let lost: Vec<String> = x.lost.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(s, "{} list, pairs lost by reason: {}", x.scheme, lost.join(", "));
        }
        for v in x.violations.iter().take(10) {
            let _ = writeln!(s, "{} list VIOLATION {v}", x.scheme);
        }
    }
    let _ = writeln!(s, "list trace {} ({:.2} s)", r.trace_hash, r.wall_secs);
    s
}
