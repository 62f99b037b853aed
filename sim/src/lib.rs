//! `ekg-sim`: a deterministic multi-organisation simulator comparing late key binding (the
//! Email Key Gatekeeper) with early key binding (S/MIME-style), on the same workload, with
//! real crypto and real CMS bytes from `ekg-core`.
//!
//! One seed decides everything: the PKI, the workload, the network's losses and the random
//! bytes of both schemes each come from their own sub-seed ([`draw::derive_seed`]). The event
//! loop is single-threaded over a virtual clock ([`queue::Queue`]); only RSA key generation
//! for the PKI runs on several threads, each key from its own seed.
//!
//! See `docs/simulator.md` for the world model and the results of the shipped scenarios.

#![forbid(unsafe_code)]

pub mod compromise;
pub mod draw;
pub mod early;
pub mod error;
pub mod invariants;
pub mod labels;
pub mod late;
pub mod lists;
pub mod metered;
pub mod metrics;
pub mod plot;
pub mod queue;
pub mod report;
pub mod scenario;
pub mod smime;
pub mod workload;
pub mod world;

use std::time::Instant;

use ekg_core::UnixTime;
use ekg_core::crypto::CryptoProvider;
use serde::Serialize;

pub use error::SimError;
pub use scenario::Scenario;

use crate::metrics::SchemeReport;

/// The scenarios shipped in `fixtures/scenarios/`, by name.
pub const SHIPPED: &[(&str, &str)] = &[
    ("default", include_str!("../../fixtures/scenarios/default.toml")),
    ("mailing-list", include_str!("../../fixtures/scenarios/mailing-list.toml")),
    ("cross-org-with-loss", include_str!("../../fixtures/scenarios/cross-org-with-loss.toml")),
    ("gatekeeper-outage", include_str!("../../fixtures/scenarios/gatekeeper-outage.toml")),
    ("low-certificate-availability", include_str!("../../fixtures/scenarios/low-certificate-availability.toml")),
    ("untrusted-org", include_str!("../../fixtures/scenarios/untrusted-org.toml")),
    ("compromised-recipient", include_str!("../../fixtures/scenarios/compromised-recipient.toml")),
    ("seed-policy", include_str!("../../fixtures/scenarios/seed-policy.toml")),
    ("compromise", include_str!("../../fixtures/scenarios/compromise.toml")),
    ("labelled-itar", include_str!("../../fixtures/scenarios/labelled-itar.toml")),
];

/// A shipped scenario by name.
pub fn shipped(name: &str) -> Option<Result<Scenario, SimError>> {
    SHIPPED.iter().find(|(n, _)| *n == name).map(|(_, text)| Scenario::from_toml(text))
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every invariant held and every owed key was delivered.
    Ok,
    /// An invariant was violated (exit code 2).
    CorrectnessFailure,
    /// A key owed to a reading recipient was not delivered after healing (exit code 3).
    LivenessFailure,
}

impl Verdict {
    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Ok => 0,
            Verdict::CorrectnessFailure => 2,
            Verdict::LivenessFailure => 3,
        }
    }
}

/// Seeds derived from the run's seed.
#[derive(Clone, Debug, Serialize)]
pub struct Seeds {
    /// The run's seed.
    pub seed: u64,
    /// PKI keys and serials.
    pub pki: u64,
    /// The workload.
    pub workload: u64,
    /// Loss and duplication.
    pub network: u64,
    /// Random bytes of the late-binding run.
    pub late: u64,
    /// Random bytes of the early-binding run.
    pub early: u64,
}

impl Seeds {
    /// Derives every sub-seed from `seed`.
    pub fn from(seed: u64) -> Seeds {
        use draw::derive_seed as d;
        Seeds {
            seed,
            pki: d(seed, "pki"),
            workload: d(seed, "workload"),
            network: d(seed, "network"),
            late: d(seed, "late"),
            early: d(seed, "early"),
        }
    }
}

