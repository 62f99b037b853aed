//! The custody model (issue 27 item 2): storage-key epochs against an attacker who copies the
//! store at any moment and obtains every surviving storage key at any moment, exhaustively,
//! under both policies; and the counterexample §7.1 of `docs/protocol.md` states.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Instant;

use ekg_core::ledger::ReleasePolicy;
use ekg_model::custody::{CustodyAction, CustodyConfig, CustodyModel, property};
use stateright::{Checker, Model};

fn explore(cfg: CustodyConfig) -> impl Checker<CustodyModel> {
    let started = Instant::now();
    // A state bound far above the pinned counts: a planted bug must not exhaust memory.
    let checker = cfg.into_model().checker().target_state_count(5_000_000).spawn_bfs().join();
    assert!(checker.is_done(), "the search must be exhaustive");
    println!("{}: {} states in {:.2?}", cfg.name(), checker.unique_state_count(), started.elapsed());
    checker
}

/// The shortest counterexample to `property` (stateright 0.31's BFS does not return the
/// shortest path: search depth by depth).
fn shortest(cfg: CustodyConfig, property: &'static str) -> Vec<CustodyAction> {
    for depth in 1..=16 {
        let checker = cfg.into_model().checker().target_max_depth(depth).spawn_bfs().join();
        if let Some(path) = checker.discovery(property) {
            return path.into_actions();
        }
    }
    panic!("no counterexample to {property} within 16 steps");
}

#[test]
fn epochs_hold_exhaustively_under_both_policies() {
    for (policy, states) in [(ReleasePolicy::Once, 169_269), (ReleasePolicy::SameCertificate, 186_607)] {
        let checker = explore(CustodyConfig::small(policy));
        for p in [property::EPOCH_DONE_UNREADABLE, property::HELD_KEYS_UNWRAP, property::NO_FAILURE] {
            assert!(checker.discovery(p).is_none(), "{p}: {:?}", checker.discovery(p).map(|d| d.into_actions()));
        }
        for p in [property::LEARNS_HELD_KEY, property::EPOCH_DESTROYED] {
            assert!(checker.discovery(p).is_some(), "{p} never reached");
        }
        assert_eq!(checker.unique_state_count(), states, "{policy:?}: the state count moved");
    }
}

#[test]
fn a_key_destroyed_early_stays_readable_from_an_older_backup_until_its_epoch_ends() {
    let cfg = CustodyConfig::small(ReleasePolicy::Once);
    let checker = explore(cfg);
    assert!(checker.discovery(property::DESTROYED_UNREADABLE).is_some());
    let path = shortest(cfg, property::DESTROYED_UNREADABLE);
    println!("{}: {}: {path:?}", cfg.name(), property::DESTROYED_UNREADABLE);
    // Issued, destroyed (at its expiry, or released to both), copied (the deleted row
    // survives in the copy), then the storage keys are stolen while its epoch lasts.
    assert_eq!(path.len(), 5, "{path:?}");
    assert_eq!(path.first(), Some(&CustodyAction::Issue), "{path:?}");
    assert_eq!(path.last(), Some(&CustodyAction::Steal), "{path:?}");
}
