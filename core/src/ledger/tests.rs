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
    type RequestId = u32;
}

/// The anchor of every requester of these tests, and of the gateway principal "gw".
const CA: u8 = 200;

/// Draws the given key id (handle 100 + id).
struct Fixed(u8);

impl KeyDraw<Sym> for Fixed {
    type Key = ();
    fn draw(&mut self) -> Result<(u8, u32, ())> {
        Ok((self.0, 100 + u32::from(self.0), ()))
    }
}

fn facts(request: u32, recipients: Vec<&'static str>, policy: ReleasePolicy) -> IssueFacts<Sym> {
    IssueFacts { request, request_time: T0, sender: "s", recipients, policy, expires_at: EXPIRY, labels: vec![] }
}

fn decide_release(
    ledger: &Ledger<Sym>,
    key_id: u8,
    r: &Requester<Sym>,
    now: UnixTime,
) -> Result<Decided<Sym, Granted<Sym>>> {
    let listed = match ledger.state(&key_id) {
        Some(KeyState::Pending(k) | KeyState::Retained { key: k, .. }) => k.recipients.keys().copied().collect(),
        _ => ADDRESSES.to_vec(),
    };
    ledger.decide_release(&ReleaseFacts { key_id, listed, expires_at: EXPIRY, requester: r.clone() }, now)
}

/// Test-only: makes `decided` durable in `store` (conditioned on the store's current
/// versions: this whole-state ledger is the store's only writer) and applies it.
fn commit<P>(ledger: &mut Ledger<Sym>, store: &mut MemoryStore<Sym>, decided: Decided<Sym, P>) -> Result<P> {
    let (records, payload) = decided.into_parts();
    let mut after = ledger.clone();
    for r in &records {
        after.apply(r)?;
    }
    let mut keys: Vec<KeyChange<Sym>> = Vec::new();
    for r in &records {
        let id = *r.key_id();
        if keys.iter().any(|k| k.key_id == id) {
            continue;
        }
        let state = after.state(&id);
        keys.push(KeyChange {
            key_id: id,
            read: store.load_key(&id).map_err(round::storage_failed)?.version,
            deadline: state.map(KeyState::deadline),
            held: state.is_some_and(|s| !matches!(s, KeyState::Destroyed(_))),
        });
    }
    if !records.is_empty()
        && !store
            .append_if_unchanged(&Batch { records, keys, log: Vec::new(), tokens: Vec::new() })
            .map_err(round::storage_failed)?
    {
        return Err(reject(Rejection::StorageFailed, "changed meanwhile"));
    }
    *ledger = after;
    Ok(payload)
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
    let d = ledger
        .decide_issue(facts(u32::from(key_id), recipients.to_vec(), policy), &mut Fixed(key_id), T0)
        .expect("issue");
    commit(ledger, store, d).expect("commit");
}

