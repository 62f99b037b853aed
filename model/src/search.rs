//! A parallel breadth-first search over the stateright model that deduplicates on a
//! representative of each state (see [`crate::reduction`]).
//!
//! Why not stateright's own checkers: in 0.31 its breadth-first search ignores symmetry
//! reduction, and its depth-first search, which honours it, hands the other thread only the
//! newest (deepest) half of its stack every 1,500 states: on this model the second thread
//! idles (measured: 6.46 s of CPU in 5.57 s of wall time on 2 threads, against 6.2 s on one).
//! This search drives the very same `ActorModel` through stateright's `Model` trait (its
//! actions, transitions, boundary and properties), level by level, with every thread
//! expanding a share of the level, so it scales with cores and finds the shortest
//! counterexample. `always` and `sometimes` are evaluated; `eventually` only when asked
//! ([`explore_with`]: a terminal state whose path never met the condition, the path being the
//! first that reached each state, as stateright's own breadth-first search does).
//!
//! On one thread the search is deterministic: each level in a fixed order, each state's
//! actions in stateright's order. [`shortest`] uses that for the traces `ekg check` prints:
//! stateright 0.31's breadth-first search keeps the *last* violating state it meets for an
//! `always` property (it overwrites its discovery), so its traces are neither the shortest
//! nor the same from run to run.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use stateright::{Expectation, Model};

use crate::{EkgModel, EkgState};

/// What one search found.
#[derive(Debug)]
pub struct Exploration {
    /// Distinct representatives reached (the states explored).
    pub unique_states: usize,
    /// Transitions taken within the boundary (with repeats).
    pub generated: usize,
    /// Breadth-first levels explored.
    pub max_depth: usize,
    /// The first state (shortest path) reaching each `always` violation or `sometimes` goal:
    /// its path as action indices from the initial state.
    pub discoveries: BTreeMap<&'static str, Vec<usize>>,
    /// The time limit cut the search.
    pub truncated: bool,
}

/// A level entry: the state, its class, and the `eventually` properties its path has not yet
/// satisfied (a bit per property index).
type Entry = (EkgState, u64, u64);

/// Where a representative was first reached from: its parent's fingerprint and the index of
/// the action taken there.
type Parent = Option<(u64, u32)>;

const SHARDS: usize = 64;

struct Visited {
    shards: Vec<Mutex<HashMap<u64, Parent>>>,
}

impl Visited {
    fn new() -> Visited {
        Visited { shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect() }
    }

    #[allow(clippy::indexing_slicing)] // `fp % SHARDS` < SHARDS = len
    fn shard(&self, fp: u64) -> &Mutex<HashMap<u64, Parent>> {
        &self.shards[(fp % SHARDS as u64) as usize]
    }

    /// Inserts `fp`; true if it was new.
    fn insert(&self, fp: u64, parent: Parent) -> bool {
        let mut shard = self.shard(fp).lock().unwrap_or_else(|e| e.into_inner());
        match shard.entry(fp) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(parent);
                true
            }
        }
    }

    fn parent(&self, fp: u64) -> Parent {
        self.shard(fp).lock().unwrap_or_else(|e| e.into_inner()).get(&fp).copied().flatten()
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len()).sum()
    }
}

/// The fingerprint of a state (std's SipHash with fixed keys: the same in every run).
pub fn fingerprint(s: &EkgState) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// Explores every state of `model` within its boundary, breadth first on `threads` threads,
/// deduplicating on `class` (a hash of the state's representative, or the fingerprint for
/// no reduction); stops at `timeout` (then `truncated`).
pub fn explore(
    model: &EkgModel,
    class: fn(&EkgState) -> u64,
    threads: usize,
    timeout: Option<Duration>,
) -> Exploration {
    explore_with(model, class, threads, timeout, false)
}

/// The shortest counterexample (or example) of every property, deterministically: the
/// search on one thread, without reduction, `eventually` included.
pub fn shortest(model: &EkgModel, timeout: Option<Duration>) -> Exploration {
    explore_with(model, fingerprint, 1, timeout, true)
}