/// Everything a run produced.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// The scenario as run.
    pub scenario: Scenario,
    /// Seeds.
    pub seeds: Seeds,
    /// The command that reproduces the run.
    pub command: String,
    /// The crypto provider.
    pub provider: String,
    /// Whether the provider takes all its randomness from the run's seeded RNGs (then the
    /// same seed gives the same bytes, not only the same events).
    pub deterministic_bytes: bool,
    /// Organisations, users and keys made for the PKI.
    pub users: usize,
    /// RSA keys generated.
    pub keys_generated: usize,
    /// Wall time of PKI generation, seconds.
    pub setup_secs: f64,
    /// Late binding.
    pub late: SchemeReport,
    /// Early binding.
    pub early: SchemeReport,
    /// SHA-256 over both schemes' event traces (times, events, outcomes, sizes).
    pub trace_hash: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Total wall time, seconds.
    pub wall_secs: f64,
    /// Share of the whole run (setup included) spent outside the crypto provider and RSA
    /// key generation.
    pub outside_crypto_share: f64,
    /// End of the fault phase, virtual seconds.
    pub fault_phase_end_secs: f64,
    /// Submission times (virtual ms) of the messages that list a recipient whose key is
    /// stolen (`faults.compromised`): what the attacker could target.
    pub stolen_key_mail_submitted_ms: Vec<u64>,
    /// What each stolen secret exposes, day by day (with `[compromise]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compromise: Option<compromise::CompromiseReport>,
    /// The mailing list expanded where it lives, against RFC 2634's MLA (with `[list]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list: Option<lists::ListReport>,
    /// Early binding run again at each availability of `report.cert_availability_sweep`.
    pub availability_sweep: Vec<AvailabilityPoint>,
    /// Wall time of those runs, seconds (not in `wall_secs`).
    pub sweep_wall_secs: f64,
}

/// Early binding at one certificate availability (the same workload otherwise).
#[derive(Clone, Debug, Serialize)]
pub struct AvailabilityPoint {
    /// Share of recipient certificates found at send time.
    pub cert_availability: f64,
    /// Readable share of the pairs whose recipient reads.
    pub readable_share: f64,
    /// Pairs read.
    pub pairs_readable: u64,
    /// Messages not encrypted for every recipient at send time.
    pub messages_not_encrypted_for_some: u64,
    /// Invariant violations (any fails the run).
    pub violations: usize,
}

/// Options of a run.
pub struct Options<'a> {
    /// Threads for key generation.
    pub threads: usize,
    /// Progress callback: (phase, done, total).
    pub progress: &'a mut dyn FnMut(&str, u64, u64),
    /// Protocol time at virtual 0.
    pub base: UnixTime,
}

/// 2026-06-01T00:00:00Z: virtual time 0 (certificates are valid 2025..2045).
pub const BASE: UnixTime = UnixTime(1_780_272_000);

fn provider(name: &str) -> Result<&'static dyn CryptoProvider, SimError> {
    match name {
        "rustcrypto" => Ok(&ekg_core::crypto::RustCrypto),
        #[cfg(feature = "aws-lc")]
        "aws-lc-rs" => Ok(&ekg_core::crypto::AwsLc),
        other => Err(SimError::Scenario(format!("provider {other} is not built in"))),
    }
}

