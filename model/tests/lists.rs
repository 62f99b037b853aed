//! The lists model (issue 29 item 3): a list, a nested list, a loop and a chain one list
//! deeper than the bound, exhaustively, on the core's rounds and V27.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Instant;

use ekg_model::lists::{ListsConfig, ListsModel, M1, M2, property};
use stateright::{Checker, HasDiscoveries, Model};

const SAFETY: [&str; 6] = [
    property::ONCE_PER_MEMBER,
    property::ONCE_PER_TICKET,
    property::MEMBERS_ONLY,
    property::DEPTH_BOUNDED,
    property::TERMINATES,
    property::NO_FAILURE,
];

fn explore(cfg: ListsConfig, states: usize) -> impl Checker<ListsModel> {
    let (name, started) = (cfg.name, Instant::now());
    // Stops at the first safety counterexample, and at a state bound far above every pinned
    // count: a planted bug that loops must not exhaust the machine's memory.
    let builder = cfg.into_model().checker().finish_when(HasDiscoveries::AnyFailures);
    let checker = builder.target_state_count(1_000_000).spawn_bfs().join();
    assert!(checker.is_done(), "the search must be exhaustive");
    println!("lists/{name}: {} states in {:.2?}", checker.unique_state_count(), started.elapsed());
    for p in SAFETY {
        assert!(checker.discovery(p).is_none(), "{name}: {p}: {:?}", checker.discovery(p).map(|d| d.into_actions()));
    }
    assert!(checker.discovery(property::ALL_MEMBERS).is_some(), "{name}: no run reaches every member");
    assert_eq!(checker.unique_state_count(), states, "{name}: the state count moved");
    checker
}

#[test]
fn a_nested_list_reaches_every_member_once_and_nobody_else() {
    let cfg = ListsConfig::nested();
    assert_eq!(cfg.reachable, vec![M1, M2]);
    let checker = explore(cfg, 2_296);
    assert!(checker.discovery(property::REFUSED).is_none(), "nothing to refuse in a nested list");
}

#[test]
fn a_loop_is_refused_by_v27_and_terminates() {
    let checker = explore(ListsConfig::looped(), 424);
    assert!(checker.discovery(property::REFUSED).is_some(), "the loop's expansion is refused");
}

#[test]
fn a_chain_deeper_than_the_bound_stops_at_the_bound() {
    let checker = explore(ListsConfig::deep(), 5_117);
    assert!(checker.discovery(property::REFUSED).is_some(), "the ninth expansion is refused");
}
