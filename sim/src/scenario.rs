//! Scenario files (TOML in `fixtures/scenarios/`, every field documented in `docs/simulator.md`);
//! unknown fields are refused, so a typo cannot silently fall back to a default.

pub mod compromise;

use ekg_core::ledger::ReleasePolicy;
use ekg_core::role::GatekeeperSettings;
use serde::{Deserialize, Serialize};

use crate::error::SimError;

/// A whole scenario: organisations, workload, network, faults and gatekeeper settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name (file stem).
    pub name: String,
    /// What the scenario shows.
    #[serde(default)]
    pub description: String,
    /// The one seed every random choice derives from (overridable on the command line).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Crypto provider: `aws-lc-rs` (default when built) or `rustcrypto`.
    #[serde(default = "default_provider")]
    pub provider: String,
    /// The organisations.
    #[serde(rename = "org")]
    pub orgs: Vec<OrgSpec>,
    /// The mail workload.
    pub workload: Workload,
    /// Client to gatekeeper network.
    #[serde(default)]
    pub network: Network,
    /// Faults during the fault phase.
    #[serde(default)]
    pub faults: Faults,
    /// Gatekeeper settings (every organisation's): the core's one form. An absent section is
    /// [`simulated_gatekeeper`]; a field left out of a written one takes the core's default.
    #[serde(default = "simulated_gatekeeper")]
    pub gatekeeper: GatekeeperSettings,
    /// What the report leads with, and the extra runs its plots need.
    #[serde(default)]
    pub report: ReportSpec,
    /// The compromise analysis (issue 27): what each stolen secret exposes, day by day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compromise: Option<compromise::CompromiseSpec>,
    /// A mailing list expanded where it lives (`docs/simulator.md` §6), run beside the workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<ListSpec>,
    /// Labelled traffic (`docs/simulator.md` §7): a share of messages carries a label whose
    /// policy some recipients do not satisfy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<LabelSpec>,
    /// A deliberate bug, for testing the checkers only.
    #[serde(default)]
    pub plant: Plant,
}

/// The report of a scenario: its headline (the figure and plot it leads with) and, for the
/// availability headline, the certificate availabilities early binding is run again at.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSpec {
    /// The headline.
    #[serde(default)]
    pub headline: Headline,
    /// Early binding run again on the same workload at each of these shares of recipient
    /// certificates found at send time (at most [`MAX_SWEEP`] values within 0..=1); the
    /// workload draws every other choice the same whatever the share.
    #[serde(default)]
    pub cert_availability_sweep: Vec<f64>,
}

/// What a scenario's report leads with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Headline {
    /// What happened to each (message, recipient) pair: read, lost and why, never read.
    #[default]
    Readable,
    /// Send and read latency over time, against the faults (outages, crashes, loss).
    Latency,
    /// Messages a stolen recipient key exposes under each scheme (needs `faults.compromised`).
    Exposure,
    /// Readable share against certificate availability (needs `cert_availability_sweep`).
    Availability,
    /// Bytes and RSA operations per message against the number of recipients.
    ListSize,
    /// Keys held by the gatekeepers over time.
    KeysHeld,
}

/// Most certificate availabilities in a sweep (each is one more early-binding run).
pub const MAX_SWEEP: usize = 11;

/// One organisation.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OrgSpec {
    /// Its mail domain.
    pub domain: String,
    /// Number of users (`u0@domain`, `u1@domain`, ...).
    pub users: usize,
    /// Domains whose CA this organisation trusts besides its own (its federation list).
    #[serde(default)]
    pub trusts: Vec<String>,
    /// Whether its users send mail (an organisation may only receive).
    #[serde(default = "yes")]
    pub sends: bool,
}

/// The workload: who sends what to whom, and when recipients read.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Number of messages.
    pub messages: usize,
    /// Mean submission rate (Poisson arrivals), messages per virtual second.
    pub rate_per_sec: f64,
    /// Recipients per message: `[count, weight]` pairs.
    pub recipients: Vec<(usize, u32)>,
    /// Share of recipients drawn from other organisations.
    #[serde(default = "half")]
    pub cross_org_share: f64,
    /// Message sizes in bytes: `[size, weight]` pairs.
    #[serde(default = "default_sizes")]
    pub sizes: Vec<(usize, u32)>,
    /// Early binding: share of recipients whose certificate the sender finds at send time.
    #[serde(default = "one")]
    pub cert_availability: f64,
    /// Mean delay between delivery and reading (exponential), virtual seconds.
    #[serde(default = "default_read_delay")]
    pub read_delay_mean_secs: f64,
    /// Share of (message, recipient) pairs never read.
    #[serde(default)]
    pub never_read_share: f64,
    /// Share of messages the sender organisation's gateway decrypts (outbound inspection).
    #[serde(default)]
    pub gateway_fetch_share: f64,
    /// Share of cross-organisation messages whose recipient organisation's gateway tries to
    /// fetch the key (it must be refused).
    #[serde(default)]
    pub foreign_gateway_probe_share: f64,
}

