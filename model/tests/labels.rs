//! The labels model (issue 28 item 5): a labelled key, recipients entitled through their
//! certificate or their token, and a listed attacker without the entitlement, exhaustively,
//! on the core's release with V26 (`EntitledRelease`).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Instant;

use ekg_model::labels::{LabelsConfig, LabelsModel, MALLORY, property};
use stateright::{Checker, HasDiscoveries, Model};

const SAFETY: [&str; 4] = [property::ENTITLED_ONLY, property::ONCE, property::AS_BEFORE, property::NO_FAILURE];

fn explore(cfg: LabelsConfig, states: usize) -> impl Checker<LabelsModel> {
    let (name, started) = (cfg.name, Instant::now());
    let model = cfg.into_model().expect("the model's policy is valid");
    let checker =
        model.checker().finish_when(HasDiscoveries::AnyFailures).target_state_count(1_000_000).spawn_bfs().join();
    assert!(checker.is_done(), "the search must be exhaustive");
    println!("labels/{name}: {} states in {:.2?}", checker.unique_state_count(), started.elapsed());
    for p in SAFETY {
        assert!(checker.discovery(p).is_none(), "{name}: {p}: {:?}", checker.discovery(p).map(|d| d.into_actions()));
    }
    assert!(checker.discovery(property::ALL_ENTITLED).is_some(), "{name}: no run serves every entitled recipient");
    assert_eq!(checker.unique_state_count(), states, "{name}: the state count moved");
    checker
}

#[test]
fn an_all_of_label_is_released_only_to_entitled_recipients_once() {
    let cfg = LabelsConfig::all_of();
    assert!(!cfg.entitled.contains(&MALLORY));
    let checker = explore(cfg, 3_616);
    assert!(checker.discovery(property::REFUSED).is_some(), "V26 refuses mallory");
}

#[test]
fn a_hierarchy_label_is_released_only_at_or_above_its_rank() {
    let checker = explore(LabelsConfig::hierarchy(), 3_616);
    assert!(checker.discovery(property::REFUSED).is_some(), "V26 refuses mallory");
}

#[test]
fn an_unlabelled_key_is_released_to_every_listed_recipient_as_before() {
    let cfg = LabelsConfig::unlabelled();
    assert!(cfg.entitled.contains(&MALLORY));
    let checker = explore(cfg, 11_860);
    assert!(checker.discovery(property::REFUSED).is_none(), "nothing for V26 to refuse");
}
