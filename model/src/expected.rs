//! The expected verdict of every cell of the results matrix, in one table (`docs/model.md` §3
//! shows it). `ekg check` compares each run with it and fails naming every cell that differs:
//! a counterexample the draft is known to have is expected; a new one is a finding, and so is
//! a known one that disappeared (the check no longer sees what it claims to).

use crate::ModelConfig;
use crate::report::{COLUMNS, Outcome, Verdict, not_applicable};

/// Per configuration, the columns (short names of [`COLUMNS`]) where a counterexample is
/// expected. Every other applicable cell must hold (safety, liveness) or be reached
/// (`sometimes`). The findings are named in `docs/model.md` (F1..F9).
pub const EXPECTED_COUNTEREXAMPLES: &[(&str, &[&str])] = &[
    ("once/2r+sgw/unordered", &[]),
    // F1: under `once` a lost release loses the key for that recipient.
    ("once/2r+sgw/unordered+loss1", &["quiet", "event"]),
    ("once/2r+sgw/duplicating", &[]),
    // F6: the draft issues a key per delivery of a key request (here two keys for one request,
    // the row's bound on keys per boot allowing two).
    ("once/2r+sgw/duplicating+loss1", &["idem"]),
    ("once/2r+sgw/ordered", &[]),
    ("once/2r+sgw/ordered+loss1", &["quiet", "event"]),
    // F2: a crash after the durable record and before the answer loses the key under `once`.
    ("once/2r+sgw/unordered+crash1-durable", &["quiet", "event"]),
    // F5: volatile storage loses every owed key (no safety loss).
    ("once/2r+sgw/unordered+crash1-volatile", &["quiet", "event"]),
    // F4: records written after the response: a release after destruction across a crash.
    ("once/2r+sgw/unordered+crash1-late-write", &["destr", "quiet", "event"]),
    ("once/2r+sgw+rgw+attacker/unordered", &[]),
    ("once/2r+sgw+rgw+attacker/duplicating", &[]),
    // F3: an active attacker locks a recipient out by replaying its request.
    ("once/2r+rgw+attacker(replay)/unordered", &["quiet", "event"]),
    ("once/2r+sgw/duplicating+crash1-durable", &["idem"]),
    // F1 and F2 together.
    ("once/2r+sgw/unordered+loss1+crash1-durable", &["quiet", "event"]),
    ("once/2r+sgw/unordered+storefault", &[]),
    ("once/3r(2,20,21)+sgw/unordered", &[]),
    ("once/2r/duplicating+clock3+v14", &[]),
    // F8: V13 accepts a replay up to the expiry when the sender's clock is a skew ahead; the
    // tombstone (and the request V14 remembers) is purged after it.
    ("once/2r/duplicating+clock3(lifetime2,skew1,ahead1)+v14", &[]),
    // F9: a key request delivered later than the skew is refused (V13); in the clock rows the
    // sender does not retry, so nobody gets the key. A client must answer `request_time_skew`
    // with a new request.
    ("once/2r/unordered+clock3+v14", &["event"]),
    // F8: a ticket lifetime under twice the skew: the key's tombstone is purged (and its
    // request forgotten) while V13 still accepts the request, so a replay gets a second key.
    ("once/2r/duplicating+clock3(lifetime1,skew2)+v14", &["idem"]),
    ("once/2r+sgw+2msg/unordered", &[]),
    ("same-cert/2r+sgw/unordered", &[]),
    ("same-cert/2r+sgw/unordered+loss1", &[]),
    ("same-cert/2r+sgw/duplicating", &[]),
    ("same-cert/2r+sgw/duplicating+loss1", &["idem"]),
    ("same-cert/2r+sgw/ordered", &[]),
    ("same-cert/2r+sgw/ordered+loss1", &[]),
    ("same-cert/2r+sgw/unordered+crash1-durable", &[]),
    // F5 under `same_certificate`; and a late write loses the key there too.
    ("same-cert/2r+sgw/unordered+crash1-volatile", &["quiet", "event"]),
    ("same-cert/2r+sgw/unordered+crash1-late-write", &["quiet", "event"]),
    ("same-cert/2r+sgw+rgw+attacker/unordered", &[]),
    ("same-cert/2r+sgw+rgw+attacker/duplicating", &[]),
    ("same-cert/2r+rgw+attacker(replay)/unordered", &[]),
    ("same-cert/2r+sgw/duplicating+crash1-durable", &["idem"]),
    // Two faults (a loss, then a crash that eats the retry's answer) against one retry: a
    // bound of the row. With two retries the redelivery limit is used up instead (F7).
    ("same-cert/2r+sgw/unordered+loss1+crash1-durable", &["quiet", "event"]),
    ("same-cert/2r+sgw/unordered+storefault", &[]),
    ("same-cert/3r(2,20,21)+sgw/unordered", &[]),
    ("same-cert/2r/duplicating+clock3+v14", &[]),
    ("same-cert/2r/duplicating+clock3(lifetime2,skew1,ahead1)+v14", &[]),
    ("same-cert/2r/unordered+clock3+v14", &["event"]),
    ("same-cert/2r/duplicating+clock3(lifetime1,skew2)+v14", &["idem"]),
    ("same-cert/2r+sgw+2msg/unordered", &[]),
];

