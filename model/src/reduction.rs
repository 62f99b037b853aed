//! Sound state-space reductions for depth-first search: a *representative* of each state
//! (stateright's `symmetry_fn`) under which states with the same future are explored once.
//!
//! The checker deduplicates on the representative's fingerprint and continues from the state
//! itself, so every reported path is a real run of the model. A reduction is sound when any
//! two states with the same representative enable the same actions, lead to states with the
//! same representatives, and give every property the same value. Each reduction below states
//! why that holds; `model/tests/model.rs` checks the ones that rest on the ledger.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use ekg_core::ledger::{Ledger, Record};
use stateright::actor::{Envelope, Id, Network};

use crate::config::{ModelConfig, R2, R3};
use crate::party::{AttackerState, GkState, Msg, PartyState};
use crate::symbols::{Addr, Sym, record_order, sort_records};
use crate::{EkgState, History};

/// The representative without symmetry:
///
/// 1. stateright 0.31's duplicating network remembers the *last message delivered* as part of
///    the state ("so that a message that does not change the actor state can also produce a
///    different fingerprint"). Nothing reads it: deliveries are taken from the set, and no
///    property looks at it. Kept, it multiplies every state by the messages that could have
///    been delivered last.
/// 2. On the duplicating network, refusals are left out of the network and of the history.
///    Delivering one changes no receiver's state there (`party::inert`: stateright ignores
///    the delivery), no property reads them, and losing one is pruned (`within_boundary`: it
///    would only spend the loss budget). A state with a refusal in flight and the same state
///    without it enable the same effective actions.
/// 3. The gatekeeper's records (in its memory and in durable storage) are put in a canonical
///    order: by key, then issue before releases before destruction. The order in which
///    releases of different addresses, or of different keys, were recorded is read only by
///    recovery, and `Ledger::recover` gives the same ledger for both orders (`apply` of
///    releases for distinct addresses commutes; all model times are equal). The test
///    `canonical_records_recover_the_same_ledger` checks this on every reachable state of
///    the crash rows.
pub fn representative(s: &EkgState) -> EkgState {
    let mut r = s.clone();
    canonicalise(&mut r);
    r
}

/// The representative with symmetry between the recipients `A` and `B` (actor id = address):
/// the state or the state with `A` and `B` exchanged
/// everywhere (their actor states, timers, every address and actor id in messages, the
/// ledger, the records and the history). Sound when the configuration treats the two alike:
/// both listed, both in the recipient organisation, the same retries (see
/// [`ModelConfig::representative_fn`]). Applied only where every record is written (the
/// swapped ledger is rebuilt from the written records); elsewhere the state stands for
/// itself.
pub fn representative_swapping<const A: Addr, const B: Addr>(s: &EkgState) -> EkgState {
    let r = representative(s);
    // Orientation: the one whose description of `A` is the smaller. `role(A)` of the swapped
    // state is `role(B)` of this one, so both members of a pair choose the same orientation
    // without building the swapped state; when the descriptions are equal the two recipients
    // stand in the same place and the swap would change nothing.
    if role(&r, B) >= role(&r, A) {
        return r;
    }
    let Some(mut swapped) = swap(&r, A, B) else { return r };
    canonicalise(&mut swapped);
    swapped
}