fn who(cert: u8, addresses: &[&'static str]) -> Requester<Sym> {
    Requester { cert, addresses: addresses.to_vec(), anchor: CA }
}

fn release(
    ledger: &mut Ledger<Sym>,
    store: &mut MemoryStore<Sym>,
    key_id: u8,
    r: &Requester<Sym>,
    now: UnixTime,
) -> Result<ReleaseKind> {
    let d = decide_release(ledger, key_id, r, now)?;
    Ok(commit(ledger, store, d)?.kind)
}

fn code(r: Result<ReleaseKind>) -> Option<Rejection> {
    r.err().map(|e| e.rejection())
}

fn setup(policy: ReleasePolicy, config: LedgerConfig) -> (Ledger<Sym>, MemoryStore<Sym>) {
    let mut ledger = Ledger::new(config).with_gateways(vec![GatewayPrincipal { address: "gw", issuer: CA }]);
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
    let gw = who(50, &["gw"]);
    let d = decide_release(&l, 1, &gw, T0).expect("gateway");
    assert_eq!((d.payload().kind, d.records().len()), (ReleaseKind::Gateway, 0));
    assert_eq!(release(&mut l, &mut s, 1, &who(1, &["a"]), T0).ok(), Some(ReleaseKind::First));
    assert!(decide_release(&l, 1, &gw, T0).is_ok(), "gateway may fetch again while the key lives");
    // The same address from another anchor is no gateway (V22).
    let impostor = Requester { cert: 51, addresses: vec!["gw"], anchor: CA + 1 };
    assert_eq!(decide_release(&l, 1, &impostor, T0).err().map(|e| e.rejection()), Some(Rejection::RecipientNotListed));
}

#[test]
fn same_certificate_redelivers_and_never_serves_a_second_certificate() {
    let (mut l, mut s) =
        setup(ReleasePolicy::SameCertificate, LedgerConfig { retention_secs: 10, ..LedgerConfig::default() });
    assert_eq!(release(&mut l, &mut s, 1, &who(1, &["a"]), T0).ok(), Some(ReleaseKind::First));
    assert_eq!(release(&mut l, &mut s, 1, &who(1, &["a"]), T0).ok(), Some(ReleaseKind::Redelivery));
    assert_eq!(code(release(&mut l, &mut s, 1, &who(2, &["a"]), T0)), Some(Rejection::ReleasedToOtherCertificate));
    assert_eq!(release(&mut l, &mut s, 1, &who(1, &["a"]), T0).ok(), Some(ReleaseKind::Redelivery));
    assert_eq!(code(release(&mut l, &mut s, 1, &who(1, &["a"]), T0)), Some(Rejection::RedeliveryLimit));
}

#[test]
fn retention_keeps_the_key_for_redelivery_then_destroys_it() {
    let (mut l, mut s) =
        setup(ReleasePolicy::SameCertificate, LedgerConfig { retention_secs: 10, ..LedgerConfig::default() });
    release(&mut l, &mut s, 1, &who(1, &["a"]), T0).expect("a");
    release(&mut l, &mut s, 1, &who(2, &["b"]), T0).expect("b");
    assert!(matches!(l.state(&1), Some(KeyState::Retained { until, .. }) if *until == T0.plus_secs(10)));
    assert_eq!(release(&mut l, &mut s, 1, &who(2, &["b"]), T0.plus_secs(9)).ok(), Some(ReleaseKind::Redelivery));
    assert_eq!(code(release(&mut l, &mut s, 1, &who(2, &["b"]), T0.plus_secs(10))), Some(Rejection::KeyDestroyed));
    assert_eq!(l.poll_timeout(), Some(T0.plus_secs(10)));
    let due = l.decide_expiry(T0.plus_secs(10));
    assert!(matches!(due.records(), [Record::Destroyed { reason: DestroyReason::AllReleased, .. }]));
    commit(&mut l, &mut s, due).expect("commit");
    assert_eq!(l.held_keys(), 0);
}

#[test]
fn expiry_refuses_then_destroys_then_purges() {
    let (mut l, mut s) = setup(ReleasePolicy::Once, LedgerConfig::default());
    assert_eq!(code(release(&mut l, &mut s, 1, &who(1, &["a"]), EXPIRY)), Some(Rejection::TicketExpired));
    assert_eq!(l.poll_timeout(), Some(EXPIRY));
    assert!(l.decide_expiry(UnixTime(EXPIRY.0 - 1)).records().is_empty());
    let due = l.decide_expiry(EXPIRY);
    assert!(matches!(due.records(), [Record::Destroyed { reason: DestroyReason::Expired, .. }]));
    commit(&mut l, &mut s, due).expect("commit");
    assert_eq!(code(release(&mut l, &mut s, 1, &who(1, &["a"]), T0)), Some(Rejection::KeyDestroyed));
    assert_eq!(l.poll_timeout(), Some(EXPIRY.plus_secs(1)), "the purge is due after the destruction");
    let purge = l.decide_expiry(EXPIRY.plus_secs(1));
    assert!(matches!(purge.records(), [Record::Purged { key_id: 1 }]));
    commit(&mut l, &mut s, purge).expect("commit");
    assert_eq!(l.state(&1), None);
    assert_eq!(l.poll_timeout(), None);
    assert!(s.records().is_empty());
}

#[test]
fn a_key_id_is_never_issued_twice() {
    let (l, _) = setup(ReleasePolicy::Once, LedgerConfig::default());
    let again = l.decide_issue(facts(77, vec!["a"], ReleasePolicy::Once), &mut Fixed(1), T0);
    assert_eq!(again.err().map(|e| e.rejection()), Some(Rejection::KeyIdCollision));
}

#[test]
fn empty_and_duplicate_recipient_lists_are_refused() {
    let l = Ledger::<Sym>::new(LedgerConfig::default());
    let code = |r: Vec<&'static str>| {
        l.decide_issue(facts(5, r, ReleasePolicy::Once), &mut Fixed(2), T0).err().map(|e| e.rejection())
    };
    assert_eq!(code(vec![]), Some(Rejection::NoRecipients));
    assert_eq!(code(vec!["a", "a"]), Some(Rejection::DuplicateRecipient));
}

