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

/// Widest line of [`matrix`] and [`traces`] (a terminal, a code block in `docs/`).
pub const WIDTH: usize = 100;

/// The columns of the safety table (`always`), then of the liveness and reachability one.
const SAFETY_COLUMNS: usize = 8;

/// The results matrix as text, at most [`WIDTH`] columns: a safety table and a liveness and
/// reachability table (with the search's size), each grouped by release policy (the name's
/// first part); a configuration name too long for its table is on a line of its own.
pub fn matrix(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    let (safety, rest) = COLUMNS.split_at(SAFETY_COLUMNS.min(COLUMNS.len()));
    let _ = writeln!(out, "Safety (always), by release policy:");
    table(&mut out, outcomes, safety, false);
    let _ = writeln!(out, "\nLiveness (quiet, event) and reachability (s:all, s:gw), with the size of each search:");
    table(&mut out, outcomes, rest, true);
    let _ = writeln!(out, "\nColumns:");
    for (short, name) in COLUMNS {
        let _ = writeln!(out, "  {short:>6}  {name}");
    }
    let legend = "Cells: holds (no counterexample within the bounds), CE(n) (counterexample of n steps, below), \
        reached / NEVER (sometimes), TRUNCATED (the time limit cut the search: no counterexample among the \
        states explored, not a proof), n/a (not applicable: liveness on a duplicating network, where no state \
        is quiescent and every redelivery loops back to a known state, so no terminal state exists for \
        `eventually`; the gateway column without a gateway; destr under same_certificate without a clock, \
        whose served keys are retained for the whole run).";
    out.push_str(&wrap(legend, WIDTH, ""));
    out
}

fn cell(o: &Outcome, name: &str) -> String {
    if not_applicable(&o.config, name) { "n/a".into() } else { o.verdict(name).map(Verdict::cell).unwrap_or_default() }
}

/// The policy group of a configuration name and the rest (`once/2r/...`: `once`, `2r/...`).
fn split_policy(name: &str) -> (&str, &str) {
    name.split_once('/').unwrap_or(("", name))
}

/// One table: per policy group a heading, then a row per configuration.
fn table(out: &mut String, outcomes: &[Outcome], columns: &[(&str, &str)], stats: bool) {
    let widths: Vec<usize> = columns
        .iter()
        .map(|(short, name)| outcomes.iter().map(|o| cell(o, name).len()).chain([short.len()]).max().unwrap_or(0))
        .collect();
    let stats_of = |o: &Outcome| {
        let cut = if o.truncated { " TRUNCATED" } else { "" };
        format!(" {:>9} {:>7.2}s{cut}", o.unique_states, o.elapsed.as_secs_f64())
    };
    let cells_width: usize = widths.iter().map(|w| w + 1).sum::<usize>() + if stats { 19 } else { 0 };
    let longest = outcomes.iter().map(|o| split_policy(&o.config.name).1.len()).max().unwrap_or(0);
    let name_width = longest.min(WIDTH.saturating_sub(2 + cells_width)).max("configuration".len());
    let _ = write!(out, "  {:name_width$}", "configuration");
    for ((short, _), w) in columns.iter().zip(&widths) {
        let _ = write!(out, " {short:>w$}");
    }
    if stats {
        let _ = write!(out, " {:>9} {:>8}", "states", "time");
    }
    out.push('\n');
    let mut group = None;
    for o in outcomes {
        let (policy, rest) = split_policy(&o.config.name);
        if group != Some(policy) {
            group = Some(policy);
            let _ = writeln!(out, "{policy}/");
        }
        if rest.len() > name_width {
            let _ = writeln!(out, "  {rest}");
            let _ = write!(out, "  {:name_width$}", "");
        } else {
            let _ = write!(out, "  {rest:name_width$}");
        }
        for ((_, name), w) in columns.iter().zip(&widths) {
            let _ = write!(out, " {:>w$}", cell(o, name));
        }
        if stats {
            out.push_str(&stats_of(o));
        }
        out.push('\n');
    }
}

