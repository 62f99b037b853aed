use proptest::prelude::*;

use super::*;

/// Symbolic types, as the model checker uses them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Sym;

impl LedgerTypes for Sym {
    type KeyId = u8;
    type Address = &'static str;
    type CertId = u8;
    type KeyHandle = u32;
}

const T0: UnixTime = UnixTime(1_000);
const EXPIRY: UnixTime = UnixTime(2_000);

fn issue(
    ledger: &mut Ledger<Sym>,
    store: &mut MemoryStore<Sym>,
    key_id: u8,
    recipients: &[&'static str],
    policy: ReleasePolicy,
) {
    let record = ledger
        .decide_issue(
            IssueRequest {
                key_id,
                handle: 100 + u32::from(key_id),
                sender: "s",
                recipients: recipients.to_vec(),
                policy,
                expires_at: EXPIRY,
            },
            T0,
        )
        .expect("issue");
    commit(ledger, store, &[record]);
}

fn commit(ledger: &mut Ledger<Sym>, store: &mut MemoryStore<Sym>, records: &[Record<Sym>]) {
    store.append(records).expect("append");
    for r in records {
        ledger.apply(r).expect("apply");
    }
}

fn who(cert: u8, addresses: &[&'static str]) -> Requester<Sym> {
    Requester { cert, addresses: addresses.to_vec(), is_gateway: false }
}

fn release(
    ledger: &mut Ledger<Sym>,
    store: &mut MemoryStore<Sym>,
    key_id: u8,
    r: &Requester<Sym>,
    now: UnixTime,
) -> Result<ReleaseKind> {
    let d = ledger.decide_release(&key_id, r, now)?;
    commit(ledger, store, &d.records);
    Ok(d.kind)
}

fn code(r: Result<ReleaseKind>) -> Option<Rejection> {
    r.err().map(|e| e.rejection())
}

fn setup(policy: ReleasePolicy, config: LedgerConfig) -> (Ledger<Sym>, MemoryStore<Sym>) {
    let mut ledger = Ledger::new(config);
    let mut store = MemoryStore::new();
    issue(&mut ledger, &mut store, 1, &["a", "b"], policy);
    (ledger, store)
}

#[test]
fn second_release_to_same_recipient_is_refused_under_once() {
    let (mut l, mut s) = setup(ReleasePolicy::Once, LedgerConfig::default());
    assert_eq!(release(&mut l, &mut s, 1, &who(1, &["a"]), T0).ok(), Some(ReleaseKind::First));
    assert_eq!(code(release(&mut l, &mut s, 1, &who(1, &["a"]), T0)), Some(Rejection::AlreadyReleased));
    assert_eq!(code(release(&mut l, &mut s, 1, &who(9, &["a"]), T0)), Some(Rejection::AlreadyReleased));
}

#[test]
fn unlisted_address_is_refused() {
    let (mut l, mut s) = setup(ReleasePolicy::Once, LedgerConfig::default());
    assert_eq!(code(release(&mut l, &mut s, 1, &who(3, &["c"]), T0)), Some(Rejection::RecipientNotListed));
    assert_eq!(code(release(&mut l, &mut s, 1, &who(3, &[]), T0)), Some(Rejection::RecipientNotListed));
}

#[test]
fn unknown_key_is_refused() {
    let (mut l, mut s) = setup(ReleasePolicy::Once, LedgerConfig::default());
    assert_eq!(code(release(&mut l, &mut s, 7, &who(1, &["a"]), T0)), Some(Rejection::KeyUnknown));
}

#[test]
fn key_is_destroyed_when_every_recipient_was_served() {
    let (mut l, mut s) = setup(ReleasePolicy::Once, LedgerConfig::default());
    release(&mut l, &mut s, 1, &who(1, &["a"]), T0).expect("a");
    assert!(matches!(l.state(&1), Some(KeyState::Pending(_))));
    release(&mut l, &mut s, 1, &who(2, &["b"]), T0).expect("b");
    assert!(matches!(l.state(&1), Some(KeyState::Destroyed(Tombstone { reason: DestroyReason::AllReleased, .. }))));
    assert_eq!(code(release(&mut l, &mut s, 1, &who(1, &["a"]), T0)), Some(Rejection::KeyDestroyed));
    // The store no longer holds the key either.
    assert!(s.records_of(&1).iter().all(|r| matches!(r, Record::Destroyed { .. })));
}

#[test]
fn gateway_is_served_without_counting_as_a_recipient() {
    let (mut l, mut s) = setup(ReleasePolicy::Once, LedgerConfig::default());
    let gw = Requester { cert: 50, addresses: vec!["gw"], is_gateway: true };
    let d = l.decide_release(&1, &gw, T0).expect("gateway");
    assert_eq!((d.kind, d.records.len()), (ReleaseKind::Gateway, 0));
    assert_eq!(release(&mut l, &mut s, 1, &who(1, &["a"]), T0).ok(), Some(ReleaseKind::First));
    assert!(l.decide_release(&1, &gw, T0).is_ok(), "gateway may fetch again while the key lives");
}

#[test]
fn same_certificate_redelivers_and_never_serves_a_second_certificate() {
    let (mut l, mut s) = setup(ReleasePolicy::SameCertificate, LedgerConfig { retention_secs: 10, max_deliveries: 3 });
    assert_eq!(release(&mut l, &mut s, 1, &who(1, &["a"]), T0).ok(), Some(ReleaseKind::First));
    assert_eq!(release(&mut l, &mut s, 1, &who(1, &["a"]), T0).ok(), Some(ReleaseKind::Redelivery));
    assert_eq!(code(release(&mut l, &mut s, 1, &who(2, &["a"]), T0)), Some(Rejection::ReleasedToOtherCertificate));
    assert_eq!(release(&mut l, &mut s, 1, &who(1, &["a"]), T0).ok(), Some(ReleaseKind::Redelivery));
    assert_eq!(code(release(&mut l, &mut s, 1, &who(1, &["a"]), T0)), Some(Rejection::RedeliveryLimit));
}

#[test]
fn retention_keeps_the_key_for_redelivery_then_destroys_it() {
    let (mut l, mut s) = setup(ReleasePolicy::SameCertificate, LedgerConfig { retention_secs: 10, max_deliveries: 3 });
    release(&mut l, &mut s, 1, &who(1, &["a"]), T0).expect("a");
    release(&mut l, &mut s, 1, &who(2, &["b"]), T0).expect("b");
    assert!(matches!(l.state(&1), Some(KeyState::Retained { until, .. }) if *until == T0.plus_secs(10)));
    assert_eq!(release(&mut l, &mut s, 1, &who(2, &["b"]), T0.plus_secs(9)).ok(), Some(ReleaseKind::Redelivery));
    assert_eq!(code(release(&mut l, &mut s, 1, &who(2, &["b"]), T0.plus_secs(10))), Some(Rejection::KeyDestroyed));
    let records = l.decide_expiry(T0.plus_secs(10));
    assert!(matches!(records.as_slice(), [Record::Destroyed { reason: DestroyReason::AllReleased, .. }]));
    commit(&mut l, &mut s, &records);
    assert_eq!(l.held_keys(), 0);
}

#[test]
fn expiry_refuses_then_destroys_then_purges() {
    let (mut l, mut s) = setup(ReleasePolicy::Once, LedgerConfig::default());
    assert_eq!(code(release(&mut l, &mut s, 1, &who(1, &["a"]), EXPIRY)), Some(Rejection::TicketExpired));
    assert!(l.decide_expiry(UnixTime(EXPIRY.0 - 1)).is_empty());
    let records = l.decide_expiry(EXPIRY);
    assert!(matches!(records.as_slice(), [Record::Destroyed { reason: DestroyReason::Expired, .. }]));
    commit(&mut l, &mut s, &records);
    assert_eq!(code(release(&mut l, &mut s, 1, &who(1, &["a"]), T0)), Some(Rejection::KeyDestroyed));
    let purge = l.decide_expiry(EXPIRY.plus_secs(1));
    assert!(matches!(purge.as_slice(), [Record::Purged { key_id: 1 }]));
    commit(&mut l, &mut s, &purge);
    assert_eq!(l.state(&1), None);
    assert!(s.load().expect("load").is_empty());
}

#[test]
fn a_key_id_is_never_issued_twice() {
    let (l, _) = setup(ReleasePolicy::Once, LedgerConfig::default());
    let again = IssueRequest {
        key_id: 1,
        handle: 9,
        sender: "s",
        recipients: vec!["a"],
        policy: ReleasePolicy::Once,
        expires_at: EXPIRY,
    };
    assert_eq!(l.decide_issue(again, T0).err().map(|e| e.rejection()), Some(Rejection::KeyIdCollision));
}

#[test]
fn empty_and_duplicate_recipient_lists_are_refused() {
    let l = Ledger::<Sym>::new(LedgerConfig::default());
    let req = |r: Vec<&'static str>| IssueRequest {
        key_id: 2,
        handle: 9,
        sender: "s",
        recipients: r,
        policy: ReleasePolicy::Once,
        expires_at: EXPIRY,
    };
    assert_eq!(l.decide_issue(req(vec![]), T0).err().map(|e| e.rejection()), Some(Rejection::NoRecipients));
    assert_eq!(
        l.decide_issue(req(vec!["a", "a"]), T0).err().map(|e| e.rejection()),
        Some(Rejection::DuplicateRecipient)
    );
}

#[test]
fn recovery_replays_to_the_same_ledger() {
    let (mut l, mut s) = setup(ReleasePolicy::SameCertificate, LedgerConfig { retention_secs: 5, max_deliveries: 3 });
    issue(&mut l, &mut s, 2, &["a"], ReleasePolicy::Once);
    release(&mut l, &mut s, 1, &who(1, &["a"]), T0).expect("a");
    release(&mut l, &mut s, 2, &who(1, &["a"]), T0).expect("a2");
    let recovered = Ledger::recover(*l.config(), s.load().expect("load").iter()).expect("recover");
    assert_eq!(recovered, l);
}

#[test]
fn volatile_state_would_release_twice_durable_state_does_not() {
    // Durable: the record is written before the response; the recovered ledger refuses.
    let (mut l, mut s) = setup(ReleasePolicy::Once, LedgerConfig::default());
    release(&mut l, &mut s, 1, &who(1, &["a"]), T0).expect("first");
    let after_crash = Ledger::recover(*l.config(), s.load().expect("load").iter()).expect("recover");
    assert_eq!(
        after_crash.decide_release(&1, &who(1, &["a"]), T0).err().map(|e| e.rejection()),
        Some(Rejection::AlreadyReleased)
    );
}

#[test]
fn failed_append_changes_nothing() {
    let (mut l, mut s) = setup(ReleasePolicy::Once, LedgerConfig::default());
    s.set_failing(true);
    let d = l.decide_release(&1, &who(1, &["a"]), T0).expect("decide");
    assert!(s.append(&d.records).is_err());
    // Not applied: a later attempt still finds the address owed.
    s.set_failing(false);
    assert_eq!(release(&mut l, &mut s, 1, &who(1, &["a"]), T0).ok(), Some(ReleaseKind::First));
}

#[test]
fn records_that_do_not_fit_are_refused_on_replay() {
    let mut l = Ledger::<Sym>::new(LedgerConfig::default());
    let r = Record::Released { key_id: 1, addresses: vec!["a"], cert: 1, at: T0 };
    assert_eq!(l.apply(&r).err().map(|e| e.rejection()), Some(Rejection::StorageFailed));
}

#[test]
fn a_certificate_with_two_listed_addresses_is_served_for_both() {
    let (mut l, mut s) = setup(ReleasePolicy::Once, LedgerConfig::default());
    release(&mut l, &mut s, 1, &who(1, &["a", "b"]), T0).expect("both");
    assert!(matches!(l.state(&1), Some(KeyState::Destroyed(_))));
}

const ADDRESSES: [&str; 5] = ["a", "b", "c", "d", "e"];

#[derive(Clone, Debug)]
enum Op {
    Issue { key: u8, recipients: Vec<usize> },
    Release { key: u8, cert: u8, address: usize },
    Gateway { key: u8 },
    Tick { secs: u64 },
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..4, proptest::collection::btree_set(0usize..5, 0..5))
            .prop_map(|(key, r)| Op::Issue { key, recipients: r.into_iter().collect() }),
        (0u8..4, 0u8..3, 0usize..5).prop_map(|(key, cert, address)| Op::Release { key, cert, address }),
        (0u8..4).prop_map(|key| Op::Gateway { key }),
        (0u64..400).prop_map(|secs| Op::Tick { secs }),
        Just(Op::Crash),
    ]
}