/// The full configurations (`ekg check --full`): the gatekeeper as ekg-core implements it
/// (`+v14`), under both policies. Every safety property holds and both goals are reached.
pub fn full_configurations() -> Vec<ModelConfig> {
    use ekg_core::ledger::ReleasePolicy::{Once, SameCertificate};
    vec![ModelConfig::full(Once), ModelConfig::full(SameCertificate)]
}

/// The deep set (`ekg check --deep`): what does not fit the full run's budget (5 minutes,
/// 8 GiB): the full configuration with the draft's key issuance (finding F6: `idem` fails,
/// every other safety property holds), under both policies.
pub fn deep_configurations() -> Vec<ModelConfig> {
    use ekg_core::ledger::ReleasePolicy::{Once, SameCertificate};
    vec![ModelConfig::full_draft(Once), ModelConfig::full_draft(SameCertificate)]
}

/// What `ekg check` (and `model/examples/verdicts.rs`) checks: the matrix, with the full
/// configurations and the deep set if asked, kept to the names containing `only`.
pub fn selection(full: bool, deep: bool, only: Option<&str>) -> Vec<ModelConfig> {
    let mut configs = ModelConfig::matrix();
    if full {
        configs.extend(full_configurations());
    }
    if deep {
        configs.extend(deep_configurations());
    }
    if let Some(only) = only {
        configs.retain(|c| c.name.contains(only));
    }
    configs
}

/// The cells of `outcome` that differ from the table, each as one readable line; a
/// configuration missing from the table is itself a difference, and so is a search the time
/// limit cut (its "holds" is not a proof).
pub fn deviations(outcome: &Outcome) -> Vec<String> {
    let name = outcome.config.name.as_str();
    let full = full_configurations().iter().any(|c| c.name == name);
    let deep = deep_configurations().iter().any(|c| c.name == name);
    let expected: &[&str] = match EXPECTED_COUNTEREXAMPLES.iter().find(|(n, _)| *n == name) {
        Some((_, ces)) => ces,
        None if full => &[],
        None if deep => &["idem"],
        None => return vec![format!("{name}: no expected verdicts in model/src/expected.rs")],
    };
    let mut out = Vec::new();
    if outcome.truncated {
        out.push(format!("{name}: TRUNCATED by the time limit, so nothing it reports is proven"));
    }
    for (short, property) in COLUMNS {
        if not_applicable(&outcome.config, property) {
            continue;
        }
        let Some(verdict) = outcome.verdict(property) else {
            out.push(format!("{name} / {short}: not checked"));
            continue;
        };
        let ce_expected = expected.contains(short);
        let ok = match verdict {
            Verdict::Counterexample(_) => ce_expected,
            Verdict::Holds | Verdict::NotEvaluated => !ce_expected,
            Verdict::Reached(_) => true,
            Verdict::NeverReached => false,
        };
        if !ok {
            let want = if ce_expected { "a counterexample (a known finding)" } else { "holds / reached" };
            out.push(format!("{name} / {short}: expected {want}, got {}", verdict.cell()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_exactly_the_matrix() {
        let matrix: Vec<String> = ModelConfig::matrix().into_iter().map(|c| c.name).collect();
        let table: Vec<&str> = EXPECTED_COUNTEREXAMPLES.iter().map(|(n, _)| *n).collect();
        assert_eq!(matrix, table, "a configuration without expected verdicts, or a stale one");
        for (_, ces) in EXPECTED_COUNTEREXAMPLES {
            assert!(ces.iter().all(|c| COLUMNS.iter().any(|(short, _)| short == c)), "{ces:?}");
        }
    }
}