#[test]
fn v14_a_request_is_answered_once_within_its_window_even_across_a_restart() {
    let (mut l, mut s) = setup(ReleasePolicy::Once, LedgerConfig::default());
    let again = |l: &Ledger<Sym>, now| l.decide_issue(facts(1, vec!["a"], ReleasePolicy::Once), &mut Fixed(9), now);
    assert_eq!(again(&l, T0).err().map(|e| e.rejection()), Some(Rejection::DuplicateRequest));
    // Durable: a recovered ledger refuses it too, and after the key was destroyed.
    release(&mut l, &mut s, 1, &who(1, &["a", "b"]), T0).expect("both");
    let recovered = Ledger::recover(*l.config(), s.records().iter()).expect("recover");
    assert_eq!(again(&recovered, T0.plus_secs(300)).err().map(|e| e.rejection()), Some(Rejection::DuplicateRequest));
    // Past the window V13 refuses a replay as stale; the same id with a fresh request time (a
    // reused nonce) is still refused while the ledger remembers it: two keys for one request
    // id would leave one out of V14's index (docs/model.md, F8).
    assert_eq!(again(&recovered, T0.plus_secs(301)).err().map(|e| e.rejection()), Some(Rejection::DuplicateRequest));
    // The draft's issuance (no window): every delivery issues a key.
    let draft = Ledger::<Sym>::recover(
        LedgerConfig { request_window_secs: None, ..LedgerConfig::default() },
        s.records().iter(),
    )
    .expect("recover");
    assert!(again(&draft, T0).is_ok());
}

#[test]
fn a_key_destroyed_early_keeps_its_request_past_the_expiry() {
    // Every address served at T0: destroyed at once. The tombstone (and the request V14
    // remembers) stays until one second after the expiry, the last second at which V13 can
    // accept a replay signed a skew in the future being the expiry itself (docs/model.md F8).
    let (mut l, mut s) = setup(ReleasePolicy::Once, LedgerConfig::default());
    release(&mut l, &mut s, 1, &who(1, &["a", "b"]), T0).expect("both");
    assert!(matches!(l.state(&1), Some(KeyState::Destroyed(_))));
    assert_eq!(l.poll_timeout(), Some(EXPIRY.plus_secs(1)));
    assert!(l.decide_expiry(EXPIRY).records().is_empty());
    let again = |l: &Ledger<Sym>, now| l.decide_issue(facts(1, vec!["a"], ReleasePolicy::Once), &mut Fixed(9), now);
    assert_eq!(again(&l, EXPIRY).err().map(|e| e.rejection()), Some(Rejection::DuplicateRequest));
    let purge = l.decide_expiry(EXPIRY.plus_secs(1));
    assert!(matches!(purge.records(), [Record::Purged { key_id: 1 }]));
}