/// Latencies and retry timing between clients and gatekeepers.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// One-way latency to the own organisation's gatekeeper, ms.
    pub latency_ms: u64,
    /// One-way latency to another organisation's gatekeeper, ms.
    pub cross_org_latency_ms: u64,
    /// Mail transport delay (reliable, store and forward), ms.
    pub mail_latency_ms: u64,
    /// A client retries when no answer came within this, ms (doubling up to `max_backoff_ms`).
    pub timeout_ms: u64,
    /// Largest retry interval, ms.
    pub max_backoff_ms: u64,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            latency_ms: 20,
            cross_org_latency_ms: 80,
            mail_latency_ms: 2_000,
            timeout_ms: 5_000,
            max_backoff_ms: 120_000,
        }
    }
}

/// Faults. Loss, duplication, outages and crashes happen in the fault phase only; after it
/// the network heals and every owed key must be delivered.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// End of the fault phase, virtual seconds (default: when the last message is submitted).
    #[serde(default)]
    pub until_secs: Option<u64>,
    /// Probability that a client-gatekeeper message (either way) is lost.
    #[serde(default)]
    pub loss: f64,
    /// Probability that a client-gatekeeper message is delivered twice.
    #[serde(default)]
    pub duplication: f64,
    /// Gatekeeper outages (unreachable; state kept).
    #[serde(default)]
    pub outages: Vec<Outage>,
    /// Gatekeeper crashes: the request being handled loses its answer, memory is lost, the
    /// ledger is recovered from the durable store at restart.
    #[serde(default)]
    pub crashes: Vec<Crash>,
    /// Share of users whose certificate is replaced (new key, old key discarded) during the
    /// fault phase.
    #[serde(default)]
    pub rotate_share: f64,
    /// Share of the other users who lose their key and certificate during the fault phase and
    /// get a new certificate `reissue_after_secs` later.
    #[serde(default)]
    pub lose_share: f64,
    /// Time to reissue a lost certificate, seconds.
    #[serde(default = "default_reissue")]
    pub reissue_after_secs: u64,
    /// Recipients whose private key (and certificate) the attacker obtains, and when.
    #[serde(default)]
    pub compromised: Vec<Compromise>,
}

/// An outage of one organisation's gatekeeper.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    /// The organisation.
    pub org: String,
    /// Start, virtual seconds.
    pub at_secs: u64,
    /// Length, virtual seconds.
    pub for_secs: u64,
}

/// A crash of one organisation's gatekeeper.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Crash {
    /// The organisation.
    pub org: String,
    /// When, virtual seconds.
    pub at_secs: u64,
    /// Down for, virtual seconds.
    pub restart_after_secs: u64,
}

/// A recipient key compromise.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Compromise {
    /// The victim's address.
    pub user: String,
    /// When the attacker gets the key, virtual seconds.
    pub at_secs: u64,
}

/// A mailing list: the address `<name>@<org>`, whose organisation runs its list agent (the
/// core's `ListAgent`), and the posts sent to it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListSpec {
    /// The list's local part.
    pub name: String,
    /// The organisation hosting the list: its agent and its gatekeeper.
    pub org: String,
    /// Members: the first `members` users of `members_org`.
    pub members: usize,
    /// The members' organisation (default: the list's).
    #[serde(default)]
    pub members_org: Option<String>,
    /// Posts to the list, drawn like the workload's messages (rate, senders, sizes, reading)
    /// from a stream of their own: the workload itself is unchanged.
    pub posts: usize,
}

/// Labelled traffic: one label, the certificate fact that grants it, and the share of
/// messages from entitled senders that carry it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSpec {
    /// The attribute-value URI (`docs/protocol.md` §12.1); its attribute is defined `all_of`.
    pub label: String,
    /// Organisations whose users hold it: a subject mapping on the certificate's address domain.
    pub entitled: Vec<String>,
    /// Share of the messages of entitled senders that carry the label.
    pub share: f64,
}