proptest! {
    /// Random recipient sets and request orders, with crashes (recovery from the store) and
    /// time passing: never two certificates for one address, never more deliveries than the
    /// policy allows, never two keys under one id, invariants after every step.
    #[test]
    fn no_address_is_served_beyond_its_policy(ops in proptest::collection::vec(op(), 1..60), same_cert in any::<bool>(), retention in 0u64..50) {
        let policy = if same_cert { ReleasePolicy::SameCertificate } else { ReleasePolicy::Once };
        let config = LedgerConfig { retention_secs: retention, max_deliveries: 2 };
        let mut ledger = Ledger::<Sym>::new(config);
        let mut store = MemoryStore::new();
        let mut now = T0;
        let mut next_handle = 0u32;
        let mut handles = std::collections::BTreeMap::new();
        // (key, address) -> (cert, deliveries) as observed from outside.
        let mut served: std::collections::BTreeMap<(u8, &str), (u8, u32)> = Default::default();
        for op in ops {
            match op {
                Op::Issue { key, recipients } => {
                    next_handle += 1;
                    let req = IssueRequest { key_id: key, handle: next_handle, sender: "s", recipients: recipients.iter().map(|i| ADDRESSES[*i]).collect(), policy, expires_at: now.plus_secs(300) };
                    if let Ok(record) = ledger.decide_issue(req, now) {
                        prop_assert!(handles.insert(key, next_handle).is_none(), "key id {} issued twice while known", key);
                        commit(&mut ledger, &mut store, &[record]);
                    }
                }
                Op::Release { key, cert, address } => {
                    let r = who(cert, &[ADDRESSES[address]]);
                    if let Ok(d) = ledger.decide_release(&key, &r, now) {
                        prop_assert_eq!(Some(&d.handle), handles.get(&key));
                        commit(&mut ledger, &mut store, &d.records);
                        for a in d.served {
                            let e = served.entry((key, a)).or_insert((cert, 0));
                            prop_assert_eq!(e.0, cert, "second certificate served for {}", a);
                            e.1 += 1;
                            let max = if same_cert { 2 } else { 1 };
                            prop_assert!(e.1 <= max, "{} deliveries to {}", e.1, a);
                        }
                    }
                }
                Op::Gateway { key } => {
                    let gw = Requester { cert: 99, addresses: vec!["gw"], is_gateway: true };
                    if let Ok(d) = ledger.decide_release(&key, &gw, now) {
                        prop_assert!(d.records.is_empty());
                    }
                }
                Op::Tick { secs } => {
                    now = now.plus_secs(secs);
                    let records = ledger.decide_expiry(now);
                    commit(&mut ledger, &mut store, &records);
                    // A purged id's ticket has expired, so no release can ever reach it
                    // again; only then may the (tiny, symbolic) id space reuse it.
                    for r in &records {
                        if let Record::Purged { key_id } = r {
                            handles.remove(key_id);
                            served.retain(|(k, _), _| k != key_id);
                        }
                    }
                }
                Op::Crash => {
                    ledger = Ledger::recover(config, store.load().expect("load").iter()).expect("recover");
                }
            }
            prop_assert_eq!(ledger.check_invariants(), Ok(()));
            // Anything past its expiry is never served.
            for (id, state) in ledger.keys() {
                if let KeyState::Pending(k) | KeyState::Retained { key: k, .. } = state
                    && now >= k.expires_at
                {
                    prop_assert!(ledger.decide_release(id, &who(0, &ADDRESSES), now).is_err());
                }
            }
        }
    }
}
