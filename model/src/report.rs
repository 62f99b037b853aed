//! Running configurations and reporting: the results matrix and readable traces.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use stateright::{Checker, Expectation, Model};

use crate::{ModelConfig, property};

/// What the checker says of one property in one configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `always` / `eventually`: no counterexample in the bounded state space.
    Holds,
    /// `always` / `eventually`: a counterexample (its readable steps).
    Counterexample(Vec<String>),
    /// `sometimes`: an example was reached (its length).
    Reached(usize),
    /// `sometimes`: never reached (the other properties may hold vacuously).
    NeverReached,
    /// `eventually` under the reduced search, which does not evaluate it.
    NotEvaluated,
}

impl Verdict {
    /// A short matrix cell.
    pub fn cell(&self) -> String {
        match self {
            Verdict::Holds => "holds".into(),
            Verdict::Counterexample(t) => format!("CE({})", t.len()),
            Verdict::Reached(_) => "reached".into(),
            Verdict::NeverReached => "NEVER".into(),
            Verdict::NotEvaluated => "-".into(),
        }
    }
}

/// One configuration checked.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The configuration.
    pub config: ModelConfig,
    /// Unique states explored.
    pub unique_states: usize,
    /// States generated (with repeats).
    pub states: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// Deepest path.
    pub max_depth: usize,
    /// The verdict per property, in the order the model declares them.
    pub verdicts: Vec<(&'static str, Verdict)>,
    /// Whether the time limit cut the search (then "holds" only means "no counterexample
    /// among the states explored").
    pub truncated: bool,
}

