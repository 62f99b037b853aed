//! The event queue: events ordered by (virtual time, sequence number), so that events at the
//! same instant run in the order they were scheduled. No clock, no threads.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

struct Entry<E> {
    at_ms: u64,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.seq) == (other.at_ms, other.seq)
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    // Reversed: BinaryHeap is a max-heap, we pop the earliest.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_ms, other.seq).cmp(&(self.at_ms, self.seq))
    }
}

/// A discrete-event queue with a virtual clock.
pub struct Queue<E> {
    heap: BinaryHeap<Entry<E>>,
    seq: u64,
    now_ms: u64,
}

impl<E> Default for Queue<E> {
    fn default() -> Self {
        Queue { heap: BinaryHeap::new(), seq: 0, now_ms: 0 }
    }
}

impl<E> Queue<E> {
    /// Schedules `event` at `at_ms` (never before now).
    pub fn at(&mut self, at_ms: u64, event: E) {
        self.seq += 1;
        self.heap.push(Entry { at_ms: at_ms.max(self.now_ms), seq: self.seq, event });
    }

    /// Schedules `event` `delay_ms` from now.
    pub fn after(&mut self, delay_ms: u64, event: E) {
        self.at(self.now_ms.saturating_add(delay_ms), event);
    }

    /// The next event; advances the clock to it.
    pub fn pop(&mut self) -> Option<(u64, E)> {
        let e = self.heap.pop()?;
        self.now_ms = e.at_ms;
        Some((e.at_ms, e.event))
    }

    /// Virtual now, ms.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Events pending.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_instant_runs_in_schedule_order() {
        let mut q = Queue::default();
        q.at(10, "b");
        q.at(5, "a");
        q.at(10, "c");
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec![(5, "a"), (10, "b"), (10, "c")]);
    }

    #[test]
    fn never_schedules_into_the_past() {
        let mut q = Queue::default();
        q.at(100, 1);
        assert_eq!(q.pop(), Some((100, 1)));
        q.at(50, 2);
        assert_eq!(q.pop(), Some((100, 2)));
    }
}