/// `text` wrapped at `width` columns, each line after the first indented by `indent`.
fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            out.push_str(&line);
            out.push('\n');
            line = indent.to_owned();
        }
        if !line.is_empty() && !line.ends_with(' ') {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.trim().is_empty() {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Every counterexample as a readable trace: actors and certificates by name (alice the
/// sender, bob, carol and dave the listed recipients, the gatekeeper, the gateways, the
/// attacker: [`actor_names`]), keys as `k<boot>.<seq>`, lines wrapped at [`WIDTH`].
pub fn traces(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    for o in outcomes {
        let names = actor_names(&o.config);
        for (name, v) in &o.verdicts {
            if not_applicable(&o.config, name) {
                continue;
            }
            if let Verdict::Counterexample(steps) = v {
                let short = COLUMNS.iter().find(|(_, n)| n == name).map_or(*name, |(s, _)| *s);
                let _ = writeln!(out, "\n== {}", o.config.name);
                let _ = writeln!(out, "   {short}: {name} ({} steps)", steps.len());
                for (i, s) in steps.iter().enumerate() {
                    let number = format!("  {:>2}. ", i + 1);
                    let indent = " ".repeat(number.len());
                    let text = wrap(&readable_step(&names, s), WIDTH - number.len(), "");
                    for (j, line) in text.lines().enumerate() {
                        let _ = writeln!(out, "{}{line}", if j == 0 { &number } else { &indent });
                    }
                }
            }
        }
    }
    out
}

/// The name of a certificate (and of the principal whose own it is).
pub fn cert_name(cert: crate::symbols::Cert) -> String {
    use crate::symbols::*;
    match cert {
        SENDER => "alice".into(),
        R1 => "bob".into(),
        R2 => "carol".into(),
        R3 => "dave".into(),
        R1_RENEWED => "bob2".into(),
        R2_R3 => "carol+dave".into(),
        SENDER_GATEWAY => "gateway-a".into(),
        RECIPIENT_GATEWAY => "gateway-b".into(),
        ATTACKER => "attacker".into(),
        other => format!("cert{other}"),
    }
}

/// The names of a configuration's actors, by stateright id: the gatekeeper; per message the
/// sender (alice), each recipient's fetcher (named after its certificate), the gateways
/// (gateway-a of the sender's organisation, gateway-b of the recipients'); the attacker. A
/// second message's actors carry `(m2)`.
pub fn actor_names(c: &ModelConfig) -> Vec<(usize, String)> {
    let mut out = vec![(usize::from(c.gatekeeper_id()), "gatekeeper".to_owned())];
    for m in c.message_numbers() {
        let tag = if m == 0 { String::new() } else { format!("(m{})", m + 1) };
        out.push((usize::from(c.sender_id_of(m)), format!("alice{tag}")));
        for (i, cert) in c.fetchers().iter().enumerate() {
            out.push((usize::from(c.recipient_id_of(m, i)), format!("{}{tag}", cert_name(*cert))));
        }
        if let Some(id) = c.sender_gateway_id_of(m) {
            out.push((usize::from(id), format!("gateway-a{tag}")));
        }
        if let Some(id) = c.recipient_gateway_id_of(m) {
            out.push((usize::from(id), format!("gateway-b{tag}")));
        }
    }
    if c.attacker {
        out.push((usize::from(c.attacker_id()), "attacker".to_owned()));
    }
    out
}

/// One step of stateright's trace (`Id(1) → Msg → Id(0)`, `Drop(Envelope { src, dst, msg })`,
/// `Timeout(Id, Timer)`, `Crash(Id)`, `Recover(Id)`) with names for ids, certificates and keys.
pub fn readable_step(names: &[(usize, String)], step: &str) -> String {
    let named = rename_numbers(step, "Id(", ")", false, |n| {
        names.iter().find(|(id, _)| *id == n).map_or(format!("Id({n})"), |(_, name)| name.clone())
    });
    let named = rename_key_names(&named);
    let cert = |n: usize| u8::try_from(n).map_or(n.to_string(), cert_name);
    let named = rename_numbers(&named, "signer: ", "", true, cert);
    let named = rename_numbers(&named, " to: ", "", true, cert);
    if let Some((from, rest)) = named.split_once(" → ")
        && let Some((msg, to)) = rest.rsplit_once(" → ")
    {
        return format!("{from} → {to}: {msg}");
    }
    if let Some(inner) = named.strip_prefix("Drop(Envelope { src: ").and_then(|x| x.strip_suffix(" })"))
        && let Some((src, rest)) = inner.split_once(", dst: ")
        && let Some((dst, msg)) = rest.split_once(", msg: ")
    {
        return format!("lost: {src} → {dst}: {msg}");
    }
    if let Some(inner) = named.strip_prefix("Timeout(").and_then(|x| x.strip_suffix(')'))
        && let Some((who, timer)) = inner.split_once(", ")
    {
        return format!("{who}: timer {timer}");
    }
    if let Some(who) = named.strip_prefix("Crash(").and_then(|x| x.strip_suffix(')')) {
        return format!("{who} crashes");
    }
    if let Some(who) = named.strip_prefix("Recover(").and_then(|x| x.strip_suffix(')')) {
        return format!("{who} recovers");
    }
    named
}

/// Replaces each `{open}N{close}` (N decimal) by `name(N)`, after `open` if `keep`.
fn rename_numbers(s: &str, open: &str, close: &str, keep: bool, name: impl Fn(usize) -> String) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find(open) {
        let (before, after) = rest.split_at(at);
        let tail = &after[open.len()..];
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        let closes = tail[digits..].starts_with(close);
        match tail[..digits].parse::<usize>() {
            Ok(n) if digits > 0 && closes => {
                out.push_str(before);
                if keep {
                    out.push_str(open);
                }
                out.push_str(&name(n));
                rest = &tail[digits + close.len()..];
            }
            _ => {
                out.push_str(before);
                out.push_str(open);
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `KeyName { boot: B, seq: S }` as `kB.S`.
fn rename_key_names(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    const OPEN: &str = "KeyName { boot: ";
    while let Some(at) = rest.find(OPEN) {
        out.push_str(&rest[..at]);
        let tail = &rest[at + OPEN.len()..];
        match tail.split_once(", seq: ").and_then(|(b, r)| r.split_once(" }").map(|(q, r)| (b, q, r))) {
            Some((boot, seq, r))
                if boot.bytes().all(|c| c.is_ascii_digit()) && seq.bytes().all(|c| c.is_ascii_digit()) =>
            {
                let _ = write!(out, "k{boot}.{seq}");
                rest = r;
            }
            _ => {
                out.push_str(OPEN);
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}