/// The gatekeeper settings of a scenario without a `[gatekeeper]` section: the core's
/// defaults ([`GatekeeperSettings::default`]) except where the simulator deliberately differs:
/// `same_certificate` (recommended by the model checker; `once` is the seed's, run by
/// `seed-policy`), 10 minutes of retention and 8 deliveries (so that re-delivery after a lost
/// response is exercised), and 2-day tickets (so that expiry falls within a run of days).
pub fn simulated_gatekeeper() -> GatekeeperSettings {
    GatekeeperSettings {
        policy: ReleasePolicy::SameCertificate,
        retention_secs: 600,
        max_deliveries: 8,
        ticket_lifetime_secs: 2 * 24 * 3600,
        ..GatekeeperSettings::default()
    }
}

/// A deliberate defect, to show that the checkers catch it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Plant {
    /// None (every shipped scenario).
    #[default]
    None,
    /// The recipient organisation's gateway is handed every key its users fetch (a
    /// correctness failure: an unauthorised party holds a key).
    LeakToForeignGateway,
    /// Gatekeeper storage is volatile: a crash forgets every key (a liveness failure).
    VolatileStore,
    /// The compromise analysis ignores storage-key epochs: one storage key for ever.
    EpochsIgnored,
    /// The compromise analysis' recipients do not consult the issuance log.
    LogNotConsulted,
    /// The list agent expands to one user who is not a member of the list.
    ListAgentAddsNonMember,
    /// Senders leave the label off labelled messages: the gatekeeper cannot withhold them.
    LabelsDropped,
}

/// Bounds that keep a run within memory and time (a typo must not ask for a billion keys).
const MAX_USERS: usize = 10_000;
const MAX_ORGS: usize = 100;
const MAX_MESSAGES: usize = 1_000_000;
const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;
/// Most bytes of message bodies a run may seal, as messages x the largest size. Each body is
/// made when its message is sealed and dropped at once (its SHA-256 is kept to check what
/// recipients read); the sealed copies stay for late fetches, so this bounds the run's memory.
const MAX_WORKLOAD_BYTES: u128 = 4 * 1024 * 1024 * 1024;
/// Longest span of any time in a scenario, and of the workload itself: one year.
const MAX_SPAN_SECS: u64 = 365 * 24 * 3600;
/// Largest scenario file read, in bytes.
pub const MAX_SCENARIO_FILE_LEN: u64 = 1024 * 1024;
/// Most entries in any list of a scenario (weights, outages, crashes, compromises).
const MAX_LIST: usize = 1000;

fn default_seed() -> u64 {
    1
}
fn default_provider() -> String {
    if cfg!(feature = "aws-lc") { "aws-lc-rs".into() } else { "rustcrypto".into() }
}
fn default_reissue() -> u64 {
    3600
}
fn yes() -> bool {
    true
}
fn half() -> f64 {
    0.5
}
fn one() -> f64 {
    1.0
}
fn default_read_delay() -> f64 {
    600.0
}
fn default_sizes() -> Vec<(usize, u32)> {
    vec![(4 * 1024, 70), (64 * 1024, 25), (1024 * 1024, 5)]
}

impl Scenario {
    /// Parses and checks a scenario.
    pub fn from_toml(text: &str) -> Result<Scenario, SimError> {
        let s: Scenario = toml::from_str(text).map_err(|e| SimError::Scenario(e.to_string()))?;
        s.check()?;
        Ok(s)
    }

