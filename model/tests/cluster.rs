//! The cluster model (issue 15): two gatekeeper instances on one linearizable shared store,
//! exhaustively, under both policies; and the counterexamples of the two rejected designs.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use ekg_core::ledger::ReleasePolicy;
use ekg_model::cluster::{Action, ClusterConfig, Design};
use stateright::{Checker, Model};

fn explore(design: Design, policy: ReleasePolicy) -> impl Checker<ekg_model::cluster::ClusterModel> {
    let cfg = ClusterConfig { design, policy, max_deliveries: 2, copies: 2, crashes: 1 };
    let checker = cfg.into_model().checker().spawn_bfs().join();
    assert!(checker.is_done(), "the search must be exhaustive");
    checker
}

#[test]
fn the_shared_design_holds_exhaustively_under_both_policies() {
    for policy in [ReleasePolicy::Once, ReleasePolicy::SameCertificate] {
        let checker = explore(Design::Shared, policy);
        checker.assert_properties();
        println!("cluster, shared store, {policy:?}: {} states, every property holds", checker.unique_state_count());
        assert!(checker.unique_state_count() > 1_000, "the model explored too little to mean anything");
    }
}

/// The shortest counterexample to `property` (stateright 0.31's BFS does not return the
/// shortest path: search depth by depth).
fn shortest(design: Design, policy: ReleasePolicy, property: &'static str) -> Vec<Action> {
    for depth in 1..=12 {
        let cfg = ClusterConfig { design, policy, max_deliveries: 2, copies: 2, crashes: 1 };
        let checker = cfg.into_model().checker().target_max_depth(depth).spawn_bfs().join();
        if let Some(path) = checker.discovery(property) {
            return path.into_actions();
        }
    }
    panic!("no counterexample to {property} within 12 steps");
}

#[test]
fn a_ledger_in_each_instance_releases_twice_issues_twice_and_never_destroys() {
    let checker = explore(Design::LocalLedger, ReleasePolicy::Once);
    for property in ["single release", "one key per request", "destroyed once all released"] {
        assert!(checker.discovery(property).is_some(), "no counterexample for {property}");
        let path = shortest(Design::LocalLedger, ReleasePolicy::Once, property);
        println!("local ledgers, {property}: {path:?}");
    }
    // One request at each instance in turn: each ledger has the address owed, both release.
    let path = shortest(Design::LocalLedger, ReleasePolicy::Once, "single release");
    assert!(
        matches!(path.as_slice(), [Action::Read(0, r), Action::Commit(0), Action::Read(1, s), Action::Commit(1)] if r == s),
        "{path:?}"
    );
}

#[test]
fn read_then_write_without_the_condition_releases_twice() {
    for policy in [ReleasePolicy::Once, ReleasePolicy::SameCertificate] {
        let checker = explore(Design::ReadThenWrite, policy);
        assert!(checker.discovery("single release").is_some(), "a counterexample");
        assert!(checker.discovery("one key per request").is_some(), "two keys for one request");
        let path = shortest(Design::ReadThenWrite, policy, "single release");
        println!("read then write, {policy:?}, single release: {path:?}");
        assert_eq!(path.len(), 4, "both read, both write: {path:?}");
    }
    // Both instances read one address's state before either writes.
    let path = shortest(Design::ReadThenWrite, ReleasePolicy::Once, "single release");
    assert!(
        matches!(path.as_slice(), [Action::Read(0, r), Action::Read(1, s), Action::Commit(_), Action::Commit(_)] if r == s),
        "{path:?}"
    );
}