#[test]
fn recovery_replays_to_the_same_ledger() {
    let (mut l, mut s) =
        setup(ReleasePolicy::SameCertificate, LedgerConfig { retention_secs: 5, ..LedgerConfig::default() });
    issue(&mut l, &mut s, 2, &["a"], ReleasePolicy::Once);
    release(&mut l, &mut s, 1, &who(1, &["a"]), T0).expect("a");
    release(&mut l, &mut s, 2, &who(1, &["a"]), T0).expect("a2");
    let recovered =
        Ledger::recover(*l.config(), s.records().iter()).expect("recover").with_gateways(l.gateways().to_vec());
    assert_eq!(recovered, l);
}

#[test]
fn volatile_state_would_release_twice_durable_state_does_not() {
    // Durable: the record is written before the response; the recovered ledger refuses.
    let (mut l, mut s) = setup(ReleasePolicy::Once, LedgerConfig::default());
    release(&mut l, &mut s, 1, &who(1, &["a"]), T0).expect("first");
    let after_crash = Ledger::recover(*l.config(), s.records().iter()).expect("recover");
    assert_eq!(
        decide_release(&after_crash, 1, &who(1, &["a"]), T0).err().map(|e| e.rejection()),
        Some(Rejection::AlreadyReleased)
    );
}

#[test]
fn failed_append_changes_nothing() {
    let (mut l, mut s) = setup(ReleasePolicy::Once, LedgerConfig::default());
    s.set_failing(true);
    let d = decide_release(&l, 1, &who(1, &["a"]), T0).expect("decide");
    assert_eq!(commit(&mut l, &mut s, d).err().map(|e| e.rejection()), Some(Rejection::StorageFailed));
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
        let config = LedgerConfig { retention_secs: retention, max_deliveries: 2, request_window_secs: Some(300) };
        let gateways = vec![GatewayPrincipal { address: "gw", issuer: CA }];
        let mut ledger = Ledger::<Sym>::new(config).with_gateways(gateways.clone());
        let mut requests = 0u32;
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
                    requests += 1;
                    let f = IssueFacts { request: requests, request_time: now, sender: "s", recipients: recipients.iter().map(|i| ADDRESSES[*i]).collect(), policy, expires_at: now.plus_secs(300), labels: vec![] };
                    struct Draw(u8, u32);
                    impl KeyDraw<Sym> for Draw {
                        type Key = ();
                        fn draw(&mut self) -> Result<(u8, u32, ())> { Ok((self.0, self.1, ())) }
                    }
                    if let Ok(d) = ledger.decide_issue(f, &mut Draw(key, next_handle), now) {
                        prop_assert!(handles.insert(key, next_handle).is_none(), "key id {} issued twice while known", key);
                        commit(&mut ledger, &mut store, d).expect("commit");
                    }
                }
                Op::Release { key, cert, address } => {
                    let r = who(cert, &[ADDRESSES[address]]);
                    if let Ok(d) = decide_release(&ledger, key, &r, now) {
                        prop_assert_eq!(Some(&d.payload().handle), handles.get(&key));
                        let granted = commit(&mut ledger, &mut store, d).expect("commit");
                        for a in granted.served {
                            let e = served.entry((key, a)).or_insert((cert, 0));
                            prop_assert_eq!(e.0, cert, "second certificate served for {}", a);
                            e.1 += 1;
                            let max = if same_cert { 2 } else { 1 };
                            prop_assert!(e.1 <= max, "{} deliveries to {}", e.1, a);
                        }
                    }
                }
                Op::Gateway { key } => {
                    let gw = who(99, &["gw"]);
                    if let Ok(d) = decide_release(&ledger, key, &gw, now) {
                        prop_assert!(d.records().is_empty());
                    }
                }
                Op::Tick { secs } => {
                    now = now.plus_secs(secs);
                    // Nothing is due before the ledger says so.
                    let due = ledger.decide_expiry(now);
                    prop_assert!(due.records().is_empty() || ledger.poll_timeout().is_some_and(|t| t <= now));
                    let records = due.records().to_vec();
                    commit(&mut ledger, &mut store, due).expect("commit");
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
                    ledger = Ledger::recover(config, store.records().iter()).expect("recover").with_gateways(gateways.clone());
                }
            }
            prop_assert_eq!(ledger.check_invariants(), Ok(()));
            // Anything past its expiry is never served.
            for (id, state) in ledger.keys() {
                if let KeyState::Pending(k) | KeyState::Retained { key: k, .. } = state
                    && now >= k.expires_at
                {
                    prop_assert!(decide_release(&ledger, *id, &who(0, &ADDRESSES), now).is_err());
                }
            }
        }
    }
}