/// Runs `scenario` (both schemes on one workload).
pub fn run(scenario: &Scenario, command: String, opts: Options<'_>) -> Result<RunReport, SimError> {
    scenario.check()?;
    let started = Instant::now();
    let seeds = Seeds::from(scenario.seed);
    let metered = metered::Metered::leak(provider(&scenario.provider)?);
    (opts.progress)("pki", 0, 1);
    let world = world::World::build(scenario, seeds.pki, metered, opts.threads)?;
    let setup_secs = started.elapsed().as_secs_f64();
    (opts.progress)("pki", 1, 1);
    // The compromise analysis' victim, refused before the runs if it is no user.
    let victim = match &scenario.compromise {
        None => None,
        Some(spec) => Some(
            ekg_core::EmailAddress::parse(&spec.recipient.user)
                .ok()
                .and_then(|a| world.by_address.get(&a).copied())
                .ok_or_else(|| SimError::Scenario(format!("compromise: no user {}", spec.recipient.user)))?,
        ),
    };
    let messages = workload::generate(scenario, &world, seeds.workload);
    let progress = opts.progress;
    let late_run = late::LateRun::new(scenario, &world, &messages, seeds.network, seeds.late, opts.base)?;
    let (late, late_hash) = late_run.run(&mut |d, t| progress("late", d, t))?;
    let (early, early_hash) =
        early::run(scenario, &world, &messages, seeds.early, opts.base, &mut |d, t| progress("early", d, t))?;
    let mut h = sha2::Sha256::default();
    sha2::Digest::update(&mut h, late_hash);
    sha2::Digest::update(&mut h, early_hash);
    let trace_hash = hex::encode(sha2::Digest::finalize(h));
    let wall_secs = started.elapsed().as_secs_f64();
    let crypto = metered.crypto_secs() + setup_secs;
    let swept = Instant::now();
    let mut availability_sweep = Vec::new();
    let sweep = &scenario.report.cert_availability_sweep;
    for (i, a) in sweep.iter().enumerate() {
        progress("sweep", i as u64, sweep.len() as u64);
        let mut at = scenario.clone();
        at.workload.cert_availability = *a;
        let messages = workload::generate(&at, &world, seeds.workload);
        let (r, _) = early::run(&at, &world, &messages, seeds.early, opts.base, &mut |_, _| {})?;
        availability_sweep.push(AvailabilityPoint {
            cert_availability: *a,
            readable_share: r.readable_share,
            pairs_readable: r.pairs_readable,
            messages_not_encrypted_for_some: r.messages_not_encrypted_for_some,
            violations: r.violations.len(),
        });
    }
    if !sweep.is_empty() {
        progress("sweep", sweep.len() as u64, sweep.len() as u64);
    }
    let sweep_violations = availability_sweep.iter().any(|p| p.violations > 0);
    // The list's posts, after the measured runs (not in their wall time or trace hash).
    if scenario.list.is_some() {
        progress("list", 0, 1);
    }
    let list = lists::run(scenario, &world, seeds.workload, seeds.late, seeds.early, opts.base)?;
    if list.is_some() {
        progress("list", 1, 1);
    }
    let list_violations =
        list.as_ref().is_some_and(|l| !l.late.violations.is_empty() || !l.early.violations.is_empty());
    let victims: Vec<usize> = scenario
        .faults
        .compromised
        .iter()
        .filter_map(|c| ekg_core::EmailAddress::parse(&c.user).ok())
        .filter_map(|a| world.by_address.get(&a).copied())
        .collect();
    let stolen_key_mail_submitted_ms =
        messages.iter().filter(|m| m.recipients.iter().any(|r| victims.contains(r))).map(|m| m.submit_ms).collect();
    let compromise = match (&scenario.compromise, victim) {
        (Some(spec), Some(victim)) => {
            let inputs = compromise::Inputs {
                scenario,
                messages: &messages,
                lives: &late.key_lives,
                victim,
                db_scan: (late.db_records_scanned, late.db_plaintext_keys_found),
            };
            Some(compromise::analyse(spec, &inputs))
        }
        _ => None,
    };
    let verdict = if !late.violations.is_empty() || !early.violations.is_empty() || sweep_violations || list_violations
    {
        Verdict::CorrectnessFailure
    } else if late.owed_undelivered > 0 {
        Verdict::LivenessFailure
    } else {
        Verdict::Ok
    };
    Ok(RunReport {
        scenario: scenario.clone(),
        seeds,
        command,
        provider: metered.inner_name().to_owned(),
        deterministic_bytes: metered.deterministic(),
        users: world.users.len(),
        keys_generated: world.keys_generated,
        setup_secs,
        late,
        early,
        trace_hash,
        verdict,
        wall_secs,
        outside_crypto_share: ((wall_secs - crypto) / wall_secs).max(0.0),
        fault_phase_end_secs: world::fault_phase_end_ms(scenario) as f64 / 1000.0,
        stolen_key_mail_submitted_ms,
        compromise,
        list,
        availability_sweep,
        sweep_wall_secs: swept.elapsed().as_secs_f64(),
    })
}