    /// Refuses what cannot be simulated.
    pub fn check(&self) -> Result<(), SimError> {
        let bad = |m: String| Err(SimError::Scenario(m));
        // The name becomes a directory under --out: one path component, nothing else.
        let name_ok = (1..=64).contains(&self.name.len())
            && !self.name.starts_with('.')
            && self.name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !name_ok {
            return bad(format!("name {:?}: 1 to 64 of A-Z a-z 0-9 - _ . (not starting with a dot)", self.name));
        }
        if self.orgs.is_empty() || self.orgs.iter().all(|o| !o.sends) {
            return bad("at least one organisation must send".into());
        }
        if self.orgs.len() > MAX_ORGS {
            return bad(format!("at most {MAX_ORGS} organisations"));
        }
        for o in &self.orgs {
            // An LDH domain (it is written into certificates as IA5 text).
            let labels_ok = o.domain.len() <= 200
                && o.domain.split('.').all(|l| {
                    (1..=63).contains(&l.len())
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                });
            if !labels_ok {
                return bad(format!(
                    "domain {:?}: ASCII letters, digits and hyphens in dot-separated labels",
                    o.domain
                ));
            }
            if self.orgs.iter().filter(|x| x.domain.eq_ignore_ascii_case(&o.domain)).count() > 1 {
                return bad(format!("domain {} named twice", o.domain));
            }
            if o.users == 0 || o.users > MAX_USERS {
                return bad(format!("{}: 1 to {MAX_USERS} users (each needs an RSA key)", o.domain));
            }
            for t in &o.trusts {
                if !self.orgs.iter().any(|x| &x.domain == t) {
                    return bad(format!("{} trusts unknown organisation {t}", o.domain));
                }
            }
        }
        let total_users: usize = self.orgs.iter().map(|o| o.users).sum();
        if total_users > MAX_USERS {
            return bad(format!("{total_users} users in all: at most {MAX_USERS} (each needs an RSA key)"));
        }
        let w = &self.workload;
        if w.messages == 0 || w.messages > MAX_MESSAGES || !w.rate_per_sec.is_finite() || w.rate_per_sec <= 0.0 {
            return bad(format!("workload needs 1 to {MAX_MESSAGES} messages and a positive rate"));
        }
        // The mean span of the workload, messages / rate, within a year.
        if w.messages as f64 / w.rate_per_sec > MAX_SPAN_SECS as f64 {
            return bad(format!("workload.rate_per_sec: {} messages must be sent within a year", w.messages));
        }
        if w.sizes.iter().any(|(size, _)| *size > MAX_MESSAGE_SIZE) {
            return bad(format!("message sizes are at most {MAX_MESSAGE_SIZE} bytes"));
        }
        let largest = w.sizes.iter().map(|(size, _)| *size as u128).max().unwrap_or(0);
        if largest * w.messages as u128 > MAX_WORKLOAD_BYTES {
            return bad("workload: messages x largest size must be at most 4 GiB".into());
        }
        if let Some(c) = &self.compromise {
            c.check()?;
        }
        for (name, len) in [
            ("workload.recipients", w.recipients.len()),
            ("workload.sizes", w.sizes.len()),
            ("faults.outages", self.faults.outages.len()),
            ("faults.crashes", self.faults.crashes.len()),
            ("faults.compromised", self.faults.compromised.len()),
        ] {
            if len > MAX_LIST {
                return bad(format!("{name}: at most {MAX_LIST} entries"));
            }
        }
        self.check_list()?;
        self.check_labels()?;
        let f = &self.faults;
        let mut spans: Vec<(&str, u64)> = vec![
            ("faults.until_secs", f.until_secs.unwrap_or(0)),
            ("faults.reissue_after_secs", f.reissue_after_secs),
            ("gatekeeper.retention_secs", self.gatekeeper.retention_secs),
            ("gatekeeper.ticket_lifetime_secs", self.gatekeeper.ticket_lifetime_secs),
            ("network.latency_ms", self.network.latency_ms / 1000),
            ("network.cross_org_latency_ms", self.network.cross_org_latency_ms / 1000),
            ("network.mail_latency_ms", self.network.mail_latency_ms / 1000),
            ("network.timeout_ms", self.network.timeout_ms / 1000),
            ("network.max_backoff_ms", self.network.max_backoff_ms / 1000),
        ];
        spans.extend(
            f.outages
                .iter()
                .flat_map(|o| [("faults.outages.at_secs", o.at_secs), ("faults.outages.for_secs", o.for_secs)]),
        );
        spans.extend(f.crashes.iter().flat_map(|c| {
            [("faults.crashes.at_secs", c.at_secs), ("faults.crashes.restart_after_secs", c.restart_after_secs)]
        }));
        spans.extend(f.compromised.iter().map(|c| ("faults.compromised.at_secs", c.at_secs)));
        if let Some((name, _)) = spans.iter().find(|(_, v)| *v > MAX_SPAN_SECS) {
            return bad(format!("{name}: at most a year ({MAX_SPAN_SECS} s)"));
        }
        if !(w.read_delay_mean_secs >= 0.0 && w.read_delay_mean_secs <= 365.0 * 86_400.0) {
            return bad("read_delay_mean_secs must be within 0 to a year".into());
        }
        if w.recipients.is_empty() || w.recipients.iter().all(|(_, wt)| *wt == 0) {
            return bad("workload.recipients needs a positive weight".into());
        }
        if let Some((n, _)) = w.recipients.iter().find(|(n, _)| *n == 0 || *n >= total_users || *n > 1000) {
            return bad(format!("{n} recipients: must be 1..=1000 and fewer than the {total_users} users"));
        }
        if w.sizes.is_empty() || w.sizes.iter().all(|(_, wt)| *wt == 0) {
            return bad("workload.sizes needs a positive weight".into());
        }
        for (name, v) in [
            ("cross_org_share", w.cross_org_share),
            ("cert_availability", w.cert_availability),
            ("never_read_share", w.never_read_share),
            ("gateway_fetch_share", w.gateway_fetch_share),
            ("foreign_gateway_probe_share", w.foreign_gateway_probe_share),
            ("faults.loss", self.faults.loss),
            ("faults.duplication", self.faults.duplication),
            ("faults.rotate_share", self.faults.rotate_share),
            ("faults.lose_share", self.faults.lose_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(format!("{name} must be within 0..=1"));
            }
        }
        if self.faults.loss >= 0.9 {
            return bad("faults.loss must be below 0.9".into());
        }
        for name in self.faults.outages.iter().map(|o| &o.org).chain(self.faults.crashes.iter().map(|c| &c.org)) {
            if !self.orgs.iter().any(|o| &o.domain == name) {
                return bad(format!("fault names unknown organisation {name}"));
            }
        }
        let r = &self.report;
        if r.cert_availability_sweep.len() > MAX_SWEEP
            || r.cert_availability_sweep.iter().any(|a| !(0.0..=1.0).contains(a))
        {
            return bad(format!("report.cert_availability_sweep: at most {MAX_SWEEP} shares within 0..=1"));
        }
        match r.headline {
            Headline::Availability if r.cert_availability_sweep.len() < 2 => {
                return bad(
                    "report.headline = \"availability\" needs two or more cert_availability_sweep values".into()
                );
            }
            Headline::Exposure if self.faults.compromised.is_empty() => {
                return bad("report.headline = \"exposure\" needs faults.compromised".into());
            }
            Headline::ListSize if w.recipients.iter().filter(|(_, wt)| *wt > 0).count() < 2 => {
                return bad("report.headline = \"list_size\" needs two or more recipient counts".into());
            }
            _ => {}
        }
        if self.network.timeout_ms == 0 {
            return bad("timeout_ms must be positive".into());
        }
        if !matches!(self.provider.as_str(), "rustcrypto" | "aws-lc-rs") {
            return bad(format!("unknown provider {}", self.provider));
        }
        Ok(())
    }

