//! The replay model (issue 28 item 5): two instances on one store, a token replayed at either,
//! moved to another key, with a crash; exhaustively, on the core's release with V28.8
//! (`EntitledRelease`) and the reference store's refusal of a recorded token.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Instant;

use ekg_model::replay::{ReplayConfig, ReplayModel, property};
use stateright::{Checker, HasDiscoveries, Model};

const SAFETY: [&str; 4] = [property::TOKEN_ONCE, property::WITH_TOKEN, property::RECORDED, property::NO_FAILURE];

fn explore(cfg: ReplayConfig, states: usize) -> impl Checker<ReplayModel> {
    let (name, started) = (cfg.name, Instant::now());
    let model = cfg.into_model().expect("the model's policy is valid");
    let checker =
        model.checker().finish_when(HasDiscoveries::AnyFailures).target_state_count(2_000_000).spawn_bfs().join();
    assert!(checker.is_done(), "the search must be exhaustive");
    println!("replay/{name}: {} states in {:.2?}", checker.unique_state_count(), started.elapsed());
    for p in SAFETY {
        assert!(checker.discovery(p).is_none(), "{name}: {p}: {:?}", checker.discovery(p).map(|d| d.into_actions()));
    }
    for p in [property::BOTH_KEYS, property::REPLAY_REFUSED, property::RACE_LOST] {
        assert!(checker.discovery(p).is_some(), "{name}: no run where {p}");
    }
    assert_eq!(checker.unique_state_count(), states, "{name}: the state count moved");
    checker
}

#[test]
fn a_token_yields_one_release_under_same_certificate() {
    explore(ReplayConfig::same_certificate(), 9_738);
}

#[test]
fn a_token_yields_one_release_under_once() {
    explore(ReplayConfig::once(), 9_738);
}
