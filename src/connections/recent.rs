//! A small bounded copy that forgets the least recently used entry first: the edge keeps the
//! named connections' records (and, apart, the ids nobody connected) in two of these, so that a
//! flood of made-up ids can neither grow them nor push the live records out.

use super::ConnectionId;

/// Up to `capacity` entries, each with when it was fetched; the most recently used last.
#[derive(Debug)]
pub struct Recent<V> {
    capacity: usize,
    entries: Vec<(ConnectionId, V, i64)>,
}

impl<V: Clone> Recent<V> {
    pub const fn new(capacity: usize) -> Recent<V> {
        Recent { capacity, entries: Vec::new() }
    }

    /// The value of `id` if it was fetched less than `fresh_ms` before `now` (then it becomes the
    /// most recently used).
    pub fn get(&mut self, id: &ConnectionId, now: i64, fresh_ms: i64) -> Option<V> {
        let at = self.entries.iter().position(|(known, _, _)| known == id)?;
        if now - self.entries[at].2 >= fresh_ms {
            return None;
        }
        let entry = self.entries.remove(at);
        let value = entry.1.clone();
        self.entries.push(entry);
        Some(value)
    }

    /// When `id` was last fetched.
    pub fn fetched_at(&self, id: &ConnectionId) -> Option<i64> {
        self.entries.iter().find(|(known, _, _)| known == id).map(|(_, _, at)| *at)
    }

    /// Keeps `value` for `id`, fetched at `now`, dropping the least recently used when full.
    pub fn put(&mut self, id: ConnectionId, value: V, now: i64) {
        self.remove(&id);
        if self.entries.len() >= self.capacity && !self.entries.is_empty() {
            self.entries.remove(0);
        }
        self.entries.push((id, value, now));
    }

    pub fn remove(&mut self, id: &ConnectionId) {
        self.entries.retain(|(known, _, _)| known != id);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: usize) -> ConnectionId {
        ConnectionId::parse(&format!("loc-{n}")).unwrap()
    }

    #[test]
    fn the_least_recently_used_goes_first_and_the_size_stays_bounded() {
        let mut recent = Recent::new(3);
        for n in 0..3 {
            recent.put(id(n), n, 0);
        }
        assert_eq!(recent.get(&id(0), 1, 60), Some(0), "0 is now the most recently used");
        recent.put(id(3), 3, 2);
        assert_eq!(recent.len(), 3);
        assert_eq!(recent.get(&id(1), 2, 60), None, "1 was the least recently used");
        assert_eq!(recent.get(&id(0), 2, 60), Some(0));
        for n in 100..1_100 {
            recent.put(id(n), n, 3);
        }
        assert_eq!(recent.len(), 3);
        assert!(!recent.is_empty());
    }

    #[test]
    fn an_entry_is_used_while_fresh_and_kept_once_per_id() {
        let mut recent = Recent::new(2);
        recent.put(id(1), "old", 0);
        recent.put(id(1), "new", 10);
        assert_eq!(recent.len(), 1);
        assert_eq!(recent.get(&id(1), 69, 60), Some("new"));
        assert_eq!(recent.get(&id(1), 70, 60), None, "stale at 60 ms");
        assert_eq!(recent.fetched_at(&id(1)), Some(10));
        recent.remove(&id(1));
        assert_eq!(recent.fetched_at(&id(1)), None);
    }
}
