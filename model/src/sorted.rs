//! Small sorted-vector sets and maps for the ghost history: one allocation each, cheap to
//! clone and hash (the checker clones and hashes the history of every state it meets; with
//! B-trees it was a third of a state's memory).

/// A set kept as a sorted vector.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SortedSet<T>(Vec<T>);

impl<T> Default for SortedSet<T> {
    fn default() -> Self {
        SortedSet(Vec::new())
    }
}

impl<T: Ord> SortedSet<T> {
    /// Inserts `value`; true if it was new.
    pub fn insert(&mut self, value: T) -> bool {
        match self.0.binary_search(&value) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, value);
                true
            }
        }
    }

    /// Whether `value` is in the set.
    pub fn contains(&self, value: &T) -> bool {
        self.0.binary_search(value).is_ok()
    }

    /// The elements in order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }

    /// Keeps the elements for which `keep` is true.
    pub fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        self.0.retain(keep);
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T: Ord> FromIterator<T> for SortedSet<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut v: Vec<T> = iter.into_iter().collect();
        v.sort();
        v.dedup();
        SortedSet(v)
    }
}

impl<'a, T> IntoIterator for &'a SortedSet<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// A map of counters kept as a vector sorted by key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Counts<K>(Vec<(K, u8)>);

impl<K> Default for Counts<K> {
    fn default() -> Self {
        Counts(Vec::new())
    }
}

impl<K: Ord> Counts<K> {
    /// Adds one to `key`'s count (saturating: ghost counters must not wrap).
    pub fn bump(&mut self, key: K) {
        match self.0.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(at) => {
                if let Some((_, n)) = self.0.get_mut(at) {
                    *n = n.saturating_add(1);
                }
            }
            Err(at) => self.0.insert(at, (key, 1)),
        }
    }

    /// The counts.
    pub fn values(&self) -> impl Iterator<Item = &u8> {
        self.0.iter().map(|(_, n)| n)
    }

    /// (key, count) pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &u8)> {
        self.0.iter().map(|(k, n)| (k, n))
    }
}

impl<K: Ord> FromIterator<(K, u8)> for Counts<K> {
    fn from_iter<I: IntoIterator<Item = (K, u8)>>(iter: I) -> Self {
        let mut v: Vec<(K, u8)> = iter.into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Counts(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_stay_sorted_and_distinct_and_counts_saturate() {
        let mut s = SortedSet::default();
        assert!(s.insert(3));
        assert!(s.insert(1));
        assert!(!s.insert(3));
        assert_eq!(s.iter().copied().collect::<Vec<_>>(), vec![1, 3]);
        assert!(s.contains(&1) && !s.contains(&2));
        assert_eq!(SortedSet::from_iter([3, 1, 3]), s);
        let mut c = Counts::default();
        for _ in 0..300 {
            c.bump('a');
        }
        c.bump('b');
        assert_eq!(c.iter().map(|(k, n)| (*k, *n)).collect::<Vec<_>>(), vec![('a', 255), ('b', 1)]);
    }
}