    fn org_users(&self, domain: &str) -> Option<usize> {
        self.orgs.iter().find(|o| o.domain == domain).map(|o| o.users)
    }

    fn check_list(&self) -> Result<(), SimError> {
        let Some(l) = &self.list else { return Ok(()) };
        let bad = |m: String| Err(SimError::Scenario(format!("list: {m}")));
        let name_ok = (1..=64).contains(&l.name.len())
            && l.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'))
            && !l.name.starts_with('.')
            && !l.name.ends_with('.');
        // A list named like a user would share that user's address.
        let user_like =
            l.name.strip_prefix('u').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !name_ok || user_like || l.name == "gateway" || l.name == "ekg" {
            return bad(format!("name {:?}: 1 to 64 of a-z 0-9 - . and not a user's, gateway or ekg", l.name));
        }
        if self.org_users(&l.org).is_none() {
            return bad(format!("unknown organisation {}", l.org));
        }
        let members_org = l.members_org.as_deref().unwrap_or(&l.org);
        let Some(users) = self.org_users(members_org) else {
            return bad(format!("unknown organisation {members_org}"));
        };
        if l.members == 0 || l.members > users || l.members > 1000 {
            return bad(format!("members: 1 to 1000, at most the {users} users of {members_org}"));
        }
        if l.posts == 0 || l.posts > 100_000 {
            return bad("posts: 1 to 100000".into());
        }
        Ok(())
    }

    fn check_labels(&self) -> Result<(), SimError> {
        let Some(l) = &self.labels else { return Ok(()) };
        let bad = |m: String| Err(SimError::Scenario(format!("labels: {m}")));
        if ekg_core::access::policy::AttributeValue::parse(&l.label).is_err() {
            return bad(format!("{:?} is not an attribute-value URI (docs/protocol.md §12.1)", l.label));
        }
        if l.entitled.is_empty() || l.entitled.len() > MAX_LIST {
            return bad("entitled: 1 to 1000 organisations".into());
        }
        if let Some(d) = l.entitled.iter().find(|d| self.org_users(d).is_none()) {
            return bad(format!("entitled names unknown organisation {d}"));
        }
        if !(0.0..=1.0).contains(&l.share) {
            return bad("share must be within 0..=1".into());
        }
        Ok(())
    }
}