/// As [`explore`], evaluating `eventually` properties too when `eventually` is set.
pub fn explore_with(
    model: &EkgModel,
    class: fn(&EkgState) -> u64,
    threads: usize,
    timeout: Option<Duration>,
    eventually: bool,
) -> Exploration {
    let start = Instant::now();
    let visited = Visited::new();
    let properties = model.properties();
    let discoveries: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());
    let generated = AtomicUsize::new(0);
    let truncated = AtomicBool::new(false);

    let all_eventually = if eventually {
        properties
            .iter()
            .enumerate()
            .filter(|(_, p)| p.expectation == Expectation::Eventually)
            .fold(0u64, |bits, (i, _)| bits | (1u64 << (i % 64)))
    } else {
        0
    };
    let mut level: Vec<Entry> = Vec::new();
    for s in model.init_states() {
        let fp = class(&s);
        if visited.insert(fp, None) {
            level.push((s, fp, all_eventually));
        }
    }
    let mut depth = 0;
    while !level.is_empty() {
        depth += 1;
        let next_index = AtomicUsize::new(0);
        const CHUNK: usize = 256;
        let next: Vec<Vec<Entry>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads.max(1))
                .map(|_| {
                    scope.spawn(|| {
                        let mut out = Vec::new();
                        let mut actions = Vec::new();
                        loop {
                            if timeout.is_some_and(|t| start.elapsed() >= t) {
                                truncated.store(true, Ordering::Relaxed);
                                return out;
                            }
                            let from = next_index.fetch_add(CHUNK, Ordering::Relaxed);
                            let Some(chunk) = level.get(from..(from + CHUNK).min(level.len())) else { return out };
                            if chunk.is_empty() {
                                return out;
                            }
                            for (state, fp, ebits) in chunk {
                                let ebits = check_properties(model, &properties, state, *fp, *ebits, &discoveries);
                                model.actions(state, &mut actions);
                                let mut terminal = true;
                                for (index, action) in actions.drain(..).enumerate() {
                                    let Some(next) = model.next_state(state, action) else { continue };
                                    if !Model::within_boundary(model, &next) {
                                        continue;
                                    }
                                    terminal = false;
                                    generated.fetch_add(1, Ordering::Relaxed);
                                    let next_fp = class(&next);
                                    let index = u32::try_from(index).unwrap_or(u32::MAX);
                                    if visited.insert(next_fp, Some((*fp, index))) {
                                        out.push((next, next_fp, ebits));
                                    }
                                }
                                if terminal && ebits != 0 {
                                    // A terminal state whose path never met these conditions.
                                    let mut found = discoveries.lock().unwrap_or_else(|e| e.into_inner());
                                    for (i, p) in properties.iter().enumerate() {
                                        if ebits & (1u64 << (i % 64)) != 0 {
                                            found.entry(p.name).or_insert(*fp);
                                        }
                                    }
                                }
                            }
                        }
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap_or_default()).collect()
        });
        if truncated.load(Ordering::Relaxed) {
            break;
        }
        level = next.into_iter().flatten().collect();
    }

    let found = discoveries.into_inner().unwrap_or_else(|e| e.into_inner());
    let discoveries = found.into_iter().map(|(name, fp)| (name, path_to(&visited, fp))).collect();
    Exploration {
        unique_states: visited.len(),
        generated: generated.load(Ordering::Relaxed),
        max_depth: depth,
        discoveries,
        truncated: truncated.load(Ordering::Relaxed),
    }
}

/// Checks `always` and `sometimes` at `state`; returns the `eventually` bits its path still
/// owes (cleared for each condition that holds here).
fn check_properties(
    model: &EkgModel,
    properties: &[stateright::Property<EkgModel>],
    state: &EkgState,
    fp: u64,
    mut ebits: u64,
    discoveries: &Mutex<BTreeMap<&'static str, u64>>,
) -> u64 {
    for (i, p) in properties.iter().enumerate() {
        let hit = match p.expectation {
            Expectation::Always => !(p.condition)(model, state),
            Expectation::Sometimes => (p.condition)(model, state),
            Expectation::Eventually => {
                if ebits & (1u64 << (i % 64)) != 0 && (p.condition)(model, state) {
                    ebits &= !(1u64 << (i % 64));
                }
                false
            }
        };
        if hit {
            // Levels are processed in order: the first hit recorded is on a shortest path
            // (within a level, any of them).
            discoveries.lock().unwrap_or_else(|e| e.into_inner()).entry(p.name).or_insert(fp);
        }
    }
    ebits
}

fn path_to(visited: &Visited, fp: u64) -> Vec<usize> {
    let mut path = Vec::new();
    let mut at = fp;
    while let Some((parent, index)) = visited.parent(at) {
        path.push(index as usize);
        at = parent;
    }
    path.reverse();
    path
}

/// Replays a path of action indices from the initial state: the actions taken.
pub fn replay(model: &EkgModel, path: &[usize]) -> Vec<<EkgModel as Model>::Action> {
    let mut taken = Vec::new();
    let Some(mut state) = model.init_states().into_iter().next() else { return taken };
    let mut actions = Vec::new();
    for index in path {
        actions.clear();
        model.actions(&state, &mut actions);
        let Some(action) = actions.get(*index).cloned() else { break };
        let Some(next) = model.next_state(&state, action.clone()) else { break };
        taken.push(action);
        state = next;
    }
    taken
}