/// Two gatekeepers on one store: both read the key, the first write wins, the second is
/// refused without writing, reads again and decides `already_released`.
#[test]
fn of_two_racing_releases_the_second_reads_again_and_is_refused() {
    let cfg = LedgerConfig { retention_secs: 3600, ..LedgerConfig::default() };
    let rules = Ledger::<Sym>::new(cfg);
    let mut store = MemoryStore::<Sym>::new();
    let issue = round::Issue::new(facts(1, vec!["bob"], ReleasePolicy::Once));
    Round::new(&rules, issue, T0).run(&mut store, &mut Fixed(1)).expect("issued");
    let mut other = store.clone();
    let bob = who(7, &["bob"]);
    let release = || {
        round::Release::new(ReleaseFacts { key_id: 1, listed: vec!["bob"], expires_at: EXPIRY, requester: bob.clone() })
    };
    let (mut a, mut b) = (Round::new(&rules, release(), T0), Round::new(&rules, release(), T0));
    assert!(matches!(a.step(&mut store, &mut round::NoDraw), Step::Again), "a read and decided");
    assert!(matches!(b.step(&mut other, &mut round::NoDraw), Step::Again), "b read and decided");
    assert!(matches!(a.step(&mut store, &mut round::NoDraw), Step::Done(Ok(_))), "the first write wins");
    assert!(matches!(b.step(&mut other, &mut round::NoDraw), Step::Again), "the second is not written");
    match b.step(&mut other, &mut round::NoDraw) {
        Step::Done(Err(e)) => assert_eq!(e.rejection(), Rejection::AlreadyReleased),
        other => panic!("expected already_released, got {other:?}"),
    }
    assert_eq!(store.appends(), 2, "the issue and one release, nothing more");
    // A second issue of request 1: the store knows the request; read again, V14 refuses.
    let again = round::Issue::new(facts(1, vec!["bob"], ReleasePolicy::Once));
    let refused = Round::new(&rules, again, T0).run(&mut other, &mut Fixed(2));
    assert_eq!(refused.err().map(|e| e.rejection()), Some(Rejection::DuplicateRequest));
}

/// A write that loses its race reuses the key it drew: the next attempt draws nothing new.
#[test]
fn a_lost_race_reuses_the_drawn_key() {
    struct Counting(u8);
    impl KeyDraw<Sym> for Counting {
        type Key = ();
        fn draw(&mut self) -> Result<(u8, u32, ())> {
            self.0 += 1;
            Ok((self.0, 100 + u32::from(self.0), ()))
        }
    }
    let rules = Ledger::<Sym>::new(LedgerConfig::default());
    let mut store = MemoryStore::<Sym>::new();
    let mut draw = Counting(0);
    let mut round = Round::new(&rules, round::Issue::new(facts(1, vec!["bob"], ReleasePolicy::Once)), T0);
    assert!(matches!(round.step(&mut store, &mut draw), Step::Again));
    // Another request changes nothing this one read, but the store refuses the write once.
    let busy = round::Issue::new(facts(2, vec!["bob"], ReleasePolicy::Once));
    Round::new(&rules, busy, T0).run(&mut store, &mut Fixed(1)).expect("key 1 issued by another request");
    assert!(matches!(round.step(&mut store, &mut draw), Step::Again), "key id 1 is taken: not written");
    match round.step(&mut store, &mut draw) {
        Step::Done(Err(e)) => assert_eq!(e.rejection(), Rejection::KeyIdCollision, "read again, the ledger refuses"),
        other => panic!("expected key_id_collision, got {other:?}"),
    }
    assert_eq!(draw.0, 1, "one draw for one request");
}