/// Everything the state says about recipient `x`, with `x` itself written as a placeholder:
/// its actor state and timers, and every message, record, outbox entry and history or
/// attacker fact that names it.
fn role(s: &EkgState, x: Addr) -> u64 {
    const ME: Addr = u8::MAX;
    let me = |a: Addr| if a == x { ME } else { a };
    let names = |a: Addr| a == x;
    let env = |src: u8, dst: u8, m: &Msg| -> Option<u64> {
        let involved = names(src) || names(dst) || names(msg_addr(m));
        involved.then(|| {
            let mut h = DefaultHasher::new();
            (me(src), me(dst), swap_msg(m, &me).packed()).hash(&mut h);
            h.finish()
        })
    };
    let id8 = |i: Id| u8::try_from(usize::from(i)).unwrap_or(u8::MAX);
    let mut facts: Vec<u64> = Vec::new();
    // Refusals on the duplicating network are not part of the class (see `representative`).
    let duplicating = matches!(s.network, Network::UnorderedDuplicating(..));
    let kept = |m: &Msg| !(duplicating && matches!(m, Msg::Refused { .. }));
    match &s.network {
        Network::UnorderedDuplicating(set, _) => {
            facts.extend(set.iter().filter(|e| kept(&e.msg)).filter_map(|e| env(id8(e.src), id8(e.dst), &e.msg)))
        }
        Network::UnorderedNonDuplicating(map) => facts.extend(map.iter().filter_map(|(e, n)| {
            env(id8(e.src), id8(e.dst), &e.msg).map(|f| f ^ (*n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        })),
        Network::Ordered(_) => {}
    }
    facts.extend(
        s.history
            .sent_set
            .iter()
            .filter(|(_, _, m)| kept(m))
            .filter_map(|(src, dst, m)| env(*src, *dst, m).map(|f| f | 1 << 63)),
    );
    for ((k, a), n) in s.history.released.iter() {
        if names(*a) {
            facts.push(0x1000_0000 | (u64::from(k.boot) << 16) | (u64::from(k.seq) << 8) | u64::from(*n));
        }
    }
    for (k, a) in &s.history.exposed {
        if names(*a) {
            facts.push(0x2000_0000 | (u64::from(k.boot) << 16) | (u64::from(k.seq) << 8));
        }
    }
    for (k, a, c, at) in &s.history.released_to {
        if names(*a) || names(*c) {
            facts.push(
                0x8000_0000
                    | (u64::from(*at) << 40)
                    | (u64::from(names(*a)) << 32)
                    | (u64::from(names(*c)) << 33)
                    | (u64::from(k.boot) << 16)
                    | (u64::from(k.seq) << 8),
            );
        }
    }
    for state in &s.actor_states {
        match state.as_ref() {
            PartyState::Gatekeeper(gk) => {
                for (dst, m) in &gk.outbox {
                    facts.extend(env(0, id8(*dst), m).map(|f| f ^ 0x3000_0000));
                }
                for rec in gk.written.iter().chain(&gk.unwritten) {
                    if let Record::Released { key_id, cert, .. } = rec
                        && names(*cert)
                    {
                        facts.push(0x4000_0000 | (u64::from(key_id.boot) << 16) | (u64::from(key_id.seq) << 8));
                    }
                }
            }
            PartyState::Attacker(at) => {
                let sets = [&at.seen, &at.observed];
                for (tag, set) in sets.iter().enumerate() {
                    for (k, a, n) in set.iter() {
                        if names(*a) {
                            facts.push(
                                ((tag as u64 + 5) << 28)
                                    | (u64::from(k.boot) << 16)
                                    | (u64::from(k.seq) << 8)
                                    | u64::from(*n),
                            );
                        }
                    }
                }
            }
            PartyState::Client(_) => {}
        }
    }
    facts.sort_unstable();
    let mut h = DefaultHasher::new();
    facts.hash(&mut h);
    let i = usize::from(x);
    s.actor_states.get(i).hash(&mut h);
    s.timers_set.get(i).hash(&mut h);
    h.finish()
}

/// The address a message names (its signer or recipient), if any.
fn msg_addr(m: &Msg) -> Addr {
    match m {
        Msg::KeyRequest { signer, .. } | Msg::ReleaseRequest { signer, .. } | Msg::Refused { signer, .. } => *signer,
        Msg::Grant { to, .. } | Msg::Release { to, .. } => *to,
        Msg::Mail { .. } => 0,
    }
}

/// The class of a state without building its representative: a hash of the same canonical
/// view `representative` builds (no last message, no refusals on the duplicating network,
/// records in canonical order). Equal for states with equal representatives; what the
/// reduced search deduplicates on. Hashing the view in place rather than building the
/// representative measured about 8 % faster on the full configuration (draft `once`: 20.4 s
/// against 22.1 s), which matters where the draft `same_certificate` run is close to 5 minutes.
pub fn class(s: &EkgState) -> u64 {
    let duplicating = matches!(s.network, Network::UnorderedDuplicating(..));
    let kept = |m: &Msg| !(duplicating && matches!(m, Msg::Refused { .. }));
    let mut h = DefaultHasher::new();
    for state in &s.actor_states {
        match state.as_ref() {
            PartyState::Gatekeeper(gk) => {
                gk.boot.hash(&mut h);
                gk.now.hash(&mut h);
                gk.next_seq.hash(&mut h);
                gk.outbox.hash(&mut h);
                gk.unwritten.hash(&mut h);
                hash_records(&gk.written, &mut h);
                gk.store_failing.hash(&mut h);
                gk.failure.hash(&mut h);
            }
            other => other.hash(&mut h),
        }
    }
    let mut flying: Vec<u64> = match &s.network {
        Network::UnorderedDuplicating(set, _) => set.iter().filter(|e| kept(&e.msg)).map(envelope_hash).collect(),
        Network::UnorderedNonDuplicating(map) => {
            map.iter().map(|(e, n)| envelope_hash(e) ^ (*n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect()
        }
        Network::Ordered(_) => {
            s.network.hash(&mut h);
            Vec::new()
        }
    };
    flying.sort_unstable();
    flying.hash(&mut h);
    s.timers_set.hash(&mut h);
    s.crashed.hash(&mut h);
    for storage in &s.actor_storages {
        if let Some(st) = storage {
            st.boots.hash(&mut h);
            st.now.hash(&mut h);
            hash_records(&st.records, &mut h);
        } else {
            0u8.hash(&mut h);
        }
    }
    let hist = &s.history;
    hist.sent.hash(&mut h);
    hist.delivered.hash(&mut h);
    for (src, dst, m) in hist.sent_set.iter().filter(|(_, _, m)| kept(m)) {
        (src, dst, m).hash(&mut h);
    }
    hist.issued.hash(&mut h);
    hist.keys.hash(&mut h);
    hist.released.hash(&mut h);
    hist.released_to.hash(&mut h);
    hist.exposed.hash(&mut h);
    hist.served.hash(&mut h);
    hist.released_after_end.hash(&mut h);
    hist.grants.hash(&mut h);
    hist.expiry.hash(&mut h);
    h.finish()
}

/// The class with symmetry between recipients `A` and `B`: the class of the orientation
/// [`representative_swapping`] chooses.
pub fn class_swapping<const A: Addr, const B: Addr>(s: &EkgState) -> u64 {
    if role(s, B) >= role(s, A) {
        return class(s);
    }
    match swap(s, A, B) {
        Some(swapped) => class(&swapped),
        None => class(s),
    }
}

fn envelope_hash(e: &Envelope<Msg>) -> u64 {
    let mut h = DefaultHasher::new();
    e.hash(&mut h);
    h.finish()
}

fn hash_records(records: &[Record<Sym>], h: &mut DefaultHasher) {
    if is_canonical(records) {
        records.hash(h);
    } else {
        let mut sorted: Vec<&Record<Sym>> = records.iter().collect();
        sorted.sort_by_cached_key(|r| record_order(r));
        sorted.hash(h);
    }
}

impl ModelConfig {
    /// The class function matching [`ModelConfig::representative_fn`], for the reduced search.
    pub fn class_fn(&self) -> fn(&EkgState) -> u64 {
        if self.symmetric() { class_swapping::<R2, R3> } else { class }
    }

    fn symmetric(&self) -> bool {
        // Only where each listed recipient is one fetcher with its own certificate (actor id =
        // address): in the certificates rows actors 3 and 4 are two different certificates;
        // with two messages each recipient is two actors.
        if !self.certs.is_empty() || self.messages > 1 {
            return false;
        }
        let at = |addr: Addr| self.recipients.iter().position(|r| *r == addr).map(|i| self.recipient_id(i));
        at(R2) == Some(Id::from(usize::from(R2))) && at(R3) == Some(Id::from(usize::from(R3)))
    }

    /// The representative function for this configuration: with symmetry between recipients
    /// 3 and 4 when both are listed (both in the recipient organisation, treated alike).
    pub fn representative_fn(&self) -> fn(&EkgState) -> EkgState {
        if self.symmetric() { representative_swapping::<R2, R3> } else { representative }
    }
}

fn canonicalise(s: &mut EkgState) {
    if let Network::UnorderedDuplicating(set, last) = &mut s.network {
        *last = None;
        if set.iter().any(|e| matches!(e.msg, Msg::Refused { .. })) {
            set.retain(|e| !matches!(e.msg, Msg::Refused { .. }));
            s.history.sent_set.retain(|(_, _, m)| !matches!(m, Msg::Refused { .. }));
        }
    }
    if let Some(state) = s.actor_states.first_mut()
        && let PartyState::Gatekeeper(gk) = state.as_ref()
        && !is_canonical(&gk.written)
    {
        let mut gk = gk.clone();
        sort_records(Arc::make_mut(&mut gk.written).as_mut_slice());
        *state = Arc::new(PartyState::Gatekeeper(gk));
    }
    if let Some(Some(storage)) = s.actor_storages.first_mut()
        && !is_canonical(&storage.records)
    {
        sort_records(Arc::make_mut(&mut storage.records).as_mut_slice());
    }
}

fn is_canonical(records: &[Record<Sym>]) -> bool {
    records.iter().zip(records.iter().skip(1)).all(|(a, b)| record_order(a) <= record_order(b))
}

/// `s` with `a` and `b` exchanged, or `None` where the ledger is not the recovery of its
/// records (so it cannot be rebuilt from swapped ones).
fn swap(s: &EkgState, a: Addr, b: Addr) -> Option<EkgState> {
    let sw = |x: Addr| {
        if x == a {
            b
        } else if x == b {
            a
        } else {
            x
        }
    };
    let sw_id = |id: Id| {
        let i = usize::from(id);
        if i == usize::from(a) {
            Id::from(usize::from(b))
        } else if i == usize::from(b) {
            Id::from(usize::from(a))
        } else {
            id
        }
    };
    let (ia, ib) = (usize::from(a), usize::from(b));
    let mut r = s.clone();

    let mut states = Vec::with_capacity(r.actor_states.len());
    for st in &s.actor_states {
        states.push(match st.as_ref() {
            PartyState::Gatekeeper(gk) => Arc::new(PartyState::Gatekeeper(swap_gatekeeper(gk, &sw, &sw_id)?)),
            PartyState::Attacker(at) => Arc::new(PartyState::Attacker(swap_attacker(at, &sw))),
            PartyState::Client(_) => Arc::clone(st),
        });
    }
    states.swap(ia, ib);
    r.actor_states = states;
    r.timers_set.swap(ia, ib);
    r.random_choices.swap(ia, ib);
    r.crashed.swap(ia, ib);
    r.actor_storages.swap(ia, ib);
    for storage in r.actor_storages.iter_mut().flatten() {
        storage.records = Arc::new(storage.records.iter().map(|rec| swap_record(rec, &sw)).collect());
    }
    r.network = swap_network(&s.network, &sw, &sw_id);
    r.history = swap_history(&s.history, &sw);
    Some(r)
}

fn swap_msg(m: &Msg, sw: &impl Fn(Addr) -> Addr) -> Msg {
    match m.clone() {
        Msg::KeyRequest { signer, message, attempt, time } => {
            Msg::KeyRequest { signer: sw(signer), message, attempt, time }
        }
        Msg::Grant { key, material, to, message, attempt, expires } => {
            Msg::Grant { key, material, to: sw(to), message, attempt, expires }
        }
        Msg::Mail { key } => Msg::Mail { key },
        Msg::ReleaseRequest { key, signer, attempt } => Msg::ReleaseRequest { key, signer: sw(signer), attempt },
        Msg::Release { key, material, to, attempt, destroys, at } => {
            Msg::Release { key, material, to: sw(to), attempt, destroys, at }
        }
        Msg::Refused { key, signer, attempt } => Msg::Refused { key, signer: sw(signer), attempt },
    }
}

fn swap_record(r: &Record<Sym>, sw: &impl Fn(Addr) -> Addr) -> Record<Sym> {
    match r.clone() {
        Record::Issued { key_id, handle, sender, recipients, policy, issued_at, expires_at, request, labels } => {
            let mut recipients: Vec<Addr> = recipients.into_iter().map(sw).collect();
            recipients.sort_unstable();
            let request =
                request.map(|r| ekg_core::ledger::RequestRecord { id: (sw(r.id.0), r.id.1, r.id.2), time: r.time });
            Record::Issued {
                key_id,
                handle,
                sender: sw(sender),
                recipients,
                policy,
                issued_at,
                expires_at,
                request,
                labels,
            }
        }
        Record::Destroyed { key_id, at, expires_at, reason, request } => {
            let request =
                request.map(|r| ekg_core::ledger::RequestRecord { id: (sw(r.id.0), r.id.1, r.id.2), time: r.time });
            Record::Destroyed { key_id, at, expires_at, reason, request }
        }
        Record::Released { key_id, addresses, cert, at } => {
            Record::Released { key_id, addresses: addresses.into_iter().map(sw).collect(), cert: sw(cert), at }
        }
        other => other,
    }
}

fn swap_gatekeeper(gk: &GkState, sw: &impl Fn(Addr) -> Addr, sw_id: &impl Fn(Id) -> Id) -> Option<GkState> {
    // Only states with nothing unwritten are swapped, whose written records replay.
    if !gk.unwritten.is_empty() {
        return None;
    }
    let written: Arc<Vec<Record<Sym>>> = Arc::new(gk.written.iter().map(|r| swap_record(r, sw)).collect());
    Ledger::<Sym>::recover(ekg_core::ledger::LedgerConfig::default(), written.iter()).ok()?;
    let mut outbox: Vec<(Id, Msg)> = gk.outbox.iter().map(|(dst, m)| (sw_id(*dst), swap_msg(m, sw))).collect();
    // The outbox order is canonical (sorted) on unordered networks, arrival order on ordered
    // ones; symmetry is only used on the former.
    outbox.sort_by(|x, y| crate::party::batch_order(x).cmp(&crate::party::batch_order(y)));
    Some(GkState {
        boot: gk.boot,
        now: gk.now,
        next_seq: gk.next_seq,
        outbox,
        unwritten: vec![],
        written,
        store_failing: gk.store_failing,
        failure: gk.failure.clone(),
    })
}

fn swap_attacker(a: &AttackerState, sw: &impl Fn(Addr) -> Addr) -> AttackerState {
    AttackerState {
        refused: a.refused.iter().map(|(k, s, n)| (*k, sw(*s), *n)).collect(),
        tickets: a.tickets.clone(),
        seen: a.seen.iter().map(|(k, s, n)| (*k, sw(*s), *n)).collect(),
        replays: a.replays,
        learned: a.learned.clone(),
        observed: a.observed.iter().map(|(k, s, n)| (*k, sw(*s), *n)).collect(),
    }
}

fn swap_network(n: &Network<Msg>, sw: &impl Fn(Addr) -> Addr, sw_id: &impl Fn(Id) -> Id) -> Network<Msg> {
    let env = |e: &Envelope<Msg>| Envelope { src: sw_id(e.src), dst: sw_id(e.dst), msg: swap_msg(&e.msg, sw) };
    match n {
        Network::UnorderedDuplicating(set, _) => Network::new_unordered_duplicating(set.iter().map(env)),
        Network::UnorderedNonDuplicating(map) => {
            Network::new_unordered_nonduplicating(map.iter().flat_map(|(e, count)| std::iter::repeat_n(env(e), *count)))
        }
        Network::Ordered(channels) => Network::new_ordered(channels.iter().flat_map(|((src, dst), q)| {
            q.iter().map(move |m| Envelope { src: sw_id(*src), dst: sw_id(*dst), msg: swap_msg(m, sw) })
        })),
    }
}

fn swap_history(h: &History, sw: &impl Fn(Addr) -> Addr) -> History {
    let id = |i: u8| sw(i);
    History {
        sent: h.sent,
        delivered: h.delivered,
        sent_set: h.sent_set.iter().map(|(s, d, m)| (id(*s), id(*d), swap_msg(m, sw))).collect(),
        issued: h.issued.clone(),
        keys: h.keys.clone(),
        released: h.released.iter().map(|((k, a), n)| ((*k, sw(*a)), *n)).collect(),
        released_to: h.released_to.iter().map(|(k, a, c, at)| (*k, sw(*a), sw(*c), *at)).collect(),
        exposed: h.exposed.iter().map(|(k, a)| (*k, sw(*a))).collect(),
        served: h.served.clone(),
        released_after_end: h.released_after_end,
        grants: h.grants.iter().map(|((c, m, n), k)| ((sw(*c), *m, *n), *k)).collect(),
        expiry: h.expiry.clone(),
    }
}