impl Outcome {
    /// The verdict of one property.
    pub fn verdict(&self, name: &str) -> Option<&Verdict> {
        self.verdicts.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Unique states per second.
    pub fn states_per_sec(&self) -> f64 {
        self.unique_states as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// How to search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Search {
    /// Checker threads.
    pub threads: usize,
    /// Depth first (memory: fingerprints only) instead of breadth first.
    pub dfs: bool,
    /// Stop after this long (the outcome is then marked truncated).
    pub timeout: Option<Duration>,
    /// The reduced search ([`crate::search`]): parallel breadth first, deduplicating on the
    /// configuration's representative ([`crate::reduction`]); `eventually` is not evaluated.
    pub reduced: bool,
}

/// Checks `config` exhaustively, breadth first, on `threads` threads.
pub fn check(config: &ModelConfig, threads: usize) -> Outcome {
    check_with(config, Search { threads, dfs: false, timeout: None, reduced: false })
}

/// Checks `config` as `search` says.
pub fn check_with(config: &ModelConfig, search: Search) -> Outcome {
    let model = config.clone().into_model();
    let start = Instant::now();
    if search.reduced {
        let found = crate::search::explore(&model, config.class_fn(), search.threads, search.timeout);
        let elapsed = start.elapsed();
        let verdicts = model
            .properties()
            .iter()
            .map(|p| {
                let path = found.discoveries.get(p.name).map(|path| crate::search::replay(&model, path));
                let verdict = match (&p.expectation, path) {
                    (Expectation::Sometimes, Some(path)) => Verdict::Reached(path.len()),
                    (Expectation::Sometimes, None) => Verdict::NeverReached,
                    (Expectation::Eventually, _) => Verdict::NotEvaluated,
                    (_, None) => Verdict::Holds,
                    (_, Some(path)) => Verdict::Counterexample(path.iter().map(|a| model.format_action(a)).collect()),
                };
                (p.name, verdict)
            })
            .collect();
        return Outcome {
            config: config.clone(),
            unique_states: found.unique_states,
            states: found.generated,
            elapsed,
            max_depth: found.max_depth,
            verdicts,
            truncated: found.truncated,
        };
    }
    let mut builder = config.clone().into_model().checker().threads(search.threads);
    if let Some(t) = search.timeout {
        builder = builder.timeout(t);
    }
    let (unique_states, states, max_depth, verdicts) = if search.dfs {
        finish(builder.symmetry_fn(config.representative_fn()).spawn_dfs().join(), &model)
    } else {
        finish(builder.spawn_bfs().join(), &model)
    };
    let elapsed = start.elapsed();
    // stateright reports a run cut by its timeout as done: only the clock tells.
    let truncated = search.timeout.is_some_and(|t| elapsed >= t);
    let verdicts = with_shortest_traces(&model, verdicts, search.timeout);
    Outcome { config: config.clone(), unique_states, states, elapsed, max_depth, verdicts, truncated }
}

/// Replaces each counterexample's trace by the shortest one, chosen deterministically
/// ([`crate::search::shortest`]), so that the traces in `docs/` match a re-run. The verdicts
/// stay stateright's; a counterexample the deterministic search does not meet (none is
/// known) keeps stateright's trace.
fn with_shortest_traces(
    model: &crate::EkgModel,
    verdicts: Vec<(&'static str, Verdict)>,
    timeout: Option<Duration>,
) -> Vec<(&'static str, Verdict)> {
    if !verdicts.iter().any(|(_, v)| matches!(v, Verdict::Counterexample(_))) {
        return verdicts;
    }
    let found = crate::search::shortest(model, timeout);
    verdicts
        .into_iter()
        .map(|(name, verdict)| match (verdict, found.discoveries.get(name)) {
            (Verdict::Counterexample(_), Some(path)) => {
                let steps = crate::search::replay(model, path).iter().map(|a| model.format_action(a)).collect();
                (name, Verdict::Counterexample(steps))
            }
            (verdict, _) => (name, verdict),
        })
        .collect()
}

type Finished = (usize, usize, usize, Vec<(&'static str, Verdict)>);

fn finish<C: Checker<crate::EkgModel>>(checker: C, model: &crate::EkgModel) -> Finished {
    let verdicts = model
        .properties()
        .iter()
        .map(|p| {
            let verdict = match (&p.expectation, checker.discovery(p.name)) {
                (Expectation::Sometimes, Some(path)) => Verdict::Reached(path.into_actions().len()),
                (Expectation::Sometimes, None) => Verdict::NeverReached,
                (_, None) => Verdict::Holds,
                (_, Some(path)) => {
                    Verdict::Counterexample(path.into_actions().iter().map(|a| model.format_action(a)).collect())
                }
            };
            (p.name, verdict)
        })
        .collect();
    (checker.unique_state_count(), checker.state_count(), checker.max_depth(), verdicts)
}

/// The matrix columns: a short header for each property, in display order.
pub const COLUMNS: &[(&str, &str)] = &[
    ("single", property::SINGLE_RELEASE),
    ("fresh", property::FRESH_KEYS),
    ("idem", property::ONE_KEY_PER_REQUEST),
    ("authz", property::ONLY_AUTHORISED),
    ("attkr", property::ATTACKER_BLIND),
    ("rgw", property::RECIPIENT_GATEWAY_BLIND),
    ("destr", property::SERVED_THEN_DESTROYED),
    ("ledgr", property::LEDGER_CONSISTENT),
    ("quiet", property::QUIESCENT_DELIVERED),
    ("event", property::EVENTUALLY_DELIVERED),
    ("s:all", property::SOMETIMES_ALL_DECRYPT),
    ("s:gw", property::SOMETIMES_GATEWAY_READS),
];

/// Whether a property says nothing in a configuration: liveness on a duplicating network (no
/// state is quiescent, and every redelivery loops back to a known state, so stateright's
/// `eventually` never meets a terminal state), the gateway's reachability without a gateway.
pub fn not_applicable(config: &ModelConfig, name: &str) -> bool {
    let liveness = name == property::QUIESCENT_DELIVERED || name == property::EVENTUALLY_DELIVERED;
    // Under `same_certificate` without a clock a served key is retained for re-delivery for
    // the whole run, and no ticket expires: S18 has nothing to check.
    let retained = name == property::SERVED_THEN_DESTROYED
        && config.policy == ekg_core::ledger::ReleasePolicy::SameCertificate
        && config.clock.is_none();
    (liveness && config.network == crate::NetworkKind::Duplicating)
        || (name == property::SOMETIMES_GATEWAY_READS && !config.sender_gateway)
        || retained
}

/// The results matrix as text.
pub fn matrix(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    let width = outcomes.iter().map(|o| o.config.name.len()).max().unwrap_or(10).max(13);
    let _ = write!(out, "{:width$}", "configuration");
    for (short, _) in COLUMNS {
        let _ = write!(out, " {short:>8}");
    }
    let _ = writeln!(out, " {:>10} {:>8} {:>10}", "states", "time", "states/s");
    for o in outcomes {
        let _ = write!(out, "{:width$}", o.config.name);
        for (_, name) in COLUMNS {
            let not_applicable = not_applicable(&o.config, name);
            let cell =
                if not_applicable { "n/a".into() } else { o.verdict(name).map(Verdict::cell).unwrap_or_default() };
            let _ = write!(out, " {cell:>8}");
        }
        let cut = if o.truncated { " TRUNCATED" } else { "" };
        let _ = writeln!(
            out,
            " {:>10} {:>7.2}s {:>10.0}{cut}",
            o.unique_states,
            o.elapsed.as_secs_f64(),
            o.states_per_sec()
        );
    }
    let _ = writeln!(out, "\nColumns:");
    for (short, name) in COLUMNS {
        let _ = writeln!(out, "  {short:>6}  {name}");
    }
    let _ = writeln!(
        out,
        "Cells: holds (no counterexample within the bounds), CE(n) (counterexample of n steps, below), reached / NEVER (sometimes), TRUNCATED (the time limit cut the search: no counterexample among the states explored, not a proof), n/a (not applicable: liveness on a duplicating network, where no state is quiescent and every redelivery loops back to a known state, so no terminal state exists for `eventually`; the gateway column without a gateway; destr under same_certificate without a clock, whose served keys are retained for the whole run)."
    );
    out
}

/// Every counterexample as a readable trace.
pub fn traces(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    for o in outcomes {
        for (name, v) in &o.verdicts {
            if not_applicable(&o.config, name) {
                continue;
            }
            if let Verdict::Counterexample(steps) = v {
                let _ = writeln!(out, "\n== {} : {name} ({} steps)", o.config.name, steps.len());
                for (i, s) in steps.iter().enumerate() {
                    let _ = writeln!(out, "  {:>2}. {s}", i + 1);
                }
            }
        }
    }
    out
}
